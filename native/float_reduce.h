// ReduceSum / ReduceMean of float32 in ONNX Runtime's order (lowp.ort_math.reduce_sum,
// docs/operators.md (O18)), bit for bit: the input seen as (outer, k, inner), summed over k.
// Plain float additions only, so one portable translation unit serves every path.
#pragma once

#include <cstdint>

namespace lowp {

enum ReduceForm {
  kReduceEigenRows = 0,  // inner == 1: each row as Eigen's redux sums it (packets of 4 from
                         // the row's first 16-byte boundary of the array, two accumulators)
  kReduceM1 = 1,         // MLAS's M = 1 kernel: groups of 4, 2, 1 rows added to the result
  kReduceInOrder = 2,    // whole rows added in order
  // MLAS's global average pooling (docs/operators.md (O32)); inner > 1: channels-last
  // data, each of the inner columns summed in the same order:
  kReducePoolLanes = 3,  // NCHW kernel: four accumulators from +0 over the first k - k % 4
                         // values, (l0 + l2) + (l1 + l3), then the rest one by one
  kReducePoolInOrder = 4,  // NCHWc kernel: the values one after another from +0
};

// y (outer x inner) = sums over k of x (outer x k x inner), divided by k when `mean`.
struct ReduceArgs {
  const float* x = nullptr;
  float* y = nullptr;
  int64_t outer = 0, k = 0, inner = 0;
  int form = kReduceEigenRows;
  bool mean = false;
};
void run_float_reduce_sum(const ReduceArgs& a, int threads);

// y (outer x inner) = ReduceMax over k (k >= 1) of x (outer x k x inner), as
// lowp.runtime.float_ops's float32 ReduceMax defines it: NaN (the default quiet NaN) when
// any value is NaN, else the largest value, +0 rather than -0 when both are there (an order-
// free rule: the maximum of a set). Comparisons only. With `pool` kPoolGlobal or
// kPoolNchwc (GlobalMaxPool, docs/operators.md (O140)) an output that rule makes a NaN, a
// zero or -inf (where the order decides the bits) is taken again in MLAS's order
// (mlas_global_max); any other is the same number in both.
enum { kPoolSet = 0, kPoolGlobal = 1, kPoolNchwc = 2 };
void run_float_reduce_max(const float* x, float* y, int64_t outer, int64_t k, int64_t inner,
                          int pool, int threads);

// ONNX Runtime's float32 global maximum pooling of k values at stride s, bit for bit with
// lowp.ort_math.mlas_global_max: from the lowest float, each step maxps's a > b ? a : b
// (b on a NaN or a tie); kPoolNchwc one value at a time; kPoolGlobal (MlasPoolGlobalKernel)
// four lanes, lanes (0, 2), (1, 3), then the two, then the last k % 4 by std::max (a on a
// NaN or a tie).
float mlas_global_max(const float* x, int64_t k, int64_t s, int pool);

// ReduceMax (ReduceMin when `is_min`) of float32 as ONNX Runtime 1.32 takes it, bit for bit
// with lowp.ort_math.reduce_extreme (docs/operators.md (O127)); `form` is
// lowp.ort_math.extreme_plan's: kExtremeRows (y[a] of rows of b values, c = 1: Eigen's
// maxCoeff of each row), kExtremeRkr (y[b] of x (a, b, c) over a and c), kExtremeKrk and
// kExtremeInOrder (y (a, c) of x (a, b, c) over b). Every step keeps its first operand on a
// NaN or a tie. Comparisons only; each output computed by one task the same way.
// ONNX Runtime's ReduceMax (ReduceMin) of one row of n >= 1 float32 values with `start`
// scalars before its first 16-byte boundary (Eigen's maxCoeff; lowp.ort_math
// ._eigen_extreme_block).
float ort_row_extreme(const float* x, int64_t n, int64_t start, bool is_min);
enum { kExtremeRows = 0, kExtremeRkr = 1, kExtremeKrk = 2, kExtremeInOrder = 3 };
void run_float_reduce_extreme(const float* x, float* y, int64_t a, int64_t b, int64_t c,
                              int form, bool is_min, int threads);

// MaxPool of float32 channels-last 2-D data x (n, h, w, c) into y (n, oh, ow, c): the
// values of MaxPool of its channels-first view in ONNX Runtime's order `order` (docs/
// operators.md (O150), lowp.runtime.max_pool_order): kMaxMlasVector (float_kernels.h),
// each window column from its first row inside the input on, maxps (acc > x ? acc : x)
// where the input column is one of the first w - w % 4, std::max (acc < x ? x : acc) after
// them, then the columns across from the first by maxps, a column outside the input the
// lowest float; kMaxNchwc, maxps from the lowest float over the taps inside, row-major;
// kMaxGeneric, std::max from the lowest float likewise; kMaxLoop, the first tap inside,
// then std::max. Comparisons only; each output computed by one task the same way.
constexpr int kMaxGeneric = 2;
constexpr int kMaxLoop = 3;
struct MaxPoolChannelsLastArgs {
  const float* x = nullptr;
  float* y = nullptr;
  int64_t n = 0, h = 0, w = 0, c = 0, oh = 0, ow = 0;
  int kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1, ph = 0, pw = 0;  // ph, pw: begin pads
  int order = 0;
};
void run_float_max_pool_channels_last(const MaxPoolChannelsLastArgs& a, int threads);

// AveragePool of float32 NCHW planes x (planes, h, w) into y (planes, oh, ow) in the order
// of MLAS's NCHWc kernel and ONNX Runtime's generic pooling loop, as
// lowp.runtime.float_nn._window_sum_rowmajor defines it: each window's taps row by row,
// left to right, added one after another to a float32 sum from +0 (taps outside the input
// are the reference's zeros, which change no such sum: it is never -0), then divided by
// counts[oy * ow + ox] (the reference's divisor, given). Additions and one division only.
struct AveragePoolRowMajorArgs {
  const float* x = nullptr;
  const float* counts = nullptr;
  float* y = nullptr;
  int64_t planes = 0, h = 0, w = 0, oh = 0, ow = 0;
  int kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1, ph = 0, pw = 0;  // ph, pw: begin pads
};
void run_float_average_pool_rowmajor(const AveragePoolRowMajorArgs& a, int threads);

}  // namespace lowp
