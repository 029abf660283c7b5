// Driver layer: quantized Add / Mul with broadcasting (qbinary.h). The portable row rounds
// with the 1.5 * 2^23 trick after clamping (exact within the 8-bit clamp bounds); std::fma
// rounds once, as the vector kernel's fma does; the build's -ffp-contract=off keeps the
// Mul's product, scaling and zero-point addition three separate roundings.
#include "qbinary.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "dispatch.h"
#include "threadpool.h"

namespace lowp {

void qbinary_row_portable(const QBinaryArgs& p, const uint8_t* a, int64_t sa, const uint8_t* b,
                          int64_t sb, uint8_t* y, int64_t n) {
  const float lo = float(p.qmin), hi = float(p.qmax), magic = 12582912.0f;
  const float za = float(p.za), zb = float(p.zb);
  for (int64_t j = 0; j < n; ++j) {
    const float va = p.a_signed ? float(int8_t(a[j * sa])) : float(a[j * sa]);
    const float vb = p.b_signed ? float(int8_t(b[j * sb])) : float(b[j * sb]);
    float s;
    if (p.mul) {
      const float prod = (va - za) * (vb - zb);  // exact: |prod| <= 255 * 255
      s = prod * p.ma;
      s = s + p.c;
    } else {
      s = std::fma(va, p.ma, std::fma(vb, p.mb, p.c));
    }
    s = s < lo ? lo : s;
    s = s > hi ? hi : s;
    const float r = (s + magic) - magic;  // no reassociation without -ffast-math
    y[j] = uint8_t(int32_t(r));
  }
}

namespace {

bool avx512_usable() {
  const std::string name = active_table()->name;
  return name == "avx512vnni" || name == "amx";
}

}  // namespace

void run_qbinary(const QBinaryArgs& p, int threads) {
  const int64_t count = p.dims[0] * p.dims[1] * p.dims[2], n = p.dims[3];
  if (count == 0 || n == 0) return;
  const QBinaryRowFn row = avx512_usable() ? qbinary_row_avx512 : qbinary_row_portable;
  const int64_t d1 = p.dims[1], d2 = p.dims[2];
  run_elementwise(count * n, int64_t(1) << 17, threads, [&](int64_t e0, int64_t len) {
    for (int64_t e = e0; e < e0 + len;) {
      const int64_t r = e / n, c = e % n, m = std::min(n - c, e0 + len - e);
      const int64_t i2 = r % d2, i1 = (r / d2) % d1, i0 = r / (d2 * d1);
      row(p, p.a + i0 * p.a_st[0] + i1 * p.a_st[1] + i2 * p.a_st[2] + c * p.a_st[3], p.a_st[3],
          p.b + i0 * p.b_st[0] + i1 * p.b_st[1] + i2 * p.b_st[2] + c * p.b_st[3], p.b_st[3],
          p.y + e, m);
      e += m;
    }
  });
}

}  // namespace lowp
