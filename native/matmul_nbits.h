// ONNX Runtime 1.32's MatMulNBits (bits 8 or 4, blocks of 16, 32, 64 or 128, accuracy
// level 4, CompInt8 on AVX-512 VNNI) with the float operations of lowp.ops.matmul_nbits,
// the reference, in its order:
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
  // the same weight in panels of 16 columns (the last one padded with zero scales), for the
  // AVX-512 VNNI kernel: (panels, blocks, 8, 16, 4) bytes, scales and bblk (panels,
  // blocks, 16)
  const uint8_t* wp = nullptr;
  const float* scale_p = nullptr;
  const float* bblk_p = nullptr;
  int64_t m = 0, k = 0, n = 0, blocks = 0;
  // blocks of 16, 64 and 128 (lowp.ops.matmul_nbits.LaneLayout): whole groups of `group`
  // blocks as 16 lanes of 8 products, the products of lane l at perm[8 l .. 8 l + 7] of the
  // group, its scale that of block lane_block[l]; the `rem` blocks after them in rem_lanes
  // lanes (8: the 16 folded to 8 first; 16: kept), lane j the next block / rem_lanes k
  int64_t block = 32, group = 0, groups = 0, rem = 0, rem_lanes = 0;
  const uint8_t* w_lanes = nullptr;     // n x groups x 16 x 8, lane-major
  const uint8_t* w_rem = nullptr;       // n x rem x block
  const int32_t* perm = nullptr;        // group * block
  const int32_t* lane_block = nullptr;  // 16
  bool pair_fold16 = false;  // 16 lanes: a pair of rows folds groups of four columns as
                             // FoldAccumulators (else hsum_float_16)
  // the same in panels of 16 columns for the AVX-512 VNNI kernel (with scale_p, bblk_p):
  // (panels, groups, 16, 2, 16, 4) and (panels, rem, rem_lanes, 16, 4) bytes
  const uint8_t* wp_lanes = nullptr;
  const uint8_t* wp_rem = nullptr;
};

// Rows [m0, m1) and columns [n0, n1) of y.
using NBitsKernel = void (*)(const NBitsArgs& a, int64_t m0, int64_t m1, int64_t n0,
                             int64_t n1);
void nbits_rows_scalar(const NBitsArgs&, int64_t, int64_t, int64_t, int64_t);
void nbits_rows_avx2(const NBitsArgs&, int64_t, int64_t, int64_t, int64_t);
void nbits_rows_avx512(const NBitsArgs&, int64_t, int64_t, int64_t, int64_t);
// Rows [m0, m1) and panels of 16 columns [p0, p1): vpdpbusd over 16 columns at once, the
// float steps as the others' per column, each a vector of 16 columns.
void nbits_panels_avx512(const NBitsArgs& a, int64_t m0, int64_t m1, int64_t p0, int64_t p1);

// Blocks of 16, 64 and 128: rows [m0, m1) and columns [n0, n1), the float steps of
// lowp.ops.matmul_nbits.PackedNBits._rows_lanes in their order.
void nbits_lanes_scalar(const NBitsArgs&, int64_t, int64_t, int64_t, int64_t);
void nbits_lanes_avx2(const NBitsArgs&, int64_t, int64_t, int64_t, int64_t);
void nbits_lanes_avx512(const NBitsArgs&, int64_t, int64_t, int64_t, int64_t);
// Rows [m0, m1) and panels of 16 columns [p0, p1), vpdpbusd over 16 columns at once.
void nbits_lanes_panels_avx512(const NBitsArgs& a, int64_t m0, int64_t m1, int64_t p0,
                               int64_t p1);

// The whole product on the active path's kernel; threads <= 0: all.
void run_matmul_nbits(const NBitsArgs& a, int threads);

}  // namespace lowp
