// Microkernel helpers: the scalar requantization shared by every ISA file (fixedpoint.py rules).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "common.h"

namespace lowp {
namespace {  // internal linkage: each ISA translation unit keeps its own copy

inline int32_t load_i32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// (R2): clamp(rint(float32(acc) * M) + zp); clamping before rounding is equivalent because
// the bounds are integers, and keeps the float -> int conversion in range.
inline int32_t requant_float(int32_t v, float scale, const Epilogue& e) {
  float p = static_cast<float>(v) * scale;
  const float lo = static_cast<float>(e.qmin - e.zp), hi = static_cast<float>(e.qmax - e.zp);
  p = p < lo ? lo : (p > hi ? hi : p);
  return static_cast<int32_t>(std::nearbyint(p)) + e.zp;
}

// (R4): gemmlowp SaturatingRoundingDoublingHighMul + RoundingDivideByPOT, in int64.
inline int32_t requant_fixed(int32_t v, int32_t mult, int32_t l, int32_t r, const Epilogue& e) {
  int64_t x = static_cast<int64_t>(v) * (int64_t{1} << l);
  x = x < INT32_MIN ? INT32_MIN : (x > INT32_MAX ? INT32_MAX : x);
  const int64_t ab = x * static_cast<int64_t>(mult);
  const int64_t num = ab + (ab >= 0 ? (int64_t{1} << 30) : 1 - (int64_t{1} << 30));
  const int64_t q = num >= 0 ? (num >> 31) : -((-num) >> 31);
  const int64_t mask = (int64_t{1} << r) - 1;
  const int64_t thr = (mask >> 1) + (q < 0 ? 1 : 0);
  int64_t y = (q >> r) + ((q & mask) > thr ? 1 : 0) + e.zp;
  y = y < e.qmin ? e.qmin : (y > e.qmax ? e.qmax : y);
  return static_cast<int32_t>(y);
}

// Bias, zero-point correction (wrapping int32) and requantization of one accumulator.
inline uint8_t finish_one(int32_t acc, const Epilogue& e, int c, int32_t rowsum) {
  uint32_t v = static_cast<uint32_t>(acc) + static_cast<uint32_t>(e.bias[c]);
  if (e.zw) v -= static_cast<uint32_t>(e.zw[c]) * static_cast<uint32_t>(rowsum);
  const int32_t s = static_cast<int32_t>(v);
  const int32_t y = e.fixedpoint ? requant_fixed(s, e.mult[c], e.lshift[c], e.rshift[c], e)
                                 : requant_float(s, e.scale[c], e);
  return static_cast<uint8_t>(y);
}

inline void epilogue_scalar(const int32_t* acc, int n, const Epilogue& e, int c0,
                            int32_t rowsum, uint8_t* out) {
  for (int j = 0; j < n; ++j) out[j] = finish_one(acc[j], e, c0 + j, rowsum);
}

// Portable GEMM microkernel (the reference for every SIMD one); wraps modulo 2^32.
inline void gemm_scalar(int mr, int wp, const uint8_t* const* a, const int64_t* tap_off,
                        int ntaps, int kc4, const int8_t* b, int32_t* c) {
  uint32_t acc[8][kPanel];
  for (int i = 0; i < mr; ++i)
    for (int j = 0; j < wp; ++j) acc[i][j] = 0;
  for (int t = 0; t < ntaps; ++t) {
    for (int k4 = 0; k4 < kc4; ++k4, b += 4 * wp) {
      for (int i = 0; i < mr; ++i) {
        const uint8_t* ap = a[i] + tap_off[t] + 4 * k4;
        const int32_t a0 = ap[0], a1 = ap[1], a2 = ap[2], a3 = ap[3];
        for (int j = 0; j < wp; ++j) {
          const int8_t* bj = b + 4 * j;
          acc[i][j] += static_cast<uint32_t>(a0 * bj[0] + a1 * bj[1] + a2 * bj[2] + a3 * bj[3]);
        }
      }
    }
  }
  for (int i = 0; i < mr; ++i)
    for (int j = 0; j < wp; ++j) c[i * kPanel + j] = static_cast<int32_t>(acc[i][j]);
}

// Portable depthwise row on packed int16 pairs (x - x_zp, w - w_zp): exact, no folding.
inline void dw_scalar(const DwArgs& a, const Epilogue& e) {
  for (int o = 0; o < a.ow; ++o) {
    for (int ch = 0; ch < a.c; ++ch) {
      uint32_t acc = 0;
      for (int r = 0; r < a.nrows; ++r) {
        const int32_t* row = a.rows[r] + o * a.ow_step + ch;
        const int32_t* w = a.w + static_cast<int64_t>(r) * a.npairs * a.cp + ch;
        for (int j = 0; j < a.npairs; ++j) {
          const int32_t xv = row[j * a.pair_step], wv = w[j * a.cp];
          const int32_t xl = static_cast<int16_t>(xv & 0xffff), xh = xv >> 16;
          const int32_t wl = static_cast<int16_t>(wv & 0xffff), wh = wv >> 16;
          acc += static_cast<uint32_t>(xl * wl + xh * wh);
        }
      }
      a.out[o * a.c + ch] = finish_one(static_cast<int32_t>(acc), e, ch, 0);
    }
  }
}

inline int32_t pack_pair(int32_t lo, int32_t hi) {
  return static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint16_t>(lo)) |
                              (static_cast<uint32_t>(static_cast<uint16_t>(hi)) << 16));
}

inline void dw_row_scalar(int32_t* dst, const DwRowArgs& a) {
  for (int64_t iw = 0, q = 0; iw < a.wp; iw += a.step, ++q) {
    int32_t* o = dst + q * a.cp;
    const int64_t s0 = iw - a.pw0, s1 = s0 + a.dil;
    const bool in0 = s0 >= 0 && s0 < a.w, in1 = s1 >= 0 && s1 < a.w;
    const uint8_t* p0 = a.src + s0 * a.c;
    const uint8_t* p1 = a.src + s1 * a.c;
    for (int ch = 0; ch < a.c; ++ch) {
      const int32_t x0 = in0 ? (a.x_signed ? int8_t(p0[ch]) : p0[ch]) - a.zp : 0;
      const int32_t x1 = in1 ? (a.x_signed ? int8_t(p1[ch]) : p1[ch]) - a.zp : 0;
      o[ch] = pack_pair(x0, x1);
    }
    for (int ch = a.c; ch < a.cp; ++ch) o[ch] = 0;
  }
}

}  // namespace
}  // namespace lowp
