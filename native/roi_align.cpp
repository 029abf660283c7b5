// Driver and loops of RoiAlign (roi_align.h): plain float operations in the reference's order
// (one portable translation unit serves every path). Per roi the samples' corner offsets
// and weights once, then every channel's bins from them. A bin whose average comes out NaN is
// summed again with x86's order of NaNs (float_nan.h: of two the first operand's, as ONNX
// Runtime's compiled sums and the reference's first_nan_add give it), since the compiler
// may swap the operands of a plain +.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "float_nan.h"
#include "roi_align.h"
#include "threadpool.h"

namespace lowp {

namespace {

// One roi's geometry: the extents' sample grid and bin sizes (O244)
struct RoiGeometry {
  float start_h, start_w, bin_h, bin_w;
  int64_t grid_h, grid_w;
};

RoiGeometry geometry(const RoiAlignArgs& a, const float* roi) {
  const float offset = a.half_pixel ? 0.5f : 0.0f;
  const float start_w = roi[0] * a.spatial_scale - offset;
  const float start_h = roi[1] * a.spatial_scale - offset;
  const float end_w = roi[2] * a.spatial_scale - offset;
  const float end_h = roi[3] * a.spatial_scale - offset;
  float roi_w = end_w - start_w, roi_h = end_h - start_h;
  if (!a.half_pixel) {
    roi_w = 1.0f > roi_w ? 1.0f : roi_w;
    roi_h = 1.0f > roi_h ? 1.0f : roi_h;
  }
  RoiGeometry g;
  g.start_h = start_h, g.start_w = start_w;
  g.bin_h = roi_h / float(a.pooled_h), g.bin_w = roi_w / float(a.pooled_w);
  g.grid_h = a.sampling_ratio > 0 ? a.sampling_ratio
                                  : int64_t(std::ceil(roi_h / float(a.pooled_h)));
  g.grid_w = a.sampling_ratio > 0 ? a.sampling_ratio
                                  : int64_t(std::ceil(roi_w / float(a.pooled_w)));
  return g;
}

// One sample position along an axis (PreCalcForBilinearInterpolate)
struct AxisSample {
  int64_t low, high;
  float low_weight, high_weight;   // 1 - l (the low index's), l (the high index's)
  bool outside;
};

void axis_samples(float start, float bin, int64_t pooled, int64_t grid, int64_t size,
                  AxisSample* s) {
  for (int64_t p = 0; p < pooled; ++p)
    for (int64_t g = 0; g < grid; ++g) {
      const float frac = float(g) + 0.5f;
      float pos = (start + float(p) * bin) + frac * bin / float(grid);
      AxisSample& q = s[p * grid + g];
      q.outside = double(pos) < -1.0 || double(pos) > double(size);
      if (pos <= 0.0f) pos = 0.0f;
      q.low = q.outside ? 0 : int64_t(pos);
      if (q.low >= size - 1) {
        q.low = q.high = size - 1;
        pos = float(q.low);
      } else {
        q.high = q.low + 1;
      }
      const float l = pos - float(q.low);
      q.low_weight = 1.0f - l, q.high_weight = l;
    }
}

// One sample of a bin, the same for every channel (ONNX Runtime's pre_calc): the four
// corners' offsets in a plane and their weights, both 0 where the sample is outside
struct Sample {
  int64_t at[4];
  float wt[4];
};

// The samples of every bin of a roi, bin by bin (row-major), each bin's row-major
void plan(const AxisSample* ys, const AxisSample* xs, int64_t pooled_h, int64_t pooled_w,
          int64_t gh, int64_t gw, int64_t w, Sample* s) {
  for (int64_t py = 0; py < pooled_h; ++py)
    for (int64_t px = 0; px < pooled_w; ++px)
      for (int64_t iy = 0; iy < gh; ++iy)
        for (int64_t ix = 0; ix < gw; ++ix) {
          const AxisSample& y = ys[py * gh + iy];
          const AxisSample& x = xs[px * gw + ix];
          Sample& q = *s++;
          const bool out = y.outside || x.outside;
          q.wt[0] = out ? 0.0f : y.low_weight * x.low_weight;
          q.wt[1] = out ? 0.0f : y.low_weight * x.high_weight;
          q.wt[2] = out ? 0.0f : y.high_weight * x.low_weight;
          q.wt[3] = out ? 0.0f : y.high_weight * x.high_weight;
          q.at[0] = out ? 0 : y.low * w + x.low;
          q.at[1] = out ? 0 : y.low * w + x.high;
          q.at[2] = out ? 0 : y.high * w + x.low;
          q.at[3] = out ? 0 : y.high * w + x.high;
        }
}

// avg: +0 + the samples' ((t1 + t2) + t3) + t4 in order, with arithmetic A
template <typename A>
float bin_sum(const Sample* s, int64_t count, const float* plane) {
  float total = 0.0f;
  for (int64_t k = 0; k < count; ++k) {
    const Sample& q = s[k];
    const float t1 = A::mul(q.wt[0], plane[q.at[0]]), t2 = A::mul(q.wt[1], plane[q.at[1]]);
    const float t3 = A::mul(q.wt[2], plane[q.at[2]]), t4 = A::mul(q.wt[3], plane[q.at[3]]);
    total = A::add(total, A::add(A::add(A::add(t1, t2), t3), t4));
  }
  return total;
}

// max: std::max over the samples of std::max(std::max(std::max(t1, t2), t3), t4)
float bin_max(const Sample* s, int64_t count, const float* plane) {
  float best = 0.0f;
  for (int64_t k = 0; k < count; ++k) {
    const Sample& q = s[k];
    const float t1 = q.wt[0] * plane[q.at[0]], t2 = q.wt[1] * plane[q.at[1]];
    const float t3 = q.wt[2] * plane[q.at[2]], t4 = q.wt[3] * plane[q.at[3]];
    float v = t1 < t2 ? t2 : t1;
    v = v < t3 ? t3 : v;
    v = v < t4 ? t4 : v;
    best = k == 0 || best < v ? v : best;
  }
  return best;
}

// One roi into y (c, pooled_h, pooled_w)
void roi(const RoiAlignArgs& a, int64_t r, std::vector<AxisSample>& ys,
         std::vector<AxisSample>& xs, std::vector<Sample>& samples) {
  const RoiGeometry g = geometry(a, a.rois + 4 * r);
  const int64_t bins = a.pooled_h * a.pooled_w;
  float* y = a.y + r * a.c * bins;
  if (g.grid_h <= 0 || g.grid_w <= 0) {      // no sample: +0 (the average of none)
    std::fill(y, y + a.c * bins, 0.0f);
    return;
  }
  const int64_t count = g.grid_h * g.grid_w;
  ys.resize(size_t(a.pooled_h * g.grid_h));
  xs.resize(size_t(a.pooled_w * g.grid_w));
  samples.resize(size_t(bins * count));
  axis_samples(g.start_h, g.bin_h, a.pooled_h, g.grid_h, a.h, ys.data());
  axis_samples(g.start_w, g.bin_w, a.pooled_w, g.grid_w, a.w, xs.data());
  plan(ys.data(), xs.data(), a.pooled_h, a.pooled_w, g.grid_h, g.grid_w, a.w,
       samples.data());
  const float divisor = float(count);
  const float* image = a.x + a.batch[r] * a.c * a.h * a.w;
  for (int64_t c = 0; c < a.c; ++c) {
    const float* plane = image + c * a.h * a.w;
    float* yc = y + c * bins;
    for (int64_t b = 0; b < bins; ++b) {
      const Sample* s = samples.data() + b * count;
      if (a.max_mode) {
        yc[b] = bin_max(s, count, plane);
      } else {
        float v = bin_sum<PlainArithmetic>(s, count, plane);
        if (v != v) v = bin_sum<FirstNanArithmetic>(s, count, plane);
        yc[b] = v / divisor;
      }
    }
  }
}

}  // namespace

bool run_roi_align(const RoiAlignArgs& a, int threads) {
  for (int64_t r = 0; r < a.num_rois; ++r) {
    const RoiGeometry g = geometry(a, a.rois + 4 * r);
    // a negative grid on one axis only: ONNX Runtime's integer overflow error
    if ((g.grid_h <= 0 || g.grid_w <= 0) && g.grid_h * g.grid_w * a.pooled_h * a.pooled_w < 0)
      return false;
  }
  if (threads <= 0) threads = ThreadPool::max_threads();
  threads = int(std::max<int64_t>(1, std::min<int64_t>(threads, a.num_rois)));
  auto rois = [&](int64_t r0, int64_t r1) {
    std::vector<AxisSample> ys, xs;
    std::vector<Sample> samples;
    for (int64_t r = r0; r < r1; ++r) roi(a, r, ys, xs, samples);
  };
  if (threads <= 1) {
    rois(0, a.num_rois);
  } else {
    ThreadPool::instance().run(threads, [&](int t) {
      rois(a.num_rois * t / threads, a.num_rois * (t + 1) / threads);
    });
  }
  return true;
}

}  // namespace lowp
