"""Quantized MatMul / Gemm reference, and the exact integer product shared by conv and matmul."""

from __future__ import annotations

import numpy as np

from ..fixedpoint import Requant
from .registry import register

# Largest integer below which every float64 partial sum is exact.
_FLOAT64_EXACT = float(2**53)


def wrap_int32(acc: np.ndarray) -> np.ndarray:
    """Wrap int64 accumulators to int32 modulo 2^32, as int32 hardware accumulators do (O1)."""
    return np.asarray(acc, dtype=np.int64).astype(np.int32)


def accumulator(acc: np.ndarray, *operand_dtypes: np.dtype) -> np.ndarray:
    """int32 (wrapping, (O1)) for 8-bit operands; int64 when any operand is 16-bit, as
    DNNLOWP_16 accumulates (docs/quantization.md (S8))."""
    if any(np.dtype(d).itemsize > 1 for d in operand_dtypes):
        return np.asarray(acc, dtype=np.int64)
    return wrap_int32(acc)


def exact_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact integer ``a @ b`` (numpy broadcasting) returned as int64.

    When ``K * max|a| * max|b| < 2^53`` every partial sum is an integer below 2^53, so the
    BLAS float64 product is exact and is used for speed; otherwise numpy's int64 matmul is
    used (which itself wraps modulo 2^64, far beyond any int8/int16 accumulation).
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    k = a.shape[-1]
    amax = int(np.abs(a).max()) if a.size else 0
    bmax = int(np.abs(b).max()) if b.size else 0
    if float(k) * amax * bmax < _FLOAT64_EXACT:
        return np.rint(np.matmul(a.astype(np.float64), b.astype(np.float64))).astype(np.int64)
    return np.matmul(a, b)


@register("MatMul")
def matmul(a: np.ndarray, b: np.ndarray, *, a_zero_point: int,
           b_zero_point: int | np.ndarray, bias: np.ndarray | None = None,
           requant: Requant | None = None) -> np.ndarray:
    """Quantized matrix product (O2), numpy ``matmul`` broadcasting.

    Parameters
    ----------
    a
        Integer array (..., M, K) or (K,); uint8/int8/uint16/int16.
    b
        Integer array (K, N) or batched (..., K, N).
    a_zero_point
        Zero point of `a` (per tensor).
    b_zero_point
        Zero point of `b`: a scalar or one per column (length N, the last axis of `b`).
    bias
        Optional int32 bias, one per column, at scale s_a * s_b.
    requant
        If None the int32 accumulators are returned; otherwise they are requantized by
        ``requant.apply`` with per-column scales along the last axis (R1)-(R4).

    Returns
    -------
    np.ndarray
        int32 accumulators, or ``requant.out_dtype`` values.

    Examples
    --------
    >>> a = np.array([[130, 128]], np.uint8); b = np.array([[2], [-1]], np.int8)
    >>> matmul(a, b, a_zero_point=128, b_zero_point=0).tolist()
    [[4]]
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if not (np.issubdtype(a.dtype, np.integer) and np.issubdtype(b.dtype, np.integer)):
        raise ValueError(f"matmul: integer operands needed, got {a.dtype} and {b.dtype}")
    if a.shape[-1] != b.shape[-2 if b.ndim >= 2 else -1]:
        raise ValueError(f"matmul: inner dimensions differ, a {a.shape} and b {b.shape}")
    zb = np.asarray(b_zero_point, dtype=np.int64)
    if zb.ndim > 1 or (zb.ndim == 1 and b.ndim >= 2 and zb.shape[0] != b.shape[-1]):
        raise ValueError(f"matmul: b_zero_point of shape {zb.shape} does not match b {b.shape}")
    acc = exact_matmul(a.astype(np.int64) - int(a_zero_point), b.astype(np.int64) - zb)
    if bias is not None:
        acc = acc + np.asarray(bias, dtype=np.int64)
    acc32 = accumulator(acc, np.asarray(a).dtype, np.asarray(b).dtype)
    if requant is None:
        return acc32
    return requant.apply(acc32, channel_axis=-1)


@register("Gemm")
def gemm(a: np.ndarray, b: np.ndarray, *, a_zero_point: int, b_zero_point: int | np.ndarray,
         bias: np.ndarray | None = None, requant: Requant | None = None,
         trans_a: bool = False, trans_b: bool = False) -> np.ndarray:
    """Quantized ONNX Gemm with alpha = beta = 1: ``matmul(A', B', ...)`` (O2).

    `a` is (M, K) or (K, M) with `trans_a`; `b` is (K, N) or (N, K) with `trans_b` (the
    usual storage of fully connected weights). Per-channel `b_zero_point`, `bias` and the
    requantization scales run along N.

    Examples
    --------
    >>> a = np.array([[1, 2]], np.int8); w = np.array([[3, 4]], np.int8)
    >>> gemm(a, w, a_zero_point=0, b_zero_point=0, trans_b=True).tolist()
    [[11]]
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"gemm: operands must be 2-d, got {a.shape} and {b.shape}")
    if trans_a:
        a = a.T
    if trans_b:
        b = b.T
    return matmul(a, b, a_zero_point=a_zero_point, b_zero_point=b_zero_point, bias=bias,
                  requant=requant)


def quantize_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-token dynamic quantization (D1)-(D3): ONNX DynamicQuantizeLinear on each row.

    Every row (last axis) of float32 `x` gets its own uint8 scale and zero point, all in
    float32 with round half to even::

        lo = min(0, min_k x[k]),  hi = max(0, max_k x[k])
        scale = max(hi - lo, tiny) / 255                       (tiny: smallest normal float32)
        zero_point = clamp(rint(-lo / scale), 0, 255)
        q = clamp(rint(x / scale) + zero_point, 0, 255)

    Returns (q uint8, scale float32, zero_point float32), scale and zero_point with the
    last axis kept (length 1).

    Examples
    --------
    >>> q, s, z = quantize_rows(np.array([[-1.0, 0.0, 3.0], [0.5, 1.0, 2.0]], np.float32))
    >>> q.tolist(), z.ravel().astype(int).tolist()
    ([[0, 64, 255], [64, 127, 255]], [64, 0])
    """
    x = np.asarray(x, dtype=np.float32)
    lo = np.minimum(x.min(axis=-1, keepdims=True), np.float32(0))
    hi = np.maximum(x.max(axis=-1, keepdims=True), np.float32(0))
    scale = np.maximum(hi - lo, np.finfo(np.float32).tiny) / np.float32(255)
    zero_point = np.clip(np.rint(-lo / scale), 0, 255)
    q = np.clip(np.rint(x / scale) + zero_point, 0, 255).astype(np.uint8)
    return q, scale.astype(np.float32), zero_point.astype(np.float32)


def per_token_matmul(x: np.ndarray, w: np.ndarray, w_scale: np.ndarray | float,
                     w_zero_point: np.ndarray | int = 0) -> np.ndarray:
    """Per-token dynamic matrix product (D4): float32 ``x @ dequantize(w)`` in integers.

    ``acc = sum_k (q[k] - zp) (w[k, n] - zw[n])`` exactly in int32, then
    ``y = f32(acc) * f32(scale * w_scale[n])``.

    Examples
    --------
    >>> x = np.array([[1.0, -2.0]], np.float32); w = np.array([[2], [1]], np.int8)
    >>> per_token_matmul(x, w, np.float32(0.5)).round(2).tolist()
    [[0.0]]
    """
    q, scale, zp = quantize_rows(x)
    wi = np.asarray(w, np.int64) - np.asarray(w_zero_point, np.int64)
    acc = wrap_int32(exact_matmul(q.astype(np.int64) - zp.astype(np.int64), wi))
    return acc.astype(np.float32) * (scale * np.asarray(w_scale, np.float32)).astype(np.float32)
