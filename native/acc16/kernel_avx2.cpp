// AVX2 microkernel of lowp._acc16: vpmaddubsw (S1) + vpaddsw (S2)-(S3), widened per block (S4).
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "acc16.h"
#include "sparse.h"

namespace lowp_acc16 {
namespace {

// The products of one block of pairs into the int16 accumulators: a function of its own (not
// inlined) whose pointers advance, with every loop over rows and panels unrolled. Written
// inside tile's block loop, GCC 12 copied every accumulator through another register on
// each pair (docs/native.md, "The int8 GEMM tiles on Zen 4"). Each accumulator sees the
// same saturating additions in the same order either way.
template <int MR, int NV>
__attribute__((noinline)) void block(__m256i (&out)[MR][NV], const uint8_t* a, int64_t lda,
                                     const int8_t* b, int64_t panel_bytes, int64_t pairs) {
  // local copies: byte reads of a may alias out, which would keep every sum in memory
  __m256i acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = out[r][v];
  for (int64_t j = 0; j < pairs; ++j, a += 2, b += kPanel * 2) {
    __m256i x[MR];
#pragma GCC unroll 4
    for (int r = 0; r < MR; ++r) {
      int16_t pair;
      std::memcpy(&pair, a + r * lda, 2);
      x[r] = _mm256_set1_epi16(pair);
    }
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      const __m256i bv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + v * panel_bytes));
#pragma GCC unroll 4
      for (int r = 0; r < MR; ++r)
        acc[r][v] = _mm256_adds_epi16(acc[r][v], _mm256_maddubs_epi16(x[r], bv));
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) out[r][v] = acc[r][v];
}

// MR rows x NV panels of 16 columns; int16 accumulators live in registers for one block of
// pairs, int32 sums in a small stack tile.
template <int MR, int NV>
void tile(const uint8_t* a, int64_t lda, const int8_t* bpanel0, int64_t k2, int32_t* c,
          int64_t ldc, int64_t ncols, int64_t block_pairs) {
  alignas(32) int32_t acc32[MR][NV * kPanel] = {};
  const int64_t panel_bytes = k2 * kPanel * 2;
  for (int64_t j0 = 0; j0 < k2; j0 += block_pairs) {
    const int64_t j1 = std::min(k2, j0 + block_pairs);
    __m256i acc[MR][NV];
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_setzero_si256();
    block<MR, NV>(acc, a + 2 * j0, lda, bpanel0 + j0 * kPanel * 2, panel_bytes, j1 - j0);
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) {
        __m256i* dst = reinterpret_cast<__m256i*>(&acc32[r][v * kPanel]);
        const __m256i lo = _mm256_cvtepi16_epi32(_mm256_castsi256_si128(acc[r][v]));
        const __m256i hi = _mm256_cvtepi16_epi32(_mm256_extracti128_si256(acc[r][v], 1));
        _mm256_store_si256(dst, _mm256_add_epi32(_mm256_load_si256(dst), lo));
        _mm256_store_si256(dst + 1, _mm256_add_epi32(_mm256_load_si256(dst + 1), hi));
      }
  }
  const int64_t width = std::min<int64_t>(ncols, NV * kPanel);
  for (int r = 0; r < MR; ++r) std::memcpy(c + r * ldc, acc32[r], width * sizeof(int32_t));
}

template <int MR>
void rows(const uint8_t* a, int64_t lda, const int8_t* bpanel0, int64_t k2, int64_t nv,
          int32_t* c, int64_t ldc, int64_t ncols, int64_t block_pairs) {
  switch (nv) {
    case 4: tile<MR, 4>(a, lda, bpanel0, k2, c, ldc, ncols, block_pairs); break;
    case 3: tile<MR, 3>(a, lda, bpanel0, k2, c, ldc, ncols, block_pairs); break;
    case 2: tile<MR, 2>(a, lda, bpanel0, k2, c, ldc, ncols, block_pairs); break;
    default: tile<MR, 1>(a, lda, bpanel0, k2, c, ldc, ncols, block_pairs); break;
  }
}

}  // namespace

void gemm_avx2(const uint8_t* a, int64_t lda, int64_t m, const int8_t* bpacked, int64_t k2,
               int64_t panels, int64_t ncols, int32_t* c, int64_t ldc, int64_t block_pairs) {
  // 2 rows x 4 panels: 8 accumulators, 2 broadcasts and B as memory operands fit the 16 ymm
  // registers; 3 x 4 (12 accumulators, 3 broadcasts, B) kept 8 sums on the stack per pair
  constexpr int kMR = 2, kNV = 4;
  const int64_t panel_bytes = k2 * kPanel * 2;
  for (int64_t p = 0; p < panels; p += kNV) {
    const int64_t nv = std::min<int64_t>(kNV, panels - p);
    const int64_t n0 = p * kPanel;
    const int64_t width = ncols - n0;
    const int8_t* b = bpacked + p * panel_bytes;
    int64_t i = 0;
    for (; i + kMR <= m; i += kMR)
      rows<kMR>(a + i * lda, lda, b, k2, nv, c + i * ldc + n0, ldc, width, block_pairs);
    if (m - i == 2) rows<2>(a + i * lda, lda, b, k2, nv, c + i * ldc + n0, ldc, width, block_pairs);
    if (m - i == 1) rows<1>(a + i * lda, lda, b, k2, nv, c + i * ldc + n0, ldc, width, block_pairs);
  }
}

void sparse_avx2(const uint8_t* a, int64_t lda, int64_t m, const int32_t* used,
                 int64_t nused, int64_t n,
                 const int32_t* col_ptr, const int32_t* row_idx, const int8_t* values,
                 int32_t* c, int64_t ldc, uint8_t* at, int32_t* ct) {
  sparse_block_impl(a, lda, m, used, nused, n, col_ptr, row_idx, values, c, ldc, at, ct);
}

}  // namespace lowp_acc16
