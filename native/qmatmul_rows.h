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

inline void qmatmul_rows(const QMatMulArgs& q, int64_t r0, int64_t r1) {
  const int64_t k = q.k, n = q.n;
  const float lo = float(q.qmin - q.y_zp), hi = float(q.qmax - q.y_zp), magic = 12582912.0f;
  auto value = [](const uint8_t* p, int64_t i, bool is_signed) {
    return is_signed ? int32_t(int8_t(p[i])) : int32_t(p[i]);
  };
  std::vector<float> bf(static_cast<size_t>(k * n)), acc(static_cast<size_t>(n));
  int64_t converted = -1;  // the batch entry whose b is in bf
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t bi = r / q.m, i = r % q.m;
    if (bi != converted) {
      const uint8_t* bm = q.b + q.b_offsets[bi];
      for (int64_t t = 0; t < k * n; ++t) bf[size_t(t)] = float(value(bm, t, q.b_signed) - q.b_zp);
      converted = bi;
    }
    const uint8_t* arow = q.a + q.a_offsets[bi] + i * k;
    float* ac = acc.data();
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (int64_t p = 0; p < k; ++p) {
      const float av = float(value(arow, p, q.a_signed) - q.a_zp);
      const float* brow = bf.data() + p * n;
      for (int64_t j = 0; j < n; ++j) ac[j] += av * brow[j];
    }
    uint8_t* yrow = q.y + r * n;
    for (int64_t j = 0; j < n; ++j) {
      float v = ac[j] * q.scale;
      v = v < lo ? lo : (v > hi ? hi : v);
      const int32_t iv = int32_t((v + magic) - magic) + q.y_zp;
      yrow[j] = q.y_signed ? uint8_t(int8_t(iv)) : uint8_t(iv);
    }
  }
}

}  // namespace
}  // namespace lowp
