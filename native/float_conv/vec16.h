// Sixteen float32 lanes and the register tile of one instruction set, chosen by the flags of
// the including file (nchwc_scalar.cpp, nchwc_avx2.cpp, nchwc_avx512.cpp): AVX-512F one zmm,
// AVX2 with FMA two ymm, else an array with std::fma per lane. Each operation is one IEEE
// operation per lane (a fused multiply-add rounds once, an addition once), so every path
// gives the same bits.
#pragma once
#include <cmath>
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

namespace lowp_fconv {
namespace {

#if defined(__AVX512F__)
struct Vec16 {
  __m512 v;
  static Vec16 zero() { return {_mm512_setzero_ps()}; }
  static Vec16 load(const float* p) { return {_mm512_loadu_ps(p)}; }
  static Vec16 load(const float* p, int stride) {  // p[0], p[stride], ... p[15 * stride]
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    return {_mm512_i32gather_ps(_mm512_mullo_epi32(lane, _mm512_set1_epi32(stride)), p, 4)};
  }
  static Vec16 broadcast(float s) { return {_mm512_set1_ps(s)}; }
  void store(float* p) const { _mm512_storeu_ps(p, v); }
};
inline Vec16 fma(Vec16 a, Vec16 b, Vec16 c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
inline Vec16 add(Vec16 a, Vec16 b) { return {_mm512_add_ps(a.v, b.v)}; }
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
  static Vec16 load(const float* p, int stride) {  // p[0], p[stride], ... p[15 * stride]
    const __m256i lane = _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0);
    const __m256i idx = _mm256_mullo_epi32(lane, _mm256_set1_epi32(stride));
    return {_mm256_i32gather_ps(p, idx, 4), _mm256_i32gather_ps(p + 8 * stride, idx, 4)};
  }
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
  static Vec16 load(const float* p, int stride) {
    Vec16 r;
    for (int j = 0; j < 16; ++j) r.v[j] = p[j * stride];
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
constexpr int kTileBlocks = 2;
constexpr int kTileColumns = 4;
constexpr int kTileAccumulators = 8;
#endif

}  // namespace
}  // namespace lowp_fconv
