// Shared declarations of the native core: kernel signatures, epilogue parameters, ISA tables.
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

namespace lowp {

// Elements to skip from p so that p + result is 64-byte aligned (p's buffer must have
// 64 bytes of slack).
template <typename T>
inline int64_t align64_offset(const T* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  return int64_t(((a + 63) & ~uintptr_t(63)) - a) / int64_t(sizeof(T));
}

// f(std::integral_constant<int, I>{}) for I = 0 .. N-1, written out at compile time: array
// elements indexed by I are then separate variables to the compiler, which keeps them in
// registers (a loop over them, even one unrolled later, can leave the array on the stack).
template <typename F, int... I>
__attribute__((always_inline)) inline void unrolled_seq(F& f, std::integer_sequence<int, I...>) {
  (f(std::integral_constant<int, I>{}), ...);
}
template <int N, typename F>
__attribute__((always_inline)) inline void unrolled(F&& f) {
  unrolled_seq(f, std::make_integer_sequence<int, N>{});
}
// For the lambdas given to unrolled: inlined like the loop bodies they replace.
#define LOWP_INLINE_BODY __attribute__((always_inline))

// Width of a packed weight panel (output channels), the unit every GEMM kernel works on.
constexpr int kPanel = 64;
// Most rows one GEMM microkernel call may take (IsaTable::mr, mr_narrow).
constexpr int kMaxMr = 32;

// Epilogue parameters; every per-channel array is padded to a multiple of kPanel so that
// vector code may load whole vectors past the last real channel.
struct Epilogue {
  const int32_t* bias = nullptr;    // folded int32 bias per output channel
  const int32_t* zw = nullptr;      // per-channel weight zero point minus 128*[u8 weights]; or null
  const float* scale = nullptr;     // FLOAT32 mode: M per channel
  const int32_t* mult = nullptr;    // FIXEDPOINT mode: 31-bit multiplier per channel
  const int32_t* lshift = nullptr;  // max(e, 0)
  const int32_t* rshift = nullptr;  // max(-e, 0)
  int32_t zp = 0, qmin = 0, qmax = 255;
  bool fixedpoint = false;
  // FLOAT32 only: every |float32(v) * scale| + |zp| stays far below 2^31 (bounded from the
  // weights and bias at packing) and [qmin, qmax] is the whole int8 (qmin < 0) or uint8
  // range, so the conversion needs no float clamp: a saturating narrowing clamps exactly.
  bool saturate_only = false;
};

// acc: n accumulators for channels c0..c0+n-1 of one output pixel; rowsum: sum of that
// pixel's (shifted) im2col row, used only when e.zw is set. Writes n bytes to out.
using EpilogueFn = void (*)(const int32_t* acc, int n, const Epilogue& e, int c0,
                            int32_t rowsum, uint8_t* out);

// GEMM microkernel: mr (<= table mr, or mr_narrow for wp <= 32) rows times one panel of wp (16..64, multiple of 16)
// columns. Row i reads a[i] + tap_off[t] + 4*k4 for t < ntaps, k4 < kc4 (4 bytes each,
// uint8). b is the panel: [ntaps][kc4][wp][4] int8. c receives mr x wp int32, row stride kPanel.
using GemmFn = void (*)(int mr, int wp, const uint8_t* const* a, const int64_t* tap_off,
                        int ntaps, int kc4, const int8_t* b, int32_t* c);

// Where a fused GEMM kernel writes: row i of the tile goes to out + i * ldo, channels
// c0 .. c0 + nvalid - 1, with rowsum[i] for the zero-point term.
struct GemmOut {
  const Epilogue* e = nullptr;
  int c0 = 0, nvalid = 0;
  const int32_t* rowsum = nullptr;
  uint8_t* out = nullptr;
  int64_t ldo = 0;
};
// GEMM microkernel with the epilogue applied from registers (no int32 tile).
using GemmFusedFn = void (*)(int mr, int wp, const uint8_t* const* a, const int64_t* tap_off,
                             int ntaps, int kc4, const int8_t* b, const GemmOut& o);

// Packs n GEMM rows (as GemmFn reads them) into dst: row i at dst + i * kp (64-byte
// aligned) holds the taps' 4 * kc4 bytes one after another, then zeros up to kp bytes.
using PackRowsFn = void (*)(int64_t n, const uint8_t* const* a, const int64_t* tap_off,
                            int ntaps, int kc4, int64_t kp, uint8_t* dst);

// A path's own weight layout (IsaTable::pack_panel): converts one panel of the shared layout
// ([k4][wp][4] int8) into panel_bytes(k4, wp) bytes at dst (64-byte aligned).
using PackPanelFn = void (*)(const int8_t* src, int k4, int wp, int8_t* dst);
using PanelBytesFn = int64_t (*)(int k4, int wp);

// Depthwise row: `ow` output pixels of one output row, all channels.
struct DwArgs {
  const int32_t* const* rows;  // nrows pair-row pointers at the first output's input column
  int nrows = 0, npairs = 0;
  int64_t pair_step = 0;  // int32 elements between consecutive tap pairs of one row
  int64_t ow_step = 0;    // int32 elements between consecutive outputs
  int ow = 0;
  int cp = 0;             // padded channel count, multiple of 16
  int c = 0;              // real channel count (= output pixel stride in bytes)
  const int32_t* w = nullptr;  // [nrows][npairs][cp] packed int16 pairs
  uint8_t* out = nullptr;
};
using DwFn = void (*)(const DwArgs& a, const Epilogue& e);

// Depthwise pair row: dst[q * cp + c] = int16 pair (x[iw - pw0] - zp, x[iw - pw0 + dil] - zp)
// at iw = q * step for iw < wp (only every step-th position is ever read, e.g. step 2 for
// stride 2); 0 where the pixel lies outside the input row and for channels c >= C.
struct DwRowArgs {
  const uint8_t* src = nullptr;  // one input row: w pixels x c channels
  int64_t w = 0, wp = 0;
  int c = 0, cp = 0, pw0 = 0, dil = 1, step = 1;
  bool x_signed = false;
  int32_t zp = 0;
};
using DwRowFn = void (*)(int32_t* dst, const DwRowArgs& a);

// Depthwise 3x3 on uint8 "quads" (vpdpbusd). Byte r of the quad of column iw, channel c, is
// x[rows[r]][iw][c] in the uint8 domain (int8 inputs are flipped by ^ 0x80), so one 32-bit
// lane applies a whole kernel column (3 rows) to one channel. The activation zero point is
// folded into the bias, so padding pixels must hold it: padding rows point at a row of
// zero-point bytes, padding columns use the constant quad `za`. With nout == 2, rows 0..3
// feed two output rows (weights (w0, w1, w2, 0) for out[0], (0, w0, w1, w2) for out[1]).
struct DwQuadArgs {
  const uint8_t* rows[4] = {nullptr, nullptr, nullptr, nullptr};  // pixel 0 of each row
  int64_t w = 0;          // input width
  int c = 0;              // channels (= pixel stride in bytes, input and output)
  int ow = 0, sw = 1, pw0 = 0, nout = 1;
  int c0 = 0, c1 = -1;    // channels [c0, c1) (c1 < 0: to c); c0 is a multiple of 64
  bool x_signed = false;
  uint8_t za = 0;         // activation zero point in the uint8 domain
  const int8_t* w8 = nullptr;  // packed quads, see dw_quad_block and pack.cpp
  uint8_t* out[2] = {nullptr, nullptr};
};
using DwQuadFn = void (*)(const DwQuadArgs& a, const Epilogue& e);

// Channels per block of the quad kernel for `rem` remaining channels: 64 (zmm), 32 (ymm) or
// 16 (xmm), so that tails waste little work. Within a block of width 16V, vector k (0..3)
// holds 4V channels: lane L, dword i is channel 16L + 4k + i (the order in which per-lane
// byte unpacks interleave rows and in which saturating packs restore channel order); the
// packed weights and the per-channel epilogue arrays are stored in that order.
inline int dw_quad_block(int rem) { return rem > 48 ? 64 : rem > 16 ? 32 : 16; }

// Quantized element-wise Add (O10a) of two same-shape 8-bit tensors, ONNX Runtime's
// QLinearAdd arithmetic: with a, b the raw integers as float32 and c the folded zero points
// (computed by the caller), y = clamp(rint(fma(a, ma, fma(b, mb, c))), qmin, qmax), each
// fma rounded once. Clamping before rounding is equivalent (integer bounds); the caller
// checks finite ma, mb, c.
struct AddArgs {
  const uint8_t* a = nullptr;
  const uint8_t* b = nullptr;
  uint8_t* y = nullptr;
  int64_t n = 0;
  bool a_signed = false, b_signed = false;
  float ma = 1.0f, mb = 1.0f, c = 0.0f;
  int32_t qmin = 0, qmax = 255;
};
using AddFn = void (*)(const AddArgs& a);

// 2-D channels-last max pool (O7) of uint8/int8 (N, H, W, C); output (N, OH, OW, C).
// Out-of-bounds taps are skipped; a window without any in-bounds tap gives the lowest value.
struct PoolArgs {
  const uint8_t* x = nullptr;
  uint8_t* y = nullptr;
  int64_t n = 0, h = 0, w = 0, c = 0, oh = 0, ow = 0;
  int kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1, ph = 0, pw = 0;
  bool is_signed = false;
};
// Computes output rows [r0, r1) of the flattened (N * OH) row index.
using PoolFn = void (*)(const PoolArgs& a, int64_t r0, int64_t r1);

// Per-tensor quantization (Q6) of float32 to 8 bits:
// y = clamp(rint(x / scale) + zp, qmin, qmax), NaN -> qmin (float32 division, ties to even).
struct QuantArgs {
  const float* x = nullptr;
  uint8_t* y = nullptr;
  int64_t n = 0;
  float scale = 1.0f;
  int32_t zp = 0, qmin = 0, qmax = 255;
};
using QuantFn = void (*)(const QuantArgs& a);

// The quotient of a quantizer as a product by the scale's reciprocal, exact in its integer
// (the QuantFn kernels): with r = RN(1 / s) = (1 / s)(1 + e1), the product q' = RN(x r) =
// (x / s)(1 + e1)(1 + e2) (+ an absolute error of at most 2^-150 where it is subnormal) and
// the quotient q = RN(x / s) = (x / s)(1 + e3), |ei| <= 2^-24, so |q' - q| <= 3.01 * 2^-24
// |q| + 2^-149. Up to |q| = 256 that is under 2^-14 (3.01 * 2^-16 + 2^-149); above it q and
// q' have the same sign, both exceed 255 in magnitude (|q'| >= 256 (1 - 2^-21)) and clamp to
// the same bound (the bounds qmin - zp, qmax - zp lie in [-255, 255]). Clamping
// moves no two values further apart, so the clamped values c', c differ by at most 2^-14,
// and their nearest integers differ only if a half-integer lies between them or on c (a
// tie): only if c' is within 2^-14 of a half-integer. Where |c' - rint(c')| < kQuantNearTie
// (more than 2^-12 from every half-integer) the two integers are equal; elsewhere the
// kernel divides. x NaN gives NaN (-> qmin) either way, x = +-inf the same infinity, and a
// quotient past float32's range (q' inf, q finite, or the reverse) the same bound. The
// reciprocal must be a normal number with no overflow: 2^-100 <= |s| <= 2^100.
constexpr float kQuantNearTie = 0.5f - 0x1p-12f;
inline bool quant_reciprocal_ok(float scale) {
  const float m = scale < 0.0f ? -scale : scale;
  return m >= 0x1p-100f && m <= 0x1p100f;
}

// Global average pool (O8)-(O9) of uint8/int8 x, (n, s, c) channels-last or (n, c, s)
// channels-first: y[b, c] = requant(sum_s x - s * x_zp) with M = scale (float32 mode) or
// (mult, lshift, rshift) (fixed-point mode); y is (n, c).
struct GapArgs {
  const uint8_t* x = nullptr;
  uint8_t* y = nullptr;
  int64_t n = 0, s = 0, c = 0;
  bool channels_last = true, x_signed = false, fixedpoint = false;
  int32_t x_zp = 0, zp = 0, qmin = 0, qmax = 255;
  float scale = 1.0f;
  int32_t mult = 0, lshift = 0, rshift = 0;
};

// pool_reduce.cpp: quantized 2-D AveragePool in ONNX Runtime's float form (O8a): per
// output, the taps inside the input dequantized, float32(x - x_zp) * x_scale, summed one
// after another in window order (rows, then columns) from +0, divided by count[oy * ow +
// ox] (the counted taps, from the geometry), y = clamp(nearbyint(mean / y_scale +
// y_zp), qmin, qmax). x and y are (n, h, w, c) channels-last or (n, c, h, w).
struct QAvgPoolArgs {
  const uint8_t* x = nullptr;
  uint8_t* y = nullptr;
  const float* count = nullptr;
  int64_t n = 0, c = 0, h = 0, w = 0, oh = 0, ow = 0;
  int kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1, ph = 0, pw = 0;
  bool channels_last = true, x_signed = false;
  int32_t x_zp = 0, qmin = 0, qmax = 255;
  float x_scale = 1.0f, y_scale = 1.0f, y_zp = 0.0f;
};
void run_qaverage_pool2d(const QAvgPoolArgs& a, int threads);

// lut.cpp: a quantized matrix product of two 8-bit activations (QLinearMatMul with both
// inputs computed, attention's Q·Kᵀ and P·V): per batch b, y[b] (m x n, contiguous) =
// clamp(nearbyint(float(acc) * scale) + y_zp, qmin, qmax), acc = sum over p < k of
// (a[b][i][p] - a_zp) * (b[b][p][j] - b_zp) in int32; a[b] starts at a + a_offsets[b] (m x k
// rows of k), b[b] at b + b_offsets[b] (k x n). The caller keeps every partial sum below
// 2^24 in magnitude (k * max|a - a_zp| * max|b - b_zp| < 2^24), which the float32 sums rely
// on.
struct QMatMulArgs {
  const uint8_t* a = nullptr;
  const uint8_t* b = nullptr;
  uint8_t* y = nullptr;
  const int64_t* a_offsets = nullptr;
  const int64_t* b_offsets = nullptr;
  int64_t batch = 0, m = 0, k = 0, n = 0;
  bool a_signed = false, b_signed = false, y_signed = false;
  int32_t a_zp = 0, b_zp = 0, y_zp = 0, qmin = 0, qmax = 255;
  float scale = 1.0f;
};
void run_qmatmul_acts(const QMatMulArgs& a, int threads);

// Peak-throughput loops for bench/peak.py; return operations performed.
using PeakFn = double (*)(int64_t iters);

struct IsaTable {
  const char* name;
  int mr;            // rows per GEMM microkernel call
  int mr_narrow;     // rows per call when the panel is at most 32 columns wide
  GemmFn gemm;
  EpilogueFn epilogue;
  DwFn dw;
  DwRowFn dw_row;
  GemmFusedFn gemm_fused;  // optional: null means gemm + epilogue
  AddFn add = nullptr;     // optional: null means the portable loop (add_portable)
  PoolFn maxpool = nullptr;    // optional: null means maxpool_portable
  QuantFn quantize = nullptr;  // optional: null means quantize_portable
  DwQuadFn dw_quad = nullptr;  // optional: null means dw on pair rows
  // optional: null means gemm reads the rows in place; else the driver packs each row chunk
  // once for all panels and calls gemm with one tap of ntaps * kc4 groups on the packed rows.
  PackRowsFn pack_rows = nullptr;
  // optional: GEMMs whose reduction (taps x channels) is shorter than short_gemm_bytes(),
  // or with fewer output rows than short_gemm_rows(), run on this table instead (AMX tiles
  // lose to VNNI registers on short reductions and on a few rows).
  const IsaTable* short_gemm = nullptr;
  // optional: the path's own weight layout. When set, the driver converts every panel once
  // (on the path's first call, kept with the packed weights) and gemm / gemm_fused receive
  // panels in that layout; null means they read the shared layout.
  PackPanelFn pack_panel = nullptr;
  PanelBytesFn panel_bytes = nullptr;
  // optional (with pack_rows): pack_rows writes the path's own row layout, in groups of mr
  // rows (group i at dst + i * mr * kp, mr * kp bytes, rows past n zero), and the driver
  // calls this instead of gemm_fused on packed rows, with a[0] = the group's start.
  GemmFusedFn gemm_fused_packed = nullptr;
  // optional: per-thread set-up of the path's GEMM kernels (the AMX tile configuration). When
  // set, the driver calls it on the thread before each task's first GEMM call (no other code
  // runs on the thread between the calls of one task) and the kernels rely on it.
  void (*gemm_prepare)() = nullptr;
  // gemm and gemm_fused also take tap_off == nullptr: then a holds ntaps pointers per row,
  // row i's tap t at a[i * ntaps + t] (each 4 * kc4 bytes), so that the taps of a padded
  // input's border rows may read a pixel of zero points instead of a padded copy.
  bool gemm_indirect = false;
};

// Reduction length in bytes below which a table's short_gemm takes a GEMM (dispatch.cpp;
// 128 by default, measured on MobileNetV2's 1x1 convolutions; 0 sends every GEMM to the
// table itself, which the tests use to reach the tile kernel with short reductions).
int short_gemm_bytes();
void set_short_gemm_bytes(int bytes);
// Output rows (batch x output pixels) below which a table's short_gemm takes a GEMM (8 by
// default: a 32-row tile pass computes mostly padding rows there; 0 turns it off).
int short_gemm_rows();
void set_short_gemm_rows(int rows);
#ifdef LOWP_AMX_PHASES
// Timing build only (bench/amx_phases.py): the amx GEMM phases to leave out, a mask of
// kernels_amx.cpp's PhaseSkip bits; 0 = none. The outputs are wrong while any is set.
void set_amx_phase_skip(int mask);
#endif

// Portable element-wise Add (driver.cpp); exact on any path.
void add_portable(const AddArgs& a);
// Runs the active path's Add (or add_portable), splitting the work over `threads`.
void run_add(const AddArgs& a, int threads);
// Portable max pool and quantize (driver.cpp), and their runners (split over `threads`).
void maxpool_portable(const PoolArgs& a, int64_t r0, int64_t r1);
void run_maxpool(const PoolArgs& a, int threads);
void quantize_portable(const QuantArgs& a);
void run_quantize(const QuantArgs& a, int threads);
// pool_reduce.cpp: global average pool, and quantize of (n, c, s) float32 into (n, s, c).
void run_global_average_pool(const GapArgs& a);
// lut.cpp: y[i] = table[c * 256 + x[i]], c = 0 or, with channels > 1, i % channels.
void run_lut8(const uint8_t* x, const uint8_t* table, uint8_t* y, int64_t n, int64_t channels,
              int threads);
// lut.cpp: y[i0, i1, i2, i3] = table[(a[...] << 8) | b[...]] over dims (the broadcast shape
// collapsed to four axes) with element strides (0 on a broadcast axis); y contiguous. The
// caller checks that every index stays inside a and b.
struct PairLutArgs {
  const uint8_t* a = nullptr;
  const uint8_t* b = nullptr;
  const uint8_t* table = nullptr;  // 65,536 entries
  uint8_t* y = nullptr;
  int64_t dims[4] = {1, 1, 1, 1};
  int64_t a_st[4] = {0, 0, 0, 0};
  int64_t b_st[4] = {0, 0, 0, 0};
};
void run_lut_pair(const PairLutArgs& p, int threads);
// lut.cpp: quantized Softmax (O17, ONNX Runtime's QLinearSoftmax) of 8-bit x viewed as
// (rows / inner, n, inner), over its middle axis (inner = 1: contiguous rows of n):
// e_i = table[x_i - max + 255], s = e_0 + e_1 + ... in float32 in order,
// y_i = clamp(rint(double(e_i) * inv_scale / s) + zero_point, qmin, qmax). Bit for bit with
// lowp.ops.softmax.softmax.
struct QSoftmaxArgs {
  const uint8_t* x = nullptr;
  uint8_t* y = nullptr;
  const float* table = nullptr;  // 256 entries
  int64_t rows = 0, n = 0, inner = 1;  // rows: (outer * inner) softmax rows
  double inv_scale = 0.0;
  int zero_point = 0, qmin = 0, qmax = 255;
  bool is_signed = false;
};
void run_qsoftmax_rows(const QSoftmaxArgs& a, int threads);
void run_quantize_to_channels_last(const QuantArgs& a, int64_t n, int64_t c, int64_t s,
                                   int threads);

extern const IsaTable kScalarTable;
extern const IsaTable kAvx2Table;
extern const IsaTable kAvxVnniTable;
extern const IsaTable kAvxVnniEvexTable;
extern const IsaTable kAvx512VnniTable;
extern const IsaTable kAmxTable;  // kernels_amx.cpp: the GEMM on AMX tiles

// The avx512vnni path's members that the amx path shares (kernels_avx512vnni.cpp).
void avx512_epilogue(const int32_t* acc, int n, const Epilogue& e, int c0, int32_t rowsum,
                     uint8_t* out);
// The fused GEMM's epilogue (GemmFusedFn) on `rows` rows of one panel's kPanel int32 sums
// each (bias not included) at acc + i * lda: row i goes to o.out + i * o.ldo with
// o.rowsum[i].
void avx512_fused_rows(const int32_t* acc, int64_t lda, int rows, const GemmOut& o);
void avx512_dw(const DwArgs& a, const Epilogue& e);
void avx512_dw_row(int32_t* dst, const DwRowArgs& a);
void avx512_add(const AddArgs& a);
void avx512_maxpool(const PoolArgs& a, int64_t r0, int64_t r1);
void avx512_quantize(const QuantArgs& a);
void avx512_dw_quad(const DwQuadArgs& a, const Epilogue& e);

double peak_vnni512(int64_t iters);
double peak_vnni256(int64_t iters);
double peak_wssd512(int64_t iters);
double peak_fma512(int64_t iters);
double peak_fma256(int64_t iters);
double peak_amx(int64_t iters);  // only where the amx path is available

}  // namespace lowp
