// Float32 im2col convolution (float_im2col.h): per image and group its columns (one row per
// kernel tap and input channel), then its run_mlas_sgemm operations, then the bias; whole
// images and groups, or a single product's operations, are the thread pool's jobs.
#include "float_im2col.h"

#include <algorithm>
#include <atomic>
#include <memory>
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

// Multiply-adds from which a convolution of at least as many images times groups as threads
// takes whole products as the thread pool's jobs (as MLAS hands each thread whole images and
// groups); below it one thread computes them all, as a hand-off costs more than they take.
constexpr int64_t kConvProductsThreadWork = int64_t(1) << 15;

// The bias added to the output planes [q0, q0 + len) (plane q: image q / m, channel q % m).
void add_bias(const ConvIm2colArgs& a, int64_t p, int64_t q0, int64_t len) {
  float* plane = a.y + q0 * p;
  for (int64_t q = q0, ch = q0 % a.m; q < q0 + len; ++q, plane += p) {
    const float bias = a.bias[ch];
    for (int64_t j = 0; j < p; ++j) plane[j] = plane[j] + bias;
    if (++ch == a.m) ch = 0;
  }
}

// The columns of one image and group into `cols` (when the convolution has columns; else
// the input is read in place): where its products read B.
const float* conv_columns(const ConvIm2colArgs& a, const TapColumns* columns, int64_t q,
                          float* cols, int threads) {
  const int64_t cg = a.c / a.group, p = a.out[0] * a.out[1] * a.out[2];
  const int64_t kk = cg * a.k[0] * a.k[1] * a.k[2];
  const float* xg = a.x + (q / a.group * a.c + q % a.group * cg) * a.in[0] * a.in[1] * a.in[2];
  if (cols == nullptr) return xg;
  run_elementwise(kk, std::max<int64_t>(1, (int64_t(1) << 14) / p), threads,
                  [&](int64_t r0, int64_t len) { im2col_rows(a, columns, xg, r0, len, cols); });
  return cols;
}

// One MLAS operation of image and group q (`part` of a.parts, or the whole product when
// there are none) on the columns b, its rows shared by `threads`.
void conv_part(const ConvIm2colArgs& a, int64_t q, int part, const float* b, int threads) {
  const int64_t i = q / a.group, g = q % a.group, mg = a.m / a.group;
  const int64_t p = a.out[0] * a.out[1] * a.out[2];
  const int64_t kk = a.c / a.group * a.k[0] * a.k[1] * a.k[2];
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

// The product of image and group q: its columns, then its operations in turn.
void conv_product(const ConvIm2colArgs& a, const TapColumns* columns, int64_t q, float* cols,
                  int threads) {
  const float* b = conv_columns(a, columns, q, cols, threads);
  for (int part = 0; part < std::max(a.nparts, 1); ++part) conv_part(a, q, part, b, threads);
}

// A single product cut in operations (ONNX Runtime's threads take one each): its columns,
// then the operations as the pool's jobs, each on one thread.
void conv_parts_threaded(const ConvIm2colArgs& a, const TapColumns* columns, int threads) {
  const float* b = conv_columns(a, columns, 0, a.cols, threads);
  std::atomic<int> next{0};
  ThreadPool::instance().run(std::min(threads, a.nparts), [&](int) {
    for (int part; (part = next.fetch_add(1, std::memory_order_relaxed)) < a.nparts;)
      conv_part(a, 0, part, b, 1);
  });
}

// Whole products as the pool's jobs, each on one thread with columns of its own and its
// planes' bias added after it (each product's operations are those of the serial order, so
// the outputs do not depend on the thread count).
void conv_products_threaded(const ConvIm2colArgs& a, const TapColumns* columns, int threads) {
  const int64_t mg = a.m / a.group, p = a.out[0] * a.out[1] * a.out[2];
  const int64_t kk = a.c / a.group * a.k[0] * a.k[1] * a.k[2];
  const int64_t products = a.n * a.group;
  const int jobs = int(std::min<int64_t>(threads, products));
  // columns of each job's own for the length of this call (none held between calls)
  std::unique_ptr<float[]> own(a.cols != nullptr ? new float[size_t(jobs * kk * p)] : nullptr);
  std::atomic<int64_t> next{0};  // the products handed out in turn to whoever is free
  ThreadPool::instance().run(jobs, [&](int job) {
    float* cols = own != nullptr ? own.get() + job * kk * p : nullptr;
    for (int64_t q; (q = next.fetch_add(1, std::memory_order_relaxed)) < products;) {
      conv_product(a, columns, q, cols, 1);
      if (a.bias != nullptr) add_bias(a, p, q * mg, mg);
    }
  });
}

}  // namespace

void run_float_conv_im2col(const ConvIm2colArgs& a, int threads) {
  const int64_t p = a.out[0] * a.out[1] * a.out[2];
  const int64_t kk = a.c / a.group * a.k[0] * a.k[1] * a.k[2];
  if (a.n <= 0 || a.m <= 0 || p <= 0) return;
  std::vector<TapColumns> columns(size_t(a.k[2]));
  for (int64_t kx = 0; kx < a.k[2]; ++kx) columns[size_t(kx)] = tap_columns(a, kx);
  if (threads <= 0) threads = ThreadPool::max_threads();
  const int64_t products = a.n * a.group;
  if (products >= threads && threads > 1) {
    if (a.n * a.m * kk * p >= kConvProductsThreadWork)
      return conv_products_threaded(a, columns.data(), threads);
    threads = 1;
  }
  if (products == 1 && a.nparts > 1 && threads > 1) {
    conv_parts_threaded(a, columns.data(), threads);
  } else {
    for (int64_t q = 0; q < products; ++q) conv_product(a, columns.data(), q, a.cols, threads);
  }
  if (a.bias == nullptr) return;
  run_elementwise(a.n * a.m, std::max<int64_t>(1, (int64_t(1) << 15) / p), threads,
                  [&](int64_t q0, int64_t len) { add_bias(a, p, q0, len); });
}

}  // namespace lowp
