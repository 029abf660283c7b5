// SimplifiedLayerNormalization rows compiled with -mavx512f on top of -mavx2 -mfma: the
// eight lanes stay one ymm register (ONNX Runtime's order), the scaling pass takes zmm
// registers (-mprefer-vector-width=512): float_norm_impl.h.
#include "float_norm_impl.h"

namespace lowp {
const LayerNormRowsFn kSimplifiedNormAvx512 = &simplified_norm_rows;
}  // namespace lowp
