// Driver layer: 8-bit lookup tables (O13). y[i] = table[c(i) * 256 + x[i]] with one table
// (c = 0) or one per channel of the last axis (c = i % channels); and tables of a pair of
// 8-bit values, y = table[(a << 8) | b] with numpy broadcasting (quantized Add and Mul). The single-table case has
// an AVX-512 VBMI kernel (lut_vbmi.cpp), used on the avx512vnni path when the CPU has VBMI,
// and so do per-channel tables of a multiple of 16 channels (AVX-512 gathers, same file);
// everything else runs the portable loop. A lookup is exact on every path.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "dispatch.h"
#include "qmatmul_rows.h"
#include "threadpool.h"

namespace lowp {

void lut8_vbmi(const uint8_t* x, const uint8_t* table, uint8_t* y, int64_t n);
void lut8_channels_avx512(const uint8_t* x, const uint8_t* table, uint8_t* y, int64_t n,
                          int64_t channels, int64_t c0);
void qmatmul_rows_avx512(const QMatMulArgs& q, int64_t r0, int64_t r1);

namespace {

void lut8_portable(const uint8_t* x, const uint8_t* table, uint8_t* y, int64_t n,
                   int64_t channels, int64_t c0) {
  if (channels == 1) {
    for (int64_t i = 0; i < n; ++i) y[i] = table[x[i]];
    return;
  }
  // the first pixel's remaining channels, then whole pixels (a branch-free inner loop over
  // the channels' tables), then the last pixel's first channels
  int64_t i = 0;
  for (int64_t c = c0; c0 != 0 && c < channels && i < n; ++c, ++i)
    y[i] = table[c * 256 + x[i]];
  // (eight independent lookups per step: the loads of one do not wait for the store of the
  // one before, which the compiler must otherwise assume may alias the table)
  const int64_t c8 = channels / 8 * 8;
  for (; i + channels <= n; i += channels) {
    const uint8_t* xs = x + i;
    uint8_t* ys = y + i;
    int64_t c = 0;
    for (; c < c8; c += 8) {
      uint8_t v[8];
      for (int k = 0; k < 8; ++k) v[k] = table[(c + k) * 256 + xs[c + k]];
      for (int k = 0; k < 8; ++k) ys[c + k] = v[k];
    }
    for (; c < channels; ++c) ys[c] = table[c * 256 + xs[c]];
  }
  for (int64_t c = 0; i < n; ++c, ++i) y[i] = table[c * 256 + x[i]];
}

// One row of n outputs; the specialised loops are the common strides (contiguous, or one
// operand constant along the row: a per-channel scale of a squeeze-excitation block).
void pair_row(const uint8_t* a, int64_t sa, const uint8_t* b, int64_t sb, const uint8_t* t,
              uint8_t* y, int64_t n) {
  if (sa == 1 && sb == 1) {
    for (int64_t j = 0; j < n; ++j) y[j] = t[(unsigned(a[j]) << 8) | b[j]];
  } else if (sa == 1 && sb == 0) {
    const uint8_t* tb = t + b[0];
    for (int64_t j = 0; j < n; ++j) y[j] = tb[unsigned(a[j]) << 8];
  } else if (sa == 0 && sb == 1) {
    const uint8_t* ta = t + (unsigned(a[0]) << 8);
    for (int64_t j = 0; j < n; ++j) y[j] = ta[b[j]];
  } else {
    for (int64_t j = 0; j < n; ++j) y[j] = t[(unsigned(a[j * sa]) << 8) | b[j * sb]];
  }
}

bool vbmi_usable() {
  static const bool has = __builtin_cpu_supports("avx512vbmi") &&
                          __builtin_cpu_supports("avx512bw");
  const std::string name = active_table()->name;
  return has && (name == "avx512vnni" || name == "amx");
}

}  // namespace

void run_lut8(const uint8_t* x, const uint8_t* table, uint8_t* y, int64_t n, int64_t channels,
              int threads) {
  if (n <= 0) return;
  const bool vbmi = channels == 1 && vbmi_usable();
  // per-channel tables in groups of 16 channels: gathers (the same bytes; faster than the
  // byte loop, docs/native.md)
  const bool gather = channels % 16 == 0 && channels < (int64_t(1) << 23) && vbmi_usable();
  auto part = [&](int64_t i0, int64_t len) {
    if (vbmi)
      lut8_vbmi(x + i0, table, y + i0, len);
    else if (gather)
      lut8_channels_avx512(x + i0, table, y + i0, len, channels, i0 % channels);
    else
      lut8_portable(x + i0, table, y + i0, len, channels, i0 % channels);
  };
  // memory-bound: split only when every thread gets a sizeable run
  run_elementwise(n, int64_t(1) << 17, threads, part);
}

void run_lut_pair(const PairLutArgs& p, int threads) {
  const int64_t count = p.dims[0] * p.dims[1] * p.dims[2], n = p.dims[3];
  if (count == 0 || n == 0) return;
  const int64_t d1 = p.dims[1], d2 = p.dims[2];
  // output elements split between threads whatever the row length, row piece by row piece
  run_elementwise(count * n, int64_t(1) << 17, threads, [&](int64_t e0, int64_t len) {
    for (int64_t e = e0; e < e0 + len;) {
      const int64_t r = e / n, c = e % n, m = std::min(n - c, e0 + len - e);
      const int64_t i2 = r % d2, i1 = (r / d2) % d1, i0 = r / (d2 * d1);
      pair_row(p.a + i0 * p.a_st[0] + i1 * p.a_st[1] + i2 * p.a_st[2] + c * p.a_st[3],
               p.a_st[3],
               p.b + i0 * p.b_st[0] + i1 * p.b_st[1] + i2 * p.b_st[2] + c * p.b_st[3],
               p.b_st[3], p.table, p.y + e, m);
      e += m;
    }
  });
}

namespace {

// The largest of n bytes (as unsigned after xor with flip), contiguous: a loop the compiler
// vectorizes.
int row_max(const uint8_t* x, int64_t n, uint8_t flip) {
  uint8_t mx = 0;
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t v = uint8_t(x[i] ^ flip);
    mx = v > mx ? v : mx;
  }
  return mx;
}

// The float32 sums of G contiguous rows of n, each element after element as (O17) orders
// them: the rows interleaved, so that G independent chains of additions overlap.
template <int G>
void row_sums(const uint8_t* const* x, const float* const* t, int64_t n, uint8_t flip,
              float* sums) {
  float s[G];
  for (int k = 0; k < G; ++k) s[k] = t[k][uint8_t(x[k][0] ^ flip)];
  for (int64_t i = 1; i < n; ++i)
    for (int k = 0; k < G; ++k) s[k] += t[k][uint8_t(x[k][i] ^ flip)];
  for (int k = 0; k < G; ++k) sums[k] = s[k];
}

}  // namespace

void run_qsoftmax_rows(const QSoftmaxArgs& a, int threads) {
  if (a.rows <= 0 || a.n <= 0) return;
  const int64_t n = a.n, inner = a.inner;
  // signed values as their unsigned order: the distance from the maximum is the same
  const uint8_t flip = a.is_signed ? 0x80 : 0x00;
  const double lo = double(a.qmin) - double(a.zero_point) - 1.0,
               hi = double(a.qmax) - double(a.zero_point) + 1.0, magic = 6755399441055744.0;
  auto quantize = [&](float e, double sum) {
    // nearbyint without a libm call (this file has no SSE4.1 round): clamped to one
    // past the bounds first, the value is below 2^52, where adding and subtracting
    // 1.5 * 2^52 rounds half to even exactly; the clamp after it gives the same bound
    double q = double(e) * a.inv_scale / sum;
    q = std::min(std::max(q, lo), hi);
    q = (q + magic) - magic;
    q = std::min(std::max(q + double(a.zero_point), double(a.qmin)), double(a.qmax));
    const int v = int(q);
    return uint8_t(a.is_signed ? uint8_t(int8_t(v)) : uint8_t(v));
  };
  // long contiguous rows: the quotients of the 256 possible bytes once per row, then a
  // lookup (the same value for the same byte, so exact), instead of a division per element
  const bool by_table = inner == 1 && n >= 1024;
  const bool vbmi = by_table && vbmi_usable();
  run_elementwise(a.rows, std::max<int64_t>(1, (int64_t(1) << 14) / n), threads,
                  [&](int64_t r0, int64_t len) {
    if (inner == 1) {
      constexpr int kG = 8;
      for (int64_t r = r0; r < r0 + len; r += kG) {
        const int g = int(std::min<int64_t>(kG, r0 + len - r));
        const uint8_t* xs[kG];
        const float* ts[kG];
        float sums[kG];
        for (int k = 0; k < g; ++k) {
          xs[k] = a.x + (r + k) * n;
          ts[k] = a.table + (255 - row_max(xs[k], n, flip));  // t[v] = table[v - max + 255]
        }
        if (g == kG)
          row_sums<kG>(xs, ts, n, flip, sums);
        else
          for (int k = 0; k < g; ++k) row_sums<1>(xs + k, ts + k, n, flip, sums + k);
        for (int k = 0; k < g; ++k) {
          const uint8_t* x = xs[k];
          uint8_t* y = a.y + (r + k) * n;
          const double sum = double(sums[k]);
          if (by_table) {
            uint8_t tb[256];
            for (int v = 0; v < 256; ++v) tb[v] = quantize(ts[k][uint8_t(v ^ flip)], sum);
            if (vbmi)
              lut8_vbmi(x, tb, y, n);
            else
              lut8_portable(x, tb, y, n, 1, 0);
          } else {
            for (int64_t i = 0; i < n; ++i) y[i] = quantize(ts[k][uint8_t(x[i] ^ flip)], sum);
          }
        }
      }
      return;
    }
    for (int64_t r = r0; r < r0 + len; ++r) {
      const int64_t base = (r / inner) * n * inner + r % inner;
      const uint8_t* x = a.x + base;
      uint8_t* y = a.y + base;
      int mx = 0;
      for (int64_t i = 0; i < n; ++i) mx = std::max(mx, int(uint8_t(x[i * inner] ^ flip)));
      const float* t = a.table + (255 - mx);  // t[v] = table[v - max + 255]
      float s = t[uint8_t(x[0] ^ flip)];
      for (int64_t i = 1; i < n; ++i) s += t[uint8_t(x[i * inner] ^ flip)];
      const double sum = double(s);
      for (int64_t i = 0; i < n; ++i) y[i * inner] = quantize(t[uint8_t(x[i * inner] ^ flip)], sum);
    }
  });
}

void run_qmatmul_acts(const QMatMulArgs& q, int threads) {
  if (q.batch <= 0 || q.m <= 0 || q.n <= 0) return;
  const bool wide = vbmi_usable();   // the avx512vnni path on this CPU: 16-float vectors
  // rows split between threads (enough of them that a thread's share is worth waking it)
  run_elementwise(q.batch * q.m, std::max<int64_t>(1, (int64_t(1) << 15) / (q.k * q.n + 1)),
                  threads, [&](int64_t r0, int64_t len) {
    if (wide)
      qmatmul_rows_avx512(q, r0, r0 + len);
    else
      qmatmul_rows(q, r0, r0 + len);
  });
}

}  // namespace lowp
