// The float32 scaling of the quantized recurrence's integer sums (qrecurrent.h, QScale),
// included by each file that compiles it with its own flags (qrecurrent.cpp portable,
// qrecurrent_avx2.cpp): integer and float operations only, each rounded as written
// (-ffp-contract=off), so every compilation gives the same bits. The AVX-512 product applies
// the same steps to its accumulators in registers.
#pragma once
#include <cstdint>

#include "qrecurrent.h"

namespace lowp {
namespace {

// Rows [row0, row0 + rows) x columns [col0, col0 + cols) of the product, their raw sums at
// acc (row stride ldacc), scaled into e.out.
[[maybe_unused]] void qrnn_scale_block(int rows, int cols, const int32_t* acc, int64_t ldacc,
                                       int64_t row0, int64_t col0, const QScale& e) {
  const int32_t* colsum = e.colsum + col0;
  const float* mult = e.mult + col0;
  for (int r = 0; r < rows; ++r) {
    const int32_t* ar = acc + r * ldacc;
    float* o = e.out[row0 + r] + col0;
    const uint32_t br = e.base[row0 + r], za = e.za;
    if (e.add) {
      for (int j = 0; j < cols; ++j) {
        const int32_t v = int32_t(uint32_t(ar[j]) - za * uint32_t(colsum[j]) + br);
        o[j] = float(v) * mult[j] + o[j];
      }
    } else {
      for (int j = 0; j < cols; ++j) {
        const int32_t v = int32_t(uint32_t(ar[j]) - za * uint32_t(colsum[j]) + br);
        o[j] = float(v) * mult[j];
      }
    }
  }
}

}  // namespace
}  // namespace lowp
