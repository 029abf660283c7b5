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

}  // namespace lowp
