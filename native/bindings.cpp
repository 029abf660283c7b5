// Bindings layer: thin nanobind wrappers (shape checks only, no logic); Python validates first.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/array.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <cstring>
#include <chrono>
#include <limits>
#include <array>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <memory>
#include <vector>

#include "bind_kernel.h"
#include "cast_half.h"
#include "matmul_nbits.h"
#include "compare.h"
#include "conv.h"
#include "conv_rows.h"
#include "int_matmul.h"
#include "dispatch.h"
#include "float_elementwise.h"
#include "float_exact.h"
#include "qbinary.h"
#include "float_kernels.h"
#include "float_log.h"
#include "float_attention.h"
#include "float_col2im.h"
#include "float_conv_transpose.h"
#include "float_im2col.h"
#ifdef LOWP_FLOAT_CONV_NCHWC
#include "float_conv/nchwc.h"
#endif
#include "float_libm.h"
#include "float_norm.h"
#include "float_rnn.h"
#include "float_reduce.h"
#include "gather.h"
#include "resize.h"
#include "scatter_nd.h"
#include "program.h"
#include "qrecurrent.h"
#include "recurrent.h"
#include "threadpool.h"

namespace nb = nanobind;
using namespace nb::literals;
using lowp::def_kernel;

namespace {

// Whether `a` is read backwards along an axis: a negative stride on an axis of more than one
// element. numpy calls an array of a negative stride on a unit axis only (a Slice of step -1
// over one element) C-contiguous, and its memory is what a contiguous array's is.
template <typename Array>
bool negative_layout(const Array& a) {
  for (size_t i = 0; i < a.ndim(); ++i)
    if (a.shape(i) > 1 && a.stride(i) < 0) return true;
  return false;
}

template <typename T>
using Vec = nb::ndarray<const T, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using Act5 = nb::ndarray<const uint8_t, nb::ndim<5>, nb::c_contig, nb::device::cpu>;
using Out5 = nb::ndarray<uint8_t, nb::ndim<5>, nb::c_contig, nb::device::cpu>;

// A pooling binding's dims (`ndims` of them, none negative) and its 8 geometry integers:
// kh, kw, sh, sw, dh, dw (each >= 1), ph, pw (begin pads, >= 0).
void check_pool_geometry(const char* op, const std::vector<int64_t>& dims, size_t ndims,
                         const std::vector<int>& geo) {
  if (dims.size() != ndims || geo.size() != 8)
    throw std::invalid_argument(std::string(op) + " needs " + std::to_string(ndims) +
                                " dims and 8 geometry integers");
  for (int64_t d : dims)
    if (d < 0) throw std::invalid_argument("negative dimension");
  for (int i = 0; i < 6; ++i)
    if (geo[i] < 1) throw std::invalid_argument("kernel, strides and dilations must be >= 1");
  if (geo[6] < 0 || geo[7] < 0) throw std::invalid_argument("negative padding");
}

// Clamp bounds an 8-bit quantize loop can take: within [-128, 255] and within 2^22 of the
// zero point (the portable loops round with the 1.5 * 2^23 trick).
void check_quantize_bounds(int zp, int qmin, int qmax) {
  if (qmin > qmax || qmin < -128 || qmax > 255 || zp - qmin > (1 << 22) ||
      qmax - zp > (1 << 22) || zp - qmax > (1 << 22) || qmin - zp > (1 << 22))
    throw std::invalid_argument("quantize bounds out of range");
}

double peak_gops(const std::string& kind, double seconds, int threads) {
  using lowp::PeakFn;
  PeakFn fn = nullptr;
  const std::vector<std::string> paths = lowp::available_paths();
  const bool has512 =
      std::find(paths.begin(), paths.end(), std::string("avx512vnni")) != paths.end();
  if (kind == "vnni512") fn = lowp::peak_vnni512;
  else if (kind == "vnni256") fn = lowp::peak_vnni256;
  else if (kind == "wssd512") fn = lowp::peak_wssd512;
  else if (kind == "fma512") fn = lowp::peak_fma512;
  else if (kind == "fma256") fn = lowp::peak_fma256;
  else if (kind == "amx") fn = lowp::peak_amx;
  else throw std::invalid_argument("unknown peak kind '" + kind + "'");
  if (!has512) throw std::invalid_argument("peak loops need an AVX-512 VNNI CPU");
  if (fn == lowp::peak_amx &&
      std::find(paths.begin(), paths.end(), std::string("amx")) == paths.end())
    throw std::invalid_argument("the AMX peak loop needs an AMX-INT8 CPU");
  if (threads < 1) threads = lowp::ThreadPool::max_threads();
  threads = std::min(threads, lowp::ThreadPool::max_threads());
  nb::gil_scoped_release nogil;
  // Every thread runs the loop for `seconds`; the result is the sum of the threads' rates.
  std::vector<double> rate(threads, 0.0);
  lowp::ThreadPool::instance().run(threads, [&](int tid) {
    fn(1 << 16);  // warm-up (clock ramp)
    const auto start = std::chrono::steady_clock::now();
    double done = 0, elapsed = 0;
    while (elapsed < seconds) {
      done += fn(1 << 16);
      elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    rate[tid] = done / elapsed;
  });
  double total = 0;
  for (double r : rate) total += r;
  return total * 1e-9;
}

// ---- kernel invocations --------------------------------------------------------------
// Each make_* checks its arguments and returns the kernel invocation bound to them (the
// closure keeps the arrays alive). def_kernel (bind_kernel.h) binds it twice: as a function
// that runs it at once with the GIL released, and as a Program method of the same name and
// arguments that appends it (lowp.runtime.program).
using Bytes = nb::ndarray<const uint8_t, nb::c_contig, nb::device::cpu>;
using OutBytes = nb::ndarray<uint8_t, nb::c_contig, nb::device::cpu>;
using Floats = nb::ndarray<const float, nb::c_contig, nb::device::cpu>;
using OutFloats = nb::ndarray<float, nb::c_contig, nb::device::cpu>;

lowp::Kernel make_add(Bytes a, Bytes b, OutBytes y, bool a_signed, bool b_signed, float ma,
                      float mb, float c, int qmin, int qmax, int threads) {
  if (a.size() != b.size() || a.size() != y.size())
    throw std::invalid_argument("add needs three arrays of the same size");
  lowp::AddArgs args;
  args.a = a.data();
  args.b = b.data();
  args.y = y.data();
  args.n = int64_t(a.size());
  args.a_signed = a_signed;
  args.b_signed = b_signed;
  args.ma = ma;
  args.mb = mb;
  args.c = c;
  args.qmin = qmin;
  args.qmax = qmax;
  return [args, threads, a, b, y] { lowp::run_add(args, threads); };
}

lowp::Kernel make_max_pool2d(Bytes x, OutBytes y, const std::vector<int64_t>& dims,
                             const std::vector<int>& geo, bool is_signed, int threads) {
  // dims: n, h, w, c, oh, ow; geo: kh, kw, sh, sw, dh, dw, ph, pw
  check_pool_geometry("max_pool2d", dims, 6, geo);
  lowp::PoolArgs a;
  a.x = x.data();
  a.y = y.data();
  a.n = dims[0], a.h = dims[1], a.w = dims[2], a.c = dims[3], a.oh = dims[4], a.ow = dims[5];
  a.kh = geo[0], a.kw = geo[1], a.sh = geo[2], a.sw = geo[3];
  a.dh = geo[4], a.dw = geo[5], a.ph = geo[6], a.pw = geo[7];
  a.is_signed = is_signed;
  if (x.size() != size_t(a.n * a.h * a.w * a.c) || y.size() != size_t(a.n * a.oh * a.ow * a.c))
    throw std::invalid_argument("max_pool2d array sizes do not match the dims");
  return [a, threads, x, y] { lowp::run_maxpool(a, threads); };
}

// QuantizeLinear's arguments, the bounds checked (x may be set later: a FeedSlot's kernels)
lowp::QuantArgs quant_args(const float* x, uint8_t* y, int64_t n, float scale, int zp,
                           int qmin, int qmax) {
  check_quantize_bounds(zp, qmin, qmax);
  lowp::QuantArgs a;
  a.x = x;
  a.y = y;
  a.n = n;
  a.scale = scale;
  a.zp = zp;
  a.qmin = qmin;
  a.qmax = qmax;
  return a;
}

lowp::Kernel make_quantize(Floats x, OutBytes y, float scale, int zp, int qmin, int qmax,
                           int threads) {
  if (x.size() != y.size()) throw std::invalid_argument("quantize needs same-size arrays");
  const lowp::QuantArgs a =
      quant_args(x.data(), y.data(), int64_t(x.size()), scale, zp, qmin, qmax);
  return [a, threads, x, y] { lowp::run_quantize(a, threads); };
}

// A float32 feed that a Program's quantizer reads where the caller keeps it
// (lowp.runtime.replay): set to the run's array before each run; the kernels made on it read
// its pointer when they run. It must outlive their Program, and the array it was set to must
// stay alive while the Program runs.
struct FeedSlot {
  const float* data = nullptr;
  size_t size = 0;
};

void set_feed_slot(FeedSlot& slot, Floats x) {
  if (slot.data != nullptr && x.size() != slot.size)
    throw std::invalid_argument("a feed slot takes arrays of the size it was first set to");
  slot.data = x.data();
  slot.size = x.size();
}

lowp::Kernel make_quantize_slot(FeedSlot& slot, OutBytes y, float scale, int zp, int qmin,
                                int qmax, int threads) {
  if (slot.data == nullptr || slot.size != y.size())
    throw std::invalid_argument("quantize_slot needs a set slot of y's size");
  const lowp::QuantArgs a =
      quant_args(nullptr, y.data(), int64_t(y.size()), scale, zp, qmin, qmax);
  const FeedSlot* from = &slot;
  return [a, threads, from, y] {
    lowp::QuantArgs b = a;
    b.x = from->data;
    lowp::run_quantize(b, threads);
  };
}

lowp::Kernel make_quantize_to_channels_last_slot(
    FeedSlot& slot, int64_t n, int64_t c, int64_t s,
    nb::ndarray<uint8_t, nb::ndim<3>, nb::c_contig, nb::device::cpu> y, float scale, int zp,
    int qmin, int qmax, int threads) {
  if (slot.data == nullptr || slot.size != size_t(n * c * s) || y.shape(0) != size_t(n) ||
      y.shape(1) != size_t(s) || y.shape(2) != size_t(c))
    throw std::invalid_argument("quantize_to_channels_last_slot needs a set slot of n * c * s "
                                "values and y of shape (n, s, c)");
  const lowp::QuantArgs a = quant_args(nullptr, y.data(), 0, scale, zp, qmin, qmax);
  const FeedSlot* from = &slot;
  return [a, n, c, s, threads, from, y] {
    lowp::QuantArgs b = a;
    b.x = from->data;
    lowp::run_quantize_to_channels_last(b, n, c, s, threads);
  };
}

lowp::Kernel make_quantize_to_channels_last(
    nb::ndarray<const float, nb::ndim<3>, nb::c_contig, nb::device::cpu> x,
    nb::ndarray<uint8_t, nb::ndim<3>, nb::c_contig, nb::device::cpu> y, float scale, int zp,
    int qmin, int qmax, int threads) {
  // x: (n, c, s) float32; y: (n, s, c)
  if (y.shape(0) != x.shape(0) || y.shape(1) != x.shape(2) || y.shape(2) != x.shape(1))
    throw std::invalid_argument("quantize_to_channels_last needs y of shape (n, s, c)");
  const lowp::QuantArgs a = quant_args(x.data(), y.data(), 0, scale, zp, qmin, qmax);
  const int64_t n = int64_t(x.shape(0)), c = int64_t(x.shape(1)), s = int64_t(x.shape(2));
  return [a, n, c, s, threads, x, y] {
    lowp::run_quantize_to_channels_last(a, n, c, s, threads);
  };
}

lowp::Kernel make_lookup8(Bytes x, Bytes table, OutBytes y, int64_t channels, int threads) {
  if (channels < 1 || x.size() != y.size() || table.size() != size_t(channels) * 256 ||
      (channels > 1 && x.size() % size_t(channels) != 0))
    throw std::invalid_argument("lut8 needs x and y of one size (a multiple of channels) "
                                "and channels * 256 table bytes");
  return [channels, threads, x, table, y] {
    lowp::run_lut8(x.data(), table.data(), y.data(), int64_t(x.size()), channels, threads);
  };
}

lowp::Kernel make_global_average_pool(
    nb::ndarray<const uint8_t, nb::ndim<3>, nb::c_contig, nb::device::cpu> x,
    nb::ndarray<uint8_t, nb::ndim<2>, nb::c_contig, nb::device::cpu> y, bool channels_last,
    bool x_signed, int x_zp, float scale, int mult, int lshift, int rshift, bool fixedpoint,
    int zp, int qmin, int qmax) {
  // x: (n, s, c) channels-last or (n, c, s) channels-first; y: (n, c)
  lowp::GapArgs a;
  a.n = int64_t(x.shape(0));
  a.s = int64_t(channels_last ? x.shape(1) : x.shape(2));
  a.c = int64_t(channels_last ? x.shape(2) : x.shape(1));
  if (int64_t(y.shape(0)) != a.n || int64_t(y.shape(1)) != a.c)
    throw std::invalid_argument("global_average_pool needs y of shape (n, c)");
  if (lshift < 0 || lshift > 31 || rshift < 0 || rshift > 62 || qmin > qmax)
    throw std::invalid_argument("global_average_pool requantization out of range");
  a.x = x.data();
  a.y = y.data();
  a.channels_last = channels_last;
  a.x_signed = x_signed;
  a.x_zp = x_zp;
  a.scale = scale;
  a.mult = mult;
  a.lshift = lshift;
  a.rshift = rshift;
  a.fixedpoint = fixedpoint;
  a.zp = zp;
  a.qmin = qmin;
  a.qmax = qmax;
  return [a, x, y] { lowp::run_global_average_pool(a); };
}

lowp::Kernel make_qaverage_pool2d(Bytes x, OutBytes y, Floats count,
                                  std::array<int64_t, 6> dims, std::array<int, 8> window,
                                  bool channels_last, bool x_signed, int x_zp, float x_scale,
                                  float y_scale, int y_zp, int qmin, int qmax, int threads) {
  // dims: n, c, h, w, oh, ow; window: kh, kw, sh, sw, dh, dw, ph, pw
  lowp::QAvgPoolArgs a;
  a.n = dims[0], a.c = dims[1], a.h = dims[2], a.w = dims[3], a.oh = dims[4], a.ow = dims[5];
  a.kh = window[0], a.kw = window[1], a.sh = window[2], a.sw = window[3];
  a.dh = window[4], a.dw = window[5], a.ph = window[6], a.pw = window[7];
  for (int64_t d : dims)
    if (d < 0) throw std::invalid_argument("qaverage_pool2d needs non-negative dims");
  for (int k = 0; k < 6; ++k)
    if (window[k] < 1) throw std::invalid_argument("qaverage_pool2d needs positive windows");
  if (window[6] < 0 || window[7] < 0 || qmin > qmax)
    throw std::invalid_argument("qaverage_pool2d pads or bounds out of range");
  if (int64_t(x.size()) != a.n * a.c * a.h * a.w || int64_t(y.size()) != a.n * a.c * a.oh * a.ow ||
      int64_t(count.size()) != a.oh * a.ow)
    throw std::invalid_argument("qaverage_pool2d sizes do not match the dims");
  for (size_t i = 0; i < count.size(); ++i)
    if (!(count.data()[i] >= 1.0f)) throw std::invalid_argument("qaverage_pool2d counts < 1");
  a.x = x.data(), a.y = y.data(), a.count = count.data();
  a.channels_last = channels_last, a.x_signed = x_signed, a.x_zp = x_zp;
  a.x_scale = x_scale, a.y_scale = y_scale, a.y_zp = float(y_zp), a.qmin = qmin, a.qmax = qmax;
  return [a, threads, x, y, count] { lowp::run_qaverage_pool2d(a, threads); };
}

lowp::Kernel make_float_unary(int op, Floats x, OutFloats y, float alpha, float beta,
                              int threads) {
  // y = op(x) element-wise (ops: float_kernels.h FloatUnaryOp); y may be x
  if (op < 0 || op >= lowp::kUnaryCount) throw std::invalid_argument("unknown unary op");
  if (x.size() != y.size()) throw std::invalid_argument("float_unary needs same sizes");
  return [op, alpha, beta, threads, x, y] {
    lowp::run_float_unary(op, x.data(), y.data(), int64_t(x.size()), alpha, beta, threads);
  };
}

lowp::Kernel make_float_pool2d(Floats x, OutFloats y, const std::vector<int64_t>& dims,
                               const std::vector<int>& geo, bool average, bool include_pad,
                               int threads) {
  // dims: planes, h, w, oh, ow; geo: kh, kw, sh, sw, dh, dw, ph, pw, ph_end, pw_end, and
  // for a MaxPool optionally its order (float_kernels.h: kMaxMlasVector, kMaxNchwc)
  if (dims.size() != 5 || (geo.size() != 10 && geo.size() != 11))
    throw std::invalid_argument("float_pool2d needs 5 dims and 10 or 11 geometry integers");
  if (geo.size() == 11 && (average || (geo[10] != lowp::kMaxMlasVector &&
                                       geo[10] != lowp::kMaxNchwc)))
    throw std::invalid_argument("float_pool2d: unknown MaxPool order");
  for (int64_t d : dims)
    if (d < 0) throw std::invalid_argument("negative dimension");
  for (int i = 0; i < 6; ++i)
    if (geo[i] < 1) throw std::invalid_argument("kernel, strides and dilations must be >= 1");
  for (int i = 6; i < 10; ++i)
    if (geo[i] < 0) throw std::invalid_argument("negative padding");
  lowp::FloatPoolArgs a;
  a.x = x.data();
  a.y = y.data();
  a.planes = dims[0], a.h = dims[1], a.w = dims[2], a.oh = dims[3], a.ow = dims[4];
  a.kh = geo[0], a.kw = geo[1], a.sh = geo[2], a.sw = geo[3], a.dh = geo[4], a.dw = geo[5];
  a.ph = geo[6], a.pw = geo[7], a.ph_end = geo[8], a.pw_end = geo[9];
  a.average = average;
  a.include_pad = include_pad;
  a.max_order = geo.size() == 11 ? geo[10] : lowp::kMaxMlasVector;
  if (x.size() != size_t(a.planes * a.h * a.w) || y.size() != size_t(a.planes * a.oh * a.ow))
    throw std::invalid_argument("float_pool2d array sizes do not match the dims");
  return [a, threads, x, y] { lowp::run_float_pool(a, threads); };
}

lowp::Kernel make_float_mean_rows(Floats x, OutFloats y, int64_t n, int threads) {
  // y[r] = mean of x[r * n .. (r + 1) * n) in np.mean's order (global average pool)
  if (n < 1 || x.size() != y.size() * size_t(n))
    throw std::invalid_argument("float_mean_rows needs n >= 1 and x of y.size * n values");
  return [n, threads, x, y] {
    lowp::run_float_mean_rows(x.data(), y.data(), int64_t(y.size()), n, threads);
  };
}

lowp::Kernel make_float_sqrt(Floats x, OutFloats y, int threads) {
  // y = sqrt(x) element-wise (correctly rounded, as numpy); y may be x
  if (x.size() != y.size()) throw std::invalid_argument("float_sqrt needs same sizes");
  return [threads, x, y] {
    lowp::run_float_sqrt(x.data(), y.data(), int64_t(x.size()), threads);
  };
}

lowp::Kernel make_take(Bytes x, nb::ndarray<const int32_t, nb::ndim<1>, nb::c_contig,
                                            nb::device::cpu> map, Bytes fill, OutBytes y,
                       int itemsize, int threads) {
  // y[i] = x[map[i]], or fill[-1 - map[i]] for map[i] < 0 (elements of itemsize bytes);
  // every index is checked here, once, so the kernel never reads out of bounds
  if ((itemsize != 1 && itemsize != 2 && itemsize != 4 && itemsize != 8) ||
      y.size() != map.size() * size_t(itemsize) || x.size() % size_t(itemsize) != 0 ||
      fill.size() % size_t(itemsize) != 0)
    throw std::invalid_argument("take needs 1, 2, 4 or 8-byte elements and a map per output");
  const int64_t nx = int64_t(x.size()) / itemsize, nf = int64_t(fill.size()) / itemsize;
  for (size_t i = 0; i < map.size(); ++i) {
    const int64_t m = map.data()[i];
    if (m >= nx || -1 - m >= nf) throw std::invalid_argument("take map out of range");
  }
  lowp::TakeArgs a;
  a.x = x.data(), a.fill = fill.data(), a.map = map.data(), a.y = y.data();
  a.n = int64_t(map.size()), a.itemsize = itemsize;
  // a transposition of two axes (a layout conversion): tile by tile (the same bytes)
  lowp::TakeTranspose t;
  if (lowp::take_transpose(map.data(), a.n, &t))
    return [a, threads, x, map, fill, y, t] { lowp::run_take_transpose(a, t, threads); };
  // runs of 16 bytes or more on average: one memcpy per run (the same bytes)
  auto runs = std::make_shared<lowp::TakeRuns>(lowp::take_runs(map.data(), a.n));
  if (int64_t(runs->len.size()) * 16 <= a.n * itemsize)
    return [a, threads, x, map, fill, y, runs] { lowp::run_take_runs(a, *runs, threads); };
  return [a, threads, x, map, fill, y] { lowp::run_take(a, threads); };
}

lowp::Kernel make_copy_block(Bytes x, OutBytes y, int64_t rows, int64_t width, int64_t y_width,
                             int64_t offset, int threads) {
  // rows x width bytes of x into y (rows x y_width) at byte offset `offset` of each row
  if (rows < 0 || width < 0 || offset < 0 || offset + width > y_width ||
      x.size() != size_t(rows * width) || y.size() != size_t(rows * y_width))
    throw std::invalid_argument("copy_block needs x of rows * width bytes and y of rows * "
                                "y_width, the block inside each row");
  return [x, y, rows, width, y_width, offset, threads] {
    lowp::run_copy_block(x.data(), y.data(), rows, width, y_width, offset, threads);
  };
}

lowp::Kernel make_interleave_rows(std::vector<Bytes> parts, OutBytes y, int64_t rows,
                                  int64_t width) {
  // row r of y = row r of each part in turn (parts of rows x width bytes each)
  if (parts.empty() || rows < 0 || width < 0 ||
      y.size() != size_t(rows * width) * parts.size())
    throw std::invalid_argument("interleave_rows needs parts and y of rows * width * parts "
                                "bytes");
  std::vector<const uint8_t*> from;
  for (const Bytes& p : parts) {
    if (p.size() != size_t(rows * width))
      throw std::invalid_argument("interleave_rows needs parts of rows * width bytes");
    from.push_back(p.data());
  }
  return [parts, from, y, rows, width] {
    lowp::run_interleave_rows(from.data(), int64_t(from.size()), y.data(), rows, width);
  };
}

lowp::Kernel make_compare(int op, nb::ndarray<nb::ro, nb::device::cpu> a,
                          nb::ndarray<nb::ro, nb::device::cpu> b, OutBytes y,
                          const std::vector<int64_t>& dims,
                          const std::vector<int64_t>& a_strides,
                          const std::vector<int64_t>& b_strides, int type, int threads) {
  // y (contiguous bools, prod(dims)) = a op b read at element strides (0 on broadcast axes)
  // over four axes; a and b int64 (type 0), int32 (1) or float32 (2) of the same type
  static const size_t sizes[] = {8, 4, 4};
  if (op < 0 || op > 4 || type < 0 || type > 2)
    throw std::invalid_argument("compare: unknown op or type");
  if (dims.size() != 4 || a_strides.size() != 4 || b_strides.size() != 4)
    throw std::invalid_argument("compare needs 4 dims and 4 strides per operand");
  if (a.itemsize() != sizes[type] || b.itemsize() != sizes[type])
    throw std::invalid_argument("compare operands must both be of the given type");
  lowp::CompareArgs p;
  p.a = a.data(), p.b = b.data(), p.y = y.data(), p.op = op, p.type = type;
  int64_t total = 1, a_last = 0, b_last = 0;
  for (int i = 0; i < 4; ++i) {
    if (dims[i] < 0 || a_strides[i] < 0 || b_strides[i] < 0)
      throw std::invalid_argument("compare needs non-negative dims and strides");
    p.dims[i] = dims[i], p.a_st[i] = a_strides[i], p.b_st[i] = b_strides[i];
    total *= dims[i];
    if (dims[i] > 0) a_last += (dims[i] - 1) * a_strides[i], b_last += (dims[i] - 1) * b_strides[i];
  }
  if (size_t(total) != y.size() ||
      (total > 0 && (size_t(a_last) >= a.size() || size_t(b_last) >= b.size())))
    throw std::invalid_argument("compare strides reach outside the arrays");
  if (negative_layout(a) || negative_layout(b))
    throw std::invalid_argument("compare needs a non-negative layout");
  return [p, threads, a, b, y] { lowp::run_compare(p, threads); };
}

lowp::Kernel make_integer_binary(int op, nb::ndarray<nb::ro, nb::device::cpu> a,
                                 nb::ndarray<nb::ro, nb::device::cpu> b,
                                 nb::ndarray<nb::c_contig, nb::device::cpu> y,
                                 const std::vector<int64_t>& dims,
                                 const std::vector<int64_t>& a_strides,
                                 const std::vector<int64_t>& b_strides, int type, int threads) {
  // y (contiguous, prod(dims)) = a op b read at element strides (0 on broadcast axes) over
  // four axes; a, b and y int64 (type 0), int32 (1) or bool bytes (2), all of that type
  static const size_t sizes[] = {8, 4, 1};
  if (op < 0 || op > 5 || type < 0 || type > 2 || (type == 2) != (op >= 3))
    throw std::invalid_argument("integer_binary: unknown op or type (add, sub, mul of "
                                "int64 or int32; and, or, xor of bools)");
  if (dims.size() != 4 || a_strides.size() != 4 || b_strides.size() != 4)
    throw std::invalid_argument("integer_binary needs 4 dims and 4 strides per operand");
  if (a.itemsize() != sizes[type] || b.itemsize() != sizes[type] || y.itemsize() != sizes[type])
    throw std::invalid_argument("integer_binary arrays must all be of the given type");
  lowp::IntegerBinaryArgs p;
  p.a = a.data(), p.b = b.data(), p.y = y.data(), p.op = op, p.type = type;
  int64_t total = 1, a_last = 0, b_last = 0;
  for (int i = 0; i < 4; ++i) {
    if (dims[i] < 0 || a_strides[i] < 0 || b_strides[i] < 0)
      throw std::invalid_argument("integer_binary needs non-negative dims and strides");
    p.dims[i] = dims[i], p.a_st[i] = a_strides[i], p.b_st[i] = b_strides[i];
    total *= dims[i];
    if (dims[i] > 0) a_last += (dims[i] - 1) * a_strides[i], b_last += (dims[i] - 1) * b_strides[i];
  }
  if (size_t(total) != y.size() ||
      (total > 0 && (size_t(a_last) >= a.size() || size_t(b_last) >= b.size())))
    throw std::invalid_argument("integer_binary strides reach outside the arrays");
  if (negative_layout(a) || negative_layout(b))
    throw std::invalid_argument("integer_binary needs a non-negative layout");
  return [p, threads, a, b, y] { lowp::run_integer_binary(p, threads); };
}

lowp::Kernel make_where(nb::ndarray<nb::ro, nb::device::cpu> c,
                        nb::ndarray<nb::ro, nb::device::cpu> a,
                        nb::ndarray<nb::ro, nb::device::cpu> b,
                        nb::ndarray<nb::c_contig, nb::device::cpu> y,
                        const std::vector<int64_t>& dims, const std::vector<int64_t>& c_strides,
                        const std::vector<int64_t>& a_strides,
                        const std::vector<int64_t>& b_strides, int threads,
                        int float_zero) {
  // y (contiguous, prod(dims)) = c ? a : b read at element strides (0 on broadcast axes)
  // over four axes; c bools, a, b and y of one element size (1, 2, 4 or 8 bytes);
  // float_zero (floats of 2, 4 or 8 bytes): 1, a -0 taken from a written as +0; 2, from b
  const size_t size = y.itemsize();
  if (c.itemsize() != 1 || a.itemsize() != size || b.itemsize() != size ||
      (size != 1 && size != 2 && size != 4 && size != 8))
    throw std::invalid_argument("where needs bools and a, b, y of one element size");
  if (dims.size() != 4 || c_strides.size() != 4 || a_strides.size() != 4 ||
      b_strides.size() != 4)
    throw std::invalid_argument("where needs 4 dims and 4 strides per operand");
  lowp::WhereArgs p;
  p.c = static_cast<const uint8_t*>(c.data()), p.a = a.data(), p.b = b.data(), p.y = y.data();
  p.size = int(size);
  if (float_zero < 0 || float_zero > 2 || (float_zero && size == 1))
    throw std::invalid_argument("where's float_zero is 0, or 1 or 2 for floats");
  p.float_zero = float_zero;
  int64_t total = 1, c_last = 0, a_last = 0, b_last = 0;
  for (int i = 0; i < 4; ++i) {
    if (dims[i] < 0 || c_strides[i] < 0 || a_strides[i] < 0 || b_strides[i] < 0)
      throw std::invalid_argument("where needs non-negative dims and strides");
    p.dims[i] = dims[i], p.c_st[i] = c_strides[i], p.a_st[i] = a_strides[i];
    p.b_st[i] = b_strides[i];
    total *= dims[i];
    if (dims[i] > 0) {
      c_last += (dims[i] - 1) * c_strides[i], a_last += (dims[i] - 1) * a_strides[i];
      b_last += (dims[i] - 1) * b_strides[i];
    }
  }
  if (size_t(total) != y.size() ||
      (total > 0 && (size_t(c_last) >= c.size() || size_t(a_last) >= a.size() ||
                     size_t(b_last) >= b.size())))
    throw std::invalid_argument("where strides reach outside the arrays");
  for (const auto* v : {&c, &a, &b})
    if (negative_layout(*v)) throw std::invalid_argument("where needs a non-negative layout");
  return [p, threads, c, a, b, y] { lowp::run_where(p, threads); };
}

lowp::Kernel make_gather_rows(Bytes x,
                              nb::ndarray<nb::ro, nb::ndim<1>, nb::c_contig, nb::device::cpu> idx,
                              OutBytes y, int64_t outer, int64_t n, int64_t row,
                              nb::ndarray<int64_t, nb::shape<2>, nb::c_contig, nb::device::cpu>
                                  status,
                              int threads) {
  // y (outer, m, row bytes) = rows of x (outer, n, row bytes) at idx (m, int64 or int32); an
  // index out of [-n, n) is reported in status (read by the caller after every run), never
  // read
  const int64_t m = int64_t(idx.size());
  const bool wide = idx.dtype() == nb::dtype<int64_t>();
  if (!wide && idx.dtype() != nb::dtype<int32_t>())
    throw std::invalid_argument("gather_rows needs int64 or int32 indices");
  if (outer < 0 || n < 0 || row < 0 || x.size() != size_t(outer * n * row) ||
      y.size() != size_t(outer * m * row))
    throw std::invalid_argument("gather_rows needs x of outer * n * row bytes and y of "
                                "outer * len(idx) * row bytes");
  return [x, idx, wide, y, outer, n, m, row, status, threads] {
    if (wide)
      lowp::run_gather_rows(x.data(), static_cast<const int64_t*>(idx.data()), y.data(), outer,
                            n, m, row, status.data(), threads);
    else
      lowp::run_gather_rows(x.data(), static_cast<const int32_t*>(idx.data()), y.data(), outer,
                            n, m, row, status.data(), threads);
  };
}

lowp::Kernel make_cast_from_float(Floats x, nb::ndarray<nb::c_contig, nb::device::cpu> y,
                                  int threads) {
  // y = numpy's np.trunc(x).astype(y.dtype) for y int32 or int64: truncation toward zero;
  // NaN and values outside the type's range give its lowest value (the x86 conversion's
  // "integer indefinite", as numpy's cast gives it there)
  const bool wide = y.dtype() == nb::dtype<int64_t>();
  if ((!wide && y.dtype() != nb::dtype<int32_t>()) || y.size() != x.size())
    throw std::invalid_argument("cast_from_float needs y of int32 or int64, one per element");
  return [x, y, wide, threads] {
    const int64_t n = int64_t(x.size());
    const float* in = x.data();
    void* out = y.data();
    lowp::run_elementwise(n, int64_t(1) << 14, threads, [&](int64_t i0, int64_t len) {
      if (wide) {
        auto* o = static_cast<int64_t*>(out);
        for (int64_t i = i0; i < i0 + len; ++i) {
          const float v = in[i];
          o[i] = (v >= -9223372036854775808.0f && v < 9223372036854775808.0f)
                     ? static_cast<int64_t>(v)
                     : std::numeric_limits<int64_t>::min();
        }
      } else {
        auto* o = static_cast<int32_t*>(out);
        for (int64_t i = i0; i < i0 + len; ++i) {
          const float v = in[i];
          o[i] = (v >= -2147483648.0f && v < 2147483648.0f)
                     ? static_cast<int32_t>(v)
                     : std::numeric_limits<int32_t>::min();
        }
      }
    });
  };
}

// Element types of cast_integer, one_hot and arg_max (lowp.runtime.native_float.INT_CODES)
template <typename F>
void with_int_type(int code, F&& f) {
  switch (code) {
    case 0: f(int64_t{}); break;
    case 1: f(int32_t{}); break;
    case 2: f(uint8_t{}); break;
    case 3: f(int8_t{}); break;
    default: f(bool{}); break;
  }
}

size_t int_code_size(int code) {
  static const size_t sizes[] = {8, 4, 1, 1, 1};
  return code >= 0 && code <= 4 ? sizes[code] : 0;
}

lowp::Kernel make_cast_integer(nb::ndarray<nb::ro, nb::c_contig, nb::device::cpu> x,
                               nb::ndarray<nb::c_contig, nb::device::cpu> y, int x_code,
                               int y_code) {
  // y = x.astype(y's type) between int64 (code 0), int32 (1), uint8 (2), int8 (3) and bool
  // (4) as numpy converts: to bool x != 0, from bool 0 or 1, else the value modulo 2^bits
  // (two's complement)
  const size_t xs = int_code_size(x_code), ys = int_code_size(y_code);
  if (xs == 0 || ys == 0 || x.nbytes() != x.size() * xs || y.nbytes() != y.size() * ys ||
      x.size() != y.size())
    throw std::invalid_argument("cast_integer needs x and y of the codes' types, one per element");
  return [x, y, x_code, y_code] {
    const int64_t n = int64_t(x.size());
    const void* src = x.data();
    void* dst = y.data();
    with_int_type(x_code, [&](auto xt) {
      using X = decltype(xt);
      with_int_type(y_code, [&](auto yt) {
        using Y = decltype(yt);
        const X* in = static_cast<const X*>(src);
        Y* out = static_cast<Y*>(dst);
        for (int64_t i = 0; i < n; ++i) {
          if constexpr (std::is_same_v<Y, bool>)
            out[i] = in[i] != X{};
          else
            out[i] = static_cast<Y>(in[i]);     // (C++20: modulo 2^bits, as numpy wraps)
        }
      });
    });
  };
}

lowp::Kernel make_one_hot(nb::ndarray<nb::ro, nb::c_contig, nb::device::cpu> indices,
                          OutFloats y, int code, int64_t depth, float off, float on) {
  // y (n x depth) = on where an index (integer, code as cast_integer's but bool; negative
  // ones counted from depth) equals the column, off elsewhere; an index outside
  // [-depth, depth) gives a row of off (lowp.runtime.float_ops.OneHot, axis -1)
  const size_t size = int_code_size(code);
  if (code < 0 || code > 3 || depth < 1 || indices.nbytes() != indices.size() * size ||
      y.size() != indices.size() * size_t(depth))
    throw std::invalid_argument("one_hot needs integer indices and y of n x depth floats");
  return [indices, y, code, depth, off, on] {
    const int64_t n = int64_t(indices.size());
    float* out = y.data();
    with_int_type(code, [&](auto t) {
      using T = decltype(t);
      const T* idx = static_cast<const T*>(indices.data());
      for (int64_t i = 0; i < n; ++i) {
        int64_t k = int64_t(idx[i]);
        if (k < 0) k += depth;
        float* row = out + i * depth;
        for (int64_t j = 0; j < depth; ++j) row[j] = off;
        if (k >= 0 && k < depth) row[k] = on;
      }
    });
  };
}

// ONNX Runtime's ArgMax of a whole 1-D float32 input without select_last_index: Eigen's
// maxCoeff(&index) over four-lane packets from the first value (fewer values: the scalar
// rule). A packet's index is the scalar rule within it (lane 0 if a NaN); the value kept is
// std::max(std::max(p0, p2), std::max(p1, p3)) (a NaN kept when it is the first operand); a
// later packet replaces both when its largest non-NaN value is larger than the kept one;
// the tail values after, one by one (lowp.runtime.float_ops._ort_arg_whole, (O121))
static int64_t arg_max_whole(const float* v, int64_t n) {
  constexpr int64_t lanes = 4;
  auto scalar = [](const float* p, int64_t m) {
    float r = p[0];
    int64_t best = 0;
    for (int64_t j = 1; j < m; ++j)
      if (p[j] > r) r = p[j], best = j;
    return best;
  };
  if (n < lanes) return scalar(v, n);
  auto kept = [](const float* p) {
    auto mx = [](float a, float b) { return a < b ? b : a; };
    return mx(mx(p[0], p[2]), mx(p[1], p[3]));
  };
  float value = kept(v);
  int64_t best = scalar(v, lanes), k = lanes;
  for (; k + lanes <= n; k += lanes) {
    const float* p = v + k;
    bool any = false;
    float top = 0.0f;
    for (int64_t j = 0; j < lanes; ++j)
      if (p[j] == p[j] && (!any || p[j] > top)) top = p[j], any = true;
    if (any && top > value) value = kept(p), best = k + scalar(p, lanes);
  }
  for (; k < n; ++k)
    if (v[k] > value) value = v[k], best = k;
  return best;
}

lowp::Kernel make_arg_max(Floats x, nb::ndarray<int64_t, nb::c_contig, nb::device::cpu> y,
                          int64_t outer, int64_t n, int64_t inner, bool last, bool whole) {
  // y[o, i] = ONNX Runtime's ArgMax of x[o, :, i] (x outer x n x inner): from the first
  // value, each later one taken when it is larger (`last`, ArgMax select_last_index: or
  // equal), so a NaN is never taken and a NaN first value is kept (docs/operators.md (O121));
  // `whole` (a 1-D input without select_last_index): arg_max_whole
  if (outer < 0 || n < 1 || inner < 0 || int64_t(x.size()) != outer * n * inner ||
      int64_t(y.size()) != outer * inner || (whole && (outer != 1 || inner != 1 || last)))
    throw std::invalid_argument("arg_max needs x of outer x n x inner and y of outer x inner");
  return [x, y, outer, n, inner, last, whole] {
    const float* in = x.data();
    int64_t* out = y.data();
    if (whole) {
      out[0] = arg_max_whole(in, n);
      return;
    }
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        const float* col = in + o * n * inner + i;
        int64_t best = 0;
        float v = col[0];
        for (int64_t j = 1; j < n; ++j) {
          const float u = col[j * inner];
          if (u > v || (last && u == v)) v = u, best = j;
        }
        out[o * inner + i] = best;
      }
  };
}

lowp::Kernel make_set_slice(Bytes x, Bytes value,
                            nb::ndarray<nb::ro, int64_t, nb::c_contig, nb::device::cpu> start,
                            nb::ndarray<nb::ro, int64_t, nb::c_contig, nb::device::cpu> end,
                            OutBytes y, int64_t outer, int64_t d, int64_t inner,
                            nb::ndarray<int64_t, nb::c_contig, nb::device::cpu> status) {
  // y = x (outer x d x inner bytes) with y[o, s:m, :] = value[o, :] for s = start[0],
  // m = min(d, end[0]) where 0 <= s <= m (status 0); else y = x and status 1, and the
  // caller computes the step otherwise (lowp.runtime.set_slice)
  if (outer < 0 || d < 0 || inner < 0 || int64_t(x.size()) != outer * d * inner ||
      y.size() != x.size() || int64_t(value.size()) != outer * inner || start.size() != 1 ||
      end.size() != 1 || status.size() < 1)
    throw std::invalid_argument("set_slice needs x and y of outer x d x inner bytes");
  return [x, value, start, end, y, outer, d, inner, status] {
    uint8_t* out = y.data();
    if (out != x.data()) std::memcpy(out, x.data(), x.size());
    const int64_t s = start.data()[0], m = std::min(d, end.data()[0]);
    if (s < 0 || s > m) {
      status.data()[0] = 1;
      return;
    }
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t j = s; j < m; ++j)
        std::memcpy(out + (o * d + j) * inner, value.data() + o * inner, size_t(inner));
    status.data()[0] = 0;
  };
}

lowp::Kernel make_scatter_nd(Bytes x, nb::ndarray<nb::ro, nb::c_contig, nb::device::cpu> indices,
                             Bytes updates, OutBytes y, const std::vector<int64_t>& dims,
                             int64_t slice, int itemsize, int reduction, int type,
                             nb::ndarray<int64_t, nb::c_contig, nb::device::cpu> status) {
  // y = x (dims..., slice elements of itemsize bytes) with the slices at indices (count x
  // depth, int64 or int32, depth = len(dims), read at run time) written (reduction 0) or
  // added (1) / multiplied (2) into as `type` (lowp::ScatterType); an index out of range
  // leaves y = x and sets status[0] = 1, status[1] = it (scatter_nd.h)
  const bool wide = indices.dtype() == nb::dtype<int64_t>();
  if (!wide && indices.dtype() != nb::dtype<int32_t>())
    throw std::invalid_argument("scatter_nd needs int64 or int32 indices");
  static const int type_sizes[] = {4, 8, 8, 4};
  const int64_t depth = int64_t(dims.size());
  int64_t elements = slice;
  for (int64_t d : dims) elements = d < 0 ? -1 : elements * d;
  if (depth < 1 || slice < 0 || elements < 0 || itemsize < 1 || reduction < 0 ||
      reduction > 2 || type < 0 || type > 3 ||
      (reduction != 0 && itemsize != type_sizes[type]) || status.size() < 2 ||
      int64_t(indices.size()) % depth != 0 || int64_t(x.size()) != elements * itemsize ||
      y.size() != x.size() ||
      int64_t(updates.size()) != int64_t(indices.size()) / depth * slice * itemsize)
    throw std::invalid_argument("scatter_nd needs x of dims x slice elements, indices of "
                                "count x len(dims), updates of count slices, y of x's size");
  lowp::ScatterNDArgs a;
  a.x = x.data(), a.indices = indices.data(), a.wide = wide, a.updates = updates.data();
  a.y = y.data(), a.depth = int(depth), a.count = int64_t(indices.size()) / depth;
  a.slice = slice, a.itemsize = itemsize;
  a.reduction = static_cast<lowp::ScatterReduction>(reduction);
  a.type = static_cast<lowp::ScatterType>(type);
  return [a, dims, x, indices, updates, y, status]() mutable {
    a.dims = dims.data();
    lowp::run_scatter_nd(a, status.data());
  };
}

lowp::Kernel make_cast_to_float(nb::ndarray<nb::ro, nb::c_contig, nb::device::cpu> x,
                                OutFloats y, int code, int threads) {
  // y = float32(x) for x int64 (code 0), int32 (1), uint8 (2), int8 (3) or bool (4): the
  // C conversion numpy's astype makes (round to nearest for wide integers)
  static const size_t sizes[] = {8, 4, 1, 1, 1};
  if (code < 0 || code > 4 || x.nbytes() != y.size() * sizes[code])
    throw std::invalid_argument("cast_to_float needs one float per element");
  return [x, y, code, threads] {
    const int64_t n = int64_t(y.size());
    float* out = y.data();
    const void* src = x.data();
    lowp::run_elementwise(n, int64_t(1) << 14, threads, [&](int64_t i0, int64_t len) {
      switch (code) {
        case 0: for (int64_t i = i0; i < i0 + len; ++i)
                  out[i] = float(static_cast<const int64_t*>(src)[i]); break;
        case 1: for (int64_t i = i0; i < i0 + len; ++i)
                  out[i] = float(static_cast<const int32_t*>(src)[i]); break;
        case 2: for (int64_t i = i0; i < i0 + len; ++i)
                  out[i] = float(static_cast<const uint8_t*>(src)[i]); break;
        case 3: for (int64_t i = i0; i < i0 + len; ++i)
                  out[i] = float(static_cast<const int8_t*>(src)[i]); break;
        default: for (int64_t i = i0; i < i0 + len; ++i)
                   out[i] = static_cast<const uint8_t*>(src)[i] ? 1.0f : 0.0f;
      }
    });
  };
}

lowp::Kernel make_matmul_nbits_lanes(Floats x, Floats scale, Floats bblk, Bytes w_lanes,
                                     Bytes w_rem, Vec<int32_t> perm, Vec<int32_t> lane_block,
                                     Bytes wp_lanes, Bytes wp_rem, Floats scale_p,
                                     Floats bblk_p, Floats bias, bool has_bias, OutFloats y,
                                     int64_t m, int64_t k, int64_t n, int64_t block,
                                     int64_t group, int64_t rem_lanes, bool pair_fold16,
                                     int threads) {
  // y (m x n) = MatMulNBits of x (m x k float32) in blocks of 16, 64 or 128 (scale, bblk
  // n x blocks; w_lanes n x groups x 16 x 8 lane-major, w_rem n x rem x block; perm the
  // group's positions in lane order, lane_block each lane's block), as
  // lowp.ops.matmul_nbits.PackedNBits._rows_lanes (native/matmul_nbits.h); wp_lanes, wp_rem,
  // scale_p, bblk_p the same in panels of 16 columns
  const bool shape_ok = (block == 16 && group == 8 && rem_lanes == 8) ||
                        (block == 64 && group == 2 && rem_lanes == 16) ||
                        (block == 128 && group == 1 && rem_lanes == 16);
  const int64_t blocks = shape_ok ? (k + block - 1) / block : 0;
  const int64_t groups = shape_ok ? blocks / group : 0, rem = blocks - groups * group;
  const int64_t panels = (n + 15) / 16;
  if (!shape_ok || m < 0 || k < 1 || n < 0 || int64_t(x.size()) != m * k ||
      int64_t(y.size()) != m * n || int64_t(scale.size()) != n * blocks ||
      int64_t(bblk.size()) != n * blocks || (has_bias && int64_t(bias.size()) != n) ||
      int64_t(w_lanes.size()) != n * groups * 128 || int64_t(w_rem.size()) != n * rem * block ||
      int64_t(perm.size()) != group * block || int64_t(lane_block.size()) != 16 ||
      int64_t(wp_lanes.size()) != panels * groups * 2048 ||
      int64_t(wp_rem.size()) != panels * rem * rem_lanes * 64 ||
      int64_t(scale_p.size()) != panels * blocks * 16 ||
      int64_t(bblk_p.size()) != panels * blocks * 16)
    throw std::invalid_argument("matmul_nbits_lanes array sizes do not match m, k, n, block");
  for (size_t i = 0; i < perm.size(); ++i)
    if (perm.data()[i] < 0 || perm.data()[i] >= group * block)
      throw std::invalid_argument("matmul_nbits_lanes: perm out of range");
  for (size_t i = 0; i < 16; ++i)
    if (lane_block.data()[i] < 0 || lane_block.data()[i] >= group)
      throw std::invalid_argument("matmul_nbits_lanes: lane_block out of range");
  return [=] {
    lowp::NBitsArgs a;
    a.x = x.data();
    a.scale = scale.data();
    a.bblk = bblk.data();
    a.bias = has_bias ? bias.data() : nullptr;
    a.y = y.data();
    a.m = m;
    a.k = k;
    a.n = n;
    a.blocks = blocks;
    a.block = block;
    a.group = group;
    a.groups = groups;
    a.rem = rem;
    a.rem_lanes = rem_lanes;
    a.w_lanes = w_lanes.data();
    a.w_rem = w_rem.data();
    a.perm = perm.data();
    a.lane_block = lane_block.data();
    a.pair_fold16 = pair_fold16;
    a.wp_lanes = wp_lanes.data();
    a.wp_rem = wp_rem.data();
    a.scale_p = scale_p.data();
    a.bblk_p = bblk_p.data();
    lowp::run_matmul_nbits(a, threads);
  };
}

lowp::Kernel make_matmul_nbits(Floats x, Bytes w, Floats scale, Floats bblk, Bytes wp,
                               Floats scale_p, Floats bblk_p, Floats bias, bool has_bias,
                               OutFloats y, int64_t m, int64_t k, int64_t n, int threads) {
  // y (m x n) = MatMulNBits of x (m x k float32) and w (n x blocks x 32 uint8, scale and
  // bblk n x blocks, bias n when has_bias), as lowp.ops.matmul_nbits (native/matmul_nbits.h);
  // wp, scale_p, bblk_p the same in panels of 16 columns
  const int64_t blocks = (k + 31) / 32, panels = (n + 15) / 16;
  if (m < 0 || k < 1 || n < 0 || int64_t(x.size()) != m * k || int64_t(y.size()) != m * n ||
      int64_t(w.size()) != n * blocks * 32 || int64_t(scale.size()) != n * blocks ||
      int64_t(bblk.size()) != n * blocks || (has_bias && int64_t(bias.size()) != n) ||
      int64_t(wp.size()) != panels * blocks * 512 ||
      int64_t(scale_p.size()) != panels * blocks * 16 ||
      int64_t(bblk_p.size()) != panels * blocks * 16)
    throw std::invalid_argument("matmul_nbits array sizes do not match m, k, n");
  return [=] {
    lowp::NBitsArgs a;
    a.x = x.data();
    a.w = w.data();
    a.scale = scale.data();
    a.bblk = bblk.data();
    a.wp = wp.data();
    a.scale_p = scale_p.data();
    a.bblk_p = bblk_p.data();
    a.bias = has_bias ? bias.data() : nullptr;
    a.y = y.data();
    a.m = m;
    a.k = k;
    a.n = n;
    a.blocks = blocks;
    lowp::run_matmul_nbits(a, threads);
  };
}

lowp::Kernel make_cast_half(nb::ndarray<nb::ro, nb::c_contig, nb::device::cpu> x,
                            nb::ndarray<nb::c_contig, nb::device::cpu> y, bool to_half,
                            int threads) {
  // to_half: y (float16 bits, uint16) = x (float32) rounded to nearest even; else y
  // (float32) = x (float16 bits): F16C, as ONNX Runtime's Cast (native/cast_half.h)
  if (!lowp::has_f16c()) throw std::invalid_argument("cast_half needs F16C");
  if (x.size() != y.size() || x.nbytes() != x.size() * (to_half ? 4 : 2) ||
      y.nbytes() != y.size() * (to_half ? 2 : 4))
    throw std::invalid_argument("cast_half needs float32 and float16 of one size");
  return [x, y, to_half, threads] {
    const int64_t n = int64_t(x.size());
    if (to_half)
      lowp::float_to_half(static_cast<const float*>(x.data()), static_cast<uint16_t*>(y.data()),
                          n, threads);
    else
      lowp::half_to_float(static_cast<const uint16_t*>(x.data()), static_cast<float*>(y.data()),
                          n, threads);
  };
}

using Index32 = nb::ndarray<const int32_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

// Throws unless `v` has `count` values, each in [0, hi] (`hi` < 0: any value).
template <typename V>
void check_bilinear_axis(const V& v, int64_t count, double hi, const char* kernel,
                         const char* what) {
  if (int64_t(v.size()) != count)
    throw std::invalid_argument(std::string(kernel) + ": " + what + " size");
  if (hi < 0) return;
  for (size_t i = 0; i < v.size(); ++i)
    if (!(v.data()[i] >= 0 && double(v.data()[i]) <= hi))
      throw std::invalid_argument(std::string(kernel) + ": " + what + " out of range");
}

lowp::Kernel make_bilinear_integer(Bytes x, OutBytes y, std::vector<int64_t> dims,
                                   Index32 y1, Index32 y2, Index32 dy1, Index32 dy2,
                                   Index32 x1, Index32 x2, Index32 dx1, Index32 dx2,
                                   bool is_signed, int threads) {
  // dims: outer, h, w, inner, out_h, out_w; every index and distance is checked here, once
  if (dims.size() != 6)
    throw std::invalid_argument("bilinear_integer needs dims (outer, h, w, inner, out_h, out_w)");
  lowp::BilinearArgs a;
  a.outer = dims[0], a.h = dims[1], a.w = dims[2], a.inner = dims[3], a.out_h = dims[4],
  a.out_w = dims[5];
  for (int64_t d : dims)
    if (d < 0) throw std::invalid_argument("bilinear_integer: negative size");
  if (x.size() != size_t(a.outer * a.h * a.w * a.inner) ||
      y.size() != size_t(a.outer * a.out_h * a.out_w * a.inner))
    throw std::invalid_argument("bilinear_integer: x or y does not match dims");
  if (a.out_h * a.out_w * a.outer * a.inner > 0) {
    const char* k = "bilinear_integer";
    check_bilinear_axis(y1, a.out_h, double(a.h - 1), k, "y1");
    check_bilinear_axis(y2, a.out_h, double(a.h - 1), k, "y2");
    check_bilinear_axis(x1, a.out_w, double(a.w - 1), k, "x1");
    check_bilinear_axis(x2, a.out_w, double(a.w - 1), k, "x2");
    check_bilinear_axis(dy1, a.out_h, 1024, k, "dy1");
    check_bilinear_axis(dy2, a.out_h, 1024, k, "dy2");
    check_bilinear_axis(dx1, a.out_w, 1024, k, "dx1");
    check_bilinear_axis(dx2, a.out_w, 1024, k, "dx2");
  }
  a.x = x.data(), a.y = y.data(), a.is_signed = is_signed;
  a.y1 = y1.data(), a.y2 = y2.data(), a.dy1 = dy1.data(), a.dy2 = dy2.data();
  a.x1 = x1.data(), a.x2 = x2.data(), a.dx1 = dx1.data(), a.dx2 = dx2.data();
  return [a, threads, x, y, y1, y2, dy1, dy2, x1, x2, dx1, dx2] {
    lowp::run_bilinear_integer(a, threads);
  };
}

lowp::Kernel make_bilinear_float(Floats x, OutFloats y, std::vector<int64_t> dims,
                                 Index32 y1, Index32 y2, Vec<float> dy1, Vec<float> dy2,
                                 Index32 x1, Index32 x2, Vec<float> dx1, Vec<float> dx2,
                                 int threads) {
  // dims: outer, h, w, inner, out_h, out_w; every index is checked here, once
  if (dims.size() != 6)
    throw std::invalid_argument("bilinear_float needs dims (outer, h, w, inner, out_h, out_w)");
  for (int64_t d : dims)
    if (d < 0) throw std::invalid_argument("bilinear_float: negative size");
  lowp::BilinearFloatArgs a;
  a.outer = dims[0], a.h = dims[1], a.w = dims[2], a.inner = dims[3], a.out_h = dims[4],
  a.out_w = dims[5];
  if (x.size() != size_t(a.outer * a.h * a.w * a.inner) ||
      y.size() != size_t(a.outer * a.out_h * a.out_w * a.inner))
    throw std::invalid_argument("bilinear_float: x or y does not match dims");
  if (a.out_h * a.out_w * a.outer * a.inner > 0) {
    const char* k = "bilinear_float";
    check_bilinear_axis(y1, a.out_h, double(a.h - 1), k, "y1");
    check_bilinear_axis(y2, a.out_h, double(a.h - 1), k, "y2");
    check_bilinear_axis(x1, a.out_w, double(a.w - 1), k, "x1");
    check_bilinear_axis(x2, a.out_w, double(a.w - 1), k, "x2");
    check_bilinear_axis(dy1, a.out_h, -1, k, "dy1");
    check_bilinear_axis(dy2, a.out_h, -1, k, "dy2");
    check_bilinear_axis(dx1, a.out_w, -1, k, "dx1");
    check_bilinear_axis(dx2, a.out_w, -1, k, "dx2");
  }
  a.x = x.data(), a.y = y.data();
  a.y1 = y1.data(), a.y2 = y2.data(), a.dy1 = dy1.data(), a.dy2 = dy2.data();
  a.x1 = x1.data(), a.x2 = x2.data(), a.dx1 = dx1.data(), a.dx2 = dx2.data();
  return [a, threads, x, y, y1, y2, dy1, dy2, x1, x2, dx1, dx2] {
    lowp::run_bilinear_float(a, threads);
  };
}

lowp::Kernel make_float_softmax_rows(Floats x, OutFloats y, int64_t n, int threads, bool log) {
  // y (rows x n) = softmax (log: log-softmax) of each row of x in ONNX Runtime's AVX-512F
  // order
  if (n < 1 || x.size() != y.size() || x.size() % size_t(n) != 0)
    throw std::invalid_argument("float_softmax_rows needs n >= 1 and x, y of rows * n values");
  return [n, threads, x, y, log] {
    lowp::run_float_softmax_rows(x.data(), y.data(), int64_t(y.size()) / n, n, threads, log);
  };
}

lowp::Kernel make_float_softmax_axis(Floats x, OutFloats y, int64_t n, int64_t inner,
                                    int threads, bool log) {
  // y = softmax (log: log-softmax) of x viewed as (outer, n, inner) over its middle axis, each
  // column in ONNX Runtime's AVX-512F order (as float_softmax_rows on the moved axis)
  if (n < 1 || inner < 1 || x.size() != y.size() || x.size() % size_t(n * inner) != 0)
    throw std::invalid_argument(
        "float_softmax_axis needs n, inner >= 1 and x, y of outer * n * inner values");
  return [n, inner, threads, x, y, log] {
    lowp::run_float_softmax_axis(x.data(), y.data(), int64_t(y.size()) / (n * inner), n, inner,
                                 threads, log);
  };
}

lowp::Kernel make_float_layer_norm(Floats x, Floats scale, std::optional<Floats> bias,
                                   OutFloats y, OutFloats mean, OutFloats inv, int64_t n,
                                   float epsilon, int threads, bool welford) {
  // rows x n: y = LayerNormalization of each row in ONNX Runtime's order, mean and inv per row
  // (welford: its SkipLayerNormalization's order)
  if (n < 1 || x.size() != y.size() || x.size() % size_t(n) != 0 || scale.size() != size_t(n) ||
      (bias && bias->size() != size_t(n)) || mean.size() != x.size() / size_t(n) ||
      inv.size() != mean.size())
    throw std::invalid_argument("float_layer_norm needs x, y of rows * n, scale and bias of n, "
                                "mean and inv of rows values");
  return [x, scale, bias, y, mean, inv, n, epsilon, threads, welford] {
    lowp::LayerNormArgs a;
    a.x = x.data(), a.scale = scale.data(), a.bias = bias ? bias->data() : nullptr;
    a.y = y.data(), a.mean = mean.data(), a.inv = inv.data();
    a.rows = int64_t(mean.size()), a.n = n, a.epsilon = epsilon, a.welford = welford;
    lowp::run_float_layer_norm(a, threads);
  };
}

lowp::Kernel make_float_instance_norm(Floats x, Floats scale, Floats bias, OutFloats y,
                                      int64_t w, float epsilon, int threads) {
  // planes (N * C) x w: y = InstanceNormalization of each plane in ONNX Runtime's order,
  // scale and bias C values
  if (w < 1 || x.size() != y.size() || x.size() % size_t(w) != 0 || scale.size() < 1 ||
      bias.size() != scale.size() || (x.size() / size_t(w)) % scale.size() != 0)
    throw std::invalid_argument("float_instance_norm needs x, y of N * C * w values and "
                                "scale, bias of C values");
  return [x, scale, bias, y, w, epsilon, threads] {
    lowp::InstanceNormArgs a;
    a.x = x.data(), a.scale = scale.data(), a.bias = bias.data(), a.y = y.data();
    a.planes = int64_t(x.size()) / w, a.channels = int64_t(scale.size()), a.w = w;
    a.epsilon = epsilon;
    lowp::run_float_instance_norm(a, threads);
  };
}

lowp::Kernel make_float_attention(
    Floats q, Floats k, Floats v, std::optional<Floats> past_k, std::optional<Floats> past_v,
    std::optional<Floats> mask, std::optional<Bytes> bool_mask, std::optional<Vec<int64_t>> valid,
    OutFloats y, std::optional<OutFloats> present_k, std::optional<OutFloats> present_v,
    std::optional<OutFloats> qk, Vec<int64_t> dims, bool three_d, float scale, float softcap,
    float low, int mode, bool causal, bool fold, bool half, bool k_unit_ld, bool v_unit_ld,
    int threads, nb::ndarray<int64_t, nb::c_contig, nb::device::cpu> status,
    const FeedSlot* q_slot, const FeedSlot* k_slot, const FeedSlot* v_slot) {
  // One ONNX Attention node (float_attention.h); dims: batch, heads, kv_heads, seq, kv_seq,
  // past, head, v_head, mask_batch, mask_heads. A nonpad_kv_seqlen value outside [0, total]
  // (read when the kernel runs) sets status[0] = 1 and writes nothing; else status[0] = 0.
  // q_slot, k_slot, v_slot (or null): Q, K, V read through a feed slot set to an array of
  // q's, k's, v's size (lowp.runtime.replay: feeds read where the caller keeps them).
  const auto fail = [] {
    throw std::invalid_argument("float_attention: the arrays do not fit the dims");
  };
  if (dims.size() != 10 || status.size() < 1) fail();
  lowp::AttentionArgs a;
  const int64_t* d = dims.data();
  a.batch = d[0], a.heads = d[1], a.kv_heads = d[2], a.seq = d[3], a.kv_seq = d[4];
  a.past = d[5], a.head = d[6], a.v_head = d[7], a.mask_batch = d[8], a.mask_heads = d[9];
  for (int i = 0; i < 10; ++i)
    if (d[i] < 0) fail();
  const int64_t total = a.past + a.kv_seq;
  const auto sized = [](size_t size, int64_t want) { return int64_t(size) == want; };
  if (a.kv_heads < 1 || a.heads % a.kv_heads != 0 || mode < -1 || mode > 3 ||
      qk.has_value() != (mode >= 0) || (mask && bool_mask) ||
      !sized(q.size(), a.batch * a.heads * a.seq * a.head) ||
      !sized(k.size(), a.batch * a.kv_heads * a.kv_seq * a.head) ||
      !sized(v.size(), a.batch * a.kv_heads * a.kv_seq * a.v_head) ||
      !sized(y.size(), a.batch * a.heads * a.seq * a.v_head) ||
      past_k.has_value() != past_v.has_value() || (past_k && !(present_k && present_v)) ||
      (!past_k && a.past != 0) ||
      (past_k && !sized(past_k->size(), a.batch * a.kv_heads * a.past * a.head)) ||
      (past_v && !sized(past_v->size(), a.batch * a.kv_heads * a.past * a.v_head)) ||
      (present_k && !sized(present_k->size(), a.batch * a.kv_heads * total * a.head)) ||
      (present_v && !sized(present_v->size(), a.batch * a.kv_heads * total * a.v_head)) ||
      (qk && !sized(qk->size(), a.batch * a.heads * a.seq * total)) ||
      (valid && !sized(valid->size(), a.batch)) ||
      (a.mask_batch != 1 && a.mask_batch != a.batch) ||
      (a.mask_heads != 1 && a.mask_heads != a.heads))
    fail();
  const int64_t mask_size = a.mask_batch * a.mask_heads * a.seq * total;
  if ((mask && !sized(mask->size(), mask_size)) ||
      (bool_mask && !sized(bool_mask->size(), mask_size)))
    fail();
  if (half && !lowp::has_f16c())
    throw std::invalid_argument("float_attention: float16 rounding needs F16C");
  const auto slot_fits = [](const FeedSlot* slot, size_t size) {
    return slot == nullptr || (slot->data != nullptr && slot->size == size);
  };
  if (!slot_fits(q_slot, q.size()) || !slot_fits(k_slot, k.size()) ||
      !slot_fits(v_slot, v.size()))
    throw std::invalid_argument("float_attention: a slot is not set to an array of its size");
  a.three_d = three_d, a.scale = scale, a.softcap = softcap, a.low = low, a.mode = mode;
  a.causal = causal, a.fold = fold, a.half = half, a.k_unit_ld = k_unit_ld;
  a.v_unit_ld = v_unit_ld;
  return [a, q, k, v, past_k, past_v, mask, bool_mask, valid, y, present_k, present_v, qk,
          threads, status, q_slot, k_slot, v_slot]() mutable {
    a.q = q_slot != nullptr ? q_slot->data : q.data();
    a.k = k_slot != nullptr ? k_slot->data : k.data();
    a.v = v_slot != nullptr ? v_slot->data : v.data();
    a.y = y.data();
    a.past_k = past_k ? past_k->data() : nullptr, a.past_v = past_v ? past_v->data() : nullptr;
    a.mask = mask ? mask->data() : nullptr;
    a.bool_mask = bool_mask ? bool_mask->data() : nullptr;
    a.valid = valid ? valid->data() : nullptr;
    a.present_k = present_k ? present_k->data() : nullptr;
    a.present_v = present_v ? present_v->data() : nullptr;
    a.qk = qk ? qk->data() : nullptr;
    status.data()[0] = lowp::run_float_attention(a, threads) ? 0 : 1;
  };
}

lowp::Kernel make_float_simplified_layer_norm(Floats x, Floats scale, OutFloats y, OutFloats inv,
                                              int64_t n, float epsilon, int threads) {
  // rows x n: y = SimplifiedLayerNormalization (RMSNorm) of each row in ONNX Runtime's order,
  // inv = its inverse root per row
  if (n < 1 || x.size() != y.size() || x.size() % size_t(n) != 0 || scale.size() != size_t(n) ||
      inv.size() != x.size() / size_t(n))
    throw std::invalid_argument("float_simplified_layer_norm needs x, y of rows * n, scale of "
                                "n and inv of rows values");
  return [x, scale, y, inv, n, epsilon, threads] {
    lowp::LayerNormArgs a;
    a.x = x.data(), a.scale = scale.data(), a.y = y.data(), a.inv = inv.data();
    a.rows = int64_t(inv.size()), a.n = n, a.epsilon = epsilon;
    lowp::run_float_simplified_layer_norm(a, threads);
  };
}

lowp::Kernel make_float_reduce_sum(Floats x, OutFloats y, int64_t outer, int64_t k,
                                   int64_t inner, int form, bool mean, int threads) {
  // y (outer x inner) = ReduceSum / ReduceMean over k of x (outer x k x inner), ONNX
  // Runtime's order (float_reduce.h)
  if (outer < 1 || k < 1 || inner < 1 || x.size() != size_t(outer * k * inner) ||
      y.size() != size_t(outer * inner) || form < 0 || form > 4 ||
      (form == lowp::kReduceEigenRows && inner != 1))
    throw std::invalid_argument("float_reduce_sum needs x of outer * k * inner values, y of "
                                "outer * inner, a form 0..4 (0 with inner 1)");
  return [x, y, outer, k, inner, form, mean, threads] {
    lowp::ReduceArgs a;
    a.x = x.data(), a.y = y.data(), a.outer = outer, a.k = k, a.inner = inner;
    a.form = form, a.mean = mean;
    lowp::run_float_reduce_sum(a, threads);
  };
}

lowp::Kernel make_float_reduce_max(Floats x, OutFloats y, int64_t outer, int64_t k,
                                   int64_t inner, int pool, int threads) {
  // y (outer x inner) = ReduceMax over k of x (outer x k x inner) (float_reduce.h)
  if (outer < 1 || k < 1 || inner < 1 || x.size() != size_t(outer * k * inner) ||
      y.size() != size_t(outer * inner))
    throw std::invalid_argument("float_reduce_max needs x of outer * k * inner values and y "
                                "of outer * inner, all >= 1");
  if (pool < lowp::kPoolSet || pool > lowp::kPoolNchwc)
    throw std::invalid_argument("float_reduce_max: pool is 0, 1 or 2");
  return [x, y, outer, k, inner, pool, threads] {
    lowp::run_float_reduce_max(x.data(), y.data(), outer, k, inner, pool, threads);
  };
}

lowp::Kernel make_float_reduce_extreme(Floats x, OutFloats y, int64_t a, int64_t b,
                                       int64_t c, int form, bool is_min, int threads) {
  // ReduceMax / ReduceMin as ONNX Runtime takes them (float_reduce.h)
  const size_t outputs = form == lowp::kExtremeRows ? size_t(a)
                         : form == lowp::kExtremeRkr ? size_t(b)
                                                     : size_t(a * c);
  if (a < 1 || b < 1 || c < 1 || form < 0 || form > 3 || x.size() != size_t(a * b * c) ||
      y.size() != outputs || (form == lowp::kExtremeRows && c != 1))
    throw std::invalid_argument("float_reduce_extreme needs x of a * b * c values, a, b, c "
                                ">= 1, a form 0..3 (0 with c 1) and y of its outputs");
  return [x, y, a, b, c, form, is_min, threads] {
    lowp::run_float_reduce_extreme(x.data(), y.data(), a, b, c, form, is_min, threads);
  };
}

lowp::Kernel make_float_average_pool_rowmajor(Floats x, OutFloats y, Floats counts,
                                              const std::vector<int64_t>& dims,
                                              const std::vector<int>& geo, int threads) {
  // dims: planes, h, w, oh, ow; geo: kh, kw, sh, sw, dh, dw, ph, pw (begin pads;
  // float_reduce.h); counts: oh * ow divisors
  check_pool_geometry("float_average_pool_rowmajor", dims, 5, geo);
  lowp::AveragePoolRowMajorArgs a;
  a.planes = dims[0], a.h = dims[1], a.w = dims[2], a.oh = dims[3], a.ow = dims[4];
  a.kh = geo[0], a.kw = geo[1], a.sh = geo[2], a.sw = geo[3], a.dh = geo[4], a.dw = geo[5];
  a.ph = geo[6], a.pw = geo[7];
  if (x.size() != size_t(a.planes * a.h * a.w) || y.size() != size_t(a.planes * a.oh * a.ow) ||
      counts.size() != size_t(a.oh * a.ow))
    throw std::invalid_argument("float_average_pool_rowmajor array sizes do not match the dims");
  a.x = x.data(), a.y = y.data(), a.counts = counts.data();
  return [a, threads, x, y, counts] { lowp::run_float_average_pool_rowmajor(a, threads); };
}

lowp::Kernel make_float_max_pool_channels_last(Floats x, OutFloats y,
                                               const std::vector<int64_t>& dims,
                                               const std::vector<int>& geo, int threads) {
  // dims: n, h, w, c, oh, ow; geo: kh, kw, sh, sw, dh, dw, ph, pw (begin pads), order
  // (float_reduce.h)
  if (geo.size() != 9 || geo[8] < lowp::kMaxMlasVector || geo[8] > lowp::kMaxLoop)
    throw std::invalid_argument("float_max_pool_channels_last needs 9 geometry integers");
  check_pool_geometry("float_max_pool_channels_last", dims, 6,
                      std::vector<int>(geo.begin(), geo.begin() + 8));
  lowp::MaxPoolChannelsLastArgs a;
  a.n = dims[0], a.h = dims[1], a.w = dims[2], a.c = dims[3], a.oh = dims[4], a.ow = dims[5];
  a.kh = geo[0], a.kw = geo[1], a.sh = geo[2], a.sw = geo[3], a.dh = geo[4], a.dw = geo[5];
  a.ph = geo[6], a.pw = geo[7];
  a.order = geo[8];
  if (x.size() != size_t(a.n * a.h * a.w * a.c) || y.size() != size_t(a.n * a.oh * a.ow * a.c))
    throw std::invalid_argument("float_max_pool_channels_last array sizes do not match the dims");
  a.x = x.data(), a.y = y.data();
  return [a, threads, x, y] { lowp::run_float_max_pool_channels_last(a, threads); };
}

// The ends of consecutive runs of n values (lowp.eigen_math.assignment_runs): increasing,
// the last n; empty: one run.
void check_run_ends(const char* op, const std::vector<int64_t>& ends, size_t n) {
  int64_t last = 0;
  for (int64_t e : ends) {
    if (e <= last) throw std::invalid_argument(std::string(op) + " run ends must increase");
    last = e;
  }
  if (!ends.empty() && size_t(last) != n)
    throw std::invalid_argument(std::string(op) + " runs must end at the size");
}

lowp::Kernel make_float_log(Floats x, OutFloats y, const std::vector<int64_t>& ends,
                            int threads) {
  // y = log(x) element-wise as ONNX Runtime's Log (float_log.h), each run by itself; y may be x
  if (x.size() != y.size()) throw std::invalid_argument("float_log needs same sizes");
  check_run_ends("float_log", ends, x.size());
  return [threads, x, y, ends] {
    lowp::run_float_log(x.data(), y.data(), int64_t(x.size()), ends.data(),
                        int64_t(ends.size()), threads);
  };
}

lowp::Kernel make_float_elu(Floats x, OutFloats y, float alpha,
                            const std::vector<int64_t>& ends, int threads) {
  // y = Elu(x) element-wise as ONNX Runtime's float32 Elu (float_kernels.h), each run by
  // itself; y may be x
  if (x.size() != y.size()) throw std::invalid_argument("float_elu needs same sizes");
  check_run_ends("float_elu", ends, x.size());
  return [alpha, threads, x, y, ends] {
    lowp::run_float_elu(x.data(), y.data(), int64_t(x.size()), alpha, ends.data(),
                        int64_t(ends.size()), threads);
  };
}

lowp::Kernel make_float_floor(Floats x, OutFloats y, const std::vector<int64_t>& ends,
                              int threads) {
  // y = Floor(x) as ONNX Runtime's float32 Floor (float_exact.h), each run by itself; y may be x
  if (x.size() != y.size()) throw std::invalid_argument("float_floor needs same sizes");
  check_run_ends("float_floor", ends, x.size());
  return [x, y, ends, threads] {
    lowp::run_float_floor(x.data(), y.data(), int64_t(x.size()), ends.data(),
                          int64_t(ends.size()), threads);
  };
}

lowp::Kernel make_float_softplus(Floats x, OutFloats y, const std::vector<int64_t>& ends,
                                 int threads) {
  // y = Softplus(x) element-wise as ONNX Runtime's float32 Softplus (float_kernels.h), each
  // run by itself; y may be x
  if (x.size() != y.size()) throw std::invalid_argument("float_softplus needs same sizes");
  check_run_ends("float_softplus", ends, x.size());
  return [threads, x, y, ends] {
    lowp::run_float_softplus(x.data(), y.data(), int64_t(x.size()), ends.data(),
                             int64_t(ends.size()), threads);
  };
}

lowp::Kernel make_float_sincos(Floats x, OutFloats y, bool cosine, int threads) {
  // y = sin(x) (cosine: cos(x)) element-wise as ONNX Runtime's Sin (Cos) (float_kernels.h)
  if (x.size() != y.size()) throw std::invalid_argument("float_sincos needs same sizes");
  return [cosine, threads, x, y] {
    lowp::run_float_sincos(x.data(), y.data(), int64_t(x.size()), cosine, threads);
  };
}

lowp::Kernel make_float_libm(int code, Floats x, OutFloats y, int threads) {
  // y = f(x) element-wise with the C library's float function f of `code` (float_libm.h)
  if (code < 0 || code >= int(lowp::LibmFunction::kCount))
    throw std::invalid_argument("float_libm: unknown function code " + std::to_string(code));
  if (x.size() != y.size()) throw std::invalid_argument("float_libm needs same sizes");
  return [code, threads, x, y] {
    lowp::run_float_libm(code, x.data(), y.data(), int64_t(x.size()), threads);
  };
}

lowp::Kernel make_float_powf(Floats x, float exponent, OutFloats y, int threads) {
  // y = powf(x, exponent) element-wise with the C library's powf (float_libm.h)
  if (x.size() != y.size()) throw std::invalid_argument("float_powf needs same sizes");
  return [exponent, threads, x, y] {
    lowp::run_float_powf(x.data(), exponent, y.data(), int64_t(x.size()), threads);
  };
}

lowp::Kernel make_float_col2im(Floats cols, std::optional<Floats> bias, OutFloats y,
                               const std::vector<int64_t>& dims, int threads) {
  // dims: planes, channels, kh, kw, ih, iw, oh, ow, sh, sw, dh, dw, begin_h, begin_w,
  // scalar_runs (1: ONNX Runtime's N-D col2im order, float_col2im.h)
  if (dims.size() != 15)
    throw std::invalid_argument("float_col2im needs 15 dims");
  lowp::Col2ImArgs a;
  int64_t* fields[] = {&a.planes, &a.channels, &a.kh, &a.kw, &a.ih, &a.iw, &a.oh,
                       &a.ow, &a.sh, &a.sw, &a.dh, &a.dw, &a.begin_h, &a.begin_w,
                       &a.scalar_runs};
  for (size_t i = 0; i < dims.size(); ++i) *fields[i] = dims[i];
  bool ok = a.channels >= 1 && a.planes % a.channels == 0 && a.sh >= 1 && a.sw >= 1 &&
            a.dh >= 1 && a.dw >= 1 && a.begin_h >= 0 && a.begin_w >= 0;
  for (size_t i = 0; i < 8; ++i) ok = ok && *fields[i] >= 0;
  if (!ok || cols.size() != size_t(a.planes * a.kh * a.kw * a.ih * a.iw) ||
      y.size() != size_t(a.planes * a.oh * a.ow) || (bias && bias->size() != size_t(a.channels)))
    throw std::invalid_argument("float_col2im: cols, y or bias do not match the dims");
  a.cols = cols.data(), a.bias = bias ? bias->data() : nullptr, a.y = y.data();
  return [cols, bias, y, a, threads] { lowp::run_float_col2im(a, threads); };
}

lowp::Kernel make_float_conv_transpose_direct(Floats x, Floats w, std::optional<Floats> bias,
                                              OutFloats y, const std::vector<int64_t>& dims,
                                              int threads) {
  // ConvTranspose with one input channel per group (float_col2im.h, direct form). dims:
  // planes, channels, kh, kw, ih, iw, oh, ow, sh, sw, dh, dw, begin_h, begin_w, per_input,
  // then x's element strides: batch, channel, row, column (x: the memory they index), then
  // scalar_runs (1: ONNX Runtime's N-D col2im order, float_col2im.h)
  if (dims.size() != 20)
    throw std::invalid_argument("float_conv_transpose_direct needs 20 dims");
  lowp::Col2ImArgs a;
  int64_t* fields[] = {&a.planes, &a.channels, &a.kh, &a.kw, &a.ih, &a.iw, &a.oh, &a.ow,
                       &a.sh, &a.sw, &a.dh, &a.dw, &a.begin_h, &a.begin_w, &a.per_input,
                       &a.x_batch, &a.x_channel, &a.x_row, &a.x_col, &a.scalar_runs};
  for (size_t i = 0; i < dims.size(); ++i) *fields[i] = dims[i];
  bool ok = a.channels >= 1 && a.planes % a.channels == 0 && a.per_input >= 1 &&
            a.channels % a.per_input == 0 && a.sh >= 1 && a.sw >= 1 && a.dh >= 1 &&
            a.dw >= 1 && a.begin_h >= 0 && a.begin_w >= 0;
  for (size_t i = 0; i < 8; ++i) ok = ok && *fields[i] >= 0;
  for (size_t i = 15; i < 19; ++i) ok = ok && *fields[i] >= 0;
  // the last element x's strides reach
  const int64_t inputs = ok ? a.planes / a.per_input : 0;
  const int64_t groups = ok ? a.channels / a.per_input : 1;
  const int64_t last = inputs == 0 || a.ih == 0 || a.iw == 0 ? -1 :
      (inputs / groups - 1) * a.x_batch + (groups - 1) * a.x_channel + (a.ih - 1) * a.x_row +
      (a.iw - 1) * a.x_col;
  if (!ok || last >= int64_t(x.size()) ||
      w.size() != size_t(a.channels * a.kh * a.kw) || y.size() != size_t(a.planes * a.oh * a.ow) ||
      (bias && bias->size() != size_t(a.channels)))
    throw std::invalid_argument(
        "float_conv_transpose_direct: x, w, y or bias do not match the dims");
  a.x = x.data(), a.w = w.data(), a.bias = bias ? bias->data() : nullptr, a.y = y.data();
  return [x, w, bias, y, a, threads] { lowp::run_float_col2im(a, threads); };
}

lowp::Kernel make_float_conv_transpose(Floats x, Floats w, std::optional<Floats> bias, OutFloats y,
                                      const std::vector<int64_t>& dims, int threads) {
  // 1-D or 2-D ConvTranspose by blocks of output channels (float_conv_transpose.h). dims: n, c,
  // group, trans_a, output channels, kh, kw, ih, iw, oh, ow, sh, sw, dh, dw, begin_h, begin_w,
  // scalar_runs (1: ONNX Runtime's N-D col2im order), x's element strides (batch, channel,
  // position; x: the memory they index), then four values per MLAS operation (first row,
  // rows, first column, columns)
  if (dims.size() < 21 || (dims.size() - 21) % 4 != 0 ||
      (dims.size() - 21) / 4 > size_t(lowp::kConvMaxParts))
    throw std::invalid_argument("float_conv_transpose needs 21 dims and up to 64 parts");
  lowp::ConvTransposeArgs a;
  lowp::Col2ImArgs& g = a.geometry;
  a.n = dims[0], a.c = dims[1], a.group = dims[2], a.trans_a = dims[3] != 0;
  int64_t* fields[] = {&g.channels, &g.kh, &g.kw, &g.ih, &g.iw, &g.oh, &g.ow, &g.sh, &g.sw,
                       &g.dh, &g.dw, &g.begin_h, &g.begin_w, &g.scalar_runs};
  for (size_t i = 0; i < 14; ++i) *fields[i] = dims[4 + i];
  a.x_batch = dims[18], a.x_channel = dims[19], a.x_position = dims[20];
  bool ok = a.n >= 0 && a.c >= 1 && a.group >= 1 && a.c % a.group == 0 && g.channels >= 1 &&
            g.channels % a.group == 0 && g.kh >= 1 && g.kw >= 1 && g.ih >= 1 && g.iw >= 1 &&
            g.oh >= 0 && g.ow >= 0 && g.sh >= 1 && g.sw >= 1 && g.dh >= 1 && g.dw >= 1 &&
            g.begin_h >= 0 && g.begin_w >= 0 && a.x_batch >= 0 && a.x_channel >= 0 &&
            a.x_position >= 0;
  const int64_t rows = ok ? g.channels / a.group * g.kh * g.kw : 0, cols = g.ih * g.iw;
  a.nparts = int((dims.size() - 21) / 4);
  for (int j = 0; j < a.nparts && ok; ++j) {
    const int64_t* v = dims.data() + 21 + 4 * j;
    for (int e = 0; e < 4; ++e) a.parts[j][e] = v[e];
    ok = v[0] >= 0 && v[1] >= 1 && v[0] + v[1] <= rows && v[2] >= 0 && v[3] >= 1 &&
         v[2] + v[3] <= cols;
  }
  g.planes = a.n * g.channels;
  // the last element x's strides reach
  const int64_t last = (a.n - 1) * a.x_batch + (a.c - 1) * a.x_channel + (cols - 1) * a.x_position;
  if (!ok || a.n == 0 || last >= int64_t(x.size()) || w.size() != size_t(a.c * rows) ||
      y.size() != size_t(g.planes * g.oh * g.ow) || (bias && bias->size() != size_t(g.channels)))
    throw std::invalid_argument("float_conv_transpose: x, w, y or bias do not match the dims");
  a.x = x.data(), a.w = w.data(), g.bias = bias ? bias->data() : nullptr, g.y = y.data();
  return [x, w, bias, y, a, threads] { lowp::run_float_conv_transpose(a, threads); };
}

#ifdef LOWP_FLOAT_CONV_NCHWC
lowp::Kernel make_float_conv_nchwc(Floats x, Floats wp, std::optional<Floats> bias, OutFloats y,
                                   const std::vector<int64_t>& dims, const std::string& isa,
                                   int threads, std::optional<Floats> sum) {
  // dims: n, c, h, w, m, oh, ow, kind, block, groups, kh, kw, sh, sw, dh, dw, ph, pw
  // [, relu] (float_conv/nchwc.h); wp packed as lowp.runtime.nchwc_conv.pack
  if (dims.size() != 18 && dims.size() != 19)
    throw std::invalid_argument("float_conv_nchwc needs 18 or 19 dims");
  lowp_fconv::ConvArgs a;
  a.n = dims[0], a.c = dims[1], a.h = dims[2], a.w = dims[3];
  a.m = dims[4], a.oh = dims[5], a.ow = dims[6];
  int* fields[] = {&a.kind, &a.block, &a.groups, &a.kh, &a.kw, &a.sh, &a.sw, &a.dh, &a.dw,
                   &a.ph, &a.pw};
  for (size_t i = 0; i < 11; ++i) *fields[i] = int(dims[7 + i]);
  a.relu = dims.size() == 19 && dims[18] != 0;
  lowp_fconv::check(a, int64_t(x.size()), int64_t(wp.size()),
                    bias ? int64_t(bias->size()) : -1, int64_t(y.size()));
  const lowp_fconv::RowsFn rows = lowp_fconv::rows_for(isa);
  // sum (another array of y's size): the starting totals (an NCHWc Conv's fused Add)
  if (sum && (sum->size() != y.size() || sum->data() == y.data()))
    throw std::invalid_argument("float_conv_nchwc: sum must be another array of y's size");
  a.x = x.data(), a.wp = wp.data(), a.bias = bias ? bias->data() : nullptr, a.y = y.data();
  a.sum = sum ? sum->data() : nullptr;
  return [x, wp, bias, y, sum, a, rows, threads] { lowp_fconv::run(a, rows, threads); };
}
#endif

lowp::Kernel make_float_conv_im2col(Floats x, Floats w, std::optional<Floats> bias, OutFloats y,
                                    std::optional<OutFloats> cols,
                                    const std::vector<int64_t>& dims, int threads,
                                    std::optional<Floats> sum) {
  // dims: n, c, m, group, then per spatial axis (three, leading ones for 1-D and 2-D) in, k,
  // out, stride, dilation, pad_begin (float_im2col.h); cols None: the input is the columns;
  // sum (y's size, not y itself): FusedConv's Sum, the products' starting values; after the
  // 22, four values per part (first row, rows, first column, columns; float_im2col.h)
  if (dims.size() < 22 || (dims.size() - 22) % 4 != 0 ||
      (dims.size() - 22) / 4 > size_t(lowp::kConvMaxParts))
    throw std::invalid_argument("float_conv_im2col needs 22 dims and up to 64 parts");
  lowp::ConvIm2colArgs a;
  a.n = dims[0], a.c = dims[1], a.m = dims[2], a.group = dims[3];
  bool ok = a.n >= 0 && a.c >= 1 && a.m >= 1 && a.group >= 1 && a.c % a.group == 0 &&
            a.m % a.group == 0;
  int64_t in_size = 1, taps = 1, p = 1;
  bool identity = true;
  for (int i = 0; i < 3; ++i) {
    const int64_t* v = dims.data() + 4 + 6 * i;
    a.in[i] = v[0], a.k[i] = v[1], a.out[i] = v[2], a.s[i] = v[3], a.d[i] = v[4], a.pad[i] = v[5];
    ok = ok && a.in[i] >= 1 && a.k[i] >= 1 && a.out[i] >= 1 && a.s[i] >= 1 && a.d[i] >= 1 &&
         a.pad[i] >= 0;
    identity = identity && a.k[i] == 1 && a.s[i] == 1 && a.pad[i] == 0 && a.out[i] == a.in[i];
    in_size *= a.in[i], taps *= a.k[i], p *= a.out[i];
  }
  const int64_t kk = ok ? a.c / a.group * taps : 0;
  a.nparts = int((dims.size() - 22) / 4);
  for (int j = 0; j < a.nparts && ok; ++j) {
    const int64_t* v = dims.data() + 22 + 4 * j;
    for (int e = 0; e < 4; ++e) a.parts[j][e] = v[e];
    ok = v[0] >= 0 && v[1] >= 1 && v[0] + v[1] <= a.m / a.group && v[2] >= 0 && v[3] >= 1 &&
         v[2] + v[3] <= p;
  }
  if (!ok || x.size() != size_t(a.n * a.c * in_size) || w.size() != size_t(a.m * kk) ||
      y.size() != size_t(a.n * a.m * p) || (bias && bias->size() != size_t(a.m)) ||
      (cols ? cols->size() < size_t(kk * p) : !identity) ||
      (sum && (sum->size() != y.size() || sum->data() == y.data())))
    throw std::invalid_argument("float_conv_im2col: x, w, y, bias, cols or sum do not match "
                                "the dims");
  a.x = x.data(), a.w = w.data(), a.bias = bias ? bias->data() : nullptr, a.y = y.data();
  a.cols = cols ? cols->data() : nullptr;
  a.sum = sum ? sum->data() : nullptr;
  return [x, w, bias, y, cols, sum, a, threads] { lowp::run_float_conv_im2col(a, threads); };
}

// OrtPlaces from a binding's nchwc (block, channels, H W) or channels_last (channels, H W)
lowp::OrtPlaces ort_places(const std::vector<int64_t>& nchwc,
                           const std::vector<int64_t>& channels_last, int64_t total,
                           const char* name) {
  lowp::OrtPlaces places;
  if (!nchwc.empty() && !channels_last.empty())
    throw std::invalid_argument(std::string(name) + ": nchwc or channels_last, not both");
  if (!nchwc.empty()) {
    if (nchwc.size() != 3 || nchwc[0] <= 0)
      throw std::invalid_argument(std::string(name) + " nchwc needs block, channels, H * W");
    places.block = nchwc[0], places.channels = nchwc[1], places.plane = nchwc[2];
  } else if (!channels_last.empty()) {
    if (channels_last.size() != 2)
      throw std::invalid_argument(std::string(name) + " channels_last needs channels, H * W");
    places.channels_last = true;
    places.channels = channels_last[0], places.plane = channels_last[1];
  } else {
    return places;
  }
  if (places.channels <= 0 || places.plane <= 0 || total % (places.channels * places.plane) != 0)
    throw std::invalid_argument(std::string(name) + ": channels and H * W must divide y");
  return places;
}

lowp::Kernel make_float_binary(int op, nb::ndarray<const float, nb::device::cpu> a,
                               nb::ndarray<const float, nb::device::cpu> b, OutFloats y,
                               const std::vector<int64_t>& dims,
                               const std::vector<int64_t>& a_strides,
                               const std::vector<int64_t>& b_strides, int threads,
                               const std::vector<int64_t>& nchwc,
                               const std::vector<int64_t>& channels_last) {
  // y (contiguous, prod(dims) values) = a op b, read at the given element strides (0 on
  // broadcast axes) over dims, four axes; a and b are the arrays' memory (any layout);
  // nchwc: empty, or (block, channels, H * W) of an Add ONNX Runtime runs on its NCHWc
  // layout; channels_last: empty, or (channels, H * W) of y channels-last (OrtPlaces)
  if (op < 0 || op >= lowp::kFloatBinaryCount) throw std::invalid_argument("unknown binary op");
  if (dims.size() != 4 || a_strides.size() != 4 || b_strides.size() != 4)
    throw std::invalid_argument("float_binary needs 4 dims and 4 strides per operand");
  lowp::FloatBinaryArgs p;
  p.a = a.data();
  p.b = b.data();
  p.y = y.data();
  p.op = op;
  int64_t total = 1;
  // the largest element offset each operand is read at must lie inside its array; strides
  // are non-negative (numpy's broadcasting never makes negative ones here)
  int64_t a_last = 0, b_last = 0;
  for (int i = 0; i < 4; ++i) {
    if (dims[i] < 0 || a_strides[i] < 0 || b_strides[i] < 0)
      throw std::invalid_argument("float_binary needs non-negative dims and strides");
    p.dims[i] = dims[i], p.a_st[i] = a_strides[i], p.b_st[i] = b_strides[i];
    total *= dims[i];
    if (dims[i] > 0) a_last += (dims[i] - 1) * a_strides[i], b_last += (dims[i] - 1) * b_strides[i];
  }
  if (size_t(total) != y.size() ||
      (total > 0 && (size_t(a_last) >= a.size() || size_t(b_last) >= b.size())))
    throw std::invalid_argument("float_binary strides reach outside the arrays");
  p.places = ort_places(nchwc, channels_last, total, "float_binary");
  if (negative_layout(a) || negative_layout(b))
    throw std::invalid_argument("float_binary needs a non-negative layout");
  return [p, threads, a, b, y] { lowp::run_float_binary(p, threads); };
}

lowp::Kernel make_float_fused(nb::ndarray<const int32_t, nb::ndim<2>, nb::c_contig,
                                           nb::device::cpu> code,
                              std::vector<nb::ndarray<const float, nb::device::cpu>> inputs,
                              OutFloats y, const std::vector<int64_t>& dims,
                              const std::vector<int64_t>& strides, int threads,
                              const std::vector<int64_t>& channels_last) {
  // y (contiguous, prod(dims) values) = a chain of element-wise operators on the inputs
  // (float_elementwise.h FloatFusedArgs): code (instructions x 4: op, dst, a, b); inputs
  // read at strides[4 i .. 4 i + 4) over dims, as float_binary reads its operands
  if (code.shape(1) != 4 || code.shape(0) == 0)
    throw std::invalid_argument("float_fused needs instructions of 4 integers");
  if (dims.size() != 4 || strides.size() != 4 * inputs.size())
    throw std::invalid_argument("float_fused needs 4 dims and 4 strides per input");
  lowp::FloatFusedArgs f;
  int64_t total = 1;
  for (int i = 0; i < 4; ++i) {
    if (dims[i] < 0) throw std::invalid_argument("float_fused needs non-negative dims");
    f.dims[i] = dims[i];
    total *= dims[i];
  }
  if (size_t(total) != y.size()) throw std::invalid_argument("float_fused y size != dims");
  f.places = ort_places({}, channels_last, total, "float_fused");
  std::vector<lowp::FusedInput> ins(inputs.size());
  for (size_t k = 0; k < inputs.size(); ++k) {
    int64_t last = 0;
    ins[k].p = inputs[k].data();
    for (int i = 0; i < 4; ++i) {
      const int64_t st = strides[4 * k + size_t(i)];
      if (st < 0) throw std::invalid_argument("float_fused needs non-negative strides");
      ins[k].st[i] = st;
      if (dims[i] > 0) last += (dims[i] - 1) * st;
    }
    // the input may be a strided view (a Slice of a padded tensor): the offsets read must
    // lie inside the memory its own shape and strides span, which can exceed its size
    int64_t span = 1;
    for (size_t i = 0; i < inputs[k].ndim(); ++i) {
      if (inputs[k].shape(i) > 1 && inputs[k].stride(i) < 0)
        throw std::invalid_argument("float_fused needs a non-negative layout");
      if (inputs[k].shape(i) == 0) span = 0;
      else if (span > 0) span += int64_t(inputs[k].shape(i) - 1) * inputs[k].stride(i);
    }
    if (total > 0 && last >= span)
      throw std::invalid_argument("float_fused strides reach outside an input");
  }
  const int count = int(code.shape(0));
  std::vector<lowp::FusedInstr> prog(static_cast<size_t>(count));
  int registers = 0;
  const int n_in = int(inputs.size());
  for (int k = 0; k < count; ++k) {
    const int32_t* c = code.data() + 4 * k;
    const int op = c[0];
    const bool binary = op >= 0 && op < lowp::kFloatBinaryCount;
    if (!(binary || op == lowp::kFusedRelu || op == lowp::kFusedSqrt ||
          (op >= lowp::kFusedUnary && op < lowp::kFusedUnary + lowp::kUnaryCount)))
      throw std::invalid_argument("float_fused: unknown operator");
    if ((c[1] < 0) != (k == count - 1) || c[1] < -1 || c[1] >= 64)
      throw std::invalid_argument("float_fused: the last instruction (only) writes y");
    for (int j = 2; j < (binary ? 4 : 3); ++j)
      if (c[j] >= 64 || c[j] < -n_in)
        throw std::invalid_argument("float_fused: operand out of range");
    registers = std::max({registers, int(c[1]) + 1, int(c[2]) + 1, binary ? int(c[3]) + 1 : 0});
    prog[size_t(k)] = lowp::FusedInstr{op, c[1], c[2], binary ? c[3] : 0};
  }
  f.count = count;
  f.registers = registers;
  f.n_inputs = n_in;
  f.y = y.data();
  return [f, prog = std::move(prog), ins = std::move(ins), inputs, y, threads]() mutable {
    f.code = prog.data();
    f.inputs = ins.data();
    lowp::run_float_fused(f, threads);
  };
}

using Matrix = nb::ndarray<const float, nb::ndim<2>, nb::device::cpu>;
using OutMatrix = nb::ndarray<float, nb::ndim<2>, nb::device::cpu>;

// The shape and flags of a product of (m x k) by `b` (k x n) as float_sgemm_mlas takes them.
lowp::SgemmArgs sgemm_shape(int64_t m, const Matrix& b, bool trans_a, bool trans_b,
                            bool packed, float alpha) {
  lowp::SgemmArgs g;
  g.b = b.data(), g.m = m, g.k = int64_t(b.shape(0)), g.n = int64_t(b.shape(1));
  g.sb_k = b.stride(0), g.sb_n = b.stride(1);
  g.alpha = alpha, g.trans_a = trans_a, g.trans_b = trans_b, g.packed = packed;
  return g;
}

// (K block, kernel width, floats) of the panels of `b` a product of m rows packs (floats 0:
// it packs none); float_sgemm_pack writes them, float_sgemm_mlas takes them as `panels`.
std::tuple<int64_t, int64_t, int64_t> float_sgemm_panels(int64_t m, Matrix b, bool trans_a,
                                                          bool trans_b, bool packed,
                                                          float alpha) {
  if (b.stride(0) < 0 || b.stride(1) < 0)
    throw std::invalid_argument("float_sgemm_panels needs non-negative strides");
  const lowp::SgemmPanels p =
      lowp::sgemm_panels(sgemm_shape(m, b, trans_a, trans_b, packed, alpha));
  return {p.stride_k, p.width, p.floats};
}

void float_sgemm_pack(Matrix b, OutFloats out, int64_t stride_k, int64_t width) {
  if (b.stride(0) < 0 || b.stride(1) < 0 || stride_k < 0 || width < 1)
    throw std::invalid_argument("float_sgemm_pack needs non-negative strides");
  lowp::SgemmArgs g = sgemm_shape(2, b, false, false, false, 1.0f);
  lowp::SgemmPanels p;
  p.stride_k = stride_k, p.width = width;
  p.floats = stride_k > 0 ? lowp::sgemm_panels_size(g.k, g.n, stride_k, width) : 0;
  if (int64_t(out.size()) != p.floats)
    throw std::invalid_argument("float_sgemm_pack needs an output of the panels' size");
  nb::gil_scoped_release release;
  lowp::pack_sgemm_panels(g, p, out.data());
}

lowp::Kernel make_float_sgemm_mlas(Matrix a, Matrix b, OutMatrix c, float alpha, bool trans_a,
                                   bool trans_b, bool packed, int threads,
                                   std::optional<Matrix> init,
                                   std::optional<Floats> panels, int64_t panels_stride_k,
                                   int64_t panels_width, bool unit_ldb) {
  // c (m x n, rows of unit stride) = alpha a b in MLAS's order; a (m x k) and b (k x n) are
  // the logical operands (any non-negative strides: a transposed view reads in place);
  // trans_a, trans_b and packed pick MLAS's path (lowp.mlas_sgemm); unit_ldb false: MLAS is
  // handed B inside a larger array (leading dimension not 1, so no N = 1 kernel)
  if (a.shape(1) != b.shape(0) || c.shape(0) != a.shape(0) || c.shape(1) != b.shape(1))
    throw std::invalid_argument("float_sgemm_mlas needs a (m x k), b (k x n), c (m x n)");
  for (int i = 0; i < 2; ++i)
    if (a.stride(i) < 0 || b.stride(i) < 0 || c.stride(i) < 0)
      throw std::invalid_argument("float_sgemm_mlas needs non-negative strides");
  if (c.shape(1) > 1 && c.stride(1) != 1)
    throw std::invalid_argument("float_sgemm_mlas needs output rows of unit stride");
  lowp::SgemmArgs g;
  g.a = a.data(), g.b = b.data(), g.c = c.data();
  g.m = int64_t(a.shape(0)), g.k = int64_t(a.shape(1)), g.n = int64_t(b.shape(1));
  g.sa_m = a.stride(0), g.sa_k = a.stride(1), g.sb_k = b.stride(0), g.sb_n = b.stride(1);
  g.ldc = c.stride(0);
  g.alpha = alpha, g.trans_a = trans_a, g.trans_b = trans_b, g.packed = packed;
  g.unit_ldb = unit_ldb;
  // init: C (m x n, any non-negative strides, 0 to broadcast) written first, then added to
  Matrix kept = init ? *init : Matrix();
  if (init) {
    if (init->shape(0) != a.shape(0) || init->shape(1) != b.shape(1) || init->stride(0) < 0 ||
        init->stride(1) < 0)
      throw std::invalid_argument("float_sgemm_mlas needs init (m x n, non-negative strides)");
    g.init = init->data(), g.si_m = init->stride(0), g.si_n = init->stride(1);
  }
  // panels: float_sgemm_pack's of this b (used only at the block and width they were made
  // for, checked by size here)
  Floats held = panels ? *panels : Floats();
  if (panels) {
    if (panels_stride_k < 1 || panels_width < 1 ||
        int64_t(panels->size()) !=
            lowp::sgemm_panels_size(g.k, g.n, panels_stride_k, panels_width))
      throw std::invalid_argument("float_sgemm_mlas needs panels of b's size");
    g.panels = panels->data(), g.panels_stride_k = panels_stride_k;
    g.panels_width = panels_width;
  }
  return [g, threads, a, b, c, kept, held] { lowp::run_mlas_sgemm(g, threads); };
}

lowp::Kernel make_float_clamp(Floats x, OutFloats y, float lo, float hi, bool use_lo,
                              bool use_hi, int threads) {
  // y = minimum(maximum(x, lo), hi) as numpy computes it (Relu, Clip); y may be x
  if (x.size() != y.size()) throw std::invalid_argument("float_clamp needs same sizes");
  return [lo, hi, use_lo, use_hi, threads, x, y] {
    lowp::run_float_clamp(x.data(), y.data(), int64_t(x.size()), lo, hi, use_lo, use_hi,
                          threads);
  };
}

lowp::Kernel make_lookup8_f32(Bytes x, Floats table, OutFloats y, int threads) {
  // y[i] = table[x[i]]: a float function of an 8-bit value (DequantizeLinear per tensor)
  if (table.size() != 256 || x.size() != y.size())
    throw std::invalid_argument("lookup8_f32 needs x and y of one size and 256 table values");
  const lowp::AffineTable form = lowp::affine_table(table.data());
  return [threads, x, table, form, y] {
    lowp::run_lookup8_f32(x.data(), table.data(), form, y.data(), int64_t(x.size()), threads);
  };
}

lowp::Kernel make_qsoftmax_rows(Bytes x, Floats table, OutBytes y, int64_t n, double inv_scale,
                                int zero_point, int qmin, int qmax, bool is_signed,
                                int threads, int64_t inner) {
  // y = quantized Softmax (O17) of x (outer x n x inner) over n, bits of uint8 or int8 values
  if (n < 1 || inner < 1 || table.size() != 256 || x.size() != y.size() ||
      x.size() % size_t(n * inner) != 0 || qmin > qmax)
    throw std::invalid_argument("qsoftmax_rows needs a 256-entry table, x and y of outer * n "
                                "* inner values, n >= 1, inner >= 1");
  return [x, table, y, n, inv_scale, zero_point, qmin, qmax, is_signed, threads, inner] {
    lowp::QSoftmaxArgs a;
    a.x = x.data(), a.y = y.data(), a.table = table.data();
    a.rows = int64_t(x.size()) / n, a.n = n, a.inner = inner, a.inv_scale = inv_scale;
    a.zero_point = zero_point, a.qmin = qmin, a.qmax = qmax, a.is_signed = is_signed;
    lowp::run_qsoftmax_rows(a, threads);
  };
}

lowp::Kernel make_qmatmul_acts(Bytes a, Bytes b, OutBytes y, Vec<int64_t> a_offsets,
                               Vec<int64_t> b_offsets, int64_t m, int64_t k, int64_t n,
                               bool a_signed, bool b_signed, bool y_signed, int a_zp, int b_zp,
                               float scale, int y_zp, int qmin, int qmax, int threads) {
  // y (batch x m x n) = the requantized product of 8-bit activations (see QMatMulArgs)
  const int64_t batch = int64_t(a_offsets.size());
  if (m < 0 || k < 1 || n < 0 || int64_t(b_offsets.size()) != batch || qmin > qmax ||
      int64_t(y.size()) != batch * m * n)
    throw std::invalid_argument("qmatmul_acts: sizes do not match");
  for (int64_t i = 0; i < batch; ++i)
    if (a_offsets.data()[i] < 0 || a_offsets.data()[i] + m * k > int64_t(a.size()) ||
        b_offsets.data()[i] < 0 || b_offsets.data()[i] + k * n > int64_t(b.size()))
      throw std::invalid_argument("qmatmul_acts: an offset reads outside its operand");
  lowp::QMatMulArgs q;
  q.a = a.data(), q.b = b.data(), q.y = y.data();
  q.a_offsets = a_offsets.data(), q.b_offsets = b_offsets.data();
  q.batch = batch, q.m = m, q.k = k, q.n = n;
  q.a_signed = a_signed, q.b_signed = b_signed, q.y_signed = y_signed;
  q.a_zp = a_zp, q.b_zp = b_zp, q.y_zp = y_zp, q.qmin = qmin, q.qmax = qmax, q.scale = scale;
  return [q, threads, a, b, y, a_offsets, b_offsets] { lowp::run_qmatmul_acts(q, threads); };
}

// The geometry of an 8-bit binary kernel over four collapsed axes (lookup_pair, qbinary):
// dims and element strides copied to `dims`, `a_st`, `b_st`; throws unless the strides are
// non-negative, y holds the broadcast shape and the last element each operand is read at is
// one of its own (the arrays may be strided views, so the bound is their own last element,
// not their size).
void binary_geometry(const char* name, const nb::ndarray<const uint8_t, nb::device::cpu>& a,
                     const nb::ndarray<const uint8_t, nb::device::cpu>& b, size_t y_size,
                     const std::vector<int64_t>& dims, const std::vector<int64_t>& a_strides,
                     const std::vector<int64_t>& b_strides, int64_t* out_dims, int64_t* a_st,
                     int64_t* b_st) {
  if (dims.size() != 4 || a_strides.size() != 4 || b_strides.size() != 4)
    throw std::invalid_argument(std::string(name) + " needs 4 dims/strides");
  int64_t total = 1, a_last = 0, b_last = 0;
  for (int i = 0; i < 4; ++i) {
    if (dims[i] < 0 || a_strides[i] < 0 || b_strides[i] < 0)
      throw std::invalid_argument(std::string(name) + " needs non-negative dims and strides");
    out_dims[i] = dims[i], a_st[i] = a_strides[i], b_st[i] = b_strides[i];
    total *= dims[i];
    if (dims[i] > 0) a_last += (dims[i] - 1) * a_strides[i], b_last += (dims[i] - 1) * b_strides[i];
  }
  auto reach = [](const auto& v, bool& negative) {
    int64_t r = 0;
    for (size_t i = 0; i < v.ndim(); ++i) {
      negative |= v.stride(i) < 0;
      if (v.shape(i) > 0) r += int64_t(v.shape(i) - 1) * v.stride(i);
    }
    return r;
  };
  bool negative = false;
  const int64_t a_reach = reach(a, negative), b_reach = reach(b, negative);
  if (negative || size_t(total) != y_size ||
      (total > 0 && (a.size() == 0 || b.size() == 0 || a_last > a_reach || b_last > b_reach)))
    throw std::invalid_argument(std::string(name) + " strides reach outside the arrays");
}

lowp::Kernel make_lookup_pair(nb::ndarray<const uint8_t, nb::device::cpu> a,
                              nb::ndarray<const uint8_t, nb::device::cpu> b, Bytes table,
                              OutBytes y, const std::vector<int64_t>& dims,
                              const std::vector<int64_t>& a_strides,
                              const std::vector<int64_t>& b_strides, int threads) {
  // y (contiguous) = table[(a << 8) | b] read at element strides over dims, as float_binary
  if (table.size() != 65536)
    throw std::invalid_argument("lookup_pair needs a 65,536-entry table");
  lowp::PairLutArgs p;
  p.a = a.data(), p.b = b.data(), p.table = table.data(), p.y = y.data();
  binary_geometry("lookup_pair", a, b, y.size(), dims, a_strides, b_strides, p.dims, p.a_st,
                  p.b_st);
  return [p, threads, a, b, table, y] { lowp::run_lut_pair(p, threads); };
}

lowp::Kernel make_qbinary(nb::ndarray<const uint8_t, nb::device::cpu> a,
                          nb::ndarray<const uint8_t, nb::device::cpu> b, OutBytes y,
                          const std::vector<int64_t>& dims, const std::vector<int64_t>& a_strides,
                          const std::vector<int64_t>& b_strides, bool mul, bool a_signed,
                          bool b_signed, float ma, float mb, float c, int za, int zb, int qmin,
                          int qmax, int threads) {
  // y (contiguous) = a (+ or *) b read at element strides over dims, as lookup_pair
  lowp::QBinaryArgs p;
  p.a = a.data(), p.b = b.data(), p.y = y.data();
  p.mul = mul, p.a_signed = a_signed, p.b_signed = b_signed;
  p.ma = ma, p.mb = mb, p.c = c, p.za = za, p.zb = zb, p.qmin = qmin, p.qmax = qmax;
  binary_geometry("qbinary", a, b, y.size(), dims, a_strides, b_strides, p.dims, p.a_st,
                  p.b_st);
  if (qmin > qmax || qmin < -128 || qmax > 255)
    throw std::invalid_argument("qbinary clamp bounds outside 8 bits");
  return [p, threads, a, b, y] { lowp::run_qbinary(p, threads); };
}

// y (m x n int32) = MatMulInteger of a (m x k bytes) and op's packed B; a_zero_point (one
// byte of a's type, or none) is read when the kernel runs, so that a Program repeating the
// call reads the zero point DynamicQuantizeLinear wrote on this run
using OutInts = nb::ndarray<int32_t, nb::c_contig, nb::device::cpu>;
using Ints = nb::ndarray<const int32_t, nb::c_contig, nb::device::cpu>;
lowp::Kernel make_int_matmul_run(const lowp::IntMatMul& op, Bytes a, std::optional<Bytes> a_zp,
                                 OutInts y, int64_t m, bool a_signed, int threads) {
  if (m < 0 || int64_t(a.size()) != m * op.k() || int64_t(y.size()) != m * op.n())
    throw std::invalid_argument("int_matmul needs a of m * k bytes and y of m * n int32");
  if (a_zp && a_zp->size() != 1)
    throw std::invalid_argument("int_matmul takes one activation zero point");
  return [&op, a, a_zp, y, m, a_signed, threads] {
    int32_t za = 0;
    if (a_zp) za = a_signed ? int32_t(int8_t(a_zp->data()[0])) : int32_t(a_zp->data()[0]);
    op.run(a.data(), m, a_signed, za, y.data(), threads);
  };
}

// y (n, m, oh, ow int32) = ConvInteger of x (n, c, h, w bytes) by op's packed B as its
// (c kh kw) x m weight (IntMatMul::run_conv); geometry: n, c, h, w, kh, kw, sh, sw, dh, dw,
// pt, pl, oh, ow; the zero point (one byte, or none) is read when the kernel runs
lowp::Kernel make_int_matmul_conv_run(const lowp::IntMatMul& op, Bytes x,
                                      std::optional<Bytes> x_zp, std::optional<Ints> bias,
                                      std::optional<OutInts> y, std::optional<OutFloats> yf,
                                      std::optional<Floats> scale,
                                      const std::vector<int>& geometry, bool x_signed,
                                      int threads) {
  if (geometry.size() != 14)
    throw std::invalid_argument("int_matmul_conv takes 14 geometry values");
  lowp::ConvRowsGeometry g;
  int* fields[] = {&g.n,  &g.c,  &g.h,  &g.w,  &g.kh, &g.kw, &g.sh,
                   &g.sw, &g.dh, &g.dw, &g.pt, &g.pl, &g.oh, &g.ow};
  for (size_t i = 0; i < 14; ++i) *fields[i] = geometry[i];
  if (g.n < 0 || g.c < 0 || g.h < 0 || g.w < 0 || g.kh < 1 || g.kw < 1 || g.sh < 1 ||
      g.sw < 1 || g.dh < 1 || g.dw < 1 || g.oh < 0 || g.ow < 0 ||
      int64_t(g.c) * g.kh * g.kw != op.k() ||
      int64_t(x.size()) != int64_t(g.n) * g.c * g.h * g.w ||
      bool(y) == bool(yf) ||
      int64_t(y ? y->size() : yf->size()) != int64_t(g.n) * op.n() * g.oh * g.ow)
    throw std::invalid_argument("int_matmul_conv: sizes do not match (one of y, yf)");
  if (x_zp && x_zp->size() != 1)
    throw std::invalid_argument("int_matmul_conv takes one activation zero point");
  if (bias && bias->size() != 1 && int64_t(bias->size()) != op.n())
    throw std::invalid_argument("int_matmul_conv takes one or m bias values");
  if (scale && (scale->size() != 1 || !yf))
    throw std::invalid_argument("int_matmul_conv takes one scale, with a float32 result");
  const bool per_channel = bias && bias->size() != 1;
  return [&op, x, x_zp, bias, y, yf, scale, g, x_signed, per_channel, threads] {
    int32_t za = 0;
    if (x_zp) za = x_signed ? int32_t(int8_t(x_zp->data()[0])) : int32_t(x_zp->data()[0]);
    op.run_conv(x.data(), g, x_signed, za, bias ? bias->data() : nullptr, per_channel,
                y ? y->data() : nullptr, yf ? yf->data() : nullptr,
                scale ? scale->data() : nullptr, threads);
  };
}

// yf (m x n float32) = float32(MatMulInteger) * float32(a_scale * b_scale) (+ bias), a_scale
// one float32, b_scale one or n, bias none or n, all read when the kernel runs (the Cast, Mul
// and bias Add after the product: MatMulIntegerToFloat)
lowp::Kernel make_int_matmul_scaled_run(const lowp::IntMatMul& op, Bytes a,
                                        std::optional<Bytes> a_zp, Floats a_scale,
                                        Floats b_scale, std::optional<Floats> bias, OutFloats y,
                                        int64_t m, bool a_signed, int threads) {
  if (m < 0 || int64_t(a.size()) != m * op.k() || int64_t(y.size()) != m * op.n())
    throw std::invalid_argument("int_matmul needs a of m * k bytes and y of m * n values");
  if ((a_zp && a_zp->size() != 1) || a_scale.size() != 1 ||
      (b_scale.size() != 1 && int64_t(b_scale.size()) != op.n()))
    throw std::invalid_argument("int_matmul takes one activation zero point and scale and "
                                "one or n weight scales");
  if (bias && int64_t(bias->size()) != op.n())
    throw std::invalid_argument("int_matmul takes n bias values");
  const bool per_column = b_scale.size() != 1;
  return [&op, a, a_zp, a_scale, b_scale, bias, y, m, a_signed, per_column, threads] {
    int32_t za = 0;
    if (a_zp) za = a_signed ? int32_t(int8_t(a_zp->data()[0])) : int32_t(a_zp->data()[0]);
    op.run(a.data(), m, a_signed, za, nullptr, y.data(), a_scale.data(), b_scale.data(),
           per_column, bias ? bias->data() : nullptr, threads);
  };
}

// y (m x n float32) = the per-token quantized product of x (m x k float32, k > 0) with op's
// packed B, scaled by b_scale (one or n) and biased (none or n): lowp.runtime.per_token_fusion
lowp::Kernel make_int_matmul_per_token_run(const lowp::IntMatMul& op, Floats x, Floats b_scale,
                                           std::optional<Floats> bias, OutFloats y, int64_t m,
                                           int threads) {
  if (m < 0 || int64_t(x.size()) != m * op.k() || int64_t(y.size()) != m * op.n())
    throw std::invalid_argument("run_per_token needs x of m * k and y of m * n values");
  if (b_scale.size() != 1 && int64_t(b_scale.size()) != op.n())
    throw std::invalid_argument("run_per_token takes one or n weight scales");
  if (bias && int64_t(bias->size()) != op.n())
    throw std::invalid_argument("run_per_token takes n bias values");
  if (op.k() == 0) throw std::invalid_argument("run_per_token needs k > 0");
  const bool per_column = b_scale.size() != 1;
  return [&op, x, b_scale, bias, y, m, per_column, threads] {
    op.run_per_token(x.data(), m, b_scale.data(), per_column, bias ? bias->data() : nullptr,
                     y.data(), threads);
  };
}

lowp::Kernel make_dynamic_quantize(Floats x, OutBytes y, OutFloats scale, OutBytes zero_point,
                                   int threads) {
  // DynamicQuantizeLinear of float32 x into uint8 y, its scale and zero point (one each)
  if (x.size() != y.size() || scale.size() != 1 || zero_point.size() != 1)
    throw std::invalid_argument("dynamic_quantize needs x, y of one size and one scale and "
                                "zero point");
  return [x, y, scale, zero_point, threads] {
    lowp::run_dynamic_quantize(x.data(), int64_t(x.size()), y.data(), scale.data(),
                               zero_point.data(), threads);
  };
}

lowp::Kernel make_conv_run(lowp::ConvOp& op, Act5 x, Out5 y) {
  const lowp::OutDims o = op.out_dims(x.shape(1), x.shape(2), x.shape(3));
  if (y.shape(0) != x.shape(0) || int64_t(y.shape(1)) != o.d || int64_t(y.shape(2)) != o.h ||
      int64_t(y.shape(3)) != o.w)
    throw std::invalid_argument("output array has the wrong shape");
  return [&op, x, y] {
    op.run(x.data(), x.shape(0), x.shape(1), x.shape(2), x.shape(3), y.data());
  };
}

// Sequence lengths of a recurrent layer: (B,) values, each in [0, T].
const int32_t* checked_lens(const Vec<int32_t>& lens, int64_t b, int64_t t) {
  if (int64_t(lens.shape(0)) != b) throw std::invalid_argument("lens must be (B,)");
  for (int64_t i = 0; i < b; ++i)
    if (lens.data()[i] < 0 || lens.data()[i] > t)
      throw std::invalid_argument("sequence lengths must be in [0, T]");
  return lens.data();
}

// x (T, B, I), w and r (D, packed floats: recurrent.h), p (D*3*H), bias (D*2*G*H),
// h0/c0/yh/yc (B, D, H), y (T, B, D, H), lens (B); any strides with the innermost 1. The
// sequence lengths are checked here, when the call is made: a Program that holds the call
// reads them again on every run, so lowp.runtime.native_rnn records only calls without them.
lowp::Kernel make_rnn(bool gru, nb::ndarray<const float, nb::ndim<3>, nb::c_contig, nb::device::cpu> x,
                      nb::ndarray<const float, nb::ndim<2>, nb::c_contig, nb::device::cpu> w,
                      nb::ndarray<const float, nb::ndim<2>, nb::c_contig, nb::device::cpu> r,
                      int64_t hidden, std::optional<Vec<float>> p,
                      std::optional<nb::ndarray<const float, nb::device::cpu>> h0,
                      std::optional<nb::ndarray<const float, nb::device::cpu>> c0,
                      std::optional<Vec<int32_t>> lens,
                      std::optional<nb::ndarray<float, nb::device::cpu>> y,
                      std::optional<nb::ndarray<float, nb::device::cpu>> yh,
                      std::optional<nb::ndarray<float, nb::device::cpu>> yc,
                      std::vector<bool> reverse, float clip, bool input_forget,
                      bool linear_before_reset, int threads, std::optional<Vec<float>> bias,
                      std::optional<std::vector<int>> acts, std::optional<std::vector<float>> alphas,
                      std::optional<std::vector<float>> betas) {
  lowp::RnnArgs a;
  const int64_t G = gru ? 3 : 4;
  a.gru = gru;
  a.t = int64_t(x.shape(0)), a.b = int64_t(x.shape(1)), a.i = int64_t(x.shape(2));
  a.d = int64_t(r.shape(0)), a.h = hidden;
  const int64_t hp = (a.h + lowp::kRnnAlign - 1) / lowp::kRnnAlign * lowp::kRnnAlign;
  const int64_t packed = gru ? lowp::rnn_packed_size(a.h, 2 * hp) +
                                   lowp::rnn_packed_size(a.h, hp)
                             : lowp::rnn_packed_size(a.h, 4 * hp);
  if (a.h < 1 || a.i < 1 || int64_t(r.shape(1)) != packed || w.shape(0) != r.shape(0) ||
      int64_t(w.shape(1)) != lowp::rnn_packed_size(a.i, G * hp))
    throw std::invalid_argument("rnn packed weights do not match the sizes");
  if (a.d < 1 || a.d > 2 || int64_t(reverse.size()) != a.d)
    throw std::invalid_argument("rnn needs one or two directions");
  // The innermost stride matters only when rows have more than one element and the
  // array is not empty (numpy may give any stride to such dimensions).
  auto inner = [](int64_t stride, const char* what, size_t inner_size, size_t size) {
    if (stride != 1 && inner_size > 1 && size > 0)
      throw std::invalid_argument(std::string(what) + " needs unit inner stride");
  };
  auto check3 = [&](int64_t ndim, size_t s0, size_t s1, size_t s2, int64_t stride,
                    const char* what) {
    if (ndim != 3 || int64_t(s0) != a.b || int64_t(s1) != a.d || int64_t(s2) != a.h)
      throw std::invalid_argument(std::string(what) + " must be (B, D, H)");
    inner(stride, what, s2, s0 * s1 * s2);
  };
  a.x = x.data();
  a.w = w.data();
  a.w_sd = int64_t(w.shape(1));
  a.r = r.data();
  a.r_sd = packed;
  if (p) {
    if (gru || int64_t(p->shape(0)) != a.d * 3 * a.h)
      throw std::invalid_argument("rnn peepholes must be D * 3 * H floats (LSTM)");
    a.p = p->data();
  }
  if (bias) {  // ONNX Runtime's order: the bias after the recurrence
    if (int64_t(bias->shape(0)) != a.d * 2 * G * a.h)
      throw std::invalid_argument("rnn bias must be D * 2 * G * H floats");
    a.bias = bias->data();
  }
  if (h0) {
    check3(h0->ndim(), h0->shape(0), h0->shape(1), h0->shape(2), h0->stride(2), "h0");
    a.h0 = h0->data();
    a.h0_sb = h0->stride(0), a.h0_sd = h0->stride(1);
  }
  if (c0) {
    check3(c0->ndim(), c0->shape(0), c0->shape(1), c0->shape(2), c0->stride(2), "c0");
    if (gru) throw std::invalid_argument("rnn c0 is for LSTM only");
    a.c0 = c0->data();
    a.c0_sb = c0->stride(0), a.c0_sd = c0->stride(1);
  }
  if (lens) a.lens = checked_lens(*lens, a.b, a.t);
  if (y) {
    if (y->ndim() != 4 || int64_t(y->shape(0)) != a.t || int64_t(y->shape(1)) != a.b ||
        int64_t(y->shape(2)) != a.d || int64_t(y->shape(3)) != a.h)
      throw std::invalid_argument("y must be (T, B, D, H)");
    inner(y->stride(3), "y", y->shape(3), y->size());
    a.y = y->data();
    a.y_st = y->stride(0), a.y_sb = y->stride(1), a.y_sd = y->stride(2);
  }
  if (yh) {
    check3(yh->ndim(), yh->shape(0), yh->shape(1), yh->shape(2), yh->stride(2), "yh");
    a.yh = yh->data();
    a.yh_sb = yh->stride(0), a.yh_sd = yh->stride(1);
  }
  if (yc) {
    check3(yc->ndim(), yc->shape(0), yc->shape(1), yc->shape(2), yc->stride(2), "yc");
    if (gru) throw std::invalid_argument("rnn yc is for LSTM only");
    a.yc = yc->data();
    a.yc_sb = yc->stride(0), a.yc_sd = yc->stride(1);
  }
  const std::array<bool, 2> rev = {bool(reverse[0]), a.d > 1 ? bool(reverse[1]) : false};
  a.clip = clip;
  a.input_forget = input_forget;
  a.linear_before_reset = linear_before_reset;
  // other activations (recurrent.h RnnActs): per direction G - 1 codes, alphas and betas
  std::array<lowp::RnnActs, 2> act_table{};
  const bool with_acts = acts.has_value();
  if (with_acts) {
    const size_t per = gru ? 2 : 3, n = size_t(a.d) * per;
    if (acts->size() != n || !alphas || !betas || alphas->size() != n || betas->size() != n)
      throw std::invalid_argument("rnn acts, alphas and betas need G - 1 per direction");
    for (size_t k = 0; k < n; ++k) {
      if ((*acts)[k] < 0 || (*acts)[k] >= int(lowp::RnnActivation::kCount))
        throw std::invalid_argument("rnn: unknown activation code");
      act_table[k / per].code[k % per] = (*acts)[k];
      act_table[k / per].alpha[k % per] = (*alphas)[k];
      act_table[k / per].beta[k % per] = (*betas)[k];
    }
  }
  // the closure keeps every array alive and owns the direction flags and activations
  return [a, rev, act_table, with_acts, threads, x, w, r, p, h0, c0, lens, y, yh, yc,
          bias]() mutable {
    a.reverse = rev.data();
    a.acts = with_acts ? act_table.data() : nullptr;
    lowp::run_rnn(a, threads);
  };
}

// The float32 RNN operator (float_rnn.h): x (T, B, I), w (D, H, I), r (D, H, H), bias (D,
// 2 H), h0 (D, B, H), lens (B, any values), y (T, D, B, H), yh (D, B, H), all contiguous;
// per direction an activation code, alpha and beta, and whether it runs in reverse.
using C3 = nb::ndarray<const float, nb::ndim<3>, nb::c_contig, nb::device::cpu>;
lowp::Kernel make_float_rnn(C3 x, C3 w, C3 r, std::optional<nb::ndarray<const float, nb::ndim<2>,
                            nb::c_contig, nb::device::cpu>> bias, std::optional<C3> h0,
                            std::optional<Vec<int64_t>> lens,
                            nb::ndarray<float, nb::ndim<4>, nb::c_contig, nb::device::cpu> y,
                            nb::ndarray<float, nb::ndim<3>, nb::c_contig, nb::device::cpu> yh,
                            std::vector<int> acts, std::vector<float> alphas,
                            std::vector<float> betas, std::vector<bool> reverse,
                            std::optional<float> clip, int threads) {
  lowp::FloatRnnArgs a;
  a.t = int64_t(x.shape(0)), a.b = int64_t(x.shape(1)), a.i = int64_t(x.shape(2));
  a.d = int64_t(r.shape(0)), a.h = int64_t(r.shape(1));
  if (a.d < 1 || a.d > 2 || acts.size() != size_t(a.d) || alphas.size() != size_t(a.d) ||
      betas.size() != size_t(a.d) || reverse.size() != size_t(a.d))
    throw std::invalid_argument("float_rnn needs one or two directions, each with its "
                                "activation, alpha, beta and direction");
  for (int c : acts)
    if (c < 0 || c >= int(lowp::RnnActivation::kCount))
      throw std::invalid_argument("float_rnn: unknown activation code");
  if (a.t < 1 || a.b < 1 || a.i < 1 || a.h < 1)
    throw std::invalid_argument("float_rnn needs T, B, I, H >= 1");
  if (int64_t(w.shape(0)) != a.d || int64_t(w.shape(1)) != a.h || int64_t(w.shape(2)) != a.i ||
      int64_t(r.shape(2)) != a.h)
    throw std::invalid_argument("float_rnn needs w (D, H, I) and r (D, H, H)");
  if (bias && (int64_t(bias->shape(0)) != a.d || int64_t(bias->shape(1)) != 2 * a.h))
    throw std::invalid_argument("float_rnn needs bias (D, 2 H)");
  if (h0 && (int64_t(h0->shape(0)) != a.d || int64_t(h0->shape(1)) != a.b ||
             int64_t(h0->shape(2)) != a.h))
    throw std::invalid_argument("float_rnn needs h0 (D, B, H)");
  if (lens && int64_t(lens->shape(0)) != a.b)
    throw std::invalid_argument("float_rnn needs lens (B,)");
  if (int64_t(y.shape(0)) != a.t || int64_t(y.shape(1)) != a.d || int64_t(y.shape(2)) != a.b ||
      int64_t(y.shape(3)) != a.h || int64_t(yh.shape(0)) != a.d ||
      int64_t(yh.shape(1)) != a.b || int64_t(yh.shape(2)) != a.h)
    throw std::invalid_argument("float_rnn needs y (T, D, B, H) and yh (D, B, H)");
  a.x = x.data(), a.w = w.data(), a.r = r.data();
  a.bias = bias ? bias->data() : nullptr;
  a.h0 = h0 ? h0->data() : nullptr;
  a.lens = lens ? lens->data() : nullptr;
  a.y = y.data(), a.yh = yh.data();
  for (int64_t d = 0; d < a.d; ++d) {
    a.act[d] = acts[size_t(d)], a.alpha[d] = alphas[size_t(d)], a.beta[d] = betas[size_t(d)];
    a.reverse[d] = reverse[size_t(d)];
  }
  a.has_clip = clip.has_value();
  a.clip = clip ? *clip : 0.0f;
  // the closure keeps every array alive
  return [a, threads, x, w, r, bias, h0, lens, y, yh] { lowp::run_float_rnn(a, threads); };
}

// DynamicQuantizeLSTM (qrecurrent.h). w_b/r_b (D, packed int8), *_colsum and *_scale (D, 4 *
// hp), *_d one per direction; x (T, B, I), h0/c0 (D, B, H), y (T, D, B, H), yh/yc (D, B, H),
// all contiguous; x_span / h_span: the values of each of MLAS's min / max calls over an
// operand holding a NaN (0: one call). lowp.runtime.native_qlstm records only calls without
// lengths (they are checked here, when the call is made).
using F2 = nb::ndarray<const float, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
using F3 = nb::ndarray<const float, nb::ndim<3>, nb::c_contig, nb::device::cpu>;
using FOut3 = nb::ndarray<float, nb::ndim<3>, nb::c_contig, nb::device::cpu>;
using I8x2 = nb::ndarray<const int8_t, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
using I32x2 = nb::ndarray<const int32_t, nb::ndim<2>, nb::c_contig, nb::device::cpu>;

lowp::Kernel make_qlstm(F3 x, I8x2 w_b, I32x2 w_colsum, std::vector<int32_t> w_d, F2 w_scale,
                        I8x2 r_b, I32x2 r_colsum, std::vector<int32_t> r_d, F2 r_scale,
                        int64_t hidden, std::optional<Vec<float>> p,
                        std::optional<Vec<float>> bias, std::optional<F3> h0,
                        std::optional<F3> c0, std::optional<Vec<int32_t>> lens,
                        nb::ndarray<float, nb::ndim<4>, nb::c_contig, nb::device::cpu> y,
                        FOut3 yh, FOut3 yc, std::vector<bool> reverse, float clip,
                        bool input_forget, bool with_y, int64_t rows_per_task, int64_t x_span,
                        int64_t h_span, int threads, nb::object w_tiles) {
  lowp::QLstmArgs a;
  a.t = int64_t(x.shape(0)), a.b = int64_t(x.shape(1)), a.i = int64_t(x.shape(2));
  a.d = int64_t(reverse.size()), a.h = hidden;
  a.x = x.data();
  const int64_t hp = (a.h + lowp::kRnnAlign - 1) / lowp::kRnnAlign * lowp::kRnnAlign, n = 4 * hp;
  if (a.d < 1 || a.d > 2 || a.h < 1 || a.i < 1)
    throw std::invalid_argument("qlstm needs one or two directions, hidden and input >= 1");
  auto weight = [&](I8x2 b, I32x2 colsum, const std::vector<int32_t>& d, F2 scale, int64_t k,
                    lowp::QWeight* out, const char* what) {
    if (int64_t(b.shape(0)) != a.d || int64_t(b.shape(1)) != lowp::qrnn_packed_size(k, n) ||
        int64_t(colsum.shape(0)) != a.d || int64_t(colsum.shape(1)) != n ||
        int64_t(scale.shape(0)) != a.d || int64_t(scale.shape(1)) != n ||
        int64_t(d.size()) != a.d)
      throw std::invalid_argument(std::string("qlstm packed ") + what +
                                  " does not match the sizes");
    for (int64_t i = 0; i < a.d; ++i)
      out[i] = {b.data() + i * b.shape(1), colsum.data() + i * n, d[size_t(i)],
                scale.data() + i * n};
  };
  weight(w_b, w_colsum, w_d, w_scale, a.i, a.w, "W");
  weight(r_b, r_colsum, r_d, r_scale, a.h, a.r, "R");
  auto states = [&](const auto& s, const char* what) {
    if (int64_t(s.shape(0)) != a.d || int64_t(s.shape(1)) != a.b || int64_t(s.shape(2)) != a.h)
      throw std::invalid_argument(std::string("qlstm ") + what + " must be (D, B, H)");
    return s.data();
  };
  if (p) {
    if (int64_t(p->shape(0)) != a.d * 3 * a.h)
      throw std::invalid_argument("qlstm peepholes must be D * 3 * H floats");
    a.p = p->data();
  }
  if (bias) {
    if (int64_t(bias->shape(0)) != a.d * 8 * a.h)
      throw std::invalid_argument("qlstm bias must be D * 8 * H floats");
    a.bias = bias->data();
  }
  if (h0) a.h0 = states(*h0, "h0");
  if (c0) a.c0 = states(*c0, "c0");
  if (lens) a.lens = checked_lens(*lens, a.b, a.t);
  if (int64_t(y.shape(0)) != a.t || int64_t(y.shape(1)) != a.d || int64_t(y.shape(2)) != a.b ||
      int64_t(y.shape(3)) != a.h)
    throw std::invalid_argument("qlstm y must be (T, D, B, H)");
  a.y = y.data();
  a.yh = states(yh, "yh");
  a.yc = states(yc, "yc");
  for (int64_t i = 0; i < a.d; ++i) a.reverse[i] = reverse[size_t(i)];
  a.clip = clip;
  a.input_forget = input_forget;
  a.with_y = with_y;
  a.rows_per_task = rows_per_task;
  a.x_span = x_span;
  a.h_span = h_span;
  if (!w_tiles.is_none()) {
    // W as IntMatMul's B per direction (qrecurrent.h): K rounded up to 4 k4, n columns;
    // the caller's sequence keeps the objects alive during the call
    if (int64_t(nb::len(w_tiles)) != a.d)
      throw std::invalid_argument("qlstm w_tiles needs one IntMatMul per direction");
    for (int64_t i = 0; i < a.d; ++i) {
      const lowp::IntMatMul& op = nb::cast<const lowp::IntMatMul&>(w_tiles[nb::int_(i)]);
      if (op.k() != 4 * lowp::qrnn_k4(a.i) || op.n() != n)
        throw std::invalid_argument("qlstm w_tiles does not match the sizes");
      a.w_tiles[i] = &op;
    }
  }
  // the closure keeps every array and the IntMatMul objects alive
  return [a, threads, x, w_b, w_colsum, w_scale, r_b, r_colsum, r_scale, p, bias, h0, c0, lens,
          y, yh, yc, w_tiles] { lowp::run_qlstm(a, threads); };
}

// ConvInteger's windows as rows (im2col of 8-bit data): x (n, c, h, w) bytes, out
// (n oh ow, c kh kw) bytes, row (b, oy, ox), column (ci, ky, kx); a tap outside the input
// (the padding) reads the input's zero point `zp`.
void conv_integer_rows(Bytes x, OutBytes out, int n, int c, int h, int w, int kh, int kw,
                       int sh, int sw, int dh, int dw, int pt, int pl, int oh, int ow,
                       int zp) {
  const size_t k = size_t(c) * kh * kw;
  if (x.size() != size_t(n) * c * h * w || out.size() != size_t(n) * oh * ow * k || n < 0 ||
      c < 0 || h < 0 || w < 0 || kh < 1 || kw < 1 || sh < 1 || sw < 1 || dh < 1 || dw < 1 ||
      oh < 0 || ow < 0)
    throw std::invalid_argument("conv_integer_rows: sizes do not match");
  const lowp::ConvRowsGeometry g{n, c, h, w, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow};
  const uint8_t* src = x.data();
  uint8_t* dst = out.data();
  const uint8_t z = uint8_t(zp);
  nb::gil_scoped_release nogil;
  for (int b = 0; b < n; ++b)
    for (int oy = 0; oy < oh; ++oy)
      for (int ox = 0; ox < ow; ++ox) {
        lowp::conv_window_row(src + size_t(b) * c * h * w, g, oy, ox, z, dst);
        dst += k;
      }
}

}  // namespace

// tree_ensemble_bindings.cpp
void bind_tree_ensemble(nb::module_& m, nb::class_<lowp::Program>& program);
void bind_ml_rows(nb::module_& m, nb::class_<lowp::Program>& program);   // ml_rows.cpp
void bind_detection(nb::module_& m);       // detection_bindings.cpp

NB_MODULE(_native, m) {
  m.doc() = "lowp native core: int8 GEMM / convolution microkernels with runtime dispatch";
  m.def("available_paths", &lowp::available_paths);
  m.def("conv_integer_rows", &conv_integer_rows, "x"_a, "out"_a, "n"_a, "c"_a, "h"_a, "w"_a,
        "kh"_a, "kw"_a, "sh"_a, "sw"_a, "dh"_a, "dw"_a, "pt"_a, "pl"_a, "oh"_a, "ow"_a,
        "zp"_a);
  m.def("active_path", [] { return std::string(lowp::active_table()->name); });
  m.def("set_path", [](const std::string& name) { lowp::set_active_path(name); }, "name"_a);
  m.def("short_gemm_bytes", &lowp::short_gemm_bytes);
  m.def("set_short_gemm_bytes", &lowp::set_short_gemm_bytes, "bytes"_a);
  m.def("short_gemm_rows", &lowp::short_gemm_rows);
  m.def("set_short_gemm_rows", &lowp::set_short_gemm_rows, "rows"_a);
#ifdef LOWP_AMX_PHASES
  m.def("set_amx_phase_skip", &lowp::set_amx_phase_skip, "mask"_a);
#endif
  m.def("max_threads", &lowp::ThreadPool::max_threads);
  bind_detection(m);
  m.def("peak_gops", &peak_gops, "kind"_a, "seconds"_a = 0.5, "threads"_a = 1);

  // a Loop's iterations with its body as Programs (program.h run_loop); the arrays are byte
  // views of the body's buffers and the stacked scan outputs (rows first .. max_trip - 1)
  m.def(
      "run_loop",
      [](nb::list body, int64_t first, int64_t max_trip, bool cond,
         std::optional<OutBytes> iteration, std::optional<OutBytes> cond_in, Bytes cond_out,
         std::vector<OutBytes> carried_dst, std::vector<Bytes> carried_src,
         std::vector<OutBytes> scan_dst, std::vector<Bytes> scan_src,
         std::vector<nb::ndarray<const int64_t, nb::c_contig, nb::device::cpu>> statuses) {
        lowp::LoopArgs a;
        for (nb::handle p : body) a.body.push_back(&nb::cast<const lowp::Program&>(p));
        if (first < 0 || max_trip < first)
          throw std::invalid_argument("run_loop needs 0 <= first <= max_trip");
        if ((iteration && iteration->size() != 8) || (cond_in && cond_in->size() != 1) ||
            cond_out.size() != 1)
          throw std::invalid_argument("run_loop: the iteration number is 8 bytes, a "
                                      "condition 1");
        if (carried_dst.size() != carried_src.size() || scan_dst.size() != scan_src.size())
          throw std::invalid_argument("run_loop needs one source per destination");
        a.iteration = iteration ? reinterpret_cast<int64_t*>(iteration->data()) : nullptr;
        a.cond_in = cond_in ? cond_in->data() : nullptr;
        a.cond_out = cond_out.data();
        for (size_t k = 0; k < carried_dst.size(); ++k) {
          if (carried_dst[k].size() != carried_src[k].size())
            throw std::invalid_argument("run_loop: a carried value changes its size");
          a.carried.push_back({carried_dst[k].data(), carried_src[k].data(),
                               carried_src[k].size()});
        }
        for (size_t k = 0; k < scan_dst.size(); ++k) {
          if (scan_dst[k].size() != size_t(max_trip - first) * scan_src[k].size())
            throw std::invalid_argument("run_loop: a scan output holds max_trip - first rows");
          a.scans.push_back({scan_dst[k].data(), scan_src[k].data(), scan_src[k].size()});
        }
        for (const auto& st : statuses) {
          if (st.size() < 1) throw std::invalid_argument("run_loop: an empty status array");
          a.statuses.push_back(st.data());
        }
        nb::gil_scoped_release nogil;
        return lowp::run_loop(a, first, max_trip, cond);
      },
      "body"_a, "first"_a, "max_trip"_a, "cond"_a, "iteration"_a.none(), "cond_in"_a.none(),
      "cond_out"_a, "carried_dst"_a, "carried_src"_a, "scan_dst"_a, "scan_src"_a,
      "statuses"_a);

  nb::class_<FeedSlot>(m, "FeedSlot")
      .def(nb::init<>())
      .def("set", &set_feed_slot, "x"_a);
  nb::class_<lowp::Program> program(m, "Program");
  bind_tree_ensemble(m, program);
  bind_ml_rows(m, program);
  program.def(nb::init<>())
      .def(
          "quantize_slot",
          [](lowp::Program& p, FeedSlot& slot, OutBytes y, float scale, int zp, int qmin,
             int qmax, int threads) {
            p.append(make_quantize_slot(slot, y, scale, zp, qmin, qmax, threads));
          },
          "slot"_a, "y"_a, "scale"_a, "zero_point"_a, "qmin"_a, "qmax"_a, "threads"_a = 1)
      .def(
          "quantize_to_channels_last_slot",
          [](lowp::Program& p, FeedSlot& slot, int64_t n, int64_t c, int64_t s,
             nb::ndarray<uint8_t, nb::ndim<3>, nb::c_contig, nb::device::cpu> y, float scale,
             int zp, int qmin, int qmax, int threads) {
            p.append(make_quantize_to_channels_last_slot(slot, n, c, s, y, scale, zp, qmin,
                                                         qmax, threads));
          },
          "slot"_a, "n"_a, "c"_a, "s"_a, "y"_a, "scale"_a, "zero_point"_a, "qmin"_a, "qmax"_a,
          "threads"_a = 1)
      .def("__len__", &lowp::Program::size)
      .def("memoize_last",
           [](lowp::Program& p,
              std::vector<nb::ndarray<nb::ro, nb::c_contig, nb::device::cpu>> inputs) {
             std::vector<std::pair<const void*, size_t>> spans;
             for (const auto& a : inputs) spans.emplace_back(a.data(), a.nbytes());
             p.memoize_last(std::move(spans),
                            std::make_shared<decltype(inputs)>(std::move(inputs)));
           })
      .def("run",
           [](const lowp::Program& p) {
             nb::gil_scoped_release nogil;
             p.run();
           })
      .def(
          "run_timed",
          [](const lowp::Program& p,
             nb::ndarray<int64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu> ns) {
            if (ns.shape(0) != p.size())
              throw std::invalid_argument("run_timed: one time per kernel expected");
            nb::gil_scoped_release nogil;
            p.run_timed(ns.data());
          },
          "ns"_a)
      .def(
          "conv_run",
          [](lowp::Program& p, nb::object op, Act5 x, Out5 y) {
            // ConvOp.run appended; the closure holds the operator object
            p.append([k = make_conv_run(nb::cast<lowp::ConvOp&>(op), x, y), op] { k(); });
          },
          "op"_a, "x"_a, "y"_a);
  program.def(
      "int_matmul_run",
      [](lowp::Program& p, nb::object op, Bytes a, std::optional<Bytes> a_zp, OutInts y,
         int64_t m, bool a_signed, int threads) {
        // IntMatMul.run appended; the closure holds the operator object
        p.append([k = make_int_matmul_run(nb::cast<const lowp::IntMatMul&>(op), a, a_zp, y, m,
                                          a_signed, threads),
                  op] { k(); });
      },
      "op"_a, "a"_a, "a_zero_point"_a.none(), "y"_a, "m"_a, "a_signed"_a, "threads"_a = 1);
  program.def(
      "int_matmul_conv_run",
      [](lowp::Program& p, nb::object op, Bytes x, std::optional<Bytes> x_zp,
         std::optional<Ints> bias, std::optional<OutInts> y, std::optional<OutFloats> yf,
         std::optional<Floats> scale, std::vector<int> geometry, bool x_signed, int threads) {
        // IntMatMul.run_conv appended; the closure holds the operator object
        p.append([k = make_int_matmul_conv_run(nb::cast<const lowp::IntMatMul&>(op), x, x_zp,
                                               bias, y, yf, scale, geometry, x_signed, threads),
                  op] { k(); });
      },
      "op"_a, "x"_a, "x_zero_point"_a.none(), "bias"_a.none(), "y"_a.none(), "yf"_a.none(),
      "scale"_a.none(), "geometry"_a, "x_signed"_a, "threads"_a = 1);
  program.def(
      "int_matmul_scaled_run",
      [](lowp::Program& p, nb::object op, Bytes a, std::optional<Bytes> a_zp, Floats a_scale,
         Floats b_scale, std::optional<Floats> bias, OutFloats y, int64_t m, bool a_signed,
         int threads) {
        p.append([k = make_int_matmul_scaled_run(nb::cast<const lowp::IntMatMul&>(op), a, a_zp,
                                                 a_scale, b_scale, bias, y, m, a_signed,
                                                 threads),
                  op] { k(); });
      },
      "op"_a, "a"_a, "a_zero_point"_a.none(), "a_scale"_a, "b_scale"_a, "bias"_a.none(), "y"_a,
      "m"_a, "a_signed"_a, "threads"_a = 1);
  program.def(
      "int_matmul_per_token_run",
      [](lowp::Program& p, nb::object op, Floats x, Floats b_scale, std::optional<Floats> bias,
         OutFloats y, int64_t m, int threads) {
        // IntMatMul.run_per_token appended; the closure holds the operator object
        p.append([k = make_int_matmul_per_token_run(nb::cast<const lowp::IntMatMul&>(op), x,
                                                    b_scale, bias, y, m, threads),
                  op] { k(); });
      },
      "op"_a, "x"_a, "b_scale"_a, "bias"_a.none(), "y"_a, "m"_a, "threads"_a = 1);
  def_kernel(m, program, "dynamic_quantize", &make_dynamic_quantize, "x"_a, "y"_a, "scale"_a,
             "zero_point"_a, "threads"_a = 1);
  def_kernel(m, program, "add", &make_add, "a"_a, "b"_a, "y"_a, "a_signed"_a, "b_signed"_a,
             "ma"_a, "mb"_a, "c"_a, "qmin"_a, "qmax"_a, "threads"_a = 1);
  def_kernel(m, program, "max_pool2d", &make_max_pool2d, "x"_a, "y"_a, "dims"_a, "geometry"_a,
             "is_signed"_a, "threads"_a = 1);
  def_kernel(m, program, "quantize", &make_quantize, "x"_a, "y"_a, "scale"_a, "zero_point"_a,
             "qmin"_a, "qmax"_a, "threads"_a = 1);
  def_kernel(m, program, "quantize_to_channels_last", &make_quantize_to_channels_last, "x"_a,
             "y"_a, "scale"_a, "zero_point"_a, "qmin"_a, "qmax"_a, "threads"_a = 1);
  def_kernel(m, program, "lookup8", &make_lookup8, "x"_a, "table"_a, "y"_a, "channels"_a = 1,
             "threads"_a = 1);
  def_kernel(m, program, "qaverage_pool2d", &make_qaverage_pool2d, "x"_a, "y"_a, "count"_a,
             "dims"_a, "window"_a, "channels_last"_a, "x_signed"_a, "x_zero_point"_a,
             "x_scale"_a, "y_scale"_a, "y_zero_point"_a, "qmin"_a, "qmax"_a, "threads"_a = 1);
  def_kernel(m, program, "global_average_pool", &make_global_average_pool, "x"_a, "y"_a,
             "channels_last"_a, "x_signed"_a, "x_zero_point"_a, "scale"_a, "mult"_a,
             "lshift"_a, "rshift"_a, "fixedpoint"_a, "zero_point"_a, "qmin"_a, "qmax"_a);

  using F = nb::ndarray<const float, nb::device::cpu>;
  using FOut = nb::ndarray<float, nb::device::cpu>;
  def_kernel(m, program, "rnn", &make_rnn, "gru"_a, "x"_a, "w"_a, "r"_a, "hidden"_a,
             "p"_a.none(), "h0"_a.none(), "c0"_a.none(), "lens"_a.none(), "y"_a.none(),
             "yh"_a.none(), "yc"_a.none(), "reverse"_a, "clip"_a, "input_forget"_a,
             "linear_before_reset"_a, "threads"_a = 1, "bias"_a.none() = nb::none(),
             "acts"_a.none() = nb::none(), "alphas"_a.none() = nb::none(),
             "betas"_a.none() = nb::none());

  m.def("rnn_kernels", [] { return std::string(lowp::active_rnn_kernels().name); });
  def_kernel(m, program, "float_rnn", &make_float_rnn, "x"_a, "w"_a, "r"_a, "bias"_a.none(),
             "h0"_a.none(), "lens"_a.none(), "y"_a, "yh"_a, "acts"_a, "alphas"_a, "betas"_a,
             "reverse"_a, "clip"_a.none(), "threads"_a = 1);
  def_kernel(m, program, "qlstm", &make_qlstm, "x"_a, "w_b"_a, "w_colsum"_a, "w_d"_a,
             "w_scale"_a, "r_b"_a, "r_colsum"_a, "r_d"_a, "r_scale"_a, "hidden"_a, "p"_a.none(),
             "bias"_a.none(), "h0"_a.none(), "c0"_a.none(), "lens"_a.none(), "y"_a, "yh"_a,
             "yc"_a, "reverse"_a, "clip"_a, "input_forget"_a, "with_y"_a, "rows_per_task"_a,
             "x_span"_a, "h_span"_a, "threads"_a, "w_tiles"_a.none());
  m.def("qlstm_kernels", [] { return std::string(lowp::active_qrnn_kernels().name); });

  def_kernel(m, program, "float_unary", &make_float_unary, "op"_a, "x"_a, "y"_a,
             "alpha"_a = 0.0f, "beta"_a = 0.0f, "threads"_a = 1);
  def_kernel(m, program, "float_pool2d", &make_float_pool2d, "x"_a, "y"_a, "dims"_a,
             "geometry"_a, "average"_a, "include_pad"_a, "threads"_a = 1);
  def_kernel(m, program, "float_mean_rows", &make_float_mean_rows, "x"_a, "y"_a, "n"_a,
             "threads"_a = 1);
  def_kernel(m, program, "float_softmax_rows", &make_float_softmax_rows, "x"_a, "y"_a, "n"_a,
             "threads"_a = 1, "log"_a = false);
  def_kernel(m, program, "float_softmax_axis", &make_float_softmax_axis, "x"_a, "y"_a, "n"_a,
             "inner"_a, "threads"_a = 1, "log"_a = false);
  def_kernel(m, program, "float_sqrt", &make_float_sqrt, "x"_a, "y"_a, "threads"_a = 1);
  def_kernel(m, program, "float_floor", &make_float_floor, "x"_a, "y"_a, "ends"_a,
             "threads"_a = 1);
  def_kernel(m, program, "compare", &make_compare, "op"_a, "a"_a, "b"_a, "y"_a, "dims"_a,
             "a_strides"_a, "b_strides"_a, "type"_a, "threads"_a = 1);
  def_kernel(m, program, "where", &make_where, "c"_a, "a"_a, "b"_a, "y"_a, "dims"_a,
             "c_strides"_a, "a_strides"_a, "b_strides"_a, "threads"_a, "float_zero"_a = 0);
  def_kernel(m, program, "integer_binary", &make_integer_binary, "op"_a, "a"_a, "b"_a, "y"_a,
             "dims"_a, "a_strides"_a, "b_strides"_a, "type"_a, "threads"_a = 1);
  def_kernel(m, program, "gather_rows", &make_gather_rows, "x"_a, "idx"_a, "y"_a, "outer"_a,
             "n"_a, "row"_a, "status"_a, "threads"_a = 1);
  def_kernel(m, program, "cast_from_float", &make_cast_from_float, "x"_a, "y"_a,
             "threads"_a = 1);
  def_kernel(m, program, "cast_integer", &make_cast_integer, "x"_a, "y"_a, "x_code"_a,
             "y_code"_a);
  def_kernel(m, program, "one_hot", &make_one_hot, "indices"_a, "y"_a, "code"_a, "depth"_a,
             "off"_a, "on"_a);
  def_kernel(m, program, "arg_max", &make_arg_max, "x"_a, "y"_a, "outer"_a, "n"_a,
             "inner"_a, "last"_a, "whole"_a = false);
  def_kernel(m, program, "set_slice", &make_set_slice, "x"_a, "value"_a, "start"_a, "end"_a,
             "y"_a, "outer"_a, "d"_a, "inner"_a, "status"_a);
  def_kernel(m, program, "scatter_nd", &make_scatter_nd, "x"_a, "indices"_a, "updates"_a,
             "y"_a, "dims"_a, "slice"_a, "itemsize"_a, "reduction"_a, "type"_a, "status"_a);
  def_kernel(m, program, "cast_to_float", &make_cast_to_float, "x"_a, "y"_a, "code"_a,
             "threads"_a = 1);
  def_kernel(m, program, "matmul_nbits", &make_matmul_nbits, "x"_a, "w"_a, "scale"_a,
             "bblk"_a, "wp"_a, "scale_p"_a, "bblk_p"_a, "bias"_a, "has_bias"_a, "y"_a, "m"_a, "k"_a, "n"_a, "threads"_a);
  def_kernel(m, program, "matmul_nbits_lanes", &make_matmul_nbits_lanes, "x"_a, "scale"_a,
             "bblk"_a, "w_lanes"_a, "w_rem"_a, "perm"_a, "lane_block"_a, "wp_lanes"_a,
             "wp_rem"_a, "scale_p"_a, "bblk_p"_a, "bias"_a,
             "has_bias"_a, "y"_a, "m"_a, "k"_a, "n"_a, "block"_a, "group"_a, "rem_lanes"_a,
             "pair_fold16"_a, "threads"_a);
  def_kernel(m, program, "cast_half", &make_cast_half, "x"_a, "y"_a, "to_half"_a, "threads"_a);
  m.def("has_f16c", &lowp::has_f16c);
  def_kernel(m, program, "take", &make_take, "x"_a, "map"_a, "fill"_a, "y"_a, "itemsize"_a,
             "threads"_a = 1);
  def_kernel(m, program, "bilinear_integer", &make_bilinear_integer, "x"_a, "y"_a, "dims"_a,
             "y1"_a, "y2"_a, "dy1"_a, "dy2"_a, "x1"_a, "x2"_a, "dx1"_a, "dx2"_a, "is_signed"_a,
             "threads"_a = 1);
  def_kernel(m, program, "bilinear_float", &make_bilinear_float, "x"_a, "y"_a, "dims"_a,
             "y1"_a, "y2"_a, "dy1"_a, "dy2"_a, "x1"_a, "x2"_a, "dx1"_a, "dx2"_a,
             "threads"_a = 1);
  def_kernel(m, program, "copy_block", &make_copy_block, "x"_a, "y"_a, "rows"_a, "width"_a,
             "y_width"_a, "offset"_a, "threads"_a = 1);
  def_kernel(m, program, "interleave_rows", &make_interleave_rows, "parts"_a, "y"_a, "rows"_a,
             "width"_a);
  def_kernel(m, program, "float_layer_norm", &make_float_layer_norm, "x"_a, "scale"_a,
             "bias"_a.none(), "y"_a, "mean"_a, "inv"_a, "n"_a, "epsilon"_a, "threads"_a = 1,
             "welford"_a = false);
  def_kernel(m, program, "float_instance_norm", &make_float_instance_norm, "x"_a, "scale"_a,
             "bias"_a, "y"_a, "w"_a, "epsilon"_a, "threads"_a = 1);
  def_kernel(m, program, "float_attention", &make_float_attention, "q"_a, "k"_a, "v"_a,
             "past_k"_a.none(), "past_v"_a.none(), "mask"_a.none(), "bool_mask"_a.none(),
             "valid"_a.none(), "y"_a, "present_k"_a.none(), "present_v"_a.none(), "qk"_a.none(),
             "dims"_a, "three_d"_a, "scale"_a, "softcap"_a, "low"_a, "mode"_a, "causal"_a,
             "fold"_a, "half"_a, "k_unit_ld"_a, "v_unit_ld"_a, "threads"_a, "status"_a,
             "q_slot"_a.none() = nb::none(), "k_slot"_a.none() = nb::none(),
             "v_slot"_a.none() = nb::none());
  def_kernel(m, program, "float_simplified_layer_norm", &make_float_simplified_layer_norm,
             "x"_a, "scale"_a, "y"_a, "inv"_a, "n"_a, "epsilon"_a, "threads"_a = 1);
  def_kernel(m, program, "float_reduce_sum", &make_float_reduce_sum, "x"_a, "y"_a, "outer"_a,
             "k"_a, "inner"_a, "form"_a, "mean"_a, "threads"_a = 1);
  def_kernel(m, program, "float_reduce_max", &make_float_reduce_max, "x"_a, "y"_a, "outer"_a,
             "k"_a, "inner"_a, "pool"_a = 0, "threads"_a = 1);
  def_kernel(m, program, "float_reduce_extreme", &make_float_reduce_extreme, "x"_a, "y"_a,
             "a"_a, "b"_a, "c"_a, "form"_a, "is_min"_a, "threads"_a = 1);
  def_kernel(m, program, "float_max_pool_channels_last", &make_float_max_pool_channels_last,
             "x"_a, "y"_a, "dims"_a, "geometry"_a, "threads"_a = 1);
  def_kernel(m, program, "float_average_pool_rowmajor", &make_float_average_pool_rowmajor,
             "x"_a, "y"_a, "counts"_a, "dims"_a, "geometry"_a, "threads"_a = 1);
  def_kernel(m, program, "float_log", &make_float_log, "x"_a, "y"_a, "ends"_a,
             "threads"_a = 1);
  def_kernel(m, program, "float_elu", &make_float_elu, "x"_a, "y"_a, "alpha"_a, "ends"_a,
             "threads"_a = 1);
  def_kernel(m, program, "float_softplus", &make_float_softplus, "x"_a, "y"_a, "ends"_a,
             "threads"_a = 1);
  def_kernel(m, program, "float_sincos", &make_float_sincos, "x"_a, "y"_a, "cosine"_a,
             "threads"_a = 1);
  def_kernel(m, program, "float_libm", &make_float_libm, "code"_a, "x"_a, "y"_a,
             "threads"_a = 1);
  def_kernel(m, program, "float_powf", &make_float_powf, "x"_a, "exponent"_a, "y"_a,
             "threads"_a = 1);
  def_kernel(m, program, "float_col2im", &make_float_col2im, "cols"_a, "bias"_a.none(), "y"_a,
             "dims"_a, "threads"_a = 1);
  def_kernel(m, program, "float_conv_transpose_direct", &make_float_conv_transpose_direct, "x"_a,
             "w"_a, "bias"_a.none(), "y"_a, "dims"_a, "threads"_a = 1);
  def_kernel(m, program, "float_conv_transpose", &make_float_conv_transpose, "x"_a, "w"_a,
             "bias"_a.none(), "y"_a, "dims"_a, "threads"_a = 1);
  def_kernel(m, program, "float_conv_im2col", &make_float_conv_im2col, "x"_a, "w"_a,
             "bias"_a.none(), "y"_a, "cols"_a.none(), "dims"_a, "threads"_a = 1,
             "sum"_a = nb::none());
#ifdef LOWP_FLOAT_CONV_NCHWC
  def_kernel(m, program, "float_conv_nchwc", &make_float_conv_nchwc, "x"_a, "wp"_a,
             "bias"_a.none(), "y"_a, "dims"_a, "isa"_a, "threads"_a = 1, "sum"_a = nb::none());
#endif
  def_kernel(m, program, "float_sgemm_mlas", &make_float_sgemm_mlas, "a"_a, "b"_a, "c"_a,
             "alpha"_a, "trans_a"_a, "trans_b"_a, "packed"_a, "threads"_a = 1,
             "init"_a = nb::none(), "panels"_a = nb::none(), "panels_stride_k"_a = 0,
             "panels_width"_a = 0, "unit_ldb"_a = true);
  m.def("float_sgemm_panels", &float_sgemm_panels, "m"_a, "b"_a, "trans_a"_a, "trans_b"_a,
        "packed"_a, "alpha"_a = 1.0f);
  m.def("float_sgemm_pack", &float_sgemm_pack, "b"_a, "out"_a, "stride_k"_a, "width"_a);
  def_kernel(m, program, "float_binary", &make_float_binary, "op"_a, "a"_a, "b"_a, "y"_a,
             "dims"_a, "a_strides"_a, "b_strides"_a, "threads"_a = 1,
             "nchwc"_a = std::vector<int64_t>{}, "channels_last"_a = std::vector<int64_t>{});
  def_kernel(m, program, "float_fused", &make_float_fused, "code"_a, "inputs"_a, "y"_a,
             "dims"_a, "strides"_a, "threads"_a = 1, "channels_last"_a = std::vector<int64_t>{});
  def_kernel(m, program, "float_clamp", &make_float_clamp, "x"_a, "y"_a, "lo"_a, "hi"_a,
             "use_lo"_a, "use_hi"_a, "threads"_a = 1);
  def_kernel(m, program, "lookup8_f32", &make_lookup8_f32, "x"_a, "table"_a, "y"_a,
             "threads"_a = 1);
  def_kernel(m, program, "qmatmul_acts", &make_qmatmul_acts, "a"_a, "b"_a, "y"_a,
             "a_offsets"_a, "b_offsets"_a, "m"_a, "k"_a, "n"_a, "a_signed"_a, "b_signed"_a,
             "y_signed"_a, "a_zero_point"_a, "b_zero_point"_a, "scale"_a, "y_zero_point"_a,
             "qmin"_a, "qmax"_a, "threads"_a = 1);
  def_kernel(m, program, "qsoftmax_rows", &make_qsoftmax_rows, "x"_a, "table"_a, "y"_a, "n"_a,
             "inv_scale"_a, "zero_point"_a, "qmin"_a, "qmax"_a, "is_signed"_a,
             "threads"_a = 1, "inner"_a = 1);
  def_kernel(m, program, "qbinary", &make_qbinary, "a"_a, "b"_a, "y"_a, "dims"_a,
             "a_strides"_a, "b_strides"_a, "mul"_a, "a_signed"_a, "b_signed"_a, "ma"_a, "mb"_a,
             "c"_a, "za"_a, "zb"_a, "qmin"_a, "qmax"_a, "threads"_a = 1);
  def_kernel(m, program, "lookup_pair", &make_lookup_pair, "a"_a, "b"_a, "table"_a, "y"_a,
             "dims"_a, "a_strides"_a, "b_strides"_a, "threads"_a = 1);
  m.def("float_kernels", [] { return std::string(lowp::active_float_kernels().name); });
  // the softmax's path for rows reaching far below their maximum (float_kernels.h
  // SubnormalPath): "measure", "avoid" or "plain" sets it ("": unchanged); returns the path
  // rows take now ("avoid" or "plain", measured first if it is "measure")
  m.def(
      "float_softmax_subnormals",
      [](const std::string& path) {
        using lowp::SubnormalPath;
        if (path == "measure") lowp::set_softmax_subnormal_path(SubnormalPath::kMeasure);
        else if (path == "avoid") lowp::set_softmax_subnormal_path(SubnormalPath::kAvoid);
        else if (path == "plain") lowp::set_softmax_subnormal_path(SubnormalPath::kPlain);
        else if (!path.empty())
          throw std::invalid_argument("float_softmax_subnormals takes measure, avoid or plain");
        nb::gil_scoped_release release;
        return std::string(lowp::softmax_subnormal_path() == SubnormalPath::kAvoid ? "avoid"
                                                                                   : "plain");
      },
      "path"_a = "");

  nb::class_<lowp::ConvOp>(m, "ConvOp")
      .def("__init__",
           [](lowp::ConvOp* self, const std::vector<int>& geo, bool x_signed, int x_zp,
              bool w_signed, nb::ndarray<const uint8_t, nb::c_contig, nb::device::cpu> w,
              Vec<int32_t> w_zp, std::optional<Vec<int32_t>> bias, Vec<float> scale,
              Vec<int32_t> mult, Vec<int32_t> lshift, Vec<int32_t> rshift, int out_zp,
              int qmin, int qmax, bool fixedpoint, int threads, bool allow_depthwise) {
             if (geo.size() != 18) throw std::invalid_argument("geometry needs 18 integers");
             lowp::ConvParams p;
             int* f[] = {&p.kd, &p.kh, &p.kw, &p.sd, &p.sh, &p.sw, &p.dd, &p.dh, &p.dw,
                         &p.pd0, &p.ph0, &p.pw0, &p.pd1, &p.ph1, &p.pw1,
                         &p.groups, &p.cin, &p.cout};
             for (size_t i = 0; i < geo.size(); ++i) *f[i] = geo[i];
             p.x_signed = x_signed;
             p.x_zp = x_zp;
             p.w_signed = w_signed;
             p.out_zp = out_zp;
             p.qmin = qmin;
             p.qmax = qmax;
             p.fixedpoint = fixedpoint;
             p.threads = threads;
             p.allow_depthwise = allow_depthwise;
             const size_t cout = size_t(p.cout);
             const size_t wsize = cout * size_t(p.cin / (p.groups > 0 ? p.groups : 1)) *
                                  size_t(p.kd) * p.kh * p.kw;
             if (w.size() != wsize) throw std::invalid_argument("weight size mismatch");
             for (size_t n : {w_zp.shape(0), scale.shape(0), mult.shape(0), lshift.shape(0),
                              rshift.shape(0)})
               if (n != cout) throw std::invalid_argument("per-channel array length mismatch");
             if (bias && bias->shape(0) != cout) throw std::invalid_argument("bias length mismatch");
             new (self) lowp::ConvOp(p, w.data(), w_zp.data(), bias ? bias->data() : nullptr,
                                     scale.data(), mult.data(), lshift.data(), rshift.data());
           })
      .def("out_dims",
           [](const lowp::ConvOp& op, int64_t d, int64_t h, int64_t w) {
             const lowp::OutDims o = op.out_dims(d, h, w);
             return std::vector<int64_t>{o.d, o.h, o.w};
           })
      .def("run",
           [](lowp::ConvOp& op, Act5 x, Out5 y) {
             const lowp::Kernel k = make_conv_run(op, x, y);
             nb::gil_scoped_release nogil;
             k();
           })
      .def_prop_rw("threads", &lowp::ConvOp::threads, &lowp::ConvOp::set_threads)
      .def_prop_ro("depthwise", &lowp::ConvOp::depthwise)
      .def_prop_ro("panels_id", &lowp::ConvOp::panels_id);
  nb::class_<lowp::IntMatMul>(m, "IntMatMul")
      .def("__init__",
           [](lowp::IntMatMul* self, nb::ndarray<const uint8_t, nb::ndim<2>, nb::c_contig,
                                                 nb::device::cpu> b,
              bool b_signed, Vec<int32_t> b_zp) {
             // b (k x n bytes), b_zp (n per-column zero points in b's type)
             if (b_zp.shape(0) != b.shape(1))
               throw std::invalid_argument("IntMatMul needs one zero point per column");
             new (self) lowp::IntMatMul(b.data(), int64_t(b.shape(0)), int64_t(b.shape(1)),
                                        b_signed, b_zp.data());
           },
           "b"_a, "b_signed"_a, "b_zero_point"_a)
      .def("run",
           [](const lowp::IntMatMul& op, Bytes a, std::optional<Bytes> a_zp, OutInts y,
              int64_t m, bool a_signed, int threads) {
             const lowp::Kernel k = make_int_matmul_run(op, a, a_zp, y, m, a_signed, threads);
             nb::gil_scoped_release nogil;
             k();
           },
           "a"_a, "a_zero_point"_a.none(), "y"_a, "m"_a, "a_signed"_a, "threads"_a = 1)
      .def("run_scaled",
           [](const lowp::IntMatMul& op, Bytes a, std::optional<Bytes> a_zp, Floats a_scale,
              Floats b_scale, std::optional<Floats> bias, OutFloats y, int64_t m,
              bool a_signed, int threads) {
             const lowp::Kernel k = make_int_matmul_scaled_run(op, a, a_zp, a_scale, b_scale,
                                                               bias, y, m, a_signed, threads);
             nb::gil_scoped_release nogil;
             k();
           },
           "a"_a, "a_zero_point"_a.none(), "a_scale"_a, "b_scale"_a, "bias"_a.none(), "y"_a,
           "m"_a, "a_signed"_a, "threads"_a = 1)
      .def("run_conv",
           [](const lowp::IntMatMul& op, Bytes x, std::optional<Bytes> x_zp,
              std::optional<Ints> bias, std::optional<OutInts> y, std::optional<OutFloats> yf,
              std::optional<Floats> scale, std::vector<int> geometry, bool x_signed,
              int threads) {
             const lowp::Kernel k = make_int_matmul_conv_run(op, x, x_zp, bias, y, yf, scale,
                                                             geometry, x_signed, threads);
             nb::gil_scoped_release nogil;
             k();
           },
           "x"_a, "x_zero_point"_a.none(), "bias"_a.none(), "y"_a.none(), "yf"_a.none(),
           "scale"_a.none(), "geometry"_a, "x_signed"_a, "threads"_a = 1)
      .def("run_per_token",
           [](const lowp::IntMatMul& op, Floats x, Floats b_scale, std::optional<Floats> bias,
              OutFloats y, int64_t m, int threads) {
             const lowp::Kernel k = make_int_matmul_per_token_run(op, x, b_scale, bias, y, m,
                                                                  threads);
             nb::gil_scoped_release nogil;
             k();
           },
           "x"_a, "b_scale"_a, "bias"_a.none(), "y"_a, "m"_a, "threads"_a = 1)
      .def_prop_ro("k", &lowp::IntMatMul::k)
      .def_prop_ro("n", &lowp::IntMatMul::n);
  m.def("live_panels", &lowp::live_panels);
}
