// AVX2 path of the calibration scan (histogram.h): 8 floats per step; min/max, zero and
// finiteness masks in float32, bin indices in float64 (two halves of 4), scattered lane by
// lane into interleaved sub-histograms.
#include <immintrin.h>

#include "histogram.h"

namespace lowp_calib {
namespace {

inline __m128i bins4(__m128 v, __m256d f, __m256d lo, __m256d hi) {
  __m256d t = _mm256_floor_pd(_mm256_mul_pd(_mm256_cvtps_pd(v), f));
  t = _mm256_sub_pd(_mm256_min_pd(_mm256_max_pd(t, lo), hi), lo);
  return _mm256_cvttpd_epi32(t);
}

void scan_avx2(const float* x, int64_t n, const BinArgs* a, ScanResult& r) {
  const __m256 vlim = _mm256_set1_ps(std::numeric_limits<float>::max());
  const __m256 vabs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256i vnegz = _mm256_set1_epi32(int32_t(0x80000000u));
  const __m256 vzero = _mm256_setzero_ps();
  __m256 vmin = _mm256_set1_ps(r.min), vmax = _mm256_set1_ps(r.max);
  int bad = 0;
  int64_t zeros = 0, negz = 0;
  __m256d f{}, bfirst{}, blast{};
  if (a) {
    f = _mm256_set1_pd(a->factor);
    bfirst = _mm256_set1_pd(a->first);
    blast = _mm256_set1_pd(a->last);
  }
  alignas(32) int32_t idx[8];
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const int fin = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_and_ps(v, vabs), vlim, _CMP_LE_OQ));
    bad |= fin ^ 0xff;
    vmin = _mm256_min_ps(vmin, v);
    vmax = _mm256_max_ps(vmax, v);
    const int z = _mm256_movemask_ps(_mm256_cmp_ps(v, vzero, _CMP_EQ_OQ));
    zeros += __builtin_popcount(unsigned(z));
    negz += __builtin_popcount(unsigned(
        _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_castps_si256(v), vnegz)))));
    if (a) {
      unsigned live = unsigned(fin & ~z);
      if (live) {
        _mm_store_si128(reinterpret_cast<__m128i*>(idx), bins4(_mm256_castps256_ps128(v), f, bfirst, blast));
        _mm_store_si128(reinterpret_cast<__m128i*>(idx + 4), bins4(_mm256_extractf128_ps(v, 1), f, bfirst, blast));
        for (; live; live &= live - 1) {
          const int k = __builtin_ctz(live);
          ++a->hist[(k % kSub) * a->bins + idx[k]];
        }
      }
    }
  }
  alignas(32) float lo[8], hi[8];
  _mm256_store_ps(lo, vmin);
  _mm256_store_ps(hi, vmax);
  ScanResult t = r;
  for (int k = 0; k < 8; ++k) {  // NaN lanes only when !finite, whose min/max are unused
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

const ScanKernels kScanAvx2{"avx2", scan_avx2};

}  // namespace lowp_calib
