// Sixteen float32 lanes and the register tile of one instruction set, chosen by the flags of
// the including file (nchwc_scalar.cpp, nchwc_avx2.cpp, nchwc_avx512.cpp): AVX-512F one zmm,
// AVX2 with FMA two ymm, else an array with std::fma per lane. Each operation is one IEEE
// operation per lane (a fused multiply-add rounds once, an addition once), so every path
// gives the same bits.
#pragma once
#include <cmath>
#include <utility>
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>

#include "../transpose8.h"
#endif

namespace lowp_fconv {
namespace {

#if defined(__AVX512F__)
struct Vec16 {
  __m512 v;
  static Vec16 zero() { return {_mm512_setzero_ps()}; }
  static Vec16 load(const float* p) { return {_mm512_loadu_ps(p)}; }
  static Vec16 broadcast(float s) { return {_mm512_set1_ps(s)}; }
  void store(float* p) const { _mm512_storeu_ps(p, v); }
};
inline Vec16 fma(Vec16 a, Vec16 b, Vec16 c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
inline Vec16 add(Vec16 a, Vec16 b) { return {_mm512_add_ps(a.v, b.v)}; }
// 0 > a ? 0 : a (maxps returns its second operand unless the first is greater: NaN, -0 kept)
inline Vec16 relu(Vec16 a) { return {_mm512_max_ps(_mm512_setzero_ps(), a.v)}; }
// bit l: lane l is a NaN
inline unsigned nan_lanes(Vec16 a) { return unsigned(_mm512_cmp_ps_mask(a.v, a.v, _CMP_UNORD_Q)); }
// r[i] lane j <- r[j] lane i (data movement only)
inline void transpose16(Vec16 (&r)[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i].v, r[i + 1].v);
    t[i + 1] = _mm512_unpackhi_ps(r[i].v, r[i + 1].v);
  }
  __m512 u[16];
  for (int i = 0; i < 16; i += 4) {
    u[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
    u[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_f32x4(u[i], u[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_f32x4(u[i], u[i + 4], 0xDD);
    t[i + 8] = _mm512_shuffle_f32x4(u[i + 8], u[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_f32x4(u[i + 8], u[i + 12], 0xDD);
  }
  for (int i = 0; i < 4; ++i) {
    r[i].v = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 4].v = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
    r[i + 8].v = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
    r[i + 12].v = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xDD);
  }
}
// 4 blocks x 6 columns (MLAS's tile): 24 accumulators, 4 weight vectors and a broadcast of
// 32 zmm; per tap and channel 6 broadcasts feed 24 fused multiply-adds (2 x 12 took 12).
// Fewer blocks take more columns, up to kTileColumns: 3 x 8, 2 x 12, 1 x 12.
constexpr int kTileBlocks = 4;
constexpr int kTileColumns = 12;
constexpr int kTileAccumulators = 24;
#elif defined(__AVX2__) && defined(__FMA__)
struct Vec16 {
  __m256 lo, hi;
  static Vec16 zero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
  static Vec16 load(const float* p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
  static Vec16 broadcast(float s) { return {_mm256_set1_ps(s), _mm256_set1_ps(s)}; }
  void store(float* p) const {
    _mm256_storeu_ps(p, lo);
    _mm256_storeu_ps(p + 8, hi);
  }
};
inline Vec16 fma(Vec16 a, Vec16 b, Vec16 c) {
  return {_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
}
inline Vec16 add(Vec16 a, Vec16 b) {
  return {_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)};
}
inline Vec16 relu(Vec16 a) {  // 0 > a ? 0 : a, as the AVX-512 form
  const __m256 zero = _mm256_setzero_ps();
  return {_mm256_max_ps(zero, a.lo), _mm256_max_ps(zero, a.hi)};
}
inline unsigned nan_lanes(Vec16 a) {
  return unsigned(_mm256_movemask_ps(_mm256_cmp_ps(a.lo, a.lo, _CMP_UNORD_Q))) |
         unsigned(_mm256_movemask_ps(_mm256_cmp_ps(a.hi, a.hi, _CMP_UNORD_Q))) << 8;
}
using lowp_transpose::transpose8;  // 8 x 8 in place: m[i] lane j <- m[j] lane i
// r[i] lane j <- r[j] lane i (data movement only): the four 8 x 8 quarters transposed,
// the two off the diagonal swapped
inline void transpose16(Vec16 (&r)[16]) {
  __m256 a[8], b[8], c[8], d[8];
  for (int i = 0; i < 8; ++i) a[i] = r[i].lo, b[i] = r[i].hi, c[i] = r[i + 8].lo, d[i] = r[i + 8].hi;
  transpose8(a), transpose8(b), transpose8(c), transpose8(d);
  for (int i = 0; i < 8; ++i) r[i] = {a[i], c[i]}, r[i + 8] = {b[i], d[i]};
}
// 1 block x 6 columns: 12 accumulators, 2 weight halves and a broadcast of 16 ymm.
constexpr int kTileBlocks = 1;
constexpr int kTileColumns = 6;
constexpr int kTileAccumulators = 6;
#else
struct Vec16 {
  float v[16];
  static Vec16 zero() { return {}; }
  static Vec16 load(const float* p) {
    Vec16 r;
    for (int j = 0; j < 16; ++j) r.v[j] = p[j];
    return r;
  }
  static Vec16 broadcast(float s) {
    Vec16 r;
    for (float& e : r.v) e = s;
    return r;
  }
  void store(float* p) const {
    for (int j = 0; j < 16; ++j) p[j] = v[j];
  }
};
inline Vec16 fma(Vec16 a, const Vec16& b, Vec16 c) {
  for (int j = 0; j < 16; ++j) c.v[j] = std::fma(a.v[j], b.v[j], c.v[j]);
  return c;
}
inline Vec16 add(Vec16 a, const Vec16& b) {
  for (int j = 0; j < 16; ++j) a.v[j] = a.v[j] + b.v[j];
  return a;
}
inline Vec16 relu(Vec16 a) {
  for (float& e : a.v) e = 0.0f > e ? 0.0f : e;
  return a;
}
inline unsigned nan_lanes(const Vec16& a) {
  unsigned m = 0;
  for (int j = 0; j < 16; ++j) m |= unsigned(a.v[j] != a.v[j]) << j;
  return m;
}
// r[i] lane j <- r[j] lane i
inline void transpose16(Vec16 (&r)[16]) {
  for (int i = 0; i < 16; ++i)
    for (int j = i + 1; j < 16; ++j) std::swap(r[i].v[j], r[j].v[i]);
}
constexpr int kTileBlocks = 2;
constexpr int kTileColumns = 4;
constexpr int kTileAccumulators = 8;
#endif

}  // namespace
}  // namespace lowp_fconv
