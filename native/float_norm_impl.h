// The LayerNormalization and SimplifiedLayerNormalization row kernels (float_norm.h),
// written once and compiled by float_norm_scalar.cpp, float_norm_avx2.cpp and
// float_norm_avx512.cpp with their own flags (std::fma is one rounding either way; with
// -mfma it is the instruction). Anonymous namespace: each translation unit keeps its own
// copy.
#pragma once

#include <cmath>
#include <cstdint>

#include "float_norm.h"

namespace lowp {
namespace {

// numpy's pairwise float64 sum (np.add.reduce over a contiguous axis): fewer than 8 values
// in order from -0.0; up to 128 in eight accumulators folded ((r0 + r1) + (r2 + r3)) +
// ((r4 + r5) + (r6 + r7)), the rest added in order; longer runs halved at a multiple of 8.
double pairwise_sum(const float* a, int64_t n) {
  if (n < 8) {
    double res = -0.0;
    for (int64_t i = 0; i < n; ++i) res += double(a[i]);
    return res;
  }
  if (n <= 128) {
    double r[8];
    for (int j = 0; j < 8; ++j) r[j] = double(a[j]);
    int64_t i = 8;
    for (; i < n - n % 8; i += 8)
      for (int j = 0; j < 8; ++j) r[j] += double(a[i + j]);
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += double(a[i]);
    return res;
  }
  int64_t n2 = n / 2;
  n2 -= n2 % 8;
  return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

// Sum of d[k]^2 in MLAS's order ((O24), lowp.ort_math._lane_squares): eight lanes of fused
// multiply-adds over the whole blocks of 8, folded (l, l + 4) then (0 + 2) + (1 + 3); of the
// tail, the first values as rounded products added when at least 4 remain, the rest FMAs.
float lane_squares(const float* d, int64_t n) {
  const int64_t blocks = n / 8 * 8;
  float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t k0 = 0; k0 < blocks; k0 += 8)
    for (int l = 0; l < 8; ++l) lanes[l] = std::fma(d[k0 + l], d[k0 + l], lanes[l]);
  float half[4];
  for (int l = 0; l < 4; ++l) half[l] = lanes[l] + lanes[4 + l];
  float q = (half[0] + half[2]) + (half[1] + half[3]);
  for (int64_t k = blocks; k < n; ++k) {
    if (k - blocks < 4 && n - blocks >= 4) {
      const float p = d[k] * d[k];
      q = q + p;
    } else {
      q = std::fma(d[k], d[k], q);
    }
  }
  return q;
}

[[maybe_unused]] void layer_norm_rows(const LayerNormArgs& a, int64_t r0, int64_t r1) {
  const int64_t n = a.n;
  for (int64_t r = r0; r < r1; ++r) {
    const float* x = a.x + r * n;
    float* d = a.y + r * n;  // the deviations, then the result in place
    // numpy's reduction along an axis adds the pairwise sum to its identity, +0.0: a row of
    // -0.0 has the mean +0.0, as in ONNX Runtime
    const float mean = float((0.0 + pairwise_sum(x, n)) / double(n));
    for (int64_t k = 0; k < n; ++k) d[k] = x[k] - mean;
    const float var = lane_squares(d, n) / float(n);
    const float inv = 1.0f / std::sqrt(var + a.epsilon);
    if (a.bias) {
      for (int64_t k = 0; k < n; ++k) d[k] = std::fma(d[k] * inv, a.scale[k], a.bias[k]);
    } else {
      for (int64_t k = 0; k < n; ++k) {
        const float t = d[k] * inv;
        d[k] = t * a.scale[k];
      }
    }
    if (a.mean) a.mean[r] = mean;
    if (a.inv) a.inv[r] = inv;
  }
}

// ONNX Runtime's SimplifiedLayerNormalization row (RMSNorm, (O49)): no mean, no bias.
// Rows of at least kRmsLaneRows values: q = lane_squares(x), inv = 1 / sqrt(q / n + eps),
// y = (x * inv) * scale. Shorter rows take its generic loop: the rounded squares added in
// order from +0, r = sqrt(q / n + eps), y = (x / r) * scale, inv = 1 / r.
constexpr int64_t kRmsLaneRows = 16;  // lowp.ort_math.RMS_LANE_ROWS

[[maybe_unused]] void simplified_norm_rows(const LayerNormArgs& a, int64_t r0, int64_t r1) {
  const int64_t n = a.n;
  for (int64_t r = r0; r < r1; ++r) {
    const float* x = a.x + r * n;
    float* y = a.y + r * n;
    if (n < kRmsLaneRows) {
      float q = 0.0f;
      for (int64_t k = 0; k < n; ++k) {
        const float p = x[k] * x[k];
        q = q + p;
      }
      const float root = std::sqrt(q / float(n) + a.epsilon);
      for (int64_t k = 0; k < n; ++k) {
        const float t = x[k] / root;
        y[k] = t * a.scale[k];
      }
      if (a.inv) a.inv[r] = 1.0f / root;
    } else {
      const float inv = 1.0f / std::sqrt(lane_squares(x, n) / float(n) + a.epsilon);
      for (int64_t k = 0; k < n; ++k) {
        const float t = x[k] * inv;
        y[k] = t * a.scale[k];
      }
      if (a.inv) a.inv[r] = inv;
    }
  }
}

// ONNX Runtime's SkipLayerNormalization row (on the sums x = input + skip + bias): Welford's
// running mean and M2, each operation rounded once (the build has -ffp-contract=off).
// Rows go in groups of kWelfordLanes, their chains interleaved: each row's running mean is
// a chain of dependent divisions (latency-bound one row at a time); the operations of every
// row are the same, in the same order, so the values are too.
constexpr int64_t kWelfordLanes = 8;

[[maybe_unused]] void welford_norm_rows(const LayerNormArgs& a, int64_t r0, int64_t r1) {
  const int64_t n = a.n;
  for (; r0 + kWelfordLanes <= r1; r0 += kWelfordLanes) {
    float mean[kWelfordLanes] = {}, m2[kWelfordLanes] = {}, sd[kWelfordLanes];
    const float* x = a.x + r0 * n;
    for (int64_t h = 0; h < n; ++h) {
      const float count = float(h + 1);
      for (int64_t l = 0; l < kWelfordLanes; ++l) {
        const float v = x[l * n + h];
        const float delta = v - mean[l];
        mean[l] += delta / count;
        const float delta2 = v - mean[l];
        m2[l] += delta * delta2;
      }
    }
    for (int64_t l = 0; l < kWelfordLanes; ++l) {
      sd[l] = std::sqrt(m2[l] / float(n) + a.epsilon);
      const float* xr = x + l * n;
      float* y = a.y + (r0 + l) * n;
      for (int64_t h = 0; h < n; ++h) {
        const float t = (xr[h] - mean[l]) / sd[l] * a.scale[h];
        y[h] = a.bias ? t + a.bias[h] : t;
      }
      if (a.mean) a.mean[r0 + l] = mean[l];
      if (a.inv) a.inv[r0 + l] = 1.0f / sd[l];
    }
  }
  for (int64_t r = r0; r < r1; ++r) {
    const float* x = a.x + r * n;
    float* y = a.y + r * n;
    float mean = 0.0f, m2 = 0.0f;
    for (int64_t h = 0; h < n; ++h) {
      const float delta = x[h] - mean;
      mean += delta / float(h + 1);
      const float delta2 = x[h] - mean;
      m2 += delta * delta2;
    }
    const float sd = std::sqrt(m2 / float(n) + a.epsilon);
    for (int64_t h = 0; h < n; ++h) {
      const float t = (x[h] - mean) / sd * a.scale[h];
      y[h] = a.bias ? t + a.bias[h] : t;
    }
    if (a.mean) a.mean[r] = mean;
    if (a.inv) a.inv[r] = 1.0f / sd;
  }
}

}  // namespace
}  // namespace lowp
