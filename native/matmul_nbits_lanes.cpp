// The MatMulNBits kernel of matmul_nbits.h for blocks of 16, 64 and 128 on one path
// (LOWP_NBITS_LANES_NAME): compiled once per instruction set with the same source;
// -ffp-contract=off keeps every float step apart. The integer lane sums are exact, so any
// vectorization of them gives the same values; the float steps are those of
// lowp.ops.matmul_nbits.PackedNBits._rows_lanes, one IEEE operation each.
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

// Every block of one row: codes q (blocks x B), scales sa and AScaledBlkSum ablk.
template <int B>
void quantize_row(const float* x, int64_t k, int64_t blocks, int8_t* q, float* sa,
                  float* ablk) {
  for (int64_t b = 0; b < blocks; ++b) {
    int8_t* qb = q + b * B;
    sa[b] = nbits_quantize_block<B>(x + b * B, k - b * B, qb);
    int32_t sum = 0;
    for (int i = 0; i < B; ++i) sum += qb[i];
    ablk[b] = sa[b] * float(sum);
  }
}

// 16 lanes to one value: hsum_float_16 (lanes i + i + 8, then i + 4 + i, i + i + 2, 0 + 1)
inline float hsum16(const float* l) {
  float h[8];
  for (int i = 0; i < 8; ++i) h[i] = l[i] + l[i + 8];
  const float h0 = h[4] + h[0], h1 = h[5] + h[1], h2 = h[6] + h[2], h3 = h[7] + h[3];
  return (h0 + h2) + (h1 + h3);
}

// FoldAccumulators of 16 lanes: ((l0 + l1) + l2) + l3 in each 128-bit chunk, then
// (c0 + c2) + (c1 + c3)
inline float fold16(const float* l) {
  float c[4];
  for (int i = 0; i < 4; ++i) c[i] = ((l[4 * i] + l[4 * i + 1]) + l[4 * i + 2]) + l[4 * i + 3];
  return (c[0] + c[2]) + (c[1] + c[3]);
}

}  // namespace

void LOWP_NBITS_LANES_NAME(const NBitsArgs& a, int64_t m0, int64_t m1, int64_t n0,
                           int64_t n1) {
  const int64_t B = a.block, blocks = a.blocks, k = a.k, n = a.n, tail = n / 4 * 4;
  const int64_t groups = a.groups, rem = a.rem, rl = a.rem_lanes, per = B / rl;
  const int64_t gsize = a.group * B, first_rem = groups * a.group;
  std::vector<int8_t> q(size_t(blocks * B)), qg(size_t(groups * 128));
  std::vector<float> sa(static_cast<size_t>(blocks)), ablk(sa.size());
  for (int64_t r = m0; r < m1; ++r) {
    const float* x = a.x + r * k;
    if (B == 16) quantize_row<16>(x, k, blocks, q.data(), sa.data(), ablk.data());
    else if (B == 64) quantize_row<64>(x, k, blocks, q.data(), sa.data(), ablk.data());
    else quantize_row<128>(x, k, blocks, q.data(), sa.data(), ablk.data());
    for (int64_t g = 0; g < groups; ++g)
      for (int64_t t = 0; t < 128; ++t) qg[size_t(g * 128 + t)] = q[size_t(g * gsize + a.perm[t])];
    // the last row of an odd M folds as a row alone; the others in pairs
    const bool alone = (a.m % 2) && r == a.m - 1;
    for (int64_t c = n0; c < n1; ++c) {
      const uint8_t* wl = a.w_lanes + c * groups * 128;
      const uint8_t* wr = a.w_rem + c * rem * B;
      const float* sb = a.scale + c * blocks;
      float acc[16] = {};
      for (int64_t g = 0; g < groups; ++g) {
        const int8_t* qq = qg.data() + g * 128;
        const uint8_t* ww = wl + g * 128;
        int32_t s[16];
        for (int l = 0; l < 16; ++l) {
          int32_t v = 0;
          for (int t = 0; t < 8; ++t) v += int32_t(qq[l * 8 + t]) * int32_t(ww[l * 8 + t]);
          s[l] = v;
        }
        for (int l = 0; l < 16; ++l) {
          const int64_t b = g * a.group + a.lane_block[l];
          acc[l] = std::fma(float(s[l]), sa[size_t(b)] * sb[b], acc[l]);
        }
      }
      float v;
      if (rl == 8) {
        float l8[8];
        for (int j = 0; j < 8; ++j) l8[j] = acc[j] + acc[j + 8];
        for (int64_t i = 0; i < rem; ++i) {
          const int64_t b = first_rem + i;
          const int8_t* qq = q.data() + b * B;
          const uint8_t* ww = wr + i * B;
          const float sab = sa[size_t(b)] * sb[b];
          for (int j = 0; j < 8; ++j) {
            int32_t s = 0;
            for (int64_t t = 0; t < per; ++t)
              s += int32_t(qq[j * per + t]) * int32_t(ww[j * per + t]);
            l8[j] = std::fma(float(s), sab, l8[j]);
          }
        }
        if (c < tail) {
          v = (((l8[0] + l8[1]) + l8[2]) + l8[3]) + (((l8[4] + l8[5]) + l8[6]) + l8[7]);
        } else {
          const float r0 = l8[4] + l8[0], r1 = l8[5] + l8[1], r2 = l8[6] + l8[2],
                      r3 = l8[7] + l8[3];
          v = (r0 + r2) + (r1 + r3);
        }
      } else {
        for (int64_t i = 0; i < rem; ++i) {
          const int64_t b = first_rem + i;
          const int8_t* qq = q.data() + b * B;
          const uint8_t* ww = wr + i * B;
          const float sab = sa[size_t(b)] * sb[b];
          for (int j = 0; j < 16; ++j) {
            int32_t s = 0;
            for (int64_t t = 0; t < per; ++t)
              s += int32_t(qq[j * per + t]) * int32_t(ww[j * per + t]);
            acc[j] = std::fma(float(s), sab, acc[j]);
          }
        }
        v = c < tail && (alone || a.pair_fold16) ? fold16(acc) : hsum16(acc);
      }
      if (a.bias) v = v + a.bias[c];
      const float* bb = a.bblk + c * blocks;
      float z = 0.0f;
      for (int64_t b = 0; b < blocks; ++b) z = nbits_zero_term_fma(ablk[size_t(b)], bb[b], z);
      a.y[r * n + c] = nbits_zero_term_add(z, v);
    }
  }
}

#if defined(__AVX512VNNI__)
// The same steps for 16 columns at once: each lane's integer sum by vpdpbusd of the 16
// columns' weight quads with the row's code quad (exact), every float step a vector of the
// 16 columns' own steps in the same order, so the same bits.
void nbits_lanes_panels_avx512(const NBitsArgs& a, int64_t m0, int64_t m1, int64_t p0,
                               int64_t p1) {
  const int64_t B = a.block, blocks = a.blocks, k = a.k, n = a.n, tail = n / 4 * 4;
  const int64_t groups = a.groups, rem = a.rem, rl = a.rem_lanes, per = B / rl;
  const int64_t gsize = a.group * B, first_rem = groups * a.group;
  std::vector<int8_t> q(size_t(blocks * B)), qg(size_t(groups * 128));
  std::vector<int32_t> qr(size_t(rem * rl));
  std::vector<float> sa(static_cast<size_t>(blocks)), ablk(sa.size());
  const __m512 zero = _mm512_setzero_ps();
  const __m512i col = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int64_t r = m0; r < m1; ++r) {
    const float* x = a.x + r * k;
    if (B == 16) quantize_row<16>(x, k, blocks, q.data(), sa.data(), ablk.data());
    else if (B == 64) quantize_row<64>(x, k, blocks, q.data(), sa.data(), ablk.data());
    else quantize_row<128>(x, k, blocks, q.data(), sa.data(), ablk.data());
    for (int64_t g = 0; g < groups; ++g)
      for (int64_t t = 0; t < 128; ++t) qg[size_t(g * 128 + t)] = q[size_t(g * gsize + a.perm[t])];
    for (int64_t i = 0; i < rem * rl; ++i) {  // each remainder lane's codes, a quad
      int8_t quad[4] = {0, 0, 0, 0};
      std::memcpy(quad, q.data() + first_rem * B + i * per, size_t(per));
      std::memcpy(&qr[size_t(i)], quad, 4);
    }
    const bool alone = (a.m % 2) && r == a.m - 1;
    for (int64_t p = p0; p < p1; ++p) {
      const uint8_t* wl = a.wp_lanes + p * groups * 16 * 2 * 64;
      const uint8_t* wr = a.wp_rem + p * rem * rl * 64;
      const float* sb = a.scale_p + p * blocks * 16;
      const float* bb = a.bblk_p + p * blocks * 16;
      auto sab = [&](int64_t b) {
        return _mm512_mul_ps(_mm512_set1_ps(sa[size_t(b)]), _mm512_loadu_ps(sb + b * 16));
      };
      __m512 acc[16];
      for (int l = 0; l < 16; ++l) acc[l] = zero;
      for (int64_t g = 0; g < groups; ++g) {
        const uint8_t* wg = wl + g * 16 * 2 * 64;
        __m512 sabs[8];  // the group's blocks (at most 8)
        for (int64_t o = 0; o < a.group; ++o) sabs[o] = sab(g * a.group + o);
        for (int l = 0; l < 16; ++l) {
          int32_t q0, q1;
          std::memcpy(&q0, qg.data() + g * 128 + l * 8, 4);
          std::memcpy(&q1, qg.data() + g * 128 + l * 8 + 4, 4);
          __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(),
                                          _mm512_loadu_si512(wg + l * 128), _mm512_set1_epi32(q0));
          s = _mm512_dpbusd_epi32(s, _mm512_loadu_si512(wg + l * 128 + 64), _mm512_set1_epi32(q1));
          acc[l] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), sabs[a.lane_block[l]], acc[l]);
        }
      }
      const __m512i c = _mm512_add_epi32(_mm512_set1_epi32(int32_t(p * 16)), col);
      const __mmask16 folded = _mm512_cmplt_epi32_mask(c, _mm512_set1_epi32(int32_t(tail)));
      const __mmask16 valid = _mm512_cmplt_epi32_mask(c, _mm512_set1_epi32(int32_t(n)));
      __m512 v;
      if (rl == 8) {
        __m512 l8[8];
        for (int j = 0; j < 8; ++j) l8[j] = _mm512_add_ps(acc[j], acc[j + 8]);
        for (int64_t i = 0; i < rem; ++i) {
          const __m512 s_ab = sab(first_rem + i);
          for (int j = 0; j < 8; ++j) {
            const __m512i s = _mm512_dpbusd_epi32(
                _mm512_setzero_si512(), _mm512_loadu_si512(wr + (i * 8 + j) * 64),
                _mm512_set1_epi32(qr[size_t(i * 8 + j)]));
            l8[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), s_ab, l8[j]);
          }
        }
        const __m512 lo =
            _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(l8[0], l8[1]), l8[2]), l8[3]);
        const __m512 hi =
            _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(l8[4], l8[5]), l8[6]), l8[7]);
        const __m512 r0 = _mm512_add_ps(l8[4], l8[0]), r1 = _mm512_add_ps(l8[5], l8[1]);
        const __m512 r2 = _mm512_add_ps(l8[6], l8[2]), r3 = _mm512_add_ps(l8[7], l8[3]);
        const __m512 vh = _mm512_add_ps(_mm512_add_ps(r0, r2), _mm512_add_ps(r1, r3));
        v = _mm512_mask_blend_ps(folded, vh, _mm512_add_ps(lo, hi));
      } else {
        for (int64_t i = 0; i < rem; ++i) {
          const __m512 s_ab = sab(first_rem + i);
          for (int j = 0; j < 16; ++j) {
            const __m512i s = _mm512_dpbusd_epi32(
                _mm512_setzero_si512(), _mm512_loadu_si512(wr + (i * 16 + j) * 64),
                _mm512_set1_epi32(qr[size_t(i * 16 + j)]));
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), s_ab, acc[j]);
          }
        }
        __m512 h[8], f[4];
        for (int i = 0; i < 8; ++i) h[i] = _mm512_add_ps(acc[i], acc[i + 8]);
        const __m512 h0 = _mm512_add_ps(h[4], h[0]), h1 = _mm512_add_ps(h[5], h[1]);
        const __m512 h2 = _mm512_add_ps(h[6], h[2]), h3 = _mm512_add_ps(h[7], h[3]);
        const __m512 vh = _mm512_add_ps(_mm512_add_ps(h0, h2), _mm512_add_ps(h1, h3));
        for (int i = 0; i < 4; ++i)
          f[i] = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(acc[4 * i], acc[4 * i + 1]),
                                             acc[4 * i + 2]), acc[4 * i + 3]);
        const __m512 vf = _mm512_add_ps(_mm512_add_ps(f[0], f[2]), _mm512_add_ps(f[1], f[3]));
        v = (alone || a.pair_fold16) ? _mm512_mask_blend_ps(folded, vh, vf) : vh;
      }
      if (a.bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(valid, a.bias + p * 16));
      nbits_zero_term_store16(ablk.data(), bb, blocks, v, valid, a.y + r * n + p * 16);
    }
  }
}
#endif

}  // namespace lowp
