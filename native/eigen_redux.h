// Eigen's redux sum (the order of ONNX Runtime's Eigen reductions: ReduceSum / ReduceMean
// rows, InstanceNormalization's mean and variance), mirrored from lowp.ort_math._redux_rows
// and _redux_nan_rows. Plain float operations only (the build's -ffp-contract=off).
#pragma once

#include <algorithm>
#include <cstdint>

namespace lowp {
namespace {

// How the four lanes of the last packet meet: (a3 + a1) + (a2 + a0) for Eigen's sums,
// (a0 + a2) + (a1 + a3) for InstanceNormalization's squared deviations (nan_order "norm")
// and for the max / min reductions.
enum class Lanes { kReversed, kPaired };

// v(0) (+) ... (+) v(n - 1) (n >= 1) with `start` scalars before the first aligned packet:
// packets of 4 in two interleaved accumulators, their combination, a last odd packet, the
// packet's lanes, then the leading and trailing scalars in order. `op(a, b)` is the
// arithmetic: a plain add, first_nan_add where the NaN payload must be ONNX Runtime's, or a
// max / min that keeps its first operand. Of fewer values than a packet, each value comes
// before the running result when `kValueFirst` (nan_order "norm"). With a plain add every
// order gives the same numbers.
template <Lanes kLanes, bool kValueFirst, class Value, class Op>
float eigen_redux(int64_t n, int64_t start, const Value& v, const Op& op) {
  constexpr int64_t kPacket = 4;
  start = std::min(start, n);
  const int64_t size = (n - start) / kPacket * kPacket;
  const int64_t size2 = (n - start) / (2 * kPacket) * (2 * kPacket);
  if (size == 0) {
    float res = v(0);
    for (int64_t i = 1; i < n; ++i) res = kValueFirst ? op(v(i), res) : op(res, v(i));
    return res;
  }
  const int64_t end2 = start + size2, end = start + size;
  float p[kPacket];
  if (size > kPacket) {
    float pair[2 * kPacket];
    for (int l = 0; l < 2 * kPacket; ++l) pair[l] = v(start + l);
    for (int64_t j = start + 2 * kPacket; j < end2; j += 2 * kPacket)
      for (int l = 0; l < 2 * kPacket; ++l) pair[l] = op(pair[l], v(j + l));
    for (int l = 0; l < kPacket; ++l) p[l] = op(pair[l], pair[kPacket + l]);
    if (end > end2)
      for (int l = 0; l < kPacket; ++l) p[l] = op(p[l], v(end2 + l));
  } else {
    for (int l = 0; l < kPacket; ++l) p[l] = v(start + l);
  }
  float res = kLanes == Lanes::kPaired ? op(op(p[0], p[2]), op(p[1], p[3]))
                                       : op(op(p[3], p[1]), op(p[2], p[0]));
  for (int64_t i = 0; i < start; ++i) res = op(res, v(i));
  for (int64_t i = end; i < n; ++i) res = op(res, v(i));
  return res;
}

}  // namespace
}  // namespace lowp
