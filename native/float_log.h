// ONNX Runtime's float32 Log kernel (an Eigen array expression), bit for bit with its numpy
// form lowp.eigen_math.log: Eigen's packet log (plog_float) on packets of four from the
// start of each assignment (the active path's kLog, float_impl.h), the C library's logf on
// its last length % 4 values (docs/operators.md (O27)); at several intra-op threads one
// assignment per run of ONNX Runtime's parallel blocks ((O91)), all in one call.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

namespace lowp {

// y[i] = log(x[i]) for i < n as ONNX Runtime's Log computes it, the values cut into
// consecutive runs [0, ends[0]), [ends[0], ends[1]), ... (ends[runs - 1] == n), each one
// Eigen assignment from its own start (lowp.eigen_math.assignment_runs; runs == 0: one run
// of all n). x == y allowed; threads <= 0: all (the values do not depend on them).
void run_float_log(const float* x, float* y, int64_t n, const int64_t* ends, int64_t runs,
                   int threads);

// The (index, value) of every run's last (length % 4) values by `scalar(x[i], alpha)` (the
// C library's function on an Eigen assignment's tail), runs as in run_float_log.
std::vector<std::pair<int64_t, float>> run_tails(const float* x, int64_t n, const int64_t* ends,
                                                 int64_t runs, float (*scalar)(float, float),
                                                 float alpha);

}  // namespace lowp
