// Integer product of the quantized recurrence (qrecurrent.h) on 512-bit VNNI (vpdpbusd: u8 x
// s8, four products summed into each int32 lane, wrapping): the "avx512vnni" and "amx" paths.
#include <immintrin.h>

#include <cstring>

#include "qrecurrent.h"

namespace lowp {
namespace {

// MR rows x 4 panels (64 columns) of acc in registers over all of K.
template <int MR>
void tile(int k4, const uint8_t* a, int64_t lda, const int8_t* b, int64_t panel, int32_t* acc,
          int64_t ldc) {
  __m512i c[MR][4];
  for (int r = 0; r < MR; ++r)
    for (int p = 0; p < 4; ++p) c[r][p] = _mm512_setzero_si512();
  for (int kk = 0; kk < k4; ++kk) {
    __m512i bv[4];
    for (int p = 0; p < 4; ++p) bv[p] = _mm512_loadu_si512(b + p * panel + kk * 64);
    for (int r = 0; r < MR; ++r) {
      int32_t quad;
      std::memcpy(&quad, a + r * lda + kk * 4, 4);
      const __m512i av = _mm512_set1_epi32(quad);
      for (int p = 0; p < 4; ++p) c[r][p] = _mm512_dpbusd_epi32(c[r][p], av, bv[p]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int p = 0; p < 4; ++p) _mm512_storeu_si512(acc + r * ldc + p * kQPanel, c[r][p]);
}

// n is a multiple of 64 (four gates of a multiple of 16 columns).
void qgemm(int m, int n, int k4, const uint8_t* a, int64_t lda, const int8_t* b, int32_t* acc,
           int64_t ldc) {
  const int64_t panel = int64_t(k4) * 4 * kQPanel;
  for (int j = 0; j < n; j += 4 * kQPanel) {
    const int8_t* bj = b + int64_t(j / kQPanel) * panel;
    int i = 0;
    for (; i + 4 <= m; i += 4) tile<4>(k4, a + i * lda, lda, bj, panel, acc + i * ldc + j, ldc);
    switch (m - i) {
      case 3: tile<3>(k4, a + i * lda, lda, bj, panel, acc + i * ldc + j, ldc); break;
      case 2: tile<2>(k4, a + i * lda, lda, bj, panel, acc + i * ldc + j, ldc); break;
      case 1: tile<1>(k4, a + i * lda, lda, bj, panel, acc + i * ldc + j, ldc); break;
      default: break;
    }
  }
}

}  // namespace

const QGemmFn kQGemmAvx512Vnni = &qgemm;

}  // namespace lowp
