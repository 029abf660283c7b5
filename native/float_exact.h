// Float32 operations of one IEEE operation per element (correctly rounded, so every
// implementation gives the same bits, numpy's included): the square root, floor (its NaNs as
// ONNX Runtime's runs give them). Portable loops; the compiler's vector square root is the
// same instruction.
#pragma once
#include <cstdint>

namespace lowp {

// y[i] = sqrt(x[i]) for i < n (x == y allowed); threads <= 0: all.
void run_float_sqrt(const float* x, float* y, int64_t n, int threads);

// y[i] = floor(x[i]) (exact: the integral value at or below x, -0 and infinities as they
// are) for i < n as ONNX Runtime's Floor gives it: the values cut into runs as in
// run_float_log (ends, runs == 0: one run), a NaN quieted in each run's packets of four and
// kept as it is on its last (length % 4) values (docs/operators.md (O148)). x == y allowed;
// threads <= 0: all.
void run_float_floor(const float* x, float* y, int64_t n, const int64_t* ends, int64_t runs,
                     int threads);

}  // namespace lowp
