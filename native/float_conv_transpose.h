// Float32 1-D and 2-D ConvTranspose in ONNX Runtime's order (lowp.runtime.float_nn.ConvTranspose):
// per image and group, the MLAS SGEMM of the filter (transposed) by the input gives the column
// entries (M = output channels x taps rows, K = input channels, N = input positions), which
// col2im adds into the output (float_col2im.h). Here the product runs in blocks of whole output
// channels: each block's rows of the filter copied contiguous, its entries made into a scratch
// block by run_mlas_sgemm (the same entry point, K blocking and kernels as one float_sgemm_mlas
// call per MLAS operation: a row block of an operation computes each of its values as the
// operation does) and added into the block's output planes while they are in cache, so the
// whole column matrix is never written to memory.
#pragma once

#include <cstdint>

#include "float_col2im.h"
#include "float_im2col.h"

namespace lowp {

// geometry: the col2im geometry, bias and y (planes = n * channels; cols, x, w unused). x (n, c,
// ih, iw) by element strides (batch, channel, position: a channels-last tensor read in place;
// position p = iy * iw + ix) and w (c, channels / group, kh, kw), contiguous. trans_a: ONNX Runtime reads the
// filter transposed (it is not a constant it transposed once), which picks MLAS's K block for
// N < K. parts (none: each product whole): the MLAS operations ONNX Runtime's threads cut each
// product into (lowp.mlas_sgemm.thread_parts), as (first row, rows, first column, columns).
struct ConvTransposeArgs {
  Col2ImArgs geometry;
  const float* x = nullptr;
  const float* w = nullptr;
  int64_t n = 0, c = 0, group = 1;
  int64_t x_batch = 0, x_channel = 0, x_position = 1;
  bool trans_a = true;
  int64_t parts[kConvMaxParts][4] = {};
  int nparts = 0;
};
void run_float_conv_transpose(const ConvTransposeArgs& a, int threads);

}  // namespace lowp
