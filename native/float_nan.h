// Which NaN x86's SSE / AVX arithmetic hands on, for the kernels that mirror ONNX Runtime's
// compiled or assembly code where NaNs meet: of two NaNs the first operand's, quieted. The
// operations are written out so that no compiler swaps the operands of a plain + or *.
// In an anonymous namespace: each translation unit (compiled with its own ISA flags) has
// its copy.
#pragma once

#include <cstdint>
#include <cstring>

namespace lowp {
namespace {

// `v` with the quiet bit set (a NaN as x86 arithmetic passes it on)
inline float quieted(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  bits |= 0x00400000u;
  std::memcpy(&v, &bits, 4);
  return v;
}

// a + b with x86's NaN: a's (quieted), else b's
inline float first_nan_add(float a, float b) {
  if (a != a) return quieted(a);
  if (b != b) return quieted(b);
  return a + b;
}

// a - b with x86's NaN: a's (quieted), else b's
inline float first_nan_sub(float a, float b) {
  if (a != a) return quieted(a);
  if (b != b) return quieted(b);
  return a - b;
}

// a * b with x86's NaN: a's (quieted), else b's
inline float first_nan_mul(float a, float b) {
  if (a != a) return quieted(a);
  if (b != b) return quieted(b);
  return a * b;
}

// The plain operations, for kernels templated on their arithmetic (`FirstNan` below where
// a NaN came out and its payload must be ONNX Runtime's)
struct PlainArithmetic {
  static float add(float a, float b) { return a + b; }
  static float sub(float a, float b) { return a - b; }
  static float mul(float a, float b) { return a * b; }
};

struct FirstNanArithmetic {
  static float add(float a, float b) { return first_nan_add(a, b); }
  static float sub(float a, float b) { return first_nan_sub(a, b); }
  static float mul(float a, float b) { return first_nan_mul(a, b); }
};

}  // namespace
}  // namespace lowp
