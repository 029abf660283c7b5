// Driver and loops of gather.h: one loop per element size, runs of elements on the pool.
#include "gather.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "float_kernels.h"
#include "threadpool.h"
#include "transpose8.h"

namespace lowp {
namespace {

template <typename T>
void take_range(const TakeArgs& a, int64_t i0, int64_t len) {
  const T* x = reinterpret_cast<const T*>(a.x);
  const T* fill = reinterpret_cast<const T*>(a.fill);
  T* y = reinterpret_cast<T*>(a.y);
  for (int64_t i = i0; i < i0 + len; ++i) {
    const int32_t m = a.map[i];
    T v;
    std::memcpy(&v, m >= 0 ? x + m : fill + (-1 - int64_t(m)), sizeof(T));
    std::memcpy(y + i, &v, sizeof(T));
  }
}

}  // namespace

void run_take(const TakeArgs& a, int threads) {
  if (a.n <= 0) return;
  auto fn = a.itemsize == 1   ? take_range<uint8_t>
            : a.itemsize == 2 ? take_range<uint16_t>
            : a.itemsize == 4 ? take_range<uint32_t>
                              : take_range<uint64_t>;
  // memory-bound: a second thread pays only for large tensors
  run_elementwise(a.n, int64_t(1) << 16, threads,
                  [&](int64_t i0, int64_t len) { fn(a, i0, len); });
}

bool take_transpose(const int32_t* map, int64_t n, TakeTranspose* t) {
  // y[(b cols + c) rows + r] = x[base + (b rows + r) cols + c]: the first element's index
  // is the base, the step between y's first two the column count, and the rows run until
  // that step breaks; then every element is checked against the formula
  if (n < 4 || map[0] < 0) return false;
  const int64_t base = map[0], cols = int64_t(map[1]) - base;
  if (cols < 2) return false;
  int64_t rows = 1;
  while (rows < n && int64_t(map[rows]) == base + rows * cols) ++rows;
  if (rows < 2 || rows == n || int64_t(map[rows]) != base + 1 || n % (rows * cols) != 0)
    return false;
  const int64_t batches = n / (rows * cols);
  int64_t i = 0;
  for (int64_t b = 0; b < batches; ++b)
    for (int64_t c = 0; c < cols; ++c)
      for (int64_t r = 0; r < rows; ++r, ++i)
        if (int64_t(map[i]) != base + (b * rows + r) * cols + c) return false;
  *t = TakeTranspose{base, batches, rows, cols};
  return true;
}

namespace {

// A 4-byte tile (rows [r0, r1) x columns [c0, c1) of x, rows apart by cols) into y (rows
// apart by rows) in 8 x 8 blocks of 256-bit registers (unpacks, shuffles and lane swaps: the
// same bits, a NaN's payload included), the edges element by element.
__attribute__((target("avx2"))) void transpose_tile_4b_avx2(const uint32_t* x, uint32_t* y,
                                                             int64_t rows, int64_t cols,
                                                             int64_t r0, int64_t r1,
                                                             int64_t c0, int64_t c1) {
  const int64_t c8 = c0 + (c1 - c0) / 8 * 8, r8 = r0 + (r1 - r0) / 8 * 8;
  for (int64_t c = c0; c < c8; c += 8) {
    for (int64_t r = r0; r < r8; r += 8) {
      __m256 v[8];
      for (int i = 0; i < 8; ++i)
        v[i] = _mm256_castsi256_ps(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + (r + i) * cols + c)));
      lowp_transpose::transpose8(v);
      for (int j = 0; j < 8; ++j)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + (c + j) * rows + r),
                            _mm256_castps_si256(v[j]));
    }
    for (int64_t cc = c; cc < c + 8; ++cc)
      for (int64_t r = r8; r < r1; ++r) y[cc * rows + r] = x[r * cols + cc];
  }
  for (int64_t c = c8; c < c1; ++c)
    for (int64_t r = r0; r < r1; ++r) y[c * rows + r] = x[r * cols + c];
}

template <typename T>
void transpose_tiles(const TakeArgs& a, const TakeTranspose& t, int64_t tile0, int64_t count,
                     int64_t tiles_c, bool wide) {
  constexpr int64_t kTile = 32;
  const T* x = reinterpret_cast<const T*>(a.x) + t.base;
  T* y = reinterpret_cast<T*>(a.y);
  const int64_t tiles_r = (t.rows + kTile - 1) / kTile;
  for (int64_t k = tile0; k < tile0 + count; ++k) {
    // tile k: batch, then a block of columns, then a block of rows
    const int64_t b = k / (tiles_c * tiles_r), rest = k % (tiles_c * tiles_r);
    const int64_t c0 = (rest / tiles_r) * kTile, r0 = (rest % tiles_r) * kTile;
    const int64_t c1 = std::min(t.cols, c0 + kTile), r1 = std::min(t.rows, r0 + kTile);
    const T* xb = x + b * t.rows * t.cols;
    T* yb = y + b * t.rows * t.cols;
    if constexpr (sizeof(T) == 4) {
      if (wide) {
        transpose_tile_4b_avx2(reinterpret_cast<const uint32_t*>(xb),
                               reinterpret_cast<uint32_t*>(yb), t.rows, t.cols, r0, r1, c0, c1);
        continue;
      }
    }
    for (int64_t c = c0; c < c1; ++c)
      for (int64_t r = r0; r < r1; ++r) yb[c * t.rows + r] = xb[r * t.cols + c];
  }
}

}  // namespace

void run_take_transpose(const TakeArgs& a, const TakeTranspose& t, int threads) {
  constexpr int64_t kTile = 32;
  const int64_t tiles_c = (t.cols + kTile - 1) / kTile;
  const int64_t tiles = t.batches * tiles_c * ((t.rows + kTile - 1) / kTile);
  if (tiles <= 0) return;
  auto fn = a.itemsize == 1   ? transpose_tiles<uint8_t>
            : a.itemsize == 2 ? transpose_tiles<uint16_t>
            : a.itemsize == 4 ? transpose_tiles<uint32_t>
                              : transpose_tiles<uint64_t>;
  // memory-bound as the element loop: a second thread for large tensors only
  const bool wide = a.itemsize == 4 && float_path_has_avx2();
  run_elementwise(tiles, std::max<int64_t>(1, (int64_t(1) << 16) / (kTile * kTile)), threads,
                  [&](int64_t k0, int64_t len) { fn(a, t, k0, len, tiles_c, wide); });
}

TakeRuns take_runs(const int32_t* map, int64_t n) {
  TakeRuns r;
  for (int64_t i = 0; i < n;) {
    // a run: consecutive indices of x, or of fill, or one element
    const int64_t start = map[i];
    int64_t j = i + 1;
    if (start >= 0)
      while (j < n && map[j] == start + (j - i)) ++j;
    else
      while (j < n && map[j] < 0 && map[j] == start - (j - i)) ++j;
    r.src.push_back(start), r.dst.push_back(i), r.len.push_back(j - i);
    i = j;
  }
  return r;
}

void run_take_runs(const TakeArgs& a, const TakeRuns& runs, int threads) {
  const int64_t count = int64_t(runs.len.size()), size = a.itemsize;
  if (count == 0) return;
  const int64_t per_run = std::max<int64_t>(1, a.n / count);
  run_elementwise(count, std::max<int64_t>(1, (int64_t(1) << 16) / per_run), threads,
                  [&](int64_t r0, int64_t len) {
    for (int64_t r = r0; r < r0 + len; ++r) {
      const int64_t s = runs.src[size_t(r)];
      // a fill run counts down from -1 - s: its elements are fill[-1 - s], fill[-s], ...
      const uint8_t* from = s >= 0 ? a.x + s * size : a.fill + (-1 - s) * size;
      std::memcpy(a.y + runs.dst[size_t(r)] * size, from, size_t(runs.len[size_t(r)] * size));
    }
  });
}

void run_copy_block(const uint8_t* x, uint8_t* y, int64_t rows, int64_t width,
                    int64_t y_width, int64_t offset, int threads) {
  if (rows <= 0 || width <= 0) return;
  // rows of one to sixteen bytes (a Concat along a last axis of a few values) copied with
  // moves of a size known to the compiler, not a library call each
  auto copy = [&](auto fixed) {
    constexpr int64_t w = decltype(fixed)::value;
    run_elementwise(rows, std::max<int64_t>(1, (int64_t(1) << 16) / width), threads,
                    [x, y, width, y_width, offset](int64_t r0, int64_t len) {
      // (by value: byte stores may alias what a reference capture reads each row)
      const uint8_t* from = x + r0 * width;
      uint8_t* to = y + r0 * y_width + offset;
      int64_t r = 0;
      if constexpr (w > 0) {
        // four rows an iteration (12,544 rows of 4 bytes, one thread: 7.5 -> 6.3 us)
        for (; r + 4 <= len; r += 4, from += 4 * width, to += 4 * y_width) {
          std::memcpy(to, from, size_t(w));
          std::memcpy(to + y_width, from + width, size_t(w));
          std::memcpy(to + 2 * y_width, from + 2 * width, size_t(w));
          std::memcpy(to + 3 * y_width, from + 3 * width, size_t(w));
        }
      }
      for (; r < len; ++r, from += width, to += y_width)
        std::memcpy(to, from, size_t(w > 0 ? w : width));
    });
  };
  switch (width) {
    case 1: return copy(std::integral_constant<int64_t, 1>{});
    case 2: return copy(std::integral_constant<int64_t, 2>{});
    case 4: return copy(std::integral_constant<int64_t, 4>{});
    case 8: return copy(std::integral_constant<int64_t, 8>{});
    case 12: return copy(std::integral_constant<int64_t, 12>{});
    case 16: return copy(std::integral_constant<int64_t, 16>{});
    default: return copy(std::integral_constant<int64_t, 0>{});
  }
}

namespace {

#if defined(__SSE2__)
// Rows 0 .. 4 * (rows / 4) of `count` (2 to 4) parts of 4 bytes interleaved; returns how
// many. The values move as bits (loads, shuffles, stores): no float arithmetic.
int64_t interleave_rows4_sse2(const uint8_t* const* parts, int64_t count, uint8_t* y,
                              int64_t rows) {
  auto load = [](const uint8_t* p, int64_t r) {
    return _mm_castsi128_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 4 * r)));
  };
  auto store = [](uint8_t* p, __m128 v) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm_castps_si128(v));
  };
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    uint8_t* out = y + r * 4 * count;
    const __m128 a = load(parts[0], r), b = load(parts[1], r);
    const __m128 ab_lo = _mm_unpacklo_ps(a, b), ab_hi = _mm_unpackhi_ps(a, b);  // a0 b0 a1 b1
    if (count == 2) {
      store(out, ab_lo), store(out + 16, ab_hi);
    } else if (count == 3) {
      const __m128 c = load(parts[2], r);
      // a0 b0 c0 a1 | b1 c1 a2 b2 | c2 a3 b3 c3
      const __m128 c0a1 = _mm_shuffle_ps(c, a, _MM_SHUFFLE(1, 1, 0, 0));
      const __m128 a1b1a2b2 = _mm_shuffle_ps(ab_lo, ab_hi, _MM_SHUFFLE(1, 0, 3, 2));
      const __m128 b1c1 = _mm_shuffle_ps(b, c, _MM_SHUFFLE(1, 1, 1, 1));
      const __m128 c2a3 = _mm_shuffle_ps(c, a, _MM_SHUFFLE(3, 3, 2, 2));
      const __m128 b3c3 = _mm_shuffle_ps(b, c, _MM_SHUFFLE(3, 3, 3, 3));
      store(out, _mm_shuffle_ps(ab_lo, c0a1, _MM_SHUFFLE(2, 0, 1, 0)));
      store(out + 16, _mm_shuffle_ps(b1c1, a1b1a2b2, _MM_SHUFFLE(3, 2, 2, 0)));
      store(out + 32, _mm_shuffle_ps(c2a3, b3c3, _MM_SHUFFLE(2, 0, 2, 0)));
    } else {
      const __m128 c = load(parts[2], r), d = load(parts[3], r);
      const __m128 cd_lo = _mm_unpacklo_ps(c, d), cd_hi = _mm_unpackhi_ps(c, d);
      store(out, _mm_movelh_ps(ab_lo, cd_lo)), store(out + 16, _mm_movehl_ps(cd_lo, ab_lo));
      store(out + 32, _mm_movelh_ps(ab_hi, cd_hi)), store(out + 48, _mm_movehl_ps(cd_hi, ab_hi));
    }
  }
  return r;
}
#endif

}  // namespace

void run_interleave_rows(const uint8_t* const* parts, int64_t count, uint8_t* y,
                         int64_t rows, int64_t width) {
  int64_t r = 0;
#if defined(__SSE2__)
  if (width == 4 && count >= 2 && count <= 4) r = interleave_rows4_sse2(parts, count, y, rows);
#endif
  const int64_t row = count * width;
  for (; r < rows; ++r)
    for (int64_t k = 0; k < count; ++k)
      std::memcpy(y + r * row + k * width, parts[k] + r * width, size_t(width));
}

namespace {

template <typename Index>
void gather_rows(const uint8_t* x, const Index* idx, uint8_t* y, int64_t outer, int64_t n,
                 int64_t m, int64_t row, int64_t* status, int threads) {
  status[0] = 0, status[1] = 0;
  if (outer <= 0 || m <= 0 || row <= 0) return;
  for (int64_t j = 0; j < m; ++j) {  // checked first, on one thread: no data race
    const int64_t k = int64_t(idx[j]);
    if (k < -n || k >= n) {
      status[0] = 1, status[1] = k;
      break;
    }
  }
  run_elementwise(outer * m, std::max<int64_t>(1, (int64_t(1) << 16) / row), threads,
                  [&](int64_t r0, int64_t len) {
    for (int64_t r = r0; r < r0 + len; ++r) {
      const int64_t o = r / m, j = r % m;
      int64_t k = int64_t(idx[j]);
      if (k < 0) k += n;
      uint8_t* dst = y + r * row;
      if (k < 0 || k >= n)
        std::memset(dst, 0, size_t(row));
      else
        std::memcpy(dst, x + (o * n + k) * row, size_t(row));
    }
  });
}

}  // namespace

void run_gather_rows(const uint8_t* x, const int64_t* idx, uint8_t* y, int64_t outer,
                     int64_t n, int64_t m, int64_t row, int64_t* status, int threads) {
  gather_rows(x, idx, y, outer, n, m, row, status, threads);
}

void run_gather_rows(const uint8_t* x, const int32_t* idx, uint8_t* y, int64_t outer,
                     int64_t n, int64_t m, int64_t row, int64_t* status, int threads) {
  gather_rows(x, idx, y, outer, n, m, row, status, threads);
}

}  // namespace lowp
