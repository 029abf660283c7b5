// Driver layer: 8-bit lookup tables (O13). y[i] = table[c(i) * 256 + x[i]] with one table
// (c = 0) or one per channel of the last axis (c = i % channels). The single-table case has
// an AVX-512 VBMI kernel (lut_vbmi.cpp), used on the avx512vnni path when the CPU has VBMI;
// everything else runs the portable loop. A lookup is exact on every path.
#include <algorithm>
#include <string>

#include "dispatch.h"
#include "threadpool.h"

namespace lowp {

void lut8_vbmi(const uint8_t* x, const uint8_t* table, uint8_t* y, int64_t n);

namespace {

void lut8_portable(const uint8_t* x, const uint8_t* table, uint8_t* y, int64_t n,
                   int64_t channels, int64_t c0) {
  if (channels == 1) {
    for (int64_t i = 0; i < n; ++i) y[i] = table[x[i]];
    return;
  }
  int64_t c = c0;
  for (int64_t i = 0; i < n; ++i) {
    y[i] = table[c * 256 + x[i]];
    if (++c == channels) c = 0;
  }
}

bool vbmi_usable() {
  static const bool has = __builtin_cpu_supports("avx512vbmi") &&
                          __builtin_cpu_supports("avx512bw");
  return has && std::string(active_table()->name) == "avx512vnni";
}

}  // namespace

void run_lut8(const uint8_t* x, const uint8_t* table, uint8_t* y, int64_t n, int64_t channels,
              int threads) {
  if (n <= 0) return;
  const bool vbmi = channels == 1 && vbmi_usable();
  auto part = [&](int64_t i0, int64_t len) {
    if (vbmi)
      lut8_vbmi(x + i0, table, y + i0, len);
    else
      lut8_portable(x + i0, table, y + i0, len, channels, i0 % channels);
  };
  // memory-bound: split only when every thread gets a sizeable run
  run_elementwise(n, int64_t(1) << 17, threads, part);
}

}  // namespace lowp
