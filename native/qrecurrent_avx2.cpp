// Kernels of the quantized recurrence (qrecurrent.h) on 256-bit AVX2 without VNNI: b widened
// to int16 (vpmovsxbw), a's four k as int16, vpmaddwd summing two exact products (|a b| <=
// 255 * 128, so a pair fits int32 and never saturates), lanes added with wrapping vpaddd:
// the same int32 sums as vpdpbusd. The scaling is vectorized by the compiler. The "avx2",
// "avxvnni" and "avxvnni_evex" paths.
#include <immintrin.h>

#include <cstring>

#include "qrecurrent.h"
#include "qrecurrent_quant.h"
#include "qrecurrent_scale.h"

namespace lowp {
namespace {

// MR rows x 16 columns (rows row0.., columns col0..): per row four accumulators, each 4
// columns x 2 partial sums, then the 16 sums of each row scaled into e.out.
template <int MR>
void tile(int k4, const uint8_t* a, int64_t lda, const int8_t* b, int64_t row0, int64_t col0,
          const QScale& e) {
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
  alignas(32) int32_t acc[MR][16];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < 4; v += 2) {
      // [c0 c1 c4 c5 | c2 c3 c6 c7] -> c0..c7
      const __m256i s = _mm256_hadd_epi32(c[r][v], c[r][v + 1]);
      _mm256_store_si256(reinterpret_cast<__m256i*>(&acc[r][v * 4]),
                         _mm256_permute4x64_epi64(s, 0xD8));
    }
  qrnn_scale_block(MR, 16, &acc[0][0], 16, row0, col0, e);
}

void qgemm(int m, int n, int k4, const uint8_t* a, int64_t lda, const int8_t* b,
           const QScale& e) {
  const int64_t panel = int64_t(k4) * 4 * kQPanel;
  for (int j = 0; j < n; j += kQPanel)
    for (int c = 0; c < kQPanel; c += 16) {
      const int8_t* bj = b + int64_t(j / kQPanel) * panel + c * 4;
      int i = 0;
      for (; i + 4 <= m; i += 4) tile<4>(k4, a + i * lda, lda, bj, i, j + c, e);
      const uint8_t* ai = a + i * lda;
      switch (m - i) {
        case 3: tile<3>(k4, ai, lda, bj, i, j + c, e); break;
        case 2: tile<2>(k4, ai, lda, bj, i, j + c, e); break;
        case 1: tile<1>(k4, ai, lda, bj, i, j + c, e); break;
        default: break;
      }
    }
}

// qrnn_quantize_portable on 8 lanes (the AVX-512 path's quantize at half width; an operand
// holding a NaN goes to qrnn_quantize_nan); the last cols % 8 values of each row go through
// the portable steps.
void quantize(const float* src, int64_t rows, int64_t cols, int64_t ld, uint8_t* dst,
              int64_t lda, int32_t* rowsum, QParams& p, int64_t span) {
  const int64_t full = cols - cols % 8;
  __m256 vlo = _mm256_setzero_ps(), vhi = _mm256_setzero_ps(), vnan = _mm256_setzero_ps();
  float lo = 0.0f, hi = 0.0f;
  bool nan = false;
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = src + r * ld;
    for (int64_t j = 0; j < full; j += 8) {
      const __m256 v = _mm256_loadu_ps(s + j);
      vlo = _mm256_min_ps(v, vlo);
      vhi = _mm256_max_ps(v, vhi);
      vnan = _mm256_or_ps(vnan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    }
    for (int64_t j = full; j < cols; ++j) qrnn_range1(s[j], lo, hi), nan |= s[j] != s[j];
  }
  if (nan || _mm256_movemask_ps(vnan) != 0)
    return qrnn_quantize_nan(src, rows, cols, ld, dst, lda, rowsum, p, span);
  alignas(32) float l[8], h[8];
  _mm256_store_ps(l, vlo);
  _mm256_store_ps(h, vhi);
  for (int i = 0; i < 8; ++i) qrnn_range1(l[i], lo, hi), qrnn_range1(h[i], lo, hi);
  qrnn_qparams(lo, hi, p);
  const float flo = float(-p.zero_point), fhi = float(255 - p.zero_point);
  const __m256 sc = _mm256_set1_ps(p.scale), qlo = _mm256_set1_ps(flo), qhi = _mm256_set1_ps(fhi);
  const __m256i zp = _mm256_set1_epi32(p.zero_point);
  // low byte of each int32 lane, in order
  const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                        -1, 0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                        -1, -1);
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = src + r * ld;
    uint8_t* d = dst + r * lda;
    __m256i sum = _mm256_setzero_si256();
    for (int64_t j = 0; j < full; j += 8) {
      __m256 v = _mm256_div_ps(_mm256_loadu_ps(s + j), sc);
      v = _mm256_min_ps(_mm256_max_ps(v, qlo), qhi);
      // vcvtps2dq rounds half to even (MXCSR's default)
      const __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(v), zp);
      sum = _mm256_add_epi32(sum, q);
      const __m256i b = _mm256_shuffle_epi8(q, pick);
      const uint32_t lo4 = uint32_t(_mm256_extract_epi32(b, 0));
      const uint32_t hi4 = uint32_t(_mm256_extract_epi32(b, 4));
      std::memcpy(d + j, &lo4, 4);
      std::memcpy(d + j + 4, &hi4, 4);
    }
    alignas(32) int32_t t[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(t), sum);
    int32_t total = 0;
    for (int i = 0; i < 8; ++i) total += t[i];
    for (int64_t j = full; j < cols; ++j) {
      const int32_t q = qrnn_quant1(s[j], p.scale, flo, fhi, p.zero_point);
      d[j] = uint8_t(q);
      total += q;
    }
    rowsum[r] = total;
  }
}

}  // namespace

const QRnnKernels kQRnnAvx2 = {"avx2", &qgemm, &quantize};

}  // namespace lowp
