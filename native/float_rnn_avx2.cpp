// The per-step product of a one-row RNN (float_rnn.h, B = 1), and run_mlas_sgemm's
// one-column and one-row products with unit strides, for the 256-bit and 512-bit paths: MlasSgemmKernelM1TransposeBAvx's sums exactly as lowp's sgemm_m1_transposed (native/
// float_driver.cpp) forms them, eight lanes of rounded products (no fused multiply-add), the
// last block's padding lanes adding +0, the lanes folded as the kernel folds a row of a group
// of four, of the pair after them or of the last single row; four rows at once in 256-bit
// registers instead of the baseline file's 128-bit ones. The same IEEE operations in the same
// order, so the same bits.
#include <immintrin.h>

#include <cstdint>

#include "float_rnn.h"

namespace lowp {

namespace {

inline float fold(const float* v, int64_t pos, int64_t tail) {
  if (pos < 0) return (((v[0] + v[1]) + v[2]) + v[3]) + (((v[4] + v[5]) + v[6]) + v[7]);
  if (tail >= 2 && pos < 2) return ((v[0] + v[2]) + (v[4] + v[6])) + ((v[1] + v[3]) + (v[5] + v[7]));
  return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
}

}  // namespace

void m1_transposed_folds_avx2(const float* x, const float* rows, int64_t sr, float* y,
                              int64_t nrows, int64_t k) {
  const int64_t tail = nrows % 4;
  const int64_t whole = k / 8 * 8;
  alignas(32) int32_t lanes[8];
  for (int l = 0; l < 8; ++l) lanes[l] = whole + l < k ? -1 : 0;
  const __m256i mask = _mm256_load_si256(reinterpret_cast<const __m256i*>(lanes));
  int64_t r = 0;
  for (; r + 4 <= nrows; r += 4) {
    const float* r0 = rows + r * sr;
    __m256 v0 = _mm256_setzero_ps(), v1 = v0, v2 = v0, v3 = v0;
    for (int64_t k0 = 0; k0 < whole; k0 += 8) {
      const __m256 xv = _mm256_loadu_ps(x + k0);
      v0 = _mm256_add_ps(v0, _mm256_mul_ps(xv, _mm256_loadu_ps(r0 + k0)));
      v1 = _mm256_add_ps(v1, _mm256_mul_ps(xv, _mm256_loadu_ps(r0 + sr + k0)));
      v2 = _mm256_add_ps(v2, _mm256_mul_ps(xv, _mm256_loadu_ps(r0 + 2 * sr + k0)));
      v3 = _mm256_add_ps(v3, _mm256_mul_ps(xv, _mm256_loadu_ps(r0 + 3 * sr + k0)));
    }
    if (whole < k) {  // masked lanes load +0 and their product is +0
      const __m256 xv = _mm256_maskload_ps(x + whole, mask);
      v0 = _mm256_add_ps(v0, _mm256_mul_ps(xv, _mm256_maskload_ps(r0 + whole, mask)));
      v1 = _mm256_add_ps(v1, _mm256_mul_ps(xv, _mm256_maskload_ps(r0 + sr + whole, mask)));
      v2 = _mm256_add_ps(v2, _mm256_mul_ps(xv, _mm256_maskload_ps(r0 + 2 * sr + whole, mask)));
      v3 = _mm256_add_ps(v3, _mm256_mul_ps(xv, _mm256_maskload_ps(r0 + 3 * sr + whole, mask)));
    }
    alignas(32) float v[4][8];
    _mm256_store_ps(v[0], v0), _mm256_store_ps(v[1], v1);
    _mm256_store_ps(v[2], v2), _mm256_store_ps(v[3], v3);
    for (int q = 0; q < 4; ++q) y[r + q] = fold(v[q], r + q - (nrows - tail), tail);
  }
  for (; r < nrows; ++r) {
    const float* row = rows + r * sr;
    __m256 v0 = _mm256_setzero_ps();
    for (int64_t k0 = 0; k0 < whole; k0 += 8)
      v0 = _mm256_add_ps(v0, _mm256_mul_ps(_mm256_loadu_ps(x + k0), _mm256_loadu_ps(row + k0)));
    if (whole < k)
      v0 = _mm256_add_ps(v0, _mm256_mul_ps(_mm256_maskload_ps(x + whole, mask),
                                           _mm256_maskload_ps(row + whole, mask)));
    alignas(32) float v[8];
    _mm256_store_ps(v, v0);
    y[r] = fold(v, r - (nrows - tail), tail);
  }
}

void rnn_m1_transposed_avx2(const float* x, const float* rows, float* out, int64_t nrows,
                            int64_t k) {
  m1_transposed_folds_avx2(x, rows, k, out, nrows, k);
  for (int64_t r = 0; r < nrows; ++r) out[r] = out[r] + 0.0f;
}

}  // namespace lowp
