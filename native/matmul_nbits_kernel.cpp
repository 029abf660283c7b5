// The MatMulNBits kernel of matmul_nbits.h for one path (LOWP_NBITS_NAME): compiled once per
// instruction set with the same source; -ffp-contract=off keeps every float step apart.
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "matmul_nbits.h"

namespace lowp {

namespace {

constexpr int kBlock = 32;

// Step 1 of lowp.ops.matmul_nbits: the codes of one block of x (n valid values, zero padded)
// and its scale amax / 127; a NaN product x * (127 / amax) is code -128.
inline float quantize_block(const float* x, int64_t n, int8_t* q) {
  float a[kBlock];
  for (int i = 0; i < kBlock; ++i) a[i] = i < n ? x[i] : 0.0f;
  float amax = 0.0f;
  bool nan = false;
  for (int i = 0; i < kBlock; ++i) {
    const float v = std::fabs(a[i]);
    nan |= v != v;
    amax = v > amax ? v : amax;
  }
  if (nan) amax = std::numeric_limits<float>::quiet_NaN();
  const float inverse = amax != 0.0f ? 127.0f / amax : 0.0f;
  for (int i = 0; i < kBlock; ++i) {
    const float v = a[i] * inverse;
    int c;
    if (v != v) {
      c = -128;
    } else {
      const float r = std::nearbyint(v);
      c = r <= -128.0f ? -128 : r >= 127.0f ? 127 : int(r);
    }
    q[i] = int8_t(c);
  }
  return amax / 127.0f;
}

}  // namespace

void LOWP_NBITS_NAME(const NBitsArgs& a, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const int64_t blocks = a.blocks, k = a.k, whole = blocks / 4 * 4, tail = a.n / 4 * 4;
  std::vector<int8_t> q(size_t(blocks * kBlock));
  std::vector<float> sa(static_cast<size_t>(blocks)), ablk(sa.size()), sab(sa.size());
  std::vector<int32_t> g(size_t(blocks * 8));
  for (int64_t r = m0; r < m1; ++r) {
    const float* x = a.x + r * k;
    for (int64_t b = 0; b < blocks; ++b) {
      int8_t* qb = q.data() + b * kBlock;
      sa[size_t(b)] = quantize_block(x + b * kBlock, k - b * kBlock, qb);
      int32_t sum = 0;
      for (int i = 0; i < kBlock; ++i) sum += qb[i];
      ablk[size_t(b)] = sa[size_t(b)] * float(sum);                       // AScaledBlkSum
    }
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
      for (int64_t b = 0; b < blocks; ++b) z = std::fma(ablk[size_t(b)], bb[b], z);
      a.y[r * a.n + c] = v + z;
    }
  }
}

}  // namespace lowp
