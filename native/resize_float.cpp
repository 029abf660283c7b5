// The float32 bilinear rows of resize.h for one path (LOWP_BILINEAR_FLOAT_NAME): compiled
// once per instruction set from this source, the channels-innermost loop vectorised by the
// compiler. Every float step is one IEEE operation (-ffp-contract=off: no fused
// multiply-add), in UpsampleBilinear's order, so each path computes each output exactly as
// the scalar loop does; only the number of channels computed at once differs. Of two NaNs
// met in a sum ONNX Runtime's compiled loop keeps the first operand's (x86's rule), but a
// compiler may swap the operands of a vector addition: an output that came out NaN is
// computed again with the operands in place (float_nan.h).
#include "float_nan.h"
#include "resize.h"

namespace lowp {

namespace {

// One output from its four weights and sources, each NaN chosen as x86 does in
// UpsampleBilinear's order
inline float first_nan_bilinear(float w11, float x11, float w21, float x21, float w12,
                                float x12, float w22, float x22) {
  const float t11 = first_nan_mul(w11, x11), t21 = first_nan_mul(w21, x21);
  const float t12 = first_nan_mul(w12, x12), t22 = first_nan_mul(w22, x22);
  return first_nan_add(first_nan_add(first_nan_add(t11, t21), t12), t22);
}

}  // namespace

// One output row (one row of one plane, or one (h, w, channels) row) per iteration. The
// sizes and pointers are read into locals first: the stores to y could alias the argument
// struct, and the loops would then be left unvectorised.
void LOWP_BILINEAR_FLOAT_NAME(const BilinearFloatArgs& a, int64_t r0, int64_t len) {
  const float* x = a.x;
  float* y = a.y;
  const int64_t inner = a.inner, w = a.w, out_w = a.out_w, out_h = a.out_h, h = a.h;
  const int64_t row = w * inner, out_row = out_w * inner;
  const int32_t *x1 = a.x1, *x2 = a.x2;
  const float *dx1 = a.dx1, *dx2 = a.dx2;
  for (int64_t r = r0; r < r0 + len; ++r) {
    const int64_t o = r / out_h, i = r % out_h;
    const float* top = x + (o * h + a.y1[i]) * row;
    const float* bottom = x + (o * h + a.y2[i]) * row;
    const float dy1 = a.dy1[i], dy2 = a.dy2[i];
    float* out = y + r * out_row;
    if (inner == 1) {
      // NCHW planes: one output per column
      for (int64_t j = 0; j < out_w; ++j) {
        const float w11 = dx2[j] * dy2, w21 = dx1[j] * dy2;
        const float w12 = dx2[j] * dy1, w22 = dx1[j] * dy1;
        const float t11 = w11 * top[x1[j]], t21 = w21 * top[x2[j]];
        const float t12 = w12 * bottom[x1[j]], t22 = w22 * bottom[x2[j]];
        const float v = ((t11 + t21) + t12) + t22;
        out[j] = v == v ? v
                        : first_nan_bilinear(w11, top[x1[j]], w21, top[x2[j]], w12,
                                             bottom[x1[j]], w22, bottom[x2[j]]);
      }
      continue;
    }
    // channels-last: the four weights once per column, then every channel of the column
    for (int64_t j = 0; j < out_w; ++j) {
      const float w11 = dx2[j] * dy2, w21 = dx1[j] * dy2;
      const float w12 = dx2[j] * dy1, w22 = dx1[j] * dy1;
      const float* __restrict t1 = top + x1[j] * inner;
      const float* __restrict t2 = top + x2[j] * inner;
      const float* __restrict b1 = bottom + x1[j] * inner;
      const float* __restrict b2 = bottom + x2[j] * inner;
      float* __restrict px = out + j * inner;
      for (int64_t c = 0; c < inner; ++c) {
        const float t11 = w11 * t1[c], t21 = w21 * t2[c];
        const float t12 = w12 * b1[c], t22 = w22 * b2[c];
        px[c] = ((t11 + t21) + t12) + t22;
      }
    }
    // (one pass over the row, still in cache, for NaNs: an int, as a bool's |= leaves the
    // loop unvectorised)
    int nan = 0;
    for (int64_t k = 0; k < out_row; ++k) nan |= int(out[k] != out[k]);
    if (nan == 0) continue;
    for (int64_t j = 0; j < out_w; ++j) {
      const float w11 = dx2[j] * dy2, w21 = dx1[j] * dy2;
      const float w12 = dx2[j] * dy1, w22 = dx1[j] * dy1;
      const float *t1 = top + x1[j] * inner, *t2 = top + x2[j] * inner;
      const float *b1 = bottom + x1[j] * inner, *b2 = bottom + x2[j] * inner;
      float* px = out + j * inner;
      for (int64_t c = 0; c < inner; ++c)
        if (px[c] != px[c])
          px[c] = first_nan_bilinear(w11, t1[c], w21, t2[c], w12, b1[c], w22, b2[c]);
    }
  }
}

}  // namespace lowp
