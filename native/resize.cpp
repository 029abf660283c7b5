// Loops of resize.h: output rows (outer x out_h) on the pool, int32 arithmetic (the four
// weights sum to 2^20 and |x| <= 255, so every sum fits), C's division toward zero.
#include "resize.h"

#include "threadpool.h"

namespace lowp {
namespace {

// The sizes are read into locals first: the stores to y could alias the argument struct,
// and the loop over the channels is then left unvectorised.
template <typename T>
void bilinear_rows(const BilinearArgs& a, int64_t r0, int64_t len) {
  const T* x = reinterpret_cast<const T*>(a.x);
  T* y = reinterpret_cast<T*>(a.y);
  const int64_t inner = a.inner, out_w = a.out_w, out_h = a.out_h, h = a.h;
  const int64_t row = a.w * inner, out_row = out_w * inner;
  const int32_t *x1 = a.x1, *x2 = a.x2, *dx1 = a.dx1, *dx2 = a.dx2;
  for (int64_t r = r0; r < r0 + len; ++r) {
    const int64_t o = r / out_h, i = r % out_h;
    const T* top = x + (o * h + a.y1[i]) * row;
    const T* bottom = x + (o * h + a.y2[i]) * row;
    const int32_t dy1 = a.dy1[i], dy2 = a.dy2[i];
    T* out = y + r * out_row;
    for (int64_t j = 0; j < out_w; ++j) {
      const int32_t w11 = dx2[j] * dy2, w21 = dx1[j] * dy2;
      const int32_t w12 = dx2[j] * dy1, w22 = dx1[j] * dy1;
      const T* t1 = top + x1[j] * inner;
      const T* t2 = top + x2[j] * inner;
      const T* b1 = bottom + x1[j] * inner;
      const T* b2 = bottom + x2[j] * inner;
      T* o_px = out + j * inner;
      for (int64_t c = 0; c < inner; ++c) {
        const int32_t total = w11 * int32_t(t1[c]) + w21 * int32_t(t2[c]) +
                              w12 * int32_t(b1[c]) + w22 * int32_t(b2[c]);
        o_px[c] = T(total / (int32_t(1) << 20));
      }
    }
  }
}

// One output row per iteration; sizes in locals for the reason above.
void bilinear_float_rows(const BilinearFloatArgs& a, int64_t r0, int64_t len) {
  const float* x = a.x;
  float* y = a.y;
  const int64_t w = a.w, out_w = a.out_w, out_h = a.out_h, h = a.h;
  const int32_t *x1 = a.x1, *x2 = a.x2;
  const float *dx1 = a.dx1, *dx2 = a.dx2;
  for (int64_t r = r0; r < r0 + len; ++r) {
    const int64_t o = r / out_h, i = r % out_h;
    const float* top = x + (o * h + a.y1[i]) * w;
    const float* bottom = x + (o * h + a.y2[i]) * w;
    const float dy1 = a.dy1[i], dy2 = a.dy2[i];
    float* out = y + r * out_w;
    for (int64_t j = 0; j < out_w; ++j) {
      const float w11 = dx2[j] * dy2, w21 = dx1[j] * dy2;
      const float w12 = dx2[j] * dy1, w22 = dx1[j] * dy1;
      const float t11 = w11 * top[x1[j]], t21 = w21 * top[x2[j]];
      const float t12 = w12 * bottom[x1[j]], t22 = w22 * bottom[x2[j]];
      out[j] = ((t11 + t21) + t12) + t22;
    }
  }
}

}  // namespace

void run_bilinear_float(const BilinearFloatArgs& a, int threads) {
  const int64_t rows = a.outer * a.out_h;
  if (rows <= 0 || a.out_w <= 0) return;
  run_elementwise(rows, std::max<int64_t>(1, (int64_t(1) << 14) / a.out_w), threads,
                  [&](int64_t r0, int64_t len) { bilinear_float_rows(a, r0, len); });
}

void run_bilinear_integer(const BilinearArgs& a, int threads) {
  const int64_t rows = a.outer * a.out_h;
  if (rows <= 0 || a.out_w <= 0 || a.inner <= 0) return;
  auto fn = a.is_signed ? bilinear_rows<int8_t> : bilinear_rows<uint8_t>;
  const int64_t per_row = std::max<int64_t>(1, a.out_w * a.inner);
  run_elementwise(rows, std::max<int64_t>(1, (int64_t(1) << 15) / per_row), threads,
                  [&](int64_t r0, int64_t len) { fn(a, r0, len); });
}

}  // namespace lowp
