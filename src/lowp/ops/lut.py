"""Element-wise activations as lookup tables: table[q] = quantize(fn(dequantize(q))) (O13)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import eigen_math, ort_math
from ..qparams import QParams, QType, dequantize, quantize
from .registry import register

FloatFn = Callable[[np.ndarray], np.ndarray]

# Lookup tables are built for these storage types (4-bit types use their 8-bit containers).
_LUT_QTYPES = (QType.UINT8, QType.INT8, QType.UINT16, QType.INT16, QType.UINT4, QType.INT4)


def build_lut(fn: FloatFn, x_qparams: QParams, y_qparams: QParams) -> np.ndarray:
    """Table over every value of the input storage type (O13).

    ``table[q - qtype.qmin] = quantize(fn(dequantize(q, x_qparams)), y_qparams)`` for
    q = qtype.qmin .. qtype.qmax of `x_qparams.qtype` (256 entries for 8-bit, 65536 for
    16-bit); `fn` takes and returns float32 arrays. Both qparams must be per tensor.

    Examples
    --------
    >>> q = QParams(np.float32(1.0), np.int32(0), QType.INT8, -128, 127)
    >>> t = build_lut(ACTIVATIONS["Relu"](), q, q)
    >>> apply_lut(np.array([-5, 7], np.int8), t, QType.INT8).tolist()
    [0, 7]
    """
    if not (x_qparams.is_per_tensor and y_qparams.is_per_tensor):
        raise ValueError("build_lut: lookup tables need per-tensor qparams")
    qt = x_qparams.qtype
    if qt not in _LUT_QTYPES:
        raise ValueError(f"build_lut: no lookup table for {qt.value} inputs")
    q = np.arange(qt.qmin, qt.qmax + 1, dtype=np.int64).astype(qt.numpy_dtype)
    xf = dequantize(q, x_qparams)
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        yf = np.asarray(fn(xf), dtype=np.float32)
    return quantize(yf, y_qparams)


def apply_lut(x: np.ndarray, table: np.ndarray, x_qtype: QType) -> np.ndarray:
    """Look every element of `x` up in `table` (O13): ``table[x - x_qtype.qmin]``."""
    x = np.asarray(x)
    if table.shape != (x_qtype.qmax - x_qtype.qmin + 1,):
        raise ValueError(f"apply_lut: table of shape {table.shape} does not fit {x_qtype.value}")
    return table[x.astype(np.int64) - x_qtype.qmin]


# --- float32 reference activations: a factory per ONNX op, taking the op's attributes -----------

_F = np.float32


def _relu() -> FloatFn:
    return lambda x: np.maximum(x, _F(0))


def _sigmoid() -> FloatFn:
    return ort_math.logistic


def _tanh() -> FloatFn:
    return ort_math.tanh


def _hard_sigmoid(alpha: float = 0.2, beta: float = 0.5) -> FloatFn:
    return lambda x: np.clip(_F(alpha) * x + _F(beta), _F(0), _F(1))


def _hard_swish() -> FloatFn:
    # ONNX HardSwish = x * HardSigmoid(x) with alpha = 1/6, beta = 0.5
    hs = _hard_sigmoid(1.0 / 6.0, 0.5)
    return lambda x: x * hs(x)


def _silu() -> FloatFn:
    return lambda x: x / (_F(1) + np.exp(-x))


def _swish(alpha: float = 1.0) -> FloatFn:
    # ONNX Runtime runs Swish's function body, X * Sigmoid(alpha * X), in float32
    return lambda x: x * ort_math.logistic(_F(alpha) * x)


def _leaky_relu(alpha: float = 0.01) -> FloatFn:
    return lambda x: np.where(x >= 0, x, _F(alpha) * x)


def _functor(op: str, path: eigen_math.Path) -> Callable[..., FloatFn]:
    """ONNX Runtime's Eigen functor `op` (lowp.eigen_math.FUNCTORS) as one side of its
    assignment computes it: `path` PACKETS (every element but a run's last length % 4) or
    SCALARS (those)."""
    def factory(**attrs: Any) -> FloatFn:
        expression = eigen_math.FUNCTORS[op](**attrs)
        return lambda x: expression(np.asarray(x, np.float32), path)

    return factory


def _exp() -> FloatFn:
    return ort_math.exp


def _gelu(approximate: str = "none") -> FloatFn:
    # ONNX Runtime's float32 GELU (its Gelu kernel between DequantizeLinear and
    # QuantizeLinear), so that the table gives ONNX Runtime's integers
    if approximate == "tanh":
        return ort_math.gelu_tanh
    if approximate != "none":
        raise ValueError(f"Gelu: unknown approximate={approximate!r}")
    return ort_math.gelu


def _clip(min: float = -math.inf, max: float = math.inf) -> FloatFn:  # noqa: A002
    return lambda x: np.clip(x, _F(min), _F(max))


ACTIVATIONS: dict[str, Callable[..., FloatFn]] = {
    "Relu": _relu, "Sigmoid": _sigmoid, "Tanh": _tanh, "HardSigmoid": _hard_sigmoid,
    "HardSwish": _hard_swish, "Silu": _silu, "Swish": _swish, "LeakyRelu": _leaky_relu,
    **{op: _functor(op, eigen_math.PACKETS) for op in ("Elu", "Selu", "Softplus", "Softsign")},
    "Exp": _exp, "Gelu": _gelu, "Clip": _clip,
}
"""ONNX op type -> factory; ``ACTIVATIONS[op](**attrs)`` gives the float32 function: ONNX
Runtime's float32 kernel of the op (which it runs between DequantizeLinear and
QuantizeLinear), so that the table gives ONNX Runtime's integers (O132)."""

TAIL_ACTIVATIONS: dict[str, Callable[..., FloatFn]] = {
    op: _functor(op, eigen_math.SCALARS) for op in ("Elu", "Selu", "Softplus", "Softsign")}
"""The activations whose ONNX Runtime kernel is an Eigen functor: the float32 function on
the last length % 4 elements of each of its runs (lowp.eigen_math.functor_runs), where
``ACTIVATIONS[op]`` holds on the others (O132)."""


def activation(op_type: str, x: np.ndarray, *, x_qparams: QParams, y_qparams: QParams,
               **attrs: Any) -> np.ndarray:
    """Run the quantized activation `op_type` on `x` through its lookup table (O13).

    Examples
    --------
    >>> q = QParams(np.float32(0.5), np.int32(0), QType.INT8, -128, 127)
    >>> activation("LeakyRelu", np.array([-8, 8], np.int8), x_qparams=q, y_qparams=q,
    ...            alpha=0.25).tolist()
    [-2, 8]
    """
    try:
        fn = ACTIVATIONS[op_type](**attrs)
    except KeyError:
        raise ValueError(f"no lookup-table activation for {op_type}") from None
    return apply_lut(x, build_lut(fn, x_qparams, y_qparams), x_qparams.qtype)


def _register_activation(op_type: str) -> None:
    def op(x: np.ndarray, *, x_qparams: QParams, y_qparams: QParams,
           **attrs: Any) -> np.ndarray:
        return activation(op_type, x, x_qparams=x_qparams, y_qparams=y_qparams, **attrs)

    op.__name__ = op.__qualname__ = op_type.lower()
    op.__doc__ = f"Quantized {op_type} through a lookup table (O13)."
    register(op_type)(op)


for _op in ACTIVATIONS:
    _register_activation(_op)
