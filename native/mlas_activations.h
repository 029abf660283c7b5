// ONNX Runtime's float32 logistic and tanh (MLAS's rational forms, lowp.ort_math), written
// once over a vector traits class V with set1, mul, add, div, fma (one rounding), min and max
// (NaN kept from the second operand, as minps/maxps): the argument clamped, a Horner
// polynomial in x^2 by fused multiply-adds over another; the logistic's result clamped at 0
// only, as MLAS's x86-64 kernel does. Used by the float glue (float_impl.h) and the LSTM
// recurrence (recurrent_impl.h), so that both are bit for bit ONNX Runtime's.
#pragma once

namespace lowp {
namespace {

// the rational tanh's numerator and denominator coefficients (MLAS's and, evaluated with
// every operation rounded, deepcpu's: recurrent_impl.h), highest power first, in x^2
const float kTanhP[] = {float(-2.76076847742355e-16), float(2.00018790482477e-13),
                        float(-8.60467152213735e-11), float(5.12229709037114e-08),
                        float(1.48572235717979e-05),  float(6.37261928875436e-04),
                        float(4.89352455891786e-03)};
const float kTanhQ[] = {float(1.19825839466702e-06), float(1.18534705686654e-04),
                        float(2.26843463243900e-03), float(4.89352518554385e-03)};

template <class T>
inline typename T::V mlas_horner(const float* c, int n, typename T::V t) {
  typename T::V r = T::fma(t, T::set1(c[0]), T::set1(c[1]));
  for (int i = 2; i < n; ++i) r = T::fma(r, t, T::set1(c[i]));
  return r;
}

template <class T>
inline typename T::V mlas_clamp(typename T::V x, float b) {
  return T::min(T::set1(b), T::max(T::set1(-b), x));
}

template <class T>
inline typename T::V mlas_tanh(typename T::V x) {
  const typename T::V v = mlas_clamp<T>(x, 9.0f);
  const typename T::V s = T::mul(v, v);
  return T::div(T::mul(mlas_horner<T>(kTanhP, 7, s), v), mlas_horner<T>(kTanhQ, 4, s));
}

template <class T>
inline typename T::V mlas_logistic(typename T::V x) {
  static const float p[] = {float(4.37031012579801e-11), float(1.15627324459942e-07),
                            float(6.08574864600143e-05), float(8.51377133304701e-03),
                            float(2.48287947061529e-01)};
  static const float q[] = {float(6.10247389755681e-13), float(5.76102136993427e-09),
                            float(6.29106785017040e-06), float(1.70198817374094e-03),
                            float(1.16817656904453e-01), float(9.93151921023180e-01)};
  const typename T::V v = mlas_clamp<T>(x, 18.0f);
  const typename T::V s = T::mul(v, v);
  const typename T::V r = T::div(T::mul(mlas_horner<T>(p, 5, s), v), mlas_horner<T>(q, 6, s));
  return T::max(T::set1(0.0f), T::add(r, T::set1(0.5f)));
}

}  // namespace
}  // namespace lowp
