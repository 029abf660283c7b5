// The C library's float functions over an array (float_libm.h). Compiled with -fno-builtin
// on top of the common flags (no -ffast-math, so no vector math library either): every
// element is one call of the C library's own tanf, sinhf, ...; the compiler can neither
// replace nor vectorize a call through a pointer chosen at run time.
#include "float_libm.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "threadpool.h"

namespace lowp {

namespace {

using FloatFn = float (*)(float);

// in the order of LibmFunction
const FloatFn kFunctions[] = {&::logf,  &::log1pf, &::sinf,  &::cosf,   &::tanf,   &::asinf,
                              &::acosf, &::sinhf,  &::coshf, &::asinhf, &::acoshf, &::atanhf};
static_assert(sizeof(kFunctions) / sizeof(kFunctions[0]) == int(LibmFunction::kCount));

}  // namespace

void run_float_libm(int code, const float* x, float* y, int64_t n, int threads) {
  if (code < 0 || code >= int(LibmFunction::kCount))
    throw std::invalid_argument("float_libm: unknown function code " + std::to_string(code));
  if (n <= 0) return;
  const FloatFn fn = kFunctions[code];
  // some 10-50 ns a value: a thread pays from a few thousand values
  run_elementwise(n, int64_t(1) << 12, threads, [&](int64_t i0, int64_t len) {
    for (int64_t i = i0; i < i0 + len; ++i) y[i] = fn(x[i]);
  });
}

void run_float_powf(const float* x, float e, float* y, int64_t n, int threads) {
  if (n <= 0) return;
  // (powf through a pointer too: with -fno-builtin the compiler keeps the call as it is)
  float (*const fn)(float, float) = &::powf;
  run_elementwise(n, int64_t(1) << 12, threads, [&](int64_t i0, int64_t len) {
    for (int64_t i = i0; i < i0 + len; ++i) y[i] = fn(x[i], e);
  });
}

}  // namespace lowp
