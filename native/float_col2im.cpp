// ConvTranspose's col2im (float_col2im.h): planes on the thread pool, each computed the same
// way on any thread; in the direct form each entry is the product of a weight and an input
// value, rounded once, made where it is added. A plane is added with the plain operations
// and, where a NaN came out, again in ONNX Runtime's operand order (docs/operators.md (O270)).
#include "float_col2im.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "float_nan.h"
#include "threadpool.h"

namespace lowp {
namespace {

// Kernel = stride, no dilation, no padding, the output exactly the full one (the 2x2 stride-2
// upsampling of segmentation heads): each output gets one entry, +0 + entry (+ bias), the
// value of the general loop below, written in one pass instead of three.
bool tiles_exactly(const Col2ImArgs& a) {
  return a.kh == a.sh && a.kw == a.sw && (a.kh == 1 || a.dh == 1) && (a.kw == 1 || a.dw == 1) &&
         a.begin_h == 0 && a.begin_w == 0 && a.oh == a.ih * a.sh && a.ow == a.iw * a.sw;
}

// Where plane p's entries of tap t are read: tap t's columns of cols, or (direct form) the
// input plane, each value multiplied by the tap's weight.
struct PlaneSource {
  const float* base;
  const float* taps;  // the plane's kh * kw weights (direct form)
  int64_t tap_stride, row, col;  // elements between taps, input rows and input columns
};

template <bool kDirect>
PlaneSource plane_source(const Col2ImArgs& a, int64_t p) {
  const int64_t tap = a.ih * a.iw;
  if constexpr (kDirect) {
    const int64_t groups = a.channels / a.per_input, in = p / a.per_input;
    return {a.x + (in / groups) * a.x_batch + (in % groups) * a.x_channel,
            a.w + (p % a.channels) * a.kh * a.kw, 0, a.x_row, a.x_col};
  }
  return {a.cols + (p - a.first_plane) * a.kh * a.kw * tap, nullptr, tap, a.iw, 1};
}

// the column entry: src[ix] itself, or the rounded product src[ix * col] * scale (the
// input's NaN before the weight's, as ONNX Runtime's K = 1 GEMM)
template <bool kDirect, class Arith = PlainArithmetic>
inline float entry(const float* src, int64_t ix, float scale, int64_t col) {
  if constexpr (kDirect) {
    return Arith::mul(src[ix * col], scale);
  } else {
    (void)scale, (void)col;
    return src[ix];
  }
}

template <bool kDirect>
void col2im_plane_tiled(const Col2ImArgs& a, int64_t p) {
  float* y = a.y + p * a.oh * a.ow;
  const PlaneSource ps = plane_source<kDirect>(a, p);
  const float b = a.bias ? a.bias[p % a.channels] : 0.0f;
  for (int64_t oy = 0; oy < a.oh; ++oy) {
    const int64_t iy = oy / a.sh, ky = oy % a.sh;
    float* row = y + oy * a.ow;
    for (int64_t kx = 0; kx < a.kw; ++kx) {
      const int64_t t = ky * a.kw + kx;
      const float* src = ps.base + t * ps.tap_stride + iy * ps.row;
      const float scale = kDirect ? ps.taps[t] : 1.0f;
      if (a.bias) {
        for (int64_t ix = 0; ix < a.iw; ++ix)
          row[ix * a.sw + kx] = (0.0f + entry<kDirect>(src, ix, scale, ps.col)) + b;
      } else {
        for (int64_t ix = 0; ix < a.iw; ++ix)
          row[ix * a.sw + kx] = 0.0f + entry<kDirect>(src, ix, scale, ps.col);
      }
    }
  }
}

// 1 where v is a NaN: an integer compare of its magnitude's bits, which the compiler keeps in
// vector registers (a float compare loop it does not vectorize as well)
inline int32_t is_nan(float v) {
  int32_t bits;
  std::memcpy(&bits, &v, 4);
  return (bits & 0x7FFFFFFF) > 0x7F800000;
}

inline bool has_nan(const float* v, int64_t n) {
  int32_t any = 0;
  for (int64_t i = 0; i < n; ++i) any |= is_nan(v[i]);
  return any != 0;
}

// Adds one tap's entries of input columns [ix0, ix1) to `row` (output column x0 + ix * sw).
// Plain: the compiler's order. FirstNan: ONNX Runtime's 2-D Col2im, whose stride-1 run is
// compiled to four-value vectors adding image first, then a two-value vector adding the
// column entry first, then one value image first; strided runs and `scalar_runs` (its N-D
// col2im) add every entry image first.
template <bool kDirect, class Arith>
inline void add_run(const Col2ImArgs& a, float* row, const float* src, float scale, int64_t col,
                    int64_t x0, int64_t ix0, int64_t ix1) {
  if (a.sw == 1) {
    int64_t ix = ix0;
    if constexpr (std::is_same_v<Arith, FirstNanArithmetic>) {
      if (!a.scalar_runs) {
        const int64_t quads = ix0 + (ix1 - ix0) / 4 * 4;
        for (; ix < quads; ++ix)
          row[x0 + ix] = Arith::add(row[x0 + ix], entry<kDirect, Arith>(src, ix, scale, col));
        const int64_t pair = ix + (ix1 - ix) / 2 * 2;
        for (; ix < pair; ++ix)
          row[x0 + ix] = Arith::add(entry<kDirect, Arith>(src, ix, scale, col), row[x0 + ix]);
      }
    }
    for (; ix < ix1; ++ix)
      row[x0 + ix] = Arith::add(row[x0 + ix], entry<kDirect, Arith>(src, ix, scale, col));
  } else {
    for (int64_t ix = ix0; ix < ix1; ++ix)
      row[x0 + ix * a.sw] =
          Arith::add(row[x0 + ix * a.sw], entry<kDirect, Arith>(src, ix, scale, col));
  }
}

// Returns whether a NaN came out.
template <bool kDirect, class Arith>
bool col2im_plane_taps(const Col2ImArgs& a, int64_t p) {
  float* y = a.y + p * a.oh * a.ow;
  std::fill_n(y, a.oh * a.ow, 0.0f);
  const PlaneSource ps = plane_source<kDirect>(a, p);
  for (int64_t ky = 0; ky < a.kh; ++ky)
    for (int64_t kx = 0; kx < a.kw; ++kx) {
      const int64_t t = ky * a.kw + kx;
      const float* col = ps.base + t * ps.tap_stride;
      const float scale = kDirect ? ps.taps[t] : 1.0f;
      // the input columns whose output column lies inside [0, ow)
      const int64_t x0 = kx * a.dw - a.begin_w;
      const int64_t ix0 = x0 >= 0 ? 0 : (-x0 + a.sw - 1) / a.sw;
      const int64_t ix1 = a.ow - 1 - x0 < 0 ? 0 : std::min(a.iw, (a.ow - 1 - x0) / a.sw + 1);
      if (ix0 >= ix1) continue;
      for (int64_t iy = 0; iy < a.ih; ++iy) {
        const int64_t oy = iy * a.sh + ky * a.dh - a.begin_h;
        if (oy < 0 || oy >= a.oh) continue;
        add_run<kDirect, Arith>(a, y + oy * a.ow, col + iy * ps.row, scale, ps.col, x0, ix0, ix1);
      }
    }
  if (!a.bias) return std::is_same_v<Arith, PlainArithmetic> && has_nan(y, a.oh * a.ow);
  // Eigen's rowwise += of the bias: the image's NaN before the bias's
  const float b = a.bias[p % a.channels];
  int32_t any = 0;
  for (int64_t i = 0; i < a.oh * a.ow; ++i) {
    y[i] = Arith::add(y[i], b);
    any |= is_nan(y[i]);
  }
  return any != 0;
}

// Whether the plane's entries meet a NaN bias or NaN weights (tiled planes give each output
// one entry, so NaNs meet only there)
template <bool kDirect>
bool tiled_nans_meet(const Col2ImArgs& a, int64_t p) {
  if (a.bias && is_nan(a.bias[p % a.channels])) return true;
  if constexpr (kDirect) {
    const float* taps = a.w + (p % a.channels) * a.kh * a.kw;
    for (int64_t t = 0; t < a.kh * a.kw; ++t)
      if (is_nan(taps[t])) return true;
  }
  return false;
}

template <bool kDirect>
void col2im_plane(const Col2ImArgs& a, int64_t p) {
  bool again;
  if (tiles_exactly(a)) {
    col2im_plane_tiled<kDirect>(a, p);
    again = tiled_nans_meet<kDirect>(a, p);
  } else {
    again = col2im_plane_taps<kDirect, PlainArithmetic>(a, p);
  }
  if (again) col2im_plane_taps<kDirect, FirstNanArithmetic>(a, p);
}

}  // namespace

void col2im_planes(const Col2ImArgs& a, int64_t p0, int64_t count) {
  for (int64_t p = p0; p < p0 + count; ++p) col2im_plane<false>(a, p);
}

void run_float_col2im(const Col2ImArgs& a, int threads) {
  if (a.planes <= 0 || a.oh <= 0 || a.ow <= 0) return;
  const int64_t per = a.kh * a.kw * a.ih * a.iw + a.oh * a.ow;
  run_elementwise(a.planes, std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, per)),
                  threads, [&](int64_t p0, int64_t len) {
                    for (int64_t p = p0; p < p0 + len; ++p) {
                      if (a.x)
                        col2im_plane<true>(a, p);
                      else
                        col2im_plane<false>(a, p);
                    }
                  });
}

}  // namespace lowp
