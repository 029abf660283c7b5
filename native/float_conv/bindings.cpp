// nanobind bindings of lowp._float_conv (nchwc.h; checks and threads in nchwc_run.cpp). The
// caller names the instruction-set path (lowp's active integer path decides it, so LOWP_ISA
// applies).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <optional>
#include <stdexcept>
#include <string>

#include "nchwc.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace lowp_fconv {
namespace {

using In4 = nb::ndarray<const float, nb::ndim<4>, nb::c_contig, nb::device::cpu>;
using Out4 = nb::ndarray<float, nb::ndim<4>, nb::c_contig, nb::device::cpu>;
using In1 = nb::ndarray<const float, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

void conv(In4 x, In1 wp, std::optional<In1> bias, Out4 y, int kind, int block, int groups,
          int kh, int kw, int sh, int sw, int dh, int dw, int ph, int pw,
          const std::string& isa, int threads, std::optional<In4> sum, bool relu) {
  ConvArgs a;
  a.x = x.data(), a.wp = wp.data(), a.y = y.data();
  a.bias = bias ? bias->data() : nullptr;
  a.n = int64_t(x.shape(0)), a.c = int64_t(x.shape(1));
  a.h = int64_t(x.shape(2)), a.w = int64_t(x.shape(3));
  a.m = int64_t(y.shape(1)), a.oh = int64_t(y.shape(2)), a.ow = int64_t(y.shape(3));
  a.kh = kh, a.kw = kw, a.sh = sh, a.sw = sw, a.dh = dh, a.dw = dw, a.ph = ph, a.pw = pw;
  a.groups = groups, a.kind = kind, a.block = block, a.relu = relu;
  if (int64_t(y.shape(0)) != a.n) throw std::invalid_argument("conv: inconsistent shapes");
  check(a, int64_t(x.size()), int64_t(wp.size()), bias ? int64_t(bias->size()) : -1,
        int64_t(y.size()));
  if (sum) {
    if (int64_t(sum->size()) != int64_t(y.size()) || sum->data() == y.data())
      throw std::invalid_argument("conv: sum must be another array of the output's size");
    a.sum = sum->data();
  }
  const RowsFn rows = rows_for(isa);
  nb::gil_scoped_release nogil;
  run(a, rows, threads);
}

}  // namespace
}  // namespace lowp_fconv

NB_MODULE(_float_conv, m) {
  m.doc() = "Float32 convolution in ONNX Runtime's (MLAS's) order.";
  m.def("conv", &lowp_fconv::conv, "x"_a, "wp"_a, "bias"_a.none(), "y"_a, "kind"_a,
        "block"_a, "groups"_a, "kh"_a, "kw"_a, "sh"_a, "sw"_a, "dh"_a, "dw"_a, "ph"_a,
        "pw"_a, "isa"_a, "threads"_a = 0, "sum"_a = nb::none(), "relu"_a = false);
}
