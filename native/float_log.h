// ONNX Runtime's float32 Log kernel (an Eigen array expression), bit for bit with its numpy
// form lowp.eigen_math.log: Eigen's packet log (plog_float) on packets of four from the
// start of the buffer, the C library's logf on the last n % 4 values (docs/operators.md
// (O27)). Plain float operations (no contraction), so one portable translation unit serves
// every path.
#pragma once
#include <cstdint>

namespace lowp {

// y[i] = log(x[i]) for i < n as ONNX Runtime's Log computes it (x == y allowed);
// threads <= 0: all.
void run_float_log(const float* x, float* y, int64_t n, int threads);

}  // namespace lowp
