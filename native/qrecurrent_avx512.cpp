// Kernels of the quantized recurrence (qrecurrent.h) on 512-bit VNNI (vpdpbusd: u8 x s8,
// four products summed into each int32 lane, wrapping) and the scaling vectorized by the
// compiler for AVX-512: the "avx512vnni" and "amx" paths.
#include <immintrin.h>

#include <cstring>

#include "qrecurrent.h"
#include "qrecurrent_scale.h"

namespace lowp {
namespace {

// MR rows x NP vectors (16 NP columns: NP / 4 panels) of acc in registers over all of K.
template <int MR, int NP>
void tile(int k4, const uint8_t* a, int64_t lda, const int8_t* b, int64_t panel, int32_t* acc,
          int64_t ldc) {
  __m512i c[MR][NP];
  for (int r = 0; r < MR; ++r)
    for (int p = 0; p < NP; ++p) c[r][p] = _mm512_setzero_si512();
  for (int kk = 0; kk < k4; ++kk) {
    __m512i bv[NP];
    for (int p = 0; p < NP; ++p)
      bv[p] = _mm512_loadu_si512(b + (p / 4) * panel + kk * 4 * kQPanel + (p % 4) * 64);
    for (int r = 0; r < MR; ++r) {
      int32_t quad;
      std::memcpy(&quad, a + r * lda + kk * 4, 4);
      const __m512i av = _mm512_set1_epi32(quad);
      for (int p = 0; p < NP; ++p) c[r][p] = _mm512_dpbusd_epi32(c[r][p], av, bv[p]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int p = 0; p < NP; ++p) _mm512_storeu_si512(acc + r * ldc + p * 16, c[r][p]);
}

// The rows of one block of NB panels (1 or 2), four at a time (16 accumulators), then the
// 1 to 3 left over across the whole block (the recurrence's batch of 1 or 2 rows: two
// panels keep more loads in flight). Columns outside, rows inside: a block of B stays in
// cache while the rows of a long input projection stream past it.
template <int NB>
void column_block(int m, int k4, const uint8_t* a, int64_t lda, const int8_t* b, int64_t panel,
                  int32_t* acc, int64_t ldc) {
  int i = 0;
  for (; i + 4 <= m; i += 4)
    for (int p = 0; p < NB; ++p)
      tile<4, 4>(k4, a + i * lda, lda, b + p * panel, panel, acc + i * ldc + p * kQPanel, ldc);
  const uint8_t* ai = a + i * lda;
  int32_t* ci = acc + i * ldc;
  switch (m - i) {
    case 3: tile<3, 4 * NB>(k4, ai, lda, b, panel, ci, ldc); break;
    case 2: tile<2, 4 * NB>(k4, ai, lda, b, panel, ci, ldc); break;
    case 1: tile<1, 4 * NB>(k4, ai, lda, b, panel, ci, ldc); break;
    default: break;
  }
}

void qgemm(int m, int n, int k4, const uint8_t* a, int64_t lda, const int8_t* b, int32_t* acc,
           int64_t ldc) {
  const int64_t panel = int64_t(k4) * 4 * kQPanel;
  int j = 0;
  for (; j + 2 * kQPanel <= n; j += 2 * kQPanel)
    column_block<2>(m, k4, a, lda, b + int64_t(j / kQPanel) * panel, panel, acc + j, ldc);
  for (; j < n; j += kQPanel)
    column_block<1>(m, k4, a, lda, b + int64_t(j / kQPanel) * panel, panel, acc + j, ldc);
}

}  // namespace

const QRnnKernels kQRnnAvx512Vnni = {"avx512vnni", &qgemm, &qrnn_scale};

}  // namespace lowp
