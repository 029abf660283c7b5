// Eigen's packet log (float_log.h), element by element in lowp.eigen_math._packet_log's
// operations: x = m * 2^e with m in [1/2, 1) (frexp), m < sqrt(1/2) folded to 2m and e - 1,
// log(m) as a (3, 3) rational function of t = m - 1, plus e * ln 2.
#include "float_log.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "threadpool.h"

namespace lowp {
namespace {

// lowp.eigen_math's constants, as float32
constexpr float kP1 = float(1.0000000190281136), kP2 = float(1.0000000190281063),
                kP3 = float(0.18256296349849254);
constexpr float kQ1 = float(1.4999999999999927), kQ2 = float(0.59923249590823520),
                kQ3 = float(0.049616247954120038);
constexpr float kLn2 = float(0.6931471805599453);
constexpr float kSqrtHalf = float(0.70710678118654752440);
// the NaN of a negative or NaN input: bits 0xffffffff (Eigen ORs the invalid lanes' mask in)
const float kInvalid = [] {
  const uint32_t ones = 0xffffffffu;
  float f;
  std::memcpy(&f, &ones, 4);
  return f;
}();

float packet_log(float x) {
  if (x == 0.0f) return -std::numeric_limits<float>::infinity();
  if (x < 0.0f || std::isnan(x)) return kInvalid;  // Eigen: x | invalid mask (all ones)
  if (x == std::numeric_limits<float>::infinity()) return x;
  // frexp of a positive finite float, subnormals normalized first (x * 2^23 is exact)
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  int shift = 0;
  if ((bits >> 23) == 0) {
    const float scaled = x * 8388608.0f;
    std::memcpy(&bits, &scaled, 4);
    shift = 23;
  }
  const int e_int = int(bits >> 23) - 126 - shift;
  bits = (bits & 0x007fffffu) | (126u << 23);
  float m;
  std::memcpy(&m, &bits, 4);
  float e = float(e_int);
  const bool low = m < kSqrtHalf;
  const float t = (m - 1.0f) + (low ? m : 0.0f);
  e = e - (low ? 1.0f : 0.0f);
  const float p = t * (t * (t * kP3 + kP2) + kP1);
  const float q = t * (t * (t * kQ3 + kQ2) + kQ1) + 1.0f;
  return e * kLn2 + p / q;
}

}  // namespace

void run_float_log(const float* x, float* y, int64_t n, int threads) {
  if (n <= 0) return;
  const int64_t split = n - n % 4;  // packets of four from the start, then logf
  run_elementwise(n, int64_t(1) << 14, threads, [&](int64_t i0, int64_t len) {
    const int64_t i1 = i0 + len, mid = std::min(i1, std::max(i0, split));
    for (int64_t i = i0; i < mid; ++i) y[i] = packet_log(x[i]);
    for (int64_t i = mid; i < i1; ++i) y[i] = ::logf(x[i]);
  });
}

}  // namespace lowp
