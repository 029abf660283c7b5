// float16 <-> float32 conversion with the F16C instructions (see cast_half.h).
#include "cast_half.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "ort_blocks.h"
#include "threadpool.h"

namespace lowp {
namespace {

__attribute__((target("avx,f16c"))) void half_to_float_span(const uint16_t* x, float* y,
                                                            int64_t n, int64_t hardware) {
  // (MLAS converts 16 at a time; the last n % 16 of its call in C++, which keeps a NaN's
  // payload as it is where vcvtph2ps sets the quiet bit): [0, hardware) as vcvtph2ps,
  // [hardware, n) as the C++ conversion
  int64_t i = 0;
  for (; i + 16 <= hardware; i += 16) {
    const __m128i h0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i));
    const __m128i h1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i + 8));
    _mm256_storeu_ps(y + i, _mm256_cvtph_ps(h0));
    _mm256_storeu_ps(y + i + 8, _mm256_cvtph_ps(h1));
  }
  for (; i < hardware; ++i) y[i] = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(int(x[i]))));
  for (; i < n; ++i) {
    const uint32_t h = x[i];
    if ((h & 0x7C00u) == 0x7C00u && (h & 0x3FFu) != 0) {
      const uint32_t bits = ((h & 0x8000u) << 16) | 0x7F800000u | ((h & 0x3FFu) << 13);
      std::memcpy(y + i, &bits, 4);
    } else {
      y[i] = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(int(h))));
    }
  }
}

__attribute__((target("avx,f16c"))) void float_to_half_span(const float* x, uint16_t* y,
                                                            int64_t n, int64_t hardware) {
  // (MLAS converts 8 at a time; the last n % 8 of its call in C++, which makes every NaN
  // 0x7e00 with its sign): [0, hardware) as vcvtps2ph, [hardware, n) as the C++ conversion
  int64_t i = 0;
  for (; i + 8 <= hardware; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), h);
  }
  for (; i < n; ++i) {
    uint16_t h = uint16_t(_mm_cvtsi128_si32(_mm_cvtps_ph(_mm_set_ss(x[i]),
                                                         _MM_FROUND_TO_NEAREST_INT)));
    if (i >= hardware && (h & 0x7C00u) == 0x7C00u && (h & 0x3FFu) != 0)
      h = uint16_t((h & 0x8000u) | 0x7E00u);
    y[i] = h;
  }
}

// TryParallelFor's block of ONNX Runtime's parallel conversions of n values either way
// (more than 128,000 at 2+ threads; each value costing the whole tensor's 2n bytes of
// halves, 4n of floats and n / 2 cycles, so it cuts as finely as it may), else n.
int64_t conversion_block(int64_t n, int threads) {
  return n > 128000 ? ort_parallel_block(n, double(2 * n) * kOrtByteCycles +
                                                double(4 * n) * kOrtByteCycles + double(n >> 1),
                                         threads)
                    : n;
}

// fn(i, end, hardware) over [i0, i0 + len) cut at the blocks' ends: `hardware` is where the
// C++ tail of i's block (its last length % width values) starts.
template <class Fn>
void in_blocks(int64_t n, int64_t block, int64_t width, int64_t i0, int64_t len, Fn fn) {
  for (int64_t i = i0; i < i0 + len;) {
    const int64_t first = i / block * block, last = std::min(n, first + block);
    const int64_t tail = first + (last - first) / width * width, end = std::min(last, i0 + len);
    fn(i, end, std::max<int64_t>(0, tail - i));
    i = end;
  }
}

}  // namespace

bool has_f16c() {
  static const bool has = __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
  return has;
}

void half_to_float(const uint16_t* x, float* y, int64_t n, int threads) {
  // ONNX Runtime converts in TryParallelFor's blocks, each 16 at a time from its own start,
  // its last length % 16 in C++: the same places here keep a signalling NaN's payload
  // (repro 93)
  const int64_t block = conversion_block(n, threads);
  run_elementwise(n, int64_t(1) << 15, threads, [&](int64_t i0, int64_t len) {
    in_blocks(n, block, 16, i0, len, [&](int64_t i, int64_t end, int64_t hardware) {
      half_to_float_span(x + i, y + i, end - i, hardware);
    });
  });
}

void float_to_half(const float* x, uint16_t* y, int64_t n, int threads) {
  // the same blocks, each 8 at a time from its own start, its last length % 8 in C++: there
  // every NaN is 0x7e00 with its sign (repro 132)
  const int64_t block = conversion_block(n, threads);
  run_elementwise(n, int64_t(1) << 15, threads, [&](int64_t i0, int64_t len) {
    in_blocks(n, block, 8, i0, len, [&](int64_t i, int64_t end, int64_t hardware) {
      float_to_half_span(x + i, y + i, end - i, hardware);
    });
  });
}

}  // namespace lowp
