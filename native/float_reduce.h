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
// free rule: the maximum of a set). Comparisons only.
void run_float_reduce_max(const float* x, float* y, int64_t outer, int64_t k, int64_t inner,
                          int threads);

}  // namespace lowp
