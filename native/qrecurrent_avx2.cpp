// Kernels of the quantized recurrence (qrecurrent.h) on 256-bit AVX2 without VNNI: b widened
// to int16 (vpmovsxbw), a's four k as int16, vpmaddwd summing two exact products (|a b| <=
// 255 * 128, so a pair fits int32 and never saturates), lanes added with wrapping vpaddd:
// the same int32 sums as vpdpbusd. The scaling is vectorized by the compiler. The "avx2",
// "avxvnni" and "avxvnni_evex" paths.
#include <immintrin.h>

#include <cstring>

#include "qrecurrent.h"
#include "qrecurrent_scale.h"

namespace lowp {
namespace {

// MR rows x 16 columns: per row four accumulators, each 4 columns x 2 partial sums.
template <int MR>
void tile(int k4, const uint8_t* a, int64_t lda, const int8_t* b, int32_t* acc, int64_t ldc) {
  __m256i c[MR][4];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < 4; ++v) c[r][v] = _mm256_setzero_si256();
  for (int kk = 0; kk < k4; ++kk) {
    const int8_t* bk = b + int64_t(kk) * 4 * kQPanel;
    __m256i bw[4];
    for (int v = 0; v < 4; ++v)
      bw[v] = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bk + 16 * v)));
    for (int r = 0; r < MR; ++r) {
      const uint8_t* ak = a + r * lda + kk * 4;
      const __m256i aw = _mm256_set1_epi64x(int64_t(ak[0]) | int64_t(ak[1]) << 16 |
                                            int64_t(ak[2]) << 32 | int64_t(ak[3]) << 48);
      for (int v = 0; v < 4; ++v) c[r][v] = _mm256_add_epi32(c[r][v], _mm256_madd_epi16(bw[v], aw));
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < 4; v += 2) {
      // [c0 c1 c4 c5 | c2 c3 c6 c7] -> c0..c7
      const __m256i s = _mm256_hadd_epi32(c[r][v], c[r][v + 1]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + r * ldc + v * 4),
                          _mm256_permute4x64_epi64(s, 0xD8));
    }
}

void qgemm(int m, int n, int k4, const uint8_t* a, int64_t lda, const int8_t* b, int32_t* acc,
           int64_t ldc) {
  const int64_t panel = int64_t(k4) * 4 * kQPanel;
  for (int j = 0; j < n; j += kQPanel)
    for (int c = 0; c < kQPanel; c += 16) {
      const int8_t* bj = b + int64_t(j / kQPanel) * panel + c * 4;
      int i = 0;
      for (; i + 4 <= m; i += 4) tile<4>(k4, a + i * lda, lda, bj, acc + i * ldc + j + c, ldc);
      const uint8_t* ai = a + i * lda;
      int32_t* ci = acc + i * ldc + j + c;
      switch (m - i) {
        case 3: tile<3>(k4, ai, lda, bj, ci, ldc); break;
        case 2: tile<2>(k4, ai, lda, bj, ci, ldc); break;
        case 1: tile<1>(k4, ai, lda, bj, ci, ldc); break;
        default: break;
      }
    }
}

}  // namespace

const QRnnKernels kQRnnAvx2 = {"avx2", &qgemm, &qrnn_scale};

}  // namespace lowp
