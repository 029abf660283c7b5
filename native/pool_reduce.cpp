// Driver layer: global average pooling (O8)-(O9) and quantization into channels-last order
// (Q6 with the NCHW -> NHWC transposition fused). Memory-bound loops; every output is
// computed by exactly one task, so results never depend on the thread count.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include <emmintrin.h>

#include "dispatch.h"
#include "requant.h"
#include "threadpool.h"

namespace lowp {

namespace {

// Per-channel sums of one batch item, modulo 2^32 like the reference's int64 sum cast to
// int32 (the wrap is the same in either order).
template <typename T>
void channel_sums(const T* x, int64_t s, int64_t c, bool channels_last, uint32_t* acc) {
  if (channels_last) {
    std::fill(acc, acc + c, 0u);
    for (int64_t i = 0; i < s; ++i, x += c)
      for (int64_t j = 0; j < c; ++j) acc[j] += uint32_t(int32_t(x[j]));
    return;
  }
  for (int64_t j = 0; j < c; ++j, x += s) {
    uint32_t sum = 0;
    for (int64_t i = 0; i < s; ++i) sum += uint32_t(int32_t(x[i]));
    acc[j] = sum;
  }
}

template <typename T>
void gap_t(const GapArgs& a) {
  const T* x = reinterpret_cast<const T*>(a.x);
  std::vector<uint32_t> acc(size_t(std::max<int64_t>(a.c, 1)));
  Epilogue e;
  e.zp = a.zp;
  e.qmin = a.qmin;
  e.qmax = a.qmax;
  const uint32_t zero_term = uint32_t(a.s) * uint32_t(a.x_zp);
  for (int64_t b = 0; b < a.n; ++b) {
    channel_sums(x + b * a.s * a.c, a.s, a.c, a.channels_last, acc.data());
    uint8_t* out = a.y + b * a.c;
    for (int64_t j = 0; j < a.c; ++j) {
      const int32_t v = int32_t(acc[j] - zero_term);
      out[j] = uint8_t(a.fixedpoint ? requant_fixed(v, a.mult, a.lshift, a.rshift, e)
                                    : requant_float(v, a.scale, e));
    }
  }
}

}  // namespace

void run_global_average_pool(const GapArgs& a) {
  if (a.x_signed)
    gap_t<int8_t>(a);
  else
    gap_t<uint8_t>(a);
}

namespace {

// out[i * C + c] = planes[c][i] for i < len: sequential stores (C known at compile time for
// the usual image channel counts).
template <int C>
void interleave_fixed(const uint8_t* planes, int64_t stride, int64_t len, uint8_t* out) {
  for (int64_t i = 0; i < len; ++i, out += C)
    for (int c = 0; c < C; ++c) out[c] = planes[c * stride + i];
}

// 16 channels by 16 pixels: out[i * c + j] = planes[j * stride + i], i, j < 16, by SSE2
// unpacks (x86-64's baseline; byte moves only). Each stage halves the pixels of a register
// and doubles its channels: a[h][m] pixels 8h.. (8) of channel pair m, b[q][n] pixels 4q..
// (4) of channel quad n, e[d][k] pixels 2d, 2d + 1 of channel octet k.
void transpose16x16(const uint8_t* planes, int64_t stride, int64_t c, uint8_t* out) {
  __m128i r[16], a[2][8], b[4][4], e[8][2];
  for (int j = 0; j < 16; ++j)
    r[j] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(planes + j * stride));
  for (int m = 0; m < 8; ++m) {
    a[0][m] = _mm_unpacklo_epi8(r[2 * m], r[2 * m + 1]);
    a[1][m] = _mm_unpackhi_epi8(r[2 * m], r[2 * m + 1]);
  }
  for (int h = 0; h < 2; ++h)
    for (int n = 0; n < 4; ++n) {
      b[2 * h][n] = _mm_unpacklo_epi16(a[h][2 * n], a[h][2 * n + 1]);
      b[2 * h + 1][n] = _mm_unpackhi_epi16(a[h][2 * n], a[h][2 * n + 1]);
    }
  for (int q = 0; q < 4; ++q)
    for (int k = 0; k < 2; ++k) {
      e[2 * q][k] = _mm_unpacklo_epi32(b[q][2 * k], b[q][2 * k + 1]);
      e[2 * q + 1][k] = _mm_unpackhi_epi32(b[q][2 * k], b[q][2 * k + 1]);
    }
  for (int d = 0; d < 8; ++d) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 2 * d * c),
                     _mm_unpacklo_epi64(e[d][0], e[d][1]));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + (2 * d + 1) * c),
                     _mm_unpackhi_epi64(e[d][0], e[d][1]));
  }
}

void interleave(const uint8_t* planes, int64_t stride, int64_t c, int64_t len, uint8_t* out) {
  switch (c) {
    case 1: return interleave_fixed<1>(planes, stride, len, out);
    case 2: return interleave_fixed<2>(planes, stride, len, out);
    case 3: return interleave_fixed<3>(planes, stride, len, out);
    case 4: return interleave_fixed<4>(planes, stride, len, out);
    default: {
      // blocks of 16 pixels by 16 channels, then the channels and pixels left over
      const int64_t len16 = len / 16 * 16, c16 = c / 16 * 16;
      for (int64_t i = 0; i < len16; i += 16) {
        for (int64_t j = 0; j < c16; j += 16)
          transpose16x16(planes + j * stride + i, stride, c, out + i * c + j);
        for (int64_t p = i; p < i + 16; ++p)
          for (int64_t j = c16; j < c; ++j) out[p * c + j] = planes[j * stride + p];
      }
      for (int64_t p = len16; p < len; ++p)
        for (int64_t j = 0; j < c; ++j) out[p * c + j] = planes[j * stride + p];
    }
  }
}

}  // namespace

void run_quantize_to_channels_last(const QuantArgs& a, int64_t n, int64_t c, int64_t s,
                                   int threads) {
  const IsaTable& isa = *active_table();
  const QuantFn fn = isa.quantize ? isa.quantize : quantize_portable;
  // Tasks: a run of `chunk` pixels of one batch item, all channels: each channel's values
  // are quantized contiguously into a scratch plane, then interleaved into the output.
  if (n == 0 || c == 0 || s == 0) return;
  const int64_t chunk = std::max<int64_t>(64, (int64_t(1) << 15) / c);
  const int64_t chunks = (s + chunk - 1) / chunk, ntasks = n * chunks;
  if (threads <= 0) threads = ThreadPool::max_threads();
  threads = int(std::max<int64_t>(1, std::min<int64_t>({int64_t(threads), ntasks,
                                                        n * c * s / (int64_t(1) << 16)})));
  std::atomic<int64_t> next{0};
  auto work = [&](int) {
    std::vector<uint8_t> planes(size_t(c * std::min(chunk, s)));
    const int64_t stride = std::min(chunk, s);
    for (int64_t t; (t = next.fetch_add(1, std::memory_order_relaxed)) < ntasks;) {
      const int64_t b = t / chunks, i0 = (t % chunks) * chunk, len = std::min(chunk, s - i0);
      for (int64_t ch = 0; ch < c; ++ch) {
        QuantArgs part = a;
        part.x = a.x + (b * c + ch) * s + i0;
        part.y = planes.data() + ch * stride;
        part.n = len;
        fn(part);
      }
      interleave(planes.data(), stride, c, len, a.y + (b * s + i0) * c);
    }
  };
  ThreadPool::instance().run(threads, work);
}

void run_qaverage_pool2d(const QAvgPoolArgs& a, int threads) {
  const int64_t rows = a.n * a.oh;
  if (rows <= 0 || a.ow <= 0 || a.c <= 0) return;
  auto value = [&](int64_t i) {
    const int32_t v = a.x_signed ? int32_t(int8_t(a.x[i])) : int32_t(a.x[i]);
    return float(v - a.x_zp) * a.x_scale;
  };
  auto store = [&](float acc, float count, int64_t i) {
    float q = std::nearbyint(acc / count / a.y_scale + a.y_zp);
    q = q < float(a.qmin) ? float(a.qmin) : (q > float(a.qmax) ? float(a.qmax) : q);
    const int32_t v = int32_t(q);
    a.y[i] = a.x_signed ? uint8_t(int8_t(v)) : uint8_t(v);
  };
  // every tap inside the input of output (oy, ox), in window order: tap(iy * w + ix)
  auto taps = [&](int64_t oy, int64_t ox, auto&& tap) {
    for (int ky = 0; ky < a.kh; ++ky) {
      const int64_t iy = oy * a.sh - a.ph + int64_t(ky) * a.dh;
      if (iy < 0 || iy >= a.h) continue;
      for (int kx = 0; kx < a.kw; ++kx) {
        const int64_t ix = ox * a.sw - a.pw + int64_t(kx) * a.dw;
        if (ix >= 0 && ix < a.w) tap(iy * a.w + ix);
      }
    }
  };
  const int64_t c = a.c;
  run_elementwise(rows, std::max<int64_t>(1, (int64_t(1) << 14) / (a.ow * c)), threads,
                  [&](int64_t r0, int64_t len) {
    std::vector<float> acc(size_t(a.channels_last ? c : 1));
    for (int64_t r = r0; r < r0 + len; ++r) {
      const int64_t b = r / a.oh, oy = r % a.oh;
      for (int64_t ox = 0; ox < a.ow; ++ox) {
        const float count = a.count[oy * a.ow + ox];
        if (a.channels_last) {  // a vector of channels per tap
          std::fill(acc.begin(), acc.end(), 0.0f);
          taps(oy, ox, [&](int64_t pixel) {
            const int64_t base = (b * a.h * a.w + pixel) * c;
            for (int64_t ch = 0; ch < c; ++ch) acc[size_t(ch)] += value(base + ch);
          });
          const int64_t out = ((b * a.oh + oy) * a.ow + ox) * c;
          for (int64_t ch = 0; ch < c; ++ch) store(acc[size_t(ch)], count, out + ch);
          continue;
        }
        for (int64_t ch = 0; ch < c; ++ch) {
          float sum = 0.0f;
          const int64_t plane = (b * c + ch) * a.h * a.w;
          taps(oy, ox, [&](int64_t pixel) { sum += value(plane + pixel); });
          store(sum, count, ((b * c + ch) * a.oh + oy) * a.ow + ox);
        }
      }
    }
  });
}

}  // namespace lowp
