// Recurrence microkernels on 256-bit vectors with FMA (-mavx2 -mfma): the "avx2", "avxvnni"
// and "avxvnni_evex" paths.
#include <immintrin.h>

#include "recurrent_impl.h"

namespace lowp {
namespace {

struct Avx2Ops {
  using V = __m256;
  static constexpr int W = 8;
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V set1(float v) { return _mm256_set1_ps(v); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V div(V a, V b) { return _mm256_div_ps(a, b); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V min(V a, V b) { return _mm256_min_ps(a, b); }
  static V max(V a, V b) { return _mm256_max_ps(a, b); }
  static V select_lt(V a, V b, V x, V y) {
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_LT_OQ));
  }
};

}  // namespace

const RnnKernels kRnnAvx2 = rnn_kernels<Avx2Ops, 6, 2>("avx2");

}  // namespace lowp
