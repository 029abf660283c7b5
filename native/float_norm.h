// LayerNormalization rows in ONNX Runtime's float32 order (lowp.ort_math.layer_norm_rows,
// docs/operators.md (O24)), bit for bit: the float64 mean as numpy's pairwise sum forms it,
// the squared deviations in eight lanes of fused multiply-adds, then the scaled rows. With
// `welford`, the order of its com.microsoft SkipLayerNormalization instead
// (lowp.ort_math.skip_layer_norm_rows, (O40)): Welford's running mean and M2 in float32.
// SimplifiedLayerNormalization (RMSNorm) rows in the order of ONNX Runtime's kernel
// (lowp.ort_math.simplified_layer_norm_rows, (O49)): the same eight lanes on x itself, or
// its generic loop on rows of fewer than 16 values.
#pragma once

#include <cstdint>

namespace lowp {

// rows x n float32 x; scale, bias (or null) n values; y rows x n; mean, inv one per row
// (SimplifiedLayerNormalization: no bias, no mean; inv may be null).
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

extern const LayerNormRowsFn kSimplifiedNormScalar;  // float_norm_scalar.cpp
extern const LayerNormRowsFn kSimplifiedNormAvx2;    // float_norm_avx2.cpp
extern const LayerNormRowsFn kSimplifiedNormAvx512;  // float_norm_avx512.cpp: + -mavx512f

// The active path's kernel (scalar for "scalar", the AVX2 one otherwise), rows split over
// `threads`; every row is computed the same way on any thread.
void run_float_layer_norm(const LayerNormArgs& a, int threads);
// SimplifiedLayerNormalization: the scalar, AVX2 or (avx512vnni, amx) AVX-512 copy; rows
// split over `threads` the same way.
void run_float_simplified_layer_norm(const LayerNormArgs& a, int threads);

// InstanceNormalization of float32 planes in ONNX Runtime's order, bit for bit with
// lowp.runtime.float_nn.InstanceNormalization ((O35), (O221), (O287)): planes (N * C) of w
// values from x (one buffer whose start is taken as a 16-byte boundary), scale and bias
// `channels` values (plane r has channel r % channels); y planes x w. Per plane: the mean
// by Eigen's peeled sum / w, the squared deviations by its unpeeled sum, s = scale *
// (1 / sqrt(sum / w + eps)), t = bias - mean * s, y = x * s + t; of two NaNs the payload the
// reference hands on. Planes split over `threads` (float_instance_norm.cpp).
struct InstanceNormArgs {
  const float* x = nullptr;
  const float* scale = nullptr;
  const float* bias = nullptr;
  float* y = nullptr;
  int64_t planes = 0, channels = 1, w = 0;
  float epsilon = 0.0f;
};
void run_float_instance_norm(const InstanceNormArgs& a, int threads);

}  // namespace lowp
