// ONNX Runtime 1.32's MatMulNBits (bits 8, block 32, accuracy level 4, CompInt8 on AVX-512
// VNNI) with the float operations of lowp.ops.matmul_nbits, the reference, in its order:
// bit for bit (docs/native.md, "MatMulNBits"). Every float32 step is one IEEE operation
// (std::fma where the reference fuses); the integer dot products are exact, so any
// vectorization of them gives the same values. One source, compiled per path.
#pragma once
#include <cstdint>

namespace lowp {

struct NBitsArgs {
  const float* x = nullptr;        // m x k float32
  const uint8_t* w = nullptr;      // n x blocks x 32: the weight plus 128 (uint8), padded
  const float* scale = nullptr;    // n x blocks: s_b
  const float* bblk = nullptr;     // n x blocks: -s_b * z (QuantBBlkSum)
  const float* bias = nullptr;     // n, or null
  float* y = nullptr;              // m x n float32
  int64_t m = 0, k = 0, n = 0, blocks = 0;
};

// Rows [m0, m1) and columns [n0, n1) of y.
using NBitsKernel = void (*)(const NBitsArgs& a, int64_t m0, int64_t m1, int64_t n0,
                             int64_t n1);
void nbits_rows_scalar(const NBitsArgs&, int64_t, int64_t, int64_t, int64_t);
void nbits_rows_avx2(const NBitsArgs&, int64_t, int64_t, int64_t, int64_t);
void nbits_rows_avx512(const NBitsArgs&, int64_t, int64_t, int64_t, int64_t);

// The whole product on the active path's kernel; threads <= 0: all.
void run_matmul_nbits(const NBitsArgs& a, int threads);

}  // namespace lowp
