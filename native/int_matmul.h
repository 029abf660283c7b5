// Driver layer: the integer core of ONNX Runtime's quantize_dynamic files. IntMatMul is
// MatMulInteger with a constant B, packed once into the GEMM panels of the quantized
// convolution (conv.h, docs/native.md) and run on the active path's plain GEMM microkernel
// with an int32 epilogue; run_dynamic_quantize is DynamicQuantizeLinear on float32.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "common.h"
#include "conv.h"
#include "conv_rows.h"

namespace lowp {

class IntMatMul {
 public:
  // b: k x n bytes (int8 when b_signed, else uint8), row-major; b_zp: n zero points (one
  // per column; a per-tensor zero point repeated), in b's type.
  IntMatMul(const uint8_t* b, int64_t k, int64_t n, bool b_signed, const int32_t* b_zp);
  // y (m x n int32, row-major) = (a - a_zp) @ (b - b_zp) modulo 2^32 (ONNX MatMulInteger
  // with int32 wrapping); a: m x k bytes (int8 when a_signed), a_zp in a's type.
  void run(const uint8_t* a, int64_t m, bool a_signed, int32_t a_zp, int32_t* y,
           int threads) const {
    run(a, m, a_signed, a_zp, y, nullptr, nullptr, nullptr, false, nullptr, threads);
  }
  // The same product scaled to float32 (MatMulIntegerToFloat, the Cast, Mul and bias Add it
  // replaces): yf = float32(acc) * float32(a_scale[0] * b_scale[c or 0]), then + bias[c]
  // when bias is set (n values), each step rounded once to float32 in that order, as MLAS's
  // scale-bias output processor; exactly one of y, yf is set.
  void run(const uint8_t* a, int64_t m, bool a_signed, int32_t a_zp, int32_t* y, float* yf,
           const float* a_scale, const float* b_scale, bool b_scale_per_column,
           const float* bias, int threads) const;
  // Per-token dynamic quantization and this product in one call (docs/quantization.md (D1)-
  // (D4), lowp.runtime.per_token_fusion): each row of x (m x k float32, k > 0) is quantized
  // to uint8 with its own scale and zero point as lowp.ops.linear.quantize_rows computes them
  // (lo = min(0, min x), hi = max(0, max x), scale = max(hi - lo, tiny) / 255, zp =
  // clamp(rint(-lo / scale), 0, 255), q = clamp(rint(x / scale) + zp, 0, 255)), then
  // yf = float32(acc) * float32(scale * b_scale[c or 0]) (+ bias[c]), acc the int32 sum of
  // (q - zp)(b - b_zp) wrapping; each step rounded once to float32 in that order. A row
  // holding a NaN or an infinity, or whose range overflows, gets the values the unfused
  // operators give it (lowp.runtime.per_token_fusion._unfused on x86).
  void run_per_token(const float* x, int64_t m, const float* b_scale, bool b_scale_per_column,
                     const float* bias, float* yf, int threads) const;
  // ConvInteger of x (g.n, g.c, g.h, g.w bytes, int8 when a_signed) by this B as its
  // (kh kw c) x m weight, rows in (ky, kx, ci) order (the (m, c, kh, kw) weight transposed
  // to (kh, kw, c, m)): the input copied channels-last, each output pixel's window gathered
  // as kh kw runs of c bytes (a tap in the padding reads a_zp, so that it contributes
  // zero) into a row, the product as run's, and the result written as y (g.n, m, g.oh,
  // g.ow) int32 (NCHW). Needs k == c kh kw. With
  // `bias` (int32, one per output channel, or one when not bias_per_channel) each value is
  // acc + bias modulo 2^32 (ONNX Runtime's int32 Add after ConvInteger); with yf instead of
  // y it is written as float32, rounded to nearest (the Cast to float that follows), and
  // with `scale` (one float32) multiplied by it, rounded once (the Mul after the Cast).
  void run_conv(const uint8_t* x, const ConvRowsGeometry& g, bool a_signed, int32_t a_zp,
                const int32_t* bias, bool bias_per_channel, int32_t* y, float* yf,
                const float* scale, int threads) const;
  int64_t k() const { return k_; }
  int64_t n() const { return n_; }

 private:
  // the product of m rows of kp bytes at ap (uint8 domain, zeros past k) whose sums are
  // rowsum: za[i * za_step] the activation zero point of row i (in the uint8 domain),
  // a_scale[i * scale_step] its scale; output as run's
  void product(const uint8_t* ap, int64_t kp, const int32_t* rowsum, int64_t m,
               const uint32_t* za, int64_t za_step, int32_t* y, float* yf,
               const float* a_scale, int64_t scale_step, const float* b_scale,
               bool b_scale_per_column, const float* bias, int threads) const;
  int64_t k_ = 0, n_ = 0;
  int kc4_ = 0, npanels_ = 0;
  std::shared_ptr<Panels> panels_;
  std::vector<int32_t> colsum_;  // per column: sum over k of b8 = b - delta (mod 2^32)
  std::vector<int32_t> zb_;      // per column: zb' = b_zp - delta
  bool need_rowsum_ = false;     // some zb' != 0
};

// DynamicQuantizeLinear of n float32 values (the numpy operator lowp.runtime.float_ops
// .DynamicQuantizeLinear, bit for bit): scale = (max(0, max x) - min(0, min x)) / 255,
// zp = clamp(rint(-min / scale), 0, 255), y = clamp(rint(x / scale) + zp, 0, 255), float32
// with ties to even; a NaN anywhere gives scale 0, zp 0 and y 0 (as the reference's range).
void run_dynamic_quantize(const float* x, int64_t n, uint8_t* y, float* scale, uint8_t* zp,
                          int threads);

}  // namespace lowp
