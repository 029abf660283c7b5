// The dynamic uint8 quantization of the quantized recurrence's float operands (qrecurrent.h,
// QQuantFn): ONNX Runtime's GetQuantizationParameter and MLAS's QuantizeLinear
// (lowp.runtime.quantized_lstm.dynamic_qparams / quantize_uint8). qrnn_qparams is shared by
// every path; qrnn_quantize_portable is the portable path's loop and every vector path's
// tail; qrnn_quantize_nan takes an operand holding a NaN on every path. Each file includes
// it with its own flags; the operations are exact or rounded as written (-ffp-contract=off),
// so every path gives the same bytes.
#pragma once
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <vector>

#include "qrecurrent.h"

namespace lowp {
namespace {

// |v| <= 255: adding and removing 1.5 * 2^23 rounds half to even
constexpr float kQMagic = 12582912.0f;

// The range [min(0, lo), max(0, hi)] -> scale (hi - lo) / 255 (1 when hi == lo) and zero
// point round-half-even(std::max(0, std::min(255, 0 - lo / scale))), all in float32: a NaN
// or infinite bound gives a NaN or infinite scale, and 0 - lo / scale NaN the zero point 255
// (std::min(255, NaN) is 255), docs/operators.md (O149), (O156).
inline void qrnn_qparams(float lo, float hi, QParams& p) {
  p.scale = hi == lo ? 1.0f : (hi - lo) / 255.0f;
  float zpf = 0.0f - lo / p.scale;
  zpf = std::nearbyint(std::max(0.0f, std::min(255.0f, zpf)));
  p.zero_point = int32_t(zpf);
}

// Running min / max of one value, starting from 0: a value replaces the bound only when
// strictly beyond it (what vminps / vmaxps do lane by lane), so the bounds never become -0.
inline void qrnn_range1(float v, float& lo, float& hi) {
  lo = v < lo ? v : lo;
  hi = v > hi ? v : hi;
}

// q = round-half-even(clamp(v / scale, -zp, 255 - zp)) + zp (a division), returned as int;
// the clamps as vmaxps(v, qlo) / vminps(v, qhi), which give the bound for a NaN quotient (a
// NaN value, an infinity over an infinite scale, anything over a NaN scale): q = 0.
inline int32_t qrnn_quant1(float v, float scale, float qlo, float qhi, int32_t zp) {
  v = v / scale;
  v = v > qlo ? v : qlo;
  v = v < qhi ? v : qhi;
  return int32_t((v + kQMagic) - kQMagic) + zp;
}

// MLAS's MlasFindMinMaxElement (its AVX kernel) over n contiguous floats, NaN included
// (lowp.runtime.quantized_lstm._mlas_min_max, docs/operators.md (O149)): from 8 values on,
// 8 lanes (4 accumulators over 32-value chunks, then one over the 8-value chunks left), each
// step vminps / vmaxps(acc, v), which give v when either is NaN; the accumulators folded (0
// with 1, 2 with 3, then the two), the halves, lanes (0, 1) with (2, 3), then 0 with 1; the
// values left through std::min / std::max, which skip a NaN value and keep a NaN bound.
inline void qrnn_mlas_min_max(const float* a, int64_t n, float& lo, float& hi) {
  auto vmin = [](float acc, float v) { return acc < v ? acc : v; };
  auto vmax = [](float acc, float v) { return acc > v ? acc : v; };
  lo = FLT_MAX;
  hi = -FLT_MAX;
  int64_t i = 0;
  if (n >= 8) {
    float mn[8], mx[8];
    std::fill(mn, mn + 8, FLT_MAX);
    std::fill(mx, mx + 8, -FLT_MAX);
    if (n >= 32) {
      float mns[4][8], mxs[4][8];
      for (int u = 0; u < 4; ++u) std::fill(mns[u], mns[u] + 8, FLT_MAX), std::fill(mxs[u], mxs[u] + 8, -FLT_MAX);
      for (; i + 32 <= n; i += 32)
        for (int u = 0; u < 4; ++u)
          for (int l = 0; l < 8; ++l) {
            mns[u][l] = vmin(mns[u][l], a[i + 8 * u + l]);
            mxs[u][l] = vmax(mxs[u][l], a[i + 8 * u + l]);
          }
      for (int l = 0; l < 8; ++l) {
        mn[l] = vmin(vmin(mns[0][l], mns[1][l]), vmin(mns[2][l], mns[3][l]));
        mx[l] = vmax(vmax(mxs[0][l], mxs[1][l]), vmax(mxs[2][l], mxs[3][l]));
      }
    }
    for (; i + 8 <= n; i += 8)
      for (int l = 0; l < 8; ++l) mn[l] = vmin(mn[l], a[i + l]), mx[l] = vmax(mx[l], a[i + l]);
    for (int l = 0; l < 4; ++l) mn[l] = vmin(mn[l], mn[l + 4]), mx[l] = vmax(mx[l], mx[l + 4]);
    for (int l = 0; l < 2; ++l) mn[l] = vmin(mn[l], mn[l + 2]), mx[l] = vmax(mx[l], mx[l + 2]);
    lo = vmin(mn[0], mn[1]);
    hi = vmax(mx[0], mx[1]);
  }
  for (; i < n; ++i) {
    lo = a[i] < lo ? a[i] : lo;
    hi = hi < a[i] ? a[i] : hi;
  }
}

// GetQuantizationParameter's range of n contiguous floats (NaN included) taken `span` values
// a MlasFindMinMaxElement call (0: one call; lowp.runtime.quantized_lstm.mlas_range_span,
// ONNX Runtime's split over its intra-op threads), the calls' bounds folded in order with
// std::min / std::max, which skip a NaN bound of every call after the first, then min(lo,
// 0) / max(hi, 0) the same way (a NaN bound stays; docs/operators.md (O149), (O189)).
inline void qrnn_mlas_range(const float* a, int64_t n, int64_t span, float& lo, float& hi) {
  if (span <= 0 || span >= n) span = n;
  qrnn_mlas_min_max(a, std::min(span, n), lo, hi);
  for (int64_t first = span; first < n; first += span) {
    float l, h;
    qrnn_mlas_min_max(a + first, std::min(span, n - first), l, h);
    lo = l < lo ? l : lo;
    hi = hi < h ? h : hi;
  }
  lo = 0.0f < lo ? 0.0f : lo;  // std::min(lo, 0)
  hi = hi < 0.0f ? 0.0f : hi;  // std::max(hi, 0)
}

// The codes of rows x cols floats (row stride ld) under given qparams, qrnn_quant1 one value
// at a time (any value: NaN, infinities), and each row's sum.
[[maybe_unused]] void qrnn_quantize_with(const float* src, int64_t rows, int64_t cols, int64_t ld,
                                         uint8_t* dst, int64_t lda, int32_t* rowsum,
                                         const QParams& p) {
  const float qlo = float(-p.zero_point), qhi = float(255 - p.zero_point);
  for (int64_t r = 0; r < rows; ++r) {
    int32_t sum = 0;
    for (int64_t j = 0; j < cols; ++j) {
      const int32_t q = qrnn_quant1(src[r * ld + j], p.scale, qlo, qhi, p.zero_point);
      dst[r * lda + j] = uint8_t(q);
      sum += q;
    }
    rowsum[r] = sum;
  }
}

// QQuantFn's steps for an operand holding a NaN, whose range is not the running bounds of
// the paths' kernels (each sees the NaN in its range pass and calls this instead): MLAS's
// range over the operand as ONNX Runtime reads it (the rows one after the other, `span`
// values a call), then qrnn_qparams and qrnn_quant1 (docs/operators.md (O156), (O189)).
[[maybe_unused]] void qrnn_quantize_nan(const float* src, int64_t rows, int64_t cols, int64_t ld,
                                        uint8_t* dst, int64_t lda, int32_t* rowsum, QParams& p,
                                        int64_t span) {
  std::vector<float> flat(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r) std::copy(src + r * ld, src + r * ld + cols, &flat[size_t(r * cols)]);
  float lo, hi;
  qrnn_mlas_range(flat.data(), rows * cols, span, lo, hi);
  qrnn_qparams(lo, hi, p);
  qrnn_quantize_with(flat.data(), rows, cols, cols, dst, lda, rowsum, p);
}


[[maybe_unused]] void qrnn_quantize_portable(const float* src, int64_t rows, int64_t cols,
                                             int64_t ld, uint8_t* dst, int64_t lda,
                                             int32_t* rowsum, QParams& p, int64_t span) {
  float lo = 0.0f, hi = 0.0f;
  bool nan = false;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) {
      const float v = src[r * ld + j];
      qrnn_range1(v, lo, hi);
      nan |= v != v;
    }
  if (nan) return qrnn_quantize_nan(src, rows, cols, ld, dst, lda, rowsum, p, span);
  qrnn_qparams(lo, hi, p);
  qrnn_quantize_with(src, rows, cols, ld, dst, lda, rowsum, p);
}

}  // namespace
}  // namespace lowp
