// LayerNormalization over the last axis of float32 rows in ONNX Runtime's order, bit for bit
// with lowp.ort_math.layer_norm_rows (docs/operators.md, (O24)):
//   mean = float32(pairwise float64 sum / n)         (numpy's order: x.astype(f64).sum)
//   d = x - mean; q = d.d in 8 fma lanes, folded, tail as ort_math adds it
//   inv = 1 / sqrt(q / n + eps); y = fma(d * inv, scale, bias), or (d * inv) * scale.
// One portable source (layer_norm_impl.h) compiled twice: without and with -mfma, where the
// explicit fmaf calls become single instructions; the results are the same.
#pragma once
#include <cstdint>

namespace lowp {

struct LayerNormArgs {
  const float* x = nullptr;
  const float* scale = nullptr;
  const float* bias = nullptr;  // may be null
  float* y = nullptr;
  float* mean = nullptr;        // rows values, may be null
  float* inv_std = nullptr;     // rows values, may be null
  int64_t rows = 0, n = 0;
  float epsilon = 0.0f;
};

using LayerNormRowsFn = void (*)(const LayerNormArgs& a, int64_t r0, int64_t r1);
extern const LayerNormRowsFn kLayerNormScalar;
extern const LayerNormRowsFn kLayerNormFma;

// Every row of a.x; threads split rows (each row computed by one task the same way).
void run_layer_norm(const LayerNormArgs& a, int threads);

}  // namespace lowp
