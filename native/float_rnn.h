// The ONNX RNN operator in float32 as ONNX Runtime's CPU kernel computes it (lowp.runtime.
// float_nn._rnn_ort, docs/operators.md (O58)): per direction X W^T accumulated by MLAS into
// the rows Wb + Rb (beta = 1), per step H_prev R^T by MLAS plus that step's rows, the clip,
// then the activation with the C library's expf / logf per element where ONNX Runtime's
// functors call them.
#pragma once
#include <cstdint>

namespace lowp {

// Activation codes (lowp.runtime.native_rnn.RNN_ACTIVATIONS, in this order).
enum class RnnActivation : int {
  kAffine = 0, kRelu, kLeakyRelu, kThresholdedRelu, kTanh, kScaledTanh, kSigmoid,
  kHardSigmoid, kElu, kSoftsign, kSoftplus, kCount
};

// One node, all directions; every array contiguous.
//   x (T, B, I); w (D, H, I); r (D, H, H); bias (D, 2 H) or null; h0 (D, B, H) or null
//   lens (B) any values, or null (all T): step t of row b is valid when t < lens[b]
//   y (T, D, B, H) and yh (D, B, H): every element written
struct FloatRnnArgs {
  int64_t t = 0, b = 0, i = 0, h = 0, d = 0;
  const float* x = nullptr;
  const float* w = nullptr;
  const float* r = nullptr;
  const float* bias = nullptr;
  const float* h0 = nullptr;
  const int64_t* lens = nullptr;
  float* y = nullptr;
  float* yh = nullptr;
  int act[2] = {int(RnnActivation::kTanh), int(RnnActivation::kTanh)};
  float alpha[2] = {0.0f, 0.0f}, beta[2] = {0.0f, 0.0f};
  bool reverse[2] = {false, true};
  bool has_clip = false;  // clip: std::min(clip, v), then std::max(-clip, v)
  float clip = 0.0f;
};

// ONNX Runtime's activation functor `code` (rnn_activation_functors.h, as `activate` applies
// it for the RNN operator) over v[0, n) in place: the DeepCPU LSTM and GRU kernels' composed
// activations (recurrent.h, RnnActs), with the C library's expf / logf.
void rnn_functor(int code, float alpha, float beta, float* v, int64_t n);

// Directions as independent tasks on up to `threads` threads; each product in the operations
// ONNX Runtime's MlasGemm cuts it into between `threads` intra-op threads (each computed on
// the calling thread), so the values are ONNX Runtime's at that thread count.
void run_float_rnn(const FloatRnnArgs& a, int threads);

// out[r] (r < nrows) = x . row r of `rows` (nrows x k, contiguous) as the MLAS-order SGEMM's
// one-row transposed kernel sums it (sgemm_m1_transposed, beta = 0), in 256-bit registers
// (float_rnn_avx2.cpp, -mavx2; for the paths that have AVX2).
void rnn_m1_transposed_avx2(const float* x, const float* rows, float* out, int64_t nrows,
                            int64_t k);

// y[r] (r < nrows) = x . row r of `rows` (row r at rows + r * sr, unit stride along k) as
// the one-row transposed kernel folds it before its beta term (sgemm_m1_transposed's `y`),
// in 256-bit registers (float_rnn_avx2.cpp); run_mlas_sgemm's one-column and one-row
// products with unit strides take it on the paths that have AVX2.
void m1_transposed_folds_avx2(const float* x, const float* rows, int64_t sr, float* y,
                              int64_t nrows, int64_t k);

}  // namespace lowp
