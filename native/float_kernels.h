// Float32 kernels of the float glue between quantized groups: unary activations and 2-D
// pooling (NCHW). Each agrees with the numpy reference of lowp.runtime.float_ops / float_nn
// (bounds in docs/native.md):
//  * tanh GELU runs in float64 inside (with the reference's own formulas and polynomials)
//    and rounds once to float32;
//  * hard sigmoid, hard swish, and sigmoid, tanh, erf and exact GELU in ONNX Runtime's
//    forms (lowp.ort_math) repeat the reference's float32 operations, so they are exact;
//  * the float32 matrix product sums in MLAS's order (lowp.mlas_sgemm), so it is exact;
//  * max pooling is exact; average pooling sums in the reference's order (each window
//    column top to bottom from +0, then the columns left to right from +0) and divides by
//    the same count, so it is exact too; global average pooling sums in numpy's pairwise
//    order (np.mean), so it is exact as well.
// One microkernel table per instruction-set path (float_scalar/avx2/avx512.cpp); the
// active integer path picks it, so LOWP_ISA and set_path apply here as well.
#pragma once
#include <cstdint>

namespace lowp {

// Unary operators; alpha and beta are HardSigmoid's, alpha LeakyRelu's (ignored by the others).
enum FloatUnaryOp : int {
  kErf = 0,
  kGelu = 1,      // 0.5 x (1 + erf(x / sqrt 2))
  kGeluTanh = 2,  // 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
  kSigmoid = 3,
  kTanh = 4,
  kHardSigmoid = 5,  // clip(alpha x + beta, 0, 1)
  kHardSwish = 6,    // x clip(x / 6 + 1 / 2, 0, 1)
  kLeakyRelu = 7,    // x >= 0 ? x : alpha x
  kFastGelu = 8,     // ONNX Runtime's float32 FastGelu: (0.5 x) (tanh(x ((c x) x + b)) + 1)
  kExp = 9,         // ONNX Runtime's float32 exp (MLAS)
  kNeg = 10,        // -x (the sign bit flipped, NaN's too: np.negative)
  kAbs = 11,        // |x| (the sign bit cleared, NaN's too: np.abs)
  kElu = 12,        // x >= 0 ? x : alpha (exp(x) - 1), Eigen's packet exp (run_float_elu)
  kGeluKeepNaN = 13,  // kGelu, a NaN x returned as it is (MLAS's AVX-512F GELU kernel)
  kRelu = 14,         // x < 0 ? 0 : x (Eigen's cwiseMax(0): x itself for NaN and -0)
  kLog = 15,          // Eigen's packet log (float_log.h; run_float_log adds logf's tail)
  kSoftplus = 16,     // x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)), Eigen's packets
  kUnaryCount = 17,
};

// One NCHW 2-D pooling node over `planes` = N * C planes of h x w floats.
struct FloatPoolArgs {
  const float* x = nullptr;
  float* y = nullptr;
  int64_t planes = 0, h = 0, w = 0, oh = 0, ow = 0;
  int kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1;
  int ph = 0, pw = 0;          // begin pads
  int ph_end = 0, pw_end = 0;  // end pads (counted with include_pad; ceil_mode's extra is not)
  bool average = false, include_pad = false;
  // MaxPool's order (docs/operators.md (O150)): kMaxMlasVector, MLAS's vector kernel (each
  // column from its first row on, maxps in 4-lane vectors, std::max on the last w % 4
  // columns, then maxps across from the first tap, padding the lowest float); kMaxNchwc,
  // the NCHWc kernel (maxps from the lowest float over the in-bounds taps, row-major)
  int max_order = 0;
};

constexpr int kMaxMlasVector = 0;
constexpr int kMaxNchwc = 1;

// Row workspace of one pooling task: `vbuf` holds the column reduction of one output row
// (begin pad, then the w input columns, then neutral values), `cnt` the window column
// counts per output column (average only), `out` one padded output row.
struct FloatPoolRow {
  float* vbuf = nullptr;
  const float* cnt = nullptr;
  float* out = nullptr;
  int64_t vlen = 0;  // floats in vbuf
  // kMaxNchwc with a stride s > 1: one input row split by column phase (the columns
  // p, p + s, ... at dec + p * dlen), so that each tap reads its outputs' values contiguously
  float* dec = nullptr;
  int64_t dlen = 0;
};

struct FloatKernels {
  const char* name;
  int width;  // floats per vector (the row buffers are padded to it)
  void (*unary)(int op, const float* x, float* y, int64_t n, float alpha, float beta);
  // Output row `oy` of one plane: y[0..ow) of that row, count of the window rows `cnt_h`.
  void (*pool_row)(const FloatPoolArgs& a, const float* plane, int64_t oy, float cnt_h,
                   const FloatPoolRow& r, float* y);
  // y[r] = mean of x[r * n .. r * n + n) for r < rows, in np.mean's (pairwise) order.
  void (*mean_rows)(const float* x, float* y, int64_t rows, int64_t n);
  // y[r] = softmax of row r of x (rows x n), in MLAS's AVX-512F order (lowp.ort_math); with
  // `log`, ONNX Runtime's log-softmax: (x - max) - logf(the same sum of exponentials).
  void (*softmax_rows)(const float* x, float* y, int64_t rows, int64_t n, bool log);
  // One K block of MLAS's SGEMM kernel: for rows i < m and columns j < n,
  // acc = fma chain over k < kb of a[i * sa_m + k * sa_k] * B[k][j] (from +0, k in order);
  // c[i * ldc + j] = first ? acc * alpha : fma(acc, alpha, c[i * ldc + j]). With ldb 0, bp
  // is B packed in strips of 2 * width columns, each strip kb rows of 2 * width floats (zero
  // padded): B[k][j] = bp[(j / (2w)) * kb * 2w + k * 2w + j % (2w)]; with ldb > 0, B read
  // in place, B[k][j] = bp[k * ldb + j] (n a multiple of the width: whole vectors only).
  void (*sgemm_block)(const float* a, int64_t sa_m, int64_t sa_k, const float* bp, int64_t ldb,
                      float* c, int64_t ldc, int64_t m, int64_t n, int64_t kb, float alpha,
                      bool first);
  // One row of a float32 binary operator (float_elementwise.h FloatBinaryOp op):
  // y[i] = a[i * sa] op b[i * sb] for i < n, one IEEE operation per element, so every path
  // gives the same values; y may be a or b (the same memory), never a part of one. Returns
  // whether a result of Add, Sub, Mul or Div may be a NaN (false: none is; true for the
  // other operators).
  bool (*binary_row)(int op, const float* a, int64_t sa, const float* b, int64_t sb, float* y,
                     int64_t n);
  // softmax_rows over a non-last axis: `cols` columns of n values, column c's values at
  // x[i * inner + c] (i < n), each column's softmax (log: log-softmax) with the row kernel's
  // arithmetic into the same places of y.
  void (*softmax_cols)(const float* x, float* y, int64_t n, int64_t inner, int64_t cols,
                       bool log);
  // y[i] = Eigen's packet sin (cosine: cos) of x[i] for i < n, every element (ONNX Runtime's
  // Sin and Cos but for their scalar tail: run_float_sincos); x == y allowed.
  void (*sincos)(const float* x, float* y, int64_t n, bool cosine);
  // ReduceMax's running maximum (float_reduce.h run_float_reduce_max) over `rows` rows of w
  // floats, row r at x + r * stride: best[j] = the largest order key (integer compares, the
  // same on every path) of best[j] and the rows' values, mag[j] the largest of mag[j] and
  // their magnitude bits (above 0x7f800000, the bits of +inf: a NaN was there).
  void (*max_keys)(const float* x, int64_t rows, int64_t stride, int64_t w, int32_t* best,
                   int32_t* mag);
};

extern const FloatKernels kFloatScalar;
extern const FloatKernels kFloatAvx2;
extern const FloatKernels kFloatAvx512;

// scalar for "scalar", 512-bit for "avx512vnni" and "amx", 256-bit for the other paths.
const FloatKernels& active_float_kernels();
// Whether the active path is not "scalar": every other path runs only on a CPU with AVX2
// (dispatch.h), so the 256-bit helpers outside the kernel tables may run (float_rnn.h's
// one-row products, gather.cpp's 4-byte transpose). A pointer comparison, cheap per call.
bool float_path_has_avx2();

// y[i] = op(x[i]) for i < n (x == y allowed); threads <= 0: all.
void run_float_unary(int op, const float* x, float* y, int64_t n, float alpha, float beta,
                     int threads);
// y = sin(x) (cosine: cos(x)) for n values as ONNX Runtime's float32 Sin (Cos) computes it
// at one intra-op thread (lowp.eigen_math.sin / cos, docs/operators.md (O29)): Eigen's packet
// function on the packets of four from the start, the C library's sinf (cosf) on the last
// n % 4 values. x == y allowed; threads <= 0: all (the values do not depend on them).
void run_float_sincos(const float* x, float* y, int64_t n, bool cosine, int threads);
// y = Elu(x) (x >= 0 ? x : alpha (exp(x) - 1)) for n values as ONNX Runtime's float32 Elu
// computes it (lowp.runtime.float_ops._elu32, lowp.eigen_math.evaluate): Eigen's packet exp
// on the packets of four from the start, the C library's expf on the last n % 4 values, of
// each run [0, ends[0]), [ends[0], ends[1]), ... by itself (as run_float_log; runs == 0: one
// run). x == y allowed; threads <= 0: all (the values do not depend on them).
void run_float_elu(const float* x, float* y, int64_t n, float alpha, const int64_t* ends,
                   int64_t runs, int threads);
// y = Softplus(x) for n values as ONNX Runtime's float32 Softplus computes it
// (lowp.runtime.float_ops._softplus32): Eigen's packet exp and log1p on the packets of four
// from the start of each run, the C library's expf and log1pf on its last length % 4 values
// (runs as in run_float_elu). x == y allowed; threads <= 0: all.
void run_float_softplus(const float* x, float* y, int64_t n, const int64_t* ends, int64_t runs,
                        int threads);
void run_float_pool(const FloatPoolArgs& a, int threads);
// Global average pooling: y[r] = mean of row r of x (rows x n); n >= 1.
void run_float_mean_rows(const float* x, float* y, int64_t rows, int64_t n, int threads);
// Softmax of every row of x (rows x n) in ONNX Runtime's order; n >= 1.
void run_float_softmax_rows(const float* x, float* y, int64_t rows, int64_t n, int threads,
                            bool log = false);
// Which path softmax_rows takes for rows reaching more than 60 below their maximum: the one
// without subnormal operands or results (float_impl.h mlas_sum_exp_tiny, mul_tiny: Intel
// cores take a microcode assist on each) or the plain one. Both round every value the same
// way (docs/native.md), so the choice changes the time only: kMeasure times both once on a
// block of such rows, the first time a softmax asks, and keeps the faster for the process.
enum class SubnormalPath : int { kMeasure = 0, kAvoid = 1, kPlain = 2 };
void set_softmax_subnormal_path(SubnormalPath path);
// The path rows take now (kAvoid or kPlain; kMeasure measures first).
SubnormalPath softmax_subnormal_path();
// The same softmax over the middle axis of x viewed as (outer, n, inner); n, inner >= 1.
void run_float_softmax_axis(const float* x, float* y, int64_t outer, int64_t n, int64_t inner,
                            int threads, bool log = false);

// One float32 matrix product as ONNX Runtime's MLAS computes it on one thread
// (lowp.mlas_sgemm._operation): c (m x n, row stride ldc) = alpha * A B with
// A[i][k] = a[i * sa_m + k * sa_k] and B[k][j] = b[k * sb_k + j * sb_n]. trans_a, trans_b
// and packed (B prepacked by ONNX Runtime) choose MLAS's path as its own flags would; the
// strides say where the values are. threads only splits rows: results do not depend on it.
// With `init` (beta = 1: ONNX Runtime's Gemm with C), c first takes C[i][j] = init[i * si_m
// + j * si_n] (strides 0 broadcast a row, a column or a scalar) and every K block
// accumulates into it, as MLAS does into the output ONNX Runtime filled with C.
struct SgemmArgs {
  const float* a = nullptr;
  const float* b = nullptr;
  float* c = nullptr;
  const float* init = nullptr;
  int64_t m = 0, n = 0, k = 0;
  int64_t sa_m = 0, sa_k = 0, sb_k = 0, sb_n = 0, ldc = 0, si_m = 0, si_n = 0;
  float alpha = 1.0f;
  bool trans_a = false, trans_b = false, packed = false;
  // B's panels packed beforehand (`pack_sgemm_panels`, for a B that does not change: a
  // model's constant), for the K block and kernel width they were packed with; the product
  // packs B itself when those are not the ones it runs with
  const float* panels = nullptr;
  int64_t panels_stride_k = 0, panels_width = 0;
  // B's leading dimension as MLAS is handed it may be 1 (false: B is read in place inside a
  // larger array, FusedMatMul's transBatchB): MLAS's N = 1 kernel takes one column of B only
  // then, else the general kernel computes it
  bool unit_ldb = true;
  // Rows of the MLAS operation this product is a row block of (0: its own m): MLAS's M = 1
  // kernel runs only for an operation of one row, not for a lone row of a larger one.
  int64_t operation_m = 0;
};
void run_mlas_sgemm(const SgemmArgs& g, int threads);

// The columns of one panel of B: panels of a K block follow each other every
// kSgemmPanelColumns columns (strips of 2W columns, k-major inside, zero-padded), so with one
// K block and at most this many columns the panels of B's first columns are a prefix of B's.
constexpr int64_t kSgemmPanelColumns = 512;

// The K block the product of `g`'s shape and flags runs with when it packs B (0: it reads B
// in place, the M = 1 and N = 1 kernels), the active path's kernel width, and the floats of
// every panel of B at that block and width.
struct SgemmPanels {
  int64_t stride_k = 0, width = 0, floats = 0;
};
SgemmPanels sgemm_panels(const SgemmArgs& g);
int64_t sgemm_panels_size(int64_t k, int64_t n, int64_t stride_k, int64_t width);
// Every panel of g's B (`panels.floats` floats into out), as the product packs them.
void pack_sgemm_panels(const SgemmArgs& g, const SgemmPanels& panels, float* out);

}  // namespace lowp
