// Driver layer: element-wise comparisons with broadcasting (see compare.h).
#include "compare.h"

#include "threadpool.h"

namespace lowp {
namespace {

template <typename T, typename Cmp>
void compare_rows(const CompareArgs& p, int64_t r0, int64_t len, Cmp cmp) {
  const T* a = static_cast<const T*>(p.a);
  const T* b = static_cast<const T*>(p.b);
  const int64_t d1 = p.dims[1], d2 = p.dims[2], d3 = p.dims[3];
  for (int64_t r = r0; r < r0 + len; ++r) {  // r: one row of the innermost axis
    const int64_t i2 = r % d2, i1 = (r / d2) % d1, i0 = r / (d2 * d1);
    const T* ar = a + i0 * p.a_st[0] + i1 * p.a_st[1] + i2 * p.a_st[2];
    const T* br = b + i0 * p.b_st[0] + i1 * p.b_st[1] + i2 * p.b_st[2];
    uint8_t* y = p.y + r * d3;
    const int64_t sa = p.a_st[3], sb = p.b_st[3];
    // the common strides apart, so that the compiler vectorizes them (magika's one-hot
    // Equal of (n, 2048, 1) ids with 257 classes: a scalar against a contiguous row)
    if (sa == 1 && sb == 1) {
      for (int64_t i = 0; i < d3; ++i) y[i] = cmp(ar[i], br[i]) ? 1 : 0;
    } else if (sa == 0 && sb == 1) {
      const T u = ar[0];
      for (int64_t i = 0; i < d3; ++i) y[i] = cmp(u, br[i]) ? 1 : 0;
    } else if (sa == 1 && sb == 0) {
      const T v = br[0];
      for (int64_t i = 0; i < d3; ++i) y[i] = cmp(ar[i], v) ? 1 : 0;
    } else {
      for (int64_t i = 0; i < d3; ++i) y[i] = cmp(ar[i * sa], br[i * sb]) ? 1 : 0;
    }
  }
}

template <typename T>
void compare_typed(const CompareArgs& p, int64_t r0, int64_t len) {
  switch (p.op) {
    case kEqual: compare_rows<T>(p, r0, len, [](T x, T y) { return x == y; }); break;
    case kLess: compare_rows<T>(p, r0, len, [](T x, T y) { return x < y; }); break;
    case kGreater: compare_rows<T>(p, r0, len, [](T x, T y) { return x > y; }); break;
    case kLessOrEqual: compare_rows<T>(p, r0, len, [](T x, T y) { return x <= y; }); break;
    default: compare_rows<T>(p, r0, len, [](T x, T y) { return x >= y; });
  }
}

template <typename T>
void where_rows(const WhereArgs& p, int64_t r0, int64_t len) {
  const T* a = static_cast<const T*>(p.a);
  const T* b = static_cast<const T*>(p.b);
  const int64_t d1 = p.dims[1], d2 = p.dims[2], d3 = p.dims[3];
  const int64_t sc = p.c_st[3], sa = p.a_st[3], sb = p.b_st[3];
  for (int64_t r = r0; r < r0 + len; ++r) {  // r: one row of the innermost axis
    const int64_t i2 = r % d2, i1 = (r / d2) % d1, i0 = r / (d2 * d1);
    const uint8_t* cr = p.c + i0 * p.c_st[0] + i1 * p.c_st[1] + i2 * p.c_st[2];
    const T* ar = a + i0 * p.a_st[0] + i1 * p.a_st[1] + i2 * p.a_st[2];
    const T* br = b + i0 * p.b_st[0] + i1 * p.b_st[1] + i2 * p.b_st[2];
    T* y = static_cast<T*>(p.y) + r * d3;
    // (the sign bit alone is -0; every other pattern is copied, NaN payloads too)
    const T sign = T(T(1) << (8 * sizeof(T) - 1));
    if (p.float_zero == 1) {
      for (int64_t i = 0; i < d3; ++i) {
        const T v = ar[i * sa];
        y[i] = cr[i * sc] ? (v == sign ? T(0) : v) : br[i * sb];
      }
    } else if (p.float_zero == 2) {
      for (int64_t i = 0; i < d3; ++i) {
        const T v = br[i * sb];
        y[i] = cr[i * sc] ? ar[i * sa] : (v == sign ? T(0) : v);
      }
    } else {
      for (int64_t i = 0; i < d3; ++i) y[i] = cr[i * sc] ? ar[i * sa] : br[i * sb];
    }
  }
}

// U: the unsigned type of T's size (wraparound arithmetic without undefined behaviour)
template <typename T, typename U, typename Op>
void integer_rows(const IntegerBinaryArgs& p, int64_t r0, int64_t len, Op op) {
  const T* a = static_cast<const T*>(p.a);
  const T* b = static_cast<const T*>(p.b);
  const int64_t d1 = p.dims[1], d2 = p.dims[2], d3 = p.dims[3];
  const int64_t sa = p.a_st[3], sb = p.b_st[3];
  for (int64_t r = r0; r < r0 + len; ++r) {  // r: one row of the innermost axis
    const int64_t i2 = r % d2, i1 = (r / d2) % d1, i0 = r / (d2 * d1);
    const T* ar = a + i0 * p.a_st[0] + i1 * p.a_st[1] + i2 * p.a_st[2];
    const T* br = b + i0 * p.b_st[0] + i1 * p.b_st[1] + i2 * p.b_st[2];
    T* y = static_cast<T*>(p.y) + r * d3;
    for (int64_t i = 0; i < d3; ++i)
      y[i] = T(op(U(ar[i * sa]), U(br[i * sb])));
  }
}

template <typename T, typename U>
void integer_typed(const IntegerBinaryArgs& p, int64_t r0, int64_t len) {
  switch (p.op) {
    case kIntAdd: integer_rows<T, U>(p, r0, len, [](U x, U y) { return U(x + y); }); break;
    case kIntSub: integer_rows<T, U>(p, r0, len, [](U x, U y) { return U(x - y); }); break;
    case kIntMul: integer_rows<T, U>(p, r0, len, [](U x, U y) { return U(x * y); }); break;
    case kIntAnd: integer_rows<T, U>(p, r0, len, [](U x, U y) { return U(x & y); }); break;
    case kIntOr: integer_rows<T, U>(p, r0, len, [](U x, U y) { return U(x | y); }); break;
    default: integer_rows<T, U>(p, r0, len, [](U x, U y) { return U(x ^ y); });
  }
}

}  // namespace

void run_integer_binary(const IntegerBinaryArgs& p, int threads) {
  const int64_t rows = p.dims[0] * p.dims[1] * p.dims[2];
  if (rows <= 0 || p.dims[3] <= 0) return;
  run_elementwise(rows, std::max<int64_t>(1, (int64_t(1) << 14) / p.dims[3]), threads,
                  [&](int64_t r0, int64_t len) {
    if (p.type == kIntInt64) integer_typed<int64_t, uint64_t>(p, r0, len);
    else if (p.type == kIntInt32) integer_typed<int32_t, uint32_t>(p, r0, len);
    else integer_typed<uint8_t, uint8_t>(p, r0, len);
  });
}

void run_where(const WhereArgs& p, int threads) {
  const int64_t rows = p.dims[0] * p.dims[1] * p.dims[2];
  if (rows <= 0 || p.dims[3] <= 0) return;
  run_elementwise(rows, std::max<int64_t>(1, (int64_t(1) << 14) / p.dims[3]), threads,
                  [&](int64_t r0, int64_t len) {
    switch (p.size) {
      case 1: where_rows<uint8_t>(p, r0, len); break;
      case 2: where_rows<uint16_t>(p, r0, len); break;
      case 8: where_rows<uint64_t>(p, r0, len); break;
      default: where_rows<uint32_t>(p, r0, len);
    }
  });
}

void run_compare(const CompareArgs& p, int threads) {
  const int64_t rows = p.dims[0] * p.dims[1] * p.dims[2];
  if (rows <= 0 || p.dims[3] <= 0) return;
  run_elementwise(rows, std::max<int64_t>(1, (int64_t(1) << 14) / p.dims[3]), threads,
                  [&](int64_t r0, int64_t len) {
    if (p.type == kCmpInt64) compare_typed<int64_t>(p, r0, len);
    else if (p.type == kCmpInt32) compare_typed<int32_t>(p, r0, len);
    else compare_typed<float>(p, r0, len);
  });
}

}  // namespace lowp
