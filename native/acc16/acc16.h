// Microkernel layer of lowp._acc16: one signature per ISA, no allocation (docs/quantization.md S1-S6).
#pragma once

#include <cstdint>

namespace lowp_acc16 {

// Columns per packed panel: one ymm register of 16 int16 accumulators.
constexpr int64_t kPanel = 16;

// Packed dense weights: panel p (columns 16p..16p+15), pair j, column c, element t at
// byte ((p * k2 + j) * 16 + c) * 2 + t holds w[2j + t][16p + c] (0 beyond K or N).
//
// c[i][n] (n < ncols) = sum over blocks of `block_pairs` pairs of the int16 saturating sum
// (S2)-(S3) of the pair products (S1), widened to int32 (S4). `a` holds rows of 2 * k2
// uint8 values (the odd tail is zero), `lda` bytes apart.
using GemmFn = void (*)(const uint8_t* a, int64_t lda, int64_t m, const int8_t* bpacked,
                        int64_t k2, int64_t panels, int64_t ncols, int32_t* c, int64_t ldc,
                        int64_t block_pairs);

void gemm_scalar(const uint8_t* a, int64_t lda, int64_t m, const int8_t* bpacked, int64_t k2,
                 int64_t panels, int64_t ncols, int32_t* c, int64_t ldc, int64_t block_pairs);
void gemm_avx2(const uint8_t* a, int64_t lda, int64_t m, const int8_t* bpacked, int64_t k2,
               int64_t panels, int64_t ncols, int32_t* c, int64_t ldc, int64_t block_pairs);

// c[i][n] += sum_z a[i][used[row_idx[z]]] * values[z] over column n's outliers, wrapping
// int32. `at` holds kSparseRows * nused bytes and `ct` kSparseRows * n int32 of scratch.
using SparseFn = void (*)(const uint8_t* a, int64_t lda, int64_t m, const int32_t* used,
                          int64_t nused, int64_t n,
                          const int32_t* col_ptr, const int32_t* row_idx, const int8_t* values,
                          int32_t* c, int64_t ldc, uint8_t* at, int32_t* ct);

void sparse_scalar(const uint8_t* a, int64_t lda, int64_t m, const int32_t* used,
                   int64_t nused, int64_t n,
                   const int32_t* col_ptr, const int32_t* row_idx, const int8_t* values,
                   int32_t* c, int64_t ldc, uint8_t* at, int32_t* ct);
void sparse_avx2(const uint8_t* a, int64_t lda, int64_t m, const int32_t* used,
                 int64_t nused, int64_t n,
                 const int32_t* col_ptr, const int32_t* row_idx, const int8_t* values,
                 int32_t* c, int64_t ldc, uint8_t* at, int32_t* ct);

}  // namespace lowp_acc16
