// Kernels of the quantized recurrence (qrecurrent.h) on 512-bit VNNI (vpdpbusd: u8 x s8,
// four products summed into each int32 lane, wrapping), scaled in registers, and the
// dynamic quantization on 16 lanes: the "avx512vnni" and "amx" paths.
#include <immintrin.h>

#include <cstring>

#include "qrecurrent.h"
#include "qrecurrent_quant.h"

namespace lowp {
namespace {

// MR rows x NP vectors (16 NP columns: NP / 4 panels) of sums in registers over all of K,
// stored to acc (MR x 16 NP). Written so that GCC 12 keeps every accumulator in its own
// register for the whole loop: the B and A pointers advance (no addresses recomputed from
// kk), the broadcasts come before the products, every loop over MR or NP is unrolled
// explicitly, and the scaling is another function (not inlined). Otherwise GCC copies all
// accumulators through other registers on every k group (2 moves per vpdpbusd).
template <int MR, int NP>
__attribute__((noinline)) void sums(int k4, const uint8_t* a, int64_t lda, const int8_t* b,
                                    int64_t panel, int32_t* acc) {
  static_assert(NP % 4 == 0 && NP <= 8, "one or two panels");
  __m512i c[MR][NP];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int p = 0; p < NP; ++p) c[r][p] = _mm512_setzero_si512();
  const int8_t* b0 = b;
  const int8_t* b1 = b + (NP > 4 ? panel : 0);
  for (int kk = 0; kk < k4; ++kk) {
    __m512i bv[NP];
#pragma GCC unroll 8
    for (int p = 0; p < NP; ++p) bv[p] = _mm512_loadu_si512((p < 4 ? b0 : b1) + (p % 4) * 64);
    b0 += 4 * kQPanel;
    b1 += 4 * kQPanel;
    __m512i av[MR];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      int32_t quad;
      std::memcpy(&quad, a + r * lda, 4);
      av[r] = _mm512_set1_epi32(quad);
    }
    a += 4;
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
      for (int p = 0; p < NP; ++p) c[r][p] = _mm512_dpbusd_epi32(c[r][p], av[r], bv[p]);
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int p = 0; p < NP; ++p) _mm512_store_si512(acc + r * NP * 16 + p * 16, c[r][p]);
}

// One tile's sums (above), scaled into e.out (rows row0.., columns col0..) while in L1:
// qrnn_scale_block's steps on 16 lanes (vcvtdq2ps rounds to nearest even as the scalar
// conversion; a product, then a sum).
template <int MR, int NP>
void tile(int k4, const uint8_t* a, int64_t lda, const int8_t* b, int64_t panel, int64_t row0,
          int64_t col0, const QScale& e) {
  alignas(64) int32_t acc[MR * NP * 16];
  sums<MR, NP>(k4, a, lda, b, panel, acc);
  const __m512i za = _mm512_set1_epi32(int32_t(e.za));
  for (int r = 0; r < MR; ++r) {
    const __m512i br = _mm512_set1_epi32(int32_t(e.base[row0 + r]));
    float* o = e.out[row0 + r] + col0;
#pragma GCC unroll 8
    for (int p = 0; p < NP; ++p) {
      const __m512i zc = _mm512_mullo_epi32(za, _mm512_loadu_si512(e.colsum + col0 + p * 16));
      const __m512i v = _mm512_add_epi32(
          _mm512_sub_epi32(_mm512_load_si512(acc + r * NP * 16 + p * 16), zc), br);
      __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(v), _mm512_loadu_ps(e.mult + col0 + p * 16));
      if (e.add) f = _mm512_add_ps(f, _mm512_loadu_ps(o + p * 16));
      _mm512_storeu_ps(o + p * 16, f);
    }
  }
}

// The rows of one block of NB panels (1 or 2), four at a time (16 accumulators), then the
// 1 to 3 left over (the recurrence's batch of 1 or 2 rows across the whole block: two
// panels keep more loads in flight; 3 rows panel by panel, within the 32 registers).
// Columns outside, rows inside: a block of B stays in cache while the rows of a long input
// projection stream past it.
template <int NB>
void column_block(int m, int k4, const uint8_t* a, int64_t lda, const int8_t* b, int64_t panel,
                  int64_t col0, const QScale& e) {
  int i = 0;
  for (; i + 4 <= m; i += 4)
    for (int p = 0; p < NB; ++p)
      tile<4, 4>(k4, a + i * lda, lda, b + p * panel, panel, i, col0 + p * kQPanel, e);
  const uint8_t* ai = a + i * lda;
  switch (m - i) {
    case 3:
      for (int p = 0; p < NB; ++p)
        tile<3, 4>(k4, ai, lda, b + p * panel, panel, i, col0 + p * kQPanel, e);
      break;
    case 2: tile<2, 4 * NB>(k4, ai, lda, b, panel, i, col0, e); break;
    case 1: tile<1, 4 * NB>(k4, ai, lda, b, panel, i, col0, e); break;
    default: break;
  }
}

void qgemm(int m, int n, int k4, const uint8_t* a, int64_t lda, const int8_t* b,
           const QScale& e) {
  const int64_t panel = int64_t(k4) * 4 * kQPanel;
  const int pairs = n / (2 * kQPanel), blocks = pairs + (n % (2 * kQPanel) ? 1 : 0);
  for (int s = 0; s < blocks; ++s) {
    const int blk = e.backward ? blocks - 1 - s : s;
    const int j = blk * 2 * kQPanel;
    if (blk < pairs)
      column_block<2>(m, k4, a, lda, b + int64_t(j / kQPanel) * panel, panel, j, e);
    else
      column_block<1>(m, k4, a, lda, b + int64_t(j / kQPanel) * panel, panel, j, e);
  }
}

// qrnn_quantize_portable on 16 lanes: the lanes' running bounds (vminps / vmaxps keep the
// bound unless the value is strictly beyond it, as qrnn_range1; an operand holding a NaN
// goes to qrnn_quantize_nan), then vdivps, the clamps,
// vcvtps2dq rounding half to even (MXCSR's default; |v| <= 255), the zero point, and the
// row sums in int32 lanes; the last partial vector masked.
void quantize(const float* src, int64_t rows, int64_t cols, int64_t ld, uint8_t* dst,
              int64_t lda, int32_t* rowsum, QParams& p, int64_t span) {
  __m512 vlo = _mm512_setzero_ps(), vhi = _mm512_setzero_ps();
  const __mmask16 tail = __mmask16((1u << (cols % 16)) - 1);
  const int64_t full = cols - cols % 16;
  __mmask16 nan = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = src + r * ld;
    for (int64_t j = 0; j < full; j += 16) {
      const __m512 v = _mm512_loadu_ps(s + j);
      vlo = _mm512_min_ps(v, vlo);
      vhi = _mm512_max_ps(v, vhi);
      nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    }
    if (tail) {
      const __m512 v = _mm512_maskz_loadu_ps(tail, s + full);  // 0 in the masked lanes
      vlo = _mm512_min_ps(v, vlo);
      vhi = _mm512_max_ps(v, vhi);
      nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    }
  }
  if (nan) return qrnn_quantize_nan(src, rows, cols, ld, dst, lda, rowsum, p, span);
  alignas(64) float l[16], h[16];
  _mm512_store_ps(l, vlo);
  _mm512_store_ps(h, vhi);
  float lo = 0.0f, hi = 0.0f;
  for (int i = 0; i < 16; ++i) qrnn_range1(l[i], lo, hi), qrnn_range1(h[i], lo, hi);
  qrnn_qparams(lo, hi, p);
  const __m512 sc = _mm512_set1_ps(p.scale);
  const __m512 qlo = _mm512_set1_ps(float(-p.zero_point));
  const __m512 qhi = _mm512_set1_ps(float(255 - p.zero_point));
  const __m512i zp = _mm512_set1_epi32(p.zero_point);
  auto one = [&](__m512 v) {
    v = _mm512_div_ps(v, sc);
    v = _mm512_max_ps(v, qlo);  // v < qlo ? qlo : v
    v = _mm512_min_ps(v, qhi);  // v > qhi ? qhi : v
    return _mm512_add_epi32(
        _mm512_cvt_roundps_epi32(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), zp);
  };
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = src + r * ld;
    uint8_t* d = dst + r * lda;
    __m512i sum = _mm512_setzero_si512();
    for (int64_t j = 0; j < full; j += 16) {
      const __m512i q = one(_mm512_loadu_ps(s + j));
      sum = _mm512_add_epi32(sum, q);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(d + j), _mm512_cvtepi32_epi8(q));
    }
    if (tail) {
      const __m512i q = _mm512_maskz_mov_epi32(tail, one(_mm512_maskz_loadu_ps(tail, s + full)));
      sum = _mm512_add_epi32(sum, q);
      _mm_mask_storeu_epi8(d + full, tail, _mm512_cvtepi32_epi8(q));
    }
    rowsum[r] = _mm512_reduce_add_epi32(sum);
  }
}

}  // namespace

const QRnnKernels kQRnnAvx512Vnni = {"avx512vnni", &qgemm, &quantize};

}  // namespace lowp
