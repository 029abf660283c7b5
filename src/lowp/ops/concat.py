"""Quantized Concat reference: every input requantized to the shared output qparams."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..fixedpoint import RequantMode, requant_scale, requantize
from ..qparams import QParams, dequantize, quantize
from .registry import register


def rescale(x: np.ndarray, x_qparams: QParams, y_qparams: QParams,
            mode: RequantMode = RequantMode.FLOAT32) -> np.ndarray:
    """Requantize per-tensor `x` to `y_qparams`; exact copy (clamped) if qparams agree.

    Float32 mode (O12a), the QDQ pair DequantizeLinear -> QuantizeLinear itself:
    ``y = clamp(round_half_even(float32(float32(x - zx) * s_x) / s_y) + zy, qmin, qmax)``.
    Fixed-point mode (O12): the shared requantization (R4) with acc = x - zx and
    M = requant_scale(s_x, 1, s_y).

    Examples
    --------
    >>> from lowp.qparams import QType
    >>> qa = QParams(np.float32(0.5), np.int32(0), QType.INT8, -128, 127)
    >>> qb = QParams(np.float32(1.0), np.int32(1), QType.INT8, -128, 127)
    >>> rescale(np.array([3, -3, 127], np.int8), qa, qb).tolist()
    [3, -1, 65]
    """
    if not (x_qparams.is_per_tensor and y_qparams.is_per_tensor):
        raise ValueError("concat: inputs and output must be quantized per tensor")
    x = np.asarray(x)
    dtype = y_qparams.qtype.numpy_dtype
    zx, zy = int(x_qparams.zero_point), int(y_qparams.zero_point)
    if float(x_qparams.scale) == float(y_qparams.scale) and zx == zy:
        return np.clip(x, y_qparams.qmin, y_qparams.qmax).astype(dtype)
    if mode is RequantMode.FLOAT32:
        return quantize(dequantize(x, x_qparams), y_qparams).astype(dtype)
    acc = x.astype(np.int32) - np.int32(zx)
    m = requant_scale(x_qparams.scale, 1.0, y_qparams.scale)
    return requantize(acc, m, zy, y_qparams.qmin, y_qparams.qmax, mode).astype(dtype)


@register("Concat")
def concat(inputs: Sequence[np.ndarray], qparams_in: Sequence[QParams], y_qparams: QParams,
           axis: int, mode: RequantMode = RequantMode.FLOAT32) -> np.ndarray:
    """Quantized Concat (O12): ``np.concatenate([rescale(x_i, qp_i, qp_y)], axis)``.

    Examples
    --------
    >>> from lowp.qparams import QType
    >>> q = QParams(np.float32(1.0), np.int32(0), QType.UINT8, 0, 255)
    >>> concat([np.array([1], np.uint8), np.array([2], np.uint8)], [q, q], q, 0).tolist()
    [1, 2]
    """
    if len(inputs) != len(qparams_in) or not inputs:
        raise ValueError("concat: need one QParams per input and at least one input")
    parts = [rescale(x, qp, y_qparams, mode) for x, qp in zip(inputs, qparams_in, strict=True)]
    return np.concatenate(parts, axis=axis)
