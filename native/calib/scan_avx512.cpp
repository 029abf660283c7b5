// AVX-512 path of the calibration scan (histogram.h): 16 floats per step; min/max, zero and
// finiteness masks in float32, bin indices in float64 (two halves of 8), scattered lane by
// lane into interleaved sub-histograms.
#include <immintrin.h>

#include "histogram.h"

namespace lowp_calib {
namespace {

inline __m256i bins8(__m256 v, __m512d f, __m512d lo, __m512d hi) {
  __m512d t = _mm512_mul_pd(_mm512_cvtps_pd(v), f);
  t = _mm512_roundscale_pd(t, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  t = _mm512_sub_pd(_mm512_min_pd(_mm512_max_pd(t, lo), hi), lo);
  return _mm512_cvttpd_epi32(t);
}

void scan_avx512(const float* x, int64_t n, const BinArgs* a, ScanResult& r) {
  const __m512 vlim = _mm512_set1_ps(std::numeric_limits<float>::max());
  const __m512i vnegz = _mm512_set1_epi32(int32_t(0x80000000u));
  const __m512 vzero = _mm512_setzero_ps();
  __m512 vmin = _mm512_set1_ps(r.min), vmax = _mm512_set1_ps(r.max);
  __mmask16 bad = 0;
  int64_t zeros = 0, negz = 0;
  __m512d f{}, bfirst{}, blast{};
  if (a) {
    f = _mm512_set1_pd(a->factor);
    bfirst = _mm512_set1_pd(a->first);
    blast = _mm512_set1_pd(a->last);
  }
  alignas(64) int32_t idx[16];
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    const __mmask16 fin = _mm512_cmp_ps_mask(_mm512_abs_ps(v), vlim, _CMP_LE_OQ);
    bad |= __mmask16(~fin);
    vmin = _mm512_min_ps(vmin, v);
    vmax = _mm512_max_ps(vmax, v);
    const __mmask16 z = _mm512_cmp_ps_mask(v, vzero, _CMP_EQ_OQ);
    zeros += __builtin_popcount(unsigned(z));
    negz += __builtin_popcount(unsigned(_mm512_cmpeq_epi32_mask(_mm512_castps_si512(v), vnegz)));
    if (a) {
      unsigned live = unsigned(fin & ~z) & 0xffffu;
      if (live) {
        _mm256_store_si256(reinterpret_cast<__m256i*>(idx), bins8(_mm512_castps512_ps256(v), f, bfirst, blast));
        _mm256_store_si256(reinterpret_cast<__m256i*>(idx + 8),
                           bins8(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)), f, bfirst, blast));
        for (; live; live &= live - 1) {
          const int k = __builtin_ctz(live);
          ++a->hist[(k % kSub) * a->bins + idx[k]];
        }
      }
    }
  }
  alignas(64) float lo[16], hi[16];
  _mm512_store_ps(lo, vmin);
  _mm512_store_ps(hi, vmax);
  ScanResult t = r;
  for (int k = 0; k < 16; ++k) {  // NaN lanes only when !finite, whose min/max are unused
    if (lo[k] < t.min) t.min = lo[k];
    if (hi[k] > t.max) t.max = hi[k];
  }
  t.zeros += zeros;
  t.neg_zeros += negz;
  t.finite = t.finite && bad == 0;
  for (; i < n; ++i) scan_one(x[i], a, a ? a->hist + (i % kSub) * a->bins : nullptr, t);
  r = t;
}

}  // namespace

const ScanKernels kScanAvx512{"avx512", scan_avx512};

}  // namespace lowp_calib
