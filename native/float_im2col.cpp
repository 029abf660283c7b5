// Float32 im2col convolution (float_im2col.h): columns on the thread pool (one row per
// kernel tap and input channel), then one run_mlas_sgemm per image and group, then the bias.
#include "float_im2col.h"

#include <algorithm>
#include <cstring>

#include "float_kernels.h"
#include "threadpool.h"

namespace lowp {
namespace {

// Row r of the columns of image i, group g: input channel r / taps of the group, kernel tap
// r % taps (row-major over the three kernel axes); its prod(out) values are the input at
// out * s - pad + tap * d, or +0 outside the input (np.pad's zeros).
void im2col_row(const ConvIm2colArgs& a, const float* xg, int64_t r, float* row) {
  const int64_t taps = a.k[0] * a.k[1] * a.k[2];
  const int64_t ci = r / taps, tap = r % taps;
  const int64_t kz = tap / (a.k[1] * a.k[2]), ky = tap / a.k[2] % a.k[1], kx = tap % a.k[2];
  const float* plane = xg + ci * a.in[0] * a.in[1] * a.in[2];
  const int64_t ow = a.out[2];
  // the output columns whose input column lies inside [0, in[2]): [x0, x1)
  const int64_t off = kx * a.d[2] - a.pad[2];
  int64_t x0 = off >= 0 ? 0 : (-off + a.s[2] - 1) / a.s[2];
  int64_t x1 = a.in[2] - off <= 0 ? 0 : (a.in[2] - off + a.s[2] - 1) / a.s[2];
  x0 = std::min(x0, ow), x1 = std::max(x0, std::min(x1, ow));
  for (int64_t oz = 0; oz < a.out[0]; ++oz) {
    const int64_t iz = oz * a.s[0] - a.pad[0] + kz * a.d[0];
    for (int64_t oy = 0; oy < a.out[1]; ++oy, row += ow) {
      const int64_t iy = oy * a.s[1] - a.pad[1] + ky * a.d[1];
      if (iz < 0 || iz >= a.in[0] || iy < 0 || iy >= a.in[1]) {
        std::fill_n(row, ow, 0.0f);
        continue;
      }
      const float* line = plane + (iz * a.in[1] + iy) * a.in[2];
      std::fill_n(row, x0, 0.0f);
      if (a.s[2] == 1) {
        if (x1 > x0) std::memcpy(row + x0, line + x0 + off, size_t(x1 - x0) * sizeof(float));
      } else {
        for (int64_t ox = x0; ox < x1; ++ox) row[ox] = line[ox * a.s[2] + off];
      }
      std::fill_n(row + x1, ow - x1, 0.0f);
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
  for (int64_t i = 0; i < a.n; ++i)
    for (int64_t g = 0; g < a.group; ++g) {
      const float* xg = a.x + (i * a.c + g * cg) * in_size;
      const float* b = xg;
      if (a.cols != nullptr) {
        run_elementwise(kk, std::max<int64_t>(1, (int64_t(1) << 14) / p), threads,
                        [&](int64_t r0, int64_t len) {
                          for (int64_t r = r0; r < r0 + len; ++r)
                            im2col_row(a, xg, r, a.cols + r * p);
                        });
        b = a.cols;
      }
      SgemmArgs s;
      s.a = a.w + g * mg * kk, s.b = b, s.c = a.y + (i * a.m + g * mg) * p;
      s.m = mg, s.k = kk, s.n = p;
      s.sa_m = kk, s.sa_k = 1, s.sb_k = p, s.sb_n = 1, s.ldc = p;
      run_mlas_sgemm(s, threads);
    }
  if (a.bias == nullptr) return;
  run_elementwise(a.n * a.m, std::max<int64_t>(1, (int64_t(1) << 15) / p), threads,
                  [&](int64_t q0, int64_t len) {
                    for (int64_t q = q0; q < q0 + len; ++q) {
                      float* plane = a.y + q * p;
                      const float bias = a.bias[q % a.m];
                      for (int64_t j = 0; j < p; ++j) plane[j] = plane[j] + bias;
                    }
                  });
}

}  // namespace lowp
