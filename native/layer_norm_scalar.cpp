// layer_norm_impl.h without FMA instructions (the "scalar" path; fmaf from libm).
#include "layer_norm_impl.h"

namespace lowp {
const LayerNormRowsFn kLayerNormScalar = layer_norm_rows;
}  // namespace lowp
