// ONNX Runtime's TryParallelFor blocks (lowp.eigen_math.ort_parallel_blocks): where a kernel
// gives per-position results (which NaN, a C++ tail) that depend on where ONNX Runtime's
// blocks start, lowp cuts its work at the same places.
#pragma once
#include <algorithm>
#include <cstdint>

namespace lowp {

// The size of ONNX Runtime's TryParallelFor blocks over n elements at `threads` intra-op
// threads, each element costing `per_element` cycles in Eigen's cost model (its bytes loaded
// and stored at 11/64 cycles a byte, plus its compute cycles); n when it does not cut.
inline int64_t ort_parallel_block(int64_t n, double per_element, int threads) {
  auto cdiv = [](int64_t a, int64_t b) { return (a + b - 1) / b; };
  const double wanted = (double(n) * per_element - 100000.0) / 100000.0 + 0.9;
  if (threads <= 1 || n <= 1 ||
      std::min<int64_t>(threads, std::max<int64_t>(1, int64_t(wanted))) == 1)
    return n;
  const int64_t ideal = int64_t(1.0 / (per_element / 40000.0));
  int64_t block = std::min(n, std::max(cdiv(n, 4 * int64_t(threads)), ideal));
  const int64_t largest = std::min(n, 2 * block);
  const int64_t count = cdiv(n, block);
  double efficiency = double(count) / double(cdiv(count, threads) * threads);
  int64_t previous = count;
  while (efficiency < 1.0 && previous > 1) {
    const int64_t coarser = cdiv(n, previous - 1);
    if (coarser > largest) break;
    previous = cdiv(n, coarser);
    const double coarser_efficiency = double(previous) / double(cdiv(previous, threads) * threads);
    if (coarser_efficiency + 0.01 >= efficiency) {
      block = coarser;
      efficiency = std::max(efficiency, coarser_efficiency);
    }
  }
  return block;
}

// A byte loaded or stored, in Eigen's cost model's cycles.
constexpr double kOrtByteCycles = 1.0 / 64 * 11;

}  // namespace lowp
