// Kernel layer: float32 element-wise glue (binary arithmetic with broadcasting, clamp, and
// the 8-bit -> float32 table lookup that dequantizes), portable C++ compiled without FMA
// contraction: each element is one IEEE operation, so the results equal numpy's bit for bit
// on every instruction-set path.
#pragma once

#include <cstdint>

namespace lowp {

// Max and Min are ONNX Runtime's (Eigen's packets and scalar tails, docs/operators.md
// (O105): NaN propagates; of +0 and -0 and of two NaNs the operand its position gives);
// PRelu is a >= 0 ? a : a * b; ClipLow and ClipHigh are ONNX Runtime's
// Clip by a bound b (Eigen's cwiseMax / cwiseMin): a < b ? b : a and b < a ? b : a, so -0
// and NaN of a stay and a NaN bound clamps nothing.
enum FloatBinaryOp { kFloatAdd = 0, kFloatSub = 1, kFloatMul = 2, kFloatDiv = 3,
                     kFloatMax = 4, kFloatMin = 5, kFloatPRelu = 6, kFloatClipLow = 7,
                     kFloatClipHigh = 8, kFloatBinaryCount = 9 };

// y[i0, i1, i2, i3] = a[...] op b[...] over dims[4] (the broadcast shape, collapsed to four
// axes, leading ones padded); a_st / b_st are element strides (0 on a broadcast axis); y is
// contiguous. The caller checks that every index stays inside the arrays.
// Where ONNX Runtime has the elements of a flattened Add or Mul output whose run of
// docs/operators.md (O116) is the whole output, for the NaN of two NaNs (two_nans):
// - channels_last: y is (N, H W, C) (a replay on channels-last data), ONNX Runtime's
//   output (N, C, H W), (O197);
// - block > 0: y is (N, C, H W), ONNX Runtime's the NCHWc (N, ceil(C / block), H W, block),
//   channels padded to whole blocks (an Add its layout transformer runs blocked), (O196);
// neither: y's own places. channels and plane (H W) describe y.
struct OrtPlaces {
  int64_t block = 0, channels = 0, plane = 0;
  bool channels_last = false;
};

struct FloatBinaryArgs {
  const float* a = nullptr;
  const float* b = nullptr;
  float* y = nullptr;
  int op = kFloatAdd;
  int64_t dims[4] = {1, 1, 1, 1};
  int64_t a_st[4] = {0, 0, 0, 0};
  int64_t b_st[4] = {0, 0, 0, 0};
  // where ONNX Runtime has each element (OrtPlaces)
  OrtPlaces places;
};
void run_float_binary(const FloatBinaryArgs& a, int threads);

// A chain of element-wise operators fused into one pass (lowp.runtime.fuse_float): the
// output is computed block by block (kFusedBlock values, in registers of that many floats
// each per thread, L1-resident), every instruction on the whole block before the next, by
// the same per-element arithmetic as the operator's own kernel (run_float_binary,
// run_float_clamp's Relu, run_float_sqrt, the active path's FloatKernels::unary), so the
// result equals running the operators one by one bit for bit, on every path and thread
// count. Instruction (op, dst, a, b): op a FloatBinaryOp (a op b), kFusedUnary + a
// FloatUnaryOp (op(a), alpha = beta = 0), kFusedRelu or kFusedSqrt (of a); dst a register
// (>= 0) or -1 for y (the last instruction's, only); operands a register (>= 0) or input
// -1 - i. Inputs are read at element strides over dims (0 on broadcast axes), as
// FloatBinaryArgs reads its operands; y is contiguous.
enum FusedOp { kFusedUnary = 16, kFusedRelu = 32, kFusedSqrt = 33 };
constexpr int64_t kFusedBlock = 512;
struct FusedInstr {
  int op = kFloatAdd, dst = -1, a = 0, b = 0;
};
struct FusedInput {
  const float* p = nullptr;
  int64_t st[4] = {0, 0, 0, 0};
};
struct FloatFusedArgs {
  const FusedInstr* code = nullptr;
  int count = 0;      // instructions
  int registers = 0;  // registers the code uses
  const FusedInput* inputs = nullptr;
  int n_inputs = 0;
  float* y = nullptr;
  int64_t dims[4] = {1, 1, 1, 1};
  OrtPlaces places;   // of every Add and Mul of the chain whose run is the whole output
};
void run_float_fused(const FloatFusedArgs& a, int threads);

// y = x < lo ? lo : x, then hi < y ? hi : y (ONNX Runtime's Clip, MLAS's Relu and Clip
// activations: a NaN, and -0 against a bound of +0, stay as they are); either bound may
// be off. y may be x.
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
