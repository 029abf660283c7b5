// Driver of the float32 recurrence (recurrent.h): the time loop with sequence-length masking,
// directions as tasks on the thread pool, or one direction's products cut between threads.
#include "recurrent.h"

#include <algorithm>
#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#include "dispatch.h"
#include "threadpool.h"

namespace lowp {

const RnnKernels& active_rnn_kernels() {
  const std::string name = active_table()->name;
  if (name == "scalar") return kRnnScalar;
  if (name == "avx512vnni" || name == "amx") return kRnnAvx512;
  return kRnnAvx2;  // avx2, avxvnni, avxvnni_evex
}

namespace {

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// Multiply-adds of each part a product is cut into at the least. Measured on the AMD EPYC
// (Zen 4) with bench/rnn_threads.py: steps of 128 Ki multiply-adds or fewer ran slower cut in
// two (the job's hand-over costs more than half the product), steps of 192 Ki and more
// faster (docs/native.md).
constexpr double kMacsPerPart = 98304.0;

// One product of a step for gemm_cut: c (m x n) += a (m x nk) b as k.gemm, b packed in
// panels (with `store`, c = the product).
struct Product {
  int n;
  const float* a;
  int64_t lda;
  const float* bp;
  float* c;
  int64_t ldc;
  bool store;
};

// k.gemm of each product (all m rows over nk), their panels numbered one after the other and
// cut between up to `threads` threads when the products are large enough: the products of a
// step that read the same state run as one parallel job. Each panel's columns are computed
// by the same tiles in the same order whichever part holds it, so the result does not depend
// on the cut. The pool's caller usually takes the first part and its worker the second, step
// after step, so each part of a recurrence's weights mostly stays in the caches of one core.
void gemm_cut(const RnnKernels& k, int threads, int m, int nk,
              std::initializer_list<Product> products) {
  int64_t panels = 0, cols = 0;
  for (const Product& p : products) {
    panels += (p.n + kRnnPanel - 1) / kRnnPanel;
    cols += p.n;
  }
  const auto run = [&](int64_t g0, int64_t g1) {  // panels [g0, g1) of the numbering
    int64_t base = 0;
    for (const Product& p : products) {
      const int64_t count = (p.n + kRnnPanel - 1) / kRnnPanel;
      const int64_t lo = std::max<int64_t>(g0 - base, 0), hi = std::min(g1 - base, count);
      if (lo < hi) {
        const int64_t c0 = lo * kRnnPanel, c1 = std::min<int64_t>(p.n, hi * kRnnPanel);
        k.gemm(m, int(c1 - c0), nk, p.a, p.lda, p.bp + lo * nk * kRnnPanel, p.c + c0, p.ldc,
               p.store);
      }
      base += count;
    }
  };
  const double macs = double(m) * double(cols) * double(nk);
  const int64_t parts =
      std::min<int64_t>({threads, panels, std::max<int64_t>(1, int64_t(macs / kMacsPerPart))});
  if (parts <= 1) {
    run(0, panels);
    return;
  }
  ThreadPool::instance().run(int(parts), [&](int i) {
    run(panels * i / parts, panels * (i + 1) / parts);
  });
}

// Buffers of one direction; every row is padded to hp floats with zeros.
struct Workspace {
  std::vector<float> xw;     // (T * B, G * hp): X W^T of every step
  std::vector<float> gates;  // (B, G * hp): LSTM i, o, f, c; GRU z, r, h (the h part of xw)
  std::vector<float> h, c;   // (B, hp) state
  std::vector<float> rh;     // (B, hp) GRU: the reset product's operand
  std::vector<float> lin;    // (B, hp) GRU with linear_before_reset: h @ Rh^T + Rbh
  std::vector<float> p;      // (3 * hp) peepholes
  std::vector<float> bias;   // (G * hp) added after the recurrence
  std::vector<float> rbh;    // (hp) GRU with linear_before_reset
};

void prepare(const RnnArgs& a, int64_t d, int64_t hp, Workspace& w) {
  const int64_t H = a.h, B = a.b, G = a.gru ? 3 : 4, gw = G * hp;
  const bool lbr = a.gru && a.linear_before_reset;
  w.gates.assign(size_t(B * gw), 0.0f);
  w.h.assign(size_t(B * hp), 0.0f);
  w.c.assign(a.gru ? 0 : size_t(B * hp), 0.0f);
  w.rh.assign(a.gru ? size_t(B * hp) : 0, 0.0f);
  w.lin.assign(lbr ? size_t(B * hp) : 0, 0.0f);
  for (int64_t b = 0; b < B; ++b) {
    if (a.h0) std::memcpy(&w.h[size_t(b * hp)], a.h0 + b * a.h0_sb + d * a.h0_sd, size_t(H) * 4);
    if (a.c0 && !a.gru)
      std::memcpy(&w.c[size_t(b * hp)], a.c0 + b * a.c0_sb + d * a.c0_sd, size_t(H) * 4);
  }
  w.p.clear();
  if (a.p && !a.gru) {
    w.p.assign(size_t(3 * hp), 0.0f);
    for (int64_t g = 0; g < 3; ++g)
      std::memcpy(&w.p[size_t(g * hp)], a.p + d * 3 * H + g * H, size_t(H) * 4);
  }
  w.bias.clear();
  w.rbh.clear();
  if (a.bias) {  // Wb + Rb per gate; a GRU's h gate with linear_before_reset: Wb, Rb apart
    w.bias.assign(size_t(gw), 0.0f);
    const float* wb = a.bias + d * 2 * G * H;
    const float* rb = wb + G * H;
    for (int64_t g = 0; g < G; ++g)
      for (int64_t j = 0; j < H; ++j)
        w.bias[size_t(g * hp + j)] = lbr && g == 2 ? wb[g * H + j] : wb[g * H + j] + rb[g * H + j];
    if (lbr) {
      w.rbh.assign(size_t(hp), 0.0f);
      std::memcpy(w.rbh.data(), rb + 2 * H, size_t(H) * 4);
    }
  }
}

// One direction; its products cut between up to `threads` threads (gemm_cut).
void run_direction(const RnnArgs& a, const RnnKernels& k, int64_t d, int64_t hp, Workspace& w,
                   int threads) {
  const int64_t T = a.t, B = a.b, H = a.h, G = a.gru ? 3 : 4, gw = G * hp;
  const bool rev = a.reverse[d];
  const bool lbr = a.gru && a.linear_before_reset;
  const float* rt = a.r + d * a.r_sd;                              // LSTM, or GRU z and r
  const float* rt_h = rt + rnn_packed_size(H, 2 * hp);             // GRU h
  std::vector<int64_t> len(static_cast<size_t>(B));
  int64_t tmax = 0;
  for (int64_t b = 0; b < B; ++b) {
    len[size_t(b)] = a.lens ? int64_t(a.lens[b]) : T;
    tmax = std::max(tmax, len[size_t(b)]);
  }
  float* gates = w.gates.data();
  float* h = w.h.data();
  const float* bias = w.bias.empty() ? nullptr : w.bias.data();
  const int m = int(B), kh = int(H);
  // ONNX Runtime projects the first max(lens) steps, X W^T as one product (beta = 0)
  w.xw.resize(size_t(std::max<int64_t>(1, tmax * B * gw)));
  if (tmax > 0)
    gemm_cut(k, threads, int(tmax * B), int(a.i),
             {{int(gw), a.x, a.i, a.w + d * a.w_sd, w.xw.data(), gw, true}});
  for (int64_t t = 0; t < tmax; ++t) {
    // Gate pre-activations start from the input projection of each active row.
    for (int64_t b = 0; b < B; ++b) {
      if (t >= len[size_t(b)]) continue;
      const int64_t src = rev ? len[size_t(b)] - 1 - t : t;
      std::memcpy(gates + b * gw, w.xw.data() + (src * B + b) * gw, size_t(gw) * 4);
    }
    // Rows past their length take part in the products (each row of a product depends on
    // its own row only) and are not updated.
    if (!a.gru) {
      gemm_cut(k, threads, m, kh, {{int(gw), h, hp, rt, gates, gw, false}});
      LstmCell cell;
      cell.p = w.p.empty() ? nullptr : w.p.data();
      cell.b = bias;
      cell.hp = int(hp);
      cell.clip = a.clip;
      cell.input_forget = a.input_forget;
      cell.acts = a.acts ? a.acts + d : nullptr;
      for (int64_t b = 0; b < B; ++b) {
        if (t >= len[size_t(b)]) continue;
        cell.g = cell.work = gates + b * gw;
        cell.h = h + b * hp;
        cell.c = w.c.data() + b * hp;
        k.lstm_cell(cell);
      }
    } else {
      const Product zr{int(2 * hp), h, hp, rt, gates, gw, false};
      if (lbr) {  // lin = Rbh + h @ Rh^T (beta = 1), or the product alone without a bias
        for (int64_t b = 0; b < B && bias; ++b)
          std::memcpy(w.lin.data() + b * hp, w.rbh.data(), size_t(hp) * 4);
        gemm_cut(k, threads, m, kh,
                 {zr, {int(hp), h, hp, rt_h, w.lin.data(), hp, bias == nullptr}});
      } else {
        gemm_cut(k, threads, m, kh, {zr});
      }
      GruCell cell;
      cell.b = bias;
      cell.hp = int(hp);
      cell.clip = a.clip;
      cell.add_rh = lbr;
      cell.acts = a.acts ? a.acts + d : nullptr;
      for (int64_t b = 0; b < B; ++b) {
        if (t >= len[size_t(b)]) continue;
        cell.g = cell.work = gates + b * gw;
        cell.h = h + b * hp;
        cell.rh = w.rh.data() + b * hp;
        cell.lin = lbr ? w.lin.data() + b * hp : nullptr;
        k.gru_reset(cell);
      }
      if (!lbr)
        gemm_cut(k, threads, m, kh, {{int(hp), w.rh.data(), hp, rt_h, gates + 2 * hp, gw, false}});
      for (int64_t b = 0; b < B; ++b) {
        if (t >= len[size_t(b)]) continue;
        cell.g = cell.work = gates + b * gw;
        cell.gh = gates + b * gw + 2 * hp;
        cell.h = h + b * hp;
        cell.rh = w.rh.data() + b * hp;
        k.gru_update(cell);
      }
    }
    if (a.y)
      for (int64_t b = 0; b < B; ++b) {
        if (t >= len[size_t(b)]) continue;
        const int64_t dst = rev ? len[size_t(b)] - 1 - t : t;
        std::memcpy(a.y + dst * a.y_st + b * a.y_sb + d * a.y_sd, h + b * hp, size_t(H) * 4);
      }
  }
  for (int64_t b = 0; b < B; ++b) {
    if (a.y)
      for (int64_t t = len[size_t(b)]; t < T; ++t)
        std::memset(a.y + t * a.y_st + b * a.y_sb + d * a.y_sd, 0, size_t(H) * 4);
    // an empty sequence's final states are 0, not the initial ones (ONNX Runtime, (O62b))
    const bool empty = len[size_t(b)] == 0;
    if (a.yh && empty) std::memset(a.yh + b * a.yh_sb + d * a.yh_sd, 0, size_t(H) * 4);
    if (a.yh && !empty) std::memcpy(a.yh + b * a.yh_sb + d * a.yh_sd, h + b * hp, size_t(H) * 4);
    if (a.yc && !a.gru && empty) std::memset(a.yc + b * a.yc_sb + d * a.yc_sd, 0, size_t(H) * 4);
    if (a.yc && !a.gru && !empty)
      std::memcpy(a.yc + b * a.yc_sb + d * a.yc_sd, w.c.data() + b * hp, size_t(H) * 4);
  }
}

}  // namespace

void run_rnn(const RnnArgs& a, int threads) {
  const RnnKernels& k = active_rnn_kernels();
  const int64_t hp = round_up(a.h, kRnnAlign);
  std::vector<Workspace> ws(size_t(a.d));
  for (int64_t d = 0; d < a.d; ++d) prepare(a, d, hp, ws[size_t(d)]);
  if (threads < 1) threads = ThreadPool::max_threads();
  // Directions are independent: one task each, every one computed the same way on any thread
  // (its products then uncut: a pool job does not start another); a single direction cuts
  // its products between the threads instead.
  if (threads > 1 && a.d > 1) {
    ThreadPool::instance().run(int(a.d),
                               [&](int d) { run_direction(a, k, d, hp, ws[size_t(d)], 1); });
  } else {
    for (int64_t d = 0; d < a.d; ++d) run_direction(a, k, d, hp, ws[size_t(d)], threads);
  }
}

}  // namespace lowp
