// Microkernels of the float32 recurrence (recurrent.h), written once over a vector traits
// class T and included by each per-ISA file (recurrent_scalar/avx2/avx512.cpp), which
// compiles it with its own flags. Everything is in an anonymous namespace so each
// translation unit keeps its own copy.
//
// T provides: V (vector of T::W floats), load/store (unaligned), set1, add, sub, mul, div,
// fma(a, b, c) = a * b + c, min, max (NaN-propagating in the second operand, as in
// minps/maxps), abs, floor, pow2(n) = 2^n for integral n in [-126, 127],
// select_lt(a, b, x, y) = a < b ? x : y, copysign(mag, sgn).
#pragma once
#include <array>
#include <cstdint>
#include <utility>

#include "mlas_activations.h"
#include "recurrent.h"

namespace lowp {
namespace {

// exp(x), Cephes expf: x = n ln2 + r with |r| <= ln2 / 2 (ln2 split in two for an exact
// reduction), exp(r) by a degree-7 polynomial in the form 1 + r + r^2 P(r), times 2^n.
// About 1 ulp on [-87.3, 88]; arguments are clamped to that range (0 and inf are never
// produced: exp(-87.3) ~ 1.2e-38, exp(88) ~ 1.65e38), which is exact enough for sigmoid
// and tanh, the only callers.
template <class T>
inline typename T::V exp_v(typename T::V x) {
  using V = typename T::V;
  x = T::max(T::set1(-87.3f), T::min(T::set1(88.0f), x));
  const V n = T::floor(T::fma(x, T::set1(1.44269504088896341f), T::set1(0.5f)));
  V r = T::fma(n, T::set1(-0.693359375f), x);
  r = T::fma(n, T::set1(2.12194440e-4f), r);
  V p = T::set1(1.9875691500e-4f);
  p = T::fma(p, r, T::set1(1.3981999507e-3f));
  p = T::fma(p, r, T::set1(8.3334519073e-3f));
  p = T::fma(p, r, T::set1(4.1665795894e-2f));
  p = T::fma(p, r, T::set1(1.6666665459e-1f));
  p = T::fma(p, r, T::set1(5.0000001201e-1f));
  p = T::fma(p, T::mul(r, r), T::add(r, T::set1(1.0f)));
  return T::mul(p, T::pow2(n));
}

// 1 / (1 + exp(-x)): for x >> 0 exp(-x) vanishes (result 1), for x << 0 the quotient is
// relatively exact down to the clamp of exp (|error| < 1e-38 below that).
template <class T>
inline typename T::V sigmoid_v(typename T::V x) {
  const typename T::V one = T::set1(1.0f);
  return T::div(one, T::add(one, exp_v<T>(T::sub(T::set1(0.0f), x))));
}

// tanh: for |x| < 0.625 the odd Cephes polynomial x + x^3 P(x^2) (no cancellation near 0);
// otherwise 1 - 2 / (exp(2|x|) + 1), which tends to exactly 1 for large |x|; then the sign
// of x (the polynomial has it already, except for -0).
template <class T>
inline typename T::V tanh_v(typename T::V x) {
  using V = typename T::V;
  const V ax = T::abs(x);
  const V z = T::mul(x, x);
  V p = T::set1(-5.70498872745e-3f);
  p = T::fma(p, z, T::set1(2.06390887954e-2f));
  p = T::fma(p, z, T::set1(-5.37397155531e-2f));
  p = T::fma(p, z, T::set1(1.33314422036e-1f));
  p = T::fma(p, z, T::set1(-3.33332819422e-1f));
  const V small = T::fma(T::mul(p, z), x, x);
  const V e = exp_v<T>(T::add(ax, ax));
  const V large = T::sub(T::set1(1.0f), T::div(T::set1(2.0f), T::add(e, T::set1(1.0f))));
  return T::copysign(T::select_lt(ax, T::set1(0.625f), small, large), x);  // keeps -0
}

template <class T>
inline typename T::V clip_v(typename T::V x, typename T::V lo, typename T::V hi) {
  return T::max(lo, T::min(hi, x));
}

// --- GEMM: c (m x n) += a (m x k) b (k x n) --------------------------------------------------

using RnnTileFn = void (*)(int k, const float* a, int64_t lda, const float* b, int64_t ldb,
                           float* c, int64_t ldc);

// MR rows x NV vectors of c kept in registers over each K block: c += the block's chain of
// fused multiply-adds from +0, K blocks of 256 (ONNX Runtime's prepacked MLAS GEMM with
// beta = 1: per element c = fma(acc, 1, c), lowp.mlas_sgemm).
constexpr int kRnnStrideK = 256;

template <class T, int MR, int NV>
void gemm_tile(int k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
               int64_t ldc) {
  using V = typename T::V;
  constexpr int W = T::W;
  for (int k0 = 0; k0 < k; k0 += kRnnStrideK) {
    const int k1 = k - k0 < kRnnStrideK ? k : k0 + kRnnStrideK;
    V acc[MR][NV];
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NV; ++j) acc[i][j] = T::set1(0.0f);
    for (int kk = k0; kk < k1; ++kk) {
      V bv[NV];
      for (int j = 0; j < NV; ++j) bv[j] = T::load(b + kk * ldb + j * W);
      for (int i = 0; i < MR; ++i) {
        const V av = T::set1(a[i * lda + kk]);
        for (int j = 0; j < NV; ++j) acc[i][j] = T::fma(av, bv[j], acc[i][j]);
      }
    }
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NV; ++j)
        T::store(c + i * ldc + j * W, T::add(T::load(c + i * ldc + j * W), acc[i][j]));
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

// Tiles of MRMAX x NVMAX vectors, smaller tiles for the row and column remainders. Each c
// element is computed by one tile with the full k loop, in the same order for every m.
template <class T, int MRMAX, int NVMAX>
void gemm_tiled(int m, int n, int k, const float* a, int64_t lda, const float* b, int64_t ldb,
                float* c, int64_t ldc) {
  static constexpr auto table =
      tile_table<T, MRMAX, NVMAX>(std::make_index_sequence<MRMAX>());
  constexpr int W = T::W;
  const int nv = n / W;
  for (int j = 0; j < nv; j += NVMAX) {
    const int cols = nv - j < NVMAX ? nv - j : NVMAX;
    for (int i = 0; i < m; i += MRMAX) {
      const int rows = m - i < MRMAX ? m - i : MRMAX;
      table[rows - 1][cols - 1](k, a + i * lda, lda, b + j * W, ldb, c + i * ldc + j * W, ldc);
    }
  }
}

// --- cells -----------------------------------------------------------------------------------

// ONNX Runtime's LSTM gate (DeepCPU): the peephole product added (rounded, then added),
// then the bias and std::min / std::max against the clip (a NaN becomes the bound), or
// without a bias the two comparisons (a NaN stays).
template <class T>
inline typename T::V lstm_gate(typename T::V g, const float* peep, typename T::V c,
                               const float* bias, typename T::V lo, typename T::V hi) {
  if (peep) g = T::add(g, T::mul(c, T::load(peep)));
  if (bias) {
    g = T::add(g, T::load(bias));
    g = T::select_lt(g, hi, g, hi);
    return T::select_lt(lo, g, g, lo);
  }
  return T::select_lt(hi, g, hi, T::select_lt(g, lo, lo, g));
}

// LSTM cell in ONNX Runtime's order (lowp.runtime.float_nn._lstm_ort_direction, bit for
// bit): gates i, f, c, then C = C_prev f + i g, then o from the new C, H = tanh(C) o.
template <class T>
void lstm_cell(const LstmCell& a) {
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

template <class T>
void gru_reset(const GruCell& a) {
  using V = typename T::V;
  constexpr int W = T::W;
  const V hi = T::set1(a.clip), lo = T::set1(-a.clip);
  float* gz = a.g;
  float* gr = a.g + a.hp;
  for (int j = 0; j < a.hp; j += W) {
    T::store(gz + j, sigmoid_v<T>(clip_v<T>(T::load(gz + j), lo, hi)));
    const V r = sigmoid_v<T>(clip_v<T>(T::load(gr + j), lo, hi));
    T::store(a.rh + j, T::mul(r, T::load(a.h + j)));
  }
}

template <class T>
inline typename T::V gru_mix(typename T::V z, typename T::V hh, typename T::V h) {
  return T::add(T::mul(T::sub(T::set1(1.0f), z), hh), T::mul(z, h));
}

template <class T>
void gru_update(const GruCell& a) {
  using V = typename T::V;
  constexpr int W = T::W;
  const V hi = T::set1(a.clip), lo = T::set1(-a.clip);
  const float* z = a.g;
  const float* gh = a.g + 2 * a.hp;
  for (int j = 0; j < a.hp; j += W) {
    const V hh = tanh_v<T>(clip_v<T>(T::load(gh + j), lo, hi));
    T::store(a.h + j, gru_mix<T>(T::load(z + j), hh, T::load(a.h + j)));
  }
}

template <class T>
void gru_lbr(const GruCell& a) {
  using V = typename T::V;
  constexpr int W = T::W;
  const V hi = T::set1(a.clip), lo = T::set1(-a.clip);
  const float* gz = a.g;
  const float* gr = a.g + a.hp;
  const float* gh = a.g + 2 * a.hp;
  for (int j = 0; j < a.hp; j += W) {
    const V z = sigmoid_v<T>(clip_v<T>(T::load(gz + j), lo, hi));
    const V r = sigmoid_v<T>(clip_v<T>(T::load(gr + j), lo, hi));
    const V hh = tanh_v<T>(clip_v<T>(T::fma(r, T::load(gh + j), T::load(a.xh + j)), lo, hi));
    T::store(a.h + j, gru_mix<T>(z, hh, T::load(a.h + j)));
  }
}

template <class T>
void sigmoid_array(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i += T::W) T::store(y + i, sigmoid_v<T>(T::load(x + i)));
}

template <class T>
void tanh_array(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i += T::W) T::store(y + i, tanh_v<T>(T::load(x + i)));
}

template <class T, int MRMAX, int NVMAX>
constexpr RnnKernels rnn_kernels(const char* name) {
  return {name,          &gemm_tiled<T, MRMAX, NVMAX>, &lstm_cell<T>, &gru_reset<T>,
          &gru_update<T>, &gru_lbr<T>, &sigmoid_array<T>, &tanh_array<T>};
}

}  // namespace
}  // namespace lowp
