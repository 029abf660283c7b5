// Kernel layer: float32 element-wise glue (see float_elementwise.h). Plain loops the compiler
// vectorizes at the baseline ISA; -ffp-contract=off keeps one rounding per operation.
#include "float_elementwise.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "threadpool.h"

namespace lowp {

namespace {

constexpr int64_t kBlock = int64_t(1) << 15;  // elements per thread, at least

template <int Op>
inline float apply(float a, float b) {
  if constexpr (Op == kFloatAdd) return a + b;
  else if constexpr (Op == kFloatSub) return a - b;
  else if constexpr (Op == kFloatMul) return a * b;
  else if constexpr (Op == kFloatDiv) return a / b;
  else if constexpr (Op == kFloatMax) return (std::isnan(a) || a > b) ? a : b;
  else if constexpr (Op == kFloatMin) return (std::isnan(a) || a < b) ? a : b;
  else return a >= 0.0f ? a : a * b;
}

// One innermost row of n elements: the three stride forms get their own loops.
template <int Op>
void row(const float* a, int64_t sa, const float* b, int64_t sb, float* y, int64_t n) {
  if (sa == 1 && sb == 1) {
    for (int64_t i = 0; i < n; ++i) y[i] = apply<Op>(a[i], b[i]);
  } else if (sa == 1 && sb == 0) {
    const float v = *b;
    for (int64_t i = 0; i < n; ++i) y[i] = apply<Op>(a[i], v);
  } else if (sa == 0 && sb == 1) {
    const float v = *a;
    for (int64_t i = 0; i < n; ++i) y[i] = apply<Op>(v, b[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = apply<Op>(a[i * sa], b[i * sb]);
  }
}

// Output elements [e0, e1) of the flattened (d0 * d1 * d2) x n output, row piece by row
// piece (a range may start and end inside a row).
template <int Op>
void span(const FloatBinaryArgs& p, int64_t e0, int64_t e1) {
  const int64_t d1 = p.dims[1], d2 = p.dims[2], n = p.dims[3];
  for (int64_t e = e0; e < e1;) {
    const int64_t r = e / n, c = e % n, m = std::min(n - c, e1 - e);
    const int64_t i2 = r % d2, i1 = (r / d2) % d1, i0 = r / (d2 * d1);
    const float* a = p.a + i0 * p.a_st[0] + i1 * p.a_st[1] + i2 * p.a_st[2] + c * p.a_st[3];
    const float* b = p.b + i0 * p.b_st[0] + i1 * p.b_st[1] + i2 * p.b_st[2] + c * p.b_st[3];
    row<Op>(a, p.a_st[3], b, p.b_st[3], p.y + e, m);
    e += m;
  }
}

template <int Op>
void binary(const FloatBinaryArgs& p, int threads) {
  const int64_t count = p.dims[0] * p.dims[1] * p.dims[2], n = p.dims[3];
  if (count == 0 || n == 0) return;
  // split the output elements between threads, whatever the row length (one long row: an
  // operand broadcast from a single value)
  run_elementwise(count * n, kBlock, threads,
                  [&](int64_t e0, int64_t len) { span<Op>(p, e0, e0 + len); });
}

}  // namespace

void run_float_binary(const FloatBinaryArgs& a, int threads) {
  switch (a.op) {
    case kFloatAdd: binary<kFloatAdd>(a, threads); break;
    case kFloatSub: binary<kFloatSub>(a, threads); break;
    case kFloatMul: binary<kFloatMul>(a, threads); break;
    case kFloatDiv: binary<kFloatDiv>(a, threads); break;
    case kFloatMax: binary<kFloatMax>(a, threads); break;
    case kFloatMin: binary<kFloatMin>(a, threads); break;
    default: binary<kFloatPRelu>(a, threads); break;
  }
}

void run_float_clamp(const float* x, float* y, int64_t n, float lo, float hi, bool use_lo,
                     bool use_hi, int threads) {
  run_elementwise(n, kBlock, threads, [&](int64_t i0, int64_t len) {
    for (int64_t i = i0; i < i0 + len; ++i) {
      float v = x[i];
      if (use_lo) v = (std::isnan(v) || v > lo) ? v : lo;   // np.maximum(v, lo)
      if (use_hi) v = (std::isnan(v) || v < hi) ? v : hi;   // np.minimum(v, hi)
      y[i] = v;
    }
  });
}

AffineTable affine_table(const float* table) {
  for (const bool is_signed : {false, true}) {
    auto code = [&](int v) { return is_signed ? int32_t(int8_t(uint8_t(v))) : int32_t(v); };
    int zero = -1;  // the byte whose entry is +0: the zero point's
    for (int v = 0; v < 256 && zero < 0; ++v)
      if (std::signbit(table[v]) == 0 && table[v] == 0.0f) zero = v;
    if (zero < 0) continue;
    const int32_t zp = code(zero);
    // the scale: the entry of the code one above the zero point (or minus the one below)
    int up = -1, down = -1;
    for (int v = 0; v < 256; ++v) {
      if (code(v) == zp + 1) up = v;
      if (code(v) == zp - 1) down = v;
    }
    const float scale = up >= 0 ? table[up] : -table[down];
    // (normal values only: a worker thread's denormal modes cannot change them)
    bool same = std::isnormal(scale);
    for (int v = 0; v < 256 && same; ++v) {
      const float f = float(code(v) - zp) * scale;
      same = std::memcmp(&f, &table[v], sizeof f) == 0 && (f == 0.0f || std::isnormal(f));
    }
    if (same) return AffineTable{true, is_signed, zp, scale};
  }
  return AffineTable{};
}

void run_lookup8_f32(const uint8_t* x, const float* table, const AffineTable& form, float* y,
                     int64_t n, int threads) {
  const int32_t zp = form.zero_point;
  const float scale = form.scale;
  run_elementwise(n, kBlock, threads, [&](int64_t i0, int64_t len) {
    if (!form.affine) {
      for (int64_t i = i0; i < i0 + len; ++i) y[i] = table[x[i]];
    } else if (form.is_signed) {
      const int8_t* s = reinterpret_cast<const int8_t*>(x);
      for (int64_t i = i0; i < i0 + len; ++i) y[i] = float(int32_t(s[i]) - zp) * scale;
    } else {
      for (int64_t i = i0; i < i0 + len; ++i) y[i] = float(int32_t(x[i]) - zp) * scale;
    }
  });
}

}  // namespace lowp
