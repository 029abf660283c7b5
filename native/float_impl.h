// Float glue microkernels (float_kernels.h), written once over two vector traits classes and
// included by each per-ISA file (float_scalar/avx2/avx512.cpp), which compiles it with its
// own flags. Everything is in an anonymous namespace: each translation unit has its copy.
//
// D (float64 vectors of D::W lanes): V, loadf/storef (W floats, converted), set1, add, sub,
// mul, div, fma(a, b, c) = a * b + c, min/max (the second operand when either is NaN, as
// minpd/maxpd), abs, copysign(mag, sgn), select_le(a, b, x, y) = a <= b ? x : y (ordered),
// select_lt, all_le(a, b) = every lane a <= b (ordered), exp2_bits(t) = 2^(t - kRound) for t = n + kRound with an integral n in
// [-1022, 1023] (the exponent field built from t's low mantissa bits).
// F (float32 vectors of F::W lanes): V, load/store, set1, add, mul, div, fma (one rounding),
// min/max (as minps/maxps), max_nan(acc, x) (NaN if either is NaN), or_bits (bitwise or),
// gather(p, stride) = p[i * stride],
// neg (the sign bit flipped) and abs (cleared), NaN's included.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "float_elementwise.h"
#include "float_kernels.h"
#include "float_nan.h"
#include "mlas_activations.h"

namespace lowp {
namespace {

constexpr double kRound = 6755399441055744.0;  // 1.5 * 2^52: adding it rounds to an integer

// exp in float64 (erf and tanh): x clamped to [-120, 120] (exp rounds to 0 or inf in
// float32 beyond, and 2^n stays a normal float64), x = n ln2 + r with |r| <= ln2 / 2 (ln2
// in two parts, n ln2_hi exact), exp(r) by its Taylor polynomial of degree 12 (relative
// error below 3e-16), times 2^n. NaN in, NaN out.
template <class D>
inline typename D::V exp_d(typename D::V x) {
  using V = typename D::V;
  x = D::max(D::set1(-120.0), D::min(D::set1(120.0), x));
  const V t = D::fma(x, D::set1(1.4426950408889634), D::set1(kRound));
  const V n = D::sub(t, D::set1(kRound));
  V r = D::fma(n, D::set1(-6.93147180369123816490e-01), x);
  r = D::fma(n, D::set1(-1.90821492927058770002e-10), r);
  static constexpr double c[] = {1.0 / 479001600, 1.0 / 39916800, 1.0 / 3628800,
                                 1.0 / 362880,    1.0 / 40320,    1.0 / 5040,
                                 1.0 / 720,       1.0 / 120,      1.0 / 24,
                                 1.0 / 6,         0.5,            1.0,
                                 1.0};
  V p = D::set1(c[0]);
  for (int i = 1; i < 13; ++i) p = D::fma(p, r, D::set1(c[i]));
  return D::mul(p, D::exp2_bits(t));
}

// tanh in float64: the odd Taylor polynomial for |u| < 1/16, else (1 - e) / (1 + e) with
// e = exp(-2|u|) (exactly 1 once e < 2^-54), with the sign of u. Relative error ~1e-15.
template <class D>
inline typename D::V tanh_d(typename D::V u) {
  using V = typename D::V;
  const V a = D::abs(u);
  const V z = D::mul(u, u);
  static constexpr double c[] = {-1382.0 / 155925, 62.0 / 2835, -17.0 / 315, 2.0 / 15,
                                 -1.0 / 3};
  V p = D::set1(c[0]);
  for (int i = 1; i < 5; ++i) p = D::fma(p, z, D::set1(c[i]));
  const V small = D::fma(D::mul(p, z), u, u);
  const V e = exp_d<D>(D::mul(a, D::set1(-2.0)));
  const V one = D::set1(1.0);
  const V large = D::copysign(D::div(D::sub(one, e), D::add(one, e)), u);
  return D::select_lt(a, D::set1(0.0625), small, large);
}

template <class D>
inline typename D::V unary_d(int op, typename D::V x) {
  using V = typename D::V;
  const V half = D::set1(0.5), one = D::set1(1.0);
  // kGeluTanh (erf and the exact GELU are float32 operators: mlas_erf_v below)
  (void)op;
  const V x3 = D::mul(D::mul(x, x), x);
  const V u = D::mul(D::set1(0.7978845608028654), D::add(x, D::mul(D::set1(0.044715), x3)));
  return D::mul(D::mul(half, x), D::add(one, tanh_d<D>(u)));
}

// The operators computed in float32 by the reference: hard sigmoid, hard swish and leaky
// relu (one rounding per operation, no contraction), ONNX Runtime's rational tanh and logistic
// (lowp.ort_math: Eigen's coefficients, a fused multiply-add per Horner step) and its erf
// and exact GELU (MLAS's polynomials, below).
constexpr bool is_float32_op(int op) {
  return op == kHardSigmoid || op == kHardSwish || op == kSigmoid || op == kTanh ||
         op == kErf || op == kGelu || op == kLeakyRelu || op == kFastGelu || op == kExp ||
         op == kNeg || op == kAbs || op == kElu || op == kGeluKeepNaN || op == kRelu ||
         op == kLog || op == kSoftplus;
}

// ONNX Runtime's float32 exp (MLAS's MlasComputeExpF32Kernel, lowp.ort_math.exp, (O19)): x
// clamped to [-103.972084, 88.7762627] (NaN stays NaN), m by the 1.5 * 2^23 rounding trick, r
// from the two-part ln 2, the degree-6 polynomial by fused multiply-adds, then
// fma(p, r * 2^(m - mc), 2^(m - mc)) * 2^mc with mc = m clamped to [-126, 127]: MLAS builds
// the two factors from m's bits, (m << 23) clamped to the exponents of 2^-126 and 1, then
// both rebased by 1's exponent, which are these powers of two. The clamps send a NaN m to
// -126 (their second operand), so pow2 never sees NaN (the result is NaN through p).
template <class F>
struct ExpParts {
  typename F::V m, r, p;
};

// MLAS's exp of a clamped v, up to its last step: m = round(v / ln 2) (the 1.5 * 2^23 bias
// trick), r = v - m ln 2 in two fused steps, p = the polynomial of r through its first
// "+ 1" term. Its two users finish p * r + 1 and the scaling by 2^m each its own way.
template <class F>
inline ExpParts<F> mlas_exp_parts(typename F::V v) {
  using V = typename F::V;
  const V bias = F::set1(12582912.0f);
  const V m = F::sub(F::fma(v, F::set1(1.44269504088896341f), bias), bias);
  V r = F::fma(m, F::set1(-6.93145752e-1f), v);
  r = F::fma(m, F::set1(-1.42860677e-6f), r);
  V p = F::set1(0x1.694000p-10f);
  p = F::fma(p, r, F::set1(0x1.125edcp-7f));
  p = F::fma(p, r, F::set1(0x1.555b5ap-5f));
  p = F::fma(p, r, F::set1(0x1.555450p-3f));
  p = F::fma(p, r, F::set1(0x1.fffff6p-2f));
  p = F::fma(p, r, F::set1(1.0f));
  return {m, r, p};
}

template <class F>
inline typename F::V mlas_exp_v(typename F::V x) {
  using V = typename F::V;
  // (the clamps return their second operand for NaN: x, as np.clip keeps NaN)
  const auto [m, r, p] = mlas_exp_parts<F>(
      F::min(F::set1(88.7762626647950f), F::max(F::set1(-103.9720840454f), x)));
  const V mc = F::min(F::max(m, F::set1(-126.0f)), F::set1(127.0f));
  const V d = F::min(F::max(F::sub(m, mc), F::set1(-126.0f)), F::set1(127.0f));
  const V hi = F::pow2(d), lo = F::pow2(mc);
  return F::mul(F::fma(p, F::mul(r, hi), hi), lo);
}

// ONNX Runtime's float32 erf (MLAS, lowp.ort_math.erf): |x| clamped to 3.925, the
// small-range odd polynomial, the large-range 1 - exp(-q(|x|)) with MLAS's exp (2^r from r's
// integer; r >= -126 changes nothing: the product is then below 2^-125 and 1 - it rounds to
// 1), the sign of x put back. minps/maxps keep a NaN argument as MLAS's kernel does.
template <class F>
inline typename F::V mlas_erf_v(typename F::V x) {
  using V = typename F::V;
  const V a = F::min(F::set1(3.925f), F::abs(x));
  const V s = F::mul(a, a);
  V p = F::set1(-5.99104969e-4f);
  p = F::fma(p, s, F::set1(4.99339588e-3f));
  p = F::fma(p, s, F::set1(-2.67667342e-2f));
  p = F::fma(p, s, F::set1(1.12818025e-1f));
  p = F::fma(p, s, F::set1(-3.76124859e-1f));
  p = F::fma(p, s, F::set1(1.28379151e-1f));
  const V small = F::fma(p, a, a);
  const V zero = F::set1(0.0f), split = F::set1(0.921875f);
  const V ab = F::select_gt(a, split, a, zero);
  V q = F::set1(1.72948930e-5f);
  q = F::fma(q, ab, F::set1(-3.83208680e-4f));
  q = F::fma(q, ab, F::set1(3.88393435e-3f));
  q = F::fma(q, ab, F::set1(-2.42545605e-2f));
  q = F::fma(q, ab, F::set1(1.06777847e-1f));
  q = F::fma(q, ab, F::set1(6.34846687e-1f));
  q = F::fma(q, ab, F::set1(1.28717512e-1f));
  q = F::sub(zero, F::fma(q, ab, ab));
  q = F::max(F::set1(-88.3762626647949f), q);
  const V bias = F::set1(12582912.0f);
  const V r = F::sub(F::fma(F::set1(1.44269504088896341f), q, bias), bias);
  V f = F::fma(r, F::set1(-6.93145752e-1f), q);
  f = F::fma(r, F::set1(-1.42860677e-6f), f);
  V y = F::set1(1.38319808e-3f);
  y = F::fma(y, f, F::set1(8.37550033e-3f));
  y = F::fma(y, f, F::set1(4.16689515e-2f));
  y = F::fma(y, f, F::set1(1.66664466e-1f));
  y = F::fma(y, f, F::set1(4.99999851e-1f));
  y = F::fma(y, f, F::set1(1.0f));
  y = F::fma(y, f, F::set1(1.0f));
  const V rc = F::max(F::set1(-126.0f), r);  // NaN r: -126 (y is NaN then anyway)
  const V e = F::sub(F::set1(1.0f), F::mul(y, F::pow2(rc)));
  return F::copysign(F::select_gt(a, split, e, small), x);
}

// ONNX Runtime's float32 exact GELU: (0.5 x) (erf(x * float32(1/sqrt 2)) + 1).
template <class F>
inline typename F::V mlas_gelu_v(typename F::V x) {
  const typename F::V e = mlas_erf_v<F>(F::mul(x, F::set1(0.70710678118654752440f)));
  return F::mul(F::mul(F::set1(0.5f), x), F::add(e, F::set1(1.0f)));
}

// ONNX Runtime 1.32's float32 exact GELU where MLAS takes its AVX-512F kernel
// (MlasGeluErfKernelAvx512F): mlas_gelu_v's values, a NaN x put back as it is (a signalling
// one too: the arithmetic would quiet it). |x| > -1 is false only for NaN.
template <class F>
inline typename F::V mlas_gelu_keep_nan_v(typename F::V x) {
  return F::select_gt(F::abs(x), F::set1(-1.0f), mlas_gelu_v<F>(x), x);
}

// ONNX Runtime's float32 FastGelu (com.microsoft, no bias; lowp.ort_math.gelu_tanh): with
// c = 0.044715 sqrt(2 / pi) and b = sqrt(2 / pi) in float32, (0.5 x) (tanh(x ((c x) x + b))
// + 1), each operation rounded to float32 in that order and tanh ONNX Runtime's (mlas_tanh):
// the operators of its float_fused form one by one, in one pass.
template <class F>
inline typename F::V ort_fast_gelu_v(typename F::V x) {
  const typename F::V inner =
      F::add(F::mul(F::mul(F::set1(0.0356774081f), x), x), F::set1(0.7978845608f));
  const typename F::V t = mlas_tanh<F>(F::mul(x, inner));
  return F::mul(F::mul(F::set1(0.5f), x), F::add(t, F::set1(1.0f)));
}

// ONNX Runtime's float32 Log on its packets (Eigen's plog_float, lowp.eigen_math._packet_log;
// float_log.cpp's packet_log in vectors): x = m 2^e with m in [1/2, 1), m < sqrt(1/2) folded
// to 2m and e - 1, log(m) as a (3, 3) rational function of t = m - 1 (one rounding per
// operation), plus e ln 2; -inf at +-0, x at +inf, the NaN of bits 0xffffffff below 0 and
// for NaN (Eigen ORs its invalid mask in).
template <class F>
inline typename F::V eigen_log_v(typename F::V x) {
  using V = typename F::V;
  const V zero = F::set1(0.0f), one = F::set1(1.0f);
  V e;
  const V m = F::frexp(x, e);
  const V low = F::select_gt(F::set1(0.70710678118654752440f), m, one, zero);
  const V t = F::add(F::sub(m, one), F::mul(low, m));  // low: m - 1 + m, else m - 1 + 0
  e = F::sub(e, low);
  V p = F::add(F::mul(t, F::set1(float(0.18256296349849254))),
               F::set1(float(1.0000000190281063)));
  p = F::mul(t, F::add(F::mul(t, p), F::set1(float(1.0000000190281136))));
  V q = F::add(F::mul(t, F::set1(float(0.049616247954120038))),
               F::set1(float(0.59923249590823520)));
  q = F::add(F::mul(t, F::add(F::mul(t, q), F::set1(float(1.4999999999999927)))), one);
  V r = F::add(F::mul(e, F::set1(float(0.6931471805599453))), F::div(p, q));
  const float inf = std::numeric_limits<float>::infinity();
  r = F::select_gt(x, F::set1(std::numeric_limits<float>::max()), x, r);
  r = F::select_gt(x, zero, r, F::set1(-inf));
  uint32_t ones = 0xffffffffu;
  float invalid;
  std::memcpy(&invalid, &ones, 4);
  return F::select_ge0(x, r, F::set1(invalid));
}

// Eigen's packet exp (lowp.eigen_math._exp), one rounding per operation (no contraction,
// as Eigen's baseline build): the input clamped to [-104, upper] (NaN: -104, selected away;
// upper 88.723, or 0 for Elu, whose positive inputs are selected away), m = floor(x log2 e
// + 1/2) (the 1.5 * 2^23 rounding, one down where that rounded up), r = x - m ln2 in two
// parts, the degree-6 polynomial, y 2^m rounded once (ldexpf's value, subnormal results
// included); 0 below -104, max(2^m y, t) otherwise (inf above, t itself for NaN: maxps's
// second operand).
template <class F>
inline typename F::V eigen_exp_v(typename F::V t, float upper = 88.723f) {
  using V = typename F::V;
  const V one = F::set1(1.0f), bias = F::set1(12582912.0f);
  const V x = F::min(F::max(t, F::set1(-104.0f)), F::set1(upper));  // max: the second for NaN
  const V v = F::add(F::mul(x, F::set1(1.44269504088896341f)), F::set1(0.5f));
  const V rn = F::sub(F::add(v, bias), bias);
  const V m = F::select_gt(rn, v, F::sub(rn, one), rn);
  V r = F::add(F::mul(m, F::set1(-0.693359375f)), x);
  r = F::add(F::mul(m, F::set1(2.12194440e-4f)), r);
  const V r2 = F::mul(r, r);
  V even = F::add(F::mul(r2, F::set1(1.37449637986719608306884765625e-3f)),
                  F::set1(4.166965186595916748046875e-2f));
  even = F::add(F::mul(r2, even), F::set1(0.49999988079071044921875f));
  const V odd = F::add(F::mul(r2, F::set1(8.36894474923610687255859375e-3f)),
                       F::set1(0.16666518151760101318359375f));
  const V y = F::add(F::mul(r2, F::add(F::mul(r, odd), even)), F::add(r, one));
  return F::select_gt(F::set1(-104.0f), t, F::set1(0.0f), F::max(F::scale2(y, m), t));
}

// ONNX Runtime's float32 Elu (an Eigen expression, lowp.runtime.float_ops._elu32) on its
// packets: t >= 0 ? t : alpha (exp(t) - 1), Eigen's packet exp on t clamped to [-104, 0];
// a NaN t gives alpha (t - 1), Eigen's exp of NaN being the NaN itself.
template <class F>
inline typename F::V eigen_elu_v(typename F::V t, float alpha) {
  const typename F::V e = eigen_exp_v<F>(t, 0.0f);
  return F::select_ge0(t, t, F::mul(F::set1(alpha), F::sub(e, F::set1(1.0f))));
}

// Eigen's generic log1p (lowp.eigen_math._packet_log1p): x log(1 + x) / ((1 + x) - 1), x
// itself where 1 + x is 1 or its log (+inf); the NaN of bits 0xffffffff for a NaN x or
// 1 + x below 0.
template <class F>
inline typename F::V eigen_log1p_v(typename F::V x) {
  using V = typename F::V;
  const V one = F::set1(1.0f);
  const V up = F::add(x, one);
  const V log_up = eigen_log_v<F>(up);
  V out = F::mul(x, F::div(log_up, F::sub(up, one)));
  out = F::select_eq(up, log_up, x, F::select_eq(up, one, x, out));
  uint32_t ones = 0xffffffffu;
  float invalid;
  std::memcpy(&invalid, &ones, 4);
  out = F::select_gt(F::set1(0.0f), up, F::set1(invalid), out);
  return F::select_eq(x, x, out, F::set1(invalid));
}

// ONNX Runtime's float32 Softplus on its packets (lowp.runtime.float_ops._softplus32):
// x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)), both sides computed, Eigen's packet exp and
// log1p, one rounding per operation.
template <class F>
inline typename F::V eigen_softplus_v(typename F::V x) {
  const typename F::V pos = F::add(x, eigen_log1p_v<F>(eigen_exp_v<F>(F::neg(x))));
  return F::select_gt(x, F::set1(0.0f), pos, eigen_log1p_v<F>(eigen_exp_v<F>(x)));
}

template <class F>
inline typename F::V unary_f(int op, typename F::V x, float alpha, float beta) {
  using V = typename F::V;
  const V zero = F::set1(0.0f), one = F::set1(1.0f);
  // clip(t, 0, 1) keeps NaN, as np.clip (minps/maxps return the second)
  switch (op) {
    case kErf:
      return mlas_erf_v<F>(x);
    case kGelu:
      return mlas_gelu_v<F>(x);
    case kHardSigmoid: {
      const V t = F::add(F::mul(F::set1(alpha), x), F::set1(beta));
      return F::min(one, F::max(zero, t));
    }
    case kHardSwish: {
      const V t = F::add(F::mul(x, F::set1(float(1.0 / 6))), F::set1(0.5f));
      return F::mul(x, F::min(one, F::max(zero, t)));
    }
    case kLeakyRelu:  // np.where(x >= 0, x, x * alpha): NaN and -0 take the product
      return F::select_ge0(x, x, F::mul(x, F::set1(alpha)));
    case kTanh:
      return mlas_tanh<F>(x);
    case kFastGelu:
      return ort_fast_gelu_v<F>(x);
    case kExp:
      return mlas_exp_v<F>(x);
    case kNeg:
      return F::neg(x);
    case kAbs:
      return F::abs(x);
    case kElu:
      return eigen_elu_v<F>(x, alpha);
    case kGeluKeepNaN:
      return mlas_gelu_keep_nan_v<F>(x);
    case kLog:
      return eigen_log_v<F>(x);
    case kSoftplus:
      return eigen_softplus_v<F>(x);
    case kRelu:  // 0 > x ? 0 : x (ordered: NaN and -0 stay x)
      return F::select_gt(zero, x, zero, x);
    default:  // kSigmoid
      return mlas_logistic<F>(x);
  }
}

template <class D, class F>
void unary_kernel(int op, const float* x, float* y, int64_t n, float alpha, float beta) {
  if (is_float32_op(op)) {
    int64_t i = 0;
    for (; i + F::W <= n; i += F::W) F::store(y + i, unary_f<F>(op, F::load(x + i), alpha, beta));
    if (i < n) {
      float buf[F::W] = {};
      std::memcpy(buf, x + i, size_t(n - i) * sizeof(float));
      F::store(buf, unary_f<F>(op, F::load(buf), alpha, beta));
      std::memcpy(y + i, buf, size_t(n - i) * sizeof(float));
    }
    return;
  }
  int64_t i = 0;
  for (; i + 2 * D::W <= n; i += 2 * D::W) {
    const typename D::V a = D::loadf(x + i), b = D::loadf(x + i + D::W);
    D::storef(y + i, unary_d<D>(op, a));
    D::storef(y + i + D::W, unary_d<D>(op, b));
  }
  for (; i < n; i += D::W) {
    float buf[D::W] = {};
    const int64_t len = std::min<int64_t>(D::W, n - i);
    std::memcpy(buf, x + i, size_t(len) * sizeof(float));
    D::storef(buf, unary_d<D>(op, D::loadf(buf)));
    std::memcpy(y + i, buf, size_t(len) * sizeof(float));
  }
}

// ONNX Runtime's float32 Sin and Cos packets: Eigen's psincos_float (no fused multiply-add
// in its baseline build), element by element in lowp.eigen_math._packet_sincos's operations:
// |x| = q pi/2 + r by the 1.5 * 2^23 rounding trick (q: the low bits of the rounded value's
// own bits, as Eigen reads them, also for inf and NaN) and a four-part Cody-Waite reduction,
// or Payne-Hanek's in 2.62 fixed point for finite |x| >= 25966 (sin) / 18838 (cos); then the
// sine or cosine polynomial in r by q's parity, the sign by xor. Plain float operations, one
// rounding each: the loop vectorizes at each path's width with the same values.
constexpr uint32_t kTwoOverPi[] = {
    0x00000028, 0x000028be, 0x0028be60, 0x28be60db, 0xbe60db93, 0x60db9391, 0xdb939105,
    0x9391054a, 0x91054a7f, 0x054a7f09, 0x4a7f09d5, 0x7f09d5f4, 0x09d5f47d, 0xd5f47d4d,
    0xf47d4d37, 0x7d4d3770, 0x4d377036, 0x377036d8, 0x7036d8a5, 0x36d8a566, 0xd8a5664f,
    0xa5664f10, 0x664f10e4, 0x4f10e410, 0x10e41000, 0xe4100000};

inline uint32_t float_bits(float v) {
  uint32_t b;
  std::memcpy(&b, &v, sizeof b);
  return b;
}

inline float bits_float(uint32_t b) {
  float v;
  std::memcpy(&v, &b, sizeof v);
  return v;
}

// Eigen's trig_reduce_huge: finite a = |x| >= the threshold as q pi/2 + r (q in [0, 3])
inline float sincos_reduce_huge(float a, uint32_t& quadrant) {
  const uint32_t bits = float_bits(a);
  const int e = int(bits >> 23) - 118;
  const uint32_t xi = ((bits & 0x007fffffu) | 0x00800000u) << (e & 7);
  const int i = e >> 3;
  uint64_t p = uint64_t(xi) * kTwoOverPi[i + 7];
  p = uint64_t(xi) * kTwoOverPi[i + 3] + (p >> 32);
  p = (uint64_t(uint32_t(xi * kTwoOverPi[i - 1])) << 32) + p;
  const uint64_t q = (p + (uint64_t(1) << 61)) >> 62;
  p -= q << 62;
  quadrant = uint32_t(q);
  return float(double(int64_t(p)) * 3.4061215800865545e-19);
}

// r = |x| reduced and its quadrant: Cody-Waite's (`huge`: Payne-Hanek's)
template <bool kHuge>
inline float sincos_reduce(float a, uint32_t& quadrant) {
  if (kHuge) return sincos_reduce_huge(a, quadrant);
  const float rounded = a * 0.636619746685028076171875f + 12582912.0f;
  quadrant = float_bits(rounded);
  const float y = rounded - 12582912.0f;
  float r = y * -1.5703125f + a;
  r = y * -0.000483989715576171875f + r;
  r = y * 1.62865035235881805419921875e-07f + r;
  return y * 5.5644315544167710640977020375430583953857421875e-11f + r;
}

template <bool kSine, bool kHuge>
inline float eigen_sincos(float x0) {
  uint32_t quadrant;
  const float r = sincos_reduce<kHuge>(std::fabs(x0), quadrant);
  const uint32_t sign = (kSine ? float_bits(x0) ^ (quadrant << 30) : (quadrant + 1) << 30) &
                        0x80000000u;
  const float r2 = r * r;
  float c = 2.4372266125283204019069671630859375e-05f;
  c = c * r2 + -0.00138865201734006404876708984375f;
  c = c * r2 + 0.041666619479656219482421875f;
  c = c * r2 + -0.5f;
  c = c * r2 + 1.0f;
  float s = -0.0001959234114083702898469196984621021329076029360294342041015625f;
  s = s * r2 + 0.0083326873655616851693794799871284340042620897293090820312500000f;
  s = s * r2 + -0.1666666203982298255503735617821803316473960876464843750000000000f;
  s = (s * r2) * r + r;
  // odd quadrant: the other polynomial (a bit mask: no branch for the loop to vectorize)
  const uint32_t odd = 0u - (quadrant & 1);
  const uint32_t first = float_bits(kSine ? s : c), second = float_bits(kSine ? c : s);
  return bits_float(((first & ~odd) | (second & odd)) ^ sign);
}

template <bool kSine>
void sincos_run(const float* x, float* y, int64_t n) {
  // blocks of 64: a block holding a huge value (finite |v| >= 25966 for sin, 18838 for cos:
  // |v|'s bits in [the threshold's, inf's)) goes element by element, the others by the
  // vector loop (x and y may be the same memory: each value is read before it is written)
  const uint32_t from = float_bits(kSine ? 25966.0f : 18838.0f);
  auto is_huge = [from](float v) {
    const uint32_t a = float_bits(v) & 0x7fffffffu;
    return (a >= from) & (a < 0x7f800000u);
  };
  for (int64_t b = 0; b < n; b += 64) {
    const int64_t m = std::min<int64_t>(64, n - b);
    const float* xs = x + b;
    float* ys = y + b;
    uint32_t huge = 0;
    for (int64_t i = 0; i < m; ++i) huge |= uint32_t(is_huge(xs[i]));
    if (!huge) {
      for (int64_t i = 0; i < m; ++i) ys[i] = eigen_sincos<kSine, false>(xs[i]);
      continue;
    }
    for (int64_t i = 0; i < m; ++i) {
      const float v = xs[i];
      ys[i] = is_huge(v) ? eigen_sincos<kSine, true>(v) : eigen_sincos<kSine, false>(v);
    }
  }
}

void sincos_kernel(const float* x, float* y, int64_t n, bool cosine) {
  if (cosine) sincos_run<false>(x, y, n);
  else sincos_run<true>(x, y, n);
}

// One output row of a float32 MaxPool in ONNX Runtime's NCHWc order (kMaxNchwc): each
// output from the lowest float, maxps(acc, tap) (acc > tap ? acc : tap: the tap on a NaN or
// a tie) over its in-bounds taps, row-major. Along the width the in-bounds outputs of one tap
// are one range, so padded taps are skipped, not read (a padded lowest float would replace
// a NaN).
template <class F>
void max_pool_row_nchwc(const FloatPoolArgs& a, const float* plane, int64_t oy,
                        const FloatPoolRow& r, float* y) {
  float* acc = r.out;
  std::fill(acc, acc + a.ow, std::numeric_limits<float>::lowest());
  const int64_t sw = a.sw;
  for (int i = 0; i < a.kh; ++i) {
    const int64_t ih = oy * a.sh - a.ph + int64_t(i) * a.dh;
    if (ih < 0 || ih >= a.h) continue;
    const float* row = plane + ih * a.w;
    if (sw > 1)   // the row by column phase: column q * sw + p at dec[p * dlen + q]
      for (int64_t p = 0; p < sw; ++p)
        for (int64_t q = 0, c = p; c < a.w; ++q, c += sw) r.dec[p * r.dlen + q] = row[c];
    for (int j = 0; j < a.kw; ++j) {
      const int64_t off = int64_t(j) * a.dw - a.pw;  // input column of output 0's tap
      const int64_t lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
      const int64_t hi = std::min<int64_t>(a.ow, a.w - off <= 0 ? 0 : (a.w - 1 - off) / sw + 1);
      if (lo >= hi) continue;
      // output o's tap: column o * sw + off = (o + start) * sw + phase
      const int64_t start = off >= 0 ? off / sw : -((-off + sw - 1) / sw);
      const int64_t phase = off - start * sw;
      const float* base = sw == 1 ? row + off : r.dec + phase * r.dlen + start;
      int64_t o = lo;
      for (; o + F::W <= hi; o += F::W)
        F::store(acc + o, F::max(F::load(acc + o), F::load(base + o)));
      for (; o < hi; ++o) acc[o] = acc[o] > base[o] ? acc[o] : base[o];
    }
  }
  std::memcpy(y, acc, size_t(a.ow) * sizeof(float));
}

// One output row of a pooling node. Pass 1 reduces the window's valid input rows column by
// column into r.vbuf (pre-filled with the neutral value: the lowest float for max, +0 for
// the sum; the input columns start at vbuf[pw]). Pass 2 reduces kw taps of vbuf per output
// column. The sums keep the reference's order: ((0 + x[r0]) + x[r1]) + ... down each column,
// then ((0 + col0) + col1) + ... across; padded taps add +0, which changes nothing. The
// maxima keep MLAS's vector kernel's (kMaxMlasVector): each column from its first valid row,
// then maxps (acc > x ? acc : x) on the first w - w % 4 columns and std::max (acc < x ? x :
// acc) on the rest; across, from the first tap, maxps.

// An average pool output that came out NaN summed again in MLAS's vector order with the
// NaN order (docs/operators.md (O201)): each window column's rows from +0, then the
// columns from +0, each running sum the first operand. The vector code adds in that order,
// but a compiler may swap the operands of an addition, which changes only which NaN stays.
inline float average_nan_window(const FloatPoolArgs& a, const float* plane, int64_t oy,
                                int64_t ox, float divisor) {
  float acc = 0.0f;
  for (int j = 0; j < a.kw; ++j) {
    const int64_t ix = ox * a.sw - a.pw + int64_t(j) * a.dw;
    float column = 0.0f;
    for (int i = 0; ix >= 0 && ix < a.w && i < a.kh; ++i) {
      const int64_t ih = oy * a.sh - a.ph + int64_t(i) * a.dh;
      if (ih >= 0 && ih < a.h) column = first_nan_add(column, plane[ih * a.w + ix]);
    }
    acc = first_nan_add(acc, column);
  }
  return acc / divisor;
}

// Whether MLAS's vector kernel sums this average pool window to -0 (docs/operators.md
// (O350)): it sums each column from its first row inside the input and the columns from the
// first, never from +0, so a window whose taps inside the input are all -0 and that has no
// tap in a pad column (+0 in its row buffer) gives -0. The sums here start from +0.
inline bool negative_zero_window(const FloatPoolArgs& a, const float* plane, int64_t oy,
                                 int64_t ox) {
  bool any = false;
  for (int j = 0; j < a.kw; ++j) {
    const int64_t ix = ox * a.sw - a.pw + int64_t(j) * a.dw;
    if (ix < 0 || ix >= a.w) return false;
    for (int i = 0; i < a.kh; ++i) {
      const int64_t ih = oy * a.sh - a.ph + int64_t(i) * a.dh;
      if (ih < 0 || ih >= a.h) continue;
      const float v = plane[ih * a.w + ix];
      if (v != 0.0f || !std::signbit(v)) return false;
      any = true;
    }
  }
  return any;
}

template <class F>
void pool_row_kernel(const FloatPoolArgs& a, const float* plane, int64_t oy, float cnt_h,
                     const FloatPoolRow& r, float* y) {
  using V = typename F::V;
  if (!a.average && a.max_order == kMaxNchwc) {
    max_pool_row_nchwc<F>(a, plane, oy, r, y);
    return;
  }
  const float neutral = a.average ? 0.0f : std::numeric_limits<float>::lowest();
  std::fill(r.vbuf, r.vbuf + r.vlen, neutral);
  float* col = r.vbuf + a.pw;
  const int64_t w = a.w;
  const int64_t vec_end = w - w % 4;  // MLAS's 4-float vectors: std::max after them
  bool first = true;
  for (int i = 0; i < a.kh; ++i) {
    const int64_t ih = oy * a.sh - a.ph + int64_t(i) * a.dh;
    if (ih < 0 || ih >= a.h) continue;
    const float* row = plane + ih * w;
    int64_t j = 0;
    if (a.average) {
      for (; j + F::W <= w; j += F::W) F::store(col + j, F::add(F::load(col + j), F::load(row + j)));
      for (; j < w; ++j) col[j] = col[j] + row[j];
    } else if (first) {
      std::memcpy(col, row, size_t(w) * sizeof(float));
    } else {
      for (; j + F::W <= vec_end; j += F::W)
        F::store(col + j, F::max(F::load(col + j), F::load(row + j)));
      for (; j < vec_end; ++j) col[j] = col[j] > row[j] ? col[j] : row[j];
      for (; j < w; ++j) col[j] = col[j] < row[j] ? row[j] : col[j];
    }
    first = false;
  }
  // Pass 2 on whole vectors: vbuf and out are long enough for the padded last vector.
  const V vcnt_h = F::set1(cnt_h);
  for (int64_t o = 0; o < a.ow; o += F::W) {
    const float* base = r.vbuf + o * a.sw;
    auto tap = [&](int j) {
      const float* p = base + int64_t(j) * a.dw;
      return a.sw == 1 ? F::load(p) : F::gather(p, a.sw);
    };
    V acc;
    if (a.average) {
      acc = F::set1(0.0f);
      for (int j = 0; j < a.kw; ++j) acc = F::add(acc, tap(j));
      acc = F::div(acc, F::mul(vcnt_h, F::load(r.cnt + o)));
    } else {
      acc = tap(0);
      for (int j = 1; j < a.kw; ++j) acc = F::max(acc, tap(j));
    }
    F::store(r.out + o, acc);
  }
  if (a.average)
    for (int64_t o = 0; o < a.ow; ++o) {
      if (r.out[o] != r.out[o])
        r.out[o] = average_nan_window(a, plane, oy, o, cnt_h * r.cnt[o]);
      else if (r.out[o] == 0.0f && negative_zero_window(a, plane, oy, o))
        r.out[o] = -0.0f;
    }
  std::memcpy(y, r.out, size_t(a.ow) * sizeof(float));
}

// numpy's pairwise summation of float32 (loops_utils.h.src), which np.mean uses along a
// contiguous axis: under 8 values one after another, up to 128 in 8 interleaved partial
// sums combined as a tree, longer halves (at a multiple of 8) recursively. Plain code: each
// ISA file's flags vectorize the 8 partial sums, lane by lane, in the same order.
inline float pairwise_sum(const float* a, int64_t n) {
  if (n < 8) {
    float res = -0.0f;
    for (int64_t i = 0; i < n; ++i) res += a[i];
    return res;
  }
  if (n <= 128) {
    float r[8];
    for (int j = 0; j < 8; ++j) r[j] = a[j];
    int64_t i = 8;
    for (; i < n - n % 8; i += 8)
      for (int j = 0; j < 8; ++j) r[j] += a[i + j];
    float res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  int64_t n2 = n / 2;
  n2 -= n2 % 8;
  return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

// y[r] = mean of row r (n values): (0 + pairwise sum) / n, as np.mean computes it.
void mean_rows_kernel(const float* x, float* y, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; ++r) y[r] = (0.0f + pairwise_sum(x + r * n, n)) / float(n);
}

// ONNX Runtime's float32 softmax on CPUs with AVX-512F (MLAS: MlasComputeSumExpF32Kernel,
// then a multiply by 1 / sum), element by element with the same roundings: the sum-exp
// exponential (clamp below, 2^k by the rounding-bias trick, a two-part ln 2, the degree-6
// polynomial by fused multiply-adds, p scaled by 2^k with one rounding), the sum in 16
// lanes folded as MLAS folds them. Bit for bit with lowp.ort_math.softmax_rows. W lanes at
// a time (F::scale2 applies the exponent with one rounding: vscalefps, two exact scalings
// and a rounding one, or ldexp); the 16 partial sums are 16 / W vectors, element i going to
// sum i % 16 as in MLAS, and a row's tail adds exact zeros to the sums it does not reach.
template <class F>
inline typename F::V mlas_sum_exp(typename F::V v) {
  // (MLAS adds the bias's negation where mlas_exp_parts subtracts it: the same operation)
  // (NaN stays NaN through the clamp)
  const auto [m, r, p] = mlas_exp_parts<F>(F::max(F::set1(-103.9720840454f), v));
  return F::scale2(F::fma(p, r, F::set1(1.0f)), m);
}

// Subnormal results of vscalefps and vmulps, and subnormal multiplicands, cost a microcode
// assist each on Intel cores (about 40 times the instruction): rows reaching ~87 below
// their maximum (attention scores) took 8 to 10 times as long, in ONNX Runtime as well.
// Rows whose minimum lies more than 60 below the maximum take the two functions below, which
// produce the same roundings (to nearest, ties to even) from normal operands only.

// mlas_sum_exp without subnormal results: q 2^(m + 149) is exact and normal (m >= -150);
// below 2^23 it counts the result's 2^-149 units, rounded to an integer by adding and
// subtracting 2^23 (vscalefps's one rounding), and that integer is the result's bits (2^23:
// 2^-126). Other lanes (normal results, NaN) are scaled as before.
template <class F>
inline typename F::V mlas_sum_exp_tiny(typename F::V v) {
  using V = typename F::V;
  const auto [m, r, p] = mlas_exp_parts<F>(F::max(F::set1(-103.9720840454f), v));
  const V q = F::fma(p, r, F::set1(1.0f));
  const V two23 = F::set1(0x1p23f), zero = F::set1(0.0f);
  const V u = F::scale2(q, F::add(m, F::set1(149.0f)));
  const V k = F::sub(F::add(u, two23), two23);
  const V sub = F::int_bits(F::select_gt(two23, u, k, zero));
  return F::select_gt(two23, u, sub, F::scale2(q, F::select_gt(two23, u, zero, m)));
}

// e * s (s = 1 / sum, normal) rounded once, without a subnormal operand or result: e 2^100
// exactly (a subnormal e plus 2^-126 is exact and normal, times 2^100, minus 2^-26), its
// product with s as hi + lo (the fused multiply-add's exact remainder); a product at or
// above 2^-26 is the normal hi 2^-100, a lower one counts 2^-49 units: hi 2^49 rounded to
// an integer, a tie settled by the sign of lo, as bits.
template <class F>
inline typename F::V mul_tiny(typename F::V e, typename F::V s) {
  using V = typename F::V;
  const V one = F::set1(1.0f), zero = F::set1(0.0f), tn = F::set1(0x1p-126f);
  const V up = F::set1(0x1p100f), two23 = F::set1(0x1p23f), low = F::set1(0x1p-26f);
  const V es = F::sub(F::mul(F::add(e, tn), up), F::set1(0x1p-26f));
  const V en = F::mul(F::select_gt(tn, e, one, e), up);
  const V big_e = F::select_gt(tn, e, es, en);
  const V hi = F::mul(big_e, s);
  const V lo = F::fma(big_e, s, F::neg(hi));
  const V t = F::mul(F::select_gt(low, hi, hi, zero), F::set1(0x1p49f));  // below 2^23
  const V l = F::mul(lo, F::set1(0x1p49f));
  const V k0 = F::sub(F::add(t, two23), two23);
  const V d = F::sub(t, k0);  // in [-0.5, 0.5]; +-0.5 only on a tie
  const V half = F::set1(0x1.fffffep-2f);
  const V inc = F::select_gt(d, half, F::select_gt(l, zero, one, zero), zero);
  const V dec = F::select_gt(F::neg(d), half, F::select_gt(zero, l, one, zero), zero);
  const V k = F::sub(F::add(k0, inc), dec);
  const V sub = F::int_bits(F::select_gt(low, hi, k, zero));
  return F::select_gt(low, hi, sub, F::mul(F::select_gt(low, hi, one, hi), F::set1(0x1p-100f)));
}

// The row maximum lane by lane (the first NaN of a lane kept, ties to the earlier value),
// then over the lanes in order and the values after the last whole vector: which zero or
// NaN a row whose maximum is a zero or NaN takes (the NaN's payload reaches the outputs).
// MLAS's float32 row maximum (MlasReduceMaximumF32KernelAvx512F; lowp.ort_math.mlas_row_max)
// of the n values load(0 .. n - 1), T a float or a vector of independent columns, mx(a, b)
// vmaxps's a > b ? a : b (b on a NaN or a tie): from the lowest float, 64-value steps into
// four 16-lane accumulators, 16-value steps into one, the lanes halved, then one value at a
// time. A NaN survives only from the last value read into its place.
template <class T, class Load, class Max>
T mlas_max(Load load, int64_t n, T lowest, Max mx) {
  T low = lowest;
  int64_t i = 0;
  if (n >= 16) {
    T acc[16];
    for (T& a : acc) a = lowest;
    if (n >= 64) {
      T part[4][16];
      for (auto& q : part)
        for (T& a : q) a = lowest;
      for (; n - i >= 64; i += 64)
        for (int j = 0; j < 4; ++j)
          for (int l = 0; l < 16; ++l) part[j][l] = mx(part[j][l], load(i + 16 * j + l));
      for (int l = 0; l < 16; ++l)
        acc[l] = mx(mx(part[0][l], part[1][l]), mx(part[2][l], part[3][l]));
    }
    for (; n - i >= 16; i += 16)
      for (int l = 0; l < 16; ++l) acc[l] = mx(acc[l], load(i + l));
    for (int half = 8; half >= 2; half /= 2)
      for (int l = 0; l < half; ++l) acc[l] = mx(acc[l], acc[l + half]);
    low = mx(acc[0], acc[1]);
  }
  for (; i < n; ++i) low = mx(low, load(i));
  return low;
}

inline float mlas_row_max(const float* xr, int64_t n) {
  return mlas_max<float>([xr](int64_t i) { return xr[i]; }, n,
                         std::numeric_limits<float>::lowest(),
                         [](float a, float b) { return a > b ? a : b; });
}

template <class F>
float row_max_in_order(const float* xr, int64_t n) {
  using V = typename F::V;
  float mx = xr[0];
  int64_t i = 0;
  if (n >= F::W) {
    V vm = F::load(xr);
    for (i = F::W; i + F::W <= n; i += F::W) vm = F::max_nan(vm, F::load(xr + i));
    float lane[F::W];
    F::store(lane, vm);
    mx = lane[0];
    for (int j = 1; j < F::W; ++j)
      if (lane[j] > mx || lane[j] != lane[j]) mx = (mx != mx) ? mx : lane[j];
  }
  for (; i < n; ++i)
    if (xr[i] > mx || xr[i] != xr[i]) mx = (mx != mx) ? mx : xr[i];
  return mx;
}

// The row's maximum (a NaN by MLAS's rule, mlas_row_max) and the lane-wise minimum of its values (only to pick the
// path), four vectors at a time in four chains, the last whole vector ending at the row's
// end (overlapping values change neither), a row shorter than W in one partial vector. Any
// other maximum is the same number; a zero or NaN is taken again by row_max_in_order.
template <class F>
std::pair<float, typename F::V> row_max_min(const float* xr, int64_t n) {
  using V = typename F::V;
  constexpr int W = F::W;
  constexpr float kInf = std::numeric_limits<float>::infinity();
  V vm, vn;
  if (n < W) {
    vm = F::load_fill(xr, int(n), -kInf);
    vn = F::load_fill(xr, int(n), kInf);
  } else if (n <= 2 * W) {
    const V a = F::load(xr), b = F::load(xr + n - W);
    vm = F::max_nan(a, b);
    vn = F::min(a, b);
  } else {
    V m[4], l[4];
    for (int k = 0; k < 4; ++k) m[k] = l[k] = F::load(xr + std::min<int64_t>(k * W, n - W));
    int64_t i = 4 * W;
    for (; i + 4 * W <= n; i += 4 * W)
      for (int k = 0; k < 4; ++k) {
        const V v = F::load(xr + i + k * W);
        m[k] = F::max_nan(m[k], v);
        l[k] = F::min(l[k], v);
      }
    for (int k = 0; i < n; ++k, i += W) {  // the rest, the last vector ending at n
      const V v = F::load(xr + std::min(i, n - W));
      m[k] = F::max_nan(m[k], v);
      l[k] = F::min(l[k], v);
    }
    vm = F::max_nan(F::max_nan(m[0], m[1]), F::max_nan(m[2], m[3]));
    vn = F::min(F::min(l[0], l[1]), F::min(l[2], l[3]));
  }
  float mx = F::reduce_max(vm);
  if (F::has_nan(vm)) {
    mx = mlas_row_max(xr, n);  // MLAS's NaN rule (docs/operators.md (O127))
  } else if (mx == 0.0f) {
    mx = row_max_in_order<F>(xr, n);
  }
  return {mx, vn};
}

// The 16 partial sums folded as MLAS folds them (F::fold16); a NaN sum again one lane after
// another in the same order, which decides the NaN's payload.
template <class F>
float fold_sums(const typename F::V* acc) {
  const float s = F::fold16(acc);
  if (s == s) return s;
  constexpr int kVecs = 16 / F::W;
  float lanes[16];
  for (int k = 0; k < kVecs; ++k) F::store(lanes + k * F::W, acc[k]);
  float t[8];
  for (int j = 0; j < 8; ++j) t[j] = lanes[8 + j] + lanes[j];
  return ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
}

// A row whose sum of exponentials is NaN (docs/operators.md (O139)), its n values at stride
// sx, written at stride sy, every NaN chosen explicitly (a compiler may swap the operands of a
// commutative add, which picks another NaN): (-max) + x is the quieted -max of a NaN maximum,
// else x's own NaN quieted, else the sum (inf - inf: the default NaN); its exponential keeps
// a NaN and gives +inf for +inf; each of the 16 lanes keeps its first NaN, then
// t_i = a_(8+i) + a_i and the pairs of MLAS's fold keep the first operand's. Softmax is that
// NaN everywhere (1 / sum first in the multiply); LogSoftmax an element's own NaN, else
// logf(sum)'s.
// a's NaN (quieted), else b's, else 0 (no NaN)
inline float first_nan(float a, float b) {
  return a != a ? quieted(a) : b != b ? quieted(b) : 0.0f;
}

inline void softmax_nan_row(const float* x, int64_t sx, float* y, int64_t sy, int64_t n,
                            float mx, bool log) {
  const float neg = -mx;
  auto shifted = [&](int64_t i) {
    const float v = x[i * sx];
    return mx != mx ? quieted(neg) : v != v ? quieted(v) : neg + v;
  };
  float lane[16] = {};
  for (int64_t i = 0; i < n; ++i) lane[i % 16] = first_nan(lane[i % 16], shifted(i));
  float t[8];
  for (int j = 0; j < 8; ++j) t[j] = first_nan(lane[8 + j], lane[j]);
  const float s = first_nan(first_nan(first_nan(t[0], t[1]), first_nan(t[2], t[3])),
                            first_nan(first_nan(t[4], t[5]), first_nan(t[6], t[7])));
  const float log_sum = quieted(std::log(s));
  for (int64_t i = 0; i < n; ++i) {
    const float v = shifted(i);
    y[i * sy] = !log ? s : v != v ? v : log_sum;
  }
}

// Pass 1 of a row: e = the sum-exp exponential of x + (-max) (Tiny: without subnormal
// results) stored in y (Log: x + (-max) stored), summed in 16 lanes (element i to sum i % 16);
// a partial last vector with its lanes past the row zero. Returns the folded sum.
template <class F, bool Tiny, bool Log>
float row_sum_exp(const float* xr, float* yr, int64_t n, float mx) {
  using V = typename F::V;
  constexpr int kLanes = 16, kVecs = kLanes / F::W;
  const V neg = F::set1(-mx);
  auto exp = [](V v) { return Tiny ? mlas_sum_exp_tiny<F>(v) : mlas_sum_exp<F>(v); };
  V acc[kVecs];
  for (V& a : acc) a = F::set1(0.0f);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int k = 0; k < kVecs; ++k) {
      const V shifted = F::add(neg, F::load(xr + i + k * F::W));
      const V e = exp(shifted);
      F::store(yr + i + k * F::W, Log ? shifted : e);
      acc[k] = F::add(acc[k], e);
    }
  for (int k = 0; i < n; ++k, i += F::W) {
    const int c = int(std::min<int64_t>(F::W, n - i));
    if (c == F::W) {
      const V shifted = F::add(neg, F::load(xr + i));
      const V e = exp(shifted);
      F::store(yr + i, Log ? shifted : e);
      acc[k] = F::add(acc[k], e);
      continue;
    }
    const V shifted = F::add(neg, F::load_fill(xr + i, c, 0.0f));
    const V e = F::keep_n(exp(shifted), c);
    F::store_n(yr + i, Log ? shifted : e, c);
    acc[k] = F::add(acc[k], e);
  }
  return fold_sums<F>(acc);
}

// Pass 2 of a row: y = y * (1 / s) (Tiny: each product rounded once without subnormal
// operands), or with `log` y = y - logf(s) (the C library's logf, as ONNX Runtime's
// LogSoftmax takes it).
template <class F>
void row_scale(float* yr, int64_t n, float s, bool tiny, bool log) {
  using V = typename F::V;
  const V k = F::set1(log ? std::log(s) : 1.0f / s);
  auto op = [&](V v) {
    if (log) return F::sub(v, k);
    return tiny ? mul_tiny<F>(v, k) : F::mul(k, v);  // (a NaN sum's NaN first, as MLAS)
  };
  int64_t i = 0;
  for (; i + F::W <= n; i += F::W) F::store(yr + i, op(F::load(yr + i)));
  if (i < n) {
    const int c = int(n - i);
    F::store_n(yr + i, op(F::load_fill(yr + i, c, 0.0f)), c);
  }
}

// Pass 1 for the row's path: tiny (some value more than 60 below the maximum, or a NaN
// maximum) and log.
template <class F>
float row_pass1(const float* xr, float* yr, int64_t n, float mx, bool tiny, bool log) {
  if (tiny) {
    return log ? row_sum_exp<F, true, true>(xr, yr, n, mx)
               : row_sum_exp<F, true, false>(xr, yr, n, mx);
  }
  return log ? row_sum_exp<F, false, true>(xr, yr, n, mx)
             : row_sum_exp<F, false, false>(xr, yr, n, mx);
}

template <class F>
void softmax_rows_kernel(const float* x, float* y, int64_t rows, int64_t n, bool log) {
  const bool avoid = softmax_subnormal_path() == SubnormalPath::kAvoid;
  for (int64_t row = 0; row < rows; ++row) {
    const float* xr = x + row * n;
    float* yr = y + row * n;
    // (which zero of +-0 is the maximum does not matter: x - max is the same number either
    // way, up to the sign of a zero, which the exponential ignores)
    const auto [mx, least] = row_max_min<F>(xr, n);
    // min + (-max) >= -60 lane by lane (the rounded sum grows with min); a NaN maximum fails
    // (either path then gives the NaN row)
    const bool tiny = avoid && !F::all_ge(F::add(least, F::set1(-mx)), F::set1(-60.0f));
    const float s = row_pass1<F>(xr, yr, n, mx, tiny, log);
    if (s != s) {
      softmax_nan_row(xr, 1, yr, 1, n, mx, log);
      continue;
    }
    row_scale<F>(yr, n, s, tiny, log);
  }
}

// The softmax of softmax_rows_kernel over a non-last axis: `cols` columns of n values each,
// column c's values at x[i * inner + c] (i < n), W columns per vector, one column per lane.
// Every lane repeats the row kernel's arithmetic on its column: the NaN-propagating maximum,
// x + (-max), the sum-exp exponential, the 16 partial sums (value i to sum i % 16, in order,
// from +0) folded as MLAS folds them, then y = e * (1 / sum) (log: (x - max) - logf(sum)). A
// last block of fewer than W columns goes through zero-padded copies (lanes are independent).
// Each lane's maximum over n values at stride sx: four chains of values i % 4, then
// combined; where a lane holds a NaN, every lane again by MLAS's rule (mlas_max: the NaN
// only from the last value read into its place, (O127)). (Which zero a zero maximum is
// changes no output: x - max is the same number up to the sign of a zero.)
template <class F>
typename F::V column_max(const float* x, int64_t sx, int64_t n) {
  using V = typename F::V;
  V m[4];
  for (int k = 0; k < 4; ++k) m[k] = F::load(x + std::min<int64_t>(k, n - 1) * sx);
  int64_t i = 4;
  for (; i + 4 <= n; i += 4)
    for (int k = 0; k < 4; ++k) m[k] = F::max_nan(m[k], F::load(x + (i + k) * sx));
  for (; i < n; ++i) m[0] = F::max_nan(m[0], F::load(x + i * sx));
  V mx = F::max_nan(F::max_nan(m[0], m[1]), F::max_nan(m[2], m[3]));
  if (!F::has_nan(mx)) return mx;
  // MLAS's NaN rule per column (ONNX Runtime transposes the axis last first; (O127))
  return mlas_max<V>([x, sx](int64_t j) { return F::load(x + j * sx); }, n,
                     F::set1(std::numeric_limits<float>::lowest()),
                     [](V a, V b) { return F::max(a, b); });
}

template <class F>
void softmax_block(const float* x, int64_t sx, float* y, int64_t sy, int64_t n, bool log) {
  using V = typename F::V;
  const V mx = column_max<F>(x, sx, n);
  const V neg = F::neg(mx);  // -max as MLAS negates it: a NaN maximum changes sign
  V acc[16];
  for (V& a : acc) a = F::set1(0.0f);
  for (int64_t i0 = 0; i0 < n; i0 += 16) {
    const int64_t len = std::min<int64_t>(16, n - i0);
    for (int64_t k = 0; k < len; ++k) {
      const int64_t i = i0 + k;
      const V shifted = F::add(neg, F::load(x + i * sx));
      const V e = mlas_sum_exp<F>(shifted);
      F::store(y + i * sy, log ? shifted : e);
      acc[k] = F::add(acc[k], e);
    }
  }
  V t[8];
  for (int j = 0; j < 8; ++j) t[j] = F::add(acc[8 + j], acc[j]);
  const V s = F::add(F::add(F::add(t[0], t[1]), F::add(t[2], t[3])),
                     F::add(F::add(t[4], t[5]), F::add(t[6], t[7])));
  if (log) {  // the C library's logf per lane
    float lane[F::W];
    F::store(lane, s);
    for (int j = 0; j < F::W; ++j) lane[j] = std::log(lane[j]);
    const V log_sum = F::load(lane);
    for (int64_t i = 0; i < n; ++i) F::store(y + i * sy, F::sub(F::load(y + i * sy), log_sum));
  } else {
    const V scale = F::div(F::set1(1.0f), s);
    for (int64_t i = 0; i < n; ++i) F::store(y + i * sy, F::mul(scale, F::load(y + i * sy)));
  }
  if (!F::has_nan(s)) return;
  float sum[F::W], max[F::W];
  F::store(sum, s);
  F::store(max, mx);
  for (int j = 0; j < F::W; ++j)
    if (sum[j] != sum[j]) softmax_nan_row(x + j, sx, y + j, sy, n, max[j], log);
}

template <class F>
void softmax_cols_kernel(const float* x, float* y, int64_t n, int64_t inner, int64_t cols,
                         bool log) {
  int64_t c = 0;
  for (; c + F::W <= cols; c += F::W) softmax_block<F>(x + c, inner, y + c, inner, n, log);
  if (c == cols) return;
  const int64_t tail = cols - c;
  std::vector<float> bx(size_t(n * F::W), 0.0f), by(size_t(n * F::W));
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(bx.data() + i * F::W, x + i * inner + c, size_t(tail) * sizeof(float));
  softmax_block<F>(bx.data(), F::W, by.data(), F::W, n, log);
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(y + i * inner + c, by.data() + i * F::W, size_t(tail) * sizeof(float));
}

// The NaN of one output of MLAS's SGEMM kernel over a K block whose chain of fused
// multiply-adds from +0 (acc = a[k * sa] * b[k * sb] + acc for k < kb) came out NaN, as
// ONNX Runtime's AVX-512 kernel (this CPU's) hands it on. x86's FMA passes on the first
// NaN of its product's operands, then of the addend, quieted (measured); so each step's
// NaN operand replaces the running sum's (the last one met is kept), and where a[k] and
// b[k] are both NaNs, a[k]'s in a strip of two vectors (vfmadd231ps acc, a broadcast, b)
// and b[k]'s in the last strip of at most 16 columns (vfmadd231ps acc, b, a{1to16}:
// `b_first`); with no NaN operand (inf * 0, inf - inf) x86's default NaN. The plain
// chain's NaN is the compiler's operand order (and libm's fmaf on the scalar path), which
// differs between the paths.
inline float sgemm_chain_nan(const float* a, int64_t sa, const float* b, int64_t sb,
                             int64_t kb, bool b_first) {
  float acc = 0.0f;
  for (int64_t k = 0; k < kb; ++k) {
    const float x = a[k * sa], y = b[k * sb];
    if (x != x || y != y) {
      acc = quieted(b_first ? (y != y ? y : x) : (x != x ? x : y));
    } else if (acc == acc) {
      acc = std::fmaf(x, y, acc);
      if (acc != acc) {
        const uint32_t indefinite = 0xFFC00000u;
        std::memcpy(&acc, &indefinite, 4);
      }
    }
  }
  return acc;
}

// MLAS's SGEMM kernel on one K block (float_kernels.h): register tiles of up to 8 rows by
// two vectors, each accumulator a chain of fused multiply-adds in k order from +0, then
// scaled into c as MLAS stores it (a multiply for the first block, a fused multiply-add
// after: a NaN sum's NaN first). The tile shape changes no sum; the sizes are template
// parameters so that the accumulators stay in registers. Where a sum came out NaN (a NaN
// in the tile's accumulators' total, checked once a block) its NaN lanes are made again
// by sgemm_chain_nan (`b_first`: the tile lies in the columns MLAS's AVX-512 kernel
// computes one vector at a time), so every path hands on the same NaN.
template <class F, int RM, int NV>
void sgemm_tile(const float* a, int64_t sa_m, int64_t sa_k, const float* bp, int64_t ldk,
                float* c, int64_t ldc, int64_t cols, int64_t kb, float alpha, bool first,
                bool b_first) {
  using V = typename F::V;
  constexpr int W = F::W;
  V acc[RM][NV];
  for (int r = 0; r < RM; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = F::set1(0.0f);
  for (int64_t k = 0; k < kb; ++k) {
    V b[NV];
    // the panel's row four k ahead into L1, as MLAS's kernel fetches it (the panel streams
    // from L2; without it the loads stalled the loop)
    if constexpr (W > 1)
      for (int v = 0; v < NV; ++v) __builtin_prefetch(bp + (k + 4) * ldk + v * W, 0, 3);
    for (int v = 0; v < NV; ++v) b[v] = F::load(bp + k * ldk + v * W);
    const float* ak = a + k * sa_k;
    for (int r = 0; r < RM; ++r) {
      const V x = F::set1(ak[r * sa_m]);
      for (int v = 0; v < NV; ++v) acc[r][v] = F::fma(x, b[v], acc[r][v]);
    }
  }
  V total = acc[0][0];  // NaN when a sum is (or, rarely, when infinities cancel)
  for (int r = 0; r < RM; ++r)
    for (int v = 0; v < NV; ++v)
      if (r + v > 0) total = F::add(total, acc[r][v]);
  if (F::has_nan(total)) {
    for (int r = 0; r < RM; ++r)
      for (int v = 0; v < NV; ++v) {
        float lanes[W];
        F::store(lanes, acc[r][v]);
        for (int l = 0; l < W && v * W + l < cols; ++l)
          if (lanes[l] != lanes[l])
            lanes[l] = sgemm_chain_nan(a + r * sa_m, sa_k, bp + v * W + l, ldk, kb, b_first);
        acc[r][v] = F::load(lanes);
      }
  }
  const V va = F::set1(alpha);
  for (int r = 0; r < RM; ++r) {
    float* crow = c + r * ldc;
    if (cols == int64_t(NV) * W) {
      for (int v = 0; v < NV; ++v) {
        const V y = first ? F::mul(acc[r][v], va)
                          : F::fma(acc[r][v], va, F::load(crow + v * W));
        F::store(crow + v * W, y);
      }
      continue;
    }
    float tail[NV * W];
    if (!first) std::memcpy(tail, crow, size_t(cols) * sizeof(float));
    for (int v = 0; v < NV; ++v) {
      const V y = first ? F::mul(acc[r][v], va) : F::fma(acc[r][v], va, F::load(tail + v * W));
      F::store(tail + v * W, y);
    }
    std::memcpy(crow, tail, size_t(cols) * sizeof(float));
  }
}

template <class F>
using SgemmTileFn = void (*)(const float*, int64_t, int64_t, const float*, int64_t, float*,
                             int64_t, int64_t, int64_t, float, bool, bool);

template <class F, int NV, size_t... R>
constexpr std::array<SgemmTileFn<F>, sizeof...(R)> sgemm_tile_column(std::index_sequence<R...>) {
  return {&sgemm_tile<F, int(R) + 1, NV>...};
}

// Rows of a tile: at most 12 on AVX-512 (24 accumulators of its 32 registers, as MLAS's
// kernel takes 12 rows), else 8. More rows a tile read the panel fewer times (16 -> 11
// passes at M = 128); the sums are the same.
template <class F>
constexpr int sgemm_tile_rows() {
  return F::W == 16 ? 12 : 8;
}

template <class F>
void sgemm_block_kernel(const float* a, int64_t sa_m, int64_t sa_k, const float* bp,
                        int64_t ldb, float* c, int64_t ldc, int64_t m, int64_t n, int64_t kb,
                        float alpha, bool first) {
  constexpr int W = F::W, RM = sgemm_tile_rows<F>();
  static constexpr auto two = sgemm_tile_column<F, 2>(std::make_index_sequence<RM>());
  static constexpr auto one = sgemm_tile_column<F, 1>(std::make_index_sequence<RM>());
  // rows outside, strips inside: a tile's rows of A stay in L1 while every strip of the
  // panel (in L2) passes under them (the other order streamed all of A once per strip)
  // rows split evenly between the fewest tiles (16 rows: 8 + 8, not 12 + 4)
  // MLAS's AVX-512 kernel takes 32 columns at a time while more than 16 are left, then the
  // rest (at most 16) one vector at a time: from `single` on (the panels begin at multiples
  // of 32 columns, as MLAS's blocks of N); every path's strips of 2W columns start there too
  const int64_t rest = n % 32, single = rest > 0 && rest <= 16 ? n - rest : n;
  for (int64_t i0 = 0, rows = 0; i0 < m; i0 += rows) {
    const int64_t left = m - i0, tiles = (left + RM - 1) / RM;
    rows = (left + tiles - 1) / tiles;
    for (int64_t j0 = 0; j0 < n; j0 += 2 * W) {
      const bool pair = n - j0 > W;
      const int64_t cols = std::min<int64_t>(n - j0, pair ? 2 * W : W);
      // (a packed strip's rows are 2W floats apart; B read in place: its own rows, ldb)
      const float* strip = ldb > 0 ? bp + j0 : bp + (j0 / (2 * W)) * kb * (2 * W);
      (pair ? two : one)[rows - 1](a + i0 * sa_m, sa_m, sa_k, strip, ldb > 0 ? ldb : 2 * W,
                                   c + i0 * ldc + j0, ldc, cols, kb, alpha, first,
                                   j0 >= single);
    }
  }
}

// Binary rows (float_elementwise.h FloatBinaryOp).
template <int Op>
inline float binary_one(float a, float b) {
  if constexpr (Op == kFloatAdd) return a + b;
  else if constexpr (Op == kFloatSub) return a - b;
  else if constexpr (Op == kFloatMul) return a * b;
  else if constexpr (Op == kFloatDiv) return a / b;
  else if constexpr (Op == kFloatMax) return (std::isnan(a) || a > b) ? a : b;
  else if constexpr (Op == kFloatMin) return (std::isnan(a) || a < b) ? a : b;
  else if constexpr (Op == kFloatClipLow) return a < b ? b : a;
  else if constexpr (Op == kFloatClipHigh) return b < a ? b : a;
  else {
    // both sides computed, then selected: no branch on the sign (which mispredicts on real
    // data and kept the loop scalar: 6 ns a value); the same value either way
    const float scaled = a * b;
    return a >= 0.0f ? a : scaled;
  }
}

template <class F, int Op>
inline typename F::V binary_vec(typename F::V a, typename F::V b) {
  if constexpr (Op == kFloatAdd) return F::add(a, b);
  else if constexpr (Op == kFloatSub) return F::sub(a, b);
  else if constexpr (Op == kFloatMul) return F::mul(a, b);
  else return F::div(a, b);
}

// The elements [i, n) of a binary row one at a time.
template <int Op>
void binary_row_rest(const float* a, int64_t sa, const float* b, int64_t sb, float* y,
                     int64_t i, int64_t n) {
  if (sa == 1 && sb == 1) {
    for (; i < n; ++i) y[i] = binary_one<Op>(a[i], b[i]);
  } else if (sa == 1 && sb == 0) {
    const float v = *b;
    for (; i < n; ++i) y[i] = binary_one<Op>(a[i], v);
  } else if (sa == 0 && sb == 1) {
    const float v = *a;
    for (; i < n; ++i) y[i] = binary_one<Op>(v, b[i]);
  } else {
    for (; i < n; ++i) y[i] = binary_one<Op>(a[i * sa], b[i * sb]);
  }
}

// Add, Sub, Mul and Div on F's vectors (the same IEEE operation per lane) where each
// operand is contiguous or one value, the tail and every other case one element at a time.
// Each vector is loaded before its result is stored, so y may be a or b. Returns whether
// a result of Add, Sub, Mul or Div may be a NaN (one was a NaN or an infinity: r - r has
// bits; or'ed, a chain of one-cycle steps), true for the other operators.
template <class F, int Op>
bool binary_row_op(const float* a, int64_t sa, const float* b, int64_t sb, float* y,
                   int64_t n) {
  constexpr int W = F::W;
  using V = typename F::V;
  int64_t i = 0;
  if constexpr (Op <= kFloatDiv) {
    V seen = F::set1(0.0f);
    auto put = [&](int64_t at, V r) {
      F::store(y + at, r);
      seen = F::or_bits(seen, F::sub(r, r));
    };
    if (n >= W && sa == 1 && sb == 1) {
      for (; i + W <= n; i += W) put(i, binary_vec<F, Op>(F::load(a + i), F::load(b + i)));
    } else if (n >= W && sa == 1 && sb == 0) {
      const V v = F::set1(*b);
      for (; i + W <= n; i += W) put(i, binary_vec<F, Op>(F::load(a + i), v));
    } else if (n >= W && sa == 0 && sb == 1) {
      const V v = F::set1(*a);
      for (; i + W <= n; i += W) put(i, binary_vec<F, Op>(v, F::load(b + i)));
    }
    const int64_t tail = i;
    binary_row_rest<Op>(a, sa, b, sb, y, i, n);
    float lanes[W];
    F::store(lanes, seen);
    uint32_t bits = 0;
    for (int k = 0; k < W; ++k) {
      uint32_t u;
      std::memcpy(&u, &lanes[k], sizeof u);
      bits |= u;
    }
    for (int64_t k = tail; k < n; ++k) bits |= std::isfinite(y[k]) ? 0u : 1u;
    return bits != 0;
  } else {
    binary_row_rest<Op>(a, sa, b, sb, y, i, n);
    return true;
  }
}

template <class F>
bool binary_row_kernel(int op, const float* a, int64_t sa, const float* b, int64_t sb, float* y,
                       int64_t n) {
  switch (op) {
    case kFloatAdd: return binary_row_op<F, kFloatAdd>(a, sa, b, sb, y, n);
    case kFloatSub: return binary_row_op<F, kFloatSub>(a, sa, b, sb, y, n);
    case kFloatMul: return binary_row_op<F, kFloatMul>(a, sa, b, sb, y, n);
    case kFloatDiv: return binary_row_op<F, kFloatDiv>(a, sa, b, sb, y, n);
    case kFloatMax: return binary_row_op<F, kFloatMax>(a, sa, b, sb, y, n);
    case kFloatMin: return binary_row_op<F, kFloatMin>(a, sa, b, sb, y, n);
    case kFloatClipLow: return binary_row_op<F, kFloatClipLow>(a, sa, b, sb, y, n);
    case kFloatClipHigh: return binary_row_op<F, kFloatClipHigh>(a, sa, b, sb, y, n);
    default: return binary_row_op<F, kFloatPRelu>(a, sa, b, sb, y, n);
  }
}

// Integer code on purpose: each path's translation unit vectorizes it with its own
// instructions (512-bit, 256-bit, or baseline 128-bit compares), the same keys everywhere.
inline void max_keys_kernel(const float* x, int64_t rows, int64_t stride, int64_t w,
                            int32_t* best, int32_t* mag) {
  for (int64_t r = 0; r < rows; ++r, x += stride)
    for (int64_t j = 0; j < w; ++j) {
      int32_t b;
      std::memcpy(&b, x + j, sizeof b);
      const int32_t key = b ^ ((b >> 31) & 0x7fffffff), m = b & 0x7fffffff;
      best[j] = key > best[j] ? key : best[j];
      mag[j] = m > mag[j] ? m : mag[j];
    }
}

template <class D, class F>
constexpr FloatKernels float_kernels(const char* name) {
  return FloatKernels{name,           F::W,         unary_kernel<D, F>, pool_row_kernel<F>,
                      mean_rows_kernel, softmax_rows_kernel<F>, sgemm_block_kernel<F>,
                      binary_row_kernel<F>, softmax_cols_kernel<F>, sincos_kernel,
                      max_keys_kernel};
}

}  // namespace
}  // namespace lowp
