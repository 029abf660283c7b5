// Driver of the float glue kernels (float_kernels.h): the table of the active path, element
// ranges on the thread pool for the unary operators, and (plane, row block) tasks with their
// row buffers for pooling. Every output is computed by exactly one task the same way, so
// results never depend on the thread count.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "dispatch.h"
#include "float_kernels.h"
#include "float_libm.h"
#include "float_log.h"
#include "float_nan.h"
#include "float_rnn.h"
#include "threadpool.h"

#if defined(__SSE2__)
#include <xmmintrin.h>
#endif

namespace lowp {

const FloatKernels& active_float_kernels() {
  const std::string name = active_table()->name;
  if (name == "scalar") return kFloatScalar;
  if (name == "avx512vnni" || name == "amx") return kFloatAvx512;
  return kFloatAvx2;  // avx2, avxvnni, avxvnni_evex
}

bool float_path_has_avx2() { return active_table() != &kScalarTable; }

void run_float_unary(int op, const float* x, float* y, int64_t n, float alpha, float beta,
                     int threads) {
  if (n <= 0) return;
  const FloatKernels& k = active_float_kernels();
  // compute-bound (float64 polynomials): a thread pays from a few ten thousand values
  run_elementwise(n, int64_t(1) << 14, threads,
                  [&](int64_t i0, int64_t len) { k.unary(op, x + i0, y + i0, len, alpha, beta); });
}

void run_float_sincos(const float* x, float* y, int64_t n, bool cosine, int threads) {
  if (n <= 0) return;
  const FloatKernels& k = active_float_kernels();
  const int64_t split = n - n % 4;
  run_elementwise(split, int64_t(1) << 14, threads,
                  [&](int64_t i0, int64_t len) { k.sincos(x + i0, y + i0, len, cosine); });
  // (float_libm.cpp: one call of the C library's own function per value)
  run_float_libm(int(cosine ? LibmFunction::kCosf : LibmFunction::kSinf), x + split, y + split,
                 n - split, 1);
}

void run_float_elu(const float* x, float* y, int64_t n, float alpha, const int64_t* ends,
                   int64_t runs, int threads) {
  if (n <= 0) return;
  // Eigen's scalar tail of each run, the C library's expf (first: y may be x)
  const auto tails = run_tails(x, n, ends, runs, [](float t, float a) {
    return t >= 0.0f ? t : a * (::expf(t) - 1.0f);
  }, alpha);
  run_float_unary(kElu, x, y, n, alpha, 0.0f, threads);
  for (const auto& [i, v] : tails) y[i] = v;
}

void run_float_softplus(const float* x, float* y, int64_t n, const int64_t* ends, int64_t runs,
                        int threads) {
  if (n <= 0) return;
  // Eigen's scalar tail of each run, the C library's expf and log1pf (first: y may be x)
  const auto tails = run_tails(x, n, ends, runs, [](float t, float) {
    return t > 0.0f ? t + ::log1pf(::expf(-t)) : ::log1pf(::expf(t));
  }, 0.0f);
  run_float_unary(kSoftplus, x, y, n, 0.0f, 0.0f, threads);
  for (const auto& [i, v] : tails) y[i] = v;
}

namespace {

// Window taps along one axis that fall in [lo, hi): the divisor factor of average pooling.
float axis_count(int64_t o, int s, int p, int k, int d, int64_t lo, int64_t hi) {
  int64_t c = 0;
  for (int i = 0; i < k; ++i) {
    const int64_t pos = o * s - p + int64_t(i) * d;
    c += pos >= lo && pos < hi;
  }
  return float(c);
}

}  // namespace

void run_float_pool(const FloatPoolArgs& a, int threads) {
  if (a.planes <= 0 || a.oh <= 0 || a.ow <= 0) return;
  const FloatKernels& k = active_float_kernels();
  const int64_t W = k.width;
  const int64_t owp = (a.ow + W - 1) / W * W;
  const int64_t span = (owp - 1) * a.sw + int64_t(a.kw - 1) * a.dw + 1;
  const int64_t vlen = std::max<int64_t>(span, a.pw + a.w) + W;
  // divisor factors: rows per output row, columns per output column (padded with 1)
  std::vector<float> cnt_h(size_t(a.oh), 1.0f), cnt_w(size_t(owp), 1.0f);
  if (a.average) {
    const int64_t hlo = a.include_pad ? -a.ph : 0, hhi = a.include_pad ? a.h + a.ph_end : a.h;
    const int64_t wlo = a.include_pad ? -a.pw : 0, whi = a.include_pad ? a.w + a.pw_end : a.w;
    for (int64_t o = 0; o < a.oh; ++o)
      cnt_h[size_t(o)] = axis_count(o, a.sh, a.ph, a.kh, a.dh, hlo, hhi);
    for (int64_t o = 0; o < a.ow; ++o)
      cnt_w[size_t(o)] = axis_count(o, a.sw, a.pw, a.kw, a.dw, wlo, whi);
  }
  // tasks: blocks of output rows of one plane, ~64K window taps of work each
  const int64_t row_work = std::max<int64_t>(1, a.ow * a.kw + a.w * a.kh);
  const int64_t rows = std::clamp<int64_t>((int64_t(1) << 16) / row_work, 1, a.oh);
  const int64_t blocks = (a.oh + rows - 1) / rows, ntasks = a.planes * blocks;
  if (threads <= 0) threads = ThreadPool::max_threads();
  threads = int(std::max<int64_t>(1, std::min<int64_t>(threads, ntasks)));
  std::atomic<int64_t> next{0};
  auto work = [&](int) {
    std::vector<float> vbuf(static_cast<size_t>(vlen)), out(static_cast<size_t>(owp));
    FloatPoolRow r;
    r.vbuf = vbuf.data();
    r.vlen = vlen;
    std::vector<float> dec;
    if (!a.average && a.max_order == kMaxNchwc && a.sw > 1) {
      r.dlen = (a.w + a.sw - 1) / a.sw;
      dec.resize(static_cast<size_t>(a.sw * r.dlen));
      r.dec = dec.data();
    }
    r.cnt = cnt_w.data();
    r.out = out.data();
    for (int64_t t; (t = next.fetch_add(1, std::memory_order_relaxed)) < ntasks;) {
      const int64_t p = t / blocks, r0 = (t % blocks) * rows, r1 = std::min(a.oh, r0 + rows);
      const float* plane = a.x + p * a.h * a.w;
      for (int64_t oy = r0; oy < r1; ++oy)
        k.pool_row(a, plane, oy, cnt_h[size_t(oy)], r, a.y + (p * a.oh + oy) * a.ow);
    }
  };
  ThreadPool::instance().run(threads, work);
}

void run_float_mean_rows(const float* x, float* y, int64_t rows, int64_t n, int threads) {
  if (rows <= 0 || n <= 0) return;
  const FloatKernels& k = active_float_kernels();
  // rows in runs of ~64K values; one task per run
  const int64_t per = std::max<int64_t>(1, (int64_t(1) << 16) / n);
  run_elementwise(rows, per, threads,
                  [&](int64_t r0, int64_t len) { k.mean_rows(x + r0 * n, y + r0, len, n); });
}

namespace {

std::atomic<int> softmax_path_set{int(SubnormalPath::kMeasure)};
thread_local int softmax_path_forced = -1;  // the measuring thread's path while it times

// kAvoid or kPlain, whichever took less time on 32 rows of 256 values spread from 0 to 110
// below their maximum (a causal attention head's masked rows are further still): the least
// of nine alternating timings of each, so that a preemption or a slower first pass does not
// decide it.
SubnormalPath measure_softmax_path() {
  constexpr int64_t kRows = 32, kN = 256;
  std::vector<float> x(size_t(kRows * kN)), y(x.size());
  uint32_t state = 12345;
  for (float& v : x) {
    state = state * 1664525u + 1013904223u;
    v = -110.0f * float(state >> 8) * 0x1p-24f;
  }
  for (int64_t r = 0; r < kRows; ++r) x[size_t(r * kN)] = 0.0f;
  const FloatKernels& k = active_float_kernels();
  double best[2] = {1e30, 1e30};
  for (int round = 0; round < 9; ++round)
    for (int p = 0; p < 2; ++p) {
      softmax_path_forced = p == 0 ? int(SubnormalPath::kAvoid) : int(SubnormalPath::kPlain);
      const auto t0 = std::chrono::steady_clock::now();
      k.softmax_rows(x.data(), y.data(), kRows, kN, false);
      const std::chrono::duration<double> t = std::chrono::steady_clock::now() - t0;
      best[p] = std::min(best[p], t.count());
    }
  softmax_path_forced = -1;
  return best[1] < best[0] ? SubnormalPath::kPlain : SubnormalPath::kAvoid;
}

}  // namespace

void set_softmax_subnormal_path(SubnormalPath path) { softmax_path_set.store(int(path)); }

SubnormalPath softmax_subnormal_path() {
  if (softmax_path_forced >= 0) return SubnormalPath(softmax_path_forced);
  const int set = softmax_path_set.load(std::memory_order_relaxed);
  if (set != int(SubnormalPath::kMeasure)) return SubnormalPath(set);
  static const SubnormalPath measured = measure_softmax_path();  // once, thread-safe
  return measured;
}

void run_float_softmax_rows(const float* x, float* y, int64_t rows, int64_t n, int threads,
                            bool log) {
  if (rows <= 0 || n <= 0) return;
  const FloatKernels& k = active_float_kernels();
  const int64_t per = std::max<int64_t>(1, (int64_t(1) << 14) / n);
  run_elementwise(rows, per, threads, [&](int64_t r0, int64_t len) {
    k.softmax_rows(x + r0 * n, y + r0 * n, len, n, log);
  });
}

namespace {

// to[i * ts + j] = from[i * fs + j] for i < rows, j < N: N floats a row in one or two moves
// (a memcpy of a constant size), rather than a call or a loop per row.
template <int N>
void copy_rows(const float* from, int64_t fs, float* to, int64_t ts, int64_t rows) {
  for (int64_t i = 0; i < rows; ++i) std::memcpy(to + i * ts, from + i * fs, N * sizeof(float));
}

using CopyRows = void (*)(const float*, int64_t, float*, int64_t, int64_t);

template <int... N>
constexpr std::array<CopyRows, sizeof...(N)> copy_rows_table(std::integer_sequence<int, N...>) {
  return {copy_rows<N>...};
}

// copy_rows by its row length (0 to 16: up to a 512-bit vector's lanes)
constexpr auto kCopyRows = copy_rows_table(std::make_integer_sequence<int, 17>{});

}  // namespace

void run_float_softmax_axis(const float* x, float* y, int64_t outer, int64_t n, int64_t inner,
                            int threads, bool log) {
  if (outer <= 0 || n <= 0 || inner <= 0) return;
  const FloatKernels& k = active_float_kernels();
  const int64_t W = k.width, full = inner / W * W, tail = inner - full;
  // tasks: runs of the W-column blocks of one outer slice, ~16K values each
  const int64_t blocks = full / W;
  const int64_t per = std::max<int64_t>(1, (int64_t(1) << 14) / (n * W));
  if (blocks > 0) {
    run_elementwise(outer * blocks, per, threads, [&](int64_t t0, int64_t len) {
      for (int64_t t = t0; t < t0 + len;) {
        const int64_t o = t / blocks, b0 = t % blocks;
        const int64_t b1 = std::min(blocks, b0 + (t0 + len - t));
        const int64_t off = o * n * inner + b0 * W;
        k.softmax_cols(x + off, y + off, n, inner, (b1 - b0) * W, log);
        t += b1 - b0;
      }
    });
  }
  if (tail == 0) return;
  // The last `tail` (< W) columns of W / tail outer slices side by side in one block of W
  // lanes (each lane computes its own column alone; unused lanes keep zeros, or the values
  // of the group before in a last group of fewer slices, whose outputs are dropped).
  const int64_t slices = W / tail, groups = (outer + slices - 1) / slices;
  run_elementwise(groups, per, threads, [&](int64_t g0, int64_t len) {
    std::vector<float> bx(size_t(n * W), 0.0f), by(size_t(n * W));
    const CopyRows copy = kCopyRows[size_t(tail)];
    for (int64_t g = g0; g < g0 + len; ++g) {
      const int64_t s0 = g * slices, s1 = std::min(outer, s0 + slices);
      for (int64_t s = s0; s < s1; ++s)
        copy(x + s * n * inner + full, inner, bx.data() + (s - s0) * tail, W, n);
      k.softmax_cols(bx.data(), by.data(), n, W, W, log);
      for (int64_t s = s0; s < s1; ++s)
        copy(by.data() + (s - s0) * tail, W, y + s * n * inner + full, inner, n);
    }
  });
}

}  // namespace lowp

namespace lowp {
namespace {

// MlasSgemmOperation's K block: halved while it still covers K (N >= K), or doubled while
// the 128 x 128 panel can give up columns (N < K, A read untransposed).
int64_t mlas_stride_k(int64_t n, int64_t k, bool trans_a) {
  int64_t stride_n = 128, stride_k = 128;
  if (n >= k) {
    while (stride_k / 2 >= k) stride_n *= 2, stride_k /= 2;
  } else if (!trans_a) {
    while (stride_n > 16 && stride_n / 2 >= n) stride_n /= 2, stride_k *= 2;
  }
  return stride_k;
}

// MlasSgemmKernelM1Avx for column j: the rounded products x[k] * B[k][j] added in groups of
// four k (then two, then one), each group's sum t then t + c from c0; as its assembly
// orders the operands (`Ops`: the plain operations, or where a NaN came out x86's NaN of
// each one, docs/operators.md (O223)).
template <class Ops>
float m1_column(const float* x, int64_t sx, const float* b, int64_t sb_k, int64_t k, float c0) {
  float c = c0;
  int64_t k0 = 0;
  auto group = [&](int size) {
    float t = Ops::mul(x[k0 * sx], b[k0 * sb_k]);
    for (int q = 1; q < size; ++q)
      t = Ops::add(t, Ops::mul(x[(k0 + q) * sx], b[(k0 + q) * sb_k]));
    c = Ops::add(t, c);
    k0 += size;
  };
  while (k - k0 >= 4) group(4);
  if (k - k0 >= 2) group(2);
  if (k - k0 >= 1) group(1);
  return c;
}

// Whether one of c[0..n) is a NaN (four lanes at a time where SSE2 is there).
bool any_nan(const float* c, int64_t n) {
  int64_t j = 0;
#if defined(__SSE2__)
  __m128 nan = _mm_setzero_ps();
  for (; j + 4 <= n; j += 4) {
    const __m128 v = _mm_loadu_ps(c + j);
    nan = _mm_or_ps(nan, _mm_cmpunord_ps(v, v));
  }
  if (_mm_movemask_ps(nan) != 0) return true;
#endif
  for (; j < n; ++j)
    if (c[j] != c[j]) return true;
  return false;
}

// One group of `size` (4, 2 or 1) k of `sgemm_m1` on contiguous columns of B (row k at
// b + k * sb_k) and c: the same operations as its strided loop, in the same order, one
// column at a time, written out per size so that the compiler runs the columns as vectors
// (MLAS's M = 1 products of a depthwise Conv's im2col columns; each column's value is
// unchanged, so every path gives the same bits).
void m1_group_unit(const float* x, int64_t sx, const float* b, int64_t sb_k,
                   float* __restrict c, int64_t n, int size) {
  const float x0 = x[0];
  const float* __restrict b0 = b;
  if (size == 4) {
    const float x1 = x[sx], x2 = x[2 * sx], x3 = x[3 * sx];
    const float* __restrict b1 = b + sb_k;
    const float* __restrict b2 = b + 2 * sb_k;
    const float* __restrict b3 = b + 3 * sb_k;
    for (int64_t j = 0; j < n; ++j)
      c[j] = (((x0 * b0[j] + x1 * b1[j]) + x2 * b2[j]) + x3 * b3[j]) + c[j];
  } else if (size == 2) {
    const float x1 = x[sx];
    const float* __restrict b1 = b + sb_k;
    for (int64_t j = 0; j < n; ++j) c[j] = (x0 * b0[j] + x1 * b1[j]) + c[j];
  } else {
    for (int64_t j = 0; j < n; ++j) c[j] = x0 * b0[j] + c[j];
  }
}

// MlasSgemmKernelM1Avx: c[j] (j < n) = sum over k of x[k] * B[k][j] (B[k][j] = b[k * sb_k +
// j * sb_n]) as `m1_column`; c starts at +0, or as it is with `accumulate`. Groups outside,
// columns inside; a NaN column is computed again with ONNX Runtime's NaN order.
void sgemm_m1(const float* x, int64_t sx, const float* b, int64_t sb_k, int64_t sb_n,
              float* c, int64_t sc, int64_t n, int64_t k, bool accumulate = false) {
  std::vector<float> c0(accumulate ? size_t(n) : 0);
  for (int64_t j = 0; j < n; ++j) {
    if (accumulate) c0[size_t(j)] = c[j * sc];
    else c[j * sc] = 0.0f;
  }
  int64_t k0 = 0;
  auto group = [&](int size) {
    if (sb_n == 1 && sc == 1) {
      m1_group_unit(x + k0 * sx, sx, b + k0 * sb_k, sb_k, c, n, size);
    } else {
      for (int64_t j = 0; j < n; ++j) {
        float t = x[k0 * sx] * b[k0 * sb_k + j * sb_n];
        for (int q = 1; q < size; ++q)
          t = t + x[(k0 + q) * sx] * b[(k0 + q) * sb_k + j * sb_n];
        c[j * sc] = t + c[j * sc];
      }
    }
    k0 += size;
  };
  while (k - k0 >= 4) group(4);
  if (k - k0 >= 2) group(2);
  if (k - k0 >= 1) group(1);
  if (sc == 1 && !any_nan(c, n)) return;
  for (int64_t j = 0; j < n; ++j)
    if (c[j * sc] != c[j * sc])
      c[j * sc] = m1_column<FirstNanArithmetic>(x, sx, b + j * sb_n, sb_k, k,
                                                accumulate ? c0[size_t(j)] : 0.0f);
}

// MlasSgemmKernelM1TransposeBAvx for one row: eight lanes of rounded products x[k] * row[k]
// (lane l takes k = l mod 8, padded with zeros), folded as the kernel folds a row computed
// in a group of four, two or one rows (`group`); operands in its assembly's order.
template <class Ops>
float m1_transposed_row(const float* x, int64_t sx, const float* row, int64_t sk, int64_t k,
                        int64_t group) {
  const int64_t whole = k / 8 * 8;  // k of the blocks of eight without padding
  float v[8] = {};
  if (sx == 1 && sk == 1) {  // unit strides: lanes the compiler keeps in vector registers
    for (int64_t k0 = 0; k0 < whole; k0 += 8)
      for (int l = 0; l < 8; ++l) v[l] = Ops::add(v[l], Ops::mul(x[k0 + l], row[k0 + l]));
  } else {
    for (int64_t k0 = 0; k0 < whole; k0 += 8)
      for (int l = 0; l < 8; ++l)
        v[l] = Ops::add(v[l], Ops::mul(x[(k0 + l) * sx], row[(k0 + l) * sk]));
  }
  if (whole < k)  // the last block: its padding lanes add +0 (which turns a -0 lane to +0)
    for (int l = 0; l < 8; ++l) {
      const int64_t kk = whole + l;
      const float p = kk < k ? Ops::mul(x[kk * sx], row[kk * sk]) : 0.0f;
      v[l] = Ops::add(v[l], p);
    }
  auto add = [](float a, float b) { return Ops::add(a, b); };
  if (group == 4)
    return add(add(add(add(v[0], v[1]), v[2]), v[3]), add(add(add(v[4], v[5]), v[6]), v[7]));
  if (group == 2)  // (unpckhps + unpcklps: lanes 2, 3, 6, 7 first)
    return add(add(add(v[2], v[0]), add(v[6], v[4])), add(add(v[3], v[1]), add(v[7], v[5])));
  return add(add(add(v[0], v[1]), add(v[2], v[3])), add(add(v[4], v[5]), add(v[6], v[7])));
}

// MlasSgemmKernelM1TransposeBAvx: out[r] = x . row r (row r = rows[r * sr + k * sk]) as
// `m1_transposed_row`, then + c (beta = 1) or + 0; a NaN row is computed again with ONNX
// Runtime's NaN order (docs/operators.md (O223)).
// With unit strides along k on a path with AVX2, the rows' sums come from
// m1_transposed_folds_avx2 (float_rnn_avx2.cpp: the same operations, four rows at once in
// 256-bit registers) in blocks of kFoldRows rows on the stack; a block's rows fold as in the
// whole product (every block but the last a multiple of four rows, the last holding the
// tail). The beta term and the NaN rows as below.
constexpr int64_t kFoldRows = 64;

void sgemm_m1_transposed(const float* x, int64_t sx, const float* rows, int64_t sr, int64_t sk,
                         float* out, int64_t so, int64_t nrows, int64_t k,
                         bool accumulate = false) {
  const int64_t tail = nrows % 4;
  const bool wide = sx == 1 && sk == 1 && k > 0 && float_path_has_avx2();
  float folds[kFoldRows];
  for (int64_t r0 = 0; r0 < nrows; r0 += kFoldRows) {
    const int64_t r1 = std::min(nrows, r0 + kFoldRows);
    if (wide) m1_transposed_folds_avx2(x, rows + r0 * sr, sr, folds, r1 - r0, k);
    for (int64_t r = r0; r < r1; ++r) {
      const float* row = rows + r * sr;
      const int64_t pos = r - (nrows - tail);
      const int64_t group = pos < 0 ? 4 : (tail >= 2 && pos < 2) ? 2 : 1;
      float y = wide ? folds[r - r0] : m1_transposed_row<PlainArithmetic>(x, sx, row, sk, k, group);
      const float c = accumulate ? out[r * so] : 0.0f;
      if (y != y || c != c) {
        y = m1_transposed_row<FirstNanArithmetic>(x, sx, row, sk, k, group);
        out[r * so] = first_nan_add(y, c);
      } else {
        out[r * so] = y + c;
      }
    }
  }
}

// Columns [0, cols) of a strip's rows kb x S from B's columns stored along K (src: column
// 0's first value, column j at src + j * sb_n, unit stride along K): blocks of four columns
// by four k moved as 4 x 4 transposes in SSE registers (as MLAS's MlasSgemmTransposePackB),
// the rest one value at a time. Q·Kᵀ's K (N x 64 a head) took a scalar store per value, a
// tenth of the product at N = 256 and more below.
void pack_columns(const float* src, int64_t sb_n, int64_t kb, int64_t cols, int64_t S,
                  float* strip) {
  int64_t j = 0;
#if defined(__SSE2__)
  if (S % 4 == 0) {
    for (; j + 4 <= cols; j += 4) {
      const float* c0 = src + j * sb_n;
      float* dst = strip + j;
      int64_t kk = 0;
      for (; kk + 4 <= kb; kk += 4) {
        __m128 r0 = _mm_loadu_ps(c0 + kk), r1 = _mm_loadu_ps(c0 + sb_n + kk);
        __m128 r2 = _mm_loadu_ps(c0 + 2 * sb_n + kk), r3 = _mm_loadu_ps(c0 + 3 * sb_n + kk);
        _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
        _mm_storeu_ps(dst + kk * S, r0);
        _mm_storeu_ps(dst + (kk + 1) * S, r1);
        _mm_storeu_ps(dst + (kk + 2) * S, r2);
        _mm_storeu_ps(dst + (kk + 3) * S, r3);
      }
      for (; kk < kb; ++kk)
        for (int q = 0; q < 4; ++q) dst[kk * S + q] = c0[q * sb_n + kk];
    }
  }
#endif
  for (; j < cols; ++j)
    for (int64_t kk = 0; kk < kb; ++kk) strip[kk * S + j] = src[j * sb_n + kk];
}

// Panel of B for K block [k0, k0 + kb) and columns [j0, j0 + cols): strips of 2W columns,
// k-major inside, zero-padded to np columns. A copy: the order of the moves changes nothing;
// rows of B stored contiguously (sb_n 1) are copied a row of a strip at a time, columns
// stored contiguously (sb_k 1, a transposed B) by pack_columns, others a column at a time.
// Only the padding columns of the last strip are zeroed first.
void pack_panel(const SgemmArgs& g, int64_t k0, int64_t kb, int64_t j0, int64_t cols,
                int64_t np, int64_t W, float* panel) {
  const int64_t S = 2 * W;
  if (cols < np) {  // the last strip's padding columns
    float* last = panel + (cols / S) * kb * S;
    const int64_t used = cols % S;
    for (int64_t kk = 0; kk < kb; ++kk) std::fill_n(last + kk * S + used, S - used, 0.0f);
  }
  if (g.sb_k == 1 && g.sb_n != 1) {
    for (int64_t s0 = 0; s0 < cols; s0 += S)
      pack_columns(g.b + k0 + (j0 + s0) * g.sb_n, g.sb_n, kb, std::min(S, cols - s0), S,
                   panel + (s0 / S) * kb * S);
    return;
  }
  if (g.sb_n == 1) {
    for (int64_t s0 = 0; s0 < cols; s0 += S) {
      const int64_t w = std::min(S, cols - s0);
      float* strip = panel + (s0 / S) * kb * S;
      const float* src = g.b + k0 * g.sb_k + j0 + s0;
      for (int64_t kk = 0; kk < kb; ++kk)
        std::memcpy(strip + kk * S, src + kk * g.sb_k, size_t(w) * sizeof(float));
    }
    return;
  }
  for (int64_t j = 0; j < cols; ++j) {
    float* dst = panel + (j / S) * kb * S + j % S;
    const float* src = g.b + k0 * g.sb_k + (j0 + j) * g.sb_n;
    for (int64_t kk = 0; kk < kb; ++kk) dst[kk * S] = src[kk * g.sb_k];
  }
}

// Every panel of a prepacked B (ONNX Runtime packs constant weights once), kept between calls
// of this thread per operand and reused while B's values equal those it was packed from.
struct KeptPanels {
  const float* b = nullptr;
  int64_t k = 0, n = 0, sb_k = 0, sb_n = 0, stride_k = 0, width = 0;
  int64_t used = 0;           // the thread's call count when last used (large operands)
  std::vector<float> source;  // B's memory (from b, `extent` floats) when packed
  std::vector<float> panels;  // the panels of every (K block, column block) in order,
                              // from `start` (on a 64-byte boundary)
  int64_t start = 0;
  const float* first() const { return panels.data() + start; }
  int64_t floats() const { return int64_t(source.size() + panels.size()) - start; }
};

constexpr int64_t kPanelColumns = kSgemmPanelColumns;

// Floats from p to the next 64-byte boundary: the panels start there, so that the kernel's
// full-vector loads of their rows (multiples of 64 bytes) never straddle two cache lines
// (they did from std::vector's 16-byte aligned storage, about a tenth of the product).
int64_t floats_to_line(const float* p) {
  return int64_t((64 - reinterpret_cast<uintptr_t>(p) % 64) % 64 / sizeof(float));
}

// Small operands (at most 2^17 values, the recurrent layers' weights): the kKeptSmall most
// recently used. Larger ones: as many as fit in kKeptFloats floats (copies and panels) per
// thread. Packing a column-strided B costs about as much as a hundred rows of the product,
// so at a few rows of A (M = 1..8 against a 300 x 1200 weight) it was most of the call. A
// kept large operand gives way only to one that comes when it has not been used for
// kStaleCalls calls, so a model with more weights than fit keeps those it has and packs the
// others per call, as before, instead of copying and packing each in turn.
constexpr size_t kKeptSmall = 8;
constexpr int64_t kSmallValues = int64_t(1) << 17;
constexpr int64_t kKeptFloats = int64_t(1) << 24;  // 64 MiB
constexpr int64_t kStaleCalls = 1024;

struct KeptCache {
  std::vector<std::unique_ptr<KeptPanels>> small;  // most recent last
  std::vector<std::unique_ptr<KeptPanels>> large;
  int64_t large_floats = 0, calls = 0;
};

// Floats of every panel of B.
int64_t panels_size(int64_t k, int64_t n, int64_t stride_k, int64_t W) {
  int64_t size = 0;
  for (int64_t k0 = 0; k0 < k; k0 += stride_k) {
    const int64_t kb = std::min(stride_k, k - k0);
    for (int64_t j0 = 0; j0 < n; j0 += kPanelColumns) {
      const int64_t cols = std::min(kPanelColumns, n - j0);
      size += kb * ((cols + 2 * W - 1) / (2 * W) * (2 * W));
    }
  }
  return size;
}

void pack_all(const SgemmArgs& g, int64_t extent, KeptPanels& e) {
  e.source.assign(g.b, g.b + extent);
  e.panels.clear();
  e.panels.reserve(size_t(panels_size(g.k, g.n, e.stride_k, e.width)) + 16);
  e.start = floats_to_line(e.panels.data());
  e.panels.resize(size_t(e.start));
  for (int64_t k0 = 0; k0 < g.k; k0 += e.stride_k) {
    const int64_t kb = std::min(e.stride_k, g.k - k0);
    for (int64_t j0 = 0; j0 < g.n; j0 += kPanelColumns) {
      const int64_t cols = std::min(kPanelColumns, g.n - j0);
      const int64_t np = (cols + 2 * e.width - 1) / (2 * e.width) * (2 * e.width);
      const size_t at = e.panels.size();
      e.panels.resize(at + size_t(kb * np));
      pack_panel(g, k0, kb, j0, cols, np, e.width, e.panels.data() + at);
    }
  }
}

const float* kept_panels(const SgemmArgs& g, int64_t stride_k, int64_t W) {
  const int64_t extent = (g.k - 1) * g.sb_k + (g.n - 1) * g.sb_n + 1;
  if (extent > 2 * g.k * g.n) return nullptr;  // B a sparse view of a larger array
  thread_local KeptCache cache;
  const bool small = g.k * g.n <= kSmallValues;
  auto& kept = small ? cache.small : cache.large;
  const int64_t now = ++cache.calls;
  KeptPanels* e = nullptr;
  for (size_t i = 0; i < kept.size() && e == nullptr; ++i) {
    KeptPanels& c = *kept[i];
    if (c.b == g.b && c.k == g.k && c.n == g.n && c.sb_k == g.sb_k && c.sb_n == g.sb_n &&
        c.stride_k == stride_k && c.width == W) {
      if (small) {
        std::rotate(kept.begin() + i, kept.begin() + i + 1, kept.end());
        e = kept.back().get();
      } else {
        e = &c;
      }
    }
  }
  if (e != nullptr) {
    e->used = now;
    if (std::memcmp(e->source.data(), g.b, size_t(extent) * sizeof(float)) == 0)
      return e->first();
  } else if (small) {
    if (kept.size() == kKeptSmall) kept.erase(kept.begin());
  } else {
    const int64_t need = extent + panels_size(g.k, g.n, stride_k, W);
    if (need > kKeptFloats) return nullptr;
    while (cache.large_floats + need > kKeptFloats) {
      auto lru = std::min_element(kept.begin(), kept.end(),
                                  [](const auto& x, const auto& y) { return x->used < y->used; });
      if (lru == kept.end() || now - (*lru)->used <= kStaleCalls) return nullptr;
      cache.large_floats -= (*lru)->floats();
      kept.erase(lru);
    }
  }
  if (e == nullptr) {
    kept.push_back(std::make_unique<KeptPanels>());
    e = kept.back().get();
    e->b = g.b, e->k = g.k, e->n = g.n, e->sb_k = g.sb_k, e->sb_n = g.sb_n;
    e->stride_k = stride_k, e->width = W, e->used = now;
    if (!small) cache.large_floats += extent + panels_size(g.k, g.n, stride_k, W);
  }
  pack_all(g, extent, *e);  // new, or the same place holds other values
  return e->first();
}

// A block of B whose rows are contiguous (sb_n 1), a whole number of vectors wide, within 64
// KB of memory from its first row to its last, and on 64-byte boundaries (its first value
// and its row stride: no load straddles two cache lines, as in the packed panels) is read in
// place rather than packed (the copy of attention's V, S x 64 a head, each call).
constexpr int64_t kInPlaceFloats = int64_t(1) << 14;

// The general kernel: K blocks of stride_k; B packed per block into zero-padded panels of
// up to 512 columns (the panel width does not change any sum), kept between calls when B is
// prepacked (a constant), or read in place when small (kInPlaceFloats); rows split between
// threads.
void sgemm_blocked(const SgemmArgs& g, int64_t stride_k, int threads) {
  const FloatKernels& kern = active_float_kernels();
  const int64_t W = kern.width;
  const float* kept = g.panels != nullptr && g.panels_stride_k == stride_k &&
                              g.panels_width == W
                          ? g.panels
                          : (g.packed ? kept_panels(g, stride_k, W) : nullptr);
  // this thread's packing buffer, kept between calls (a batch of small products packs one
  // panel per product: no allocation each time)
  thread_local std::vector<float> panel;
  for (int64_t k0 = 0; k0 < g.k; k0 += stride_k) {
    const int64_t kb = std::min(stride_k, g.k - k0);
    for (int64_t j0 = 0; j0 < g.n; j0 += kPanelColumns) {
      const int64_t cols = std::min(kPanelColumns, g.n - j0);
      const int64_t np = (cols + 2 * W - 1) / (2 * W) * (2 * W);
      const float* bp = kept;
      int64_t ldb = 0;  // (0: bp holds packed strips)
      if (kept != nullptr) {
        kept += kb * np;
      } else if (g.sb_n == 1 && cols % W == 0 && kb * g.sb_k <= kInPlaceFloats &&
                 floats_to_line(g.b + k0 * g.sb_k + j0) == 0 && g.sb_k % 16 == 0) {
        bp = g.b + k0 * g.sb_k + j0;  // rows of B read where they are
        ldb = g.sb_k;
      } else {
        if (panel.size() < size_t(kb * np) + 16) panel.resize(size_t(kb * np) + 16);
        float* aligned = panel.data() + floats_to_line(panel.data());
        pack_panel(g, k0, kb, j0, cols, np, W, aligned);
        bp = aligned;
      }
      const int64_t per = std::max<int64_t>(4, (int64_t(1) << 15) / std::max<int64_t>(1, kb * np));
      run_elementwise(g.m, per, threads, [&](int64_t i0, int64_t len) {
        kern.sgemm_block(g.a + i0 * g.sa_m + k0 * g.sa_k, g.sa_m, g.sa_k, bp, ldb,
                         g.c + i0 * g.ldc + j0, g.ldc, len, cols, kb, g.alpha,
                         k0 == 0 && g.init == nullptr);
      });
    }
  }
}

// Whether the MLAS operation the product belongs to has one row (its M = 1 kernel's case).
bool one_row_operation(const SgemmArgs& g) {
  return (g.operation_m > 0 ? g.operation_m : g.m) == 1;
}

// The K block of the product's blocked path (0 when another kernel reads B in place).
int64_t blocked_stride_k(const SgemmArgs& g) {
  if (g.m <= 0 || g.n <= 0 || g.k <= 0) return 0;
  if (g.packed) return 256;
  if (one_row_operation(g) && !g.trans_a && g.alpha == 1.0f) return 0;
  if (g.n == 1 && g.alpha == 1.0f && g.unit_ldb && (!g.trans_b || g.k == 1)) return 0;
  return mlas_stride_k(g.n, g.k, g.trans_a);
}

}  // namespace

int64_t sgemm_panels_size(int64_t k, int64_t n, int64_t stride_k, int64_t width) {
  return panels_size(k, n, stride_k, width);
}

SgemmPanels sgemm_panels(const SgemmArgs& g) {
  SgemmPanels p;
  p.stride_k = blocked_stride_k(g);
  p.width = active_float_kernels().width;
  p.floats = p.stride_k > 0 ? panels_size(g.k, g.n, p.stride_k, p.width) : 0;
  return p;
}

void pack_sgemm_panels(const SgemmArgs& g, const SgemmPanels& p, float* out) {
  if (p.stride_k <= 0) return;
  for (int64_t k0 = 0; k0 < g.k; k0 += p.stride_k) {
    const int64_t kb = std::min(p.stride_k, g.k - k0);
    for (int64_t j0 = 0; j0 < g.n; j0 += kPanelColumns) {
      const int64_t cols = std::min(kPanelColumns, g.n - j0);
      const int64_t np = (cols + 2 * p.width - 1) / (2 * p.width) * (2 * p.width);
      pack_panel(g, k0, kb, j0, cols, np, p.width, out);
      out += kb * np;
    }
  }
}

void run_mlas_sgemm(const SgemmArgs& g, int threads) {
  if (g.m <= 0 || g.n <= 0) return;
  const bool acc = g.init != nullptr;
  for (int64_t i = 0; i < g.m; ++i)
    if (acc && g.si_n == 1) {  // C's rows copied into the output first (beta = 1)
      std::memmove(g.c + i * g.ldc, g.init + i * g.si_m, size_t(g.n) * sizeof(float));
    } else if (acc) {  // C broadcast into the output first
      for (int64_t j = 0; j < g.n; ++j) g.c[i * g.ldc + j] = g.init[i * g.si_m + j * g.si_n];
    } else if (g.k <= 0) {
      std::fill_n(g.c + i * g.ldc, g.n, 0.0f);
    }
  if (g.k <= 0) return;
  if (g.packed) return sgemm_blocked(g, 256, threads);
  if (one_row_operation(g) && !g.trans_a && g.alpha == 1.0f) {
    if (g.trans_b)  // row j of the transposed kernel's matrix is column j of B
      return sgemm_m1_transposed(g.a, g.sa_k, g.b, g.sb_n, g.sb_k, g.c, 1, g.n, g.k, acc);
    return sgemm_m1(g.a, g.sa_k, g.b, g.sb_k, g.sb_n, g.c, 1, g.n, g.k, acc);
  }
  if (g.n == 1 && g.alpha == 1.0f && g.unit_ldb && (!g.trans_b || g.k == 1)) {
    if (!g.trans_a)  // B's column against each row of A
      return sgemm_m1_transposed(g.b, g.sb_k, g.a, g.sa_m, g.sa_k, g.c, g.ldc, g.m, g.k, acc);
    // B's column against A as stored (k x m): the M = 1 kernel with the roles swapped
    return sgemm_m1(g.b, g.sb_k, g.a, g.sa_k, g.sa_m, g.c, g.ldc, g.m, g.k, acc);
  }
  sgemm_blocked(g, mlas_stride_k(g.n, g.k, g.trans_a), threads);
}

}  // namespace lowp
