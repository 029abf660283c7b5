// Float32 N-D convolution (1-D to 3-D) in ONNX Runtime's im2col + MLAS SGEMM order, for the
// convolutions its NCHWc layout transformer leaves in NCHW (lowp.runtime.float_nn.Conv):
// per image and group, the columns (c/g * prod(kernel) rows, prod(out) columns; padding taps
// +0) are built into a scratch buffer, multiplied by the group's filters with run_mlas_sgemm
// (the same entry point, hence the same K blocking, as one float_sgemm_mlas call), and the
// bias is added to the finished products (one float32 addition). A 1x1 stride-1 unpadded
// convolution reads the input in place as its columns. Plain copies and additions: one
// portable translation unit serves every path, bit for bit with the numpy reference.
#pragma once

#include <cstdint>

namespace lowp {

// x (n, c, in...), w (m, c / group, k...), y (n, m, out...), all contiguous; three spatial
// axes (a 1-D or 2-D convolution has leading axes of size 1, kernel 1, stride 1, pad 0).
// cols holds (c / group) * prod(k) * prod(out) floats, or is null when the columns are the
// input itself (k, s all 1, no padding, out == in). sum (y's shape, or null) is ONNX Runtime's
// FusedConv Sum: each product starts as its values (the SGEMM's beta 1, MLAS accumulating
// onto the output that holds a copy of it), the bias added after as without it.
// parts (none: each product whole): the MLAS operations ONNX Runtime's threads cut every
// product into (lowp.mlas_sgemm.conv_parts), as (first row, rows, first column, columns);
// a part narrower than the product is never MLAS's N = 1 kernel's (it is handed the whole
// product's leading dimensions: unit_ldb false).
constexpr int kConvMaxParts = 64;
struct ConvIm2colArgs {
  int64_t parts[kConvMaxParts][4] = {};
  int nparts = 0;
  const float* x = nullptr;
  const float* w = nullptr;
  const float* bias = nullptr;
  const float* sum = nullptr;
  float* y = nullptr;
  float* cols = nullptr;
  int64_t n = 0, c = 0, m = 0, group = 1;
  int64_t in[3] = {1, 1, 1}, k[3] = {1, 1, 1}, out[3] = {1, 1, 1};
  int64_t s[3] = {1, 1, 1}, d[3] = {1, 1, 1}, pad[3] = {0, 0, 0};
};
void run_float_conv_im2col(const ConvIm2colArgs& a, int threads);

}  // namespace lowp
