"""Float operators of the ai.onnx.ml domain, as ONNX Runtime's CPU kernels compute them.

scikit-learn pipelines converted by skl2onnx start with them (a StandardScaler becomes a
Scaler) before the ONNX operators of the model proper; lowp runs them in float, never
quantized (docs/operators.md, (O51)).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lowp.errors import NodeError
from lowp.runtime.float_registry import register, unsupported

# the (domain, op type) pairs of this module, for the lowering's domain check
ML_OPS = frozenset({("ai.onnx.ml", "Scaler")})

_TYPES = (np.float32, np.float64, np.int32, np.int64)


@register
def Scaler(x: np.ndarray, *, offset: Sequence[float] = (), scale: Sequence[float] = (),
           **_: Any) -> np.ndarray:
    """(O51) y = float32((x - offset[j]) * scale[j]), j = i mod F for the flat index i, F the
    second dimension (the first of a 1-D x): ONNX Runtime's ScalerOp. Both lists have F
    entries or one. float32 x computes in float32, float64 x in float64 (the float lists
    widened) then rounds once; an int32/int64 x is converted to float32 first, as C++
    converts it in `x - offset[j]`."""
    if x.dtype.type not in _TYPES:
        raise unsupported("Scaler", f"input of type {x.dtype}")
    if not len(scale) or len(scale) != len(offset):
        raise NodeError(f"Scaler: scale ({len(scale)}) and offset ({len(offset)}) must have "
                        "the same length, at least 1")
    if x.ndim == 0:
        raise NodeError("Scaler: the input has no dimensions")
    stride = x.shape[0] if x.ndim == 1 else x.shape[1]
    if len(scale) not in (1, stride):
        raise NodeError(f"Scaler: scale and offset must have the feature size ({stride}) "
                        f"or 1 entry, not {len(scale)}")
    work = np.float64 if x.dtype == np.float64 else np.float32
    off = np.asarray(offset, np.float32).astype(work)
    sc = np.asarray(scale, np.float32).astype(work)
    flat = x.reshape(-1).astype(work)
    if len(scale) > 1:
        reps = -(-flat.size // stride)
        off, sc = np.tile(off, reps)[:flat.size], np.tile(sc, reps)[:flat.size]
    return ((flat - off) * sc).astype(np.float32).reshape(x.shape)
