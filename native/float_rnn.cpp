// The float32 RNN operator (float_rnn.h). Compiled with -fno-builtin on top of the common
// flags (no -ffast-math, no vector math library): each expf / logf is one call of the C
// library's own function, as ONNX Runtime's functors make it; every other operation is one
// IEEE operation rounded to float32 (-ffp-contract=off), so the values are those of
// lowp.runtime.float_nn._rnn_ort on every instruction-set path (only the products, in
// MLAS's order by run_mlas_sgemm, use the path's kernels, and they equal each other).
#include "float_rnn.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "float_kernels.h"
#include "threadpool.h"

namespace lowp {

namespace {

// ONNX Runtime's RNN Sigmoid: 1 / (1 + expf(-x)) for x >= 0, else expf(x) / (1 + expf(x)).
inline float ort_sigmoid(float v) {
  if (v >= 0.0f) return 1.0f / (1.0f + ::expf(-v));
  const float e = ::expf(v);
  return e / (1.0f + e);
}

inline float ort_tanh(float v) { return 2.0f * ort_sigmoid(2.0f * v) - 1.0f; }

// One activation over n values in place (lowp.runtime.float_nn._rnn_ort_activation).
template <class F>
void apply(float* v, int64_t n, F f) {
  for (int64_t j = 0; j < n; ++j) v[j] = f(v[j]);
}

void activate(int code, float a, float b, float* v, int64_t n) {
  switch (RnnActivation(code)) {
    case RnnActivation::kAffine:
      return apply(v, n, [a, b](float x) { return a * x + b; });
    case RnnActivation::kRelu:
      return apply(v, n, [](float x) { return 0.0f < x ? x : 0.0f; });
    case RnnActivation::kLeakyRelu:
      return apply(v, n, [a](float x) { return x >= 0.0f ? x : a * x; });
    case RnnActivation::kThresholdedRelu:
      return apply(v, n, [a](float x) { return x > a ? x : 0.0f; });
    case RnnActivation::kScaledTanh:
      return apply(v, n, [a, b](float x) { return a * ort_tanh(b * x); });
    case RnnActivation::kSigmoid:
      return apply(v, n, ort_sigmoid);
    case RnnActivation::kHardSigmoid:
      return apply(v, n, [a, b](float x) {
        float y = a * x + b;
        y = 0.0f < y ? y : 0.0f;  // std::max(0, y)
        return y < 1.0f ? y : 1.0f;
      });
    case RnnActivation::kElu:
      return apply(v, n, [a](float x) { return x >= 0.0f ? x : a * (::expf(x) - 1.0f); });
    case RnnActivation::kSoftsign:
      return apply(v, n, [](float x) { return x / (1.0f + std::fabs(x)); });
    case RnnActivation::kSoftplus:
      return apply(v, n, [](float x) { return ::logf(1.0f + ::expf(x)); });
    default:  // Tanh, and ONNX Runtime's default for a name it does not know
      return apply(v, n, ort_tanh);
  }
}

// c (m x n) = a (m x k, rows of k) times the transpose of mt (n x k, rows of k), in MLAS's
// order (not prepacked); with init (n floats) every row starts from it (beta = 1).
SgemmArgs gemm_bt(const float* a, int64_t m, int64_t k, const float* mt, int64_t n, float* c,
                  const float* init) {
  SgemmArgs g;
  g.a = a, g.b = mt, g.c = c, g.init = init;
  g.m = m, g.n = n, g.k = k;
  g.sa_m = k, g.sa_k = 1, g.sb_k = 1, g.sb_n = k, g.ldc = n, g.si_m = 0, g.si_n = 1;
  g.trans_b = true;
  return g;
}

// One MLAS operation of a product cut between threads: rows [r0, r0 + rn), columns
// [c0, c0 + cn).
struct GemmPart {
  int64_t r0, rn, c0, cn;
};

// MlasPartitionWork: the first total % count parts get one more.
std::pair<int64_t, int64_t> partition_work(int64_t index, int64_t count, int64_t total) {
  const int64_t per = total / count, extra = total % count;
  if (index < extra) return {index * (per + 1), per + 1};
  return {index * per + extra, per};
}

// The operations ONNX Runtime's MlasGemm cuts one (m x k) by (k x n) product into between
// `threads` intra-op threads (lowp.mlas_sgemm.thread_parts: one more thread per 64 Ki
// multiply-adds, N cut in blocks of 16 columns when N > M, else M).
std::vector<GemmPart> mlas_thread_parts(int64_t m, int64_t n, int64_t k, int threads) {
  const double work = double(m) * double(n) * double(k) / 65536.0;
  const int64_t target = std::min<int64_t>(int64_t(work) + 1, std::max(1, threads));
  std::vector<GemmPart> parts;
  if (n > m) {
    const int64_t blocks = (n + 15) / 16, count = std::min(target, blocks);
    for (int64_t t = 0; t < count; ++t) {
      const auto [start, len] = partition_work(t, count, blocks);
      const int64_t lo = start * 16, hi = std::min(n, (start + len) * 16);
      if (lo < hi) parts.push_back({0, m, lo, hi - lo});
    }
  } else {
    const int64_t count = std::min(target, m);
    for (int64_t t = 0; t < count; ++t) {
      const auto [start, len] = partition_work(t, count, m);
      if (len) parts.push_back({start, len, 0, n});
    }
  }
  return parts;
}

// The part q of gemm_bt(a, m, k, mt, n, c, init): its rows of a and c, its rows of mt. A
// part narrower than the product is never MLAS's N = 1 kernel's (it is handed the whole
// product's leading dimensions: unit_ldb false), as lowp.runtime.native_float's parts.
SgemmArgs gemm_bt_part(const float* a, int64_t k, const float* mt, int64_t n, float* c,
                       const float* init, const GemmPart& q) {
  SgemmArgs g = gemm_bt(a ? a + q.r0 * k : nullptr, q.rn, k, mt + q.c0 * k, q.cn,
                        c + q.r0 * n + q.c0, init ? init + q.c0 : nullptr);
  g.ldc = n;
  g.unit_ldb = q.cn == n;
  return g;
}

void run_direction(const FloatRnnArgs& a, int64_t d, int threads) {
  const int64_t T = a.t, B = a.b, I = a.i, H = a.h, BH = B * H;
  const bool rev = a.reverse[d];
  // the rows Wb + Rb (one rounded sum; zeros without a bias), X W^T accumulated into them,
  // in the operations ONNX Runtime's threads cut it into
  std::vector<float> rows(size_t(H), 0.0f);
  if (a.bias)
    for (int64_t j = 0; j < H; ++j)
      rows[size_t(j)] = a.bias[d * 2 * H + j] + a.bias[d * 2 * H + H + j];
  std::vector<float> xw(size_t(T * BH));
  const float* wd = a.w + d * H * I;
  for (const GemmPart& q : mlas_thread_parts(T * B, H, I, threads))
    run_mlas_sgemm(gemm_bt_part(a.x, I, wd, H, xw.data(), rows.data(), q), 1);
  std::vector<float> g(static_cast<size_t>(BH));
  const float* h_prev = a.h0 ? a.h0 + d * BH : nullptr;
  // Each step's product in its operations; their R panels packed once for every step (the
  // values MLAS packs on each call; none when the product reads R in place, B = 1)
  const float* rd = a.r + d * H * H;
  const std::vector<GemmPart> step_parts = mlas_thread_parts(B, H, H, threads);
  std::vector<SgemmArgs> recs;
  std::vector<std::vector<float>> packed(step_parts.size());
  for (size_t i = 0; i < step_parts.size(); ++i) {
    SgemmArgs rec = gemm_bt_part(h_prev, H, rd, H, g.data(), nullptr, step_parts[i]);
    const SgemmPanels panels = sgemm_panels(rec);
    if (panels.floats > 0) {
      packed[i].resize(size_t(panels.floats));
      pack_sgemm_panels(rec, panels, packed[i].data());
      rec.panels = packed[i].data();
      rec.panels_stride_k = panels.stride_k, rec.panels_width = panels.width;
    }
    recs.push_back(rec);
  }
  // B = 1: the product is the one-row transposed kernel's; its 256-bit form on the paths
  // with AVX2 (the same sums)
  const bool wide_m1 = B == 1 && float_path_has_avx2();
  const float hi = a.clip, lo = -a.clip;
  for (int64_t t = 0; t < T; ++t) {
    const int64_t step = rev ? T - 1 - t : t;
    if (h_prev) {
      for (size_t i = 0; i < recs.size(); ++i) {
        const GemmPart& q = step_parts[i];
        bool nan = false;
        if (wide_m1) {
          float* out = g.data() + q.c0;
          rnn_m1_transposed_avx2(h_prev, rd + q.c0 * H, out, q.cn, H);
          for (int64_t c = 0; c < q.cn; ++c) nan |= out[c] != out[c];
        }
        if (!wide_m1 || nan) {  // a NaN: the shared kernel's NaN order (docs/operators.md (O271))
          recs[i].a = h_prev + q.r0 * H;
          run_mlas_sgemm(recs[i], 1);
        }
      }
    } else {
      std::fill(g.begin(), g.end(), 0.0f);
    }
    const float* xs = xw.data() + step * BH;
    for (int64_t e = 0; e < BH; ++e) {
      float v = g[size_t(e)] + xs[e];
      if (a.has_clip) {
        if (hi < v) v = hi;
        if (v < lo) v = lo;
      }
      g[size_t(e)] = v;
    }
    activate(a.act[d], a.alpha[d], a.beta[d], g.data(), BH);
    float* out = a.y + (step * a.d + d) * BH;
    for (int64_t b = 0; b < B; ++b) {
      const bool valid = a.lens == nullptr || step < a.lens[b];
      for (int64_t j = 0; j < H; ++j)
        out[b * H + j] = valid ? g[size_t(b * H + j)] : (h_prev ? h_prev[b * H + j] : 0.0f);
    }
    h_prev = out;
  }
  // Y_h: Y at the last valid step (forward) or at step 0 (reverse), read before the rows
  // past each sequence's end are zeroed; 0 when that step is outside [0, T)
  for (int64_t b = 0; b < B; ++b) {
    const int64_t len = a.lens ? a.lens[b] : T;
    const int64_t last = rev ? 0 : len - 1;
    float* yh = a.yh + d * BH + b * H;
    if (T > 0 && last >= 0 && last < T)
      std::copy_n(a.y + (last * a.d + d) * BH + b * H, H, yh);
    else
      std::fill_n(yh, H, 0.0f);
    for (int64_t t = std::max<int64_t>(len, 0); t < T; ++t)
      std::fill_n(a.y + (t * a.d + d) * BH + b * H, H, 0.0f);
  }
}

}  // namespace

void rnn_functor(int code, float alpha, float beta, float* v, int64_t n) {
  activate(code, alpha, beta, v, n);
}

void run_float_rnn(const FloatRnnArgs& a, int threads) {
  if (threads < 1) threads = ThreadPool::max_threads();
  if (threads > 1 && a.d > 1) {
    ThreadPool::instance().run(int(a.d), [&](int d) { run_direction(a, d, threads); });
  } else {
    for (int64_t d = 0; d < a.d; ++d) run_direction(a, d, threads);
  }
}

}  // namespace lowp
