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

// ONNX Runtime's float32 bilinear Resize (UpsampleBilinear): per output row i and column j,
// with float32 distances computed once in Python (lowp.runtime.float_nn._bilinear_table),
//   y = ((dx2 dy2 x[y1, x1] + dx1 dy2 x[y1, x2]) + dx2 dy1 x[y2, x1]) + dx1 dy1 x[y2, x2]
// each weight product and term rounded once, summed in that order (no contraction). The
// data is (outer, h, w, inner): inner = 1 for NCHW planes (ONNX Runtime's own layout for
// float data), the channels for channels-last data, whose every output is the same function
// of its own channel.
struct BilinearFloatArgs {
  const float* x = nullptr;
  float* y = nullptr;
  int64_t outer = 0, h = 0, w = 0, inner = 0, out_h = 0, out_w = 0;
  const int32_t *y1 = nullptr, *y2 = nullptr, *x1 = nullptr, *x2 = nullptr;
  const float *dy1 = nullptr, *dy2 = nullptr, *dx1 = nullptr, *dx2 = nullptr;
};

// Output rows r0 .. r0 + len - 1 (of outer x out_h), one source per path
// (resize_float.cpp): the same values on every path.
using BilinearFloatRowsFn = void (*)(const BilinearFloatArgs& a, int64_t r0, int64_t len);
void bilinear_float_scalar(const BilinearFloatArgs&, int64_t, int64_t);  // no ISA flags
void bilinear_float_avx2(const BilinearFloatArgs&, int64_t, int64_t);    // -mavx2
void bilinear_float_avx512(const BilinearFloatArgs&, int64_t, int64_t);  // -mavx512f

void run_bilinear_integer(const BilinearArgs& a, int threads);
void run_bilinear_float(const BilinearFloatArgs& a, int threads);

}  // namespace lowp
