// Driver of the MatMulNBits kernel (matmul_nbits.h): the active path's kernel, rows (or, for
// fewer rows than threads, columns) split over the pool. Every output is computed alone, so
// any split gives the same bits.
#include "matmul_nbits.h"

#include <algorithm>
#include <string>

#include "dispatch.h"
#include "threadpool.h"

namespace lowp {

namespace {

NBitsKernel active_nbits_kernel(int64_t block) {
  const std::string name = active_table()->name;
  const bool lanes = block != 32;  // blocks of 16, 64, 128
  if (name == "scalar") return lanes ? nbits_lanes_scalar : nbits_rows_scalar;
  if (name == "avx512vnni" || name == "amx") return lanes ? nbits_lanes_avx512 : nbits_rows_avx512;
  return lanes ? nbits_lanes_avx2 : nbits_rows_avx2;  // avx2, avxvnni, avxvnni_evex
}

}  // namespace

void run_matmul_nbits(const NBitsArgs& a, int threads) {
  if (a.m <= 0 || a.n <= 0) return;
  const NBitsKernel kernel = active_nbits_kernel(a.block);
  if (threads <= 0) threads = ThreadPool::max_threads();
  // below ~64k multiply-adds a second thread costs more than it saves (the panel kernel:
  // ~1M)
  using PanelKernel = void (*)(const NBitsArgs&, int64_t, int64_t, int64_t, int64_t);
  const PanelKernel panel_kernel =
      kernel == nbits_rows_avx512 && a.wp ? nbits_panels_avx512
      : kernel == nbits_lanes_avx512 && (a.wp_lanes || a.wp_rem) ? nbits_lanes_panels_avx512
                                                   : nullptr;
  const bool panels = panel_kernel != nullptr;
  const int64_t work = a.m * a.n * std::max<int64_t>(1, a.blocks) * a.block;
  threads = int(std::min<int64_t>(threads, std::max<int64_t>(1, work >> (panels ? 20 : 16))));
  if (panels) {
    const int64_t np = (a.n + 15) / 16;
    if (threads <= 1) {
      panel_kernel(a, 0, a.m, 0, np);
      return;
    }
    const bool by_rows = a.m >= threads;
    const int64_t count = by_rows ? a.m : np, per = (count + threads - 1) / threads;
    ThreadPool::instance().run(threads, [&](int t) {
      const int64_t i0 = std::min(count, per * t), i1 = std::min(count, i0 + per);
      if (i1 <= i0) return;
      if (by_rows) panel_kernel(a, i0, i1, 0, np);
      else panel_kernel(a, 0, a.m, i0, i1);
    });
    return;
  }
  if (threads <= 1) {
    kernel(a, 0, a.m, 0, a.n);
    return;
  }
  if (a.m >= threads) {
    const int64_t per = (a.m + threads - 1) / threads;
    ThreadPool::instance().run(threads, [&](int t) {
      const int64_t r0 = std::min(a.m, per * t), r1 = std::min(a.m, r0 + per);
      if (r1 > r0) kernel(a, r0, r1, 0, a.n);
    });
    return;
  }
  const int64_t per = (a.n + threads - 1) / threads;
  ThreadPool::instance().run(threads, [&](int t) {
    const int64_t c0 = std::min(a.n, per * t), c1 = std::min(a.n, c0 + per);
    if (c1 > c0) kernel(a, 0, a.m, c0, c1);
  });
}

}  // namespace lowp
