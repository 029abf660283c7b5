// layer_norm_impl.h compiled with -mavx2 -mfma (every path but "scalar").
#include "layer_norm_impl.h"

namespace lowp {
const LayerNormRowsFn kLayerNormFma = layer_norm_rows;
}  // namespace lowp
