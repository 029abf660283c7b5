// Row kernel of layer_norm.h, written as plain loops over explicit IEEE operations (fmaf
// where ort_math fuses); included by layer_norm_scalar.cpp and layer_norm_fma.cpp, each
// compiling it with its own flags (-ffp-contract=off everywhere: nothing else is fused).
#pragma once
#include <cmath>
#include <cstdint>

#include "layer_norm.h"

namespace lowp {
namespace {

// numpy's pairwise summation of float64 values read from float32 (loops_utils.h.src), as
// x.astype(np.float64).sum(axis=-1) sums a contiguous row.
inline double pairwise_sum_f64(const float* a, int64_t n) {
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
  return pairwise_sum_f64(a, n2) + pairwise_sum_f64(a + n2, n - n2);
}

void layer_norm_rows(const LayerNormArgs& a, int64_t r0, int64_t r1) {
  const int64_t n = a.n, blocks = n / 8 * 8;
  const float fn = float(n);
  for (int64_t r = r0; r < r1; ++r) {
    const float* x = a.x + r * n;
    float* y = a.y + r * n;
    const float mean = float((0.0 + pairwise_sum_f64(x, n)) / double(n));
    // d goes into y first (y may not alias x: the binding checks)
    for (int64_t k = 0; k < n; ++k) y[k] = x[k] - mean;
    float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t k0 = 0; k0 < blocks; k0 += 8)
      for (int j = 0; j < 8; ++j) lanes[j] = std::fmaf(y[k0 + j], y[k0 + j], lanes[j]);
    const float h0 = lanes[0] + lanes[4], h1 = lanes[1] + lanes[5];
    const float h2 = lanes[2] + lanes[6], h3 = lanes[3] + lanes[7];
    float q = (h0 + h2) + (h1 + h3);
    for (int64_t k = blocks; k < n; ++k) {
      if (k - blocks < 4 && n - blocks >= 4) {
        const float sq = y[k] * y[k];
        q = q + sq;
      } else {
        q = std::fmaf(y[k], y[k], q);
      }
    }
    const float var = q / fn;
    const float inv = 1.0f / std::sqrt(var + a.epsilon);
    if (a.bias != nullptr) {
      for (int64_t k = 0; k < n; ++k) y[k] = std::fmaf(y[k] * inv, a.scale[k], a.bias[k]);
    } else {
      for (int64_t k = 0; k < n; ++k) {
        const float t = y[k] * inv;
        y[k] = t * a.scale[k];
      }
    }
    if (a.mean != nullptr) a.mean[r] = mean;
    if (a.inv_std != nullptr) a.inv_std[r] = inv;
  }
}

}  // namespace
}  // namespace lowp
