// ConvTranspose by blocks of output channels (float_conv_transpose.h): per image and group, the
// input's panels are packed once per MLAS operation and shared; the blocks are split between
// the threads, each block made on one thread (filter rows copied, products, col2im), so the
// values do not depend on the thread count beyond the operations ONNX Runtime's threads make.
#include "float_conv_transpose.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "float_kernels.h"
#include "threadpool.h"

namespace lowp {
namespace {

// Column entries of a block, at most (16 KB; a block holds one output channel at least: one
// channel, 16 rows, for a 4 x 4 filter on a 48 x 48 input). Blocks of 2^10 to 2^16 floats ran
// within the noise of each other on 256 channels at 6 x 6 to 48 x 48 (docs/native.md).
constexpr int64_t kBlockFloats = int64_t(1) << 12;

// One MLAS operation of a product with its input panels, packed once: the shape and flags
// (`s`: a, c and m are set per block) and the panels it reads.
struct Operation {
  int64_t r0 = 0, rows = 0, c0 = 0, cols = 0;
  SgemmArgs s;
  std::vector<float> panels;
};

struct Shape {
  int64_t taps, mg, rows, k, n;  // taps, output channels, M, K and N of a group's product
};

Shape shape_of(const ConvTransposeArgs& a) {
  const Col2ImArgs& g = a.geometry;
  const int64_t taps = g.kh * g.kw, mg = g.channels / a.group;
  return {taps, mg, mg * taps, a.c / a.group, g.ih * g.iw};
}

// The operation's shape and flags as the product's float_sgemm_mlas call would give them, and
// its panels of the group's input xg (k x n by x's channel and position strides), packed on a
// 64-byte boundary.
void prepare(Operation& op, const ConvTransposeArgs& a, const Shape& sh, const float* xg) {
  SgemmArgs& s = op.s;
  s.b = xg + op.c0 * a.x_position, s.m = op.rows, s.k = sh.k, s.n = op.cols;
  s.sa_m = sh.k, s.sa_k = 1, s.sb_k = a.x_channel, s.sb_n = a.x_position, s.ldc = sh.n;
  s.trans_a = a.trans_a, s.unit_ldb = op.cols == sh.n, s.operation_m = op.rows;
  const SgemmPanels sizes = sgemm_panels(s);
  if (sizes.floats == 0) return;  // (a kernel that reads B in place)
  op.panels.resize(size_t(sizes.floats) + 16);
  const auto address = reinterpret_cast<uintptr_t>(op.panels.data());
  float* start = op.panels.data() + (64 - address % 64) % 64 / sizeof(float);
  pack_sgemm_panels(s, sizes, start);
  s.panels = start, s.panels_stride_k = sizes.stride_k, s.panels_width = sizes.width;
}

std::vector<Operation> operations(const ConvTransposeArgs& a, const Shape& sh, const float* xg) {
  std::vector<Operation> ops(size_t(std::max(1, a.nparts)));
  for (size_t j = 0; j < ops.size(); ++j) {
    Operation& op = ops[j];
    if (a.nparts == 0) {
      op.rows = sh.rows, op.cols = sh.n;
    } else {
      const int64_t* part = a.parts[j];
      op.r0 = part[0], op.rows = part[1], op.c0 = part[2], op.cols = part[3];
    }
    prepare(op, a, sh, xg);
  }
  return ops;
}

// The block's filter rows [r0, r1) as the kernel reads them: row r is column r of the group's
// filter wg (K x M). Read in place (strided along K) when the product has one panel of columns
// (the kernel reads them once); copied contiguous, 16 rows at a time, when it has more (strided
// reads, once per panel, cost more than the copy).
const float* filter_rows(const Shape& sh, const float* wg, int64_t r0, int64_t r1,
                         std::vector<float>& copy, int64_t& sa_m, int64_t& sa_k) {
  if (sh.n <= kSgemmPanelColumns) {
    sa_m = 1, sa_k = sh.rows;
    return wg + r0;
  }
  copy.resize(size_t((r1 - r0) * sh.k));
  for (int64_t q0 = r0; q0 < r1; q0 += 16) {
    const int64_t q1 = std::min(r1, q0 + 16);
    for (int64_t kk = 0; kk < sh.k; ++kk) {
      const float* src = wg + kk * sh.rows;
      for (int64_t r = q0; r < q1; ++r) copy[size_t((r - r0) * sh.k + kk)] = src[r];
    }
  }
  sa_m = sh.k, sa_k = 1;
  return copy.data();
}

// Output channels [o0, o1) of a group's product: the rows of each operation among their rows
// (row o * taps + t) multiplied into `cols`, then added into planes plane0 + o by col2im.
void run_block(const ConvTransposeArgs& a, const Shape& sh, const std::vector<Operation>& ops,
               const float* wg, int64_t plane0, int64_t o0, int64_t o1, std::vector<float>& copy,
               std::vector<float>& cols) {
  const int64_t r0 = o0 * sh.taps, r1 = o1 * sh.taps;
  int64_t sa_m = 0, sa_k = 0;
  const float* filter = filter_rows(sh, wg, r0, r1, copy, sa_m, sa_k);
  cols.resize(size_t((r1 - r0) * sh.n));
  for (const Operation& op : ops) {
    const int64_t lo = std::max(r0, op.r0), hi = std::min(r1, op.r0 + op.rows);
    if (lo >= hi) continue;
    SgemmArgs s = op.s;
    s.a = filter + (lo - r0) * sa_m, s.sa_m = sa_m, s.sa_k = sa_k, s.m = hi - lo;
    s.c = cols.data() + (lo - r0) * sh.n + op.c0;
    run_mlas_sgemm(s, 1);
  }
  Col2ImArgs g = a.geometry;
  g.cols = cols.data(), g.first_plane = plane0 + o0;
  col2im_planes(g, plane0 + o0, o1 - o0);
}

}  // namespace

void run_float_conv_transpose(const ConvTransposeArgs& a, int threads) {
  const Col2ImArgs& geo = a.geometry;
  if (a.n <= 0 || geo.channels <= 0 || geo.oh <= 0 || geo.ow <= 0) return;
  const Shape sh = shape_of(a);
  // output channels a block: whole channels, and two rows at least where there are (a lone row
  // of a larger operation is computed as the operation computes it, but the kernel is slower)
  int64_t per = std::max<int64_t>(1, kBlockFloats / std::max<int64_t>(1, sh.taps * sh.n));
  if (per * sh.taps < 2) per = 2;
  per = std::min(per, sh.mg);
  const int64_t blocks = (sh.mg + per - 1) / per;
  if (threads <= 0) threads = ThreadPool::max_threads();
  const int workers = int(std::min<int64_t>(threads, blocks));
  for (int64_t i = 0; i < a.n; ++i)
    for (int64_t g = 0; g < a.group; ++g) {
      const float* xg = a.x + i * a.x_batch + g * sh.k * a.x_channel;
      const float* wg = a.w + g * sh.k * sh.rows;
      const int64_t plane0 = (i * a.group + g) * sh.mg;
      const std::vector<Operation> ops = operations(a, sh, xg);
      auto work = [&](int t) {
        thread_local std::vector<float> copy, cols;
        const int64_t b0 = blocks * t / workers, b1 = blocks * (t + 1) / workers;
        for (int64_t b = b0; b < b1; ++b)
          run_block(a, sh, ops, wg, plane0, b * per, std::min(sh.mg, (b + 1) * per), copy, cols);
      };
      if (workers <= 1) work(0);
      else ThreadPool::instance().run(workers, work);
    }
}

}  // namespace lowp
