// Microkernel: rows [r0, r1) of the quantized product of two 8-bit activations (see
// QMatMulArgs in common.h), included by lut.cpp (baseline ISA) and lut_vbmi.cpp (AVX-512),
// each compiling its own copy. Sums in float32: every product and partial sum is an integer
// below 2^24 (the caller's bound), so they are exact and equal the int32 sums; rounding
// clamps first (integer bounds), then adds and subtracts 1.5 * 2^23 (half to even).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common.h"

namespace lowp {
namespace {

// Columns [j, j + W) of one output row: W accumulators that stay in registers while p runs
// over k (a loop over p with a short loop over the row inside pays its overhead per p: the
// attention products of small transformers have n = 16..64). The sums are exact integers, so
// this order gives the same values as any other.
template <int W>
inline void qmatmul_block(const float* bf, const float* af, int64_t k, int64_t n, float* out) {
  float acc[W] = {};
  for (int64_t p = 0; p < k; ++p) {
    const float av = af[p];
    const float* brow = bf + p * n;
    for (int jj = 0; jj < W; ++jj) acc[jj] += av * brow[jj];
  }
  for (int jj = 0; jj < W; ++jj) out[jj] = acc[jj];
}

// Four rows at once: four chains of additions (one row's chain waits on the adder).
template <int W>
inline void qmatmul_block4(const float* bf, const float* af, int64_t k, int64_t n, float* out) {
  float c0[W] = {}, c1[W] = {}, c2[W] = {}, c3[W] = {};
  const float *a0 = af, *a1 = af + k, *a2 = af + 2 * k, *a3 = af + 3 * k;
  for (int64_t p = 0; p < k; ++p) {
    const float* brow = bf + p * n;
    const float v0 = a0[p], v1 = a1[p], v2 = a2[p], v3 = a3[p];
    for (int jj = 0; jj < W; ++jj) {
      const float b = brow[jj];
      c0[jj] += v0 * b;
      c1[jj] += v1 * b;
      c2[jj] += v2 * b;
      c3[jj] += v3 * b;
    }
  }
  for (int jj = 0; jj < W; ++jj) {
    out[jj] = c0[jj];
    out[n + jj] = c1[jj];
    out[2 * n + jj] = c2[jj];
    out[3 * n + jj] = c3[jj];
  }
}

// Rows [r0, r1); with FOUR, four rows of one batch entry at a time where there are (the
// AVX-512 copy: 4 x 16 accumulators in registers; the baseline copy has too few).
template <bool FOUR = false>
inline void qmatmul_rows(const QMatMulArgs& q, int64_t r0, int64_t r1) {
  const int64_t k = q.k, n = q.n;
  const float lo = float(q.qmin - q.y_zp), hi = float(q.qmax - q.y_zp), magic = 12582912.0f;
  auto value = [](const uint8_t* p, int64_t i, bool is_signed) {
    return is_signed ? int32_t(int8_t(p[i])) : int32_t(p[i]);
  };
  std::vector<float> bf(static_cast<size_t>(k * n)), acc(static_cast<size_t>(4 * n)),
      af(static_cast<size_t>(4 * k));
  int64_t converted = -1;  // the batch entry whose b is in bf
  for (int64_t r = r0; r < r1;) {
    const int64_t bi = r / q.m, i = r % q.m;
    const int64_t rows = FOUR && r1 - r >= 4 && q.m - i >= 4 ? 4 : 1;
    if (bi != converted) {
      const uint8_t* bm = q.b + q.b_offsets[bi];
      for (int64_t t = 0; t < k * n; ++t) bf[size_t(t)] = float(value(bm, t, q.b_signed) - q.b_zp);
      converted = bi;
    }
    for (int64_t rr = 0; rr < rows; ++rr) {
      const uint8_t* arow = q.a + q.a_offsets[bi] + (i + rr) * k;
      for (int64_t p = 0; p < k; ++p)
        af[size_t(rr * k + p)] = float(value(arow, p, q.a_signed) - q.a_zp);
    }
    float* ac = acc.data();
    int64_t j = 0;
    if (rows == 4) {
      for (; j + 16 <= n; j += 16) qmatmul_block4<16>(bf.data() + j, af.data(), k, n, ac + j);
      for (; j + 8 <= n; j += 8) qmatmul_block4<8>(bf.data() + j, af.data(), k, n, ac + j);
      for (; j < n; ++j) qmatmul_block4<1>(bf.data() + j, af.data(), k, n, ac + j);
    } else {
      for (; j + 32 <= n; j += 32) qmatmul_block<32>(bf.data() + j, af.data(), k, n, ac + j);
      for (; j + 16 <= n; j += 16) qmatmul_block<16>(bf.data() + j, af.data(), k, n, ac + j);
      for (; j + 8 <= n; j += 8) qmatmul_block<8>(bf.data() + j, af.data(), k, n, ac + j);
      for (; j < n; ++j) qmatmul_block<1>(bf.data() + j, af.data(), k, n, ac + j);
    }
    for (int64_t rr = 0; rr < rows; ++rr) {
      uint8_t* yrow = q.y + (r + rr) * n;
      const float* sums = ac + rr * n;
      for (int64_t jj = 0; jj < n; ++jj) {
        float v = sums[jj] * q.scale;
        v = v < lo ? lo : (v > hi ? hi : v);
        const int32_t iv = int32_t((v + magic) - magic) + q.y_zp;
        yrow[jj] = q.y_signed ? uint8_t(int8_t(iv)) : uint8_t(iv);
      }
    }
    r += rows;
  }
}

}  // namespace
}  // namespace lowp
