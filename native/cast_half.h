// float16 <-> float32 conversion as ONNX Runtime's Cast makes it on x86 (MLAS's F16C
// kernels): vcvtph2ps, and vcvtps2ph rounding to nearest even (a NaN keeps its sign and its
// top payload bits and comes out quiet; overflow gives inf; subnormals exact or rounded).
#pragma once
#include <cstdint>

namespace lowp {

// True when the CPU has F16C (and AVX), which the two conversions below need.
bool has_f16c();

// y[i] = float32(x[i]) for the float16 bit patterns x; n elements, `threads` workers.
void half_to_float(const uint16_t* x, float* y, int64_t n, int threads);

// y[i] = float16 bit pattern of x[i], rounded to nearest even.
void float_to_half(const float* x, uint16_t* y, int64_t n, int threads);

}  // namespace lowp
