// Recurrence microkernels, portable scalar path (compiled without any ISA flag): one float per
// "vector", the reference for the SIMD files.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "recurrent_impl.h"

namespace lowp {
namespace {

struct ScalarOps {
  using V = float;
  static constexpr int W = 1;
  static V load(const float* p) { return *p; }
  static void store(float* p, V v) { *p = v; }
  static V set1(float v) { return v; }
  static V add(V a, V b) { return a + b; }
  static V sub(V a, V b) { return a - b; }
  static V mul(V a, V b) { return a * b; }
  static V div(V a, V b) { return a / b; }
  static V fma(V a, V b, V c) { return std::fma(a, b, c); }  // one rounding, as FMA units
  static V min(V a, V b) { return a < b ? a : b; }
  static V max(V a, V b) { return a > b ? a : b; }
  static V select_lt(V a, V b, V x, V y) { return a < b ? x : y; }
};

}  // namespace

const RnnKernels kRnnScalar = rnn_kernels<ScalarOps, 4, 16>("scalar");

}  // namespace lowp
