// InstanceNormalization of float32 planes in ONNX Runtime's order (float_norm.h,
// lowp.runtime.float_nn.InstanceNormalization, docs/operators.md (O35), (O221), (O287)).
// Plain float operations only (the build's -ffp-contract=off), so one portable translation
// unit serves every path; each plane is computed by one task the same way, so results never
// depend on the thread count.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "eigen_redux.h"
#include "float_nan.h"
#include "float_norm.h"
#include "threadpool.h"

namespace lowp {
namespace {

constexpr int64_t kPacket = 4;

// The arithmetic of a plane: PlainArithmetic where no NaN meets another (the values are the
// same in any operand order), FirstNanArithmetic where the reference's NaN order decides the
// payload.
template <class Ops, bool kNorm, class Value>
float eigen_sum(int64_t n, int64_t start, const Value& v) {
  constexpr Lanes kLanes = kNorm ? Lanes::kPaired : Lanes::kReversed;
  return eigen_redux<kLanes, kNorm>(n, start, v, [](float a, float b) { return Ops::add(a, b); });
}

struct PlaneStats {
  float mean, s, t;
};

// The plane's mean, s = scale * (1 / sqrt(sum / w + eps)) and t = bias - mean * s
// (`start`: the plane's scalars before its first 16-byte boundary).
template <class Ops>
PlaneStats plane_stats(const float* x, int64_t w, int64_t start, float scale, float bias,
                       float epsilon) {
  const float fw = float(w);
  const float mean = eigen_sum<Ops, false>(w, start, [x](int64_t i) { return x[i]; }) / fw;
  const float squared = eigen_sum<Ops, true>(w, 0, [x, mean](int64_t i) {
    const float d = Ops::sub(x[i], mean);
    return d * d;
  });
  const float inv = 1.0f / std::sqrt(squared / fw + epsilon);
  const float s = Ops::mul(scale, inv);
  // mean * s: a NaN mean makes s NaN, and then s's NaN (not t's) reaches every y, so the
  // NaN this product hands on never shows
  const float t = Ops::sub(bias, Ops::mul(mean, s));
  return {mean, s, t};
}

void instance_norm_planes(const InstanceNormArgs& a, int64_t r0, int64_t r1) {
  const int64_t w = a.w;
  for (int64_t r = r0; r < r1; ++r) {
    const float* x = a.x + r * w;
    float* y = a.y + r * w;
    const int64_t c = r % a.channels;
    const int64_t head = (kPacket - (r * w) % kPacket) % kPacket;
    const PlaneStats p = plane_stats<PlainArithmetic>(x, w, head, a.scale[c], a.bias[c], a.epsilon);
    if (p.mean == p.mean && p.s == p.s && p.t == p.t) {
      // no NaN in x, scale or bias (x's would make the mean NaN): a NaN of y is one made
      // by x * s or its + t, the same whichever operand comes first
      const float s = p.s, t = p.t;
      for (int64_t k = 0; k < w; ++k) {
        const float q = x[k] * s;
        y[k] = q + t;
      }
      continue;
    }
    // lowp.runtime.float_nn.eigen_scale_shift's NaN order: x's before s's, but s's in the
    // last value of a plane whose scalar tail (after the peel to the 16-byte boundary and
    // the 4-value packets) has three values; then x * s's before t's
    const PlaneStats q =
        plane_stats<FirstNanArithmetic>(x, w, head, a.scale[c], a.bias[c], a.epsilon);
    const bool s_last = (w - std::min(head, w)) % kPacket == 3;
    for (int64_t k = 0; k < w; ++k) {
      const float scaled = s_last && k == w - 1 ? first_nan_mul(q.s, x[k])
                                                : first_nan_mul(x[k], q.s);
      y[k] = first_nan_add(scaled, q.t);
    }
  }
}

}  // namespace

void run_float_instance_norm(const InstanceNormArgs& a, int threads) {
  if (a.planes <= 0 || a.w <= 0) return;
  // three passes over each plane: a thread pays from some ten thousand values
  if (threads <= 0) threads = ThreadPool::max_threads();
  const int64_t per_thread = std::max<int64_t>(1, (int64_t(1) << 14) / a.w);
  threads = int(std::max<int64_t>(1, std::min<int64_t>(threads, a.planes / per_thread)));
  if (threads <= 1) {
    instance_norm_planes(a, 0, a.planes);
    return;
  }
  ThreadPool::instance().run(threads, [&](int t) {
    const int64_t r0 = a.planes * t / threads, r1 = a.planes * (t + 1) / threads;
    if (r1 > r0) instance_norm_planes(a, r0, r1);
  });
}

}  // namespace lowp
