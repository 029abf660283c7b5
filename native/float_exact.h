// Float32 operations of one IEEE operation per element (correctly rounded, so every
// implementation gives the same bits, numpy's included): the square root, floor. Portable loops;
// the compiler's vector square root is the same instruction.
#pragma once
#include <cstdint>

namespace lowp {

// y[i] = sqrt(x[i]) for i < n (x == y allowed); threads <= 0: all.
void run_float_sqrt(const float* x, float* y, int64_t n, int threads);

// y[i] = floor(x[i]) (exact: the integral value at or below x, -0 and infinities as they
// are, NaN stays NaN) for i < n (x == y allowed); threads <= 0: all.
void run_float_floor(const float* x, float* y, int64_t n, int threads);

}  // namespace lowp
