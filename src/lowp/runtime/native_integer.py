"""Native integer core of ONNX Runtime's quantize_dynamic files (lowp._native, int_matmul.cpp).

MatMulInteger with a constant 8-bit B (packed once per constant, as ONNX Runtime prepacks
it at load: `IntMatMul`) and DynamicQuantizeLinear of float32. The numpy operators
(lowp.runtime.float_ops.MatMulInteger, MatMulIntegerToFloat, DynamicQuantizeLinear) stay
the reference: each asks here first and computes in numpy on None, which it gets while
native_float's kernels are disabled, without the extension (or with one that predates these
kernels), for a B that is not a frozen constant, a B that is not 2-D, an A of fewer than 2
or of broadcast axes beyond B's, a per-row A zero point, scales or a bias of other shapes.
Results are bit for bit the reference's (docs/native.md (N1)); both write into
native_float's output buffers, so that replay records their calls.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import native_float
from .prepacked import PackCache, freeze, frozen
from .tape import call

_BYTES = (np.dtype(np.uint8), np.dtype(np.int8))


def _extension() -> Any:
    if not native_float._enabled:
        return None
    ext = native_float._extension()
    return ext if ext is not None and hasattr(ext, "IntMatMul") else None


def _pack(b: np.ndarray, zero_point: bytes) -> Any:
    """B (k x n, 8-bit) and its per-column zero points (n int32 values, as bytes) packed."""
    zb = np.frombuffer(zero_point, np.int32)
    return native_float._extension().IntMatMul(np.ascontiguousarray(b).view(np.uint8),
                                               b.dtype == np.int8, zb)


_packs = PackCache(_pack)


def matmul_integer(a: np.ndarray, b: np.ndarray, a_zero_point: np.ndarray | None,
                   b_zero_point: np.ndarray | None) -> np.ndarray | None:
    """int32 (a - a_zero_point) @ (b - b_zero_point), wrapping as lowp.ops.linear.wrap_int32
    does, for a constant (frozen) 2-D B; a: (..., m, k); b_zero_point per tensor or per
    column; or None."""
    return _product(a, b, a_zero_point, b_zero_point, None)


def matmul_integer_scaled(a: np.ndarray, b: np.ndarray, a_zero_point: np.ndarray | None,
                          b_zero_point: np.ndarray | None, a_scale: np.ndarray,
                          b_scale: np.ndarray, bias: np.ndarray | None = None
                          ) -> np.ndarray | None:
    """float32(matmul_integer(...)) * float32(a_scale * b_scale), then + the first n values
    of `bias` along the last axis (MatMulIntegerToFloat: the Cast, Mul and Add it stands
    for), one float32 `a_scale`, `b_scale` one or one per column, a float32 `bias` of at
    least n values; or None."""
    n = b.shape[-1] if b.ndim == 2 else -1
    if (a_scale.dtype != np.float32 or b_scale.dtype != np.float32 or a_scale.size != 1
            or a_scale.ndim > 1 or b_scale.ndim > 1   # (the result keeps the product's rank)
            or not (b_scale.size == 1 or b_scale.shape == (n,))
            or (bias is not None and (bias.dtype != np.float32 or bias.size < n))):
        return None
    return _product(a, b, a_zero_point, b_zero_point,
                    (a_scale, b_scale, None if bias is None else bias.reshape(-1)[:n]))


def _product(a: np.ndarray, b: np.ndarray, a_zero_point: np.ndarray | None,
             b_zero_point: np.ndarray | None,
             scales: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None
             ) -> np.ndarray | None:
    ext = _extension()
    if (ext is None or a.dtype not in _BYTES or b.dtype not in _BYTES or b.ndim != 2
            or a.ndim < 2 or a.shape[-1] != b.shape[0] or not frozen(b)):
        return None
    k, n = b.shape
    if a_zero_point is not None and (a_zero_point.size != 1 or a_zero_point.dtype != a.dtype):
        return None
    if b_zero_point is None:
        zb = np.zeros(n, np.int32)
    elif b_zero_point.dtype != b.dtype or not (
            b_zero_point.size == 1 or b_zero_point.shape == (n,)):
        return None
    else:
        zb = np.broadcast_to(b_zero_point.reshape(-1).astype(np.int32), (n,))
    op = _packs(b, np.ascontiguousarray(zb).tobytes())
    src = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
    za = None if a_zero_point is None else a_zero_point.reshape(-1).view(np.uint8)
    rows = math.prod(a.shape[:-1])
    if scales is None:
        y = native_float._empty((*a.shape[:-1], n), np.int32)
        call(op.run, src, za, y.reshape(-1), rows, a.dtype == np.int8,
             native_float.get_threads())
        return y
    y = native_float._empty((*a.shape[:-1], n))
    bias = None if scales[2] is None else np.ascontiguousarray(scales[2])
    call(op.run_scaled, src, za, np.ascontiguousarray(scales[0]).reshape(-1),
         np.ascontiguousarray(scales[1]).reshape(-1), bias, y.reshape(-1), rows,
         a.dtype == np.int8, native_float.get_threads())
    return y


def dynamic_quantize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(y, y_scale, y_zero_point) of DynamicQuantizeLinear on float32 `x`, or None."""
    ext = _extension()
    if ext is None or x.dtype != np.float32:
        return None
    y = native_float._empty(x.shape, np.uint8)
    scale = native_float._empty((), np.float32)
    zp = native_float._empty((), np.uint8)
    call(ext.dynamic_quantize, np.ascontiguousarray(x).reshape(-1), y.reshape(-1),
         scale.reshape(-1), zp.reshape(-1), native_float.get_threads())
    return y, scale, zp


def per_token_matmul(x: np.ndarray, b: np.ndarray, b_zero_point: np.ndarray | None,
                     b_scale: np.ndarray, bias: np.ndarray | None = None
                     ) -> np.ndarray | None:
    """float32 (x quantized row by row) @ (b - b_zero_point), scaled and biased as
    lowp.runtime.per_token_fusion.PerTokenMatMul computes it, for float32 x (..., k),
    k > 0, a constant (frozen) 2-D b, b_zero_point and float32 b_scale one or one per
    column, a float32 bias of n values along the last axis; or None. Rows that are not
    finite get the unfused operators' values too (x86)."""
    ext = _extension()
    if (ext is None or x.dtype != np.float32 or x.ndim < 1 or b.dtype not in _BYTES
            or b.ndim != 2 or x.shape[-1] != b.shape[0] or b.shape[0] == 0 or not frozen(b)):
        return None
    k, n = b.shape
    if b_scale.dtype != np.float32 or b_scale.ndim > 1 or b_scale.size not in (1, n):
        return None
    if bias is not None and (bias.dtype != np.float32 or bias.size != n
                             or bias.shape[-1] != n or bias.ndim > x.ndim):
        return None
    if b_zero_point is None:
        zb = np.zeros(n, np.int32)
    elif b_zero_point.dtype != b.dtype or b_zero_point.ndim > 1 or b_zero_point.size not in (
            1, n):
        return None
    else:
        zb = np.broadcast_to(b_zero_point.reshape(-1).astype(np.int32), (n,))
    op = _packs(b, np.ascontiguousarray(zb).tobytes())
    if not hasattr(op, "run_per_token"):    # an extension that predates it
        return None
    y = native_float._empty((*x.shape[:-1], n))
    call(op.run_per_token, np.ascontiguousarray(x).reshape(-1),
         np.ascontiguousarray(b_scale).reshape(-1),
         None if bias is None else np.ascontiguousarray(bias).reshape(-1), y.reshape(-1),
         int(np.prod(x.shape[:-1])), native_float.get_threads())
    return y


# ConvInteger's weights as IntMatMul's B: (id(w), channels last?) -> (w alive?, the frozen
# k x m copy)
_conv_weights: dict[tuple[int, bool], tuple[weakref.ref[np.ndarray], np.ndarray]] = {}


def _conv_b(w: np.ndarray, channels_last: bool = False) -> np.ndarray:
    """The frozen (c kh kw) x m matrix of a frozen (m, c, kh, kw) weight, or with
    `channels_last` its (kh kw c) x m matrix (IntMatMul.run_conv's), made once per weight
    object (a copy, so that it holds no reference to `w`; dropped with `w`)."""
    key = (id(w), channels_last)
    hit = _conv_weights.get(key)
    if hit is not None and hit[0]() is w:
        return hit[1]
    v = w.transpose(0, 2, 3, 1) if channels_last else w
    b = freeze(np.ascontiguousarray(v.reshape(w.shape[0], -1).T))
    _conv_weights[key] = (weakref.ref(w), b)
    weakref.finalize(w, _conv_weights.pop, key, None)
    return b


def conv_rows_numpy(x: np.ndarray, zero_point: Any, kernel: Sequence[int],
                    strides: Sequence[int], dilations: Sequence[int], begin: Sequence[int],
                    end: Sequence[int]) -> np.ndarray:
    """The windows of (n, c, h, w) data as (n oh ow, c kh kw) rows, the input padded with
    its zero point (the reference of `conv_rows`)."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, strides, dilations
    xp = np.pad(x, ((0, 0), (0, 0), (begin[0], end[0]), (begin[1], end[1])),
                constant_values=zero_point)
    eh, ew = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    oh, ow = (xp.shape[2] - eh) // sh + 1, (xp.shape[3] - ew) // sw + 1
    win = sliding_window_view(xp, (eh, ew), axis=(2, 3))[
        :, :, :(oh - 1) * sh + 1:sh, :(ow - 1) * sw + 1:sw, ::dh, ::dw]
    return np.ascontiguousarray(win.transpose(0, 2, 3, 1, 4, 5)).reshape(x.shape[0] * oh * ow,
                                                                         -1)


def conv_rows(x: np.ndarray, zero_point: Any, kernel: Sequence[int], strides: Sequence[int],
              dilations: Sequence[int], begin: Sequence[int], end: Sequence[int]
              ) -> np.ndarray:
    """`conv_rows_numpy` by the extension's conv_integer_rows (one pass, no padded copy)
    for non-negative padding and at least one output pixel, else by numpy."""
    ext = _extension()
    (kh, kw), (sh, sw), (dh, dw) = kernel, strides, dilations
    n, c, h, w = x.shape
    oh = (h + begin[0] + end[0] - (kh - 1) * dh - 1) // sh + 1
    ow = (w + begin[1] + end[1] - (kw - 1) * dw - 1) // sw + 1
    if (ext is None or not hasattr(ext, "conv_integer_rows") or min(*begin, *end) < 0
            or oh < 1 or ow < 1):
        return conv_rows_numpy(x, zero_point, kernel, strides, dilations, begin, end)
    out = np.empty((n * oh * ow, c * kh * kw), x.dtype)
    ext.conv_integer_rows(np.ascontiguousarray(x).reshape(-1).view(np.uint8),
                          out.reshape(-1).view(np.uint8), n, c, h, w, kh, kw, sh, sw, dh, dw,
                          int(begin[0]), int(begin[1]), oh, ow,
                          int(np.asarray(zero_point).astype(x.dtype).view(np.uint8)))
    return out


def conv_integer(x: np.ndarray, w: np.ndarray, x_zero_point: np.ndarray | None,
                 w_zero_point: np.ndarray | None, group: int, strides: Sequence[int],
                 dilations: Sequence[int], begin: Sequence[int], end: Sequence[int],
                 bias: np.ndarray | None = None, to_float: bool = False,
                 scale: np.ndarray | None = None) -> np.ndarray | None:
    """ConvInteger of (n, c, h, w) 8-bit data with a constant (frozen) 8-bit (m, c, kh, kw)
    weight in one group, as the int32 product of the windows and the weight: the input
    padded with its zero point (padding then contributes zero, as the reference's), its
    windows gathered into rows of c kh kw bytes, the product by IntMatMul with the weight
    zero point per tensor or per output channel; or None (the reference computes).
    `bias` (int32, one value or one per output channel, broadcast as (1, m, 1, 1)) is added
    wrapping, `to_float` casts the result to float32 and `scale` (one float32 value, of rank
    4 or less) multiplies it (lowp.runtime.conv_integer_fusion); those three only by
    IntMatMul.run_conv."""
    if (_extension() is None or group != 1 or x.ndim != 4 or w.ndim != 4
            or x.dtype not in _BYTES or w.dtype not in _BYTES or not frozen(w)
            or x.shape[1] != w.shape[1]):
        return None
    m, kh, kw = w.shape[0], w.shape[2], w.shape[3]
    if x_zero_point is not None and x_zero_point.size != 1:
        return None
    if w_zero_point is not None and w_zero_point.size not in (1, m):
        return None
    sh, sw = strides
    dh, dw = dilations
    xz = 0 if x_zero_point is None else x_zero_point.reshape(-1)[0]
    eh, ew = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    oh = (x.shape[2] + begin[0] + end[0] - eh) // sh + 1
    ow = (x.shape[3] + begin[1] + end[1] - ew) // sw + 1
    if oh < 1 or ow < 1:
        return None
    n = x.shape[0]
    wz = None if w_zero_point is None else w_zero_point.reshape(-1)
    if bias is not None and (bias.dtype != np.int32 or bias.ndim > 4 or not (
            bias.size == 1 or (1,) * (4 - bias.ndim) + bias.shape == (1, m, 1, 1))):
        return None
    if scale is not None and (not to_float or scale.dtype != np.float32 or scale.size != 1
                              or scale.ndim > 4):
        return None
    if min(*begin, *end) >= 0:
        y = _conv_product(x, _conv_b(w, channels_last=True), x_zero_point, wz,
                          (*x.shape, kh, kw, sh, sw, dh, dw, begin[0], begin[1], oh, ow),
                          bias, to_float, scale)
        if y is not None or bias is not None or to_float:
            return y
    elif bias is not None or to_float:
        return None
    a = conv_rows(x, xz, (kh, kw), strides, dilations, begin, end)
    y = _product(a, _conv_b(w), x_zero_point, wz, None)
    if y is None:
        return None
    return np.ascontiguousarray(y.reshape(n, oh, ow, m).transpose(0, 3, 1, 2))


def _conv_product(x: np.ndarray, b: np.ndarray, x_zero_point: np.ndarray | None,
                  w_zero_point: np.ndarray | None, geometry: tuple[int, ...],
                  bias: np.ndarray | None, to_float: bool, scale: np.ndarray | None = None
                  ) -> np.ndarray | None:
    """ConvInteger as one recordable call (IntMatMul.run_conv: the windows gathered, the
    product by `b`, the weight as a (kh kw c) x m matrix, the (n, m, oh, ow) result, + bias,
    as float32 with to_float, times scale), the zero point, the scale
    and the bias read when the call runs; geometry n, c, h, w, kh, kw, sh, sw, dh, dw, pad
    top, pad left, oh, ow; or None (an extension without it, a zero point of another
    type)."""
    k, m = b.shape
    if x_zero_point is not None and x_zero_point.dtype != x.dtype:
        return None
    if w_zero_point is None:
        zb = np.zeros(m, np.int32)
    elif w_zero_point.dtype != b.dtype or w_zero_point.size not in (1, m):
        return None
    else:
        zb = np.broadcast_to(w_zero_point.astype(np.int32), (m,))
    op = _packs(b, np.ascontiguousarray(zb).tobytes())
    if not hasattr(op, "run_conv"):     # an extension that predates it
        return None
    n, oh, ow = geometry[0], geometry[12], geometry[13]
    y = native_float._empty((n, m, oh, ow), np.float32 if to_float else np.int32)
    za = None if x_zero_point is None else x_zero_point.reshape(-1).view(np.uint8)
    call(op.run_conv, np.ascontiguousarray(x).reshape(-1).view(np.uint8), za,
         None if bias is None else np.ascontiguousarray(bias).reshape(-1),
         None if to_float else y.reshape(-1), y.reshape(-1) if to_float else None,
         None if scale is None else np.ascontiguousarray(scale).reshape(-1),
         [int(v) for v in geometry], x.dtype == np.int8, native_float.get_threads())
    return y
