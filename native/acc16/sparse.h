// Outlier microkernel of lowp._acc16 (S5'): c += a @ outliers in int32, outliers in CSC form.
// Included by each ISA's translation unit, so the loops compile with that file's flags.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace lowp_acc16 {
namespace {  // internal linkage: each ISA's file keeps its own copy (no ODR merge across flags)

// Rows are taken in blocks of kSparseRows; the columns of `a` that meet an outlier
// (`used`, `nused` of them) are transposed so that each outlier (u, n, v) adds
// v * a[:, used[u]] to a contiguous int32 column of the block. `row_idx` indexes `used`.
constexpr int64_t kSparseRows = 256;

inline void sparse_block_impl(const uint8_t* a, int64_t lda, int64_t m, const int32_t* used,
                              int64_t nused, int64_t n, const int32_t* col_ptr,
                              const int32_t* row_idx,
                              const int8_t* values, int32_t* c, int64_t ldc, uint8_t* at,
                              int32_t* ct) {
  for (int64_t i0 = 0; i0 < m; i0 += kSparseRows) {
    const int64_t rb = std::min(kSparseRows, m - i0);
    for (int64_t u = 0; u < nused; ++u) {
      const uint8_t* col = a + i0 * lda + used[u];
      uint8_t* dst = at + u * kSparseRows;
      for (int64_t r = 0; r < rb; ++r) dst[r] = col[r * lda];
    }
    std::memset(ct, 0, sizeof(int32_t) * size_t(n * kSparseRows));
    for (int64_t col = 0; col < n; ++col) {
      int32_t* dst = ct + col * kSparseRows;
      for (int32_t z = col_ptr[col]; z < col_ptr[col + 1]; ++z) {
        const uint8_t* x = at + int64_t(row_idx[z]) * kSparseRows;
        const int32_t v = values[z];
        for (int64_t r = 0; r < rb; ++r) dst[r] += v * int32_t(x[r]);  // |v x| < 2^15
      }
    }
    for (int64_t r = 0; r < rb; ++r) {
      int32_t* crow = c + (i0 + r) * ldc;
      for (int64_t col = 0; col < n; ++col)
        crow[col] = int32_t(uint32_t(crow[col]) + uint32_t(ct[col * kSparseRows + r]));
    }
  }
}

}  // namespace
}  // namespace lowp_acc16
