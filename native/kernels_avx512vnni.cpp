// Microkernels, AVX-512 VNNI path (vpdpbusd / vpdpwssd on zmm); compiled with its own flags.
#include <immintrin.h>

#include <algorithm>
#include <type_traits>


#include "common.h"
#include "requant.h"

namespace lowp {
namespace {

constexpr int kMr = 6;

struct Rq16;
template <int MR, int NV>
inline void fused_store(__m512i (&acc)[MR][NV], const GemmOut& o);

// mr x (16*NV) tile: 4 k at a time, one broadcast of 4 activation bytes per row. Writes the
// int32 tile to c, or, when fo is set, requantizes from registers into fo's output. Every
// index into acc is a compile-time constant (unrolled), so the MR * NV accumulators live in
// registers from the bias to the write-out (with loops, GCC kept them in a stack array and
// loaded them around the reduction loop).
template <int MR, int NV>
void gemm_tile(const uint8_t* const* a, const int64_t* tap_off, int ntaps, int kc4,
               const int8_t* b, int wp, int32_t* c, const GemmOut* fo = nullptr) {
  // The fused form starts from the folded bias (the adds wrap like the reference's int32
  // sums, so the order does not matter); the int32-tile form starts from 0.
  __m512i acc[MR][NV];
  unrolled<NV>([&](auto v) LOWP_INLINE_BODY {
    const __m512i init =
        fo ? _mm512_loadu_si512(fo->e->bias + fo->c0 + 16 * v) : _mm512_setzero_si512();
    unrolled<MR>([&](auto i) LOWP_INLINE_BODY { acc[i][v] = init; });
  });
  const int64_t bstep = 4 * static_cast<int64_t>(wp);
  for (int t = 0; t < ntaps; ++t) {
    const uint8_t* ap[MR];
    unrolled<MR>([&](auto i) LOWP_INLINE_BODY {
      ap[i] = tap_off ? a[i] + tap_off[t] : a[i * ntaps + t];  // (IsaTable::gemm_indirect)
    });
    for (int k4 = 0; k4 < kc4; ++k4) {
      __m512i bv[NV];
      unrolled<NV>([&](auto v) LOWP_INLINE_BODY { bv[v] = _mm512_loadu_si512(b + 64 * v); });
      b += bstep;
      unrolled<MR>([&](auto i) LOWP_INLINE_BODY {
        const __m512i av = _mm512_set1_epi32(load_i32(ap[i] + 4 * k4));
        unrolled<NV>([&](auto v) LOWP_INLINE_BODY {
          acc[i][v] = _mm512_dpbusd_epi32(acc[i][v], av, bv[v]);
        });
      });
    }
  }
  if (fo) {
    fused_store<MR, NV>(acc, *fo);
    return;
  }
  unrolled<MR>([&](auto i) LOWP_INLINE_BODY {
    unrolled<NV>([&](auto v) LOWP_INLINE_BODY {
      _mm512_storeu_si512(c + i * kPanel + 16 * v, acc[i][v]);
    });
  });
}

// Narrow panels (<= 32 columns) take up to 12 rows so that 24 accumulators stay in flight.
template <int MR>
void gemm_rows_narrow(int wp, const uint8_t* const* a, const int64_t* tap_off, int ntaps,
                      int kc4, const int8_t* b, int32_t* c, const GemmOut* fo) {
  if (wp <= 16)
    gemm_tile<MR, 1>(a, tap_off, ntaps, kc4, b, wp, c, fo);
  else
    gemm_tile<MR, 2>(a, tap_off, ntaps, kc4, b, wp, c, fo);
}

template <int MR>
void gemm_rows(int wp, const uint8_t* const* a, const int64_t* tap_off, int ntaps, int kc4,
               const int8_t* b, int32_t* c, const GemmOut* fo) {
  switch (wp / 16) {
    case 1: gemm_tile<MR, 1>(a, tap_off, ntaps, kc4, b, wp, c, fo); break;
    case 2: gemm_tile<MR, 2>(a, tap_off, ntaps, kc4, b, wp, c, fo); break;
    case 3: gemm_tile<MR, 3>(a, tap_off, ntaps, kc4, b, wp, c, fo); break;
    default: gemm_tile<MR, 4>(a, tap_off, ntaps, kc4, b, wp, c, fo); break;
  }
}

void gemm_any(int mr, int wp, const uint8_t* const* a, const int64_t* tap_off, int ntaps,
              int kc4, const int8_t* b, int32_t* c, const GemmOut* fo) {
  if (wp <= 32 && mr > 6) {
    switch (mr) {
      case 7: gemm_rows_narrow<7>(wp, a, tap_off, ntaps, kc4, b, c, fo); return;
      case 8: gemm_rows_narrow<8>(wp, a, tap_off, ntaps, kc4, b, c, fo); return;
      case 9: gemm_rows_narrow<9>(wp, a, tap_off, ntaps, kc4, b, c, fo); return;
      case 10: gemm_rows_narrow<10>(wp, a, tap_off, ntaps, kc4, b, c, fo); return;
      case 11: gemm_rows_narrow<11>(wp, a, tap_off, ntaps, kc4, b, c, fo); return;
      default: gemm_rows_narrow<12>(wp, a, tap_off, ntaps, kc4, b, c, fo); return;
    }
  }
  switch (mr) {
    case 1: gemm_rows<1>(wp, a, tap_off, ntaps, kc4, b, c, fo); break;
    case 2: gemm_rows<2>(wp, a, tap_off, ntaps, kc4, b, c, fo); break;
    case 3: gemm_rows<3>(wp, a, tap_off, ntaps, kc4, b, c, fo); break;
    case 4: gemm_rows<4>(wp, a, tap_off, ntaps, kc4, b, c, fo); break;
    case 5: gemm_rows<5>(wp, a, tap_off, ntaps, kc4, b, c, fo); break;
    default: gemm_rows<6>(wp, a, tap_off, ntaps, kc4, b, c, fo); break;
  }
}

void gemm(int mr, int wp, const uint8_t* const* a, const int64_t* tap_off, int ntaps, int kc4,
          const int8_t* b, int32_t* c) {
  gemm_any(mr, wp, a, tap_off, ntaps, kc4, b, c, nullptr);
}

void gemm_fused(int mr, int wp, const uint8_t* const* a, const int64_t* tap_off, int ntaps,
                int kc4, const int8_t* b, const GemmOut& o) {
  gemm_any(mr, wp, a, tap_off, ntaps, kc4, b, nullptr, &o);
}

// Epilogue constants loaded once per call into registers (stores through uint8_t* may alias
// anything, so reading them from the Epilogue inside loops would reload them every time).
struct Rq16 {
  __m512 lo, hi;
  __m512i zp, zp64, qmin64, qmax64;
  const float* scale;
  const int32_t *mult, *lshift, *rshift;
  bool fixed;
  int32_t zps;  // the output zero point as a scalar (vectors of other widths)
  explicit Rq16(const Epilogue& e)
      : lo(_mm512_set1_ps(static_cast<float>(e.qmin - e.zp))),
        hi(_mm512_set1_ps(static_cast<float>(e.qmax - e.zp))),
        zp(_mm512_set1_epi32(e.zp)),
        zp64(_mm512_set1_epi64(e.zp)),
        qmin64(_mm512_set1_epi64(e.qmin)),
        qmax64(_mm512_set1_epi64(e.qmax)),
        scale(e.scale),
        mult(e.mult),
        lshift(e.lshift),
        rshift(e.rshift),
        fixed(e.fixedpoint),
        zps(e.zp) {}
};

// (R4) on 8 int64 lanes holding int32 values v, multipliers m, shifts l and r.
inline __m512i fixed8(__m512i v, __m512i m, __m512i l, __m512i r, const Rq16& q) {
  const __m512i zero = _mm512_setzero_si512(), one = _mm512_set1_epi64(1);
  __m512i x = _mm512_sllv_epi64(v, l);
  x = _mm512_max_epi64(x, _mm512_set1_epi64(INT32_MIN));
  x = _mm512_min_epi64(x, _mm512_set1_epi64(INT32_MAX));
  const __m512i ab = _mm512_mul_epi32(x, m);
  const __mmask8 pos = _mm512_cmpge_epi64_mask(ab, zero);
  const __m512i num = _mm512_add_epi64(
      ab, _mm512_mask_blend_epi64(pos, _mm512_set1_epi64(1 - (int64_t{1} << 30)),
                                  _mm512_set1_epi64(int64_t{1} << 30)));
  // C++ division by 2^31 truncates toward zero
  const __mmask8 npos = _mm512_cmpge_epi64_mask(num, zero);
  const __m512i qa = _mm512_srai_epi64(num, 31);
  const __m512i qb = _mm512_sub_epi64(zero, _mm512_srai_epi64(_mm512_sub_epi64(zero, num), 31));
  const __m512i qv = _mm512_mask_blend_epi64(npos, qb, qa);
  const __m512i mask = _mm512_sub_epi64(_mm512_sllv_epi64(one, r), one);
  const __mmask8 neg = _mm512_cmplt_epi64_mask(qv, zero);
  const __m512i half = _mm512_srli_epi64(mask, 1);
  const __m512i thr = _mm512_mask_add_epi64(half, neg, half, one);
  const __mmask8 up = _mm512_cmpgt_epi64_mask(_mm512_and_si512(qv, mask), thr);
  const __m512i sh = _mm512_srav_epi64(qv, r);
  __m512i y = _mm512_add_epi64(_mm512_mask_add_epi64(sh, up, sh, one), q.zp64);
  y = _mm512_min_epi64(_mm512_max_epi64(y, q.qmin64), q.qmax64);
  return y;
}

// 16 lanes of (R2) or (R4); returns the clamped int32 outputs. MODE: 0 = read q.fixed,
// 1 = FLOAT32, 2 = FIXEDPOINT (known at compile time in the depthwise kernels), 3 = FLOAT32
// left unclamped for a saturating narrowing when Epilogue::saturate_only (4: the same, for
// an int8 output in the depthwise kernels; the quad kernel's mode 5, the same without the
// zero point, which it adds after narrowing, runs at its own vector width: Qv::rq).
template <int MODE = 0>
inline __m512i requant16(__m512i v, const Rq16& q, int c) {
  if (MODE == 3 || MODE == 4) {  // FLOAT32, Epilogue::saturate_only: unclamped
    const __m512 p = _mm512_mul_ps(_mm512_cvtepi32_ps(v), _mm512_loadu_ps(q.scale + c));
    const __m512i r = _mm512_cvt_roundps_epi32(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return _mm512_add_epi32(r, q.zp);
  }
  if (MODE == 1 || (MODE == 0 && !q.fixed)) {
    __m512 p = _mm512_mul_ps(_mm512_cvtepi32_ps(v), _mm512_loadu_ps(q.scale + c));
    p = _mm512_min_ps(_mm512_max_ps(p, q.lo), q.hi);
    const __m512i r = _mm512_cvt_roundps_epi32(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return _mm512_add_epi32(r, q.zp);
  }
  const __m512i m32 = _mm512_loadu_si512(q.mult + c);
  const __m512i l32 = _mm512_loadu_si512(q.lshift + c);
  const __m512i r32 = _mm512_loadu_si512(q.rshift + c);
  auto lo = [](__m512i a) { return _mm512_cvtepi32_epi64(_mm512_castsi512_si256(a)); };
  auto hi = [](__m512i a) { return _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(a, 1)); };
  const __m256i y0 = _mm512_cvtepi64_epi32(fixed8(lo(v), lo(m32), lo(l32), lo(r32), q));
  const __m256i y1 = _mm512_cvtepi64_epi32(fixed8(hi(v), hi(m32), hi(l32), hi(r32), q));
  return _mm512_inserti64x4(_mm512_castsi256_si512(y0), y1, 1);
}

inline __mmask16 mask16(int n) {
  return n >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << n) - 1);
}

// Narrowing in a register and a plain store: the masked memory form of vpmovdb is slow on
// some cores (AMD Zen 4); the mask is used only for a partial vector.
inline void store16(uint8_t* out, __m512i y, __mmask16 k) {
  const __m128i b = _mm512_cvtepi32_epi8(y);
  if (k == static_cast<__mmask16>(0xffff))
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), b);
  else
    _mm_mask_storeu_epi8(out, k, b);
}

// NV int32 vectors (16 consecutive channels each) as n <= 16*NV bytes, saturated to the
// int8 range when sgn, else to the uint8 range: two saturating packs and one permute put the
// bytes in channel order. Values already inside [qmin, qmax] pass unchanged.
template <int NV>
inline void store_bytes(uint8_t* out, const __m512i (&y)[NV], int n, bool sgn) {
  {
    const __m512i p0 = _mm512_packs_epi32(y[0], y[NV > 1 ? 1 : 0]);
    const __m512i p1 = NV == 4 ? _mm512_packs_epi32(y[NV > 2 ? 2 : 0], y[NV > 3 ? 3 : 0])
                     : NV == 3 ? _mm512_packs_epi32(y[NV > 2 ? 2 : 0], y[NV > 2 ? 2 : 0])
                               : p0;
    const __m512i b8 = sgn ? _mm512_packs_epi16(p0, p1) : _mm512_packus_epi16(p0, p1);
    // 128-bit lane L holds dwords (y0, y1, y2, y3)[j] channels 4L..4L+3 at dword 4L + j
    const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    const __m512i r = _mm512_permutexvar_epi32(idx, b8);
    if (n >= 16 * NV) {
      if constexpr (NV == 4) {
        _mm512_storeu_si512(out, r);
      } else if constexpr (NV == 1) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm512_castsi512_si128(r));
      } else {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm512_castsi512_si256(r));
        if constexpr (NV == 3)
          _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 32), _mm512_extracti32x4_epi32(r, 2));
      }
    } else {
      const __mmask64 k = n >= 64 ? ~__mmask64(0) : ((__mmask64(1) << n) - 1);
      _mm512_mask_storeu_epi8(out, k, r);
    }
  }
}

template <int MR, int NV, int MODE>
__attribute__((always_inline)) inline void fused_store_t(__m512i (&acc)[MR][NV],
                                                         const GemmOut& o) {
  const Epilogue& e = *o.e;
  const Rq16 q(e);
  const bool sgn = e.qmin < 0;
  const int32_t* zw = e.zw ? e.zw + o.c0 : nullptr;
  uint8_t* out = o.out;
  const int64_t ldo = o.ldo;
  const int n = o.nvalid, c0 = o.c0;  // locals: the byte stores could alias o's fields
  const int32_t* const rowsum = o.rowsum;
  unrolled<MR>([&](auto i) LOWP_INLINE_BODY {
    __m512i y[NV];
    unrolled<NV>([&](auto v) LOWP_INLINE_BODY {
      __m512i x = acc[i][v];  // bias included (gemm_tile starts from it)
      if (zw)
        x = _mm512_sub_epi32(x, _mm512_mullo_epi32(_mm512_loadu_si512(zw + 16 * v),
                                                   _mm512_set1_epi32(rowsum[i])));
      y[v] = requant16<MODE>(x, q, c0 + 16 * v);
    });
    store_bytes<NV>(out + i * ldo, y, n, sgn);
  });
}

template <int MR, int NV>
__attribute__((always_inline)) inline void fused_store(__m512i (&acc)[MR][NV],
                                                       const GemmOut& o) {
  if (o.e->fixedpoint)
    fused_store_t<MR, NV, 2>(acc, o);
  else if (o.e->saturate_only)
    fused_store_t<MR, NV, 3>(acc, o);
  else
    fused_store_t<MR, NV, 1>(acc, o);
}

void epilogue(const int32_t* acc, int n, const Epilogue& e, int c0, int32_t rowsum,
              uint8_t* out) {
  const Rq16 q(e);
  const int32_t* bias = e.bias;
  const int32_t* zw = e.zw;
  const __m512i rs = _mm512_set1_epi32(rowsum);
  for (int j = 0; j < n; j += 16) {
    __m512i v = _mm512_add_epi32(_mm512_loadu_si512(acc + j), _mm512_loadu_si512(bias + c0 + j));
    if (zw) v = _mm512_sub_epi32(v, _mm512_mullo_epi32(_mm512_loadu_si512(zw + c0 + j), rs));
    store16(out + j, requant16(v, q, c0 + j), mask16(n - j));
  }
}

// fused_store's arithmetic on rows x 64 accumulators in memory (row stride lda; the bias
// is added here): row i goes to o.out + i * ldo with o.rowsum[i].
template <int MODE>
void fused_rows_t(const int32_t* acc, int64_t lda, int rows, const GemmOut& o) {
  const Epilogue& e = *o.e;
  const Rq16 q(e);
  const bool sgn = e.qmin < 0;
  const int32_t* bias = e.bias + o.c0;
  const int32_t* zw = e.zw ? e.zw + o.c0 : nullptr;
  uint8_t* out = o.out;
  const int n = o.nvalid;
  for (int i = 0; i < rows; ++i, acc += lda, out += o.ldo) {
    __m512i y[4];
    for (int v = 0; v < 4; ++v) {
      __m512i x = _mm512_add_epi32(_mm512_loadu_si512(acc + 16 * v),
                                   _mm512_loadu_si512(bias + 16 * v));
      if (zw)
        x = _mm512_sub_epi32(x, _mm512_mullo_epi32(_mm512_loadu_si512(zw + 16 * v),
                                                   _mm512_set1_epi32(o.rowsum[i])));
      y[v] = requant16<MODE>(x, q, o.c0 + 16 * v);
    }
    store_bytes<4>(out, y, n, sgn);
  }
}

// Depthwise store of 16 outputs; MODE 3 / 4 values are unclamped (Epilogue::saturate_only)
// and narrowed with saturation to the uint8 / int8 range.
template <int MODE>
inline void store_dw(uint8_t* out, __m512i y, __mmask16 k, bool sgn) {
  if constexpr (MODE == 3 || MODE == 4) {
    (void)sgn;
    const __m128i b = MODE == 4
                          ? _mm512_cvtsepi32_epi8(y)
                          : _mm512_cvtusepi32_epi8(_mm512_max_epi32(y, _mm512_setzero_si512()));
    if (k == static_cast<__mmask16>(0xffff))
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out), b);
    else
      _mm_mask_storeu_epi8(out, k, b);
  } else {
    store16(out, y, k);
  }
}

// Depthwise: 16 channels per vector, NR rows of NP tap pairs, U output pixels interleaved;
// NR = NP = 0 is the generic version (any kernel, stride, dilation). With S1 (pair step equal
// to two output steps: stride 1, dilation 1) neighbouring pixels share pair loads.
template <int NR, int NP, bool S1, int MODE>
void dw_tile(const DwArgs& a, const Epilogue& e) {
  constexpr bool kFixed = NR * NP > 0 && NR * NP <= 18;
  constexpr int kKeep = kFixed ? NR * NP : 1;
  constexpr int U = 4;
  const int nr = NR ? NR : a.nrows, np = NP ? NP : a.npairs;
  const Rq16 q(e);
  const int32_t* bias = e.bias;
  const int32_t* const* rows = a.rows;
  const int32_t* wts = a.w;
  const int64_t ow_step = a.ow_step, pair_step = a.pair_step, cp = a.cp;
  const int c = a.c, ow = a.ow;
  const bool sgn = e.qmin < 0;
  uint8_t* out = a.out;
  for (int cb = 0; cb < c; cb += 16) {
    __m512i wk[kKeep];
    if (kFixed)
      for (int t = 0; t < kKeep; ++t) wk[t] = _mm512_loadu_si512(wts + t * cp + cb);
    const __m512i b = _mm512_loadu_si512(bias + cb);
    const __mmask16 k = mask16(c - cb);
    int o = 0;
    for (; o + U <= ow; o += U) {
      __m512i acc[U];
      for (int u = 0; u < U; ++u) acc[u] = b;
      for (int r = 0; r < nr; ++r) {
        const int32_t* row = rows[r] + cb + o * ow_step;
        if constexpr (S1 && kFixed) {
          // pixel u, pair j reads position u + 2j
          __m512i x[U + 2 * (NP - 1)];
          for (int i = 0; i < U + 2 * (NP - 1); ++i) x[i] = _mm512_loadu_si512(row + i * ow_step);
          for (int j = 0; j < NP; ++j)
            for (int u = 0; u < U; ++u) acc[u] = _mm512_dpwssd_epi32(acc[u], x[u + 2 * j], wk[r * NP + j]);
        } else {
          for (int j = 0; j < np; ++j) {
            const __m512i w =
                kFixed ? wk[r * np + j] : _mm512_loadu_si512(wts + (r * np + j) * cp + cb);
            for (int u = 0; u < U; ++u)
              acc[u] = _mm512_dpwssd_epi32(
                  acc[u], _mm512_loadu_si512(row + u * ow_step + j * pair_step), w);
          }
        }
      }
#pragma GCC unroll 4
      for (int u = 0; u < U; ++u)
        store_dw<MODE>(out + int64_t(o + u) * c + cb, requant16<MODE>(acc[u], q, cb), k, sgn);
    }
    for (; o < ow; ++o) {
      __m512i acc = b;
      for (int r = 0; r < nr; ++r) {
        const int32_t* row = rows[r] + cb + o * ow_step;
        for (int j = 0; j < np; ++j)
          acc = _mm512_dpwssd_epi32(acc, _mm512_loadu_si512(row + j * pair_step),
                                    _mm512_loadu_si512(wts + (r * np + j) * cp + cb));
      }
      store_dw<MODE>(out + int64_t(o) * c + cb, requant16<MODE>(acc, q, cb), k, sgn);
    }
  }
}

template <int MODE>
void dw_mode(const DwArgs& a, const Epilogue& e) {
  const bool s1 = a.pair_step == 2 * a.ow_step;
  if (a.nrows == 3 && a.npairs == 2)
    return s1 ? dw_tile<3, 2, true, MODE>(a, e) : dw_tile<3, 2, false, MODE>(a, e);
  if (a.nrows == 9 && a.npairs == 2)
    return s1 ? dw_tile<9, 2, true, MODE>(a, e) : dw_tile<9, 2, false, MODE>(a, e);
  dw_tile<0, 0, false, MODE>(a, e);
}

void dw(const DwArgs& a, const Epilogue& e) {
  if (e.fixedpoint)
    dw_mode<2>(a, e);
  else if (e.saturate_only && e.qmin < 0)
    dw_mode<4>(a, e);
  else if (e.saturate_only)
    dw_mode<3>(a, e);
  else
    dw_mode<1>(a, e);
}

// One pair row; SIGNED selects int8 or uint8 widening.
template <bool SIGNED>
void dw_row_t(int32_t* dst, const DwRowArgs& a) {
  const __m512i low = _mm512_set1_epi32(0xffff), zp = _mm512_set1_epi32(a.zp);
  const uint8_t* src = a.src;
  const int64_t w = a.w, wp = a.wp, dil = a.dil, pw0 = a.pw0, step = a.step;
  const int c = a.c, cp = a.cp;
  auto load = [&](int64_t s, int cb) {
    const int n = c - cb;
    if (s < 0 || s >= w || n <= 0) return _mm512_setzero_si512();
    const __mmask16 k = mask16(n);
    const __m128i raw = _mm_maskz_loadu_epi8(k, src + s * c + cb);
    const __m512i v = SIGNED ? _mm512_cvtepi8_epi32(raw) : _mm512_cvtepu8_epi32(raw);
    return _mm512_maskz_sub_epi32(k, v, zp);
  };
  // 32 channels as int16: x - zp for both taps, interleaved by unpack (per 128-bit lane)
  // and put back in channel order by two cross-lane permutes.
  const __m512i zp16 = _mm512_set1_epi16(static_cast<int16_t>(a.zp));
  auto load32 = [&](int64_t s, int cb) {
    const int n = c - cb;
    if (s < 0 || s >= w || n <= 0) return _mm512_setzero_si512();
    const __mmask32 k = n >= 32 ? ~__mmask32(0) : ((__mmask32(1) << n) - 1);
    const __m256i raw = _mm256_maskz_loadu_epi8(k, src + s * c + cb);
    const __m512i v = SIGNED ? _mm512_cvtepi8_epi16(raw) : _mm512_cvtepu8_epi16(raw);
    return _mm512_maskz_sub_epi16(k, v, zp16);
  };
  const __m512i lo_idx = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
  const __m512i hi_idx = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
  const int cfull = c / 32 * 32;  // channels in whole 32-channel blocks
  for (int64_t iw = 0, qi = 0; iw < wp; iw += step, ++qi) {
    int32_t* o = dst + qi * cp;
    const int64_t s0 = iw - pw0, s1 = s0 + dil;
    int cb = 0;
    if (s0 >= 0 && s1 >= 0 && s0 < w && s1 < w) {
      // both taps inside the row: unmasked loads, no per-block range checks
      const uint8_t* p0 = src + s0 * c;
      const uint8_t* p1 = src + s1 * c;
      for (; cb < cfull; cb += 32) {
        const __m256i r0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p0 + cb));
        const __m256i r1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p1 + cb));
        const __m512i x0 = _mm512_sub_epi16(SIGNED ? _mm512_cvtepi8_epi16(r0) : _mm512_cvtepu8_epi16(r0), zp16);
        const __m512i x1 = _mm512_sub_epi16(SIGNED ? _mm512_cvtepi8_epi16(r1) : _mm512_cvtepu8_epi16(r1), zp16);
        const __m512i lo = _mm512_unpacklo_epi16(x0, x1), hi = _mm512_unpackhi_epi16(x0, x1);
        _mm512_storeu_si512(o + cb, _mm512_permutex2var_epi64(lo, lo_idx, hi));
        _mm512_storeu_si512(o + cb + 16, _mm512_permutex2var_epi64(lo, hi_idx, hi));
      }
    }
    for (; cb + 32 <= cp; cb += 32) {
      const __m512i x0 = load32(s0, cb), x1 = load32(s1, cb);
      // lane L of lo: channels 8L..8L+3, of hi: 8L+4..8L+7
      const __m512i lo = _mm512_unpacklo_epi16(x0, x1), hi = _mm512_unpackhi_epi16(x0, x1);
      _mm512_storeu_si512(o + cb, _mm512_permutex2var_epi64(lo, lo_idx, hi));
      _mm512_storeu_si512(o + cb + 16, _mm512_permutex2var_epi64(lo, hi_idx, hi));
    }
    for (; cb < cp; cb += 16) {
      const __m512i v = _mm512_or_si512(_mm512_and_si512(load(s0, cb), low),
                                        _mm512_slli_epi32(load(s1, cb), 16));
      _mm512_storeu_si512(o + cb, v);
    }
  }
}

void dw_row(int32_t* dst, const DwRowArgs& a) {
  if (a.x_signed)
    dw_row_t<true>(dst, a);
  else
    dw_row_t<false>(dst, a);
}

// Vector types of the quad depthwise kernel: V 128-bit lanes (64, 32 or 16 channels). Every
// operation works within 128-bit lanes, so one template serves zmm, ymm and xmm; on Zen 4 and
// Intel cores a ymm vpdpbusd does as many MACs per cycle as a zmm one. The requantization
// runs on a zmm (zero-extended) so that all widths share requant16.
template <int V>
struct Qv;
template <>
struct Qv<4> {
  using T = __m512i;
  using M = __mmask64;
  static M mask(int n) { return n >= 64 ? ~M(0) : (M(1) << n) - 1; }
  static T load(const uint8_t* p, M k) { return _mm512_maskz_loadu_epi8(k, p); }
  static T ld32(const int32_t* p) { return _mm512_loadu_si512(p); }
  static T ldw(const int8_t* p) { return _mm512_load_si512(p); }
  static T set1(uint8_t v) { return _mm512_set1_epi8(char(v)); }
  static T vxor(T a, T b) { return _mm512_xor_si512(a, b); }
  static T adds16(T a, T b) { return _mm512_adds_epi16(a, b); }
  static T set16(int16_t v) { return _mm512_set1_epi16(v); }
  static T loadu(const uint8_t* p) { return _mm512_loadu_si512(p); }
  static T lo8(T a, T b) { return _mm512_unpacklo_epi8(a, b); }
  static T hi8(T a, T b) { return _mm512_unpackhi_epi8(a, b); }
  static T lo16(T a, T b) { return _mm512_unpacklo_epi16(a, b); }
  static T hi16(T a, T b) { return _mm512_unpackhi_epi16(a, b); }
  static T dp(T acc, T a, T b) { return _mm512_dpbusd_epi32(acc, a, b); }
  using F = __m512;
  static F ldf(const float* p) { return _mm512_loadu_ps(p); }
  // rint(f32(v) * s), nearest even
  static T rq(T v, F s) {
    return _mm512_cvt_roundps_epi32(_mm512_mul_ps(_mm512_cvtepi32_ps(v), s),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  static __m512i wide(T v) { return v; }
  static T narrow(__m512i v) { return v; }
  static T packs32(T a, T b) { return _mm512_packs_epi32(a, b); }
  static T packs16(T a, T b) { return _mm512_packs_epi16(a, b); }
  static T packus16(T a, T b) { return _mm512_packus_epi16(a, b); }
  static void store(uint8_t* p, T v) { _mm512_storeu_si512(p, v); }
  static void store(uint8_t* p, T v, M k) { _mm512_mask_storeu_epi8(p, k, v); }
};
template <>
struct Qv<2> {
  using T = __m256i;
  using M = __mmask32;
  static M mask(int n) { return n >= 32 ? ~M(0) : (M(1) << n) - 1; }
  static T load(const uint8_t* p, M k) { return _mm256_maskz_loadu_epi8(k, p); }
  static T ld32(const int32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static T ldw(const int8_t* p) { return _mm256_load_si256(reinterpret_cast<const __m256i*>(p)); }
  static T set1(uint8_t v) { return _mm256_set1_epi8(char(v)); }
  static T vxor(T a, T b) { return _mm256_xor_si256(a, b); }
  static T adds16(T a, T b) { return _mm256_adds_epi16(a, b); }
  static T set16(int16_t v) { return _mm256_set1_epi16(v); }
  static T loadu(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static T lo8(T a, T b) { return _mm256_unpacklo_epi8(a, b); }
  static T hi8(T a, T b) { return _mm256_unpackhi_epi8(a, b); }
  static T lo16(T a, T b) { return _mm256_unpacklo_epi16(a, b); }
  static T hi16(T a, T b) { return _mm256_unpackhi_epi16(a, b); }
  static T dp(T acc, T a, T b) { return _mm256_dpbusd_epi32(acc, a, b); }
  using F = __m256;
  static F ldf(const float* p) { return _mm256_loadu_ps(p); }
  // vcvtps2dq rounds with MXCSR, which is round-to-nearest-even unless changed (as on the
  // 256-bit paths)
  static T rq(T v, F s) { return _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_cvtepi32_ps(v), s)); }
  static __m512i wide(T v) { return _mm512_zextsi256_si512(v); }
  static T narrow(__m512i v) { return _mm512_castsi512_si256(v); }
  static T packs32(T a, T b) { return _mm256_packs_epi32(a, b); }
  static T packs16(T a, T b) { return _mm256_packs_epi16(a, b); }
  static T packus16(T a, T b) { return _mm256_packus_epi16(a, b); }
  static void store(uint8_t* p, T v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
  static void store(uint8_t* p, T v, M k) { _mm256_mask_storeu_epi8(p, k, v); }
};
template <>
struct Qv<1> {
  using T = __m128i;
  using M = __mmask16;
  static M mask(int n) { return mask16(n); }
  static T load(const uint8_t* p, M k) { return _mm_maskz_loadu_epi8(k, p); }
  static T ld32(const int32_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
  static T ldw(const int8_t* p) { return _mm_load_si128(reinterpret_cast<const __m128i*>(p)); }
  static T set1(uint8_t v) { return _mm_set1_epi8(char(v)); }
  static T vxor(T a, T b) { return _mm_xor_si128(a, b); }
  static T adds16(T a, T b) { return _mm_adds_epi16(a, b); }
  static T set16(int16_t v) { return _mm_set1_epi16(v); }
  static T loadu(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
  static T lo8(T a, T b) { return _mm_unpacklo_epi8(a, b); }
  static T hi8(T a, T b) { return _mm_unpackhi_epi8(a, b); }
  static T lo16(T a, T b) { return _mm_unpacklo_epi16(a, b); }
  static T hi16(T a, T b) { return _mm_unpackhi_epi16(a, b); }
  static T dp(T acc, T a, T b) { return _mm_dpbusd_epi32(acc, a, b); }
  using F = __m128;
  static F ldf(const float* p) { return _mm_loadu_ps(p); }
  static T rq(T v, F s) { return _mm_cvtps_epi32(_mm_mul_ps(_mm_cvtepi32_ps(v), s)); }
  static __m512i wide(T v) { return _mm512_zextsi128_si512(v); }
  static T narrow(__m512i v) { return _mm512_castsi512_si128(v); }
  static T packs32(T a, T b) { return _mm_packs_epi32(a, b); }
  static T packs16(T a, T b) { return _mm_packs_epi16(a, b); }
  static T packus16(T a, T b) { return _mm_packus_epi16(a, b); }
  static void store(uint8_t* p, T v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), v); }
  static void store(uint8_t* p, T v, M k) { _mm_mask_storeu_epi8(p, k, v); }
};

// Output pixels per strip of the quad kernel: the two halves of a channel block run over
// the same strip (whose input stays in L1), the first leaving its int16 results on the stack.
constexpr int kQuadStrip = 32;

// Half H (quad vectors k = 2H, 2H + 1) of one channel block (16V channels from cb), output
// pixels [o0, o1) of one or two output rows. The 3 kernel columns x 2 vectors x NOUT sets of
// weights stay in registers (memory operands would make the loads the bottleneck: one zmm
// load per cycle on Zen 4), and so do the quads of the last three input columns, which roll
// along the row: each input column is loaded and interleaved once per half (twice per output
// for stride 2). Half 0 writes its pack of int16 results to `mid`; half 1 packs them with its
// own into bytes in channel order. FULL: the block has 16V valid channels (plain loads and
// stores). The outputs whose three input columns all lie inside the row run without checks.
template <int V, int NOUT, int SW, int MODE, bool SGN, int H, bool FULL>
__attribute__((always_inline)) inline void dw_quad_half(const DwQuadArgs& a, const Rq16& q,
                                                        const int32_t* bias, int cb, int o0,
                                                        int o1, typename Qv<V>::T* mid,
                                                        bool sgn_out) {
  using Q = Qv<V>;
  using T = typename Q::T;
  using F = typename Q::F;
  constexpr int BW = 16 * V, V4 = 4 * V;
  const int nvalid = a.c - cb < BW ? a.c - cb : BW;
  const typename Q::M km = Q::mask(nvalid);
  const int64_t C = a.c, W = a.w;
  const uint8_t* const r0 = a.rows[0] + cb;
  const uint8_t* const r1 = a.rows[1] + cb;
  const uint8_t* const r2 = a.rows[2] + cb;
  const uint8_t* const r3 = a.rows[3] + cb;
  uint8_t* const out0 = a.out[0] + cb;
  uint8_t* const out1 = a.out[1] + cb;
  // weights [j][s][k] at (j * 8 + s * 4 + k) * BW bytes of the block
  T wt[3][NOUT][2];
  for (int j = 0; j < 3; ++j)
    for (int s = 0; s < NOUT; ++s)
      for (int k = 0; k < 2; ++k)
        wt[j][s][k] = Q::ldw(a.w8 + int64_t(24) * cb + (j * 8 + s * 4 + 2 * H + k) * BW);
  // MODE 5 keeps the bias and the scales in registers (the stores may alias any memory, so
  // the compiler would reload them for every output)
  T bv[2];
  F sv[2];
  for (int k = 0; k < 2; ++k) {
    bv[k] = Q::ld32(bias + cb + V4 * (2 * H + k));
    if (MODE == 5) sv[k] = Q::ldf(q.scale + cb + V4 * (2 * H + k));
  }
  const T zq = Q::set1(a.za), flip = Q::set1(0x80), zp16 = Q::set16(int16_t(q.zps));
  auto column = [&](int64_t iw, T (&qd)[2], auto check) __attribute__((always_inline)) {
    if (decltype(check)::value && (iw < 0 || iw >= W)) {  // padding: the zero point
      qd[0] = qd[1] = zq;
      return;
    }
    const int64_t off = iw * C;
    // masked loads only for a partial block (they stay inside the input)
    auto ld = [&](const uint8_t* p) { return FULL ? Q::loadu(p) : Q::load(p, km); };
    T x0 = ld(r0 + off), x1 = ld(r1 + off), x2 = ld(r2 + off);
    T x3 = NOUT == 2 ? ld(r3 + off) : x2;  // one output row: byte 3 has weight 0
    if (SGN) {
      x0 = Q::vxor(x0, flip);
      x1 = Q::vxor(x1, flip);
      x2 = Q::vxor(x2, flip);
      if (NOUT == 2) x3 = Q::vxor(x3, flip);
    }
    const T x01 = H ? Q::hi8(x0, x1) : Q::lo8(x0, x1);
    const T x23 = H ? Q::hi8(x2, x3) : Q::lo8(x2, x3);
    qd[0] = Q::lo16(x01, x23);
    qd[1] = Q::hi16(x01, x23);
  };
  using Chk = std::true_type;
  using NoChk = std::false_type;
  T qa[2], qb[2], qc[2];
  const int64_t pw0 = a.pw0;
  column(int64_t(o0) * SW - pw0, qa, Chk{});
  if (SW == 1) column(int64_t(o0) * SW - pw0 + 1, qb, Chk{});
  auto step = [&](int o, auto check) __attribute__((always_inline)) {
    const int64_t iw = int64_t(o) * SW - pw0;
    if (SW == 2) column(iw + 1, qb, check);
    column(iw + 2, qc, check);
#pragma GCC unroll 2
    for (int s = 0; s < NOUT; ++s) {
      T y[2];
#pragma GCC unroll 2
      for (int k = 0; k < 2; ++k) {
        T acc = Q::dp(bv[k], qa[k], wt[0][s][k]);
        acc = Q::dp(acc, qb[k], wt[1][s][k]);
        acc = Q::dp(acc, qc[k], wt[2][s][k]);
        if (MODE == 5)
          y[k] = Q::rq(acc, sv[k]);
        else
          y[k] = Q::narrow(requant16<MODE>(Q::wide(acc), q, cb + V4 * (2 * H + k)));
      }
      T p = Q::packs32(y[0], y[1]);  // lane L: channels 16L + 8H .. 16L + 8H + 7
      // MODE 5: the zero point added to int16 values saturated once; exact for |zp| below
      // 2^15 - 256, since a saturated value stays outside the byte range after the add
      // (vpaddsw on the int16 pack is one operation for two vectors)
      if (MODE == 5) p = Q::adds16(p, zp16);
      T* m = mid + s * kQuadStrip + (o - o0);
      if (H == 0) {
        *m = p;
        continue;
      }
      // lane L of the bytes: channels 16L .. 16L + 15, in order
      const T b = sgn_out ? Q::packs16(*m, p) : Q::packus16(*m, p);
      uint8_t* dst = (s ? out1 : out0) + int64_t(o) * C;
      if (FULL)
        Q::store(dst, b);
      else
        Q::store(dst, b, km);
    }
    qa[0] = SW == 1 ? qb[0] : qc[0];
    qa[1] = SW == 1 ? qb[1] : qc[1];
    qb[0] = qc[0];
    qb[1] = qc[1];
  };
  // outputs [oa, ob) read only columns inside the row: o * SW - pw0 >= 0 and
  // o * SW - pw0 + 2 <= W - 1
  int oa = int((pw0 + SW - 1) / SW), ob = W + pw0 >= 3 ? int((W - 3 + pw0) / SW) + 1 : 0;
  oa = oa < o0 ? o0 : oa > o1 ? o1 : oa;
  ob = ob < oa ? oa : ob > o1 ? o1 : ob;
  // two copies of the loop body (checked, unchecked) rather than three
  for (int o = o0; o < o1;) {
    if (o >= oa && o < ob) {
      for (; o < ob; ++o) step(o, NoChk{});
    } else {
      for (const int e = o < oa ? oa : o1; o < e; ++o) step(o, Chk{});
    }
  }
}

// One channel block of one or two output rows, strip by strip.
template <int V, int NOUT, int SW, int MODE, bool SGN, bool FULL>
__attribute__((noinline)) void dw_quad_t(const DwQuadArgs& a, const Rq16& q,
                                         const int32_t* bias, int cb, bool sgn_out) {
  using T = typename Qv<V>::T;
  T mid[NOUT * kQuadStrip];
  for (int o0 = 0; o0 < a.ow; o0 += kQuadStrip) {
    const int o1 = a.ow - o0 < kQuadStrip ? a.ow : o0 + kQuadStrip;
    dw_quad_half<V, NOUT, SW, MODE, SGN, 0, FULL>(a, q, bias, cb, o0, o1, mid, sgn_out);
    dw_quad_half<V, NOUT, SW, MODE, SGN, 1, FULL>(a, q, bias, cb, o0, o1, mid, sgn_out);
  }
}

// One output row (stride 2, or a row without a partner): the weights of all four quad
// vectors fit in registers (3 columns x 4), so one pass covers the whole block and every input
// column is loaded once; the bias and the scales are read from memory (aligned, in L1).
template <int V, int SW, int MODE, bool SGN, bool FULL>
__attribute__((noinline)) void dw_quad_one(const DwQuadArgs& a, const Rq16& q,
                                           const int32_t* bias, int cb, bool sgn_out) {
  using Q = Qv<V>;
  using T = typename Q::T;
  constexpr int BW = 16 * V, V4 = 4 * V;
  const int nvalid = a.c - cb < BW ? a.c - cb : BW;
  const typename Q::M km = Q::mask(nvalid);
  const int64_t C = a.c, W = a.w;
  const uint8_t* const r0 = a.rows[0] + cb;
  const uint8_t* const r1 = a.rows[1] + cb;
  const uint8_t* const r2 = a.rows[2] + cb;
  uint8_t* const out = a.out[0] + cb;
  const int32_t* const bp = bias + cb;
  const float* const sp = q.scale + cb;
  T wt[3][4];
  for (int j = 0; j < 3; ++j)
    for (int k = 0; k < 4; ++k) wt[j][k] = Q::ldw(a.w8 + int64_t(24) * cb + (j * 8 + k) * BW);
  const T zq = Q::set1(a.za), flip = Q::set1(0x80), zp16 = Q::set16(int16_t(q.zps));
  auto column = [&](int64_t iw, T (&qd)[4], auto check) __attribute__((always_inline)) {
    if (decltype(check)::value && (iw < 0 || iw >= W)) {  // padding: the zero point
      qd[0] = qd[1] = qd[2] = qd[3] = zq;
      return;
    }
    const int64_t off = iw * C;
    auto ld = [&](const uint8_t* p) { return FULL ? Q::loadu(p) : Q::load(p, km); };
    T x0 = ld(r0 + off), x1 = ld(r1 + off), x2 = ld(r2 + off);
    if (SGN) {
      x0 = Q::vxor(x0, flip);
      x1 = Q::vxor(x1, flip);
      x2 = Q::vxor(x2, flip);
    }
    // byte 3 repeats row 2 (weight 0)
    const T l01 = Q::lo8(x0, x1), h01 = Q::hi8(x0, x1), l22 = Q::lo8(x2, x2), h22 = Q::hi8(x2, x2);
    qd[0] = Q::lo16(l01, l22);
    qd[1] = Q::hi16(l01, l22);
    qd[2] = Q::lo16(h01, h22);
    qd[3] = Q::hi16(h01, h22);
  };
  using Chk = std::true_type;
  using NoChk = std::false_type;
  T qa[4], qb[4], qc[4];
  const int64_t pw0 = a.pw0;
  const int o0 = 0, o1 = a.ow;
  column(-pw0, qa, Chk{});
  if (SW == 1) column(1 - pw0, qb, Chk{});
  auto step = [&](int o, auto check) __attribute__((always_inline)) {
    const int64_t iw = int64_t(o) * SW - pw0;
    if (SW == 2) column(iw + 1, qb, check);
    column(iw + 2, qc, check);
    T y[4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      T acc = Q::dp(Q::ld32(bp + V4 * k), qa[k], wt[0][k]);
      acc = Q::dp(acc, qb[k], wt[1][k]);
      acc = Q::dp(acc, qc[k], wt[2][k]);
      if (MODE == 5)
        y[k] = Q::rq(acc, Q::ldf(sp + V4 * k));
      else
        y[k] = Q::narrow(requant16<MODE>(Q::wide(acc), q, cb + V4 * k));
    }
    T p0 = Q::packs32(y[0], y[1]), p1 = Q::packs32(y[2], y[3]);
    if (MODE == 5) {  // see dw_quad_half
      p0 = Q::adds16(p0, zp16);
      p1 = Q::adds16(p1, zp16);
    }
    const T b = sgn_out ? Q::packs16(p0, p1) : Q::packus16(p0, p1);
    uint8_t* dst = out + int64_t(o) * C;
    if (FULL)
      Q::store(dst, b);
    else
      Q::store(dst, b, km);
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      qa[k] = SW == 1 ? qb[k] : qc[k];
      qb[k] = qc[k];
    }
  };
  int oa = int((pw0 + SW - 1) / SW), ob = W + pw0 >= 3 ? int((W - 3 + pw0) / SW) + 1 : 0;
  oa = oa < o0 ? o0 : oa > o1 ? o1 : oa;
  ob = ob < oa ? oa : ob > o1 ? o1 : ob;
  // two copies of the loop body (checked, unchecked) rather than three
  for (int o = o0; o < o1;) {
    if (o >= oa && o < ob) {
      for (; o < ob; ++o) step(o, NoChk{});
    } else {
      for (const int e = o < oa ? oa : o1; o < e; ++o) step(o, Chk{});
    }
  }
}

template <int V, int NOUT, int SW, int MODE, bool SGN>
inline void dw_quad_block_t(const DwQuadArgs& a, const Rq16& q, const int32_t* bias, int cb,
                            bool sgn_out) {
  if constexpr (NOUT == 1 && SW == 2) {
    if (a.c - cb >= 16 * V)
      dw_quad_one<V, SW, MODE, SGN, true>(a, q, bias, cb, sgn_out);
    else
      dw_quad_one<V, SW, MODE, SGN, false>(a, q, bias, cb, sgn_out);
  } else if (a.c - cb >= 16 * V) {
    dw_quad_t<V, NOUT, SW, MODE, SGN, true>(a, q, bias, cb, sgn_out);
  } else {
    dw_quad_t<V, NOUT, SW, MODE, SGN, false>(a, q, bias, cb, sgn_out);
  }
}

template <int NOUT, int SW, int MODE, bool SGN>
void dw_quad_rows(const DwQuadArgs& a, const Epilogue& e) {
  const Rq16 q(e);
  const bool sgn_out = e.qmin < 0;
  const int c1 = a.c1 < 0 || a.c1 > a.c ? a.c : a.c1;
  for (int cb = a.c0; cb < c1;) {
    const int bw = dw_quad_block(a.c - cb);
    if (bw == 64)
      dw_quad_block_t<4, NOUT, SW, MODE, SGN>(a, q, e.bias, cb, sgn_out);
    else if (bw == 32)
      dw_quad_block_t<2, NOUT, SW, MODE, SGN>(a, q, e.bias, cb, sgn_out);
    else
      dw_quad_block_t<1, NOUT, SW, MODE, SGN>(a, q, e.bias, cb, sgn_out);
    cb += bw;
  }
}

template <int MODE, bool SGN>
void dw_quad_mode(const DwQuadArgs& a, const Epilogue& e) {
  if (a.sw == 2)
    return a.nout == 2 ? dw_quad_rows<2, 2, MODE, SGN>(a, e) : dw_quad_rows<1, 2, MODE, SGN>(a, e);
  return a.nout == 2 ? dw_quad_rows<2, 1, MODE, SGN>(a, e) : dw_quad_rows<1, 1, MODE, SGN>(a, e);
}

template <bool SGN>
void dw_quad_sgn(const DwQuadArgs& a, const Epilogue& e) {
  if (e.fixedpoint)
    dw_quad_mode<2, SGN>(a, e);
  else if (e.saturate_only && e.zp > -32000 && e.zp < 32000)  // the saturating packs clamp
    dw_quad_mode<5, SGN>(a, e);
  else
    dw_quad_mode<1, SGN>(a, e);
}

void dw_quad(const DwQuadArgs& a, const Epilogue& e) {
  if (a.x_signed)
    dw_quad_sgn<true>(a, e);
  else
    dw_quad_sgn<false>(a, e);
}

// Element-wise Add (O10a), 16 values per vector; the conversion rounds to nearest even.
template <bool SA, bool SB>
void add_t(const AddArgs& a) {
  const __m512 ma = _mm512_set1_ps(a.ma), mb = _mm512_set1_ps(a.mb), c = _mm512_set1_ps(a.c);
  const __m512 lo = _mm512_set1_ps(float(a.qmin)), hi = _mm512_set1_ps(float(a.qmax));
  auto one = [&](int64_t i, __mmask16 k) {
    const __m128i ra = _mm_maskz_loadu_epi8(k, a.a + i), rb = _mm_maskz_loadu_epi8(k, a.b + i);
    const __m512 va = _mm512_cvtepi32_ps(SA ? _mm512_cvtepi8_epi32(ra) : _mm512_cvtepu8_epi32(ra));
    const __m512 vb = _mm512_cvtepi32_ps(SB ? _mm512_cvtepi8_epi32(rb) : _mm512_cvtepu8_epi32(rb));
    __m512 s = _mm512_fmadd_ps(va, ma, _mm512_fmadd_ps(vb, mb, c));
    s = _mm512_min_ps(_mm512_max_ps(s, lo), hi);
    return _mm512_cvt_roundps_epi32(s, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  };
  const bool sgn = a.qmin < 0;
  int64_t i = 0;
  for (; i + 64 <= a.n; i += 64) {
    const __m512i y[4] = {one(i, 0xffff), one(i + 16, 0xffff), one(i + 32, 0xffff),
                          one(i + 48, 0xffff)};
    store_bytes<4>(a.y + i, y, 64, sgn);
  }
  for (; i < a.n; i += 16) {
    const __mmask16 k = mask16(int(std::min<int64_t>(16, a.n - i)));
    store16(a.y + i, one(i, k), k);
  }
}

void add(const AddArgs& a) {
  if (a.a_signed)
    a.b_signed ? add_t<true, true>(a) : add_t<true, false>(a);
  else
    a.b_signed ? add_t<false, true>(a) : add_t<false, false>(a);
}

// Taps k in [lo, hi) of a window starting at `base` with dilation d that land in [0, n).
inline void valid_taps(int64_t base, int d, int k, int64_t n, int& lo, int& hi) {
  lo = base < 0 ? int((-base + d - 1) / d) : 0;
  hi = base >= n ? 0 : int(std::min<int64_t>(k, (n - 1 - base) / d + 1));
  if (hi < lo) hi = lo;
}

// Channels-last max pool (O7): 64 channels per vector, in-bounds taps only.
template <bool S>
void maxpool_t(const PoolArgs& a, int64_t r0, int64_t r1) {
  const __m512i lowest = _mm512_set1_epi8(S ? -128 : 0);
  const int64_t C = a.c, row_stride = a.w * C;
  auto vmax = [](__m512i u, __m512i v) { return S ? _mm512_max_epi8(u, v) : _mm512_max_epu8(u, v); };
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t b = r / a.oh, oh = r % a.oh;
    const int64_t hbase = oh * a.sh - a.ph;
    int i0, i1;
    valid_taps(hbase, a.dh, a.kh, a.h, i0, i1);
    const uint8_t* img = a.x + (b * a.h + hbase) * row_stride;
    uint8_t* out = a.y + r * a.ow * C;
    for (int64_t ow = 0; ow < a.ow; ++ow, out += C) {
      const int64_t wbase = ow * a.sw - a.pw;
      int j0, j1;
      valid_taps(wbase, a.dw, a.kw, a.w, j0, j1);
      const uint8_t* px = img + wbase * C;
      int64_t c0 = 0;
      for (; c0 + 64 <= C; c0 += 64) {
        __m512i acc = lowest;
        for (int i = i0; i < i1; ++i) {
          const uint8_t* p = px + int64_t(i) * a.dh * row_stride + c0;
          for (int j = j0; j < j1; ++j)
            acc = vmax(acc, _mm512_loadu_si512(p + int64_t(j) * a.dw * C));
        }
        _mm512_storeu_si512(out + c0, acc);
      }
      if (c0 < C) {
        const __mmask64 k = (__mmask64(1) << (C - c0)) - 1;
        __m512i acc = lowest;
        for (int i = i0; i < i1; ++i) {
          const uint8_t* p = px + int64_t(i) * a.dh * row_stride + c0;
          for (int j = j0; j < j1; ++j)
            acc = vmax(acc, _mm512_maskz_loadu_epi8(k, p + int64_t(j) * a.dw * C));
        }
        _mm512_mask_storeu_epi8(out + c0, k, acc);
      }
    }
  }
}

void maxpool(const PoolArgs& a, int64_t r0, int64_t r1) {
  if (a.is_signed)
    maxpool_t<true>(a, r0, r1);
  else
    maxpool_t<false>(a, r0, r1);
}

// Per-tensor quantize (Q6): the IEEE float32 quotient x / scale, NaN -> qmin, clamped to the
// integer bounds shifted by the zero point, converted rounding to nearest even; 64 values
// per store. Where the scale's reciprocal is a normal number (1/2^100 <= |scale| <= 2^100)
// the quotient is first formed as x * (1 / scale), which gives the same integer away from
// the half-integers (the bound: common.h quant_reciprocal_ok); a vector with a lane near one
// takes the division.
template <bool kReciprocal>
void quantize_t(const QuantArgs& a) {
  const __m512 s = _mm512_set1_ps(a.scale), r = _mm512_set1_ps(1.0f / a.scale);
  const __m512 lo = _mm512_set1_ps(float(a.qmin - a.zp)), hi = _mm512_set1_ps(float(a.qmax - a.zp));
  const __m512 near_tie = _mm512_set1_ps(kQuantNearTie);
  const __m512i zp = _mm512_set1_epi32(a.zp);
  auto clamped = [&](__m512 q) {  // maxps gives its second operand for NaN: lo, as MLAS
    return _mm512_min_ps(_mm512_max_ps(q, lo), hi);
  };
  auto one = [&](int64_t i, __mmask16 k) {
    const __m512 x = _mm512_maskz_loadu_ps(k, a.x + i);
    __m512 q;
    if constexpr (kReciprocal) {
      q = clamped(_mm512_mul_ps(x, r));
      const __m512 off = _mm512_abs_ps(_mm512_sub_ps(
          q, _mm512_roundscale_ps(q, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)));
      if (_mm512_cmp_ps_mask(off, near_tie, _CMP_GE_OQ) != 0) q = clamped(_mm512_div_ps(x, s));
    } else {
      q = clamped(_mm512_div_ps(x, s));
    }
    const __m512i y = _mm512_cvt_roundps_epi32(q, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return _mm512_add_epi32(y, zp);
  };
  const bool sgn = a.qmin < 0;
  int64_t i = 0;
  for (; i + 64 <= a.n; i += 64) {
    const __m512i y[4] = {one(i, 0xffff), one(i + 16, 0xffff), one(i + 32, 0xffff),
                          one(i + 48, 0xffff)};
    store_bytes<4>(a.y + i, y, 64, sgn);
  }
  for (; i < a.n; i += 16) {
    const __mmask16 k = mask16(int(std::min<int64_t>(16, a.n - i)));
    store16(a.y + i, one(i, k), k);
  }
}

void quantize(const QuantArgs& a) {
  if (quant_reciprocal_ok(a.scale))
    quantize_t<true>(a);
  else
    quantize_t<false>(a);
}

}  // namespace

const IsaTable kAvx512VnniTable = {"avx512vnni", kMr,    2 * kMr, gemm,       epilogue,
                                   dw,           dw_row, gemm_fused, add,
                                   maxpool,      quantize,   dw_quad,
                                   nullptr,      nullptr,    nullptr,  nullptr,
                                   nullptr,      nullptr,    true};

// The members the amx path shares (common.h).
void avx512_epilogue(const int32_t* acc, int n, const Epilogue& e, int c0, int32_t rowsum,
                     uint8_t* out) {
  epilogue(acc, n, e, c0, rowsum, out);
}
void avx512_fused_rows(const int32_t* acc, int64_t lda, int rows, const GemmOut& o) {
  if (o.e->fixedpoint)
    fused_rows_t<2>(acc, lda, rows, o);
  else if (o.e->saturate_only)
    fused_rows_t<3>(acc, lda, rows, o);
  else
    fused_rows_t<1>(acc, lda, rows, o);
}
void avx512_dw(const DwArgs& a, const Epilogue& e) { dw(a, e); }
void avx512_dw_row(int32_t* dst, const DwRowArgs& a) { dw_row(dst, a); }
void avx512_add(const AddArgs& a) { add(a); }
void avx512_maxpool(const PoolArgs& a, int64_t r0, int64_t r1) { maxpool(a, r0, r1); }
void avx512_quantize(const QuantArgs& a) { quantize(a); }
void avx512_dw_quad(const DwQuadArgs& a, const Epilogue& e) { dw_quad(a, e); }

// Peak loops: 12 independent accumulators in fixed registers, written in assembly so that
// the compiler can neither spill nor fold them; return the operations performed.
double peak_vnni512(int64_t iters) {
  const __m512i a = _mm512_set1_epi32(0x01010101), b = _mm512_set1_epi32(0x01ff01ff);
  int64_t n = iters;
  __asm__ volatile(
      "vpxord %%zmm0, %%zmm0, %%zmm0\n"
      "vpxord %%zmm1, %%zmm1, %%zmm1\n"
      "vpxord %%zmm2, %%zmm2, %%zmm2\n"
      "vpxord %%zmm3, %%zmm3, %%zmm3\n"
      "vpxord %%zmm4, %%zmm4, %%zmm4\n"
      "vpxord %%zmm5, %%zmm5, %%zmm5\n"
      "vpxord %%zmm6, %%zmm6, %%zmm6\n"
      "vpxord %%zmm7, %%zmm7, %%zmm7\n"
      "vpxord %%zmm8, %%zmm8, %%zmm8\n"
      "vpxord %%zmm9, %%zmm9, %%zmm9\n"
      "vpxord %%zmm10, %%zmm10, %%zmm10\n"
      "vpxord %%zmm11, %%zmm11, %%zmm11\n"
      "1:\n"
      "vpdpbusd %[b], %[a], %%zmm0\n"
      "vpdpbusd %[b], %[a], %%zmm1\n"
      "vpdpbusd %[b], %[a], %%zmm2\n"
      "vpdpbusd %[b], %[a], %%zmm3\n"
      "vpdpbusd %[b], %[a], %%zmm4\n"
      "vpdpbusd %[b], %[a], %%zmm5\n"
      "vpdpbusd %[b], %[a], %%zmm6\n"
      "vpdpbusd %[b], %[a], %%zmm7\n"
      "vpdpbusd %[b], %[a], %%zmm8\n"
      "vpdpbusd %[b], %[a], %%zmm9\n"
      "vpdpbusd %[b], %[a], %%zmm10\n"
      "vpdpbusd %[b], %[a], %%zmm11\n"
      "dec %[n]\n"
      "jnz 1b\n"
      : [n] "+r"(n)
      : [a] "v"(a), [b] "v"(b)
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "cc");
  return static_cast<double>(iters) * 12 * 64 * 2;
}

double peak_vnni256(int64_t iters) {
  const __m256i a = _mm256_set1_epi32(0x01010101), b = _mm256_set1_epi32(0x01ff01ff);
  int64_t n = iters;
  __asm__ volatile(
      "vpxord %%zmm0, %%zmm0, %%zmm0\n"
      "vpxord %%zmm1, %%zmm1, %%zmm1\n"
      "vpxord %%zmm2, %%zmm2, %%zmm2\n"
      "vpxord %%zmm3, %%zmm3, %%zmm3\n"
      "vpxord %%zmm4, %%zmm4, %%zmm4\n"
      "vpxord %%zmm5, %%zmm5, %%zmm5\n"
      "vpxord %%zmm6, %%zmm6, %%zmm6\n"
      "vpxord %%zmm7, %%zmm7, %%zmm7\n"
      "vpxord %%zmm8, %%zmm8, %%zmm8\n"
      "vpxord %%zmm9, %%zmm9, %%zmm9\n"
      "vpxord %%zmm10, %%zmm10, %%zmm10\n"
      "vpxord %%zmm11, %%zmm11, %%zmm11\n"
      "1:\n"
      "vpdpbusd %[b], %[a], %%ymm0\n"
      "vpdpbusd %[b], %[a], %%ymm1\n"
      "vpdpbusd %[b], %[a], %%ymm2\n"
      "vpdpbusd %[b], %[a], %%ymm3\n"
      "vpdpbusd %[b], %[a], %%ymm4\n"
      "vpdpbusd %[b], %[a], %%ymm5\n"
      "vpdpbusd %[b], %[a], %%ymm6\n"
      "vpdpbusd %[b], %[a], %%ymm7\n"
      "vpdpbusd %[b], %[a], %%ymm8\n"
      "vpdpbusd %[b], %[a], %%ymm9\n"
      "vpdpbusd %[b], %[a], %%ymm10\n"
      "vpdpbusd %[b], %[a], %%ymm11\n"
      "dec %[n]\n"
      "jnz 1b\n"
      : [n] "+r"(n)
      : [a] "v"(a), [b] "v"(b)
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "cc");
  return static_cast<double>(iters) * 12 * 32 * 2;
}

double peak_wssd512(int64_t iters) {
  const __m512i a = _mm512_set1_epi32(0x00010001), b = _mm512_set1_epi32(0x0001ffff);
  int64_t n = iters;
  __asm__ volatile(
      "vpxord %%zmm0, %%zmm0, %%zmm0\n"
      "vpxord %%zmm1, %%zmm1, %%zmm1\n"
      "vpxord %%zmm2, %%zmm2, %%zmm2\n"
      "vpxord %%zmm3, %%zmm3, %%zmm3\n"
      "vpxord %%zmm4, %%zmm4, %%zmm4\n"
      "vpxord %%zmm5, %%zmm5, %%zmm5\n"
      "vpxord %%zmm6, %%zmm6, %%zmm6\n"
      "vpxord %%zmm7, %%zmm7, %%zmm7\n"
      "vpxord %%zmm8, %%zmm8, %%zmm8\n"
      "vpxord %%zmm9, %%zmm9, %%zmm9\n"
      "vpxord %%zmm10, %%zmm10, %%zmm10\n"
      "vpxord %%zmm11, %%zmm11, %%zmm11\n"
      "1:\n"
      "vpdpwssd %[b], %[a], %%zmm0\n"
      "vpdpwssd %[b], %[a], %%zmm1\n"
      "vpdpwssd %[b], %[a], %%zmm2\n"
      "vpdpwssd %[b], %[a], %%zmm3\n"
      "vpdpwssd %[b], %[a], %%zmm4\n"
      "vpdpwssd %[b], %[a], %%zmm5\n"
      "vpdpwssd %[b], %[a], %%zmm6\n"
      "vpdpwssd %[b], %[a], %%zmm7\n"
      "vpdpwssd %[b], %[a], %%zmm8\n"
      "vpdpwssd %[b], %[a], %%zmm9\n"
      "vpdpwssd %[b], %[a], %%zmm10\n"
      "vpdpwssd %[b], %[a], %%zmm11\n"
      "dec %[n]\n"
      "jnz 1b\n"
      : [n] "+r"(n)
      : [a] "v"(a), [b] "v"(b)
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "cc");
  return static_cast<double>(iters) * 12 * 32 * 2;
}

double peak_fma512(int64_t iters) {
  const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(1e-3f);
  int64_t n = iters;
  __asm__ volatile(
      "vpxord %%zmm0, %%zmm0, %%zmm0\n"
      "vpxord %%zmm1, %%zmm1, %%zmm1\n"
      "vpxord %%zmm2, %%zmm2, %%zmm2\n"
      "vpxord %%zmm3, %%zmm3, %%zmm3\n"
      "vpxord %%zmm4, %%zmm4, %%zmm4\n"
      "vpxord %%zmm5, %%zmm5, %%zmm5\n"
      "vpxord %%zmm6, %%zmm6, %%zmm6\n"
      "vpxord %%zmm7, %%zmm7, %%zmm7\n"
      "vpxord %%zmm8, %%zmm8, %%zmm8\n"
      "vpxord %%zmm9, %%zmm9, %%zmm9\n"
      "vpxord %%zmm10, %%zmm10, %%zmm10\n"
      "vpxord %%zmm11, %%zmm11, %%zmm11\n"
      "1:\n"
      "vfmadd231ps %[b], %[a], %%zmm0\n"
      "vfmadd231ps %[b], %[a], %%zmm1\n"
      "vfmadd231ps %[b], %[a], %%zmm2\n"
      "vfmadd231ps %[b], %[a], %%zmm3\n"
      "vfmadd231ps %[b], %[a], %%zmm4\n"
      "vfmadd231ps %[b], %[a], %%zmm5\n"
      "vfmadd231ps %[b], %[a], %%zmm6\n"
      "vfmadd231ps %[b], %[a], %%zmm7\n"
      "vfmadd231ps %[b], %[a], %%zmm8\n"
      "vfmadd231ps %[b], %[a], %%zmm9\n"
      "vfmadd231ps %[b], %[a], %%zmm10\n"
      "vfmadd231ps %[b], %[a], %%zmm11\n"
      "dec %[n]\n"
      "jnz 1b\n"
      : [n] "+r"(n)
      : [a] "v"(a), [b] "v"(b)
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "cc");
  return static_cast<double>(iters) * 12 * 16 * 2;
}

double peak_fma256(int64_t iters) {
  const __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(1e-3f);
  int64_t n = iters;
  __asm__ volatile(
      "vpxord %%zmm0, %%zmm0, %%zmm0\n"
      "vpxord %%zmm1, %%zmm1, %%zmm1\n"
      "vpxord %%zmm2, %%zmm2, %%zmm2\n"
      "vpxord %%zmm3, %%zmm3, %%zmm3\n"
      "vpxord %%zmm4, %%zmm4, %%zmm4\n"
      "vpxord %%zmm5, %%zmm5, %%zmm5\n"
      "vpxord %%zmm6, %%zmm6, %%zmm6\n"
      "vpxord %%zmm7, %%zmm7, %%zmm7\n"
      "vpxord %%zmm8, %%zmm8, %%zmm8\n"
      "vpxord %%zmm9, %%zmm9, %%zmm9\n"
      "vpxord %%zmm10, %%zmm10, %%zmm10\n"
      "vpxord %%zmm11, %%zmm11, %%zmm11\n"
      "1:\n"
      "vfmadd231ps %[b], %[a], %%ymm0\n"
      "vfmadd231ps %[b], %[a], %%ymm1\n"
      "vfmadd231ps %[b], %[a], %%ymm2\n"
      "vfmadd231ps %[b], %[a], %%ymm3\n"
      "vfmadd231ps %[b], %[a], %%ymm4\n"
      "vfmadd231ps %[b], %[a], %%ymm5\n"
      "vfmadd231ps %[b], %[a], %%ymm6\n"
      "vfmadd231ps %[b], %[a], %%ymm7\n"
      "vfmadd231ps %[b], %[a], %%ymm8\n"
      "vfmadd231ps %[b], %[a], %%ymm9\n"
      "vfmadd231ps %[b], %[a], %%ymm10\n"
      "vfmadd231ps %[b], %[a], %%ymm11\n"
      "dec %[n]\n"
      "jnz 1b\n"
      : [n] "+r"(n)
      : [a] "v"(a), [b] "v"(b)
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "cc");
  return static_cast<double>(iters) * 12 * 8 * 2;
}

}  // namespace lowp
