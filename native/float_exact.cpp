// Loops of float_exact.h, runs of elements on the pool.
#include "float_exact.h"

#include <cmath>
#include <cstring>

#include "float_log.h"

#include "threadpool.h"

namespace lowp {

void run_float_sqrt(const float* x, float* y, int64_t n, int threads) {
  if (n <= 0) return;
  // memory-bound: a second thread pays only for large arrays
  run_elementwise(n, int64_t(1) << 16, threads, [&](int64_t i0, int64_t len) {
    for (int64_t i = i0; i < i0 + len; ++i) y[i] = std::sqrt(x[i]);
  });
}

void run_float_floor(const float* x, float* y, int64_t n, const int64_t* ends, int64_t runs,
                     int threads) {
  if (n <= 0) return;
  // each run's scalar tail keeps a NaN's bits (first: y may be x)
  const auto tails = run_tails(x, n, ends, runs, [](float t, float) {
    return std::isnan(t) ? t : std::floor(t);
  }, 0.0f);
  // the packets: a NaN quieted (its bits with the quiet bit set), whatever the compiler makes
  // of std::floor on a signalling one
  run_elementwise(n, int64_t(1) << 16, threads, [&](int64_t i0, int64_t len) {
    for (int64_t i = i0; i < i0 + len; ++i) {
      uint32_t bits;
      std::memcpy(&bits, &x[i], 4);
      if ((bits & 0x7fffffffu) > 0x7f800000u) {
        bits |= 0x00400000u;
        std::memcpy(&y[i], &bits, 4);
      } else {
        y[i] = std::floor(x[i]);
      }
    }
  });
  for (const auto& [i, v] : tails) y[i] = v;
}

}  // namespace lowp
