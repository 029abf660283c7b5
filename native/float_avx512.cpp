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
  static V or_bits(V a, V b) {
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(a), _mm512_castps_si512(b)));
  }
  static V max_nan(V acc, V x) {
    return _mm512_mask_mov_ps(_mm512_max_ps(x, acc), _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
  }
  static V scale2(V p, V m) { return _mm512_scalef_ps(p, m); }  // p * 2^m, one rounding
  // x = m 2^e, m in [1/2, 1), for a positive finite x (subnormals too); other lanes: any
  static V frexp(V x, V& e) {
    e = _mm512_add_ps(_mm512_getexp_ps(x), _mm512_set1_ps(1.0f));
    return _mm512_getmant_ps(x, _MM_MANT_NORM_p5_1, _MM_MANT_SIGN_zero);
  }
  static V select_ge0(V x, V a, V b) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GE_OQ), b, a);
  }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V abs(V a) { return _mm512_abs_ps(a); }
  static V neg(V a) { return _mm512_xor_ps(_mm512_set1_ps(-0.0f), a); }
  static V select_eq(V a, V b, V x, V y) {  // a == b ? x : y (ordered)
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ), y, x);
  }
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
  // Partial vectors (c lanes, 0 < c < W) and whole-vector reductions of the softmax rows:
  // lanes from c on filled (load_fill), left alone (store_n) or zeroed (keep_n); all_ge(a,
  // b): every lane a >= b (ordered); reduce_max of a NaN-free vector; fold16 sums the 16
  // partial sums as MLAS folds them: t[j] = lane 8 + j + lane j, then ((t0 + t1) + (t2 +
  // t3)) + ((t4 + t5) + (t6 + t7)).
  static __mmask16 first(int c) { return __mmask16((1u << c) - 1u); }
  static V load_fill(const float* p, int c, float fill) {
    return _mm512_mask_loadu_ps(_mm512_set1_ps(fill), first(c), p);
  }
  static void store_n(float* p, V v, int c) { _mm512_mask_storeu_ps(p, first(c), v); }
  static V keep_n(V v, int c) { return _mm512_maskz_mov_ps(first(c), v); }
  static bool all_ge(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ) == 0xFFFF; }
  static bool has_nan(V v) { return _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q) != 0; }
  static float reduce_max(V v) { return _mm512_reduce_max_ps(v); }
  static float fold16(const V* acc) {
    const __m256 lo = _mm512_castps512_ps256(acc[0]);
    const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[0]), 1));
    return fold8(_mm256_add_ps(hi, lo));
  }
  static float fold8(__m256 t) {  // hadd pairs (t0 + t1, ...), twice, then the two halves
    t = _mm256_hadd_ps(t, t);
    t = _mm256_hadd_ps(t, t);
    return _mm_cvtss_f32(_mm_add_ss(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1)));
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
