// Float32 2-D convolution summed in ONNX Runtime's NCHWc order (MLAS's NCHWc kernels, which
// ONNX Runtime's layout transformer picks for most 2-D convolutions with constant weights;
// docs/operators.md (O31)). Input and output stay NCHW; only the order of the sums follows
// MLAS. Every output value is
//   total = partial(block 0) (+ sum[i] when a Sum is given: ONNX Runtime's NCHWc Conv
//   with a fused Add starts the first block from it); total = partial(block b) + total
//   for the next blocks; y = total + bias (then, with `relu`, 0 > y ? 0 : y: ONNX
//   Runtime's Relu node after a bias Add, which keeps NaN and -0)
// where a partial is a chain of fused multiply-adds from +0 over the block's taps in the
// kind's order (padding taps are skipped, as MLAS skips them):
//   kNchwc     blocks of `block` input channels; kernel row, kernel column, channel
//   kPointwise 1x1 kernels without padding: blocks of 128 channels, channel order
//   kNchw      fewer input channels than `block`: one block per channel; row, column
//   kDepthwise one input channel per output channel (no sum of blocks)
// Grouped convolutions run the kNchwc order per group. Every instruction-set path computes
// the same fused multiply-adds in the same order, so all paths are bit-identical. An output
// that comes out NaN is computed again one value at a time with MLAS's NaN (of a tap's
// weight, input and sum so far the first NaN; docs/operators.md (O327), (O335)).
#pragma once
#include <cstdint>
#include <string>

namespace lowp_fconv {

enum Kind : int { kNchwc = 0, kPointwise = 1, kNchw = 2, kDepthwise = 3 };

struct ConvArgs {
  const float* x = nullptr;   // (n, c, h, w)
  const float* wp = nullptr;  // packed: (groups, m_blocks, cg, kh, kw, 16) output lanes
  const float* bias = nullptr;  // (m) or null
  const float* sum = nullptr;   // (n, m, oh, ow) or null: the starting totals (not y)
  float* y = nullptr;         // (n, m, oh, ow)
  int64_t n = 0, c = 0, h = 0, w = 0, m = 0, oh = 0, ow = 0;
  int kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1, ph = 0, pw = 0;
  int groups = 1, kind = kNchwc, block = 16;
  bool relu = false;          // 0 > y ? 0 : y after the bias (NaN and -0 kept)
};

constexpr int kLanes = 16;  // output channels per packed weight vector

// Output rows [row0, row1) of the flattened (n, oh) range.
using RowsFn = void (*)(const ConvArgs& a, int64_t row0, int64_t row1);

void rows_scalar(const ConvArgs& a, int64_t row0, int64_t row1);
void rows_avx2(const ConvArgs& a, int64_t row0, int64_t row1);
void rows_avx512(const ConvArgs& a, int64_t row0, int64_t row1);

// nchwc_run.cpp: the rows function of a path ("scalar", "avx2", "avx512"); the checks of
// the arguments against the arrays' sizes (bias_size -1: no bias), throwing
// std::invalid_argument; all rows on `threads` threads (0: all).
RowsFn rows_for(const std::string& isa);
void check(const ConvArgs& a, int64_t x_size, int64_t wp_size, int64_t bias_size,
           int64_t y_size);
void run(const ConvArgs& a, RowsFn rows, int threads);

}  // namespace lowp_fconv
