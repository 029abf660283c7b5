// The float32 scaling of the quantized recurrence's integer sums (qrecurrent.h, QScaleFn),
// included by each file that compiles it with its own flags (qrecurrent.cpp portable,
// qrecurrent_avx512.cpp): integer and float operations only, each rounded as written
// (-ffp-contract=off), so every compilation gives the same bits.
#pragma once
#include <cstdint>

namespace lowp {
namespace {

void qrnn_scale(int64_t rows, int64_t n, const int32_t* acc, const uint32_t* base, uint32_t za,
                const int32_t* colsum, const float* mult, float* const* out, bool add) {
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t* ar = acc + r * n;
    float* o = out[r];
    const uint32_t br = base[r];
    if (add) {
      for (int64_t j = 0; j < n; ++j) {
        const int32_t v = int32_t(uint32_t(ar[j]) - za * uint32_t(colsum[j]) + br);
        o[j] = float(v) * mult[j] + o[j];
      }
    } else {
      for (int64_t j = 0; j < n; ++j) {
        const int32_t v = int32_t(uint32_t(ar[j]) - za * uint32_t(colsum[j]) + br);
        o[j] = float(v) * mult[j];
      }
    }
  }
}

}  // namespace
}  // namespace lowp
