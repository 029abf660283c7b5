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
  static V abs(V a) { return std::fabs(a); }
  static V floor(V a) { return std::floor(a); }
  static V pow2(V n) {
    if (n != n) return n;  // NaN in, NaN out (the product is NaN anyway)
    const uint32_t bits = uint32_t(int32_t(n) + 127) << 23;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
  }
  static V select_lt(V a, V b, V x, V y) { return a < b ? x : y; }
  static V copysign(V mag, V sgn) { return std::copysign(mag, sgn); }
};

}  // namespace

const RnnKernels kRnnScalar = rnn_kernels<ScalarOps, 4, 16>("scalar");

}  // namespace lowp
