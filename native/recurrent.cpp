// Driver of the float32 recurrence (recurrent.h): weight packing, the time loop with
// sequence-length masking, and directions as tasks on the thread pool.
#include "recurrent.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dispatch.h"
#include "threadpool.h"

namespace lowp {

const RnnKernels& active_rnn_kernels() {
  const std::string name = active_table()->name;
  if (name == "scalar") return kRnnScalar;
  if (name == "avx512vnni") return kRnnAvx512;
  return kRnnAvx2;  // avx2, avxvnni, avxvnni_evex
}

namespace {

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// Buffers of one direction; every row is padded to hp floats with zeros.
struct Workspace {
  std::vector<float> rt;     // packed R^T: (H, G * hp), rt[k][g * hp + j] = R[g * H + j][k]
  std::vector<float> r_src;  // the R that rt was packed from (rt is reused while R equals it)
  std::vector<float> gates;  // (B, G * hp)
  std::vector<float> h, c;   // (B, hp) state
  std::vector<float> aux;    // (B, hp): r * h (GRU) or the input part of the h gate (lbr)
  std::vector<float> p;      // (3 * hp) peepholes
  std::vector<float> rbh;    // (hp)
  std::vector<float> bias;   // (4 * hp) LSTM bias Wb + Rb, added after the recurrence
};

void prepare(const RnnArgs& a, int64_t d, int64_t hp, Workspace& w) {
  const int64_t H = a.h, B = a.b, G = a.gru ? 3 : 4, gw = G * hp;
  const float* r = a.r + d * G * H * H;
  const size_t rn = size_t(G * H * H);
  if (w.rt.size() != size_t(H * gw) || w.r_src.size() != rn ||
      std::memcmp(w.r_src.data(), r, rn * sizeof(float)) != 0) {
    w.rt.assign(size_t(H * gw), 0.0f);
    for (int64_t g = 0; g < G; ++g)
      for (int64_t j = 0; j < H; ++j)
        for (int64_t k = 0; k < H; ++k) w.rt[size_t(k * gw + g * hp + j)] = r[(g * H + j) * H + k];
    w.r_src.assign(r, r + rn);
  }
  w.gates.assign(size_t(B * gw), 0.0f);
  w.h.assign(size_t(B * hp), 0.0f);
  w.c.assign(a.gru ? 0 : size_t(B * hp), 0.0f);
  w.aux.assign(a.gru ? size_t(B * hp) : 0, 0.0f);
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
  w.rbh.assign(size_t(hp), 0.0f);
  if (a.rbh) std::memcpy(w.rbh.data(), a.rbh + d * H, size_t(H) * 4);
  w.bias.clear();
  if (a.bias && !a.gru) {
    w.bias.assign(size_t(4 * hp), 0.0f);
    const float* wb = a.bias + d * 8 * H;
    for (int64_t g = 0; g < 4; ++g)
      for (int64_t j = 0; j < H; ++j)
        w.bias[size_t(g * hp + j)] = wb[g * H + j] + wb[4 * H + g * H + j];
  }
}

void run_direction(const RnnArgs& a, const RnnKernels& k, int64_t d, int64_t hp, Workspace& w) {
  const int64_t T = a.t, B = a.b, H = a.h, G = a.gru ? 3 : 4, gw = G * hp;
  const bool rev = a.reverse[d];
  const bool lbr = a.gru && a.linear_before_reset;
  std::vector<int64_t> len(static_cast<size_t>(B));
  int64_t tmax = 0;
  for (int64_t b = 0; b < B; ++b) {
    len[size_t(b)] = a.lens ? int64_t(a.lens[b]) : T;
    tmax = std::max(tmax, len[size_t(b)]);
  }
  float* gates = w.gates.data();
  float* h = w.h.data();
  float* aux = w.aux.data();
  const int m = int(B), kh = int(H);
  for (int64_t t = 0; t < tmax; ++t) {
    // Gate pre-activations start from the input projection of each active row.
    for (int64_t b = 0; b < B; ++b) {
      if (t >= len[size_t(b)]) continue;
      const int64_t src = rev ? len[size_t(b)] - 1 - t : t;
      const float* x = a.xw + src * a.xw_st + b * a.xw_sb + d * a.xw_sd;
      float* g = gates + b * gw;
      for (int64_t q = 0; q < G; ++q) {
        if (lbr && q == 2) {
          std::memcpy(aux + b * hp, x + q * H, size_t(H) * 4);
          std::memcpy(g + q * hp, w.rbh.data(), size_t(hp) * 4);
        } else {
          std::memcpy(g + q * hp, x + q * H, size_t(H) * 4);
        }
      }
    }
    // Rows past their length take part in the products (their gates are stale but finite)
    // and are not updated.
    if (!a.gru) {
      k.gemm(m, int(gw), kh, h, hp, w.rt.data(), gw, gates, gw);
      LstmCell cell;
      cell.p = w.p.empty() ? nullptr : w.p.data();
      cell.b = w.bias.empty() ? nullptr : w.bias.data();
      cell.hp = int(hp);
      cell.clip = a.clip;
      cell.input_forget = a.input_forget;
      for (int64_t b = 0; b < B; ++b) {
        if (t >= len[size_t(b)]) continue;
        cell.g = gates + b * gw;
        cell.h = h + b * hp;
        cell.c = w.c.data() + b * hp;
        k.lstm_cell(cell);
      }
    } else {
      GruCell cell;
      cell.hp = int(hp);
      cell.clip = a.clip;
      if (lbr) {
        k.gemm(m, int(gw), kh, h, hp, w.rt.data(), gw, gates, gw);
        for (int64_t b = 0; b < B; ++b) {
          if (t >= len[size_t(b)]) continue;
          cell.g = gates + b * gw;
          cell.xh = aux + b * hp;
          cell.h = h + b * hp;
          k.gru_lbr(cell);
        }
      } else {
        k.gemm(m, int(2 * hp), kh, h, hp, w.rt.data(), gw, gates, gw);
        for (int64_t b = 0; b < B; ++b) {
          if (t >= len[size_t(b)]) continue;
          cell.g = gates + b * gw;
          cell.h = h + b * hp;
          cell.rh = aux + b * hp;
          k.gru_reset(cell);
        }
        k.gemm(m, int(hp), kh, aux, hp, w.rt.data() + 2 * hp, gw, gates + 2 * hp, gw);
        for (int64_t b = 0; b < B; ++b) {
          if (t >= len[size_t(b)]) continue;
          cell.g = gates + b * gw;
          cell.h = h + b * hp;
          k.gru_update(cell);
        }
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
    if (a.yh) std::memcpy(a.yh + b * a.yh_sb + d * a.yh_sd, h + b * hp, size_t(H) * 4);
    if (a.yc && !a.gru)
      std::memcpy(a.yc + b * a.yc_sb + d * a.yc_sd, w.c.data() + b * hp, size_t(H) * 4);
  }
}

// The workspace of the weights at `r` (one direction's R), kept between calls of this
// thread: a model's recurrent nodes run with the same constant weights on every call, so
// their packed R^T is reused (prepare checks R's values, so reused memory is never trusted).
Workspace& workspace(const float* r) {
  constexpr size_t kKept = 16;
  thread_local std::vector<std::pair<const float*, std::unique_ptr<Workspace>>> kept;
  for (size_t i = 0; i < kept.size(); ++i) {
    if (kept[i].first != r) continue;
    std::rotate(kept.begin() + i, kept.begin() + i + 1, kept.end());  // most recent last
    return *kept.back().second;
  }
  if (kept.size() == kKept) kept.erase(kept.begin());
  kept.emplace_back(r, std::make_unique<Workspace>());
  return *kept.back().second;
}

}  // namespace

void run_rnn(const RnnArgs& a, int threads) {
  const RnnKernels& k = active_rnn_kernels();
  const int64_t hp = round_up(a.h, kRnnAlign);
  const int64_t G = a.gru ? 3 : 4;
  Workspace* ws[2] = {nullptr, nullptr};
  for (int64_t d = 0; d < a.d; ++d) {
    ws[d] = &workspace(a.r + d * G * a.h * a.h);
    prepare(a, d, hp, *ws[d]);
  }
  if (threads < 1) threads = ThreadPool::max_threads();
  // Directions are independent: one task each, every one computed the same way on any thread.
  if (threads > 1 && a.d > 1) {
    ThreadPool::instance().run(int(a.d), [&](int d) { run_direction(a, k, d, hp, *ws[d]); });
  } else {
    for (int64_t d = 0; d < a.d; ++d) run_direction(a, k, d, hp, *ws[d]);
  }
}

}  // namespace lowp
