// Step 1 of lowp.ops.matmul_nbits (quantize_blocks) for one block of B values: MLAS's
// QuantizeARow_CompInt8 on the AVX-512 dispatch, shared by the MatMulNBits kernels of every
// block length (matmul_nbits.h).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "float_nan.h"

#if defined(__AVX512VNNI__)
#include <immintrin.h>
#endif

namespace lowp {

// x86 maxps(a, b): a > b ? a : b, so b wherever either is a NaN.
inline float nbits_max_ps(float a, float b) { return a > b ? a : b; }

// The codes of one block of x (n valid values, zero padded) and its scale amax / 127. amax
// folds 16 maxps lanes as MLAS does (lane l: |x[l]|, then maxps with |x[l + 16]|, ... for
// the 16-value chunks the block holds; a NaN met as the first operand is dropped); a code
// is the low byte of the product's int32 conversion, so a NaN, an infinity or |x| >= 2^31
// is 0 and a larger value wraps.
template <int B>
inline float nbits_quantize_block(const float* x, int64_t n, int8_t* q) {
  float a[B];
  for (int i = 0; i < B; ++i) a[i] = i < n ? x[i] : 0.0f;
  float lane[16];
  for (int l = 0; l < 16; ++l) lane[l] = std::fabs(a[l]);
  for (int c = 16; c < B; c += 16)
    if (n > c)
      for (int l = 0; l < 16; ++l) lane[l] = nbits_max_ps(lane[l], std::fabs(a[l + c]));
  for (int l = 0; l < 8; ++l) lane[l] = nbits_max_ps(lane[l + 8], lane[l]);
  for (int l = 0; l < 4; ++l) lane[l] = nbits_max_ps(lane[l + 4], lane[l]);
  for (int l = 0; l < 2; ++l) lane[l] = nbits_max_ps(lane[l], lane[l + 2]);
  const float amax = nbits_max_ps(lane[0], lane[1]);
  const float inverse = amax != 0.0f ? 127.0f / amax : 0.0f;
  // selects only, so that the loop vectorizes: round half to even (|v| + 2^23 has no
  // fraction bits; |v| >= 2^23 has none either); NaN, infinities and |v| >= 2^31 (INT32_MIN
  // in MLAS, low byte 0) go to 0 before the conversion
  for (int i = 0; i < B; ++i) {
    const float v = a[i] * inverse, m = std::fabs(v);
    const float r = m < 8388608.0f ? (m + 8388608.0f) - 8388608.0f : m;
    const float c = m < 2147483648.0f ? std::copysign(r, v) : 0.0f;
    q[i] = int8_t(uint8_t(uint32_t(int32_t(c))));
  }
  return amax / 127.0f;
}

// Step 5's zero-point term, fma(a, b, c) with ONNX Runtime's NaN: of several NaNs b's,
// then a's, then c's, quieted (docs/operators.md (O220))
inline float nbits_zero_term_fma(float a, float b, float c) {
  if (b != b) return quieted(b);
  if (a != a) return quieted(a);
  if (c != c) return quieted(c);
  return std::fma(a, b, c);
}

// Step 5's last addition, z + v as ONNX Runtime's kernel adds them: of two NaNs the
// zero-point term z's (quieted), then v's (docs/operators.md (O220))
inline float nbits_zero_term_add(float z, float v) { return first_nan_add(z, v); }

#if defined(__AVX512VNNI__)
// Step 5 on 16 columns: the zero-point term z, the blocks' fma(a, b, z) in order with
// ONNX Runtime's NaN (of several NaNs b's, then a's, then z's; checked only where a block's
// result is NaN), then y = z + v with z's NaN first, stored where `valid`
// (docs/operators.md (O220)); the vector form of nbits_zero_term_fma and nbits_zero_term_add
inline void nbits_zero_term_store16(const float* ablk, const float* bb, int64_t blocks,
                                    __m512 v, __mmask16 valid, float* y) {
  const __m512i quiet = _mm512_set1_epi32(0x00400000);
  __m512 z = _mm512_setzero_ps();
  for (int64_t b = 0; b < blocks; ++b) {
    const __m512 av = _mm512_set1_ps(ablk[size_t(b)]), bv = _mm512_loadu_ps(bb + b * 16);
    __m512 r = _mm512_fmadd_ps(av, bv, z);
    if (_mm512_cmp_ps_mask(r, r, _CMP_UNORD_Q))     // (a NaN operand makes r NaN)
      for (const __m512 x : {z, av, bv})
        r = _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q),
                               _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(x),
                                                                   quiet)));
    z = r;
  }
  const __mmask16 z_nan = _mm512_cmp_ps_mask(z, z, _CMP_UNORD_Q);
  const __m512 z_quiet = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(z), quiet));
  _mm512_mask_storeu_ps(y, valid, _mm512_mask_mov_ps(_mm512_add_ps(z, v), z_nan, z_quiet));
}
#endif

}  // namespace lowp
