// The one implementation of nchwc.h's order, compiled once per instruction set (the
// including file names the function). Plain loops over 16 output-channel lanes with
// std::fma: the compiler vectorizes them where the target has FMA; the result is the same
// everywhere (each lane is one IEEE fused multiply-add chain).
#include <algorithm>
#include <cmath>

#include "nchwc.h"

namespace lowp_fconv {
namespace {

inline void fma_lanes(float* acc, float xv, const float* wv) {
  for (int j = 0; j < kLanes; ++j) acc[j] = std::fma(xv, wv[j], acc[j]);
}

// One output position: the partial sums of the blocks of input channels [c0, c1) of group
// `g` for output lanes [mb * 16, mb * 16 + 16), combined into `total`.
inline void position(const ConvArgs& a, const float* xn, int64_t g, int64_t mb, int64_t oy,
                     int64_t ox, float* total) {
  const int64_t cg = a.c / a.groups;
  const float* wg = a.wp + ((g * ((a.m / a.groups + kLanes - 1) / kLanes) + mb) * cg) *
                               a.kh * a.kw * kLanes;
  const int64_t step = a.kind == kPointwise ? 128 : (a.kind == kNchw ? 1 : a.block);
  const int64_t iy0 = oy * a.sh - a.ph, ix0 = ox * a.sw - a.pw;
  bool first = true;
  for (int64_t c0 = 0; c0 < cg; c0 += step) {
    const int64_t c1 = std::min(cg, c0 + step);
    float acc[kLanes] = {};
    for (int ky = 0; ky < a.kh; ++ky) {
      const int64_t iy = iy0 + int64_t(ky) * a.dh;
      if (iy < 0 || iy >= a.h) continue;
      for (int kx = 0; kx < a.kw; ++kx) {
        const int64_t ix = ix0 + int64_t(kx) * a.dw;
        if (ix < 0 || ix >= a.w) continue;
        for (int64_t c = c0; c < c1; ++c) {
          const float xv = xn[((g * cg + c) * a.h + iy) * a.w + ix];
          fma_lanes(acc, xv, wg + ((c * a.kh + ky) * a.kw + kx) * kLanes);
        }
      }
    }
    if (first) {
      std::copy(acc, acc + kLanes, total);
      first = false;
    } else {
      for (int j = 0; j < kLanes; ++j) total[j] = acc[j] + total[j];
    }
  }
}

}  // namespace

void LOWP_FCONV_ROWS(const ConvArgs& a, int64_t row0, int64_t row1) {
  const int64_t mg = a.m / a.groups;
  const int64_t mblocks = (mg + kLanes - 1) / kLanes;
  const int64_t osize = a.oh * a.ow;
  float total[kLanes];
  for (int64_t row = row0; row < row1; ++row) {
    const int64_t ni = row / a.oh, oy = row % a.oh;
    const float* xn = a.x + ni * a.c * a.h * a.w;
    float* yn = a.y + ni * a.m * osize;
    for (int64_t g = 0; g < a.groups; ++g) {
      for (int64_t mb = 0; mb < mblocks; ++mb) {
        const int64_t lanes = std::min<int64_t>(kLanes, mg - mb * kLanes);
        for (int64_t ox = 0; ox < a.ow; ++ox) {
          position(a, xn, g, mb, oy, ox, total);
          for (int64_t j = 0; j < lanes; ++j) {
            const int64_t mo = g * mg + mb * kLanes + j;
            float v = total[j];
            if (a.bias != nullptr) v = v + a.bias[mo];
            yn[mo * osize + oy * a.ow + ox] = v;
          }
        }
      }
    }
  }
}

}  // namespace lowp_fconv
