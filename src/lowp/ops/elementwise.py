"""Quantized element-wise Add and Mul reference, with numpy broadcasting."""

from __future__ import annotations

import numpy as np

from ..fixedpoint import RequantMode, requant_scale, requantize
from .linear import wrap_int32
from .registry import register


@register("Add")
def add(a: np.ndarray, b: np.ndarray, *, a_scale: float, a_zero_point: int, b_scale: float,
        b_zero_point: int, y_scale: float, y_zero_point: int, qmin: int, qmax: int,
        out_dtype: np.dtype | type | None = None) -> np.ndarray:
    """Quantized addition (O10), evaluated entirely in float32, one rounding per step.

    ``ma = float32(float32(s_a) / float32(s_y))``, ``mb`` likewise;
    ``ta = float32(float32(a - za) * ma)``, ``tb = float32(float32(b - zb) * mb)``;
    ``y = clamp(round_half_even(float32(ta + tb)) + zy, qmin, qmax)``. Every product and
    sum is rounded to float32 separately (no fused multiply-add). `qmin`/`qmax` may be
    narrowed for a fused ReLU. The result has `out_dtype` (default: the dtype of `a`).

    Examples
    --------
    >>> a = np.array([10, 200], np.uint8); b = np.array([4], np.uint8)
    >>> add(a, b, a_scale=0.5, a_zero_point=0, b_scale=0.25, b_zero_point=0, y_scale=1.0,
    ...     y_zero_point=0, qmin=0, qmax=255).tolist()
    [6, 101]
    """
    a = np.asarray(a)
    b = np.asarray(b)
    ma = requant_scale(a_scale, 1.0, y_scale)
    mb = requant_scale(b_scale, 1.0, y_scale)
    ta = (a.astype(np.int32) - np.int32(a_zero_point)).astype(np.float32) * ma
    tb = (b.astype(np.int32) - np.int32(b_zero_point)).astype(np.float32) * mb
    s = (ta.astype(np.float32) + tb.astype(np.float32)).astype(np.float32)
    y = np.rint(s).astype(np.float64) + float(y_zero_point)
    dtype = np.dtype(out_dtype) if out_dtype is not None else a.dtype
    return np.asarray(np.clip(y, qmin, qmax).astype(dtype))


@register("Mul")
def mul(a: np.ndarray, b: np.ndarray, *, a_scale: float, a_zero_point: int, b_scale: float,
        b_zero_point: int, y_scale: float, y_zero_point: int, qmin: int, qmax: int,
        out_dtype: np.dtype | type | None = None,
        mode: RequantMode = RequantMode.FLOAT32) -> np.ndarray:
    """Quantized multiplication (O11): an int32 product, requantized by the shared function.

    ``acc = wrap_int32((a - za) * (b - zb))`` and ``y = requantize(acc, M, zy, qmin, qmax)``
    with ``M = requant_scale(s_a, s_b, s_y)`` (R1), (R2)/(R4).

    Examples
    --------
    >>> a = np.array([3, -4], np.int8); b = np.array([5], np.int8)
    >>> mul(a, b, a_scale=0.5, a_zero_point=0, b_scale=0.5, b_zero_point=0, y_scale=1.0,
    ...     y_zero_point=0, qmin=-128, qmax=127).tolist()
    [4, -5]
    """
    a = np.asarray(a)
    b = np.asarray(b)
    acc = wrap_int32((a.astype(np.int64) - int(a_zero_point)) *
                     (b.astype(np.int64) - int(b_zero_point)))
    m = requant_scale(a_scale, b_scale, y_scale)
    dtype = np.dtype(out_dtype) if out_dtype is not None else a.dtype
    return np.asarray(requantize(acc, m, y_zero_point, qmin, qmax, mode).astype(dtype))
