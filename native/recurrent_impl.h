// Microkernels of the float32 recurrence (recurrent.h), written once over a vector traits
// class T and included by each per-ISA file (recurrent_scalar/avx2/avx512.cpp), which
// compiles it with its own flags. Everything is in an anonymous namespace so each
// translation unit keeps its own copy.
//
// T provides: V (vector of T::W floats), load/store (unaligned), set1, add, sub, mul, div,
// fma(a, b, c) = a * b + c, min, max (NaN-propagating in the second operand, as in
// minps/maxps), select_lt(a, b, x, y) = a < b ? x : y.
#pragma once
#include <array>
#include <cstdint>
#include <utility>

#include "float_rnn.h"
#include "mlas_activations.h"
#include "recurrent.h"

namespace lowp {
namespace {

// --- GEMM: c (m x n) += a (m x k) b, b packed in panels --------------------------------------

using RnnTileFn = void (*)(int k, const float* a, int64_t lda, const float* b, float* c,
                           int64_t ldc, bool store);

// MR rows x NV vectors of c kept in registers over each K block: c += the block's chain of
// fused multiply-adds from +0, K blocks of 256 (ONNX Runtime's prepacked MLAS GEMM with
// beta = 1: per element c = fma(acc, 1, c), lowp.mlas_sgemm); with `store` the first block's
// sum is stored (beta = 0). b points into a panel (rows of kRnnPanel floats), on a 64-byte
// boundary when the caller's packed weights are (lowp.runtime.native_rnn.pack): each load
// then reads one cache line. No software prefetch: the hardware's streams keep the panels
// coming, and on the AMD EPYC (Zen 4) a prefetch per line took load slots the one- and
// two-row tiles need (docs/native.md, the nsnet2_16k section).
constexpr int kRnnStrideK = 256;

template <class T, int MR, int NV>
void gemm_tile(int k, const float* a, int64_t lda, const float* b, float* c, int64_t ldc,
               bool store) {
  using V = typename T::V;
  constexpr int W = T::W;
  for (int k0 = 0; k0 < k; k0 += kRnnStrideK) {
    const int k1 = k - k0 < kRnnStrideK ? k : k0 + kRnnStrideK;
    V acc[MR][NV];
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NV; ++j) acc[i][j] = T::set1(0.0f);
    for (int kk = k0; kk < k1; ++kk) {
      V bv[NV];
      for (int j = 0; j < NV; ++j) {
        bv[j] = T::load(b + kk * kRnnPanel + j * W);
        // Held in a register: left free, the compiler folds the load into every row's
        // multiply-add, MR loads of each vector instead of one (at MR = 2 the loads, not
        // the multiply-adds, bound the loop: GRU and LSTM steps of batch 2)
        if constexpr (MR > 1) __asm__("" : "+v"(bv[j]));
      }
      for (int i = 0; i < MR; ++i) {
        const V av = T::set1(a[i * lda + kk]);
        for (int j = 0; j < NV; ++j) acc[i][j] = T::fma(av, bv[j], acc[i][j]);
      }
    }
    const bool first = store && k0 == 0;
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NV; ++j)
        T::store(c + i * ldc + j * W,
                 first ? acc[i][j] : T::add(T::load(c + i * ldc + j * W), acc[i][j]));
  }
}

template <class T, int NVMAX, int MR, size_t... J>
constexpr std::array<RnnTileFn, NVMAX> tile_row(std::index_sequence<J...>) {
  return {&gemm_tile<T, MR, int(J) + 1>...};
}
template <class T, int MRMAX, int NVMAX, size_t... I>
constexpr std::array<std::array<RnnTileFn, NVMAX>, MRMAX> tile_table(std::index_sequence<I...>) {
  return {tile_row<T, NVMAX, int(I) + 1>(std::make_index_sequence<NVMAX>())...};
}

// Seven or eight rows (an LSTM or GRU of batch 7 or 8): tiles of 8 rows x NV8 vectors, so each
// panel of the recurrent weights is read once per call instead of once per MRMAX rows and
// again for the remainder. Each c element keeps its full k loop in the same order (the
// same sums as any other tile shape).
template <class T, int NV8>
void gemm_panel_rows8(int m, int nv, int k, const float* a, int64_t lda, const float* panel,
                      float* c, int64_t ldc, bool store) {
  static constexpr auto table = tile_table<T, 8, NV8>(std::make_index_sequence<8>());
  constexpr int W = T::W;
  for (int j = 0; j < nv; j += NV8) {
    const int cols = nv - j < NV8 ? nv - j : NV8;
    table[m - 1][cols - 1](k, a, lda, panel + j * W, c + j * W, ldc, store);
  }
}

// Tiles of MRMAX x NVMAX vectors inside each panel, smaller tiles for the row and column
// remainders (with NV8 > 0 and MRMAX < m <= 8, gemm_panel_rows8). Each c element is computed
// by one tile with the full k loop, in the same order for every m and tile shape.
template <class T, int MRMAX, int NVMAX, int NV8 = 0>
void gemm_panels(int m, int n, int k, const float* a, int64_t lda, const float* bp, float* c,
                 int64_t ldc, bool store) {
  static_assert(kRnnPanel % (NVMAX * T::W) == 0, "a tile must not straddle two panels");
  static_assert(NV8 == 0 || kRnnPanel % (NV8 * T::W) == 0, "a tile must not straddle two panels");
  static constexpr auto table =
      tile_table<T, MRMAX, NVMAX>(std::make_index_sequence<MRMAX>());
  constexpr int W = T::W;
  const bool rows8 = NV8 > 0 && m > MRMAX && m <= 8;
  for (int p0 = 0; p0 < n; p0 += kRnnPanel) {
    const float* panel = bp + int64_t(p0 / kRnnPanel) * k * kRnnPanel;
    const int nv = (n - p0 < kRnnPanel ? n - p0 : kRnnPanel) / W;
    if constexpr (NV8 > 0) {
      if (rows8) {
        gemm_panel_rows8<T, NV8>(m, nv, k, a, lda, panel, c + p0, ldc, store);
        continue;
      }
    }
    for (int j = 0; j < nv; j += NVMAX) {
      const int cols = nv - j < NVMAX ? nv - j : NVMAX;
      for (int i = 0; i < m; i += MRMAX) {
        const int rows = m - i < MRMAX ? m - i : MRMAX;
        table[rows - 1][cols - 1](k, a + i * lda, lda, panel + j * W,
                                  c + i * ldc + p0 + j * W, ldc, store);
      }
    }
  }
}

// --- cells -----------------------------------------------------------------------------------

// ONNX Runtime's LSTM gate (DeepCPU): the peephole product added (rounded, then added),
// then the bias and std::min / std::max against the clip (a NaN becomes the bound), or
// without a bias the two comparisons (a NaN stays).
template <class T>
inline typename T::V ort_clip(typename T::V g, const float* bias, typename T::V lo,
                              typename T::V hi) {
  if (bias) {
    g = T::add(g, T::load(bias));
    g = T::select_lt(g, hi, g, hi);
    return T::select_lt(lo, g, g, lo);
  }
  return T::select_lt(hi, g, hi, T::select_lt(g, lo, lo, g));
}

template <class T>
inline typename T::V lstm_gate(typename T::V g, const float* peep, typename T::V c,
                               const float* bias, typename T::V lo, typename T::V hi) {
  if (peep) g = T::add(g, T::mul(c, T::load(peep)));
  return ort_clip<T>(g, bias, lo, hi);
}

// An activation of RnnActs over v[0, n) in place (n a multiple of T::W): Sigmoid and Tanh
// MLAS's, Relu MLAS's maxps(0, v) (a NaN and -0 stay) or with `fused` deepcpu's fused
// v > 0 ? v : 0, the others ONNX Runtime's functors (rnn_functor).
template <class T>
void rnn_activate(int code, float alpha, float beta, float* v, int n, bool fused) {
  using V = typename T::V;
  constexpr int W = T::W;
  const V zero = T::set1(0.0f);
  switch (RnnActivation(code)) {
    case RnnActivation::kSigmoid:
      for (int j = 0; j < n; j += W) T::store(v + j, mlas_logistic<T>(T::load(v + j)));
      return;
    case RnnActivation::kTanh:
      for (int j = 0; j < n; j += W) T::store(v + j, mlas_tanh<T>(T::load(v + j)));
      return;
    case RnnActivation::kRelu:
      for (int j = 0; j < n; j += W) {
        const V x = T::load(v + j);
        T::store(v + j, fused ? T::select_lt(zero, x, x, zero) : T::select_lt(x, zero, zero, x));
      }
      return;
    default:
      rnn_functor(code, alpha, beta, v, n);
  }
}

// LSTM cell with other activations (a.acts), in ONNX Runtime's order as lstm_cell: each gate's
// input formed into a.work, then its activation over the row (lowp.runtime.float_nn.
// LstmOrtCell, bit for bit); H = h(C) o.
template <class T>
void lstm_cell_acts(const LstmCell& a) {
  using V = typename T::V;
  constexpr int W = T::W;
  const int hp = a.hp;
  const RnnActs& f = *a.acts;
  const V hi = T::set1(a.clip), lo = T::set1(-a.clip), one = T::set1(1.0f);
  float* wi = a.work;
  float* wo = a.work + hp;
  float* wf = a.work + 2 * hp;
  float* wc = a.work + 3 * hp;
  const float* pi = a.p ? a.p + 0 * hp : nullptr;
  const float* po = a.p ? a.p + 1 * hp : nullptr;
  const float* pf = a.p ? a.p + 2 * hp : nullptr;
  auto at = [](const float* base, int64_t off) { return base ? base + off : nullptr; };
  for (int j = 0; j < hp; j += W)
    T::store(wi + j, lstm_gate<T>(T::load(wi + j), at(pi, j), T::load(a.c + j),
                                  at(a.b, j), lo, hi));
  rnn_activate<T>(f.code[0], f.alpha[0], f.beta[0], wi, hp, false);
  if (a.input_forget) {
    for (int j = 0; j < hp; j += W) T::store(wf + j, T::sub(one, T::load(wi + j)));
  } else {
    for (int j = 0; j < hp; j += W)
      T::store(wf + j, lstm_gate<T>(T::load(wf + j), at(pf, j), T::load(a.c + j),
                                    at(a.b, 2 * hp + j), lo, hi));
    rnn_activate<T>(f.code[0], f.alpha[0], f.beta[0], wf, hp, false);
  }
  for (int j = 0; j < hp; j += W)
    T::store(wc + j, ort_clip<T>(T::load(wc + j), at(a.b, 3 * hp + j), lo, hi));
  rnn_activate<T>(f.code[1], f.alpha[1], f.beta[1], wc, hp, false);
  for (int j = 0; j < hp; j += W) {
    const V c = T::add(T::mul(T::load(a.c + j), T::load(wf + j)),
                       T::mul(T::load(wi + j), T::load(wc + j)));
    T::store(a.c + j, c);
    T::store(wo + j, lstm_gate<T>(T::load(wo + j), at(po, j), c, at(a.b, hp + j), lo, hi));
    T::store(a.h + j, c);
  }
  rnn_activate<T>(f.code[0], f.alpha[0], f.beta[0], wo, hp, false);
  rnn_activate<T>(f.code[2], f.alpha[2], f.beta[2], a.h, hp, true);
  for (int j = 0; j < hp; j += W) T::store(a.h + j, T::mul(T::load(a.h + j), T::load(wo + j)));
}

// LSTM cell in ONNX Runtime's order (lowp.runtime.float_nn._lstm_ort_direction, bit for
// bit): gates i, f, c, then C = C_prev f + i g, then o from the new C, H = tanh(C) o.
template <class T>
void lstm_cell(const LstmCell& a) {
  if (a.acts) return lstm_cell_acts<T>(a);
  using V = typename T::V;
  constexpr int W = T::W;
  const int hp = a.hp;
  const V hi = T::set1(a.clip), lo = T::set1(-a.clip), one = T::set1(1.0f);
  const float* gi = a.g;
  const float* go = a.g + hp;
  const float* gf = a.g + 2 * hp;
  const float* gc = a.g + 3 * hp;
  const float* pi = a.p ? a.p + 0 * hp : nullptr;
  const float* po = a.p ? a.p + 1 * hp : nullptr;
  const float* pf = a.p ? a.p + 2 * hp : nullptr;
  for (int j = 0; j < hp; j += W) {
    const V cp = T::load(a.c + j);
    auto at = [j](const float* base, int gate, int stride) {
      return base ? base + gate * stride + j : nullptr;
    };
    const V i = mlas_logistic<T>(
        lstm_gate<T>(T::load(gi + j), at(pi, 0, 0), cp, at(a.b, 0, hp), lo, hi));
    const V f = a.input_forget
                    ? T::sub(one, i)
                    : mlas_logistic<T>(lstm_gate<T>(T::load(gf + j), at(pf, 0, 0), cp,
                                                      at(a.b, 2, hp), lo, hi));
    const V g = mlas_tanh<T>(lstm_gate<T>(T::load(gc + j), nullptr, cp, at(a.b, 3, hp), lo, hi));
    const V c = T::add(T::mul(cp, f), T::mul(i, g));
    const V o = mlas_logistic<T>(
        lstm_gate<T>(T::load(go + j), at(po, 0, 0), c, at(a.b, 1, hp), lo, hi));
    T::store(a.c + j, c);
    T::store(a.h + j, T::mul(mlas_tanh<T>(c), o));
  }
}

// deepcpu's clip_for_sigmoid / clip_for_tanh: x < -b ? -b : (x > b ? b : x) (a NaN stays).
template <class T>
inline typename T::V deepcpu_bound(typename T::V x, float b) {
  const typename T::V hi = T::set1(b), lo = T::set1(-b);
  return T::select_lt(x, lo, lo, T::select_lt(hi, x, hi, x));
}

// p(x) / q(x) of ONNX Runtime's deepcpu rational tanh (MLAS's coefficients,
// mlas_activations.h), every operation rounded (no fused multiply-add), as
// lowp.runtime.float_nn._deepcpu_ratio.
template <class T>
inline typename T::V deepcpu_ratio(typename T::V x) {
  using V = typename T::V;
  const V x2 = T::mul(x, x);
  V pp = T::add(T::mul(x2, T::set1(kTanhP[0])), T::set1(kTanhP[1]));
  for (int i = 2; i < 7; ++i) pp = T::add(T::mul(x2, pp), T::set1(kTanhP[i]));
  pp = T::mul(x, pp);
  V qq = T::add(T::mul(x2, T::set1(kTanhQ[0])), T::set1(kTanhQ[1]));
  for (int i = 2; i < 4; ++i) qq = T::add(T::mul(x2, qq), T::set1(kTanhQ[i]));
  return T::div(pp, qq);
}

// deepcpu's fused reset and output forms of Sigmoid, Tanh and Relu on a formed input x:
// Sigmoid 1 + ratio(0.5 * bound(x, 20)) (its 0.5 applied by the caller), Tanh
// ratio(bound(x, 10)), Relu x > 0 ? x : 0.
template <class T>
inline typename T::V gru_fused(int code, typename T::V x) {
  using V = typename T::V;
  const V zero = T::set1(0.0f);
  switch (RnnActivation(code)) {
    case RnnActivation::kSigmoid:
      return T::add(T::set1(1.0f), deepcpu_ratio<T>(T::mul(T::set1(0.5f),
                                                           deepcpu_bound<T>(x, 20.0f))));
    case RnnActivation::kTanh:
      return deepcpu_ratio<T>(deepcpu_bound<T>(x, 10.0f));
    default:  // Relu
      return T::select_lt(zero, x, x, zero);
  }
}

inline bool gru_fused_code(int code) {
  return code == int(RnnActivation::kSigmoid) || code == int(RnnActivation::kTanh) ||
         code == int(RnnActivation::kRelu);
}

// GRU reset half with other activations (a.acts, lowp.runtime.float_nn._gru_ort_direction):
// rh = base f(r) by the fused form (Sigmoid (base 0.5) (1 + ratio)), or the functor over the
// row in a.rh then base times it.
template <class T>
void gru_reset_acts(const GruCell& a) {
  using V = typename T::V;
  constexpr int W = T::W;
  const int hp = a.hp;
  const int code = a.acts->code[0];
  const V hi = T::set1(a.clip), lo = T::set1(-a.clip), half = T::set1(0.5f);
  const float* base = a.lin ? a.lin : a.h;
  for (int j = 0; j < hp; j += W) {
    const V r = ort_clip<T>(T::load(a.g + hp + j), a.b ? a.b + hp + j : nullptr, lo, hi);
    if (!gru_fused_code(code)) {
      T::store(a.rh + j, r);
      continue;
    }
    const V bv = T::load(base + j);
    T::store(a.rh + j, code == int(RnnActivation::kSigmoid)
                           ? T::mul(T::mul(bv, half), gru_fused<T>(code, r))
                           : T::mul(bv, gru_fused<T>(code, r)));
  }
  if (gru_fused_code(code)) return;
  rnn_functor(code, a.acts->alpha[0], a.acts->beta[0], a.rh, hp);
  for (int j = 0; j < hp; j += W) T::store(a.rh + j, T::mul(T::load(base + j), T::load(a.rh + j)));
}

// GRU update half with other activations: z = f(z input) as MLAS (rnn_activate), then
// h = (1 - z) g(h input) + z h with g's fused form (Sigmoid ((1 - z) 0.5) (1 + ratio)) or
// its functor over the row.
template <class T>
void gru_update_acts(const GruCell& a) {
  using V = typename T::V;
  constexpr int W = T::W;
  const int hp = a.hp;
  const RnnActs& f = *a.acts;
  const V hi = T::set1(a.clip), lo = T::set1(-a.clip), one = T::set1(1.0f);
  const V half = T::set1(0.5f);
  float* z = a.work;
  float* gh = a.work + 2 * hp;
  for (int j = 0; j < hp; j += W) {
    T::store(z + j, ort_clip<T>(T::load(a.g + j), a.b ? a.b + j : nullptr, lo, hi));
    V x = T::load(a.gh + j);
    if (a.add_rh) x = T::add(x, T::load(a.rh + j));
    T::store(gh + j, ort_clip<T>(x, a.b ? a.b + 2 * hp + j : nullptr, lo, hi));
  }
  rnn_activate<T>(f.code[0], f.alpha[0], f.beta[0], z, hp, false);
  const int code = f.code[1];
  if (!gru_fused_code(code)) rnn_functor(code, f.alpha[1], f.beta[1], gh, hp);
  for (int j = 0; j < hp; j += W) {
    const V zv = T::load(z + j), keep = T::sub(one, zv), x = T::load(gh + j);
    const V hn = !gru_fused_code(code) ? T::mul(keep, x)
                 : code == int(RnnActivation::kSigmoid)
                     ? T::mul(T::mul(keep, half), gru_fused<T>(code, x))
                     : T::mul(keep, gru_fused<T>(code, x));
    T::store(a.h + j, T::add(hn, T::mul(zv, T::load(a.h + j))));
  }
}

// GRU, first half (recurrent.h): rh = (lin or h) * 0.5 * (1 + ratio(0.5 * bound(r, 20))).
template <class T>
void gru_reset(const GruCell& a) {
  if (a.acts) return gru_reset_acts<T>(a);
  using V = typename T::V;
  constexpr int W = T::W;
  const int hp = a.hp;
  const V hi = T::set1(a.clip), lo = T::set1(-a.clip), half = T::set1(0.5f);
  const V one = T::set1(1.0f);
  for (int j = 0; j < hp; j += W) {
    const V r = ort_clip<T>(T::load(a.g + hp + j), a.b ? a.b + hp + j : nullptr, lo, hi);
    const V rt = deepcpu_ratio<T>(T::mul(half, deepcpu_bound<T>(r, 20.0f)));
    const V base = T::load((a.lin ? a.lin : a.h) + j);
    T::store(a.rh + j, T::mul(T::mul(base, half), T::add(one, rt)));
  }
}

// GRU, second half: z by MLAS's logistic, h = (1 - z) * ratio(bound(gh, 10)) + z * h.
template <class T>
void gru_update(const GruCell& a) {
  if (a.acts) return gru_update_acts<T>(a);
  using V = typename T::V;
  constexpr int W = T::W;
  const int hp = a.hp;
  const V hi = T::set1(a.clip), lo = T::set1(-a.clip), one = T::set1(1.0f);
  for (int j = 0; j < hp; j += W) {
    const V z = mlas_logistic<T>(ort_clip<T>(T::load(a.g + j), a.b ? a.b + j : nullptr, lo, hi));
    V gh = T::load(a.gh + j);
    if (a.add_rh) gh = T::add(gh, T::load(a.rh + j));
    const V ht = deepcpu_ratio<T>(
        deepcpu_bound<T>(ort_clip<T>(gh, a.b ? a.b + 2 * hp + j : nullptr, lo, hi), 10.0f));
    T::store(a.h + j, T::add(T::mul(T::sub(one, z), ht), T::mul(z, T::load(a.h + j))));
  }
}

template <class T, int MRMAX, int NVMAX, int NV8 = 0>
constexpr RnnKernels rnn_kernels(const char* name) {
  return {name, &gemm_panels<T, MRMAX, NVMAX, NV8>, &lstm_cell<T>, &gru_reset<T>, &gru_update<T>};
}

}  // namespace
}  // namespace lowp
