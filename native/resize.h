// ONNX Runtime's 8-bit bilinear Resize on channels-last data (NhwcUpsampleBilinearInteger,
// docs/operators.md (O41)): per output row i and column j,
//   y = (dx2 dy2 x[y1, x1] + dx1 dy2 x[y1, x2] + dx2 dy1 x[y2, x1] + dx1 dy1 x[y2, x2]) / 2^20
// in integers, truncated toward zero, with the per-axis source indices and distances (in
// 1/1024ths) computed once in Python (lowp.runtime.float_nn._bilinear_integer_axis). The
// data is (outer, h, w, inner): inner = channels for channels-last data, 1 for NCHW planes.
#pragma once
#include <cstdint>

namespace lowp {

struct BilinearArgs {
  const uint8_t* x = nullptr;
  uint8_t* y = nullptr;
  int64_t outer = 0, h = 0, w = 0, inner = 0, out_h = 0, out_w = 0;
  // per output row: source rows and distances; per output column: the same
  const int32_t *y1 = nullptr, *y2 = nullptr, *dy1 = nullptr, *dy2 = nullptr;
  const int32_t *x1 = nullptr, *x2 = nullptr, *dx1 = nullptr, *dx2 = nullptr;
  bool is_signed = false;
};

// ONNX Runtime's float32 bilinear Resize of NCHW planes (UpsampleBilinear): per output row
// i and column j, with float32 distances computed once in Python
// (lowp.runtime.float_nn._bilinear_axis),
//   y = dx2 dy2 x[y1, x1] + dx1 dy2 x[y1, x2] + dx2 dy1 x[y2, x1] + dx1 dy1 x[y2, x2]
// each weight product and term rounded once, summed left to right (no contraction).
struct BilinearFloatArgs {
  const float* x = nullptr;
  float* y = nullptr;
  int64_t outer = 0, h = 0, w = 0, out_h = 0, out_w = 0;
  const int32_t *y1 = nullptr, *y2 = nullptr, *x1 = nullptr, *x2 = nullptr;
  const float *dy1 = nullptr, *dy2 = nullptr, *dx1 = nullptr, *dx2 = nullptr;
};

void run_bilinear_integer(const BilinearArgs& a, int threads);
void run_bilinear_float(const BilinearFloatArgs& a, int threads);

}  // namespace lowp
