// Float glue microkernels, portable scalar path (compiled without any ISA flag): one value
// per "vector", the reference for the SIMD files.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "float_impl.h"

namespace lowp {
namespace {

struct ScalarD {
  using V = double;
  static constexpr int W = 1;
  static V loadf(const float* p) { return *p; }
  static void storef(float* p, V v) { *p = float(v); }
  static V set1(double v) { return v; }
  static V add(V a, V b) { return a + b; }
  static V sub(V a, V b) { return a - b; }
  static V mul(V a, V b) { return a * b; }
  static V div(V a, V b) { return a / b; }
  static V fma(V a, V b, V c) { return a * b + c; }  // two roundings (no FMA unit assumed)
  static V min(V a, V b) { return a < b ? a : b; }
  static V max(V a, V b) { return a > b ? a : b; }
  static V abs(V a) { return std::fabs(a); }
  static V copysign(V mag, V sgn) { return std::copysign(mag, sgn); }
  static V select_le(V a, V b, V x, V y) { return a <= b ? x : y; }
  static V select_lt(V a, V b, V x, V y) { return a < b ? x : y; }
  static bool all_le(V a, V b) { return a <= b; }
  static V exp2_bits(V t) {
    uint64_t bits;
    std::memcpy(&bits, &t, sizeof bits);
    bits = (bits + 1023) << 52;
    double r;
    std::memcpy(&r, &bits, sizeof r);
    return r;
  }
};

struct ScalarF {
  using V = float;
  static constexpr int W = 1;
  static V load(const float* p) { return *p; }
  static void store(float* p, V v) { *p = v; }
  static V set1(float v) { return v; }
  static V add(V a, V b) { return a + b; }
  static V mul(V a, V b) { return a * b; }
  static V div(V a, V b) { return a / b; }
  static V fma(V a, V b, V c) { return std::fmaf(a, b, c); }  // libm: one rounding
  static V min(V a, V b) { return a < b ? a : b; }
  static V max(V a, V b) { return a > b ? a : b; }
  static V max_nan(V acc, V x) { return (x != x || x > acc) ? x : acc; }
  static V or_bits(V a, V b) {
    uint32_t u, v;
    std::memcpy(&u, &a, sizeof u);
    std::memcpy(&v, &b, sizeof v);
    u |= v;
    std::memcpy(&a, &u, sizeof u);
    return a;
  }
  static V select_ge0(V x, V a, V b) { return x >= 0.0f ? a : b; }
  // x = m 2^e, m in [1/2, 1), for a positive finite x (subnormals normalized first: x 2^23
  // is exact); other values: any
  static V frexp(V x, V& e) {
    uint32_t bits;
    std::memcpy(&bits, &x, 4);
    int shift = 0;
    if ((bits >> 23) == 0) {
      const float scaled = x * 8388608.0f;
      std::memcpy(&bits, &scaled, 4);
      shift = 23;
    }
    e = float(int(bits >> 23) - 126 - shift);
    bits = (bits & 0x007fffffu) | (126u << 23);
    float m;
    std::memcpy(&m, &bits, 4);
    return m;
  }
  // p * 2^m for an integer-valued m, rounded once (m NaN: p, which is NaN then)
  static V scale2(V p, V m) {
    if (!(m == m)) return p;
    if (m > 128.0f) return p * std::numeric_limits<float>::infinity();
    return std::ldexp(p, int(m));
  }
  // Partial vectors and reductions of the softmax rows, as Avx512F's (c is 0 here: W = 1)
  static V load_fill(const float* p, int c, float fill) { return c > 0 ? *p : fill; }
  static void store_n(float* p, V v, int c) {
    if (c > 0) *p = v;
  }
  static V keep_n(V v, int c) { return c > 0 ? v : 0.0f; }
  static bool all_ge(V a, V b) { return a >= b; }
  static bool has_nan(V v) { return v != v; }
  static float reduce_max(V v) { return v; }
  static float fold16(const V* a) {
    float t[8];
    for (int j = 0; j < 8; ++j) t[j] = a[8 + j] + a[j];
    return ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
  }
  static V gather(const float* p, int64_t) { return *p; }
  static V sub(V a, V b) { return a - b; }
  static V abs(V a) { return std::fabs(a); }
  static V neg(V a) { return -a; }
  static V select_gt(V a, V b, V x, V y) { return a > b ? x : y; }
  static V select_eq(V a, V b, V x, V y) { return a == b ? x : y; }
  static V copysign(V mag, V sgn) { return std::copysign(mag, sgn); }
  static V int_bits(V k) {  // the float whose bits are the integral k in [0, 2^23]
    const uint32_t b = uint32_t(k);
    float f;
    std::memcpy(&f, &b, sizeof f);
    return f;
  }
  static V pow2(V r) {  // 2^r for integral r in [-126, 127]
    const uint32_t bits = uint32_t(int32_t(r) + 127) << 23;
    float y;
    std::memcpy(&y, &bits, sizeof y);
    return y;
  }
};

}  // namespace

const FloatKernels kFloatScalar = float_kernels<ScalarD, ScalarF>("scalar");

}  // namespace lowp
