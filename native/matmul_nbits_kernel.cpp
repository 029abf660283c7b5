// The MatMulNBits kernel of matmul_nbits.h for one path (LOWP_NBITS_NAME): compiled once per
// instruction set with the same source; -ffp-contract=off keeps every float step apart.
#include <cmath>
#include <cstring>
#include <vector>

#include "matmul_nbits.h"
#include "matmul_nbits_quant.h"

#if defined(__AVX512VNNI__)
#include <immintrin.h>
#endif

namespace lowp {

namespace {

constexpr int kBlock = 32;

// Every block of one row: codes q (blocks x 32), scales sa and AScaledBlkSum ablk.
inline void quantize_row(const float* x, int64_t k, int64_t blocks, int8_t* q, float* sa,
                         float* ablk) {
  for (int64_t b = 0; b < blocks; ++b) {
    int8_t* qb = q + b * kBlock;
    sa[b] = nbits_quantize_block<kBlock>(x + b * kBlock, k - b * kBlock, qb);
    int32_t sum = 0;
    for (int i = 0; i < kBlock; ++i) sum += qb[i];
    ablk[b] = sa[b] * float(sum);
  }
}

}  // namespace

void LOWP_NBITS_NAME(const NBitsArgs& a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const int64_t blocks = a.blocks, k = a.k, whole = blocks / 4 * 4, tail = a.n / 4 * 4;
  std::vector<int8_t> q(size_t(blocks * kBlock));
  std::vector<float> sa(static_cast<size_t>(blocks)), ablk(sa.size()), sab(sa.size());
  std::vector<int32_t> g(size_t(blocks * 8));
  for (int64_t r = m0; r < m1; ++r) {
    const float* x = a.x + r * k;
    quantize_row(x, k, blocks, q.data(), sa.data(), ablk.data());
    for (int64_t c = n0; c < n1; ++c) {
      const uint8_t* w = a.w + c * blocks * kBlock;
      const float* sb = a.scale + c * blocks;
      // step 2: g[b, j] = sum of 4 products (exact)
      for (int64_t t = 0; t < blocks * 8; ++t) {
        const int8_t* qq = q.data() + t * 4;
        const uint8_t* ww = w + t * 4;
        g[size_t(t)] = int32_t(qq[0]) * ww[0] + int32_t(qq[1]) * ww[1] +
                       int32_t(qq[2]) * ww[2] + int32_t(qq[3]) * ww[3];
      }
      for (int64_t b = 0; b < blocks; ++b) sab[size_t(b)] = sa[size_t(b)] * sb[b];
      // step 3: groups of four blocks in 16 lanes (lane 4 c + i: block c / 2 + 2 (i / 2),
      // pair j, j + 2 with j = 4 (c % 2) + i % 2), then the rest in 8
      float acc16[16] = {};
      for (int64_t b0 = 0; b0 < whole; b0 += 4) {
        for (int l = 0; l < 16; ++l) {
          const int cc = l / 4, i = l % 4;
          const int64_t b = b0 + cc / 2 + 2 * (i / 2);
          const int j = 4 * (cc % 2) + i % 2;
          const float s = float(g[size_t(b * 8 + j)] + g[size_t(b * 8 + j + 2)]);
          acc16[l] = std::fma(s, sab[size_t(b)], acc16[l]);
        }
      }
      float l8[8];
      for (int j = 0; j < 8; ++j) l8[j] = acc16[j] + acc16[j + 8];
      for (int64_t b = whole; b < blocks; ++b)
        for (int j = 0; j < 8; ++j)
          l8[j] = std::fma(float(g[size_t(b * 8 + j)]), sab[size_t(b)], l8[j]);
      // step 4
      float v;
      if (c < tail) {
        const float lo = ((l8[0] + l8[1]) + l8[2]) + l8[3];
        const float hi = ((l8[4] + l8[5]) + l8[6]) + l8[7];
        v = lo + hi;
      } else {
        const float r0 = l8[4] + l8[0], r1 = l8[5] + l8[1], r2 = l8[6] + l8[2],
                    r3 = l8[7] + l8[3];
        v = (r0 + r2) + (r1 + r3);
      }
      // step 5
      if (a.bias) v = v + a.bias[c];
      const float* bb = a.bblk + c * blocks;
      float z = 0.0f;
      for (int64_t b = 0; b < blocks; ++b) z = nbits_zero_term_fma(ablk[size_t(b)], bb[b], z);
      a.y[r * a.n + c] = nbits_zero_term_add(z, v);
    }
  }
}

#if defined(__AVX512VNNI__)
void nbits_panels_avx512(const NBitsArgs& a, int64_t m0, int64_t m1, int64_t p0, int64_t p1) {
  const int64_t blocks = a.blocks, k = a.k, n = a.n, whole = blocks / 4 * 4, tail = n / 4 * 4;
  std::vector<int8_t> q(size_t(blocks * kBlock));
  std::vector<float> sa(static_cast<size_t>(blocks)), ablk(sa.size());
  const __m512 zero = _mm512_setzero_ps();
  const __m512i col = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int64_t r = m0; r < m1; ++r) {
    quantize_row(a.x + r * k, k, blocks, q.data(), sa.data(), ablk.data());
    const int32_t* q4 = reinterpret_cast<const int32_t*>(q.data());  // 4 codes a group
    for (int64_t p = p0; p < p1; ++p) {
      const uint8_t* w = a.wp + p * blocks * 8 * 64;
      const float* sb = a.scale_p + p * blocks * 16;
      const float* bb = a.bblk_p + p * blocks * 16;
      // g[b, j] (+ g[b, j + 2]) of 16 columns: vpdpbusd of the 4 weight bytes of each
      // column with the row's 4 codes (exact integer sums)
      auto dot = [&](int64_t b, int j, __m512i acc) {
        int32_t qq;
        std::memcpy(&qq, q4 + b * 8 + j, 4);
        return _mm512_dpbusd_epi32(acc, _mm512_loadu_si512(w + (b * 8 + j) * 64),
                                   _mm512_set1_epi32(qq));
      };
      __m512 acc[16];
      for (int l = 0; l < 16; ++l) acc[l] = zero;
      for (int64_t b0 = 0; b0 < whole; b0 += 4) {
        for (int bo = 0; bo < 4; ++bo) {
          const int64_t b = b0 + bo;
          const __m512 sab = _mm512_mul_ps(_mm512_set1_ps(sa[size_t(b)]),
                                           _mm512_loadu_ps(sb + b * 16));
          // lanes of block b0 + bo: 8 (bo % 2) + 2 (bo / 2) + {0, 1, 4, 5} for j = 0, 1, 4, 5
          const int base = 8 * (bo % 2) + 2 * (bo / 2);
          const int js[4] = {0, 1, 4, 5};
          for (int t = 0; t < 4; ++t) {
            const int j = js[t];
            const __m512i s2 = dot(b, j + 2, dot(b, j, _mm512_setzero_si512()));
            acc[base + j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s2), sab, acc[base + j]);
          }
        }
      }
      __m512 l8[8];
      for (int j = 0; j < 8; ++j) l8[j] = _mm512_add_ps(acc[j], acc[j + 8]);
      for (int64_t b = whole; b < blocks; ++b) {
        const __m512 sab = _mm512_mul_ps(_mm512_set1_ps(sa[size_t(b)]),
                                         _mm512_loadu_ps(sb + b * 16));
        for (int j = 0; j < 8; ++j)
          l8[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot(b, j, _mm512_setzero_si512())), sab,
                                  l8[j]);
      }
      const __m512 lo = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(l8[0], l8[1]), l8[2]), l8[3]);
      const __m512 hi = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(l8[4], l8[5]), l8[6]), l8[7]);
      const __m512 v4 = _mm512_add_ps(lo, hi);
      const __m512 r0 = _mm512_add_ps(l8[4], l8[0]), r1 = _mm512_add_ps(l8[5], l8[1]);
      const __m512 r2 = _mm512_add_ps(l8[6], l8[2]), r3 = _mm512_add_ps(l8[7], l8[3]);
      const __m512 vh = _mm512_add_ps(_mm512_add_ps(r0, r2), _mm512_add_ps(r1, r3));
      const __m512i c = _mm512_add_epi32(_mm512_set1_epi32(int32_t(p * 16)), col);
      const __mmask16 folded = _mm512_cmplt_epi32_mask(c, _mm512_set1_epi32(int32_t(tail)));
      const __mmask16 valid = _mm512_cmplt_epi32_mask(c, _mm512_set1_epi32(int32_t(n)));
      __m512 v = _mm512_mask_blend_ps(folded, vh, v4);
      if (a.bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(valid, a.bias + p * 16));
      nbits_zero_term_store16(ablk.data(), bb, blocks, v, valid, a.y + r * n + p * 16);
    }
  }
}
#endif

}  // namespace lowp
