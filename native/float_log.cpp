// ONNX Runtime's float32 Log over the runs of its parallel blocks: Eigen's packet log
// (float_impl.h eigen_log_v, the active path's kLog) on every value, then the C library's
// logf on the last (length % 4) values of each run.
#include "float_log.h"

#include <cmath>
#include <utility>
#include <vector>

#include "float_kernels.h"

namespace lowp {

std::vector<std::pair<int64_t, float>> run_tails(const float* x, int64_t n, const int64_t* ends,
                                                 int64_t runs, float (*scalar)(float, float),
                                                 float alpha) {
  std::vector<std::pair<int64_t, float>> tails;
  int64_t start = 0;
  for (int64_t r = 0; r < runs || (runs == 0 && start < n); ++r) {
    const int64_t end = runs == 0 ? n : ends[r];
    for (int64_t i = end - (end - start) % 4; i < end; ++i) tails.emplace_back(i, scalar(x[i], alpha));
    start = end;
  }
  return tails;
}

void run_float_log(const float* x, float* y, int64_t n, const int64_t* ends, int64_t runs,
                   int threads) {
  if (n <= 0) return;
  // the tails first: y may be x
  const auto tails = run_tails(x, n, ends, runs, [](float t, float) { return ::logf(t); }, 0.0f);
  run_float_unary(kLog, x, y, n, 0.0f, 0.0f, threads);
  for (const auto& [i, v] : tails) y[i] = v;
}

}  // namespace lowp
