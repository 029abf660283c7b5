// Microkernel: 256-entry byte lookup with AVX-512 VBMI. vpermi2b looks 64 indices up in a
// 128-byte table (bit 6 of each index picks the register); two of them cover both halves
// and bit 7 chooses between their results.
#include <immintrin.h>

#include <cstdint>

#include "qmatmul_rows.h"

namespace lowp {

void lut8_vbmi(const uint8_t* x, const uint8_t* table, uint8_t* y, int64_t n) {
  const __m512i t0 = _mm512_loadu_si512(table), t1 = _mm512_loadu_si512(table + 64);
  const __m512i t2 = _mm512_loadu_si512(table + 128), t3 = _mm512_loadu_si512(table + 192);
  auto look = [&](__m512i v) {
    const __m512i lo = _mm512_permutex2var_epi8(t0, v, t1);
    const __m512i hi = _mm512_permutex2var_epi8(t2, v, t3);
    return _mm512_mask_blend_epi8(_mm512_movepi8_mask(v), lo, hi);
  };
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) _mm512_storeu_si512(y + i, look(_mm512_loadu_si512(x + i)));
  if (i < n) {
    const __mmask64 k = _bzhi_u64(~uint64_t(0), unsigned(n - i));
    _mm512_mask_storeu_epi8(y + i, k, look(_mm512_maskz_loadu_epi8(k, x + i)));
  }
}

// The product of two 8-bit activations, compiled for AVX-512 (qmatmul_rows.h).
void qmatmul_rows_avx512(const QMatMulArgs& q, int64_t r0, int64_t r1) {
  qmatmul_rows<true>(q, r0, r1);
}

}  // namespace lowp
