// Kernel layer: float32 element-wise glue (binary arithmetic with broadcasting, clamp, and
// the 8-bit -> float32 table lookup that dequantizes), portable C++ compiled without FMA
// contraction: each element is one IEEE operation, so the results equal numpy's bit for bit
// on every instruction-set path.
#pragma once

#include <cstdint>

namespace lowp {

// Max and Min are numpy's maximum / minimum (NaN propagates; of two equal values the
// second operand); PRelu is a >= 0 ? a : a * b.
enum FloatBinaryOp { kFloatAdd = 0, kFloatSub = 1, kFloatMul = 2, kFloatDiv = 3,
                     kFloatMax = 4, kFloatMin = 5, kFloatPRelu = 6, kFloatBinaryCount = 7 };

// y[i0, i1, i2, i3] = a[...] op b[...] over dims[4] (the broadcast shape, collapsed to four
// axes, leading ones padded); a_st / b_st are element strides (0 on a broadcast axis); y is
// contiguous. The caller checks that every index stays inside the arrays.
struct FloatBinaryArgs {
  const float* a = nullptr;
  const float* b = nullptr;
  float* y = nullptr;
  int op = kFloatAdd;
  int64_t dims[4] = {1, 1, 1, 1};
  int64_t a_st[4] = {0, 0, 0, 0};
  int64_t b_st[4] = {0, 0, 0, 0};
};
void run_float_binary(const FloatBinaryArgs& a, int threads);

// y = minimum(maximum(x, lo), hi) with numpy's rules (NaN propagates; of two equal values
// the second operand, so maximum(-0, +0) = +0); either bound may be off. y may be x.
void run_float_clamp(const float* x, float* y, int64_t n, float lo, float hi, bool use_lo,
                     bool use_hi, int threads);

// y[i] = table[x[i]] (x bytes, table 256 float32). A table that is a DequantizeLinear's,
// table[v] = float(code(v) - zp) * scale bit for bit for every byte v (code: v as uint8 or
// int8), is computed that way instead (one conversion and one multiplication per value,
// which vectorize; the table stays the definition: `affine_table` checks every entry).
struct AffineTable {
  bool affine = false, is_signed = false;
  int32_t zero_point = 0;
  float scale = 0.0f;
};
AffineTable affine_table(const float* table);
void run_lookup8_f32(const uint8_t* x, const float* table, const AffineTable& form, float* y,
                     int64_t n, int threads);

}  // namespace lowp
