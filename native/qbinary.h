// Driver layer: quantized Add (O10a) and Mul (O11a) of two 8-bit tensors with numpy
// broadcasting, computed in float32 as ONNX Runtime's QLinearAdd / QLinearMul kernels do
// (bit for bit with lowp.ops.elementwise.add / mul in float32 mode). The broadcast shape is
// collapsed to four axes with element strides (0 on a broadcast axis); y is contiguous.
#pragma once

#include <cstdint>

namespace lowp {

struct QBinaryArgs {
  const uint8_t* a = nullptr;
  const uint8_t* b = nullptr;
  uint8_t* y = nullptr;
  int64_t dims[4] = {1, 1, 1, 1};
  int64_t a_st[4] = {0, 0, 0, 0};
  int64_t b_st[4] = {0, 0, 0, 0};
  bool a_signed = false, b_signed = false;
  bool mul = false;
  // add: y = fma(a, ma, fma(b, mb, c)) (the caller orders the operands, (O10a));
  // mul: y = float32(float32((a - za) * (b - zb)) * ma) + c, c = float32(zy)
  float ma = 1.0f, mb = 1.0f, c = 0.0f;
  int32_t za = 0, zb = 0;
  int32_t qmin = 0, qmax = 255;  // y = clamp(round_half_even(y), qmin, qmax)
};

// One row of n outputs: operand elements at a[j * sa], b[j * sb].
using QBinaryRowFn = void (*)(const QBinaryArgs& p, const uint8_t* a, int64_t sa,
                              const uint8_t* b, int64_t sb, uint8_t* y, int64_t n);

void qbinary_row_portable(const QBinaryArgs& p, const uint8_t* a, int64_t sa, const uint8_t* b,
                          int64_t sb, uint8_t* y, int64_t n);
// AVX-512 (qbinary_avx512.cpp): rows whose strides are 0 or 1, else the portable row.
void qbinary_row_avx512(const QBinaryArgs& p, const uint8_t* a, int64_t sa, const uint8_t* b,
                        int64_t sb, uint8_t* y, int64_t n);

// The active path's row (AVX-512 on the avx512vnni and amx paths), split over `threads`.
void run_qbinary(const QBinaryArgs& p, int threads);

}  // namespace lowp
