// Loops of float_exact.h, runs of elements on the pool.
#include "float_exact.h"

#include <cmath>

#include "threadpool.h"

namespace lowp {

void run_float_sqrt(const float* x, float* y, int64_t n, int threads) {
  if (n <= 0) return;
  // memory-bound: a second thread pays only for large arrays
  run_elementwise(n, int64_t(1) << 16, threads, [&](int64_t i0, int64_t len) {
    for (int64_t i = i0; i < i0 + len; ++i) y[i] = std::sqrt(x[i]);
  });
}

void run_float_floor(const float* x, float* y, int64_t n, int threads) {
  if (n <= 0) return;
  run_elementwise(n, int64_t(1) << 16, threads, [&](int64_t i0, int64_t len) {
    for (int64_t i = i0; i < i0 + len; ++i) y[i] = std::floor(x[i]);
  });
}

}  // namespace lowp
