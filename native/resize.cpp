// Loops of resize.h: output rows (outer x out_h) on the pool. The integer kernel in int32
// arithmetic (the four weights sum to 2^20 and |x| <= 255, so every sum fits), C's division
// toward zero; the float one the active path's rows (resize_float.cpp).
#include "resize.h"

#include <string>

#include "dispatch.h"
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

}  // namespace

void run_bilinear_float(const BilinearFloatArgs& a, int threads) {
  const int64_t rows = a.outer * a.out_h;
  if (rows <= 0 || a.out_w <= 0 || a.inner <= 0) return;
  const std::string name = active_table()->name;
  const BilinearFloatRowsFn fn = name == "scalar"                         ? bilinear_float_scalar
                                 : name == "avx512vnni" || name == "amx" ? bilinear_float_avx512
                                                                         : bilinear_float_avx2;
  // a thread pays from some ten thousand outputs; the rows are shared out evenly (a
  // channels-last Resize has few, long rows: 40 rows of 40 x 256 values)
  const int64_t per_row = a.out_w * a.inner;
  const int64_t parts = std::max<int64_t>(
      1, std::min<int64_t>({int64_t(threads <= 0 ? ThreadPool::max_threads() : threads), rows,
                            rows * per_row / (int64_t(1) << 14)}));
  if (parts <= 1) {
    fn(a, 0, rows);
    return;
  }
  const int64_t per = (rows + parts - 1) / parts;
  ThreadPool::instance().run(int(parts), [&](int t) {
    const int64_t r0 = std::min<int64_t>(rows, per * t), r1 = std::min<int64_t>(rows, r0 + per);
    if (r1 > r0) fn(a, r0, r1 - r0);
  });
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
