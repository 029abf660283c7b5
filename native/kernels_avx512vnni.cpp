// Microkernels, AVX-512 VNNI path (vpdpbusd / vpdpwssd on zmm); compiled with its own flags.
#include <immintrin.h>


#include "common.h"
#include "requant.h"

namespace lowp {
namespace {

constexpr int kMr = 6;

// mr x (16*NV) tile: 4 k at a time, one broadcast of 4 activation bytes per row.
template <int MR, int NV>
void gemm_tile(const uint8_t* const* a, const int64_t* tap_off, int ntaps, int kc4,
               const int8_t* b, int wp, int32_t* c) {
  __m512i acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_si512();
  const int64_t bstep = 4 * static_cast<int64_t>(wp);
  for (int t = 0; t < ntaps; ++t) {
    const uint8_t* ap[MR];
    for (int i = 0; i < MR; ++i) ap[i] = a[i] + tap_off[t];
    for (int k4 = 0; k4 < kc4; ++k4) {
      __m512i bv[NV];
      for (int v = 0; v < NV; ++v) bv[v] = _mm512_loadu_si512(b + 64 * v);
      b += bstep;
      for (int i = 0; i < MR; ++i) {
        const __m512i av = _mm512_set1_epi32(load_i32(ap[i] + 4 * k4));
        for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_dpbusd_epi32(acc[i][v], av, bv[v]);
      }
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) _mm512_storeu_si512(c + i * kPanel + 16 * v, acc[i][v]);
}

template <int MR>
void gemm_rows(int wp, const uint8_t* const* a, const int64_t* tap_off, int ntaps, int kc4,
               const int8_t* b, int32_t* c) {
  switch (wp / 16) {
    case 1: gemm_tile<MR, 1>(a, tap_off, ntaps, kc4, b, wp, c); break;
    case 2: gemm_tile<MR, 2>(a, tap_off, ntaps, kc4, b, wp, c); break;
    case 3: gemm_tile<MR, 3>(a, tap_off, ntaps, kc4, b, wp, c); break;
    default: gemm_tile<MR, 4>(a, tap_off, ntaps, kc4, b, wp, c); break;
  }
}

void gemm(int mr, int wp, const uint8_t* const* a, const int64_t* tap_off, int ntaps, int kc4,
          const int8_t* b, int32_t* c) {
  switch (mr) {
    case 1: gemm_rows<1>(wp, a, tap_off, ntaps, kc4, b, c); break;
    case 2: gemm_rows<2>(wp, a, tap_off, ntaps, kc4, b, c); break;
    case 3: gemm_rows<3>(wp, a, tap_off, ntaps, kc4, b, c); break;
    case 4: gemm_rows<4>(wp, a, tap_off, ntaps, kc4, b, c); break;
    case 5: gemm_rows<5>(wp, a, tap_off, ntaps, kc4, b, c); break;
    default: gemm_rows<6>(wp, a, tap_off, ntaps, kc4, b, c); break;
  }
}

// 16 lanes of (R2) or (R4); returns the clamped int32 outputs.
inline __m512i requant16(__m512i v, const Epilogue& e, int c) {
  if (!e.fixedpoint) {
    __m512 p = _mm512_mul_ps(_mm512_cvtepi32_ps(v), _mm512_loadu_ps(e.scale + c));
    p = _mm512_max_ps(p, _mm512_set1_ps(static_cast<float>(e.qmin - e.zp)));
    p = _mm512_min_ps(p, _mm512_set1_ps(static_cast<float>(e.qmax - e.zp)));
    const __m512i r = _mm512_cvt_roundps_epi32(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return _mm512_add_epi32(r, _mm512_set1_epi32(e.zp));
  }
  const __m512i m32 = _mm512_loadu_si512(e.mult + c);
  const __m512i l32 = _mm512_loadu_si512(e.lshift + c);
  const __m512i r32 = _mm512_loadu_si512(e.rshift + c);
  __m256i half[2];
  for (int h = 0; h < 2; ++h) {
    const __m256i vh = h ? _mm512_extracti64x4_epi64(v, 1) : _mm512_castsi512_si256(v);
    const __m256i mh = h ? _mm512_extracti64x4_epi64(m32, 1) : _mm512_castsi512_si256(m32);
    const __m256i lh = h ? _mm512_extracti64x4_epi64(l32, 1) : _mm512_castsi512_si256(l32);
    const __m256i rh = h ? _mm512_extracti64x4_epi64(r32, 1) : _mm512_castsi512_si256(r32);
    __m512i x = _mm512_sllv_epi64(_mm512_cvtepi32_epi64(vh), _mm512_cvtepi32_epi64(lh));
    x = _mm512_max_epi64(x, _mm512_set1_epi64(INT32_MIN));
    x = _mm512_min_epi64(x, _mm512_set1_epi64(INT32_MAX));
    const __m512i ab = _mm512_mul_epi32(x, _mm512_cvtepi32_epi64(mh));
    const __mmask8 pos = _mm512_cmpge_epi64_mask(ab, _mm512_setzero_si512());
    const __m512i num = _mm512_add_epi64(
        ab, _mm512_mask_blend_epi64(pos, _mm512_set1_epi64(1 - (int64_t{1} << 30)),
                                    _mm512_set1_epi64(int64_t{1} << 30)));
    const __mmask8 npos = _mm512_cmpge_epi64_mask(num, _mm512_setzero_si512());
    const __m512i qa = _mm512_srai_epi64(num, 31);
    const __m512i qb = _mm512_sub_epi64(_mm512_setzero_si512(),
                                        _mm512_srai_epi64(_mm512_sub_epi64(_mm512_setzero_si512(), num), 31));
    const __m512i q = _mm512_mask_blend_epi64(npos, qb, qa);
    const __m512i r = _mm512_cvtepi32_epi64(rh);
    const __m512i mask = _mm512_sub_epi64(_mm512_sllv_epi64(_mm512_set1_epi64(1), r),
                                          _mm512_set1_epi64(1));
    const __mmask8 neg = _mm512_cmplt_epi64_mask(q, _mm512_setzero_si512());
    const __m512i thr = _mm512_mask_add_epi64(_mm512_srli_epi64(mask, 1), neg,
                                              _mm512_srli_epi64(mask, 1), _mm512_set1_epi64(1));
    const __mmask8 up = _mm512_cmpgt_epi64_mask(_mm512_and_si512(q, mask), thr);
    __m512i y = _mm512_mask_add_epi64(_mm512_srav_epi64(q, r), up, _mm512_srav_epi64(q, r),
                                      _mm512_set1_epi64(1));
    y = _mm512_add_epi64(y, _mm512_set1_epi64(e.zp));
    y = _mm512_max_epi64(y, _mm512_set1_epi64(e.qmin));
    y = _mm512_min_epi64(y, _mm512_set1_epi64(e.qmax));
    half[h] = _mm512_cvtepi64_epi32(y);
  }
  return _mm512_inserti64x4(_mm512_castsi256_si512(half[0]), half[1], 1);
}

inline void store16(uint8_t* out, __m512i y, int n) {
  const __mmask16 k = n >= 16 ? static_cast<__mmask16>(0xffff)
                              : static_cast<__mmask16>((1u << n) - 1);
  _mm_mask_storeu_epi8(out, k, _mm512_cvtepi32_epi8(y));
}

void epilogue(const int32_t* acc, int n, const Epilogue& e, int c0, int32_t rowsum,
              uint8_t* out) {
  const __m512i rs = _mm512_set1_epi32(rowsum);
  for (int j = 0; j < n; j += 16) {
    __m512i v = _mm512_add_epi32(_mm512_loadu_si512(acc + j), _mm512_loadu_si512(e.bias + c0 + j));
    if (e.zw) v = _mm512_sub_epi32(v, _mm512_mullo_epi32(_mm512_loadu_si512(e.zw + c0 + j), rs));
    store16(out + j, requant16(v, e, c0 + j), n - j);
  }
}

// Depthwise: 16 channels per vector, NR rows of NP tap pairs, 4 output pixels interleaved.
template <int NR, int NP>
void dw_tile(const DwArgs& a, const Epilogue& e) {
  const int nr = NR ? NR : a.nrows, np = NP ? NP : a.npairs;
  constexpr int kKeep = (NR * NP > 0 && NR * NP <= 18) ? NR * NP : 1;
  for (int cb = 0; cb < a.c; cb += 16) {
    __m512i wk[kKeep];
    if (NR * NP > 0 && NR * NP <= 18)
      for (int q = 0; q < kKeep; ++q) wk[q] = _mm512_loadu_si512(a.w + static_cast<int64_t>(q) * a.cp + cb);
    const int nrem = a.c - cb;
    int o = 0;
    for (; o + 4 <= a.ow; o += 4) {
      __m512i acc[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                        _mm512_setzero_si512()};
      for (int r = 0; r < nr; ++r) {
        const int32_t* row = a.rows[r] + o * a.ow_step + cb;
        for (int j = 0; j < np; ++j) {
          const int q = r * np + j;
          const __m512i w = (NR * NP > 0 && NR * NP <= 18)
                                ? wk[q < kKeep ? q : 0]
                                : _mm512_loadu_si512(a.w + static_cast<int64_t>(q) * a.cp + cb);
          for (int u = 0; u < 4; ++u)
            acc[u] = _mm512_dpwssd_epi32(
                acc[u], _mm512_loadu_si512(row + u * a.ow_step + j * a.pair_step), w);
        }
      }
      for (int u = 0; u < 4; ++u) {
        const __m512i v = _mm512_add_epi32(acc[u], _mm512_loadu_si512(e.bias + cb));
        store16(a.out + static_cast<int64_t>(o + u) * a.c + cb, requant16(v, e, cb), nrem);
      }
    }
    for (; o < a.ow; ++o) {
      __m512i acc = _mm512_setzero_si512();
      for (int r = 0; r < nr; ++r) {
        const int32_t* row = a.rows[r] + o * a.ow_step + cb;
        for (int j = 0; j < np; ++j) {
          const __m512i w = _mm512_loadu_si512(a.w + static_cast<int64_t>(r * np + j) * a.cp + cb);
          acc = _mm512_dpwssd_epi32(acc, _mm512_loadu_si512(row + j * a.pair_step), w);
        }
      }
      const __m512i v = _mm512_add_epi32(acc, _mm512_loadu_si512(e.bias + cb));
      store16(a.out + static_cast<int64_t>(o) * a.c + cb, requant16(v, e, cb), nrem);
    }
  }
}

void dw(const DwArgs& a, const Epilogue& e) {
  if (a.nrows == 3 && a.npairs == 2) return dw_tile<3, 2>(a, e);
  if (a.nrows == 9 && a.npairs == 2) return dw_tile<9, 2>(a, e);
  dw_tile<0, 0>(a, e);
}

// 16 channels of one input pixel minus the zero point; 0 outside the row or past c.
inline __m512i dw_load16(const DwRowArgs& a, int64_t s, int cb) {
  const int n = a.c - cb;
  if (s < 0 || s >= a.w || n <= 0) return _mm512_setzero_si512();
  const __mmask16 k = n >= 16 ? static_cast<__mmask16>(0xffff)
                              : static_cast<__mmask16>((1u << n) - 1);
  const __m128i b = _mm_maskz_loadu_epi8(k, a.src + s * a.c + cb);
  const __m512i v = a.x_signed ? _mm512_cvtepi8_epi32(b) : _mm512_cvtepu8_epi32(b);
  return _mm512_maskz_sub_epi32(k, v, _mm512_set1_epi32(a.zp));
}

void dw_row(int32_t* dst, const DwRowArgs& a) {
  const __m512i low = _mm512_set1_epi32(0xffff);
  for (int64_t iw = 0; iw < a.wp; ++iw) {
    int32_t* o = dst + iw * a.cp;
    const int64_t s0 = iw - a.pw0, s1 = s0 + a.dil;
    for (int cb = 0; cb < a.cp; cb += 16) {
      const __m512i v = _mm512_or_si512(_mm512_and_si512(dw_load16(a, s0, cb), low),
                                        _mm512_slli_epi32(dw_load16(a, s1, cb), 16));
      _mm512_storeu_si512(o + cb, v);
    }
  }
}

}  // namespace

const IsaTable kAvx512VnniTable = {"avx512vnni", kMr, gemm, epilogue, dw, dw_row};

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
