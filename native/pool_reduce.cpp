// Driver layer: global average pooling (O8)-(O9) and quantization into channels-last order
// (Q6 with the NCHW -> NHWC transposition fused). Memory-bound loops; every output is
// computed by exactly one task, so results never depend on the thread count.
#include <algorithm>
#include <atomic>
#include <vector>

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

void run_quantize_to_channels_last(const QuantArgs& a, int64_t n, int64_t c, int64_t s,
                                   int threads) {
  const IsaTable& isa = *active_table();
  const QuantFn fn = isa.quantize ? isa.quantize : quantize_portable;
  // Tasks: one chunk of one (batch, channel) plane; quantized contiguously into a scratch
  // row, then scattered with stride c.
  constexpr int64_t kChunk = 8192;
  const int64_t chunks = (s + kChunk - 1) / kChunk, ntasks = n * c * chunks;
  if (ntasks == 0) return;
  if (threads <= 0) threads = ThreadPool::max_threads();
  threads = int(std::max<int64_t>(1, std::min<int64_t>({int64_t(threads), ntasks,
                                                        n * c * s / (int64_t(1) << 16)})));
  std::atomic<int64_t> next{0};
  auto work = [&](int) {
    std::vector<uint8_t> row(size_t(std::min(kChunk, s)));
    for (int64_t t; (t = next.fetch_add(1, std::memory_order_relaxed)) < ntasks;) {
      const int64_t plane = t / chunks, i0 = (t % chunks) * kChunk;
      const int64_t len = std::min(kChunk, s - i0), b = plane / c, ch = plane % c;
      QuantArgs part = a;
      part.x = a.x + plane * s + i0;
      part.y = row.data();
      part.n = len;
      fn(part);
      uint8_t* dst = a.y + (b * s + i0) * c + ch;
      for (int64_t i = 0; i < len; ++i) dst[i * c] = row[size_t(i)];
    }
  };
  ThreadPool::instance().run(threads, work);
}

}  // namespace lowp
