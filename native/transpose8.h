// 8 x 8 transpose of 4-byte lanes in 256-bit registers: m[i] lane j <- m[j] lane i (unpacks,
// shuffles and 128-bit lane swaps: data movement only, a NaN's payload kept). Used by the
// 4-byte Transpose tiles (gather.cpp) and the float NCHWc Conv's write-out (float_conv/vec16.h).
#pragma once

#include <immintrin.h>

namespace lowp_transpose {
namespace {

__attribute__((target("avx2"), always_inline)) inline void transpose8(__m256 (&m)[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(m[i], m[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(m[i], m[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int i = 0; i < 4; ++i) {
    m[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
    m[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
  }
}

}  // namespace
}  // namespace lowp_transpose
