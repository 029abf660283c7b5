// com.microsoft DynamicQuantizeLSTM (docs/operators.md (O23q), docs/native.md): the
// recurrence of ONNX Runtime's quantized LSTM, lowp.runtime.quantized_lstm's numpy code bit
// for bit. Each product quantizes its float operand to uint8 from the operand's own range,
// takes the exact int32 product against the int8 weights and scales it in float32; the gates
// are the float LSTM's cell (recurrent.h). The weights are packed once by the caller
// (lowp.runtime.native_qlstm).
#pragma once
#include <cstdint>

namespace lowp {

class IntMatMul;

// Packed quantized weights of one direction (K x N, N = 4 * hp, gate columns padded as in
// recurrent.h): int8 b = w - offset (offset 128 for uint8 weights, else 0), so that
// w - zero_point = b - d with d = zero_point - offset. Cut into panels of kQPanel columns
// (N is a multiple of it); a panel holds ceil(K / 4) groups, each kQPanel columns of 4
// consecutive k (VNNI order), K zero-padded to a multiple of 4: a product reads a panel as
// one forward stream.
constexpr int kQPanel = 64;

inline int64_t qrnn_k4(int64_t k) { return (k + 3) / 4; }
inline int64_t qrnn_packed_size(int64_t k, int64_t n) { return qrnn_k4(k) * 4 * n; }

// The scaling of a product's int32 sums acc (qrecurrent.cpp): row r of the output, n
// floats at out[r], = float32(acc') * mult[n], plus out[r] when `add` (a product, then a
// sum), acc' = acc - za colsum[n] + base[r] (modulo 2^32; base = K za d - d Σ a of the row).
struct QScale {
  const uint32_t* base = nullptr;
  uint32_t za = 0;
  const int32_t* colsum = nullptr;
  const float* mult = nullptr;
  float* const* out = nullptr;
  bool add = false;
  // a hint: visit the column blocks last to first (the recurrence alternates directions from
  // step to step, so that the end of R read last is still in cache when the next step starts)
  bool backward = false;
};

// The product of a (m x 4 k4 uint8, row stride lda) and b (packed, n / 64 panels), wrapping
// modulo 2^32, scaled into e.out: the accumulators of a tile are scaled as it finishes
// (in registers on the AVX-512 path).
using QGemmFn = void (*)(int m, int n, int k4, const uint8_t* a, int64_t lda, const int8_t* b,
                         const QScale& e);

// A quantized operand's (scale, zero point).
struct QParams {
  float scale = 1.0f;
  int32_t zero_point = 0;
};

// The dynamic uint8 quantization of rows x cols floats (row stride ld) from their joint
// range (qrecurrent_quant.h): p, dst (row stride lda; bytes past cols untouched) and each
// row's sum of q. An operand holding a NaN takes MLAS's range, `span` values a call of it
// (0: one call; ONNX Runtime's split over its threads, (O189)) (each kernel sees the NaN in
// its range pass and calls qrnn_quantize_nan); an infinity gives an infinite scale, and
// values over it quantize as MLAS's do.
using QQuantFn = void (*)(const float* src, int64_t rows, int64_t cols, int64_t ld, uint8_t* dst,
                          int64_t lda, int32_t* rowsum, QParams& p, int64_t span);

struct QRnnKernels {
  const char* name;
  QGemmFn gemm;
  QQuantFn quantize;
};

extern const QRnnKernels kQRnnPortable;
extern const QRnnKernels kQRnnAvx2;
extern const QRnnKernels kQRnnAvx512Vnni;

// The kernels of the active instruction-set path ("avx512vnni" and "amx": 512-bit VNNI;
// "avx2", "avxvnni", "avxvnni_evex": 256-bit vpmaddwd; "scalar": portable loops). Every
// path gives the same int32 sums and float32 results.
const QRnnKernels& active_qrnn_kernels();

// One quantized weight: packed values, per-column int32 sums of b, d (above) and the
// float32 scale of every column (4 * hp, 0 in padding columns).
struct QWeight {
  const int8_t* b = nullptr;
  const int32_t* colsum = nullptr;
  int32_t d = 0;
  const float* scale = nullptr;
};

// One node, all directions; every array contiguous.
//   x (T, B, I); w[d], r[d]: K = I and K = H
//   p (D, 3 * H) or null; bias (D, 8 * H) or null
//   h0, c0 (D, B, H) or null (zeros); lens (B) in [0, T] or null (all T)
//   y (T, D, B, H), yh, yc (D, B, H)
// rows_per_task: batch rows whose H is quantized together (ONNX Runtime's task of rows);
// with_y: an entry past its length feeds zeros to the recurrent product, else its last H;
// x_span, h_span: the values of each of MLAS's min / max calls over an operand holding a NaN
// (X's first max(lens) steps, as each direction reads them; H, one task of the whole batch),
// 0 for one call (lowp.runtime.quantized_lstm.mlas_range_span, (O189)).
struct QLstmArgs {
  int64_t t = 0, b = 0, d = 0, h = 0, i = 0;
  const float* x = nullptr;
  QWeight w[2], r[2];
  const float* p = nullptr;
  const float* bias = nullptr;
  const float* h0 = nullptr;
  const float* c0 = nullptr;
  const int32_t* lens = nullptr;
  float* y = nullptr;
  float* yh = nullptr;
  float* yc = nullptr;
  bool reverse[2] = {false, false};
  float clip = 0.0f;  // FLT_MAX: none
  bool input_forget = false;
  bool with_y = true;
  int64_t rows_per_task = 1;
  int64_t x_span = 0, h_span = 0;
  // optional, per direction: W as IntMatMul's B (int_matmul.h: K rounded up to 4 k4 with
  // rows of d, the 4 hp gate columns, zero point d in every column), which takes the X W
  // product where it runs on the path's own tiles (AMX: a reduction of at least
  // short_gemm_bytes() and short_gemm_rows() rows); the same sums and scaling, bit for bit
  const IntMatMul* w_tiles[2] = {nullptr, nullptr};
};

void run_qlstm(const QLstmArgs& a, int threads);

}  // namespace lowp
