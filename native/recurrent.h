// Recurrent layers (ONNX LSTM and GRU in float32): the driver's arguments and the per-ISA
// microkernel table of the recurrence. The input projection X @ W^T + b is done by the caller
// (one BLAS matmul over all time steps); the driver runs the sequential part.
#pragma once
#include <cstdint>

namespace lowp {

// Every gate block, state row and packed weight row is padded to a multiple of this many
// floats (zero-filled), so the microkernels only ever see whole vectors of every width.
constexpr int kRnnAlign = 16;

// LSTM cell on one batch row, hp = padded hidden size. g: pre-activations i, o, f, c (each hp
// floats, recurrence included); h, c: the state, updated in place; p: padded peepholes
// i, o, f (3 * hp) or null. clip = +inf means no clip.
struct LstmCell {
  const float* g = nullptr;
  const float* b = nullptr;  // bias Wb + Rb (4 * hp: i, o, f, c) or null
  float* h = nullptr;
  float* c = nullptr;
  const float* p = nullptr;
  int hp = 0;
  float clip = 0.0f;
  bool input_forget = false;
};

// GRU cell on one batch row. g: pre-activations z, r, h (each hp floats).
//  * gru_reset (linear_before_reset = 0, first half): z, r = sigmoid(clip(g_z, g_r)) stored
//    in place of g_z, g_r, and rh = r * h (the operand of the second product).
//  * gru_update (second half): g_h already holds xh + rh @ Rh^T;
//    h = (1 - z) * tanh(clip(g_h)) + z * h.
//  * gru_lbr (linear_before_reset = 1): g_h holds h @ Rh^T + Rbh, xh the input part;
//    h = (1 - z) * tanh(clip(xh + r * g_h)) + z * h.
struct GruCell {
  float* g = nullptr;
  const float* xh = nullptr;
  float* h = nullptr;
  float* rh = nullptr;
  int hp = 0;
  float clip = 0.0f;
};

using RnnGemmFn = void (*)(int m, int n, int k, const float* a, int64_t lda, const float* b,
                           int64_t ldb, float* c, int64_t ldc);

struct RnnKernels {
  const char* name;
  // c[i][j] += sum_kk a[i * lda + kk] * b[kk * ldb + j] for i < m, j < n, kk < k;
  // n is a multiple of kRnnAlign.
  RnnGemmFn gemm;
  void (*lstm_cell)(const LstmCell& a);
  void (*gru_reset)(const GruCell& a);
  void (*gru_update)(const GruCell& a);
  void (*gru_lbr)(const GruCell& a);
  // y[i] = sigmoid(x[i]) / tanh(x[i]) for i < n (n a multiple of kRnnAlign); for tests.
  void (*sigmoid)(const float* x, float* y, int64_t n);
  void (*tanh)(const float* x, float* y, int64_t n);
};

extern const RnnKernels kRnnScalar;
extern const RnnKernels kRnnAvx2;
extern const RnnKernels kRnnAvx512;

// The kernels of the active instruction-set path: scalar for "scalar", the 256-bit FMA
// kernels for "avx2", "avxvnni" and "avxvnni_evex", the 512-bit ones for "avx512vnni".
const RnnKernels& active_rnn_kernels();

// One LSTM or GRU node, all directions. Strides are in floats; every innermost stride is 1.
//   xw  (T, B, D, G*H): input projection incl. every bias that adds linearly
//   r   (D, G*H, H) contiguous recurrence weights (ONNX R)
//   p   (D, 3*H) contiguous peepholes or null (LSTM)
//   rbh (D, H) contiguous recurrence bias of the h gate (GRU, linear_before_reset) or null
//   h0, c0 (B, D, H) initial states or null (zeros)
//   lens (B) sequence lengths in [0, T] or null (all T)
//   y (T, B, D, H) or null; yh, yc (B, D, H) or null
// Steps t >= lens[b] give zeros in y and keep the state; reverse directions run each
// sequence's valid prefix backwards.
struct RnnArgs {
  bool gru = false;
  int64_t t = 0, b = 0, d = 0, h = 0;
  const float* xw = nullptr;
  int64_t xw_st = 0, xw_sb = 0, xw_sd = 0;
  const float* r = nullptr;
  const float* p = nullptr;
  const float* rbh = nullptr;
  const float* bias = nullptr;  // LSTM: D * 8 * H (Wb then Rb per direction), or null
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
  float clip = 0.0f;              // +inf: none
  bool input_forget = false;      // LSTM
  bool linear_before_reset = false;  // GRU
};

// Runs the directions as independent tasks on up to `threads` threads (the result does not
// depend on the thread count).
void run_rnn(const RnnArgs& a, int threads);

}  // namespace lowp
