// Microkernel: one row of the quantized Add / Mul (qbinary.h) with AVX-512, 64 outputs per
// step; an operand with stride 0 is one broadcast value. The same float32 operations as the
// portable row, in the same order; the conversion rounds half to even.
#include <immintrin.h>

#include <algorithm>

#include "qbinary.h"

namespace lowp {

namespace {

template <bool SA, bool SB, bool MUL>
void row_t(const QBinaryArgs& p, const uint8_t* a, int64_t sa, const uint8_t* b, int64_t sb,
           uint8_t* y, int64_t n) {
  const __m512 ma = _mm512_set1_ps(p.ma), mb = _mm512_set1_ps(p.mb), c = _mm512_set1_ps(p.c);
  const __m512 za = _mm512_set1_ps(float(p.za)), zb = _mm512_set1_ps(float(p.zb));
  const __m512 lo = _mm512_set1_ps(float(p.qmin)), hi = _mm512_set1_ps(float(p.qmax));
  auto value = [](const uint8_t* x, bool is_signed) {
    return is_signed ? float(int8_t(*x)) : float(*x);
  };
  const __m512 ca = _mm512_set1_ps(value(a, SA)), cb = _mm512_set1_ps(value(b, SB));
  auto load = [](const uint8_t* x, __mmask16 k, bool is_signed) {
    const __m128i r = _mm_maskz_loadu_epi8(k, x);
    return _mm512_cvtepi32_ps(is_signed ? _mm512_cvtepi8_epi32(r) : _mm512_cvtepu8_epi32(r));
  };
  auto one = [&](int64_t i, __mmask16 k) {
    const __m512 va = sa ? load(a + i, k, SA) : ca;
    const __m512 vb = sb ? load(b + i, k, SB) : cb;
    __m512 s;
    if constexpr (MUL) {
      s = _mm512_mul_ps(_mm512_sub_ps(va, za), _mm512_sub_ps(vb, zb));
      s = _mm512_add_ps(_mm512_mul_ps(s, ma), c);
    } else {
      s = _mm512_fmadd_ps(va, ma, _mm512_fmadd_ps(vb, mb, c));
    }
    s = _mm512_min_ps(_mm512_max_ps(s, lo), hi);
    return _mm512_cvtepi32_epi8(
        _mm512_cvt_roundps_epi32(s, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  };
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m128i y0 = one(i, 0xffff), y1 = one(i + 16, 0xffff), y2 = one(i + 32, 0xffff),
                  y3 = one(i + 48, 0xffff);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), y0);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i + 16), y1);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i + 32), y2);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i + 48), y3);
  }
  for (; i < n; i += 16) {
    const int left = int(std::min<int64_t>(16, n - i));
    const __mmask16 k = static_cast<__mmask16>(left >= 16 ? 0xffff : (1u << left) - 1);
    _mm_mask_storeu_epi8(y + i, k, one(i, k));
  }
}

template <bool SA, bool SB>
void row_signs(const QBinaryArgs& p, const uint8_t* a, int64_t sa, const uint8_t* b, int64_t sb,
               uint8_t* y, int64_t n) {
  if (p.mul)
    row_t<SA, SB, true>(p, a, sa, b, sb, y, n);
  else
    row_t<SA, SB, false>(p, a, sa, b, sb, y, n);
}

}  // namespace

void qbinary_row_avx512(const QBinaryArgs& p, const uint8_t* a, int64_t sa, const uint8_t* b,
                        int64_t sb, uint8_t* y, int64_t n) {
  if ((sa != 0 && sa != 1) || (sb != 0 && sb != 1) || n <= 0) {
    qbinary_row_portable(p, a, sa, b, sb, y, n);
    return;
  }
  if (p.a_signed)
    p.b_signed ? row_signs<true, true>(p, a, sa, b, sb, y, n)
               : row_signs<true, false>(p, a, sa, b, sb, y, n);
  else
    p.b_signed ? row_signs<false, true>(p, a, sa, b, sb, y, n)
               : row_signs<false, false>(p, a, sa, b, sb, y, n);
}

}  // namespace lowp
