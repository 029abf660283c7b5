// LayerNormalization rows in ONNX Runtime's float32 order (lowp.ort_math.layer_norm_rows,
// docs/operators.md (O24)), bit for bit: the float64 mean as numpy's pairwise sum forms it,
// the squared deviations in eight lanes of fused multiply-adds, then the scaled rows. With
// `welford`, the order of its com.microsoft SkipLayerNormalization instead
// (lowp.ort_math.skip_layer_norm_rows, (O40)): Welford's running mean and M2 in float32.
#pragma once

#include <cstdint>

namespace lowp {

// rows x n float32 x; scale, bias (or null) n values; y rows x n; mean, inv one per row.
struct LayerNormArgs {
  const float* x = nullptr;
  const float* scale = nullptr;
  const float* bias = nullptr;
  float* y = nullptr;
  float* mean = nullptr;
  float* inv = nullptr;
  int64_t rows = 0, n = 0;
  float epsilon = 0.0f;
  bool welford = false;
};

// rows [r0, r1) of `a`
using LayerNormRowsFn = void (*)(const LayerNormArgs& a, int64_t r0, int64_t r1);
extern const LayerNormRowsFn kLayerNormScalar;  // float_norm_scalar.cpp: no ISA flags
extern const LayerNormRowsFn kLayerNormAvx2;    // float_norm_avx2.cpp: -mavx2 -mfma
// Welford's rows: a chain of divisions per row, the same on every path (no ISA flags)
extern const LayerNormRowsFn kWelfordNorm;      // float_norm_scalar.cpp

// The active path's kernel (scalar for "scalar", the AVX2 one otherwise), rows split over
// `threads`; every row is computed the same way on any thread.
void run_float_layer_norm(const LayerNormArgs& a, int threads);

}  // namespace lowp
