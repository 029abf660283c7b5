// Driver and loops of GridSample (grid_sample.h): plain float operations in the reference's
// order (one portable translation unit serves every path). The points go in blocks: a
// block's plan (offsets and weights, 12 KB) is made once and stays in L1 while every channel
// reads it; blocks split over the threads, each output computed by exactly one of them the
// same way, so results never depend on the thread count.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>

#include "float_nan.h"
#include "grid_sample.h"
#include "threadpool.h"

namespace lowp {

namespace {

// One output point: four input offsets (-1: outside, reads +0) and four weights. Linear with
// zeros padding and no align_corners (ONNX Runtime's sample plan): w11, w12, w21, w22;
// other linear: dy2, dy1, dx2, dx1; nearest: offset 0 only.
struct Sample {
  int64_t at[4];
  float wt[4];
};

// grid_sample.cc GsDenormalize
inline float denormalize(float v, int64_t length, bool align_corners) {
  if (align_corners) return (v + 1.0f) / 2.0f * float(length - 1);
  return ((v + 1.0f) * float(length) - 1.0f) / 2.0f;
}

// the offset of (iy, ix), or -1 outside with zeros padding; border padding clamps
inline int64_t offset(int64_t iy, int64_t ix, int64_t h, int64_t w, bool border) {
  if (border) {
    iy = std::clamp<int64_t>(iy, 0, h - 1);
    ix = std::clamp<int64_t>(ix, 0, w - 1);
  } else if (iy < 0 || iy >= h || ix < 0 || ix >= w) {
    return -1;
  }
  return iy * w + ix;
}

constexpr int64_t kBlock = 256;

// The plan of `count` points of the grid; false on a position the reference refuses.
bool plan(const GridSampleArgs& a, const float* grid, int64_t count, Sample* s) {
  for (int64_t p = 0; p < count; ++p) {
    const float px = denormalize(grid[2 * p], a.w, a.align_corners);
    const float py = denormalize(grid[2 * p + 1], a.h, a.align_corners);
    if (!(std::fabs(px) < 0x1p62f) || !(std::fabs(py) < 0x1p62f)) return false;
    Sample& q = s[p];
    if (a.nearest) {
      // nearbyint in the default rounding mode: half to even (np.rint)
      q.at[0] = offset(int64_t(std::nearbyint(py)), int64_t(std::nearbyint(px)), a.h, a.w,
                       a.border);
      continue;
    }
    const int64_t y0 = int64_t(std::floor(py)), x0 = int64_t(std::floor(px));
    const float dy2 = float(y0 + 1) - py, dy1 = py - float(y0);
    const float dx2 = float(x0 + 1) - px, dx1 = px - float(x0);
    q.at[0] = offset(y0, x0, a.h, a.w, a.border);
    q.at[1] = offset(y0, x0 + 1, a.h, a.w, a.border);
    q.at[2] = offset(y0 + 1, x0, a.h, a.w, a.border);
    q.at[3] = offset(y0 + 1, x0 + 1, a.h, a.w, a.border);
    if (!a.border && !a.align_corners) {
      q.wt[0] = dy2 * dx2, q.wt[1] = dy2 * dx1, q.wt[2] = dy1 * dx2, q.wt[3] = dy1 * dx1;
    } else {
      q.wt[0] = dy2, q.wt[1] = dy1, q.wt[2] = dx2, q.wt[3] = dx1;
    }
  }
  return true;
}

inline float at(const float* image, int64_t offset) {
  return offset < 0 ? 0.0f : image[offset];
}

// The two linear forms of one planned point, with arithmetic A (PlainArithmetic, or
// FirstNanArithmetic: x86's NaN where two meet, the first operand's, as numpy's and ONNX
// Runtime's compiled sums hand it on). Plan form: (w11 * p11 + w12 * p12 + w21 * p21) +
// w22 * p22; nested form: dy2 * (dx2 * p11 + dx1 * p12) + dy1 * (dx2 * p21 + dx1 * p22).
template <typename A>
inline float plan_form(const Sample& q, const float* image) {
  const float t1 = A::mul(q.wt[0], at(image, q.at[0])), t2 = A::mul(q.wt[1], at(image, q.at[1]));
  const float t3 = A::mul(q.wt[2], at(image, q.at[2])), t4 = A::mul(q.wt[3], at(image, q.at[3]));
  return A::add(A::add(A::add(t1, t2), t3), t4);
}

template <typename A>
inline float nested_form(const Sample& q, const float* image) {
  const float top = A::add(A::mul(q.wt[2], at(image, q.at[0])),
                           A::mul(q.wt[3], at(image, q.at[1])));
  const float bottom = A::add(A::mul(q.wt[2], at(image, q.at[2])),
                              A::mul(q.wt[3], at(image, q.at[3])));
  return A::add(A::mul(q.wt[0], top), A::mul(q.wt[1], bottom));
}

// `count` planned points of one channel from its plane; where a result is a NaN, it is
// computed again with x86's order of NaNs (a plain + or * may have its operands swapped by
// the compiler), in a second pass only when the first met one
void channel(const GridSampleArgs& a, const Sample* s, int64_t count, const float* image,
             float* y) {
  if (a.nearest) {
    for (int64_t p = 0; p < count; ++p) y[p] = at(image, s[p].at[0]);
    return;
  }
  const bool plan = !a.border && !a.align_corners;
  bool nan = false;
  if (plan) {
    for (int64_t p = 0; p < count; ++p) {
      const Sample& q = s[p];
      // +0 where all four neighbours are outside
      const float v = (q.at[0] & q.at[1] & q.at[2] & q.at[3]) < 0
                          ? 0.0f : plan_form<PlainArithmetic>(q, image);
      nan |= v != v;
      y[p] = v;
    }
  } else {
    for (int64_t p = 0; p < count; ++p) {
      const float v = nested_form<PlainArithmetic>(s[p], image);
      nan |= v != v;
      y[p] = v;
    }
  }
  if (!nan) return;
  for (int64_t p = 0; p < count; ++p)
    if (y[p] != y[p])
      y[p] = plan ? plan_form<FirstNanArithmetic>(s[p], image)
                  : nested_form<FirstNanArithmetic>(s[p], image);
}

}  // namespace

bool run_grid_sample(const GridSampleArgs& a, int threads) {
  const int64_t plane = a.h * a.w;
  const int64_t blocks = (a.points + kBlock - 1) / kBlock;
  if (threads <= 0) threads = ThreadPool::max_threads();
  threads = int(std::max<int64_t>(1, std::min<int64_t>(threads, a.n * blocks)));
  std::atomic<bool> ok{true};
  // tasks [t0, t1) of the n * blocks (image, block) tasks
  auto tasks = [&](int64_t t0, int64_t t1) {
    Sample s[kBlock];
    for (int64_t t = t0; t < t1 && ok.load(std::memory_order_relaxed); ++t) {
      const int64_t b = t / blocks, p0 = t % blocks * kBlock;
      const int64_t count = std::min(kBlock, a.points - p0);
      if (!plan(a, a.grid + (b * a.points + p0) * 2, count, s)) {
        ok = false;
        return;
      }
      const float* x = a.x + b * a.c * plane;
      float* y = a.y + b * a.c * a.points + p0;
      for (int64_t c = 0; c < a.c; ++c) channel(a, s, count, x + c * plane, y + c * a.points);
    }
  };
  if (threads <= 1) {
    tasks(0, a.n * blocks);
  } else {
    ThreadPool::instance().run(threads, [&](int t) {
      tasks(a.n * blocks * t / threads, a.n * blocks * (t + 1) / threads);
    });
  }
  return ok;
}

}  // namespace lowp
