// LayerNormalization and SimplifiedLayerNormalization rows, portable path (no ISA flags):
// float_norm_impl.h.
#include "float_norm_impl.h"

namespace lowp {
const LayerNormRowsFn kLayerNormScalar = &layer_norm_rows;
const LayerNormRowsFn kWelfordNorm = &welford_norm_rows;
const LayerNormRowsFn kSimplifiedNormScalar = &simplified_norm_rows;
}  // namespace lowp
