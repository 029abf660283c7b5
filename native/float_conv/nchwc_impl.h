// The one implementation of nchwc.h's order, compiled once per instruction set (the
// including file names the function; vec16.h picks the vectors and the register tile from
// its flags). Per output row, per group and per tile of up to kTileBlocks 16-lane
// output-channel blocks, every block of input channels runs over the row's columns as
// register tiles of kTileAccumulators / blocks columns, at most kTileColumns (one fma chain
// per column and lane, in the block's tap and channel order) and is added into the row's
// totals; the bias is added as the row is written (16 columns of 16 channels transposed in
// registers); an output that comes out NaN is computed again in MLAS's NaN order
// (blocks_nan_output).
// Columns whose taps all fall inside the input run without checks; the few at the borders
// run side by side, each over the taps that fall inside (the range nchwc.h's skipping
// leaves).
// Depthwise convolutions put 16 channels in the lanes (depthwise_lanes).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "../float_nan.h"
#include "nchwc.h"
#include "vec16.h"

namespace lowp_fconv {
namespace {

// Taps k in [lo, hi) of a kernel of `k` taps, dilation `d`, whose input index
// base + k * d falls in [0, size).
struct TapRange {
  int lo, hi;
};

inline TapRange inside_taps(int64_t base, int k, int d, int64_t size) {
  const int64_t lo = base >= 0 ? 0 : (-base + d - 1) / d;
  const int64_t hi = base > size - 1 ? 0 : (size - 1 - base) / d + 1;
  const int l = int(std::min<int64_t>(lo, k));
  return {l, int(std::max<int64_t>(l, std::min<int64_t>(hi, k)))};
}

// One register tile: columns whose first tap reads input column ix0 (then + sw per column),
// taps [ky, kx ranges) of block [c0, c1) of input channels.
struct Tile {
  const float* x;   // the group's channel 0 of this image
  const float* w;   // packed weights of the first output block of the tile
  int64_t wblock;   // floats between consecutive output blocks' weights
  int64_t iy0, ix0, c0, c1;
  TapRange ky, kx;
  bool first;       // the row's first block of input channels: store, else add
  float* total;     // (columns, kTileBlocks * kLanes) sums of the blocks so far
};

constexpr int kTotalStride = kTileBlocks * kLanes;

template <int P, int MB>
void run_tile(const ConvArgs& a, const Tile& t) {
  Vec16 acc[P][MB];
  for (int p = 0; p < P; ++p)
    for (int b = 0; b < MB; ++b) acc[p][b] = Vec16::zero();
  const int64_t hw = a.h * a.w, taps = int64_t(a.kh) * a.kw, sw = a.sw;
  for (int ky = t.ky.lo; ky < t.ky.hi; ++ky) {
    const int64_t row = (t.iy0 + int64_t(ky) * a.dh) * a.w + t.ix0;
    for (int kx = t.kx.lo; kx < t.kx.hi; ++kx) {
      const float* xp = t.x + row + int64_t(kx) * a.dw;
      const float* wp = t.w + (int64_t(ky) * a.kw + kx) * kLanes;
      const float* xc = xp + t.c0 * hw;
      const float* wc = wp + t.c0 * taps * kLanes;
#pragma GCC unroll 4
      for (int64_t c = t.c0; c < t.c1; ++c, xc += hw, wc += taps * kLanes) {
        Vec16 wv[MB];
        for (int b = 0; b < MB; ++b) wv[b] = Vec16::load(wc + b * t.wblock);
        for (int p = 0; p < P; ++p) {
          const Vec16 xv = Vec16::broadcast(xc[p * sw]);
          for (int b = 0; b < MB; ++b) acc[p][b] = fma(xv, wv[b], acc[p][b]);
        }
      }
    }
  }
  for (int p = 0; p < P; ++p) {
    for (int b = 0; b < MB; ++b) {
      float* out = t.total + p * kTotalStride + b * kLanes;
      (t.first ? acc[p][b] : add(acc[p][b], Vec16::load(out))).store(out);
    }
  }
}

using TileFn = void (*)(const ConvArgs&, const Tile&);

// kTiles[MB - 1][P - 1] = run_tile<P, MB>.
template <int MB, std::size_t... I>
constexpr std::array<TileFn, sizeof...(I)> tiles_of(std::index_sequence<I...>) {
  return {{&run_tile<int(I) + 1, MB>...}};
}
template <std::size_t... B>
constexpr std::array<std::array<TileFn, kTileColumns>, sizeof...(B)> tile_table(
    std::index_sequence<B...>) {
  return {{tiles_of<int(B) + 1>(std::make_index_sequence<kTileColumns>{})...}};
}
constexpr auto kTiles = tile_table(std::make_index_sequence<kTileBlocks>{});

// Up to kBorderColumns columns at the borders of one row, each with its own first input
// column and its own range of kernel columns inside the input (t.ix0, t.kx and t.total
// unused): one chain per column and lane over its taps, in the same order, side by side so
// that their latencies overlap.
constexpr int kBorderColumns = 4;

struct Border {
  int64_t ix0[kBorderColumns];
  TapRange kx[kBorderColumns];
  float* total[kBorderColumns];
};

// The taps of one kernel position over channels [c0, c1) for the border columns in mask
// M (bit p: column p reads an input inside the row here), column p's input of channel c
// at x[c * hw + at[p]]. With the mask a template argument the channel loop has no branches.
template <int P, int MB, unsigned M>
inline void border_taps(const float* x, const int64_t (&at)[P], const float* wc, int64_t wblock,
                        int64_t hw, int64_t wstep, int64_t c0, int64_t c1,
                        Vec16 (&acc)[P][MB]) {
#pragma GCC unroll 4
  for (int64_t c = c0; c < c1; ++c, wc += wstep) {
    Vec16 wv[MB];
    for (int b = 0; b < MB; ++b) wv[b] = Vec16::load(wc + b * wblock);
    for (int p = 0; p < P; ++p) {
      if (!((M >> p) & 1u)) continue;
      const Vec16 xv = Vec16::broadcast(x[c * hw + at[p]]);
      for (int b = 0; b < MB; ++b) acc[p][b] = fma(xv, wv[b], acc[p][b]);
    }
  }
}

template <int P, int MB, unsigned M = 1>
inline void border_masked(unsigned mask, const float* x, const int64_t (&at)[P], const float* wc,
                          int64_t wblock, int64_t hw, int64_t wstep, int64_t c0, int64_t c1,
                          Vec16 (&acc)[P][MB]) {
  if constexpr (M < (1u << P)) {
    if (mask == M)
      border_taps<P, MB, M>(x, at, wc, wblock, hw, wstep, c0, c1, acc);
    else
      border_masked<P, MB, M + 1>(mask, x, at, wc, wblock, hw, wstep, c0, c1, acc);
  }
}

template <int P, int MB>
void run_border(const ConvArgs& a, const Tile& t, const Border& e) {
  Vec16 acc[P][MB];
  for (int p = 0; p < P; ++p)
    for (int b = 0; b < MB; ++b) acc[p][b] = Vec16::zero();
  const int64_t hw = a.h * a.w, taps = int64_t(a.kh) * a.kw;
  for (int ky = t.ky.lo; ky < t.ky.hi; ++ky) {
    const int64_t row = (t.iy0 + int64_t(ky) * a.dh) * a.w;
    for (int kx = 0; kx < a.kw; ++kx) {
      unsigned mask = 0;
      int64_t at[P];
      for (int p = 0; p < P; ++p) {
        mask |= unsigned(kx >= e.kx[p].lo && kx < e.kx[p].hi) << p;
        at[p] = row + e.ix0[p] + int64_t(kx) * a.dw;
      }
      const float* wc = t.w + (int64_t(ky) * a.kw + kx) * kLanes + t.c0 * taps * kLanes;
      border_masked<P, MB>(mask, t.x, at, wc, t.wblock, hw, taps * kLanes, t.c0, t.c1, acc);
    }
  }
  for (int p = 0; p < P; ++p) {
    for (int b = 0; b < MB; ++b) {
      float* out = e.total[p] + b * kLanes;
      (t.first ? acc[p][b] : add(acc[p][b], Vec16::load(out))).store(out);
    }
  }
}

using BorderFn = void (*)(const ConvArgs&, const Tile&, const Border&);

template <int MB, std::size_t... I>
constexpr std::array<BorderFn, sizeof...(I)> borders_of(std::index_sequence<I...>) {
  return {{&run_border<int(I) + 1, MB>...}};
}
template <std::size_t... B>
constexpr std::array<std::array<BorderFn, kBorderColumns>, sizeof...(B)> border_table(
    std::index_sequence<B...>) {
  return {{borders_of<int(B) + 1>(std::make_index_sequence<kBorderColumns>{})...}};
}
constexpr auto kBorders = border_table(std::make_index_sequence<kTileBlocks>{});

// Columns [lo, hi) of the interior whose taps all fall inside the input.
struct Interior {
  int64_t lo, hi;
};

inline Interior interior_columns(const ConvArgs& a) {
  const int64_t lo = std::min<int64_t>(a.ow, (a.pw + a.sw - 1) / a.sw);
  const int64_t last = a.w - 1 + a.pw - int64_t(a.kw - 1) * a.dw;  // largest first column
  const int64_t hi = last < 0 ? 0 : std::min<int64_t>(a.ow, last / a.sw + 1);
  return {lo, std::max(lo, hi)};
}

// Input channels per block of the kind's order (nchwc.h).
inline int64_t block_step(const ConvArgs& a) {
  return a.kind == kPointwise ? 128 : (a.kind == kNchw ? 1 : a.block);
}

// One tap of a chain with MLAS's NaN: of the tap's weight, its input and the sum so far, the
// first NaN (quieted), else the fused multiply-add.
inline float nan_order_fma(float x, float w, float acc) {
  return w != w ? lowp::quieted(w) : x != x ? lowp::quieted(x)
         : acc != acc ? lowp::quieted(acc) : std::fma(x, w, acc);
}

// nan_order_fma with the input's NaN before the weight's (`input_first`, the taps of
// mlas_sliding_input_first).
inline float nan_order_fma(float x, float w, float acc, bool input_first) {
  return input_first && x != x ? lowp::quieted(x) : nan_order_fma(x, w, acc);
}

// Output (oy, ox) of output channel mo of group g with ONNX Runtime's NaN, for the outputs
// that are NaN (the fast tiles leave the operand order of their fused multiply-adds to the
// compiler): MLAS's NCHWc, pointwise and NCHW kernels chain each block's taps in the kind's
// order by nan_order_fma; a block's sum then adds to the total of the blocks before it (the
// first block's to the Sum when given), its NaN first; the bias last, the total's NaN
// first; relu keeps a NaN. A block's chain that meets a NaN weight or input ends as the last
// such tap's NaN, and then so does the total, whatever came before: the blocks are searched
// from the last tap back, and only the blocks after the one found are chained (a chain
// without NaN operands is NaN from inf * 0 or inf - inf).
// Per block of input channels and input position of one image, the block's last channel
// whose input there is NaN (-1: none) and whether one is infinite, and whether the weights
// hold a NaN: with it blocks_nan_output finds a chain's last NaN operand in one look-up per
// tap and block instead of one per channel, and skips the chains after it that cannot
// come out NaN (no infinite operand, and `bounded`: taps * channels * max |x| * max |w|
// below 2**126, so no sum overflows). Built on the first NaN output of an image.
struct NanIndex {
  const float* xn = nullptr;
  std::vector<int32_t> last;
  std::vector<uint8_t> inf;
  bool bounded = false;
  int weights_nan = -1;  // unknown
  bool weights_inf = false;
  float weights_max = 0.0f;
  // the index of image xn, or nullptr when the weights hold a NaN or the kind chains one
  // channel per block
  const NanIndex* of(const ConvArgs& a, const float* x);
};

const NanIndex* NanIndex::of(const ConvArgs& a, const float* x) {
  const int64_t step = block_step(a);
  if (step == 1) return nullptr;
  if (weights_nan < 0) {
    const int64_t mblocks = (a.m / a.groups + kLanes - 1) / kLanes;
    const int64_t size = a.groups * mblocks * (a.c / a.groups) * a.kh * a.kw * kLanes;
    weights_nan = 0;
    for (int64_t i = 0; i < size; ++i) {
      const float v = std::fabs(a.wp[i]);
      weights_nan |= v != v;
      weights_inf |= v == INFINITY;
      weights_max = v < INFINITY ? std::max(weights_max, v) : weights_max;
    }
  }
  if (weights_nan) return nullptr;
  if (xn != x) {
    const int64_t cg = a.c / a.groups, hw = a.h * a.w, blocks = (cg + step - 1) / step;
    last.assign(size_t(a.groups * blocks * hw), -1);
    inf.assign(last.size(), 0);
    float x_max = 0.0f;
    for (int64_t g = 0; g < a.groups; ++g)
      for (int64_t c = 0; c < cg; ++c) {
        const float* xc = x + (g * cg + c) * hw;
        const int64_t b = (g * blocks + c / step) * hw;
        for (int64_t p = 0; p < hw; ++p) {
          const float v = std::fabs(xc[p]);
          if (v != v) last[size_t(b + p)] = int32_t(c);
          else if (v == INFINITY) inf[size_t(b + p)] = 1;
          else x_max = std::max(x_max, v);
        }
      }
    bounded = !weights_inf && double(a.kh) * a.kw * step * x_max * weights_max < 0x1p126;
    xn = x;
  }
  return this;
}

float blocks_nan_output(const ConvArgs& a, const float* xn, int64_t g, int64_t mo, int64_t oy,
                        int64_t ox, const float* sum, const NanIndex* index) {
  const int64_t cg = a.c / a.groups, mg = a.m / a.groups, hw = a.h * a.w;
  const int64_t taps = int64_t(a.kh) * a.kw, ml = mo - g * mg;
  const int64_t mblocks = (mg + kLanes - 1) / kLanes;
  const float* xg = xn + g * cg * hw;
  // the output channel's lane of channel 0, tap 0 in the packed weights
  const float* wm = a.wp + (g * mblocks + ml / kLanes) * cg * taps * kLanes + ml % kLanes;
  const int64_t iy0 = oy * a.sh - a.ph, ix0 = ox * a.sw - a.pw;
  const TapRange ky = inside_taps(iy0, a.kh, a.dh, a.h), kx = inside_taps(ix0, a.kw, a.dw, a.w);
  const int64_t step = block_step(a);
  auto at = [&](int i, int j) { return (iy0 + int64_t(i) * a.dh) * a.w + ix0 + int64_t(j) * a.dw; };
  auto tap = [&](int i, int j) { return int64_t(i) * a.kw + j; };
  float total = 0.0f;
  int64_t start = 0;  // the first block to chain: after the last one with a NaN operand
  const int64_t blocks = (cg + step - 1) / step;
  for (int64_t c0 = (cg - 1) / step * step; index != nullptr && c0 >= 0 && start == 0;
       c0 -= step) {
    const int32_t* lb = index->last.data() + (g * blocks + c0 / step) * hw;
    for (int i = ky.hi - 1; i >= ky.lo && start == 0; --i)
      for (int j = kx.hi - 1; j >= kx.lo; --j)
        if (const int32_t c = lb[at(i, j)]; c >= 0) {
          total = lowp::quieted(xg[c * hw + at(i, j)]);
          start = c0 + step;
          break;
        }
  }
  for (int64_t c0 = (cg - 1) / step * step; index == nullptr && c0 >= 0 && start == 0;
       c0 -= step) {
    const int64_t c1 = std::min(cg, c0 + step);
    for (int i = ky.hi - 1; i >= ky.lo && start == 0; --i)
      for (int j = kx.hi - 1; j >= kx.lo && start == 0; --j)
        for (int64_t c = c1 - 1; c >= c0; --c) {
          const float w = wm[(c * taps + tap(i, j)) * kLanes], x = xg[c * hw + at(i, j)];
          if (w != w || x != x) {
            total = lowp::quieted(w != w ? w : x);
            start = c0 + step;
            break;
          }
        }
  }
  for (int64_t c0 = start; c0 < cg; c0 += step) {
    const int64_t c1 = std::min(cg, c0 + step);
    if (start > 0 && index != nullptr && index->bounded) {
      // a chain without NaN, infinite or overflowing operands leaves the total's NaN
      const uint8_t* fb = index->inf.data() + (g * blocks + c0 / step) * hw;
      bool inf = false;
      for (int i = ky.lo; i < ky.hi && !inf; ++i)
        for (int j = kx.lo; j < kx.hi; ++j) inf |= fb[at(i, j)] != 0;
      if (!inf) continue;
    }
    float acc = 0.0f;
    for (int i = ky.lo; i < ky.hi; ++i)
      for (int j = kx.lo; j < kx.hi; ++j)
        for (int64_t c = c0; c < c1; ++c)
          acc = nan_order_fma(xg[c * hw + at(i, j)], wm[(c * taps + tap(i, j)) * kLanes], acc);
    total = c0 > 0 ? lowp::first_nan_add(acc, total)
            : sum != nullptr ? lowp::first_nan_add(acc, *sum) : acc;
  }
  if (a.bias != nullptr) total = lowp::first_nan_add(total, a.bias[mo]);
  return a.relu && 0.0f > total ? 0.0f : total;
}

// Output rows [oy0, oy1) of one image, output blocks [mb0, mb0 + MB) of group g: the block
// sums over every block of input channels (each block's weights run over all the rows
// before the next block's are read), then the rows written with the bias.
void blocks_rows(const ConvArgs& a, const float* xn, float* yn, int64_t g, int64_t mb0,
                 int mb, int64_t oy0, int64_t oy1, const Interior& in, float* total,
                 NanIndex& nan_index) {
  const int64_t cg = a.c / a.groups, mg = a.m / a.groups;
  const int64_t mblocks = (mg + kLanes - 1) / kLanes;
  const int64_t taps = int64_t(a.kh) * a.kw;
  const int64_t step = block_step(a);
  Tile t;
  t.x = xn + g * cg * a.h * a.w;
  t.wblock = cg * taps * kLanes;
  t.w = a.wp + (g * mblocks + mb0) * t.wblock;
  const TapRange all_kx{0, a.kw};
  const auto& tiles = kTiles[mb - 1];
  // columns per register tile: kTileAccumulators vectors over mb blocks
  const int64_t columns = std::min(kTileColumns, kTileAccumulators / mb);
  const auto& borders = kBorders[mb - 1];
  const int64_t osize = a.oh * a.ow;
  if (a.sum != nullptr) {  // the Sum's rows are the totals the first block adds to
    for (int b = 0; b < mb; ++b) {
      const int64_t lanes = std::min<int64_t>(kLanes, mg - (mb0 + b) * kLanes);
      for (int64_t j = 0; j < kLanes; ++j) {
        float* dst = total + b * kLanes + j;
        const int64_t count = (oy1 - oy0) * a.ow;
        if (j >= lanes) {
          for (int64_t i = 0; i < count; ++i) dst[i * kTotalStride] = 0.0f;
          continue;
        }
        const int64_t mo = g * mg + (mb0 + b) * kLanes + j;
        const float* sr = a.sum + (yn - a.y) + mo * osize + oy0 * a.ow;
        for (int64_t i = 0; i < count; ++i) dst[i * kTotalStride] = sr[i];
      }
    }
  }
  for (int64_t c0 = 0; c0 < cg; c0 += step) {
    t.c0 = c0, t.c1 = std::min(cg, c0 + step), t.first = c0 == 0 && a.sum == nullptr;
    for (int64_t oy = oy0; oy < oy1; ++oy) {
      float* row_total = total + (oy - oy0) * a.ow * kTotalStride;
      t.iy0 = oy * a.sh - a.ph;
      t.ky = inside_taps(t.iy0, a.kh, a.dh, a.h);
      Border e;
      int count = 0;
      auto border = [&](int64_t ox) {
        e.ix0[count] = ox * a.sw - a.pw;
        e.kx[count] = inside_taps(e.ix0[count], a.kw, a.dw, a.w);
        e.total[count] = row_total + ox * kTotalStride;
        if (++count == kBorderColumns) {
          borders[count - 1](a, t, e);
          count = 0;
        }
      };
      t.kx = all_kx;
      for (int64_t ox = in.lo; ox < in.hi; ox += columns) {
        const int64_t np = std::min<int64_t>(columns, in.hi - ox);
        t.ix0 = ox * a.sw - a.pw;
        t.total = row_total + ox * kTotalStride;
        tiles[np - 1](a, t);
      }
      // the borders after the interior, whose tiles have brought the block's weights
      // into the first-level cache
      for (int64_t ox = 0; ox < in.lo; ++ox) border(ox);
      for (int64_t ox = std::max(in.lo, in.hi); ox < a.ow; ++ox) border(ox);
      if (count > 0) borders[count - 1](a, t, e);
    }
  }
  // the rows' totals of a channel are contiguous in y: 16 columns of the block's 16
  // channels transposed in registers, then one store per channel; each output that is a
  // NaN computed again in MLAS's NaN order
  const bool has_bias = a.bias != nullptr;
  const int64_t count = (oy1 - oy0) * a.ow;
  auto nan_output = [&](int64_t mo, int64_t at) {  // output `at` of the rows, channel mo
    return blocks_nan_output(a, xn, g, mo, oy0 + at / a.ow, at % a.ow,
                             a.sum == nullptr ? nullptr
                                              : a.sum + (yn - a.y) + mo * osize + oy0 * a.ow + at,
                             nan_index.of(a, xn));
  };
  for (int b = 0; b < mb; ++b) {
    const int64_t lanes = std::min<int64_t>(kLanes, mg - (mb0 + b) * kLanes);
    const int64_t mo0 = g * mg + (mb0 + b) * kLanes;
    const float* src = total + b * kLanes;
    float* y0 = yn + mo0 * osize + oy0 * a.ow;
    int64_t i = 0;
    for (; i + kLanes <= count; i += kLanes) {
      Vec16 r[kLanes];
      for (int k = 0; k < kLanes; ++k) r[k] = Vec16::load(src + (i + k) * kTotalStride);
      transpose16(r);
      for (int64_t j = 0; j < lanes; ++j) {
        Vec16 v = has_bias ? add(r[j], Vec16::broadcast(a.bias[mo0 + j])) : r[j];
        v = a.relu ? relu(v) : v;
        v.store(y0 + j * osize + i);
        for (unsigned m = nan_lanes(v); m != 0; m &= m - 1) {
          const int64_t at = i + __builtin_ctz(m);
          y0[j * osize + at] = nan_output(mo0 + j, at);
        }
      }
    }
    for (int64_t j = 0; j < lanes; ++j) {
      const float bv = has_bias ? a.bias[mo0 + j] : 0.0f;
      for (int64_t c = i; c < count; ++c) {
        const float v = src[c * kTotalStride + j];
        float out = has_bias ? v + bv : v;
        out = a.relu && 0.0f > out ? 0.0f : out;
        y0[j * osize + c] = out == out ? out : nan_output(mo0 + j, c);
      }
    }
  }
}

// Depthwise convolutions run 16 channels in the lanes: the input rows of channels
// [g0, g0 + 16) interleaved (16 x 16 transposes), each output column one chain per lane over
// its taps inside the input, from +0 in kernel row then column order (the interior's
// columns kDepthwiseColumns side by side, so that their latencies overlap; a border column
// over its own range of kernel columns), then the Sum, the bias and relu as the rows go back
// to the channels' planes (transposed again).
constexpr int kDepthwiseColumns = 8;

// P chains side by side over the same taps (kernel rows ky, columns kx): chain p's first tap
// at xt + base[p] (interleaved floats), its 16 lanes' sums to out[p].
template <int P>
void depthwise_chains(const ConvArgs& a, const float* xt, const float* wl,
                      const int64_t* base, TapRange ky, TapRange kx, float* const* out) {
  Vec16 acc[P];
  for (int p = 0; p < P; ++p) acc[p] = Vec16::zero();
  for (int i = ky.lo; i < ky.hi; ++i) {
    for (int j = kx.lo; j < kx.hi; ++j) {
      const Vec16 wv = Vec16::load(wl + (int64_t(i) * a.kw + j) * kLanes);
      const float* xp = xt + (int64_t(i) * a.dh * a.w + int64_t(j) * a.dw) * kLanes;
      for (int p = 0; p < P; ++p) acc[p] = fma(Vec16::load(xp + base[p]), wv, acc[p]);
    }
  }
  for (int p = 0; p < P; ++p) acc[p].store(out[p]);
}

using DepthwiseFn = void (*)(const ConvArgs&, const float*, const float*, const int64_t*,
                             TapRange, TapRange, float* const*);
template <std::size_t... I>
constexpr std::array<DepthwiseFn, sizeof...(I)> depthwise_table(std::index_sequence<I...>) {
  return {{&depthwise_chains<int(I) + 1>...}};
}
constexpr auto kDepthwiseTiles = depthwise_table(std::make_index_sequence<kDepthwiseColumns>{});

// Up to kDepthwiseColumns outputs that share their taps, run as one tile when full.
struct DepthwiseBatch {
  const ConvArgs& a;
  const float* xt;
  const float* wl;
  TapRange ky, kx;
  int64_t base[kDepthwiseColumns];
  float* out[kDepthwiseColumns];
  int count = 0;
  void add(int64_t b, float* o) {
    base[count] = b, out[count] = o;
    if (++count == kDepthwiseColumns) flush();
  }
  void flush() {
    if (count > 0) kDepthwiseTiles[count - 1](a, xt, wl, base, ky, kx, out);
    count = 0;
  }
};

// The tile of MLAS's sliding depthwise kernel (sconv_depthwise_avx512f.cpp: AVX-512's
// 16-channel blocks, stride and dilation 1 along the row, kernel 3, 5 or 7 wide) that
// computes output column ox: a row's
// outputs in tiles of 12, 10 or 8 from column 0, the last one the remainder; masked when
// one of its taps falls in the padding. count 0: the row runs on the assembly kernel.
struct SlidingTile {
  int count = 0, o = 0;  // the tile's outputs, ox's place in it
  bool masked = false;
};

inline SlidingTile mlas_sliding_tile(const ConvArgs& a, int64_t ox) {
  SlidingTile t;
  if (a.block != 16 || a.sw != 1 || a.dw != 1 || (a.kw != 3 && a.kw != 5 && a.kw != 7))
    return t;
  const int64_t full = a.kw == 3 ? 12 : a.kw == 5 ? 10 : 8, start = ox - ox % full;
  const int64_t column = start - a.pw;
  t.count = int(std::min<int64_t>(full, a.ow - start));
  t.o = int(ox - start);
  t.masked = column < 0 || column + t.count + a.kw - 1 > a.w;
  return t;
}

// Whether kernel column kx of the tile's output o hands on the input's NaN before the
// weight's: the operand order the compiler gave that fused multiply-add in ONNX Runtime
// 1.32's build (probed: every kernel row alike, docs/operators.md (O353)). Mirrored by
// lowp.runtime.nchwc_conv._sliding_input_first.
inline bool mlas_sliding_input_first(int width, const SlidingTile& t, int kx) {
  if (t.masked || t.count == 1) return t.masked && t.count == 1;
  if (width == 3) return t.count <= 8 && t.o == 0 && kx > 0;
  if (width == 5 && t.count == 10) return t.o == 7 && kx == 4;
  if (width == 7 && t.count == 8) return (t.o == 0 && (kx == 2 || kx >= 4)) || (t.o == 4 && kx == 6);
  return t.o == 0 && kx > 0;
}

// Output (oy, ox) of depthwise channel g with ONNX Runtime's NaN, for the outputs that are
// NaN (the fast chains leave the operand order of their fused multiply-adds and additions to
// the compiler): of a tap's weight, its input and the sum so far, MLAS's depthwise kernel
// hands on the first NaN (quieted); then the Sum and the bias, the running value's NaN first.
float depthwise_nan_output(const ConvArgs& a, const float* xn, int64_t g, int64_t oy,
                           int64_t ox, const float* sum) {
  const float* xc = xn + g * a.h * a.w;
  const float* wc = a.wp + g * int64_t(a.kh) * a.kw * kLanes;  // lane 0 of each tap
  const int64_t iy0 = oy * a.sh - a.ph, ix0 = ox * a.sw - a.pw;
  const TapRange ky = inside_taps(iy0, a.kh, a.dh, a.h), kx = inside_taps(ix0, a.kw, a.dw, a.w);
  const SlidingTile tile = mlas_sliding_tile(a, ox);
  float acc = 0.0f;
  for (int i = ky.lo; i < ky.hi; ++i)
    for (int j = kx.lo; j < kx.hi; ++j)
      acc = nan_order_fma(xc[(iy0 + int64_t(i) * a.dh) * a.w + ix0 + int64_t(j) * a.dw],
                          wc[(int64_t(i) * a.kw + j) * kLanes], acc,
                          tile.count > 0 && mlas_sliding_input_first(a.kw, tile, j));
  if (sum != nullptr) acc = lowp::first_nan_add(acc, *sum);
  if (a.bias != nullptr) acc = lowp::first_nan_add(acc, a.bias[g]);
  return a.relu && 0.0f > acc ? 0.0f : acc;
}

// Output rows [oy0, oy1) of channels [g0, g0 + 16) of one image (xn, yn); xt, wl and yt are
// the thread's buffers of the interleaved input rows, weights and sums.
void depthwise_lanes(const ConvArgs& a, const float* xn, float* yn, int64_t g0, int64_t oy0,
                     int64_t oy1, const Interior& in, std::vector<float>& xt,
                     std::vector<float>& wl, std::vector<float>& yt) {
  const int64_t lanes = std::min<int64_t>(kLanes, a.groups - g0);
  const int64_t hw = a.h * a.w, osize = a.oh * a.ow, taps = int64_t(a.kh) * a.kw;
  // the input rows the output rows read
  const int64_t iy_lo = std::max<int64_t>(0, oy0 * a.sh - a.ph);
  const int64_t iy_hi = std::min<int64_t>(
      a.h, (oy1 - 1) * a.sh - a.ph + int64_t(a.kh - 1) * a.dh + 1);
  const int64_t count_in = std::max<int64_t>(0, iy_hi - iy_lo) * a.w;
  xt.resize(size_t(count_in * kLanes));
  const float* x0 = xn + g0 * hw + iy_lo * a.w;
  int64_t i = 0;
  for (; i + kLanes <= count_in; i += kLanes) {
    Vec16 r[kLanes];
    for (int j = 0; j < kLanes; ++j) r[j] = j < lanes ? Vec16::load(x0 + j * hw + i) : Vec16::zero();
    transpose16(r);
    for (int k = 0; k < kLanes; ++k) r[k].store(xt.data() + (i + k) * kLanes);
  }
  for (; i < count_in; ++i)
    for (int j = 0; j < kLanes; ++j) xt[size_t(i * kLanes + j)] = j < lanes ? x0[j * hw + i] : 0.0f;
  wl.assign(size_t(taps * kLanes), 0.0f);
  for (int64_t j = 0; j < lanes; ++j)
    for (int64_t t = 0; t < taps; ++t) wl[size_t(t * kLanes + j)] = a.wp[((g0 + j) * taps + t) * kLanes];
  const int64_t count = (oy1 - oy0) * a.ow;
  yt.resize(size_t(count * kLanes));
  // the outputs grouped by their taps: a row's interior columns (its kernel rows, every
  // kernel column), then each border column of the interior rows (every kernel row, the
  // column's kernel columns), then the border rows' border columns one at a time
  const TapRange all_kx{0, a.kw};
  auto at = [&](int64_t oy, int64_t ox) {  // the first tap's interleaved offset, the sums'
    return std::make_pair(((oy * a.sh - a.ph - iy_lo) * a.w + ox * a.sw - a.pw) * kLanes,
                          yt.data() + ((oy - oy0) * a.ow + ox) * kLanes);
  };
  int64_t ry_lo = oy1, ry_hi = oy0;  // the interior rows: every kernel row inside
  for (int64_t oy = oy0; oy < oy1; ++oy) {
    const TapRange ky = inside_taps(oy * a.sh - a.ph, a.kh, a.dh, a.h);
    const bool whole = ky.lo == 0 && ky.hi == a.kh;
    if (whole) ry_lo = std::min(ry_lo, oy), ry_hi = oy + 1;
    DepthwiseBatch row{a, xt.data(), wl.data(), ky, all_kx};
    for (int64_t ox = in.lo; ox < in.hi; ++ox) {
      const auto [b, o] = at(oy, ox);
      row.add(b, o);
    }
    row.flush();
    if (whole) continue;
    for (int64_t ox = 0; ox < a.ow; ++ox) {
      if (ox >= in.lo && ox < in.hi) continue;
      DepthwiseBatch one{a, xt.data(), wl.data(), ky,
                         inside_taps(ox * a.sw - a.pw, a.kw, a.dw, a.w)};
      const auto [b, o] = at(oy, ox);
      one.add(b, o);
      one.flush();
    }
  }
  for (int64_t ox = 0; ox < a.ow && ry_lo < ry_hi; ++ox) {
    if (ox >= in.lo && ox < in.hi) continue;
    DepthwiseBatch column{a, xt.data(), wl.data(), TapRange{0, a.kh},
                          inside_taps(ox * a.sw - a.pw, a.kw, a.dw, a.w)};
    for (int64_t oy = ry_lo; oy < ry_hi; ++oy) {
      const auto [b, o] = at(oy, ox);
      column.add(b, o);
    }
    column.flush();
  }
  // back to the planes: 16 columns of the 16 channels transposed in registers, then the
  // Sum (the chain its first operand), the bias and relu
  const bool has_bias = a.bias != nullptr;
  const int64_t offset = (yn - a.y) + g0 * osize + oy0 * a.ow;  // channel g0's first output
  auto nan_output = [&](int64_t j, int64_t at) {  // output `at` of the pass, channel g0 + j
    return depthwise_nan_output(a, xn, g0 + j, oy0 + at / a.ow, at % a.ow,
                                a.sum == nullptr ? nullptr : a.sum + offset + j * osize + at);
  };
  i = 0;
  for (; i + kLanes <= count; i += kLanes) {
    Vec16 r[kLanes];
    for (int k = 0; k < kLanes; ++k) r[k] = Vec16::load(yt.data() + (i + k) * kLanes);
    transpose16(r);
    for (int64_t j = 0; j < lanes; ++j) {
      Vec16 v = r[j];
      if (a.sum != nullptr) v = add(v, Vec16::load(a.sum + offset + j * osize + i));
      if (has_bias) v = add(v, Vec16::broadcast(a.bias[g0 + j]));
      v = a.relu ? relu(v) : v;
      v.store(a.y + offset + j * osize + i);
      for (unsigned m = nan_lanes(v); m != 0; m &= m - 1) {
        const int64_t at = i + __builtin_ctz(m);
        a.y[offset + j * osize + at] = nan_output(j, at);
      }
    }
  }
  for (; i < count; ++i) {
    for (int64_t j = 0; j < lanes; ++j) {
      float v = yt[size_t(i * kLanes + j)];
      if (a.sum != nullptr) v = v + a.sum[offset + j * osize + i];
      if (has_bias) v = v + a.bias[g0 + j];
      v = a.relu && 0.0f > v ? 0.0f : v;
      a.y[offset + j * osize + i] = v == v ? v : nan_output(j, i);
    }
  }
}

}  // namespace

// Output columns whose sums a block of weights runs over before the next block is read
// (whole rows: 2 of 56 columns, 8 of 14): the weights stay in the first-level cache.
constexpr int64_t kColumnsPerPass = 112;

// Depthwise: output columns a pass interleaves the input for (each input row is interleaved
// once for every pass that reads it: some (kh - 1) / pass rows of input more).
constexpr int64_t kDepthwiseColumnsPerPass = 1024;

void LOWP_FCONV_ROWS(const ConvArgs& a, int64_t row0, int64_t row1) {
  const int64_t mblocks = (a.m / a.groups + kLanes - 1) / kLanes;
  const Interior in = interior_columns(a);
  const int64_t pass_rows = std::max<int64_t>(
      1, (a.kind == kDepthwise ? kDepthwiseColumnsPerPass : kColumnsPerPass) / a.ow);
  std::vector<float> xt, wl, yt;  // depthwise_lanes' buffers
  NanIndex nan_index;             // blocks_rows' NaN outputs'
  // the totals on a 64-byte boundary: each tile's vector loads and stores stay in one line
  std::vector<float> storage(a.kind == kDepthwise
                                 ? 0
                                 : size_t(pass_rows * a.ow) * kTotalStride + kLanes);
  float* const total = storage.data() + (-reinterpret_cast<std::uintptr_t>(storage.data()) %
                                         64) / sizeof(float);
  for (int64_t row = row0; row < row1;) {
    const int64_t ni = row / a.oh, oy0 = row % a.oh;
    const int64_t oy1 = std::min({a.oh, oy0 + pass_rows, oy0 + row1 - row});
    const float* xn = a.x + ni * a.c * a.h * a.w;
    float* yn = a.y + ni * a.m * a.oh * a.ow;
    for (int64_t g = 0; g < a.groups && a.kind == kDepthwise; g += kLanes)
      depthwise_lanes(a, xn, yn, g, oy0, oy1, in, xt, wl, yt);
    for (int64_t g = 0; g < a.groups && a.kind != kDepthwise; ++g) {
      for (int64_t mb = 0; mb < mblocks; mb += kTileBlocks) {
        const int n = int(std::min<int64_t>(kTileBlocks, mblocks - mb));
        blocks_rows(a, xn, yn, g, mb, n, oy0, oy1, in, total, nan_index);
      }
    }
    row += oy1 - oy0;
  }
}

}  // namespace lowp_fconv
