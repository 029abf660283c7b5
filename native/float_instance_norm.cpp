// InstanceNormalization of float32 planes in ONNX Runtime's order (float_norm.h,
// lowp.runtime.float_nn.InstanceNormalization, docs/operators.md (O35), (O221), (O287)).
// Plain float operations only (the build's -ffp-contract=off), so one portable translation
// unit serves every path; each plane is computed by one task the same way, so results never
// depend on the thread count.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "float_nan.h"
#include "float_norm.h"
#include "threadpool.h"

namespace lowp {
namespace {

constexpr int64_t kPacket = 4;

// a - b with x86's NaN: a's (quieted), else b's (lowp.ort_math.sse_op(np.subtract, ...))
inline float first_nan_sub(float a, float b) {
  if (a != a) return quieted(a);
  if (b != b) return quieted(b);
  return a - b;
}

// The arithmetic of a plane: Plain where no NaN meets another (the values are the same in
// any operand order), FirstNan where the reference's NaN order decides the payload.
struct PlainOps {
  static float add(float a, float b) { return a + b; }
  static float sub(float a, float b) { return a - b; }
  static float mul(float a, float b) { return a * b; }
};
struct FirstNanOps {
  static float add(float a, float b) { return first_nan_add(a, b); }
  static float sub(float a, float b) { return first_nan_sub(a, b); }
  static float mul(float a, float b) { return first_nan_mul(a, b); }
};

// Eigen's redux sum of v(0) .. v(n - 1) (n >= 1) with `start` scalars before the first
// aligned packet (lowp.ort_math._redux_rows and _redux_nan_rows): packets of 4 in two
// interleaved accumulators, their sum, a last odd packet, the packet's lanes, then the
// leading and trailing scalars in order. `kNorm` is nan_order "norm" (the squared
// deviations: lanes (a0 + a2) + (a1 + a3), and of fewer values than a packet each value
// before the running sum), else "sum" ((a3 + a1) + (a2 + a0)); with PlainOps both are the
// same numbers.
template <class Ops, bool kNorm, class Value>
float eigen_sum(int64_t n, int64_t start, const Value& v) {
  start = std::min(start, n);
  const int64_t size = (n - start) / kPacket * kPacket;
  const int64_t size2 = (n - start) / (2 * kPacket) * (2 * kPacket);
  if (size == 0) {
    float res = v(0);
    for (int64_t i = 1; i < n; ++i) res = kNorm ? Ops::add(v(i), res) : Ops::add(res, v(i));
    return res;
  }
  const int64_t end2 = start + size2, end = start + size;
  float p[kPacket];
  if (size > kPacket) {
    float pair[2 * kPacket];
    for (int l = 0; l < 2 * kPacket; ++l) pair[l] = v(start + l);
    for (int64_t j = start + 2 * kPacket; j < end2; j += 2 * kPacket)
      for (int l = 0; l < 2 * kPacket; ++l) pair[l] = Ops::add(pair[l], v(j + l));
    for (int l = 0; l < kPacket; ++l) p[l] = Ops::add(pair[l], pair[kPacket + l]);
    if (end > end2)
      for (int l = 0; l < kPacket; ++l) p[l] = Ops::add(p[l], v(end2 + l));
  } else {
    for (int l = 0; l < kPacket; ++l) p[l] = v(start + l);
  }
  float res = kNorm ? Ops::add(Ops::add(p[0], p[2]), Ops::add(p[1], p[3]))
                    : Ops::add(Ops::add(p[3], p[1]), Ops::add(p[2], p[0]));
  for (int64_t i = 0; i < start; ++i) res = Ops::add(res, v(i));
  for (int64_t i = end; i < n; ++i) res = Ops::add(res, v(i));
  return res;
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
    const PlaneStats p = plane_stats<PlainOps>(x, w, head, a.scale[c], a.bias[c], a.epsilon);
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
        plane_stats<FirstNanOps>(x, w, head, a.scale[c], a.bias[c], a.epsilon);
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
