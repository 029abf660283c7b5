// The dynamic uint8 quantization of the quantized recurrence's float operands (qrecurrent.h,
// QQuantFn): ONNX Runtime's GetQuantizationParameter and MLAS's QuantizeLinear
// (lowp.runtime.quantized_lstm.dynamic_qparams / quantize_uint8). qrnn_qparams is shared by
// every path; qrnn_quantize_portable is the portable path's loop and every vector path's
// tail. Each file includes it with its own flags; the operations are exact or rounded as
// written (-ffp-contract=off), so every path gives the same bytes.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "qrecurrent.h"

namespace lowp {
namespace {

// |v| <= 255: adding and removing 1.5 * 2^23 rounds half to even
constexpr float kQMagic = 12582912.0f;

// The range [min(0, lo), max(0, hi)] -> scale (hi - lo) / 255 (1 when hi == lo) and zero
// point round-half-even(clamp(0 - lo / scale, 0, 255)), all in float32.
inline void qrnn_qparams(float lo, float hi, QParams& p) {
  p.scale = hi == lo ? 1.0f : (hi - lo) / 255.0f;
  float zpf = 0.0f - lo / p.scale;
  zpf = std::nearbyint(std::min(std::max(zpf, 0.0f), 255.0f));
  p.zero_point = int32_t(zpf);
}

// Running min / max of one value, starting from 0: a value replaces the bound only when
// strictly beyond it (what vminps / vmaxps do lane by lane), so the bounds never become -0.
inline void qrnn_range1(float v, float& lo, float& hi) {
  lo = v < lo ? v : lo;
  hi = v > hi ? v : hi;
}

// q = round-half-even(clamp(v / scale, -zp, 255 - zp)) + zp (a division), returned as int.
inline int32_t qrnn_quant1(float v, float scale, float qlo, float qhi, int32_t zp) {
  v = v / scale;
  v = v < qlo ? qlo : v;
  v = v > qhi ? qhi : v;
  return int32_t((v + kQMagic) - kQMagic) + zp;
}

[[maybe_unused]] void qrnn_quantize_portable(const float* src, int64_t rows, int64_t cols,
                                             int64_t ld, uint8_t* dst, int64_t lda,
                                             int32_t* rowsum, QParams& p) {
  float lo = 0.0f, hi = 0.0f;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) qrnn_range1(src[r * ld + j], lo, hi);
  qrnn_qparams(lo, hi, p);
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

}  // namespace
}  // namespace lowp
