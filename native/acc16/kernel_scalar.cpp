// Scalar microkernel of lowp._acc16: the saturating 16-bit accumulation (S1)-(S4), plain C++.
#include <algorithm>

#include "acc16.h"
#include "sparse.h"

namespace lowp_acc16 {
namespace {

inline int32_t sat16(int32_t v) { return std::min<int32_t>(32767, std::max<int32_t>(-32768, v)); }

}  // namespace

void gemm_scalar(const uint8_t* a, int64_t lda, int64_t m, const int8_t* bpacked, int64_t k2,
                 int64_t panels, int64_t ncols, int32_t* c, int64_t ldc, int64_t block_pairs) {
  for (int64_t i = 0; i < m; ++i) {
    const uint8_t* row = a + i * lda;
    for (int64_t p = 0; p < panels; ++p) {
      const int8_t* panel = bpacked + p * k2 * kPanel * 2;
      for (int64_t col = 0; col < kPanel; ++col) {
        const int64_t n = p * kPanel + col;
        if (n >= ncols) break;
        int32_t acc32 = 0;
        for (int64_t j0 = 0; j0 < k2; j0 += block_pairs) {
          const int64_t j1 = std::min(k2, j0 + block_pairs);
          int32_t acc16 = 0;  // always within int16
          for (int64_t j = j0; j < j1; ++j) {
            const int8_t* w = panel + (j * kPanel + col) * 2;
            const int32_t pair = sat16(int32_t(row[2 * j]) * w[0] + int32_t(row[2 * j + 1]) * w[1]);
            acc16 = sat16(acc16 + pair);
          }
          acc32 = int32_t(uint32_t(acc32) + uint32_t(acc16));  // wraps as (S4)
        }
        c[i * ldc + n] = acc32;
      }
    }
  }
}

void sparse_scalar(const uint8_t* a, int64_t lda, int64_t m, const int32_t* used,
                   int64_t nused, int64_t n,
                   const int32_t* col_ptr, const int32_t* row_idx, const int8_t* values,
                   int32_t* c, int64_t ldc, uint8_t* at, int32_t* ct) {
  sparse_block_impl(a, lda, m, used, nused, n, col_ptr, row_idx, values, c, ldc, at, ct);
}

}  // namespace lowp_acc16
