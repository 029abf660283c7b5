// Recurrent layers (ONNX LSTM and GRU in float32, ONNX Runtime's DeepCPU order): the driver's
// arguments and the per-ISA microkernel table of the recurrence. The weights are packed once
// by the caller (lowp.runtime.native_rnn); the driver projects the inputs of every time step
// (X W^T, one product) and runs the sequential part.
#pragma once
#include <cstdint>

namespace lowp {

// Every gate block and state row is padded to a multiple of this many floats (zero-filled),
// so the cells only ever see whole vectors of every width.
constexpr int kRnnAlign = 16;
// Packed recurrence weights: a block of gates (LSTM: i, o, f, c; GRU: z, r, then h apart)
// as R^T (H x width, each gate's columns padded to hp) cut into panels of this many columns,
// each panel H rows of kRnnPanel floats (k-major), the last one zero-padded. A tile of the
// product reads one panel front to back.
constexpr int kRnnPanel = 64;

// Floats of one packed block of `width` columns over `h` rows.
inline int64_t rnn_packed_size(int64_t h, int64_t width) {
  return (width + kRnnPanel - 1) / kRnnPanel * kRnnPanel * h;
}

// A direction's activations other than the defaults (docs/operators.md, (O62)): codes of
// native/float_rnn.h's RnnActivation with their alpha and beta, LSTM f, g, h; GRU f, g.
// Sigmoid and Tanh are MLAS's logistic and tanh where ONNX Runtime's DeepCPU kernels call
// them, Relu MLAS's maxps(0, v) or the fused forms' v > 0 ? v : 0, the others the
// functors of float_rnn.h (rnn_functor), element by element.
struct RnnActs {
  int code[3] = {0, 0, 0};
  float alpha[3] = {0.0f, 0.0f, 0.0f};
  float beta[3] = {0.0f, 0.0f, 0.0f};
};

// LSTM cell on one batch row, hp = padded hidden size. g: pre-activations i, o, f, c (each hp
// floats, recurrence included); h, c: the state, updated in place; p: padded peepholes
// i, o, f (3 * hp) or null. clip = FLT_MAX when the node has none.
struct LstmCell {
  const float* g = nullptr;
  const float* b = nullptr;  // bias Wb + Rb (4 * hp: i, o, f, c) or null
  float* h = nullptr;
  float* c = nullptr;
  const float* p = nullptr;
  int hp = 0;
  float clip = 0.0f;
  bool input_forget = false;
  const RnnActs* acts = nullptr;  // null: the defaults
  float* work = nullptr;          // with acts: the row's gates, writable (4 * hp)
};

// GRU cell on one batch row in ONNX Runtime's DeepCPU order (lowp.runtime.float_nn.
// _gru_ort_direction). g: z and r pre-activations (2 * hp, recurrence included); b: biases
// z, r, h (3 * hp: Wb + Rb, and for h Wb alone with linear_before_reset) or null.
//  * gru_reset: r from the r gate, rh = (lin or h) * 0.5 * (1 + ratio(0.5 * r)), where lin
//    is h @ Rh^T + Rbh (linear_before_reset) or null.
//  * gru_update: gh holds xh + rh @ Rh^T, or with linear_before_reset xh and rh is added;
//    z from the z gate, h = (1 - z) * ratio(gh) + z * h.
struct GruCell {
  const float* g = nullptr;
  const float* b = nullptr;
  const float* lin = nullptr;
  float* gh = nullptr;
  float* rh = nullptr;
  float* h = nullptr;
  int hp = 0;
  float clip = 0.0f;
  bool add_rh = false;  // linear_before_reset: gh = xh + rh
  const RnnActs* acts = nullptr;  // null: the defaults
  float* work = nullptr;          // with acts: the row's gates z, r, h, writable (3 * hp)
};

// c (m x n) += a (m x k) @ b, b packed (kRnnPanel panels of k rows), the columns of one K
// block of 256 summed as a chain of fused multiply-adds from +0 and added to c (ONNX
// Runtime's prepacked MLAS GEMM with beta = 1); with `store` c = the first block's sum
// (beta = 0). n is a multiple of kRnnAlign.
using RnnGemmFn = void (*)(int m, int n, int k, const float* a, int64_t lda, const float* bp,
                           float* c, int64_t ldc, bool store);

struct RnnKernels {
  const char* name;
  RnnGemmFn gemm;
  void (*lstm_cell)(const LstmCell& a);
  void (*gru_reset)(const GruCell& a);
  void (*gru_update)(const GruCell& a);
};

extern const RnnKernels kRnnScalar;
extern const RnnKernels kRnnAvx2;
extern const RnnKernels kRnnAvx512;

// The kernels of the active instruction-set path: scalar for "scalar", the 256-bit FMA
// kernels for "avx2", "avxvnni" and "avxvnni_evex", the 512-bit ones for "avx512vnni" and
// "amx".
const RnnKernels& active_rnn_kernels();

// One LSTM or GRU node, all directions. Strides are in floats; every innermost stride is 1.
//   x   (T, B, I) contiguous input
//   w   per direction `w_sd` floats: W packed (kRnnPanel) as one block of G * hp columns
//       over I rows
//   r   per direction `r_sd` floats: R packed, LSTM one block of 4 * hp columns, GRU a block
//       of 2 * hp (z, r) then one of hp (h), over H rows
//   p   (D, 3*H) contiguous peepholes or null (LSTM)
//   h0, c0 (B, D, H) initial states or null (zeros)
//   lens (B) sequence lengths in [0, T] or null (all T)
//   y (T, B, D, H) or null; yh, yc (B, D, H) or null
// The biases are added after the recurrence, as ONNX Runtime does. Steps t >= lens[b] give
// zeros in y and keep the state; reverse directions run each sequence's valid prefix
// backwards.
struct RnnArgs {
  bool gru = false;
  int64_t t = 0, b = 0, d = 0, h = 0, i = 0;
  const float* x = nullptr;
  const float* w = nullptr;
  int64_t w_sd = 0;
  const float* r = nullptr;
  int64_t r_sd = 0;
  const float* p = nullptr;
  const float* bias = nullptr;  // D * 2 * G * H (Wb then Rb per direction), or null
  const float* h0 = nullptr;
  const float* c0 = nullptr;
  int64_t h0_sb = 0, h0_sd = 0, c0_sb = 0, c0_sd = 0;
  const int32_t* lens = nullptr;
  float* y = nullptr;
  int64_t y_st = 0, y_sb = 0, y_sd = 0;
  float* yh = nullptr;
  float* yc = nullptr;
  int64_t yh_sb = 0, yh_sd = 0, yc_sb = 0, yc_sd = 0;
  const bool* reverse = nullptr;  // per direction
  float clip = 0.0f;              // FLT_MAX: none
  bool input_forget = false;      // LSTM
  bool linear_before_reset = false;  // GRU
  const RnnActs* acts = nullptr;     // per direction, or null: the defaults
};

// Runs the directions as independent tasks on up to `threads` threads, or a single direction
// with its larger products cut between them (the result does not depend on the thread count).
void run_rnn(const RnnArgs& a, int threads);

}  // namespace lowp
