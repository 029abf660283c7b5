"""LpNormalization, MeanVarianceNormalization, RMSNormalization and Swish in ONNX Runtime's
CPU arithmetic (its nn/lp_norm.cc, tensor/mean_variance_normalization.cc, the simplified
LayerNorm kernel behind RMSNormalization, and the ONNX function body it runs for Swish).

Registered into FLOAT_OPS (see float_registry for the calling convention); docs/operators.md
(O253)-(O256).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import TensorProto

from lowp import ort_math
from lowp.runtime.float_registry import FLOAT_OPS, register, unsupported


def _in_order_sum(rows: np.ndarray) -> np.ndarray:
    """Sums along axis 1 of (rows, m), each added left to right from the first value: Eigen's
    scalar redux of a strided vector."""
    acc = rows[:, 0].copy()
    for i in range(1, rows.shape[1]):
        acc = acc + rows[:, i]
    return acc


@register
def LpNormalization(x: np.ndarray, *, axis: int = -1, p: int = 2, **_: Any) -> np.ndarray:
    """x / ||x||_p along `axis` (p 1 or 2), the norm summed in order (|x| or x * x, then a
    square root for p = 2); a line whose norm is 0 (all zeros, or squares underflowing)
    becomes zeros."""
    if p not in (1, 2):
        raise unsupported("LpNormalization", f"p={p} (ONNX Runtime runs p 1 and 2 only)")
    if x.dtype not in (np.float32, np.float64):
        raise unsupported("LpNormalization", f"input of type {x.dtype}")
    if not -x.ndim <= axis < x.ndim:
        raise unsupported("LpNormalization", f"axis {axis} of a rank-{x.ndim} input")
    if x.size == 0:
        return x.copy()
    lines = np.moveaxis(x, axis, -1)
    rows = lines.reshape(-1, lines.shape[-1])
    with np.errstate(all="ignore"):
        terms = np.abs(rows) if p == 1 else rows * rows
        norm = _in_order_sum(terms)
        if p == 2:
            norm = np.sqrt(norm)
        y = np.where((norm == 0)[:, None], x.dtype.type(0), rows / norm[:, None])
    return np.ascontiguousarray(np.moveaxis(y.reshape(lines.shape), -1, axis))


@register
def MeanVarianceNormalization(x: np.ndarray, *, axes: Any = (0, 2, 3), opset: int = 13,
                              **_: Any) -> np.ndarray:
    """Float32 over `axes` (moved last): y = x - mean, then y / sqrt(mean(y * y)); the mean
    by Eigen's vectorized sum of each run (peeled to its 16-byte boundary) / N, the mean
    square by its sum of the expression y * y (not peeled)."""
    op = "MeanVarianceNormalization"
    if opset < 9:
        raise unsupported(op, f"opset {opset} (the across_channels form)")
    if x.dtype != np.float32:
        raise unsupported(op, f"input of type {x.dtype} (ONNX Runtime's kernel is float32 "
                              "only; for other types it runs the ONNX function body)")
    kept = sorted({a % x.ndim for a in axes if -x.ndim <= a < x.ndim})
    if not kept:
        raise unsupported(op, f"axes {list(axes)} (none within the rank-{x.ndim} input)")
    if x.size == 0:
        return x.copy()
    others = [a for a in range(x.ndim) if a not in kept]
    perm = others + kept
    moved = np.ascontiguousarray(np.transpose(x, perm))
    n = int(np.prod([x.shape[a] for a in kept]))
    rows = moved.reshape(-1, n)
    f = np.float32
    with np.errstate(all="ignore"):
        mean = (ort_math.eigen_row_sums(rows) / f(n)).astype(f)
        y = ort_math.sse_op(np.subtract, rows, mean[:, None])
        squares = ort_math.eigen_expression_sums(y * y, nan_order="norm")
        root = np.sqrt((squares / f(n)).astype(f))
        y = ort_math.sse_op(np.divide, y, root[:, None])
    return np.ascontiguousarray(np.transpose(y.reshape(moved.shape), np.argsort(perm)))


@register
def RMSNormalization(x: np.ndarray, scale: np.ndarray, *, axis: int = -1,
                     epsilon: float = 1e-5, stash_type: int = 1, **_: Any) -> np.ndarray:
    """ONNX Runtime runs RMSNormalization (opset 23) with its simplified LayerNorm kernel:
    SimplifiedLayerNormalization's Y."""
    ax = axis + x.ndim if axis < 0 else axis
    if not 0 <= ax < x.ndim:
        raise unsupported("RMSNormalization", f"axis {axis} of a rank-{x.ndim} input")
    if scale.size != int(np.prod(x.shape[ax:])):
        raise unsupported("RMSNormalization", f"scale of shape {list(scale.shape)} for "
                                              f"normalized shape {list(x.shape[ax:])}")
    if x.dtype == np.float64:
        return _double_rms_norm(x, scale, ax, epsilon)
    y: np.ndarray = FLOAT_OPS["SimplifiedLayerNormalization"](
        x, scale, axis=axis, epsilon=epsilon, stash_type=stash_type)[0]
    return y


def _double_rms_norm(x: np.ndarray, scale: np.ndarray, axis: int, epsilon: float
                     ) -> np.ndarray:
    """The kernel's generic loop in double: the squares added in order from 0,
    r = sqrt(q / n + eps) (eps the float attribute widened), y = (x / r) * scale."""
    n = int(np.prod(x.shape[axis:]))
    if x.size == 0:
        return x.copy()
    rows = x.reshape(-1, n)
    q = np.zeros(rows.shape[0], np.float64)
    with np.errstate(all="ignore"):
        for h in range(n):
            q = q + rows[:, h] * rows[:, h]
        r = np.sqrt(q / np.float64(n) + np.float64(np.float32(epsilon)))
        y = rows / r[:, None] * scale.reshape(1, n)
    return y.reshape(x.shape)


@register
def Swish(x: np.ndarray, *, alpha: float = 1.0, **_: Any) -> np.ndarray:
    """ONNX Runtime has no Swish kernel and runs its function body: Mul(X, Sigmoid(Mul(
    CastLike(alpha, X), X))); float16 as float32 between Casts, alpha kept float32 (its
    graph folds the CastLike into the float32 Mul)."""
    if x.dtype not in (np.float16, np.float32, np.float64):
        raise unsupported("Swish", f"input of type {x.dtype}")
    a = np.array(alpha, np.float32)
    if x.dtype == np.float16:
        cast = FLOAT_OPS["Cast"]
        y = _swish(cast(x, to=TensorProto.FLOAT), a)
        out: np.ndarray = cast(y, to=TensorProto.FLOAT16)
        return out
    return _swish(x, a.astype(x.dtype))


def _swish(x: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    mul, sigmoid = FLOAT_OPS["Mul"], FLOAT_OPS["Sigmoid"]
    y: np.ndarray = mul(x, sigmoid(mul(alpha, x)))
    return y
