// Float32 im2col convolution (float_im2col.h): columns on the thread pool (one row per
// kernel tap and input channel), then one run_mlas_sgemm per image and group, then the bias.
#include "float_im2col.h"

#include <algorithm>
#include <vector>

#include "float_kernels.h"
#include "threadpool.h"

namespace lowp {
namespace {

// Where kernel column kx reads along the last axis: input column ox * s + off of output
// column ox, inside the input for ox in [x0, x1).
struct TapColumns {
  int64_t off = 0, x0 = 0, x1 = 0;
};

TapColumns tap_columns(const ConvIm2colArgs& a, int64_t kx) {
  TapColumns t;
  const int64_t ow = a.out[2], s = a.s[2];
  t.off = kx * a.d[2] - a.pad[2];
  t.x0 = std::min(ow, t.off >= 0 ? 0 : (-t.off + s - 1) / s);
  t.x1 = std::max(t.x0, std::min(ow, a.in[2] - t.off <= 0 ? 0 : (a.in[2] - t.off + s - 1) / s));
  return t;
}

// Rows [r0, r0 + len) of the columns of one image and group (xg: its first input channel):
// row r is input channel r / taps, kernel tap r % taps (row-major over the three kernel
// axes); its prod(out) values are the input at out * s - pad + tap * d, or +0 outside the
// input (np.pad's zeros). `columns` holds tap_columns of each kernel column.
void im2col_rows(const ConvIm2colArgs& a, const TapColumns* columns, const float* xg,
                 int64_t r0, int64_t len, float* cols) {
  const int64_t taps = a.k[0] * a.k[1] * a.k[2], ow = a.out[2];
  const int64_t p = a.out[0] * a.out[1] * ow;
  const int64_t plane_size = a.in[0] * a.in[1] * a.in[2];
  // the row's channel and tap, advanced as counters (no division per row)
  int64_t ci = r0 / taps, tap = r0 % taps;
  int64_t kz = tap / (a.k[1] * a.k[2]), ky = tap / a.k[2] % a.k[1], kx = tap % a.k[2];
  for (int64_t r = r0; r < r0 + len; ++r) {
    const TapColumns& t = columns[kx];
    const float* plane = xg + ci * plane_size;
    float* row = cols + r * p;
    for (int64_t oz = 0; oz < a.out[0]; ++oz) {
      const int64_t iz = oz * a.s[0] - a.pad[0] + kz * a.d[0];
      for (int64_t oy = 0; oy < a.out[1]; ++oy, row += ow) {
        const int64_t iy = oy * a.s[1] - a.pad[1] + ky * a.d[1];
        if (iz < 0 || iz >= a.in[0] || iy < 0 || iy >= a.in[1]) {
          std::fill_n(row, ow, 0.0f);
          continue;
        }
        const float* line = plane + (iz * a.in[1] + iy) * a.in[2];
        std::fill_n(row, t.x0, 0.0f);
        if (a.s[2] == 1) {
          std::copy(line + t.x0 + t.off, line + t.x1 + t.off, row + t.x0);
        } else {
          for (int64_t ox = t.x0; ox < t.x1; ++ox) row[ox] = line[ox * a.s[2] + t.off];
        }
        std::fill_n(row + t.x1, ow - t.x1, 0.0f);
      }
    }
    if (++kx == a.k[2]) {
      kx = 0;
      if (++ky == a.k[1]) {
        ky = 0;
        if (++kz == a.k[0]) kz = 0, ++ci;
      }
    }
  }
}

}  // namespace

void run_float_conv_im2col(const ConvIm2colArgs& a, int threads) {
  const int64_t cg = a.c / a.group, mg = a.m / a.group;
  const int64_t p = a.out[0] * a.out[1] * a.out[2];
  const int64_t kk = cg * a.k[0] * a.k[1] * a.k[2];
  const int64_t in_size = a.in[0] * a.in[1] * a.in[2];
  if (a.n <= 0 || a.m <= 0 || p <= 0) return;
  std::vector<TapColumns> columns(size_t(a.k[2]));
  for (int64_t kx = 0; kx < a.k[2]; ++kx) columns[size_t(kx)] = tap_columns(a, kx);
  for (int64_t i = 0; i < a.n; ++i)
    for (int64_t g = 0; g < a.group; ++g) {
      const float* xg = a.x + (i * a.c + g * cg) * in_size;
      const float* b = xg;
      if (a.cols != nullptr) {
        run_elementwise(kk, std::max<int64_t>(1, (int64_t(1) << 14) / p), threads,
                        [&](int64_t r0, int64_t len) {
                          im2col_rows(a, columns.data(), xg, r0, len, a.cols);
                        });
        b = a.cols;
      }
      const int count = a.nparts > 0 ? a.nparts : 1;
      for (int part = 0; part < count; ++part) {
        const int64_t r0 = a.nparts > 0 ? a.parts[part][0] : 0;
        const int64_t rows = a.nparts > 0 ? a.parts[part][1] : mg;
        const int64_t c0 = a.nparts > 0 ? a.parts[part][2] : 0;
        const int64_t width = a.nparts > 0 ? a.parts[part][3] : p;
        SgemmArgs s;
        s.a = a.w + (g * mg + r0) * kk, s.b = b + c0, s.c = a.y + (i * a.m + g * mg + r0) * p + c0;
        s.m = rows, s.k = kk, s.n = width;
        s.sa_m = kk, s.sa_k = 1, s.sb_k = p, s.sb_n = 1, s.ldc = p;
        s.unit_ldb = width == p;
        if (a.sum != nullptr)
          s.init = a.sum + (i * a.m + g * mg + r0) * p + c0, s.si_m = p, s.si_n = 1;
        run_mlas_sgemm(s, threads);
      }
    }
  if (a.bias == nullptr) return;
  run_elementwise(a.n * a.m, std::max<int64_t>(1, (int64_t(1) << 15) / p), threads,
                  [&](int64_t q0, int64_t len) {
                    float* plane = a.y + q0 * p;
                    for (int64_t q = q0, ch = q0 % a.m; q < q0 + len; ++q, plane += p) {
                      const float bias = a.bias[ch];
                      for (int64_t j = 0; j < p; ++j) plane[j] = plane[j] + bias;
                      if (++ch == a.m) ch = 0;
                    }
                  });
}

}  // namespace lowp
