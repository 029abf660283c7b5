// The C library's float32 functions over an array (lowp.libm, docs/operators.md (O50)):
// ONNX Runtime computes Tan, Sinh, Cosh, Asinh, Acosh and Atanh with std::tan(float), ...
// element by element, and glibc's are not correctly rounded, so the only exact form is a
// call of the same function per element. This loop makes those calls from C++ instead of
// one ctypes call per element from Python; the values are the function's own.
#pragma once
#include <cstdint>

namespace lowp {

// Codes of the functions (lowp.runtime.native_float.LIBM_CODES).
enum class LibmFunction : int {
  kLogf = 0, kLog1pf, kSinf, kCosf, kTanf, kAsinf, kAcosf, kSinhf, kCoshf, kAsinhf, kAcoshf,
  kAtanhf, kCount
};

// y[i] = f(x[i]) for i < n with the C library's f (x == y allowed); threads <= 0: all.
// Throws std::invalid_argument for an unknown code.
void run_float_libm(int code, const float* x, float* y, int64_t n, int threads);

// y[i] = powf(x[i], e) for i < n with the C library's powf (x == y allowed); threads <= 0:
// all. ONNX Runtime's Pow by one float32 exponent other than 2 and 3 calls
// std::pow(float, float) per element: powf(-0, 0.5) is +0 and powf(-inf, 0.5) +inf where
// sqrtf gives -0 and NaN, and glibc's powf is not correctly rounded, so it is not sqrtf.
void run_float_powf(const float* x, float e, float* y, int64_t n, int threads);

}  // namespace lowp
