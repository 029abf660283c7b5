// LayerNormalization and SimplifiedLayerNormalization rows compiled with -mavx2 -mfma (the
// eight lanes are one ymm register, as in ONNX Runtime's AVX2 kernel): float_norm_impl.h.
#include "float_norm_impl.h"

namespace lowp {
const LayerNormRowsFn kLayerNormAvx2 = &layer_norm_rows;
const LayerNormRowsFn kSimplifiedNormAvx2 = &simplified_norm_rows;
}  // namespace lowp
