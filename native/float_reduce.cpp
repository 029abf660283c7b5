// ReduceSum / ReduceMean in ONNX Runtime's order (float_reduce.h); each output is computed by
// one task the same way, so results never depend on the thread count.
#include "float_reduce.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "eigen_redux.h"
#include "float_kernels.h"
#include "float_nan.h"
#include "threadpool.h"

namespace lowp {
namespace {

constexpr int64_t kPacket = 4;

// a + b as the compiled sum gives it (numbers), or with x86's NaN rule made explicit:
// of two NaNs the first operand's, quieted (lowp.ort_math.first_nan_add; the compiler may
// put a commutative add's operands either way round)
struct PlainAdd {
  float operator()(float a, float b) const { return a + b; }
};
struct FirstNanAdd {
  float operator()(float a, float b) const { return first_nan_add(a, b); }
};

// lowp.ort_math._redux_rows for one row of n values with `start` scalars before its first
// aligned packet (_redux_nan_rows's NaN order with FirstNanAdd).
template <class Add>
float eigen_row(const float* x, int64_t n, int64_t start, Add add) {
  return eigen_redux<Lanes::kReversed, false>(n, start, [x](int64_t i) { return x[i]; }, add);
}

float eigen_row(const float* x, int64_t n, int64_t start) {
  const float res = eigen_row(x, n, start, PlainAdd());
  return res == res ? res : eigen_row(x, n, start, FirstNanAdd());
}

// lowp.ort_math.mlas_m1_sums for w columns: y[j] over k rows `ld` floats apart.
template <class Add>
void m1_sums(const float* x, float* y, int64_t k, int64_t w, int64_t ld,
             std::vector<float>& part, Add add) {
  part.resize(size_t(w));
  int64_t i = 0;
  while (i < k) {
    const int64_t take = k - i >= 4 ? 4 : (k - i >= 2 ? 2 : 1);
    const float* r = x + i * ld;
    for (int64_t j = 0; j < w; ++j) part[size_t(j)] = r[j];
    for (int64_t q = 1; q < take; ++q)
      for (int64_t j = 0; j < w; ++j) part[size_t(j)] = add(part[size_t(j)], r[q * ld + j]);
    if (i == 0) {
      for (int64_t j = 0; j < w; ++j) y[j] = part[size_t(j)];
    } else {
      for (int64_t j = 0; j < w; ++j) y[j] = add(part[size_t(j)], y[j]);
    }
    i += take;
  }
}

// lowp.ort_math.in_order_sums: w columns, k rows `ld` floats apart, added in order.
template <class Add>
void in_order(const float* x, float* y, int64_t k, int64_t w, int64_t ld, Add add) {
  for (int64_t j = 0; j < w; ++j) y[j] = x[j];
  for (int64_t i = 1; i < k; ++i)
    for (int64_t j = 0; j < w; ++j) y[j] = add(y[j], x[i * ld + j]);
}

// The column sums of `form` (kReduceM1 or in order), each column whose sum is a NaN summed
// again with the NaN order.
void column_sums(int form, const float* x, float* y, int64_t k, int64_t w, int64_t ld,
                 std::vector<float>& part) {
  if (form == kReduceM1) {
    m1_sums(x, y, k, w, ld, part, PlainAdd());
  } else {
    in_order(x, y, k, w, ld, PlainAdd());
  }
  for (int64_t j = 0; j < w; ++j) {
    if (y[j] == y[j]) continue;
    if (form == kReduceM1) {
      m1_sums(x + j, y + j, k, 1, ld, part, FirstNanAdd());
    } else {
      in_order(x + j, y + j, k, 1, ld, FirstNanAdd());
    }
  }
  // (O224) ONNX Runtime's sums over leading and middle axes start from +0: a column of -0
  // sums to +0, a lone signalling NaN comes out quiet
  for (int64_t j = 0; j < w; ++j) y[j] += 0.0f;
}

// A row of n values (x[i * ld], i < n) in MLAS's global pooling orders
// (kReducePoolLanes / kReducePoolInOrder; pooling.cpp MlasPoolGlobalKernel): four lanes
// from +0, each lane's running sum the first operand, combined as (l3 + l1) + (l2 + l0)
// (the order ONNX Runtime's build adds MlasReduceAddFloat32x4's halves in, which decides
// the NaN that survives: docs/operators.md (O201)), then the rest one after another.
template <class Add>
float pool_row(const float* x, int64_t n, int64_t ld, bool lanes, Add add) {
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  const int64_t head = lanes ? n - n % 4 : 0;
  for (int64_t k = 0; k < head; k += 4)
    for (int l = 0; l < 4; ++l) acc[l] = add(acc[l], x[(k + l) * ld]);
  float total = lanes ? add(add(acc[3], acc[1]), add(acc[2], acc[0])) : 0.0f;
  for (int64_t k = head; k < n; ++k) total = add(total, x[k * ld]);
  return total;
}

// pool_row, a NaN sum summed again with the NaN order (the compiler may swap the operands
// of a plain addition, which changes only which NaN a sum gives).
float pool_row(const float* x, int64_t n, bool lanes) {
  const float total = pool_row(x, n, 1, lanes, PlainAdd());
  return total == total ? total : pool_row(x, n, 1, lanes, FirstNanAdd());
}

// pool_row on w columns at once: column j's values at x[i * ld + j] (i < n), each column
// with pool_row's additions in pool_row's order (channels-last data, one channel a column).
void pool_cols(const float* x, float* y, int64_t n, int64_t w, int64_t ld, bool lanes,
               std::vector<float>& part) {
  part.assign(size_t(4 * w), 0.0f);
  float* acc = part.data();
  const int64_t head = lanes ? n - n % 4 : 0;
  for (int64_t k = 0; k < head; k += 4)
    for (int l = 0; l < 4; ++l) {
      const float* row = x + (k + l) * ld;
      float* al = acc + l * w;
      for (int64_t j = 0; j < w; ++j) al[j] += row[j];
    }
  for (int64_t j = 0; j < w; ++j)
    y[j] = lanes ? (acc[3 * w + j] + acc[w + j]) + (acc[2 * w + j] + acc[j]) : 0.0f;
  for (int64_t k = head; k < n; ++k)
    for (int64_t j = 0; j < w; ++j) y[j] += x[k * ld + j];
  for (int64_t j = 0; j < w; ++j)
    if (y[j] != y[j]) y[j] = pool_row(x + j, n, ld, lanes, FirstNanAdd());
}

// fn(o, j0, w, scratch) for every outer index o and span [j0, j0 + w) of `span` positions
// of the inner axis (the last one shorter), one task each, grouped into chunks of about
// 2^14 values read; each chunk has its own default-made `scratch`.
template <class Scratch, class Fn>
void for_each_span(int64_t outer, int64_t k, int64_t inner, int64_t span, int threads,
                   Fn fn) {
  const int64_t spans = (inner + span - 1) / span;
  run_elementwise(outer * spans, std::max<int64_t>(1, (int64_t(1) << 14) / (k * span)), threads,
                  [&](int64_t t0, int64_t len) {
                    Scratch scratch;
                    for (int64_t t = t0; t < t0 + len; ++t) {
                      const int64_t o = t / spans, j0 = (t % spans) * span;
                      fn(o, j0, std::min(span, inner - j0), scratch);
                    }
                  });
}

}  // namespace

void run_float_reduce_sum(const ReduceArgs& a, int threads) {
  if (a.outer <= 0 || a.inner <= 0 || a.k <= 0) return;
  const float divisor = float(a.k);
  auto finish = [&](float* y, int64_t len) {
    if (a.mean)
      for (int64_t j = 0; j < len; ++j) y[j] = y[j] / divisor;
  };
  if ((a.form == kReducePoolLanes || a.form == kReducePoolInOrder) && a.inner > 1) {
    // channels-last: one task per outer index and span of the inner axis
    for_each_span<std::vector<float>>(
        a.outer, a.k, a.inner, a.inner > 1024 ? 256 : a.inner, threads,
        [&](int64_t o, int64_t j0, int64_t w, std::vector<float>& part) {
          float* y = a.y + o * a.inner + j0;
          pool_cols(a.x + o * a.k * a.inner + j0, y, a.k, w, a.inner,
                    a.form == kReducePoolLanes, part);
          finish(y, w);
        });
    return;
  }
  if (a.form == kReducePoolLanes || a.form == kReducePoolInOrder) {
    run_elementwise(a.outer, std::max<int64_t>(1, (int64_t(1) << 14) / a.k), threads,
                    [&](int64_t r0, int64_t len) {
                      for (int64_t r = r0; r < r0 + len; ++r)
                        a.y[r] = pool_row(a.x + r * a.k, a.k, a.form == kReducePoolLanes);
                      finish(a.y + r0, len);
                    });
    return;
  }
  if (a.form == kReduceEigenRows) {
    run_elementwise(a.outer, std::max<int64_t>(1, (int64_t(1) << 14) / a.k), threads,
                    [&](int64_t r0, int64_t len) {
                      for (int64_t r = r0; r < r0 + len; ++r)
                        a.y[r] = eigen_row(a.x + r * a.k, a.k,
                                           (kPacket - (r * a.k) % kPacket) % kPacket);
                      finish(a.y + r0, len);
                    });
    return;
  }
  // one task per outer index and span of the inner axis
  for_each_span<std::vector<float>>(
      a.outer, a.k, a.inner, a.inner > 4096 ? 1024 : a.inner, threads,
      [&](int64_t o, int64_t j0, int64_t w, std::vector<float>& part) {
        const float* x = a.x + o * a.k * a.inner + j0;
        float* y = a.y + o * a.inner + j0;
        column_sums(a.form, x, y, a.k, w, a.inner, part);
        finish(y, w);
      });
}

float mlas_global_max(const float* x, int64_t k, int64_t s, int pool) {
  const auto maxps = [](float a, float b) { return a > b ? a : b; };
  const float low = std::numeric_limits<float>::lowest();
  int64_t j = 0;
  float m = low;
  if (pool == kPoolNchwc) {
    for (; j < k; ++j) m = maxps(m, x[j * s]);
    return m;
  }
  float acc[4] = {low, low, low, low};
  for (; j + 4 <= k; j += 4)
    for (int l = 0; l < 4; ++l) acc[l] = maxps(acc[l], x[(j + l) * s]);
  m = maxps(maxps(acc[0], acc[2]), maxps(acc[1], acc[3]));
  for (; j < k; ++j) m = m < x[j * s] ? x[j * s] : m;  // std::max
  return m;
}

void run_float_reduce_max(const float* x, float* y, int64_t outer, int64_t k, int64_t inner,
                          int pool, int threads) {
  // (where the order decides the bits: MLAS's order for a GlobalMaxPool)
  const auto order = [pool, k, inner](const float* xs, float v) {
    const bool open = v != v || v == 0.0f || v == -std::numeric_limits<float>::infinity();
    return pool != kPoolSet && open ? mlas_global_max(xs, k, inner, pool) : v;
  };
  // one task per outer index and span of the inner axis. The maximum is taken on integer
  // keys that order float32 values as numbers (sign-magnitude bits to two's complement:
  // b ^ ((b >> 31) & 0x7fffffff)), where -0 (key -1) sorts below +0 (key 0), so +0 wins
  // over -0 and equal nonzero values are the same bits; NaN, whatever its key, is noted
  // apart (a running maximum of the magnitude bits, above +inf's) and gives the default
  // NaN. Integer compares vectorize, float ones with the zero rule did not; each path's
  // kernel (FloatKernels::max_keys) does so with its own vectors.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  auto bits = [](float v) {
    int32_t b;
    std::memcpy(&b, &v, sizeof b);
    return b;
  };
  auto key = [&](float v) {
    const int32_t b = bits(v);
    return b ^ ((b >> 31) & 0x7fffffff);
  };
  auto value = [nan](int32_t best, int32_t mag) {  // the key's value, or NaN if one was seen
    const int32_t b = best ^ ((best >> 31) & 0x7fffffff);
    float v;
    std::memcpy(&v, &b, sizeof v);
    return mag > 0x7f800000 ? nan : v;
  };
  const int32_t lowest = key(-std::numeric_limits<float>::infinity());
  if (inner == 1) {
    // rows (a last axis reduced): runs of rows per task, each row's keys in one pass; one
    // task per row would cost more than its few values (AttaCut's max over 3 columns)
    run_elementwise(outer, std::max<int64_t>(1, (int64_t(1) << 14) / std::max<int64_t>(1, k)),
                    threads, [&](int64_t r0, int64_t len) {
                      for (int64_t r = r0; r < r0 + len; ++r) {
                        const float* xr = x + r * k;
                        int32_t best = lowest, mag = 0;
                        for (int64_t j = 0; j < k; ++j) {
                          best = std::max(best, key(xr[j]));
                          mag = std::max(mag, bits(xr[j]) & 0x7fffffff);
                        }
                        y[r] = order(xr, value(best, mag));
                      }
                    });
    return;
  }
  const FloatKernels& kernels = active_float_kernels();  // (the path's vector width)
  using Keys = std::pair<std::vector<int32_t>, std::vector<int32_t>>;  // best, magnitude
  for_each_span<Keys>(
      outer, k, inner, inner > 4096 ? 1024 : inner, threads,
      [&](int64_t o, int64_t j0, int64_t w, Keys& keys) {
        keys.first.assign(size_t(w), lowest);
        keys.second.assign(size_t(w), 0);
        int32_t* const bp = keys.first.data();
        int32_t* const mag = keys.second.data();
        kernels.max_keys(x + o * k * inner + j0, k, inner, w, bp, mag);
        float* ys = y + o * inner + j0;
        const float* xs = x + o * k * inner + j0;
        for (int64_t j = 0; j < w; ++j) ys[j] = order(xs + j, value(bp[j], mag[j]));
      });
}

namespace {

// ONNX Runtime's select (Eigen's pmax / pmin, maxps with the operands reversed, std::max):
// b where it is larger (smaller), else a, so a NaN or a tie met later never replaces a.
template <bool kMin>
inline float keep_first(float a, float b) {
  return (kMin ? b < a : b > a) ? b : a;
}

// lowp.ort_math._eigen_extreme_block for one row of n values with `start` scalars before its
// first aligned packet.
template <bool kMin>
float eigen_extreme_row(const float* x, int64_t n, int64_t start) {
  return eigen_redux<Lanes::kPaired, false>(n, start, [x](int64_t i) { return x[i]; },
                                            keep_first<kMin>);
}

// columns [j0, j1) of one outer index of (k, inner) x taken one row at a time
template <bool kMin>
void extreme_in_order(const float* x, float* y, int64_t k, int64_t inner, int64_t j0,
                      int64_t j1) {
  for (int64_t j = j0; j < j1; ++j) y[j] = x[j];
  for (int64_t i = 1; i < k; ++i) {
    const float* row = x + i * inner;
    for (int64_t j = j0; j < j1; ++j) y[j] = keep_first<kMin>(y[j], row[j]);
  }
}

// columns [j0, j1) by Eigen's packetwise redux (lowp.ort_math._krk_extreme)
template <bool kMin>
void extreme_packetwise(const float* x, float* y, int64_t k, int64_t inner, int64_t j0,
                        int64_t j1) {
  for (int64_t j = j0; j < j1; ++j) y[j] = x[j];
  const int64_t quad = (k - 1) & ~int64_t(3);
  int64_t i = 1;
  for (; i < quad; i += 4) {
    const float* r1 = x + i * inner;
    const float* r2 = r1 + inner;
    const float* r3 = r2 + inner;
    const float* r4 = r3 + inner;
    for (int64_t j = j0; j < j1; ++j)
      y[j] = keep_first<kMin>(y[j], keep_first<kMin>(keep_first<kMin>(r1[j], r2[j]),
                                                     keep_first<kMin>(r3[j], r4[j])));
  }
  for (; i < k; ++i) {
    const float* row = x + i * inner;
    for (int64_t j = j0; j < j1; ++j) y[j] = keep_first<kMin>(y[j], row[j]);
  }
}

template <bool kMin>
void reduce_extreme(const float* x, float* y, int64_t a, int64_t b, int64_t c, int form,
                    int threads) {
  if (form == kExtremeRows) {
    run_elementwise(a, std::max<int64_t>(1, (int64_t(1) << 14) / b), threads,
                    [&](int64_t r0, int64_t len) {
                      for (int64_t r = r0; r < r0 + len; ++r)
                        y[r] = eigen_extreme_row<kMin>(x + r * b, b,
                                                       (kPacket - (r * b) % kPacket) % kPacket);
                    });
    return;
  }
  if (form == kExtremeRkr) {
    run_elementwise(b, std::max<int64_t>(1, (int64_t(1) << 14) / std::max<int64_t>(1, a * c)),
                    threads, [&](int64_t d0, int64_t len) {
                      for (int64_t d = d0; d < d0 + len; ++d) {
                        float v = x[d * c];
                        for (int64_t i = 0; i < a; ++i) {
                          const int64_t at = (i * b + d) * c;
                          v = keep_first<kMin>(
                              v, eigen_extreme_row<kMin>(x + at, c,
                                                         (kPacket - at % kPacket) % kPacket));
                        }
                        y[d] = v;
                      }
                    });
    return;
  }
  for_each_span<int>(
      a, b, c, c > 4096 ? 1024 : c, threads, [&](int64_t o, int64_t j0, int64_t w, int&) {
        const float* xo = x + o * b * c;
        float* yo = y + o * c;
        const int64_t j1 = j0 + w;
        if (form != kExtremeKrk) {
          extreme_in_order<kMin>(xo, yo, b, c, j0, j1);
          return;
        }
        // the packets: from the first 16-byte boundary of this outer index's outputs
        const int64_t head = std::min((kPacket - (o * c) % kPacket) % kPacket, c);
        const int64_t end = head + (c - head) / kPacket * kPacket;
        const int64_t p0 = std::max(j0, head), p1 = std::min(j1, end);
        if (p0 >= p1) {
          extreme_in_order<kMin>(xo, yo, b, c, j0, j1);
          return;
        }
        extreme_in_order<kMin>(xo, yo, b, c, j0, p0);
        extreme_packetwise<kMin>(xo, yo, b, c, p0, p1);
        extreme_in_order<kMin>(xo, yo, b, c, p1, j1);
      });
}

}  // namespace

float ort_row_extreme(const float* x, int64_t n, int64_t start, bool is_min) {
  return is_min ? eigen_extreme_row<true>(x, n, start) : eigen_extreme_row<false>(x, n, start);
}

void run_float_reduce_extreme(const float* x, float* y, int64_t a, int64_t b, int64_t c,
                              int form, bool is_min, int threads) {
  if (is_min) {
    reduce_extreme<true>(x, y, a, b, c, form, threads);
  } else {
    reduce_extreme<false>(x, y, a, b, c, form, threads);
  }
}

namespace {

inline float maxps(float acc, float v) { return acc > v ? acc : v; }
inline float std_max(float acc, float v) { return acc < v ? v : acc; }

// One output of a channels-last MaxPool (float_reduce.h) into acc[0..c), `col` c floats of
// scratch.
void max_pool_channels_last_one(const MaxPoolChannelsLastArgs& a, const float* xi, int64_t oy,
                                int64_t ox, float* acc, float* col) {
  const int64_t c = a.c;
  const float lowest = std::numeric_limits<float>::lowest();
  if (a.order == kMaxMlasVector) {
    const int64_t vec_end = a.w - a.w % 4;
    for (int j = 0; j < a.kw; ++j) {
      const int64_t ix = ox * a.sw - a.pw + int64_t(j) * a.dw;
      float* cj = j == 0 ? acc : col;
      std::fill(cj, cj + c, lowest);
      if (ix >= 0 && ix < a.w) {
        bool first = true;
        for (int i = 0; i < a.kh; ++i) {
          const int64_t iy = oy * a.sh - a.ph + int64_t(i) * a.dh;
          if (iy < 0 || iy >= a.h) continue;
          const float* t = xi + (iy * a.w + ix) * c;
          if (first) std::copy(t, t + c, cj);
          else if (ix < vec_end)
            for (int64_t q = 0; q < c; ++q) cj[q] = maxps(cj[q], t[q]);
          else
            for (int64_t q = 0; q < c; ++q) cj[q] = std_max(cj[q], t[q]);
          first = false;
        }
      }
      if (j > 0)
        for (int64_t q = 0; q < c; ++q) acc[q] = maxps(acc[q], col[q]);
    }
    return;
  }
  std::fill(acc, acc + c, lowest);
  bool started = false;
  for (int i = 0; i < a.kh; ++i) {
    const int64_t iy = oy * a.sh - a.ph + int64_t(i) * a.dh;
    if (iy < 0 || iy >= a.h) continue;
    for (int j = 0; j < a.kw; ++j) {
      const int64_t ix = ox * a.sw - a.pw + int64_t(j) * a.dw;
      if (ix < 0 || ix >= a.w) continue;
      const float* t = xi + (iy * a.w + ix) * c;
      if (a.order == kMaxNchwc)
        for (int64_t q = 0; q < c; ++q) acc[q] = maxps(acc[q], t[q]);
      else if (a.order == kMaxLoop && !started)
        std::copy(t, t + c, acc);
      else
        for (int64_t q = 0; q < c; ++q) acc[q] = std_max(acc[q], t[q]);
      started = true;
    }
  }
}

}  // namespace

void run_float_max_pool_channels_last(const MaxPoolChannelsLastArgs& a, int threads) {
  // one task per run of output rows (image, oy); every output is computed by one task the
  // same way, so the result does not depend on the thread count
  if (a.n <= 0 || a.oh <= 0 || a.ow <= 0 || a.c <= 0) return;
  const int64_t c = a.c;
  const int64_t row_work = std::max<int64_t>(1, a.ow * a.kh * a.kw * c);
  run_elementwise(a.n * a.oh, std::max<int64_t>(1, (int64_t(1) << 15) / row_work), threads,
                  [&](int64_t r0, int64_t len) {
                    std::vector<float> col(static_cast<size_t>(c));
                    for (int64_t r = r0; r < r0 + len; ++r) {
                      const int64_t img = r / a.oh, oy = r % a.oh;
                      const float* xi = a.x + img * a.h * a.w * c;
                      float* yr = a.y + r * a.ow * c;
                      for (int64_t ox = 0; ox < a.ow; ++ox)
                        max_pool_channels_last_one(a, xi, oy, ox, yr + ox * c, col.data());
                    }
                  });
}

void run_float_average_pool_rowmajor(const AveragePoolRowMajorArgs& a, int threads) {
  // one task per run of output rows (plane, oy); each output summed by one task the same
  // way, so the result does not depend on the thread count
  if (a.planes <= 0 || a.oh <= 0 || a.ow <= 0) return;
  const int64_t row_work = std::max<int64_t>(1, a.ow * a.kh * a.kw);
  run_elementwise(a.planes * a.oh, std::max<int64_t>(1, (int64_t(1) << 15) / row_work), threads,
                  [&](int64_t r0, int64_t len) {
                    for (int64_t r = r0; r < r0 + len; ++r) {
                      const int64_t p = r / a.oh, oy = r % a.oh;
                      const float* xp = a.x + p * a.h * a.w;
                      const float* cnt = a.counts + oy * a.ow;
                      float* yr = a.y + r * a.ow;
                      for (int64_t ox = 0; ox < a.ow; ++ox) {
                        auto window_sum = [&](auto add) {
                          float sum = 0.0f;
                          for (int i = 0; i < a.kh; ++i) {
                            const int64_t iy = oy * a.sh - a.ph + int64_t(i) * a.dh;
                            if (iy < 0 || iy >= a.h) continue;
                            for (int j = 0; j < a.kw; ++j) {
                              const int64_t ix = ox * a.sw - a.pw + int64_t(j) * a.dw;
                              if (ix >= 0 && ix < a.w) sum = add(sum, xp[iy * a.w + ix]);
                            }
                          }
                          return sum;
                        };
                        float sum = window_sum(PlainAdd());
                        // a NaN sum again with the NaN order (the running sum's NaN stays;
                        // a compiler may swap a plain addition's operands): (O201)
                        if (sum != sum) sum = window_sum(FirstNanAdd());
                        yr[ox] = sum / cnt[ox];
                      }
                    }
                  });
}

}  // namespace lowp
