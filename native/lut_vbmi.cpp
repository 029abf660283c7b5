// Microkernels: 256-entry byte lookup with AVX-512 VBMI (vpermi2b looks 64 indices up in a
// 128-byte table (bit 6 of each index picks the register); two of them cover both halves
// and bit 7 chooses between their results), and per-channel tables by AVX-512 gathers.
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

// One table of 256 bytes per channel (channels a multiple of 16, element i of channel
// (c0 + i) % channels): sixteen lookups per 32-bit gather, each lane's dword read so that
// its looked-up byte is the top one (from the entry 3 bytes before it) or, in the first
// table, the low one: every read stays inside the channels * 256 bytes. The partial pixels
// at both ends are looked up one by one.
void lut8_channels_avx512(const uint8_t* x, const uint8_t* table, uint8_t* y, int64_t n,
                          int64_t channels, int64_t c0) {
  int64_t i = 0;
  for (int64_t c = c0; c0 != 0 && c < channels && i < n; ++c, ++i) y[i] = table[c * 256 + x[i]];
  const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i back = _mm512_set1_epi32(3), top = _mm512_set1_epi32(24);
  // the first group of channels: lane 0 (table 0) reads its byte as the low one
  const __m512i first_base =
      _mm512_mask_mov_epi32(_mm512_sub_epi32(_mm512_slli_epi32(lane, 8), back), 1,
                            _mm512_setzero_si512());
  const __m512i first_shift = _mm512_mask_mov_epi32(top, 1, _mm512_setzero_si512());
  for (; i + channels <= n; i += channels) {
    for (int64_t c = 0; c < channels; c += 16) {
      const __m512i base =
          c == 0 ? first_base
                 : _mm512_sub_epi32(
                       _mm512_slli_epi32(_mm512_add_epi32(_mm512_set1_epi32(int(c)), lane), 8),
                       back);
      const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(x + i + c)));
      const __m512i got = _mm512_i32gather_epi32(_mm512_add_epi32(base, v), table, 1);
      _mm_storeu_si128((__m128i*)(y + i + c),
                       _mm512_cvtepi32_epi8(_mm512_srlv_epi32(got, c == 0 ? first_shift : top)));
    }
  }
  for (int64_t c = 0; i < n; ++c, ++i) y[i] = table[c * 256 + x[i]];
}

// The product of two 8-bit activations, compiled for AVX-512 (qmatmul_rows.h).
void qmatmul_rows_avx512(const QMatMulArgs& q, int64_t r0, int64_t r1) {
  qmatmul_rows<true>(q, r0, r1);
}

}  // namespace lowp
