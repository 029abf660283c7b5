// The checks and the thread split of the NCHWc convolution (nchwc.h), shared by
// lowp._float_conv's binding and lowp._native's (a Program step). Output rows are split
// across the thread pool, each row computed alone, so results never depend on the threads.
#include <algorithm>
#include <stdexcept>
#include <string>

#include "../threadpool.h"
#include "nchwc.h"

namespace lowp_fconv {

RowsFn rows_for(const std::string& isa) {
  if (isa == "scalar") return rows_scalar;
  if (isa == "avx2") return rows_avx2;
  if (isa == "avx512") return rows_avx512;
  throw std::invalid_argument("unknown instruction-set path " + isa);
}

void check(const ConvArgs& a, int64_t x_size, int64_t wp_size, int64_t bias_size,
           int64_t y_size) {
  const bool dims = a.n >= 0 && a.c >= 1 && a.h >= 1 && a.w >= 1 && a.m >= 1 && a.oh >= 1 &&
                    a.ow >= 1 && a.groups >= 1 && a.c % a.groups == 0 &&
                    a.m % a.groups == 0 && a.block >= 1 && a.kh >= 1 && a.kw >= 1 &&
                    a.sh >= 1 && a.sw >= 1 && a.dh >= 1 && a.dw >= 1 && a.ph >= 0 &&
                    a.pw >= 0;
  if (!dims || x_size != a.n * a.c * a.h * a.w || y_size != a.n * a.m * a.oh * a.ow)
    throw std::invalid_argument("conv: inconsistent shapes");
  if (a.kind < kNchwc || a.kind > kDepthwise) throw std::invalid_argument("conv: unknown kind");
  if (a.kind == kDepthwise && (a.c != a.groups || a.m != a.groups))
    throw std::invalid_argument("conv: depthwise needs one input and output channel per group");
  const int64_t mblocks = (a.m / a.groups + kLanes - 1) / kLanes;
  if (wp_size != a.groups * mblocks * (a.c / a.groups) * a.kh * a.kw * kLanes)
    throw std::invalid_argument("conv: packed weights of the wrong size");
  if (bias_size >= 0 && bias_size != a.m) throw std::invalid_argument("conv: bias size");
}

void run(const ConvArgs& a, RowsFn rows, int threads) {
  if (threads <= 0) threads = lowp::ThreadPool::max_threads();
  const int64_t total = a.n * a.oh;
  const int64_t tasks = std::max<int64_t>(1, std::min<int64_t>(threads, total));
  if (tasks == 1) {
    rows(a, 0, total);
    return;
  }
  const int64_t per = (total + tasks - 1) / tasks;
  lowp::ThreadPool::instance().run(int(tasks), [&](int t) {
    const int64_t r0 = std::min(total, per * t), r1 = std::min(total, r0 + per);
    if (r0 < r1) rows(a, r0, r1);
  });
}

}  // namespace lowp_fconv
