// Driver of the float glue kernels (float_kernels.h): the table of the active path, element
// ranges on the thread pool for the unary operators, and (plane, row block) tasks with their
// row buffers for pooling. Every output is computed by exactly one task the same way, so
// results never depend on the thread count.
#include <algorithm>
#include <atomic>
#include <string>
#include <vector>

#include "dispatch.h"
#include "float_kernels.h"
#include "threadpool.h"

namespace lowp {

const FloatKernels& active_float_kernels() {
  const std::string name = active_table()->name;
  if (name == "scalar") return kFloatScalar;
  if (name == "avx512vnni") return kFloatAvx512;
  return kFloatAvx2;  // avx2, avxvnni, avxvnni_evex
}

void run_float_unary(int op, const float* x, float* y, int64_t n, float alpha, float beta,
                     int threads) {
  if (n <= 0) return;
  const FloatKernels& k = active_float_kernels();
  // compute-bound (float64 polynomials): a thread pays from a few ten thousand values
  run_elementwise(n, int64_t(1) << 14, threads,
                  [&](int64_t i0, int64_t len) { k.unary(op, x + i0, y + i0, len, alpha, beta); });
}

namespace {

// Window taps along one axis that fall in [lo, hi): the divisor factor of average pooling.
float axis_count(int64_t o, int s, int p, int k, int d, int64_t lo, int64_t hi) {
  int64_t c = 0;
  for (int i = 0; i < k; ++i) {
    const int64_t pos = o * s - p + int64_t(i) * d;
    c += pos >= lo && pos < hi;
  }
  return float(c);
}

}  // namespace

void run_float_pool(const FloatPoolArgs& a, int threads) {
  if (a.planes <= 0 || a.oh <= 0 || a.ow <= 0) return;
  const FloatKernels& k = active_float_kernels();
  const int64_t W = k.width;
  const int64_t owp = (a.ow + W - 1) / W * W;
  const int64_t span = (owp - 1) * a.sw + int64_t(a.kw - 1) * a.dw + 1;
  const int64_t vlen = std::max<int64_t>(span, a.pw + a.w) + W;
  // divisor factors: rows per output row, columns per output column (padded with 1)
  std::vector<float> cnt_h(size_t(a.oh), 1.0f), cnt_w(size_t(owp), 1.0f);
  if (a.average) {
    const int64_t hlo = a.include_pad ? -a.ph : 0, hhi = a.include_pad ? a.h + a.ph_end : a.h;
    const int64_t wlo = a.include_pad ? -a.pw : 0, whi = a.include_pad ? a.w + a.pw_end : a.w;
    for (int64_t o = 0; o < a.oh; ++o)
      cnt_h[size_t(o)] = axis_count(o, a.sh, a.ph, a.kh, a.dh, hlo, hhi);
    for (int64_t o = 0; o < a.ow; ++o)
      cnt_w[size_t(o)] = axis_count(o, a.sw, a.pw, a.kw, a.dw, wlo, whi);
  }
  // tasks: blocks of output rows of one plane, ~64K window taps of work each
  const int64_t row_work = std::max<int64_t>(1, a.ow * a.kw + a.w * a.kh);
  const int64_t rows = std::clamp<int64_t>((int64_t(1) << 16) / row_work, 1, a.oh);
  const int64_t blocks = (a.oh + rows - 1) / rows, ntasks = a.planes * blocks;
  if (threads <= 0) threads = ThreadPool::max_threads();
  threads = int(std::max<int64_t>(1, std::min<int64_t>(threads, ntasks)));
  std::atomic<int64_t> next{0};
  auto work = [&](int) {
    std::vector<float> vbuf(static_cast<size_t>(vlen)), out(static_cast<size_t>(owp));
    FloatPoolRow r;
    r.vbuf = vbuf.data();
    r.vlen = vlen;
    r.cnt = cnt_w.data();
    r.out = out.data();
    for (int64_t t; (t = next.fetch_add(1, std::memory_order_relaxed)) < ntasks;) {
      const int64_t p = t / blocks, r0 = (t % blocks) * rows, r1 = std::min(a.oh, r0 + rows);
      const float* plane = a.x + p * a.h * a.w;
      for (int64_t oy = r0; oy < r1; ++oy)
        k.pool_row(a, plane, oy, cnt_h[size_t(oy)], r, a.y + (p * a.oh + oy) * a.ow);
    }
  };
  ThreadPool::instance().run(threads, work);
}

void run_float_mean_rows(const float* x, float* y, int64_t rows, int64_t n, int threads) {
  if (rows <= 0 || n <= 0) return;
  const FloatKernels& k = active_float_kernels();
  // rows in runs of ~64K values; one task per run
  const int64_t per = std::max<int64_t>(1, (int64_t(1) << 16) / n);
  run_elementwise(rows, per, threads,
                  [&](int64_t r0, int64_t len) { k.mean_rows(x + r0 * n, y + r0, len, n); });
}

void run_float_softmax_rows(const float* x, float* y, int64_t rows, int64_t n, int threads) {
  if (rows <= 0 || n <= 0) return;
  const FloatKernels& k = active_float_kernels();
  const int64_t per = std::max<int64_t>(1, (int64_t(1) << 14) / n);
  run_elementwise(rows, per, threads, [&](int64_t r0, int64_t len) {
    k.softmax_rows(x + r0 * n, y + r0 * n, len, n);
  });
}

}  // namespace lowp
