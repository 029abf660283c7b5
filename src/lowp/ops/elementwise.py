"""Quantized element-wise Add and Mul reference, with numpy broadcasting."""

from __future__ import annotations

import numpy as np

from ..fixedpoint import RequantMode, fma32, requant_scale, requantize
from .linear import wrap_int32
from .registry import register


@register("Add")
def add(a: np.ndarray, b: np.ndarray, *, a_scale: float, a_zero_point: int, b_scale: float,
        b_zero_point: int, y_scale: float, y_zero_point: int, qmin: int, qmax: int,
        out_dtype: np.dtype | type | None = None, span_kind: str | None = None) -> np.ndarray:
    """Quantized addition (O10a): ONNX Runtime's QLinearAdd arithmetic, in float32 with
    fused multiply-adds.

    ``ma = float32(s_a / s_y)``, ``mb`` likewise, and the zero points folded into one
    constant ``c = float32(zy - fma(ma, za, float32(mb * zb)))``; then, with `a` and `b`
    the raw integers as float32, ``y = fma(a, ma, fma(b, mb, c))``. When `a` is a scalar
    across the innermost broadcast span (`add_span_kind` "a"), ONNX Runtime hands its kernel
    `b` first, and the roles swap: ``c' = float32(zy - fma(mb, zb, float32(ma * za)))``,
    ``y = fma(b, mb, fma(a, ma, c'))``. Finally ``clamp(round_half_even(y), qmin, qmax)``.
    `qmin`/`qmax` may be narrowed for a fused ReLU. The result has `out_dtype` (default:
    the dtype of `a`). `span_kind` overrides the kind `add_span_kind` derives from the
    shapes (a table of every value pair needs it).

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
    af, bf = a.astype(np.float32), b.astype(np.float32)
    kind = add_span_kind(a.shape, b.shape) if span_kind is None else span_kind
    if kind == "a":
        c = add_constant(mb, b_zero_point, ma, a_zero_point, y_zero_point)
        y = fma32(bf, mb, fma32(af, ma, c))
    else:
        c = add_constant(ma, a_zero_point, mb, b_zero_point, y_zero_point)
        y = fma32(af, ma, fma32(bf, mb, c))
    dtype = np.dtype(out_dtype) if out_dtype is not None else a.dtype
    return np.asarray(np.clip(np.rint(y), qmin, qmax).astype(dtype))


def add_constant(ma: np.ndarray | np.floating, a_zero_point: int,
                 mb: np.ndarray | np.floating, b_zero_point: int,
                 y_zero_point: int) -> np.float32:
    """(O10a)'s folded zero points: ``float32(zy - fma(ma, za, float32(mb * zb)))``."""
    inner = fma32(ma, np.float32(a_zero_point), np.float32(mb * np.float32(b_zero_point)))
    return np.float32(np.float32(y_zero_point) - inner)


def add_span_kind(a_shape: tuple[int, ...], b_shape: tuple[int, ...]) -> str:
    """Which operand (O10a) treats as a scalar: "a", "b" or "" (none).

    ONNX Runtime's broadcasting loop hands its kernel spans of the innermost axes; an
    operand that is constant along the innermost axis where either operand varies (or that
    has one element) is passed as a scalar for each span.
    """
    if int(np.prod(a_shape)) == 1:
        return "a"
    if int(np.prod(b_shape)) == 1:
        return "b"
    rank = max(len(a_shape), len(b_shape))
    pa = (1,) * (rank - len(a_shape)) + tuple(a_shape)
    pb = (1,) * (rank - len(b_shape)) + tuple(b_shape)
    for da, db in zip(reversed(pa), reversed(pb), strict=True):
        if da == db == 1:
            continue
        return "" if da == db else ("a" if da == 1 else "b")
    return ""


@register("Mul")
def mul(a: np.ndarray, b: np.ndarray, *, a_scale: float, a_zero_point: int, b_scale: float,
        b_zero_point: int, y_scale: float, y_zero_point: int, qmin: int, qmax: int,
        out_dtype: np.dtype | type | None = None,
        mode: RequantMode = RequantMode.FLOAT32) -> np.ndarray:
    """Quantized multiplication: an int32 product ``acc = wrap_int32((a - za) * (b - zb))``
    scaled by ``M = requant_scale(s_a, s_b, s_y)`` (R1).

    Float32 mode (O11a), ONNX Runtime's QLinearMul: the zero point is added before
    rounding, ``y = clamp(round_half_even(float32(float32(acc) * M) + zy), qmin, qmax)``.
    Fixed-point mode (O11): ``y = requantize(acc, M, zy, qmin, qmax)`` (R4).

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
    if mode is RequantMode.FLOAT32:
        y = (acc.astype(np.float32) * m).astype(np.float32) + np.float32(y_zero_point)
        return np.asarray(np.clip(np.rint(y), qmin, qmax).astype(dtype))
    return np.asarray(requantize(acc, m, y_zero_point, qmin, qmax, mode).astype(dtype))
