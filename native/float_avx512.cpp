// Float glue microkernels on 512-bit vectors (AVX-512 F/DQ): the "avx512vnni" path.
#include <immintrin.h>

#include "float_impl.h"

namespace lowp {
namespace {

struct Avx512D {
  using V = __m512d;
  static constexpr int W = 8;
  static V loadf(const float* p) { return _mm512_cvtps_pd(_mm256_loadu_ps(p)); }
  static void storef(float* p, V v) { _mm256_storeu_ps(p, _mm512_cvtpd_ps(v)); }
  static V set1(double v) { return _mm512_set1_pd(v); }
  static V add(V a, V b) { return _mm512_add_pd(a, b); }
  static V sub(V a, V b) { return _mm512_sub_pd(a, b); }
  static V mul(V a, V b) { return _mm512_mul_pd(a, b); }
  static V div(V a, V b) { return _mm512_div_pd(a, b); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static V min(V a, V b) { return _mm512_min_pd(a, b); }
  static V max(V a, V b) { return _mm512_max_pd(a, b); }
  static V abs(V a) { return _mm512_abs_pd(a); }
  static V copysign(V mag, V sgn) {
    const __m512i s = _mm512_set1_epi64(int64_t(1) << 63);
    // bits of sgn where s is set, of mag elsewhere
    return _mm512_castsi512_pd(_mm512_ternarylogic_epi64(s, _mm512_castpd_si512(sgn),
                                                          _mm512_castpd_si512(mag), 0xca));
  }
  static V select_le(V a, V b, V x, V y) {
    return _mm512_mask_blend_pd(_mm512_cmp_pd_mask(a, b, _CMP_LE_OQ), y, x);
  }
  static V select_lt(V a, V b, V x, V y) {
    return _mm512_mask_blend_pd(_mm512_cmp_pd_mask(a, b, _CMP_LT_OQ), y, x);
  }
  static bool all_le(V a, V b) { return _mm512_cmp_pd_mask(a, b, _CMP_LE_OQ) == 0xFF; }
  static V exp2_bits(V t) {
    const __m512i e = _mm512_add_epi64(_mm512_castpd_si512(t), _mm512_set1_epi64(1023));
    return _mm512_castsi512_pd(_mm512_slli_epi64(e, 52));
  }
};

struct Avx512F {
  using V = __m512;
  static constexpr int W = 16;
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V set1(float v) { return _mm512_set1_ps(v); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V div(V a, V b) { return _mm512_div_ps(a, b); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V min(V a, V b) { return _mm512_min_ps(a, b); }
  static V max(V a, V b) { return _mm512_max_ps(a, b); }
  static V max_nan(V acc, V x) {
    return _mm512_mask_mov_ps(_mm512_max_ps(x, acc), _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
  }
  static V scale2(V p, V m) { return _mm512_scalef_ps(p, m); }  // p * 2^m, one rounding
  static V select_ge0(V x, V a, V b) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GE_OQ), b, a);
  }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V abs(V a) { return _mm512_abs_ps(a); }
  static V neg(V a) { return _mm512_xor_ps(_mm512_set1_ps(-0.0f), a); }
  static V select_gt(V a, V b, V x, V y) {  // a > b ? x : y (ordered)
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_GT_OQ), y, x);
  }
  static V copysign(V mag, V sgn) {  // |mag| with the sign bit of sgn
    const __m512i s = _mm512_set1_epi32(int(0x80000000u));
    return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(s, _mm512_castps_si512(sgn),
                                                          _mm512_castps_si512(mag), 0xca));
  }
  static V int_bits(V k) {  // the float whose bits are the integral k in [0, 2^23]
    return _mm512_castsi512_ps(_mm512_cvttps_epi32(k));
  }
  static V pow2(V r) {  // 2^r for integral r in [-126, 127]
    const __m512i e = _mm512_add_epi32(_mm512_cvttps_epi32(r), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
  }
  static V gather(const float* p, int64_t stride) {
    const __m512i idx = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(int(stride)));
    return _mm512_i32gather_ps(idx, p, 4);
  }
};

}  // namespace

const FloatKernels kFloatAvx512 = float_kernels<Avx512D, Avx512F>("avx512");

}  // namespace lowp
