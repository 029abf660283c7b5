// nanobind bindings and the thread split of lowp._float_conv (nchwc.h). The caller names
// the instruction-set path (lowp's active integer path decides it, so LOWP_ISA applies);
// output rows are split across the thread pool, each row computed alone, so results never
// depend on the thread count.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <string>

#include "../threadpool.h"
#include "nchwc.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace lowp_fconv {
namespace {

using In4 = nb::ndarray<const float, nb::ndim<4>, nb::c_contig, nb::device::cpu>;
using Out4 = nb::ndarray<float, nb::ndim<4>, nb::c_contig, nb::device::cpu>;
using In1 = nb::ndarray<const float, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

RowsFn pick(const std::string& isa) {
  if (isa == "scalar") return rows_scalar;
  if (isa == "avx2") return rows_avx2;
  if (isa == "avx512") return rows_avx512;
  throw std::invalid_argument("unknown instruction-set path " + isa);
}

void conv(In4 x, In1 wp, std::optional<In1> bias, Out4 y, int kind, int block, int groups,
          int kh, int kw, int sh, int sw, int dh, int dw, int ph, int pw,
          const std::string& isa, int threads) {
  ConvArgs a;
  a.x = x.data(), a.wp = wp.data(), a.y = y.data();
  a.bias = bias ? bias->data() : nullptr;
  a.n = int64_t(x.shape(0)), a.c = int64_t(x.shape(1));
  a.h = int64_t(x.shape(2)), a.w = int64_t(x.shape(3));
  a.m = int64_t(y.shape(1)), a.oh = int64_t(y.shape(2)), a.ow = int64_t(y.shape(3));
  a.kh = kh, a.kw = kw, a.sh = sh, a.sw = sw, a.dh = dh, a.dw = dw, a.ph = ph, a.pw = pw;
  a.groups = groups, a.kind = kind, a.block = block;
  if (int64_t(y.shape(0)) != a.n || groups < 1 || a.c % groups || a.m % groups || block < 1)
    throw std::invalid_argument("conv: inconsistent shapes");
  if (kind < kNchwc || kind > kDepthwise) throw std::invalid_argument("conv: unknown kind");
  if (kind == kDepthwise && (a.c != groups || a.m != groups))
    throw std::invalid_argument("conv: depthwise needs one input and output channel per group");
  const int64_t mblocks = (a.m / groups + kLanes - 1) / kLanes;
  if (int64_t(wp.shape(0)) != groups * mblocks * (a.c / groups) * kh * kw * kLanes)
    throw std::invalid_argument("conv: packed weights of the wrong size");
  if (bias && int64_t(bias->shape(0)) != a.m) throw std::invalid_argument("conv: bias size");
  const RowsFn rows = pick(isa);
  const int64_t total = a.n * a.oh;
  nb::gil_scoped_release nogil;
  if (threads <= 0) threads = lowp::ThreadPool::max_threads();
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

}  // namespace
}  // namespace lowp_fconv

NB_MODULE(_float_conv, m) {
  m.doc() = "Float32 convolution in ONNX Runtime's (MLAS's) order.";
  m.def("conv", &lowp_fconv::conv, "x"_a, "wp"_a, "bias"_a.none(), "y"_a, "kind"_a,
        "block"_a, "groups"_a, "kh"_a, "kw"_a, "sh"_a, "sw"_a, "dh"_a, "dw"_a, "ph"_a,
        "pw"_a, "isa"_a, "threads"_a = 0);
}
