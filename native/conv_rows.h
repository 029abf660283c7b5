// ConvInteger's windows as rows (im2col of 8-bit data), shared by the conv_integer_rows
// binding and IntMatMul::run_conv.
#pragma once
#include <cstdint>
#include <cstring>

namespace lowp {

// The geometry of a 2-D convolution of (n, c, h, w) data by a kh x kw window: strides,
// dilations, the padding before each axis (pt, pl) and the output size (oh, ow).
struct ConvRowsGeometry {
  int n = 0, c = 0, h = 0, w = 0, kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1, pt = 0,
      pl = 0, oh = 0, ow = 0;
};

// The window of output pixel (oy, ox) of one image as c kh kw bytes at dst, column
// (ci, ky, kx); a tap outside the image (the padding) reads `z`.
inline void conv_window_row(const uint8_t* image, const ConvRowsGeometry& g, int oy, int ox,
                            uint8_t z, uint8_t* dst) {
  const int h = g.h, w = g.w, kh = g.kh, kw = g.kw, dh = g.dh, dw = g.dw;
  const size_t plane_size = size_t(h) * w;
  const int y0 = oy * g.sh - g.pt, x0 = ox * g.sw - g.pl;
  if (kh == 1 && kw == 1) {  // a 1 x 1 window: the pixel's channels (or padding)
    if (y0 < 0 || y0 >= h || x0 < 0 || x0 >= w) {
      std::memset(dst, z, size_t(g.c));
    } else {
      const uint8_t* p = image + size_t(y0) * w + x0;
      for (int ci = 0; ci < g.c; ++ci) dst[ci] = p[ci * plane_size];
    }
    return;
  }
  const bool inside = x0 >= 0 && x0 + (kw - 1) * dw < w;
  for (int ci = 0; ci < g.c; ++ci) {
    const uint8_t* plane = image + ci * plane_size;
    for (int ky = 0; ky < kh; ++ky) {
      const int iy = y0 + ky * dh;
      if (iy < 0 || iy >= h) {
        for (int kx = 0; kx < kw; ++kx) dst[kx] = z;
      } else {
        const uint8_t* line = plane + size_t(iy) * w;
        if (inside && kw == 3 && dw == 1) {  // the common 3 x 3 window: constant size
          std::memcpy(dst, line + x0, 3);
        } else if (inside) {
          for (int kx = 0; kx < kw; ++kx) dst[kx] = line[x0 + kx * dw];
        } else {
          for (int kx = 0; kx < kw; ++kx) {
            const int ix = x0 + kx * dw;
            dst[kx] = ix >= 0 && ix < w ? line[ix] : z;
          }
        }
      }
      dst += kw;
    }
  }
}

}  // namespace lowp
