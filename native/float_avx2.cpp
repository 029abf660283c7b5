// Float glue microkernels on 256-bit vectors with FMA (-mavx2 -mfma): the "avx2", "avxvnni"
// and "avxvnni_evex" paths.
#include <immintrin.h>

#include "float_impl.h"

namespace lowp {
namespace {

struct Avx2D {
  using V = __m256d;
  static constexpr int W = 4;
  static V loadf(const float* p) { return _mm256_cvtps_pd(_mm_loadu_ps(p)); }
  static void storef(float* p, V v) { _mm_storeu_ps(p, _mm256_cvtpd_ps(v)); }
  static V set1(double v) { return _mm256_set1_pd(v); }
  static V add(V a, V b) { return _mm256_add_pd(a, b); }
  static V sub(V a, V b) { return _mm256_sub_pd(a, b); }
  static V mul(V a, V b) { return _mm256_mul_pd(a, b); }
  static V div(V a, V b) { return _mm256_div_pd(a, b); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static V min(V a, V b) { return _mm256_min_pd(a, b); }
  static V max(V a, V b) { return _mm256_max_pd(a, b); }
  static V abs(V a) { return _mm256_andnot_pd(_mm256_set1_pd(-0.0), a); }
  static V copysign(V mag, V sgn) {
    const V s = _mm256_set1_pd(-0.0);
    return _mm256_or_pd(_mm256_andnot_pd(s, mag), _mm256_and_pd(s, sgn));
  }
  static V select_le(V a, V b, V x, V y) {
    return _mm256_blendv_pd(y, x, _mm256_cmp_pd(a, b, _CMP_LE_OQ));
  }
  static V select_lt(V a, V b, V x, V y) {
    return _mm256_blendv_pd(y, x, _mm256_cmp_pd(a, b, _CMP_LT_OQ));
  }
  static bool all_le(V a, V b) {
    return _mm256_movemask_pd(_mm256_cmp_pd(a, b, _CMP_LE_OQ)) == 0xF;
  }
  static V exp2_bits(V t) {
    const __m256i e = _mm256_add_epi64(_mm256_castpd_si256(t), _mm256_set1_epi64x(1023));
    return _mm256_castsi256_pd(_mm256_slli_epi64(e, 52));
  }
};

struct Avx2F {
  using V = __m256;
  static constexpr int W = 8;
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V set1(float v) { return _mm256_set1_ps(v); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V div(V a, V b) { return _mm256_div_ps(a, b); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V min(V a, V b) { return _mm256_min_ps(a, b); }
  static V max(V a, V b) { return _mm256_max_ps(a, b); }
  static V or_bits(V a, V b) { return _mm256_or_ps(a, b); }
  static V max_nan(V acc, V x) {
    return _mm256_blendv_ps(_mm256_max_ps(x, acc), x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
  }
  // p * 2^m for integer-valued m in [-150, 128] (the sum-exp range; NaN gives NaN through
  // p): 2^(k / 2) exactly, then 2^(k - k / 2) with the one rounding
  static V scale2(V p, V m) {
    const __m256i k = _mm256_min_epi32(_mm256_cvtps_epi32(m), _mm256_set1_epi32(129));
    const __m256i k1 = _mm256_srai_epi32(k, 1), k2 = _mm256_sub_epi32(k, k1);
    auto pow2 = [](__m256i e) {
      return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(e, _mm256_set1_epi32(127)), 23));
    };
    return _mm256_mul_ps(_mm256_mul_ps(p, pow2(k1)), pow2(k2));
  }
  // x = m 2^e, m in [1/2, 1), for a positive finite x (subnormals normalized first: x 2^23
  // is exact); other lanes: any
  static V frexp(V x, V& e) {
    const __m256i sub = _mm256_cmpeq_epi32(_mm256_srli_epi32(_mm256_castps_si256(x), 23),
                                           _mm256_setzero_si256());
    const __m256i bits = _mm256_castps_si256(
        _mm256_blendv_ps(x, _mm256_mul_ps(x, _mm256_set1_ps(8388608.0f)), _mm256_castsi256_ps(sub)));
    const __m256i k = _mm256_sub_epi32(_mm256_srli_epi32(bits, 23),
                                       _mm256_add_epi32(_mm256_set1_epi32(126),
                                                        _mm256_and_si256(sub, _mm256_set1_epi32(23))));
    e = _mm256_cvtepi32_ps(k);
    return _mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(bits, _mm256_set1_epi32(0x007fffff)),
                                               _mm256_set1_epi32(126 << 23)));
  }
  static V select_ge0(V x, V a, V b) {
    return _mm256_blendv_ps(b, a, _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GE_OQ));
  }
  static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V abs(V a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
  static V neg(V a) { return _mm256_xor_ps(_mm256_set1_ps(-0.0f), a); }
  static V select_eq(V a, V b, V x, V y) {  // a == b ? x : y (ordered)
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_EQ_OQ));
  }
  static V select_gt(V a, V b, V x, V y) {  // a > b ? x : y (ordered)
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_GT_OQ));
  }
  static V copysign(V mag, V sgn) {  // |mag| with the sign bit of sgn
    const V s = _mm256_set1_ps(-0.0f);
    return _mm256_or_ps(_mm256_andnot_ps(s, mag), _mm256_and_ps(s, sgn));
  }
  static V int_bits(V k) {  // the float whose bits are the integral k in [0, 2^23]
    return _mm256_castsi256_ps(_mm256_cvttps_epi32(k));
  }
  static V pow2(V r) {  // 2^r for integral r in [-126, 127]
    const __m256i e = _mm256_add_epi32(_mm256_cvttps_epi32(r), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
  }
  // Partial vectors and reductions of the softmax rows, as Avx512F's
  static __m256i first(int c) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(c), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static V load_fill(const float* p, int c, float fill) {
    const __m256i m = first(c);
    return _mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
  }
  static void store_n(float* p, V v, int c) { _mm256_maskstore_ps(p, first(c), v); }
  static V keep_n(V v, int c) { return _mm256_and_ps(v, _mm256_castsi256_ps(first(c))); }
  static bool all_ge(V a, V b) {
    return _mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_GE_OQ)) == 0xFF;
  }
  static bool has_nan(V v) { return _mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)) != 0; }
  static float reduce_max(V v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    return _mm_cvtss_f32(_mm_max_ss(m, _mm_shuffle_ps(m, m, 1)));
  }
  static float fold16(const V* acc) {
    V t = _mm256_add_ps(acc[1], acc[0]);
    t = _mm256_hadd_ps(t, t);
    t = _mm256_hadd_ps(t, t);
    return _mm_cvtss_f32(_mm_add_ss(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1)));
  }
  static V gather(const float* p, int64_t stride) {
    const __m256i idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                           _mm256_set1_epi32(int(stride)));
    return _mm256_i32gather_ps(p, idx, 4);
  }
};

}  // namespace

const FloatKernels kFloatAvx2 = float_kernels<Avx2D, Avx2F>("avx2");

}  // namespace lowp
