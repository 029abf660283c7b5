// Microkernels on 256-bit vectors, shared by the AVX2 and AVX-VNNI files (each compiles it with
// its own flags). LOWP_VNNI256 selects vpdpbusd/vpdpwssd; otherwise exact AVX2 widening.
#pragma once
#include <immintrin.h>

#include <cstring>

#include "common.h"
#include "requant.h"

#if defined(LOWP_VNNI256) && defined(LOWP_VNNI256_EVEX)
#define LOWP_DPBUSD256(acc, a, b) _mm256_dpbusd_epi32(acc, a, b)
#define LOWP_DPWSSD256(acc, a, b) _mm256_dpwssd_epi32(acc, a, b)
#elif defined(LOWP_VNNI256)
#define LOWP_DPBUSD256(acc, a, b) _mm256_dpbusd_avx_epi32(acc, a, b)
#define LOWP_DPWSSD256(acc, a, b) _mm256_dpwssd_avx_epi32(acc, a, b)
#else
// vpmaddwd on operands in [-255, 255] cannot saturate (only -32768 * -32768 pairs do).
#define LOWP_DPWSSD256(acc, a, b) _mm256_add_epi32(acc, _mm256_madd_epi16(a, b))
#endif

namespace lowp {
namespace {

// Low byte of each of the 8 int32 lanes to out[0..n).
inline void store8(uint8_t* out, __m256i y, int n) {
  const __m256i idx = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                       0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  __m256i s = _mm256_shuffle_epi8(y, idx);
  s = _mm256_permutevar8x32_epi32(s, _mm256_setr_epi32(0, 4, 0, 0, 0, 0, 0, 0));
  const uint64_t v = static_cast<uint64_t>(_mm_cvtsi128_si64(_mm256_castsi256_si128(s)));
  std::memcpy(out, &v, n >= 8 ? 8 : static_cast<size_t>(n));
}

// Epilogue constants held in registers for a whole call (see Rq16 in the AVX-512 file).
struct Rq8 {
  __m256 lo, hi;
  __m256i zp;
  const Epilogue* e;
  explicit Rq8(const Epilogue& ep)
      : lo(_mm256_set1_ps(static_cast<float>(ep.qmin - ep.zp))),
        hi(_mm256_set1_ps(static_cast<float>(ep.qmax - ep.zp))),
        zp(_mm256_set1_epi32(ep.zp)),
        e(&ep) {}
};

// v already holds acc + bias - zero-point terms; requantize 8 lanes and store n of them.
inline void requant8_store(__m256i v, const Rq8& q, const float* scale, int c, uint8_t* out,
                           int n) {
  if (scale) {
    __m256 p = _mm256_mul_ps(_mm256_cvtepi32_ps(v), _mm256_loadu_ps(scale + c));
    p = _mm256_min_ps(_mm256_max_ps(p, q.lo), q.hi);
    // vcvtps2dq rounds with MXCSR, which is round-to-nearest-even unless changed.
    store8(out, _mm256_add_epi32(_mm256_cvtps_epi32(p), q.zp), n);
    return;
  }
  const Epilogue& e = *q.e;
  alignas(32) int32_t t[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(t), v);
  const int m = n >= 8 ? 8 : n;
  for (int j = 0; j < m; ++j)
    out[j] = static_cast<uint8_t>(
        requant_fixed(t[j], e.mult[c + j], e.lshift[c + j], e.rshift[c + j], e));
}

void epilogue256(const int32_t* acc, int n, const Epilogue& e, int c0, int32_t rowsum,
                 uint8_t* out) {
  const Rq8 q(e);
  const float* scale = e.fixedpoint ? nullptr : e.scale;
  const int32_t* bias = e.bias;
  const int32_t* zw = e.zw;
  const __m256i rs = _mm256_set1_epi32(rowsum);
  int j = 0;
  if (scale) {
    // 32 outputs at a time: the clamped values lie in [qmin, qmax], inside the int8 range
    // (qmin < 0) or the uint8 range, so two saturating packs change none of them; a permute
    // puts the bytes in channel order and one store writes them (the 8-lane path below
    // narrows each vector on its own: 3x the instructions per output).
    const bool sgn = e.qmin < 0;
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (; j + 32 <= n; j += 32) {
      __m256i y[4];
      for (int v = 0; v < 4; ++v) {
        const int c = c0 + j + 8 * v;
        __m256i x = _mm256_add_epi32(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + j + 8 * v)),
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bias + c)));
        if (zw)
          x = _mm256_sub_epi32(x, _mm256_mullo_epi32(
                                      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(zw + c)), rs));
        __m256 p = _mm256_mul_ps(_mm256_cvtepi32_ps(x), _mm256_loadu_ps(scale + c));
        p = _mm256_min_ps(_mm256_max_ps(p, q.lo), q.hi);
        y[v] = _mm256_add_epi32(_mm256_cvtps_epi32(p), q.zp);
      }
      // 128-bit lane L of the bytes: y0, y1, y2, y3 lanes 4L..4L+3 (one dword each)
      const __m256i p0 = _mm256_packs_epi32(y[0], y[1]), p1 = _mm256_packs_epi32(y[2], y[3]);
      const __m256i b8 = sgn ? _mm256_packs_epi16(p0, p1) : _mm256_packus_epi16(p0, p1);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + j),
                          _mm256_permutevar8x32_epi32(b8, order));
    }
  }
  for (; j < n; j += 8) {
    __m256i v = _mm256_add_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + j)),
                                 _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bias + c0 + j)));
    if (zw)
      v = _mm256_sub_epi32(v, _mm256_mullo_epi32(
                                  _mm256_loadu_si256(reinterpret_cast<const __m256i*>(zw + c0 + j)), rs));
    requant8_store(v, q, scale, c0 + j, out + j, n - j);
  }
}

inline __m256i ld256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

#if defined(LOWP_VNNI256)
// mr x 16 columns: two vectors of 8 columns x 4 k, vpdpbusd.
template <int MR>
void gemm_tile(const uint8_t* const* a, const int64_t* tap_off, int ntaps, int kc4,
               const int8_t* b, int wp, int32_t* c) {
  // unrolled (compile-time indices): the accumulators stay in registers (common.h)
  __m256i acc0[MR], acc1[MR];
  unrolled<MR>([&](auto i) LOWP_INLINE_BODY { acc0[i] = acc1[i] = _mm256_setzero_si256(); });
  const int64_t bstep = 4 * static_cast<int64_t>(wp);
  for (int t = 0; t < ntaps; ++t) {
    const uint8_t* ap[MR];
    unrolled<MR>([&](auto i) LOWP_INLINE_BODY { ap[i] = a[i] + tap_off[t]; });
    for (int k4 = 0; k4 < kc4; ++k4, b += bstep) {
      const __m256i b0 = ld256(b), b1 = ld256(b + 32);
      unrolled<MR>([&](auto i) LOWP_INLINE_BODY {
        const __m256i av = _mm256_set1_epi32(load_i32(ap[i] + 4 * k4));
        acc0[i] = LOWP_DPBUSD256(acc0[i], av, b0);
        acc1[i] = LOWP_DPBUSD256(acc1[i], av, b1);
      });
    }
  }
  unrolled<MR>([&](auto i) LOWP_INLINE_BODY {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + i * kPanel), acc0[i]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + i * kPanel + 8), acc1[i]);
  });
}
constexpr int kMr256 = 6;
constexpr int kCols256 = 16;
#else
// mr x 8 columns: activations and weights widened to int16, vpmaddwd; each int32 lane holds
// two partial sums of one column until the final horizontal add.
template <int MR>
void gemm_tile(const uint8_t* const* a, const int64_t* tap_off, int ntaps, int kc4,
               const int8_t* b, int wp, int32_t* c) {
  __m256i acc0[MR], acc1[MR];  // unrolled, as the VNNI tile above
  unrolled<MR>([&](auto i) LOWP_INLINE_BODY { acc0[i] = acc1[i] = _mm256_setzero_si256(); });
  const int64_t bstep = 4 * static_cast<int64_t>(wp);
  for (int t = 0; t < ntaps; ++t) {
    const uint8_t* ap[MR];
    unrolled<MR>([&](auto i) LOWP_INLINE_BODY { ap[i] = a[i] + tap_off[t]; });
    for (int k4 = 0; k4 < kc4; ++k4, b += bstep) {
      const __m256i b0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b)));
      const __m256i b1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 16)));
      unrolled<MR>([&](auto i) LOWP_INLINE_BODY {
        // the 4 bytes in every dword (a load), then zero-extended to int16 in each 128-bit
        // lane: (a0, a1, a2, a3) twice per lane, as movd + vpmovzxbw + vpbroadcastq gave
        const __m256i av = _mm256_unpacklo_epi8(_mm256_set1_epi32(load_i32(ap[i] + 4 * k4)),
                                                _mm256_setzero_si256());
        acc0[i] = _mm256_add_epi32(acc0[i], _mm256_madd_epi16(av, b0));
        acc1[i] = _mm256_add_epi32(acc1[i], _mm256_madd_epi16(av, b1));
      });
    }
  }
  unrolled<MR>([&](auto i) LOWP_INLINE_BODY {
    const __m256i h = _mm256_permute4x64_epi64(_mm256_hadd_epi32(acc0[i], acc1[i]), 0xD8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + i * kPanel), h);
  });
}
constexpr int kMr256 = 4;
constexpr int kCols256 = 8;
#endif

template <int MR>
void gemm_cols(int wp, const uint8_t* const* a, const int64_t* tap_off, int ntaps, int kc4,
               const int8_t* b, int32_t* c) {
  for (int s = 0; s < wp; s += kCols256) gemm_tile<MR>(a, tap_off, ntaps, kc4, b + 4 * s, wp, c + s);
}

void gemm256(int mr, int wp, const uint8_t* const* a, const int64_t* tap_off, int ntaps, int kc4,
             const int8_t* b, int32_t* c) {
  switch (mr) {
    case 1: gemm_cols<1>(wp, a, tap_off, ntaps, kc4, b, c); break;
    case 2: gemm_cols<2>(wp, a, tap_off, ntaps, kc4, b, c); break;
    case 3: gemm_cols<3>(wp, a, tap_off, ntaps, kc4, b, c); break;
#if defined(LOWP_VNNI256)
    case 4: gemm_cols<4>(wp, a, tap_off, ntaps, kc4, b, c); break;
    case 5: gemm_cols<5>(wp, a, tap_off, ntaps, kc4, b, c); break;
    default: gemm_cols<6>(wp, a, tap_off, ntaps, kc4, b, c); break;
#else
    default: gemm_cols<4>(wp, a, tap_off, ntaps, kc4, b, c); break;
#endif
  }
}

// Depthwise: 8 channels per vector, 4 output pixels interleaved.
void dw256(const DwArgs& a, const Epilogue& e) {
  const int nr = a.nrows, np = a.npairs, c = a.c, ow = a.ow;
  const int64_t ow_step = a.ow_step, pair_step = a.pair_step, cp = a.cp;
  const int32_t* const* rows = a.rows;
  const int32_t* wts = a.w;
  uint8_t* out = a.out;
  const Rq8 q(e);
  const float* scale = e.fixedpoint ? nullptr : e.scale;
  const int32_t* bias_p = e.bias;
  for (int cb = 0; cb < c; cb += 8) {
    const int nrem = c - cb;
    const __m256i bias = ld256(bias_p + cb);
    int o = 0;
    for (; o + 4 <= ow; o += 4) {
      __m256i acc[4] = {bias, bias, bias, bias};
      for (int r = 0; r < nr; ++r) {
        const int32_t* row = rows[r] + o * ow_step + cb;
        for (int j = 0; j < np; ++j) {
          const __m256i w = ld256(wts + (r * np + j) * cp + cb);
          for (int u = 0; u < 4; ++u)
            acc[u] = LOWP_DPWSSD256(acc[u], ld256(row + u * ow_step + j * pair_step), w);
        }
      }
      for (int u = 0; u < 4; ++u)
        requant8_store(acc[u], q, scale, cb, out + int64_t(o + u) * c + cb, nrem);
    }
    for (; o < ow; ++o) {
      __m256i acc = bias;
      for (int r = 0; r < nr; ++r) {
        const int32_t* row = rows[r] + o * ow_step + cb;
        for (int j = 0; j < np; ++j)
          acc = LOWP_DPWSSD256(acc, ld256(row + j * pair_step), ld256(wts + (r * np + j) * cp + cb));
      }
      requant8_store(acc, q, scale, cb, out + int64_t(o) * c + cb, nrem);
    }
  }
}

// 8 channels of one input pixel minus the zero point; 0 outside the row or past c.
inline __m256i dw_load8(const DwRowArgs& a, int64_t s, int cb) {
  const int n = a.c - cb;
  if (s < 0 || s >= a.w || n <= 0) return _mm256_setzero_si256();
  uint64_t raw = 0;
  std::memcpy(&raw, a.src + s * a.c + cb, n >= 8 ? 8 : static_cast<size_t>(n));
  const __m128i b = _mm_cvtsi64_si128(static_cast<long long>(raw));
  __m256i v = a.x_signed ? _mm256_cvtepi8_epi32(b) : _mm256_cvtepu8_epi32(b);
  v = _mm256_sub_epi32(v, _mm256_set1_epi32(a.zp));
  if (n < 8) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    v = _mm256_and_si256(v, _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane));
  }
  return v;
}

void dw_row256(int32_t* dst, const DwRowArgs& a) {
  const __m256i low = _mm256_set1_epi32(0xffff);
  for (int64_t iw = 0, q = 0; iw < a.wp; iw += a.step, ++q) {
    int32_t* o = dst + q * a.cp;
    const int64_t s0 = iw - a.pw0, s1 = s0 + a.dil;
    for (int cb = 0; cb < a.cp; cb += 8) {
      const __m256i v = _mm256_or_si256(_mm256_and_si256(dw_load8(a, s0, cb), low),
                                        _mm256_slli_epi32(dw_load8(a, s1, cb), 16));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + cb), v);
    }
  }
}

}  // namespace
}  // namespace lowp
