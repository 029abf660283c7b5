"""Quantized Softmax (O17): an exponential table over the distance from the row maximum.

ONNX Runtime fuses DequantizeLinear -> Softmax -> QuantizeLinear (8-bit, same type in and
out) into its QLinearSoftmax kernel; this is that kernel's arithmetic, so that a QDQ file
gives the same integers on both engines (docs/operators.md, (O17)).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ..qparams import QType
from .registry import register

# float32's largest value and the headroom (e^5) the table leaves for the row sum
_FLOAT_MAX = np.float32(np.finfo(np.float32).max)
_RESERVE = 5.0


@functools.lru_cache(maxsize=256)
def exp_table(x_scale: float, reduce_len: int) -> np.ndarray:
    """float32 table[k] = exp((k - 255 + shift) * s_x) for k = 0..255 (O17).

    k = 255 is the row maximum; `shift` lifts the table so that a sum of `reduce_len`
    entries stays below float32's largest value with e^5 to spare.

    Examples
    --------
    >>> t = exp_table(0.1, 10)
    >>> bool(t[255] > t[254] > 0), bool(np.isclose(t[254] / t[255], np.exp(-0.1)))
    (True, True)
    """
    xs = float(np.float32(x_scale))
    # the logarithm is taken in float32 (of a float32 quotient), the rest in float64 with the
    # C library's exp; a float64 logarithm moves every entry and breaks some ties otherwise
    shift = float(np.float32(math.log(float(np.float32(_FLOAT_MAX / np.float32(reduce_len))))))
    shift = max(0.0, shift - _RESERVE) / xs
    table = np.array([math.exp((k - 255 + shift) * xs) for k in range(256)], np.float32)
    table.flags.writeable = False           # shared by every caller (cached)
    return table


def output_multiplier(y_scale: float) -> np.float32:
    """floor(1 / s_y) in float32: what (O17) multiplies each exponential by."""
    return np.float32(math.floor(np.float32(1.0) / np.float32(y_scale)))


def row_sums(e: np.ndarray) -> np.ndarray:
    """float32 sums of the rows of `e` (last axis), element after element (O17).

    Shape: e.shape[:-1] + (1,). ONNX Runtime's results fit this order and no other tried
    (lane-wise AVX-512/AVX2 orders, pairwise): on rows where the orders give different
    integers, this one agreed on every row.

    Examples
    --------
    >>> row_sums(np.ones((2, 70), np.float32)).ravel().tolist()
    [70.0, 70.0]
    """
    return np.cumsum(e, axis=-1, dtype=np.float32)[..., -1:]


@register("Softmax")
def softmax(x: np.ndarray, *, axis: int, x_scale: float, y_scale: float, y_zero_point: int,
            coerce_2d: bool = False) -> np.ndarray:
    """Softmax of 8-bit `x` along `axis` (O17); the result has `x`'s dtype.

    `coerce_2d` (opset < 13) reduces over every axis from `axis` on, as one row.

    Examples
    --------
    >>> x = np.array([[200, 190, 100]], np.uint8)
    >>> softmax(x, axis=1, x_scale=0.1, y_scale=1 / 256, y_zero_point=0).tolist()
    [[187, 69, 0]]
    """
    qtype = QType.from_numpy(x.dtype)
    if qtype not in (QType.UINT8, QType.INT8):
        raise ValueError(f"softmax: 8-bit input expected, got {x.dtype}")
    if x.size == 0:
        return x.copy()
    axis = axis % max(x.ndim, 1)
    if coerce_2d:
        rows = x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1)
    else:
        rows = np.moveaxis(x, axis, -1)
    table = exp_table(float(np.float32(x_scale)), rows.shape[-1])
    # distance from the row maximum, as a table index: 255 is the maximum
    xi = rows.astype(np.int16)
    index = (xi - xi.max(axis=-1, keepdims=True) + 255).astype(np.uint8)
    e = np.take(table, index)
    inv_scale = output_multiplier(y_scale)
    # y_i depends on the row and on e_i, one of 256 table entries: each row's 256 results
    # are computed once and looked up. The quotient is formed in float64: e * floor(1/s_y)
    # overflows float32 for short rows, and ONNX Runtime's results are its rounding.
    q = np.rint(table.astype(np.float64) * float(inv_scale) / row_sums(e)) + y_zero_point
    row_results = np.clip(q, qtype.qmin, qtype.qmax).astype(x.dtype)
    y = np.take_along_axis(row_results, index.astype(np.intp), axis=-1)
    if coerce_2d:
        return y.reshape(x.shape)
    return np.moveaxis(y.reshape(rows.shape), -1, axis)
