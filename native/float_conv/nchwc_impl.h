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

constexpr int kPositions = 8;  // output columns in flight (independent fma chains)

// Up to kPositions output columns ox0.. of one output row: the partial sums of the blocks of
// input channels of group `g` for output lanes [mb * 16, mb * 16 + 16), combined into
// total[p]. Each column keeps its own chains, in nchwc.h's order.
inline void columns(const ConvArgs& a, const float* xn, int64_t g, int64_t mb, int64_t oy,
                    int64_t ox0, int np, float (*total)[kLanes]) {
  const int64_t cg = a.c / a.groups;
  const float* wg = a.wp + ((g * ((a.m / a.groups + kLanes - 1) / kLanes) + mb) * cg) *
                               a.kh * a.kw * kLanes;
  const int64_t step = a.kind == kPointwise ? 128 : (a.kind == kNchw ? 1 : a.block);
  const int64_t iy0 = oy * a.sh - a.ph;
  bool first = true;
  for (int64_t c0 = 0; c0 < cg; c0 += step) {
    const int64_t c1 = std::min(cg, c0 + step);
    float acc[kPositions][kLanes] = {};
    for (int ky = 0; ky < a.kh; ++ky) {
      const int64_t iy = iy0 + int64_t(ky) * a.dh;
      if (iy < 0 || iy >= a.h) continue;
      for (int kx = 0; kx < a.kw; ++kx) {
        int64_t ix[kPositions];
        bool inside[kPositions];
        for (int p = 0; p < np; ++p) {
          ix[p] = (ox0 + p) * a.sw - a.pw + int64_t(kx) * a.dw;
          inside[p] = ix[p] >= 0 && ix[p] < a.w;
        }
        for (int64_t c = c0; c < c1; ++c) {
          const float* row = xn + ((g * cg + c) * a.h + iy) * a.w;
          const float* wv = wg + ((c * a.kh + ky) * a.kw + kx) * kLanes;
          for (int p = 0; p < np; ++p)
            if (inside[p]) fma_lanes(acc[p], row[ix[p]], wv);
        }
      }
    }
    for (int p = 0; p < np; ++p) {
      if (first) {
        std::copy(acc[p], acc[p] + kLanes, total[p]);
      } else {
        for (int j = 0; j < kLanes; ++j) total[p][j] = acc[p][j] + total[p][j];
      }
    }
    first = false;
  }
}

}  // namespace

void LOWP_FCONV_ROWS(const ConvArgs& a, int64_t row0, int64_t row1) {
  const int64_t mg = a.m / a.groups;
  const int64_t mblocks = (mg + kLanes - 1) / kLanes;
  const int64_t osize = a.oh * a.ow;
  float total[kPositions][kLanes];
  for (int64_t row = row0; row < row1; ++row) {
    const int64_t ni = row / a.oh, oy = row % a.oh;
    const float* xn = a.x + ni * a.c * a.h * a.w;
    float* yn = a.y + ni * a.m * osize;
    for (int64_t g = 0; g < a.groups; ++g) {
      for (int64_t mb = 0; mb < mblocks; ++mb) {
        const int64_t lanes = std::min<int64_t>(kLanes, mg - mb * kLanes);
        for (int64_t ox = 0; ox < a.ow; ox += kPositions) {
          const int np = int(std::min<int64_t>(kPositions, a.ow - ox));
          columns(a, xn, g, mb, oy, ox, np, total);
          for (int p = 0; p < np; ++p) {
            for (int64_t j = 0; j < lanes; ++j) {
              const int64_t mo = g * mg + mb * kLanes + j;
              float v = total[p][j];
              if (a.bias != nullptr) v = v + a.bias[mo];
              yn[mo * osize + oy * a.ow + ox + p] = v;
            }
          }
        }
      }
    }
  }
}

}  // namespace lowp_fconv
