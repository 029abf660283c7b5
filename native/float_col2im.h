// ConvTranspose's col2im for float32 in the order of lowp.runtime.float_nn.ConvTranspose (and
// ONNX Runtime's Col2im): every output starts at +0, the column entries that land on it are
// added in kernel-offset order (row-major over the kernel taps), then the bias. Plain float
// additions, so one portable translation unit serves every path, bit for bit; a plane
// holding a NaN is added again with x86's operand order of ONNX Runtime's compiled loops.
#pragma once

#include <cstdint>

namespace lowp {

// cols (planes, kh, kw, ih, iw) -> y (planes, oh, ow); plane p has bias[p % channels] when
// bias is set. Output (oy, ox) is position (oy + begin_h, ox + begin_w) of the full output,
// which input (iy, ix) and tap (ky, kx) reach at (iy * sh + ky * dh, ix * sw + kx * dw).
//
// Direct form (x and w set, cols unused): a ConvTranspose with one input channel per group,
// whose MLAS GEMM has K = 1, so each column entry is one rounded product w * x (MLAS's
// fma(w, x, +0) times alpha 1: the same value but for the sign of a zero product, which the
// +0 start of every output removes). Entry (p, tap t, iy, ix) = w[(p % channels) * kh * kw +
// t] * x[n * x_batch + g * x_channel + iy * x_row + ix * x_col] for input plane p /
// per_input = n * groups + g: x (N, groups, ih, iw) by element strides (a channels-last
// tensor read in place) and w (groups * per_input, kh, kw), per_input output channels per
// group. The products are computed where they are added, with no column buffer.
struct Col2ImArgs {
  const float* cols = nullptr;
  const float* x = nullptr;
  const float* w = nullptr;
  int64_t per_input = 1, x_batch = 0, x_channel = 0, x_row = 0, x_col = 0;
  const float* bias = nullptr;
  float* y = nullptr;
  int64_t planes = 0, channels = 1;
  int64_t kh = 1, kw = 1, ih = 1, iw = 1, oh = 1, ow = 1;
  int64_t sh = 1, sw = 1, dh = 1, dw = 1, begin_h = 0, begin_w = 0;
  // ONNX Runtime's N-D col2im (1-D and 3-D and up) rather than its 2-D one: where NaNs meet,
  // every entry is added image first (docs/operators.md (O270))
  int64_t scalar_runs = 0;
  // the plane whose columns cols begins with (a block of planes' columns: float_conv_transpose.h)
  int64_t first_plane = 0;
};
void run_float_col2im(const Col2ImArgs& a, int threads);
// Planes [p0, p0 + count) of the column form on the calling thread, as run_float_col2im.
void col2im_planes(const Col2ImArgs& a, int64_t p0, int64_t count);

}  // namespace lowp
