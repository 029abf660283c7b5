"""Numpy float implementations of ONNX operators: elementwise math, reductions, data movement.

Each op is a plain function named after the ONNX op type, inputs positional, attributes as
keywords with the spec's defaults (see float_registry for the calling convention). The data
movement ops also work on integer arrays, because the engine runs them on quantized tensors.
Convolution, pooling, normalization, resize and recurrent ops live in float_nn.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import ml_dtypes
import numpy as np
from onnx import TensorProto, helper, numpy_helper

from lowp import eigen_double, eigen_math, libm, mlas_sgemm, ort_math
from lowp.errors import NodeError
from lowp.runtime import native_float, native_integer
from lowp.runtime.float_registry import (
    FLOAT_OPS,
    OpFn,
    OpResult,
    compute_dtype,
    register,
    unsupported,
)
from lowp.runtime.prepacked import freeze
from lowp.special import erf

__all__ = ["FLOAT_OPS", "OpFn", "OpResult"]


def _axes_list(axes: np.ndarray | Sequence[int] | None) -> list[int] | None:
    if axes is None:
        return None
    return [int(a) for a in np.asarray(axes).reshape(-1)]


def _norm_axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def _as(x: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Result `x` in the dtype of `like` (float ops compute in float32 for float16)."""
    return np.asarray(x).astype(like.dtype, copy=False)


def _f(x: np.ndarray) -> np.ndarray:
    return x.astype(compute_dtype(x), copy=False)


# --- activations and unary math ------------------------------------------------------------


@register
def Relu(x: np.ndarray, **_: Any) -> np.ndarray:
    """float32 and float64 as ONNX Runtime's Relu (Eigen's cwiseMax(0)): x < 0 ? 0 : x, so
    NaN and -0 stay as they are (np.maximum gives +0 for -0); docs/operators.md (O63)."""
    zero = np.zeros((), x.dtype)
    if x.dtype == np.float32:
        native = native_float.unary("Relu", x)
        if native is not None:
            return native
    if x.dtype in (np.float32, np.float64):
        return np.where(x < zero, zero, x)
    return np.maximum(x, zero)


@register
def Clip(x: np.ndarray, min: np.ndarray | float | None = None,
         max: np.ndarray | float | None = None, **_: Any) -> np.ndarray:
    """Clip; a float as ONNX Runtime computes it (Eigen's cwiseMax(lo).cwiseMin(hi), and
    MLAS's fused Clip activation alike): y = x < lo ? lo : x, then hi < y ? hi : y, an
    absent bound the type's lowest / largest finite value. So -0 stays -0 under a bound
    of 0 (np.maximum gave +0), a NaN stays itself, a NaN bound clamps nothing, and +-inf
    become +-max without bounds (docs/operators.md (O77))."""
    # Before opset 11 min/max were attributes of the same names; they bind here all the same.
    if x.dtype.kind == "f":
        info = np.finfo(x.dtype)
        lo = np.asarray(info.min if min is None else min).astype(x.dtype)
        hi = np.asarray(info.max if max is None else max).astype(x.dtype)
        if x.dtype == np.float32 and lo.size == 1 and hi.size == 1:
            native = native_float.clamp(x, float(lo.reshape(())), float(hi.reshape(())))
            if native is not None:
                return native
        y = np.where(x < lo, lo, x)
        return np.asarray(np.where(hi < y, hi, y), dtype=x.dtype)
    y = x
    if min is not None:
        y = np.maximum(y, np.asarray(min).astype(x.dtype))
    if max is not None:
        y = np.minimum(y, np.asarray(max).astype(x.dtype))
    # 0-d inputs give numpy scalars: asarray makes them arrays again
    out = np.asarray(y, dtype=x.dtype)
    return out.copy() if out is x else out


@register
def Sigmoid(x: np.ndarray, **_: Any) -> np.ndarray:
    native = native_float.unary("Sigmoid", x)
    if native is not None:
        return native
    xf = _f(x)
    if xf.dtype == np.float32:
        return _as(ort_math.logistic(xf), x)
    return eigen_double.sigmoid(xf, native_float.get_threads())


@register
def HardSigmoid(x: np.ndarray, *, alpha: float = 0.2, beta: float = 0.5, **_: Any) -> np.ndarray:
    native = native_float.unary("HardSigmoid", x, alpha, beta)
    if native is not None:
        return native
    xf = _f(x)
    dt = xf.dtype.type
    return _as(np.clip(dt(alpha) * xf + dt(beta), 0, 1), x)


@register
def HardSwish(x: np.ndarray, **_: Any) -> np.ndarray:
    native = native_float.unary("HardSwish", x)
    if native is not None:
        return native
    xf = _f(x)
    dt = xf.dtype.type
    return _as(xf * np.clip(xf * dt(1 / 6) + dt(0.5), 0, 1), x)


@register
def Tanh(x: np.ndarray, **_: Any) -> np.ndarray:
    native = native_float.unary("Tanh", x)
    if native is not None:
        return native
    xf = _f(x)
    if xf.dtype == np.float64:
        return eigen_double.tanh(xf, native_float.get_threads())
    return _as(ort_math.tanh(xf), x)


@register
def LeakyRelu(x: np.ndarray, *, alpha: float = 0.01, **_: Any) -> np.ndarray:
    native = native_float.unary("LeakyRelu", x, alpha)
    if native is not None:
        return native
    xf = _f(x)
    return _as(np.where(xf >= 0, xf, xf * xf.dtype.type(alpha)), x)


@register
def PRelu(x: np.ndarray, slope: np.ndarray, *, opset: int = 13, **_: Any) -> np.ndarray:
    """PRelu; before opset 7 a 1-D slope of C values is per channel (axis 1)."""
    if opset < 7 and slope.ndim == 1 and slope.size > 1 and x.ndim >= 2:
        slope = slope.reshape((-1,) + (1,) * (x.ndim - 2))
    return _as(np.where(x >= 0, x, x * slope), x)


@register
def Shrink(x: np.ndarray, *, bias: float = 0.0, lambd: float = 0.5, **_: Any) -> np.ndarray:
    """Shrink; ONNX Runtime 1.32 computes a double one in float32 too (the value cast to
    float, compared and shifted there, the result cast back: docs/operators.md (O104))."""
    with np.errstate(over="ignore"):
        xf = x.astype(np.float32) if x.dtype == np.float64 else _f(x)
    dt = xf.dtype.type
    y = np.where(xf < -dt(lambd), xf + dt(bias), np.where(xf > dt(lambd), xf - dt(bias), 0))
    return _as(y, x)


# float32 Elu, Selu, Celu, Softplus and Softsign are ONNX Runtime's Eigen functors (packet
# exp and log1p, the C library's on the tail: lowp.eigen_math, docs/operators.md (O28)); Mish
# is the ONNX function ONNX Runtime expands it into (Softplus, MLAS's Tanh, Mul).
# At several intra-op threads each functor runs in ONNX Runtime's blocks, cut by its Cost()
# (eigen_math.ort_parallel_blocks; docs/operators.md (O91)).
_F32 = np.float32
_COST = eigen_math.FUNCTOR_COSTS


def _threaded(op: str, x: np.ndarray, fn: Any) -> np.ndarray:
    """`fn` (float32 `x` as one Eigen assignment) as ONNX Runtime's functor `op` runs it at
    the session's threads."""
    return eigen_math.blockwise(x, fn, _COST[op], native_float.get_threads())


def _runs(op: str, x: np.ndarray) -> list[tuple[int, int]]:
    """The runs of `x` that ONNX Runtime's functor `op` evaluates each by itself."""
    return eigen_math.assignment_runs(int(x.size), _COST[op], native_float.get_threads())


def _softplus32(x: np.ndarray) -> np.ndarray:
    y = native_float.softplus(x, _runs("Softplus", x))
    if y is not None:
        return y
    return _threaded("Softplus", x, lambda u: eigen_math.evaluate(
        u, eigen_math.FUNCTORS["Softplus"]()))


def _elu32(x: np.ndarray, alpha: float) -> np.ndarray:
    return eigen_math.evaluate(x, eigen_math.FUNCTORS["Elu"](alpha))


@register
def Elu(x: np.ndarray, *, alpha: float = 1.0, **_: Any) -> np.ndarray:
    if x.dtype == np.float32:
        y = native_float.elu(x, alpha, _runs("Elu", x))
        return _threaded("Elu", x, lambda u: _elu32(u, alpha)) if y is None else y
    xf = _f(x)
    return _as(np.where(xf > 0, xf, xf.dtype.type(alpha) * np.expm1(np.minimum(xf, 0))), x)


@register
def Selu(x: np.ndarray, *, alpha: float = 1.67326319217681884765625,
         gamma: float = 1.05070102214813232421875, **_: Any) -> np.ndarray:
    if x.dtype == np.float32:
        return _threaded("Selu", x, lambda u: eigen_math.evaluate(
            u, eigen_math.FUNCTORS["Selu"](alpha, gamma)))
    xf = _f(x)
    dt = xf.dtype.type
    neg = dt(alpha) * np.expm1(np.minimum(xf, 0))
    return _as(dt(gamma) * np.where(xf > 0, xf, neg), x)


@register
def Celu(x: np.ndarray, *, alpha: float = 1.0, **_: Any) -> np.ndarray:
    if x.dtype == np.float32:
        return _threaded("Celu", x, lambda u: eigen_math.evaluate(
            u, eigen_math.FUNCTORS["Celu"](alpha)))
    xf = _f(x)
    dt = xf.dtype.type
    return _as(np.maximum(xf, 0) + np.minimum(0, dt(alpha) * np.expm1(xf / dt(alpha))), x)


@register
def ThresholdedRelu(x: np.ndarray, *, alpha: float = 1.0, **_: Any) -> np.ndarray:
    return _as(np.where(x > alpha, x, 0), x)


@register
def Softplus(x: np.ndarray, **_: Any) -> np.ndarray:
    if x.dtype == np.float32:
        return _softplus32(x)
    xf = _f(x)
    return _as(np.logaddexp(xf, 0), x)


@register
def Softsign(x: np.ndarray, **_: Any) -> np.ndarray:
    if x.dtype == np.float32:
        return eigen_math.evaluate(x, eigen_math.FUNCTORS["Softsign"]())
    xf = _f(x)
    return _as(xf / (1 + np.abs(xf)), x)


@register
def Mish(x: np.ndarray, **_: Any) -> np.ndarray:
    if x.dtype == np.float32:
        # the expansion's Mul(x, tanh): Mul's NaN of two NaNs (a NaN x's tanh is Softplus's
        # NaN), by the position in its runs at the session's threads (O147)
        with np.errstate(invalid="ignore"):
            t = ort_math.tanh(_softplus32(x))
            return _two_nans("Mul", x, t, x * t)
    xf = _f(x)
    return _as(xf * np.tanh(np.logaddexp(xf, 0)), x)


def _erf(x: np.ndarray) -> np.ndarray:
    """erf in float64 from the float32-faithful polynomials of lowp.special."""
    return erf(x)


@register
def Erf(x: np.ndarray, **_: Any) -> np.ndarray:
    """float32 as ONNX Runtime computes it (MLAS, lowp.ort_math.erf), others in float64."""
    if x.dtype == np.float32:
        native = native_float.unary("Erf", x)
        return native if native is not None else ort_math.erf(x)
    return _as(_erf(x), x)


@register
def Gelu(x: np.ndarray, *, approximate: str = "none", **_: Any) -> np.ndarray:
    """ONNX Gelu and ONNX Runtime's com.microsoft Gelu; float32 exact GELU as ONNX Runtime
    computes it (lowp.ort_math.gelu)."""
    if approximate == "none" and x.dtype == np.float32:
        kernel = _exact_gelu_kernel()
        native = native_float.unary(kernel, x)
        return native if native is not None else _EXACT_GELU[kernel](x)
    if approximate == "tanh" and x.dtype == np.float32:
        native = native_float.gelu_tanh(x)
        return native if native is not None else ort_math.gelu_tanh(x, _tanh32)
    xf = x.astype(np.float64)
    if approximate == "none":
        y = 0.5 * xf * (1 + _erf(xf / math.sqrt(2)))
    elif approximate == "tanh":
        y = 0.5 * xf * (1 + np.tanh(math.sqrt(2 / math.pi) * (xf + 0.044715 * xf**3)))
    else:
        raise unsupported("Gelu", f"approximate={approximate!r}")
    return _as(y, x)


# ONNX Runtime's float32 exact GELU by the MLAS kernel it takes on this CPU (native_float
# unary kernel -> its numpy form): on AVX-512F a NaN input comes back as it is, a signalling
# one too (docs/operators.md (O64))
_EXACT_GELU = {"Gelu": ort_math.gelu, "GeluKeepNaN": ort_math.gelu_keep_nan}


def _exact_gelu_kernel() -> str:
    return "GeluKeepNaN" if ort_math.mlas_has_avx512f() else "Gelu"


def _tanh32(x: np.ndarray) -> np.ndarray:
    """ONNX Runtime's float32 tanh: the native kernel where there is one (equal to
    lowp.ort_math.tanh on every path)."""
    native = native_float.unary("Tanh", x)
    return native if native is not None else ort_math.tanh(x)


@register
def BiasGelu(x: np.ndarray, bias: np.ndarray, **_: Any) -> np.ndarray:
    """ONNX Runtime's com.microsoft BiasGelu: Gelu(x + bias), the sum rounded to x's type;
    float32 by two native calls (the addition, then the GELU) where they run, so that the
    step replays."""
    if x.dtype == np.float32 and bias.dtype == np.float32 and x.ndim:
        total = native_float.add(x, bias)
        if total is not None and total.shape == x.shape:
            native = native_float.unary("Gelu", total)
            if native is not None:
                return native
    return Gelu(_as(x + bias, x))


@register
def FastGelu(x: np.ndarray, bias: np.ndarray | None = None, **_: Any) -> np.ndarray:
    """ONNX Runtime's com.microsoft FastGelu: the tanh GELU of x (+ bias, the sum rounded to
    x's type), float32 in its order (lowp.ort_math.gelu_tanh)."""
    if x.dtype == np.float32 and (bias is None or bias.dtype == np.float32):
        native = native_float.gelu_tanh(x, bias)
        if native is not None:
            return native
    return Gelu(x if bias is None else _as(x + bias, x), approximate="tanh")


def _unary(name: str, fn: Any) -> None:
    def op(x: np.ndarray, **_: Any) -> np.ndarray:
        return _as(fn(_f(x)), x)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"ONNX {name}, computed in float32 (float64 for float64 inputs)."
    register(op)


def _float32(fn: Any, other: Any, native: Any = None) -> Any:
    """`fn` (ONNX Runtime's float32 kernel) for float32, first by `native` (its native
    kernel, None where it does not run) when given; `other` (numpy) otherwise."""
    def unary(x: np.ndarray) -> np.ndarray:
        if x.dtype != np.float32:
            return other(x)
        y = None if native is None else native(x)
        return fn(x) if y is None else y
    return unary


def _libm(name: str, other: Any) -> Any:
    """The C library's float32 function `name` element by element (natively where it can,
    else lowp.libm's ctypes calls: the same function) for float32, `other` otherwise."""
    return _float32(getattr(libm, name), other, functools.partial(native_float.libm, name))


# ONNX Runtime's float32 log: Eigen's (lowp.eigen_math), natively where it can
def _log(x: np.ndarray) -> np.ndarray:
    if x.dtype != np.float32:
        return eigen_double.log(x, native_float.get_threads())
    y = native_float.log(x, _runs("Log", x))
    return _threaded("Log", x, eigen_math.log) if y is None else y


# ONNX Runtime's float32 exp (lowp.ort_math.exp), natively where it can
_native_exp = functools.partial(native_float.unary, "Exp")

# float64 Exp, Log, Tanh, Sigmoid, Sin and Cos as ONNX Runtime computes them: Eigen's double
# packets and the C library on the tails (lowp.eigen_double, docs/operators.md (O104))
def _exp64(x: np.ndarray) -> np.ndarray:
    return eigen_double.exp(x, native_float.get_threads())


# float32 as ONNX Runtime computes it: Exp by lowp.ort_math; Sin, Cos, Asin, Acos and Atan
# are packet functions of ONNX Runtime's wheel (lowp.eigen_math; Sin and Cos natively where
# they can); Tan, Sinh, Cosh, Asinh, Acosh and Atanh are the C library's float functions
# element by element (std::tan(float), ...), which are not correctly rounded (glibc 2.36:
# 3-14% of a random sweep's values differ from the correctly rounded ones, and from numpy's).
_UNARY: list[tuple[str, Any]] = [
                   ("Sqrt", np.sqrt), ("Exp", _float32(ort_math.exp, _exp64, _native_exp)),
                   ("Log", _log),
                   ("Sin", _float32(eigen_math.sin, eigen_double.sin, native_float.sin)),
                   ("Cos", _float32(eigen_math.cos, eigen_double.cos, native_float.cos)),
                   ("Tan", _libm("tanf", np.tan)),
                   ("Asin", _float32(eigen_math.asin, np.arcsin)),
                   ("Acos", _float32(eigen_math.acos, np.arccos)),
                   ("Atan", _float32(eigen_math.atan, np.arctan)),
                   ("Sinh", _libm("sinhf", np.sinh)),
                   ("Cosh", _libm("coshf", np.cosh)),
                   ("Asinh", _libm("asinhf", np.arcsinh)),
                   ("Acosh", _libm("acoshf", np.arccosh)),
                   ("Atanh", _libm("atanhf", np.arctanh))]
for _name, _unary_fn in _UNARY:
    _unary(_name, _unary_fn)


@register
def Reciprocal(x: np.ndarray, **_: Any) -> np.ndarray:
    xf = _f(x)
    return _as(xf.dtype.type(1) / xf, x)


@register
def Neg(x: np.ndarray, **_: Any) -> np.ndarray:
    return np.negative(x)


@register
def Abs(x: np.ndarray, **_: Any) -> np.ndarray:
    return np.abs(x)


@register
def Sign(x: np.ndarray, **_: Any) -> np.ndarray:
    """Sign; a double one as ONNX Runtime's Eigen packets and tail give NaNs
    (lowp.eigen_double.sign, docs/operators.md (O104))."""
    return eigen_double.sign(x) if x.dtype == np.float64 else np.sign(x)


def _integral(fn: Any, x: np.ndarray) -> np.ndarray:
    """Floor / Ceil as ONNX Runtime's Eigen functor (cost 1) gives a NaN: quieted in the
    packets (four float32, two float64; np.floor / np.ceil quiet it), as it is in the
    scalar tail of each run of its parallel blocks at the session's threads
    (docs/operators.md (O148))."""
    lanes = {np.dtype(np.float32): eigen_math.LANES, np.dtype(np.float64): 2}.get(x.dtype)
    if lanes is None:
        return np.asarray(fn(x))

    def one(t: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return eigen_math.assign(t, fn, lambda u: np.where(np.isnan(u), u, fn(u)), lanes)
    return eigen_math.blockwise(x, one, 1.0, native_float.get_threads(), lanes)


@register
def Floor(x: np.ndarray, **_: Any) -> np.ndarray:
    return _integral(np.floor, x)


@register
def Ceil(x: np.ndarray, **_: Any) -> np.ndarray:
    return _integral(np.ceil, x)


@register
def Round(x: np.ndarray, **_: Any) -> np.ndarray:
    """Half to even, as the spec says; float32 and float64 as ONNX Runtime's kernel (the C
    library's rint), which returns a NaN as it is where numpy's rint quiets a signalling
    one (docs/operators.md (O65))."""
    with np.errstate(invalid="ignore"):     # (numpy's rint on a signalling NaN)
        y = np.round(x)
    if x.dtype in (np.float32, np.float64):
        return np.where(np.isnan(x), x, y)
    return y


@register
def IsNaN(x: np.ndarray, **_: Any) -> np.ndarray:
    return np.isnan(x)


@register
def IsInf(x: np.ndarray, *, detect_negative: int = 1, detect_positive: int = 1,
          **_: Any) -> np.ndarray:
    return (np.isposinf(x) & bool(detect_positive)) | (np.isneginf(x) & bool(detect_negative))


# --- binary and variadic elementwise ------------------------------------------------------




@register
def Add(a: np.ndarray, b: np.ndarray, *, nchwc_block: int = 0, **_: Any) -> np.ndarray:
    """`nchwc_block`: ONNX Runtime runs this Add on its NCHWc layout (ort_context); the NaN
    of two NaNs then follows the element's place there (`_two_nans`)."""
    return _two_nans("Add", a, b, _as(a + b, a), nchwc_block)


@register
def Sub(a: np.ndarray, b: np.ndarray, **_: Any) -> np.ndarray:
    return _two_nans("Sub", a, b, _as(a - b, a))


@register
def Mul(a: np.ndarray, b: np.ndarray, **_: Any) -> np.ndarray:
    return _two_nans("Mul", a, b, _as(a * b, a))


_QUIET = np.uint32(0x00400000)


def _two_nans(op: str, a: np.ndarray, b: np.ndarray, out: np.ndarray,
              nchwc_block: int = 0) -> np.ndarray:
    """`out` (a op b, float32) with ONNX Runtime's NaN where both operands are NaN (x86's
    SSE gives its first source operand's, quieted; docs/operators.md (O116)): Sub and Div
    input 0's; Mod (fmod) the larger significand's, quieted (of equal ones the positive);
    Add and Mul (Eigen's sum and product on each broadcast run; Sum and Mean add pairs so)
    by the position in the run: with both operands whole in the run, input 0's in the
    scalar head (up to the first 16-byte boundary), input 1's in the 4-float packets and in
    a tail of one element, input 0's in a tail of two or three; with one operand one value
    in the run, the whole operand's everywhere but on the last element of a tail of three,
    which gives the one value's. One run of the whole output of Add or Mul is cut at several
    threads into TryParallelFor's blocks of (O91) with cost 1, each a run (Sum's pairs, and
    Mean's, run in one thread). float64 Add and Mul the same with 2-double packets (so
    input 1's wherever both are whole, the whole operand's otherwise; (O142)).
    `nchwc_block` (Add and Sum of two 4-D operands of one shape that ONNX Runtime's
    layout transformer keeps in its NCHWc layout of blocks of that many channels, (O196)):
    the run is the blocked tensor's, channels padded to whole blocks, and an element's
    place in it is `nchwc_positions`'."""
    kind64 = out.dtype == a.dtype == b.dtype == np.float64 and op in ("Add", "Mul")
    if not kind64 and (out.dtype != np.float32 or a.dtype != np.float32
                       or b.dtype != np.float32) or out.size == 0:
        return out
    lanes = 16 // out.dtype.itemsize       # Eigen's SSE packets: 4 floats, 2 doubles
    flat = out.reshape(-1)
    nan_out = np.isnan(flat)
    if not nan_out.any():
        return out
    index = np.flatnonzero(nan_out)
    xa = np.broadcast_to(a, out.shape).reshape(-1)[index]
    xb = np.broadcast_to(b, out.shape).reshape(-1)[index]
    both = np.isnan(xa) & np.isnan(xb)
    if not both.any():
        return out
    index, xa, xb = index[both], xa[both], xb[both]
    where, size = index, out.size
    if nchwc_block and op in ("Add", "Sum") and out.ndim == 4 \
            and a.shape == b.shape == out.shape:
        index, size = nchwc_positions(out.shape, nchwc_block, index)
    if op in ("Sub", "Div"):
        pick_b = np.zeros(index.size, bool)
    elif op == "Mod":
        # the C library's fmodf through the x87 unit: the NaN of the larger significand once
        # quieted, of equal ones the positive
        ua, ub = xa.view(np.uint32), xb.view(np.uint32)
        ka = ((ua & np.uint32(0x7FFFFF)) | _QUIET).astype(np.int64) * 2 + (ua >> 31 == 0)
        kb = ((ub & np.uint32(0x7FFFFF)) | _QUIET).astype(np.int64) * 2 + (ub >> 31 == 0)
        pick_b = kb > ka
    else:
        span, kind = _eigen_kind(a.shape, b.shape)
        span = size if span == out.size else span
        if span == size and op != "Sum":
            blocks = eigen_math.ort_parallel_blocks(span, 1.0, native_float.get_threads(),
                                                    out.dtype.itemsize)
            span = blocks[0][1] - blocks[0][0]
        first = index - index % span
        last = np.minimum(first + span, size)
        head = np.minimum(last, (first + lanes - 1) // lanes * lanes)
        tail = np.maximum(head, last // lanes * lanes)
        if kind == (False, False):
            pick_b = (index >= head) & ((index < tail) | (last - tail == 1))
        else:
            # input 0 is the one value when it is one (ONNX Runtime asks it first)
            last_of_three = (last - tail == 3) & (index == last - 1)
            pick_b = last_of_three if not kind[0] else ~last_of_three
    result = flat.copy()
    result[where] = ort_math.quieted(np.where(pick_b, xb, xa))
    return result.reshape(out.shape)


def nchwc_positions(shape: tuple[int, ...], block: int, index: np.ndarray
                    ) -> tuple[np.ndarray, int]:
    """The places of the elements at flat channels-first `index` of an (N, C, H, W) tensor
    in ONNX Runtime's NCHWc layout (N, ceil(C / block), H, W, block: the channels padded to
    whole blocks, MLAS's ReorderInput / NchwcConv output), and that layout's element count.

    Examples
    --------
    >>> nchwc_positions((1, 3, 1, 2), 4, np.arange(6))
    (array([0, 4, 1, 5, 2, 6]), 8)
    """
    n, c, h, w = shape
    blocks = -(-c // block)
    plane = h * w
    channel, spatial = index // plane % c, index % plane
    batch = index // (plane * c)
    place = ((batch * blocks + channel // block) * plane + spatial) * block + channel % block
    return place, n * blocks * block * plane


@register
def Div(a: np.ndarray, b: np.ndarray, **_: Any) -> np.ndarray:
    if np.issubdtype(a.dtype, np.integer):
        # C semantics: integer division truncates toward zero.
        q = np.abs(a) // np.abs(b)
        return _as(np.where((a < 0) != (b < 0), -q, q), a)
    return _two_nans("Div", a, b, _as(a / b, a))


@register
def Mod(a: np.ndarray, b: np.ndarray, *, fmod: int = 0, **_: Any) -> np.ndarray:
    """fmod=1: the sign of the dividend (C fmod); fmod=0: the sign of the divisor."""
    if np.issubdtype(a.dtype, np.floating) or a.dtype.kind == "V":
        fn = np.fmod if fmod else np.mod
        y = _as(fn(_f(a), _f(b)), a)
        return _two_nans("Mod", a, b, y) if fmod else y
    return _as(np.fmod(a, b) if fmod else np.mod(a, b), a)


@register
def Pow(a: np.ndarray, b: np.ndarray, **_: Any) -> np.ndarray:
    """Pow as ONNX Runtime's kernel computes it (docs/operators.md (O103), (O107)): where
    its broadcast loop takes the exponent as one value per span (`ort_math.scalar_operand`)
    and that value is 2 or 3, x * x and x * x * x in the base's own type (an integer
    wraps); otherwise an integer base is pow in double, then a C cast to its type (a float
    or negative exponent truncates, an overflow or NaN gives the type's lowest value, never
    raises); a float32 base powf by a float32 exponent, else pow in double rounded once (C++'s
    std::pow overloads); a float64 base pow in double. The double pow is the C library's
    (libm.pow_float64), not numpy's float64 power, one ulp apart on about 5% of values.
    NaN for a negative base and a fractional exponent, as the spec says."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if a.dtype.kind not in "iu" and a.dtype not in (np.float32, np.float64):
            return _as(np.power(_f(a), b.astype(compute_dtype(a))), a)
        by_span = ort_math.scalar_operand(a.shape, b.shape) == 1
        if by_span and b.size == 1 and b.reshape(-1)[0] in (2, 3):
            square = a * a
            out = square if b.reshape(-1)[0] == 2 else square * a
            return np.broadcast_to(out, np.broadcast_shapes(a.shape, b.shape)).copy()
        out = _pow_general(a, b)
        if by_span:
            every = np.broadcast_to(b, out.shape)
            two, three = np.equal(every, 2), np.equal(every, 3)
            if two.any() or three.any():
                base = np.broadcast_to(a, out.shape)
                square = base * base
                out = np.where(two, square, np.where(three, square * base, out))
        return out


def _pow_general(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ONNX Runtime's std::pow per element: powf for float32 by float32, else the C
    library's pow in double cast to the base's type."""
    if a.dtype == np.float32 and b.dtype == np.float32:
        if b.size == 1 and b.ndim <= a.ndim:
            y = native_float.powf(a, b)
            if y is not None:
                return y
        return libm.powf(a, b)
    return libm.pow_float64(a.astype(np.float64), b.astype(np.float64)).astype(a.dtype)


def _variadic(fn: Any, xs: Sequence[np.ndarray | None]) -> np.ndarray:
    arrays = [x for x in xs if x is not None]
    out = arrays[0]
    for x in arrays[1:]:
        out = fn(out, x)
    return _as(out, arrays[0])


def _eigen_span(a_shape: tuple[int, ...], b_shape: tuple[int, ...]) -> tuple[int, bool]:
    """The length of the runs ONNX Runtime's broadcast loop hands Eigen for a binary
    element-wise operator: the trailing output dimensions over which each operand stays
    either whole or repeated (the whole output when the shapes agree or an operand is one
    value); and whether input 0 is the repeated one (one value in each run)."""
    span, kind = _eigen_kind(a_shape, b_shape)
    return span, kind[0]


def _eigen_kind(a_shape: tuple[int, ...], b_shape: tuple[int, ...]
                ) -> tuple[int, tuple[bool, bool]]:
    """`_eigen_span`'s run length, and whether each input is one value in each run (input 0
    taken as the one value when the output has one element)."""
    out = np.broadcast_shapes(a_shape, b_shape)
    rank = len(out)
    a = (1,) * (rank - len(a_shape)) + tuple(a_shape)
    b = (1,) * (rank - len(b_shape)) + tuple(b_shape)
    span, kind = 1, None
    for d in reversed(range(rank)):
        if out[d] == 1:
            continue
        k = (a[d] == 1, b[d] == 1)
        if kind is not None and k != kind:
            break
        kind, span = k, span * out[d]
    return span, kind if kind is not None else (True, True)


def _max_min_pair(fn: Any, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ONNX Runtime's float Max / Min of two operands: Eigen's `E1.max(E2)` (E1 input 0, or
    input 1 when input 0 is one value), 4-float packets at 16-byte-aligned output positions
    giving E2 of two equal values (+0 and -0), the scalar head and tail of each broadcast
    run giving E1; of two NaNs E1's everywhere (docs/operators.md (O105)). np.maximum /
    np.minimum give their second operand of two equal values, their first of two NaNs.
    float64 the same with 2-double packets ((O142))."""
    if a.dtype == np.float16 and a.dtype == b.dtype and a.size and b.size:
        return _half_max_min(fn, a, b)
    if a.dtype != b.dtype or a.dtype not in (np.float32, np.float64) or a.size == 0 \
            or b.size == 0:
        return fn(a, b)
    lanes = 16 // a.dtype.itemsize
    span, a_repeated = _eigen_span(a.shape, b.shape)
    e1, e2 = (b, a) if a_repeated else (a, b)
    packets = np.asarray(fn(e1, e2))
    # scalars up to the first 16-byte boundary of each run and after its last whole packet
    scalar: np.ndarray
    if span == packets.size:
        # one run, cut at several threads into TryParallelFor's blocks (cost 1; (O91))
        scalar = np.zeros(packets.size, bool)
        for first, last in eigen_math.ort_parallel_blocks(span, 1.0, native_float.get_threads(),
                                                          a.dtype.itemsize):
            head = min(last, (first + lanes - 1) // lanes * lanes)
            tail = max(first, last // lanes * lanes)
            scalar[first:head] = True
            scalar[max(head, tail):last] = True
    else:
        index = np.arange(packets.size, dtype=np.int64)
        start = index - index % span
        scalar = ((index < (start + lanes - 1) // lanes * lanes)
                  | (index >= (start + span) // lanes * lanes))
    scalar = scalar.reshape(packets.shape)
    if not scalar.any():
        return packets
    # the scalar positions: E1 when it is NaN (of two NaNs E1's, as in the packets), else
    # np's second operand of equal values
    x1 = np.broadcast_to(e1, packets.shape)[scalar]
    x2 = np.broadcast_to(e2, packets.shape)[scalar]
    packets[scalar] = np.where(np.isnan(x1), x1, fn(x2, x1))
    return packets


def _half_max_min(fn: Any, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ONNX Runtime's float16 Max / Min of two operands: where an operand is one value in
    each broadcast run (`_eigen_kind`; input 0 when both are), Eigen's `max(value)` of the
    other gives that other's element as it is where it is NaN, else 0x7e00 with the sign of
    a NaN one value (its scalar float-to-half conversion's NaN), else the other's element
    on a tie (+0 and -0), else np.maximum / np.minimum's; operands both whole in the run
    give input 0 on a tie, else np's (docs/operators.md (O147))."""
    out = np.asarray(fn(a, b))
    _, (a_one, b_one) = _eigen_kind(a.shape, b.shape)
    with np.errstate(invalid="ignore"):
        tie = np.broadcast_to(a, out.shape) == np.broadcast_to(b, out.shape)
    if not (a_one or b_one):
        return np.where(tie, np.broadcast_to(a, out.shape), out).astype(np.float16)
    one, whole = (a, b) if a_one else (b, a)
    out = np.where(tie, np.broadcast_to(whole, out.shape), out).astype(np.float16)
    one_bits = np.broadcast_to(one, out.shape).view(np.uint16)
    whole_bits = np.broadcast_to(whole, out.shape).view(np.uint16)
    nan_one = (one_bits & np.uint16(0x7FFF)) > np.uint16(0x7C00)
    nan_whole = (whole_bits & np.uint16(0x7FFF)) > np.uint16(0x7C00)
    bits = np.where(nan_whole, whole_bits, np.where(
        nan_one, (one_bits & np.uint16(0x8000)) | np.uint16(0x7E00), out.view(np.uint16)))
    return bits.astype(np.uint16).view(np.float16)


def _max_min(fn: Any, xs: Sequence[np.ndarray | None]) -> np.ndarray:
    arrays = [x for x in xs if x is not None]
    out = arrays[0]
    for x in arrays[1:]:
        out = _max_min_pair(fn, out, x)
    return _as(out, arrays[0])


@register
def Min(*xs: np.ndarray, **_: Any) -> np.ndarray:
    return _max_min(np.minimum, xs)


@register
def Max(*xs: np.ndarray, **_: Any) -> np.ndarray:
    return _max_min(np.maximum, xs)


@register
def Sum(*xs: np.ndarray, nchwc_block: int = 0, **_: Any) -> np.ndarray:
    """The inputs added in order, each pair as Add (of two NaNs the one (O116) gives;
    `nchwc_block` as Add's)."""
    return _variadic(functools.partial(_add_pair, nchwc_block=nchwc_block), xs)


def _add_pair(a: np.ndarray, b: np.ndarray, nchwc_block: int = 0) -> np.ndarray:
    return _two_nans("Sum", a, b, np.add(a, b), nchwc_block)


@register
def Mean(*xs: np.ndarray, **_: Any) -> np.ndarray:
    """The inputs added in order, then multiplied by 1 / count rounded to the type, as ONNX
    Runtime does (a division rounds otherwise on a third of the values)."""
    arrays = [x for x in xs if x is not None]
    total = _variadic(_add_pair, arrays)
    return _as(total * total.dtype.type(1.0 / len(arrays)), arrays[0])


def _compare(name: str, fn: Any) -> None:
    def op(a: np.ndarray, b: np.ndarray, **_: Any) -> np.ndarray:
        return np.asarray(fn(a, b))

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"ONNX {name} with multidirectional broadcasting."
    register(op)


_COMPARE: list[tuple[str, Any]] = [
                   ("Equal", np.equal), ("Less", np.less), ("LessOrEqual", np.less_equal),
                   ("Greater", np.greater), ("GreaterOrEqual", np.greater_equal),
                   ("And", np.logical_and), ("Or", np.logical_or), ("Xor", np.logical_xor),
                   ("BitwiseAnd", np.bitwise_and), ("BitwiseOr", np.bitwise_or),
                   ("BitwiseXor", np.bitwise_xor)]
for _name, _compare_fn in _COMPARE:
    _compare(_name, _compare_fn)


@register
def Not(x: np.ndarray, **_: Any) -> np.ndarray:
    return np.logical_not(x)


@register
def Where(cond: np.ndarray, a: np.ndarray, b: np.ndarray, **_: Any) -> np.ndarray:
    """cond ? a : b, whole elements copied, but for floats a -0 of one operand is +0 as in
    ONNX Runtime's merge of its two selections (ort_math.where_zero_operand, (O345))."""
    zero = ort_math.where_zero_operand(cond.shape, a, b.shape)
    if zero == 0:
        a = np.where(a == 0, a.dtype.type(0), a)
    elif zero == 1:
        b = np.where(b == 0, b.dtype.type(0), b)
    return _as(np.where(cond, a, b), a)


# --- matrix products ----------------------------------------------------------------------


@register
def MatMul(a: np.ndarray, b: np.ndarray, *, b_packed: bool = False, **_: Any) -> np.ndarray:
    """float32 in ONNX Runtime's MLAS order (lowp.mlas_sgemm; `b_packed`: B is a 2-D
    initializer, which ONNX Runtime prepacks), other types by numpy."""
    if a.dtype == np.float32 and b.dtype == np.float32 and a.ndim and b.ndim:
        y = native_float.matmul(a, b, b_packed=b_packed)
        return y if y is not None else mlas_sgemm.matmul(
            a, b, b_packed=b_packed, threads=native_float.get_threads())
    return _as(np.matmul(a, b), a)


def _moved_batch(x: np.ndarray) -> np.ndarray:
    """A contiguous copy of `x` with its first axis moved just before the last two: by the
    native copy where it runs (into a buffer of the signature while a replay records, so
    that the product after it replays too), else numpy's."""
    moved = np.moveaxis(x, 0, -2)
    copied = native_float.contiguous_copy(moved)
    return copied if copied is not None else np.ascontiguousarray(moved)


@register
def FusedMatMul(a: np.ndarray, b: np.ndarray, *, alpha: float = 1.0, transA: int = 0,
                transB: int = 0, transBatchA: int = 0, transBatchB: int = 0,
                b_packed: bool = False, **_: Any) -> np.ndarray:
    """ONNX Runtime's com.microsoft FusedMatMul: alpha * op(a) @ op(b), op a transpose of
    the last two axes where asked, after moving the first axis just before the last two
    where transBatchA / transBatchB ask (ONNX Runtime's MatMulComputeHelper: both inputs of
    one rank >= 3; MLAS reads the moved operand in place through its leading dimension, so
    the products, and their order, are those of the moved copy); float32 in MLAS's order
    (lowp.mlas_sgemm)."""
    ldb_factor = 1
    if transBatchA or transBatchB:
        if a.ndim != b.ndim or a.ndim < 3:
            raise NodeError(f"FusedMatMul: transBatchA / transBatchB need two inputs of one "
                            f"rank >= 3, got {list(a.shape)} and {list(b.shape)}")
        if transBatchA:
            a = _moved_batch(a)
        if transBatchB:
            b = _moved_batch(b)
            # MLAS reads B in place: its leading dimension is a row's length times the
            # batch size (its N = 1 kernel needs 1)
            ldb_factor = int(np.prod(b.shape[:-2]))
    if a.dtype == np.float32 and b.dtype == np.float32 and a.ndim and b.ndim:
        kw = dict(alpha=float(alpha), trans_a=bool(transA), trans_b=bool(transB),
                  b_packed=b_packed, trans_batch=bool(transBatchA or transBatchB),
                  ldb_factor=ldb_factor)
        y = native_float.matmul(a, b, **kw)  # type: ignore[arg-type]
        return y if y is not None else mlas_sgemm.matmul(
            a, b, threads=native_float.get_threads(), **kw)  # type: ignore[arg-type]
    af = np.swapaxes(a, -1, -2) if transA and a.ndim > 1 else a
    bf = np.swapaxes(b, -1, -2) if transB and b.ndim > 1 else b
    return _as(np.matmul(af, bf) * np.asarray(alpha, a.dtype), a)


@register
def Gemm(a: np.ndarray, b: np.ndarray, c: np.ndarray | None = None, *, alpha: float = 1.0,
         beta: float = 1.0, transA: int = 0, transB: int = 0, b_packed: bool = False,
         **_: Any) -> np.ndarray:
    """Gemm; float32 as ONNX Runtime computes it: C broadcast into the output first, then
    MLAS's SGEMM multiplies it by beta and accumulates alpha * A B onto it (B prepacked when
    it is a constant, `b_packed`; lowp.mlas_sgemm, docs/operators.md (O33), (O145)); a
    float16 Gemm the same in float32 between Casts, as ONNX Runtime's CPU provider runs it
    ((O146))."""
    af, bf = _f(a), _f(b)
    dt = af.dtype.type
    am = af.T if transA else af
    bm = bf.T if transB else bf
    if am.ndim != 2 or bm.ndim != 2 or am.shape[1] != bm.shape[0]:
        raise NodeError(f"A {list(a.shape)} and B {list(b.shape)} (transA={transA}, "
                        f"transB={transB}) do not multiply")
    shape = (am.shape[0], bm.shape[1])
    if c is not None and beta != 0.0:
        try:
            np.broadcast_shapes(c.shape, shape)
        except ValueError:
            raise NodeError(f"C {list(c.shape)} does not broadcast to the product "
                            f"{list(shape)}") from None
    if af.dtype == np.float32 and bf.dtype == np.float32:
        c1 = None if c is None or beta == 0.0 else _f(c)
        if c1 is None or beta == 1.0:
            native = native_float.gemm(af, bf, c1, alpha=alpha, trans_a=bool(transA),
                                       trans_b=bool(transB), b_packed=b_packed)
            if native is not None:
                return _as(native, a)
        c0 = None if c1 is None else np.broadcast_to(c1.astype(np.float32), shape).copy()
        return _as(mlas_sgemm.gemm(af, bf, alpha=alpha, trans_a=bool(transA),
                                   trans_b=bool(transB), packed=b_packed, c=c0, beta=beta,
                                   threads=native_float.get_threads()), a)
    y = am @ bm
    if alpha != 1.0:
        y = y * dt(alpha)
    if c is not None and beta != 0.0:
        y = y + (_f(c) if beta == 1.0 else dt(beta) * _f(c))
    return _as(y, a)


@register
def Einsum(*xs: np.ndarray, equation: str, **_: Any) -> np.ndarray:
    """Einsum; a float32 contraction of two operands (every index in both operands or in
    the output, none repeated within one) as ONNX Runtime computes it: one MLAS SGEMM per
    batch entry (docs/operators.md (O39)); numpy's einsum otherwise."""
    eq = equation.replace(" ", "")
    if len(xs) == 2 and all(x.dtype == np.float32 for x in xs):
        ours = _einsum_gemm(eq, xs[0], xs[1])
        if ours is not None:
            return ours
    # numpy's einsum knows no ml_dtypes floats (bfloat16): those compute in float32
    args = [_f(x) if x.dtype.kind == "V" else x for x in xs]
    return _as(np.einsum(eq, *args, optimize=len(xs) > 2), xs[0])


def _einsum_gemm(eq: str, a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """`eq` as batched products: a permuted to (batch, M, K), b to (batch, K, N), K in a's
    index order; None where the equation is not such a contraction."""
    plan = _einsum_plan(eq, a, b)
    if plan is None:
        return None
    natively = native_float.einsum_products(a, b, plan)
    if natively is not None:
        return natively
    am = np.ascontiguousarray(a.transpose(plan.perm_a)).reshape(plan.nb, plan.m, plan.k)
    bm = np.ascontiguousarray(b.transpose(plan.perm_b)).reshape(plan.nb, plan.k, plan.n)
    y = np.empty((plan.nb, plan.m, plan.n), np.float32)
    for i in range(plan.nb):
        if not native_float.sgemm(am[i], bm[i], y[i]):
            y[i] = mlas_sgemm.gemm(am[i], bm[i], threads=native_float.get_threads())
    return y.reshape(plan.order_shape).transpose(plan.to_out).copy()


def _einsum_plan(eq: str, a: np.ndarray, b: np.ndarray) -> native_float.EinsumPlan | None:
    """How `eq` on a and b is a batch of products (native_float.EinsumPlan), or None where
    the equation is not such a contraction."""
    if "->" not in eq or "." in eq:
        return None
    lhs, out = eq.split("->")
    terms = lhs.split(",")
    if len(terms) != 2:
        return None
    ta, tb = terms
    if (len(set(ta)) != len(ta) or len(set(tb)) != len(tb) or len(set(out)) != len(out)
            or len(ta) != a.ndim or len(tb) != b.ndim or a.size == 0 or b.size == 0):
        return None
    if any(c not in out and (c not in ta or c not in tb) for c in ta + tb):
        return None                              # an index summed inside one operand
    batch = [c for c in ta if c in tb and c in out]
    contract = [c for c in ta if c in tb and c not in out]
    rows = [c for c in ta if c not in tb]
    cols = [c for c in tb if c not in ta]
    size = {c: a.shape[i] for i, c in enumerate(ta)}
    for i, c in enumerate(tb):
        if c in size and size[c] != b.shape[i] and 1 not in (size[c], b.shape[i]):
            return None
        size.setdefault(c, b.shape[i])
    if any(size[c] != a.shape[ta.index(c)] or size[c] != b.shape[tb.index(c)]
           for c in batch + contract):
        return None                              # broadcast indices: numpy's way
    order = batch + rows + cols
    return native_float.EinsumPlan(
        perm_a=tuple(ta.index(c) for c in batch + rows + contract),
        perm_b=tuple(tb.index(c) for c in batch + contract + cols),
        nb=_count(size, batch), m=_count(size, rows), k=_count(size, contract),
        n=_count(size, cols), order_shape=tuple(size[c] for c in order),
        to_out=tuple(order.index(c) for c in out))


def _count(size: dict[str, int], indices: list[str]) -> int:
    return int(np.prod([size[c] for c in indices]))


# --- softmax family -----------------------------------------------------------------------


def _softmax_axes(x: np.ndarray, axis: int | None, opset: int) -> tuple[np.ndarray, int]:
    """(view to reduce, axis): opset < 13 flattens to 2-D at `axis` (default 1), both
    sizes given (an empty tensor leaves -1 undetermined)."""
    if opset < 13:
        ax = _norm_axis(1 if axis is None else axis, x.ndim)
        return x.reshape(int(np.prod(x.shape[:ax])), int(np.prod(x.shape[ax:]))), 1
    return x, _norm_axis(-1 if axis is None else axis, x.ndim)


@register
def Softmax(x: np.ndarray, *, axis: int | None = None, opset: int = 13, **_: Any) -> np.ndarray:
    """Softmax; before opset 13 over the input flattened to 2-D at `axis`."""
    v, ax = _softmax_axes(_f(x), axis, opset)
    if v.dtype == np.float32 and v.size and ort_math.mlas_has_avx512f():
        # ONNX Runtime's order (lowp.ort_math): rows along the axis, read in place natively
        y = native_float.softmax_axis(v, ax)
        if y is not None:
            return _as(y.reshape(x.shape), x)
        rows = np.moveaxis(v, ax, -1)
        flat = np.ascontiguousarray(rows).reshape(-1, rows.shape[-1])
        y = ort_math.softmax_rows(flat)
        return _as(np.moveaxis(y.reshape(rows.shape), -1, ax).reshape(x.shape), x)
    if v.dtype == np.float64 and v.size:
        return _softmax64(v, ax, x.shape, log=False)
    e = np.exp(v - v.max(axis=ax, keepdims=True))
    return _as((e / e.sum(axis=ax, keepdims=True)).reshape(x.shape), x)


def _softmax64(v: np.ndarray, ax: int, shape: tuple[int, ...], log: bool) -> np.ndarray:
    """float64 (Log)Softmax along `ax` as ONNX Runtime's SoftmaxCPU<double> computes it on
    the rows of the input with `ax` moved last (lowp.eigen_double.softmax_rows, (O104))."""
    rows = np.moveaxis(v, ax, -1)
    flat = np.ascontiguousarray(rows).reshape(-1, rows.shape[-1])
    y = eigen_double.softmax_rows(flat, log)
    return np.moveaxis(y.reshape(rows.shape), -1, ax).reshape(shape)


@register
def LogSoftmax(x: np.ndarray, *, axis: int | None = None, opset: int = 13,
               **_: Any) -> np.ndarray:
    """LogSoftmax; float32 in ONNX Runtime's order on AVX-512F (lowp.ort_math)."""
    v, ax = _softmax_axes(_f(x), axis, opset)
    if v.dtype == np.float32 and v.size and ort_math.mlas_has_avx512f():
        y = native_float.softmax_axis(v, ax, log=True)
        if y is not None:
            return _as(y.reshape(x.shape), x)
        rows = np.moveaxis(v, ax, -1)
        flat = np.ascontiguousarray(rows).reshape(-1, rows.shape[-1])
        y = ort_math.log_softmax_rows(flat)
        return _as(np.moveaxis(y.reshape(rows.shape), -1, ax).reshape(x.shape), x)
    if v.dtype == np.float64 and v.size:
        return _softmax64(v, ax, x.shape, log=True)
    s = v - v.max(axis=ax, keepdims=True)
    return _as((s - np.log(np.exp(s).sum(axis=ax, keepdims=True))).reshape(x.shape), x)


@register
def Hardmax(x: np.ndarray, *, axis: int | None = None, opset: int = 13, **_: Any) -> np.ndarray:
    v, ax = _softmax_axes(x, axis, opset)
    if v.dtype == np.float32 and v.size and np.isnan(v).any():
        # ONNX Runtime: the row's Eigen maxCoeff, then the first value equal to it (none
        # when the maximum is NaN) (O121); numpy's argmax would take the first NaN
        rows = np.ascontiguousarray(np.moveaxis(v, ax, -1))
        flat = rows.reshape(-1, rows.shape[-1])
        eq = flat == eigen_double.row_max(flat)
        hit = np.zeros_like(flat)
        found = np.flatnonzero(eq.any(axis=1))
        hit[found, np.argmax(eq[found], axis=1)] = 1
        return np.moveaxis(hit.reshape(rows.shape), -1, ax).reshape(x.shape)
    idx = np.expand_dims(np.argmax(v, axis=ax), ax)
    out = np.zeros_like(v)
    np.put_along_axis(out, idx, 1, axis=ax)
    return out.reshape(x.shape)


# --- reductions ---------------------------------------------------------------------------

def _reduce(x: np.ndarray, axes_in: np.ndarray | Sequence[int] | None, attrs: dict[str, Any],
            fn: Any) -> np.ndarray:
    # `axes` is an attribute before opset 13 (ReduceSum) or 18 (the others), an input after;
    # both bind to the same parameter.
    keepdims = bool(attrs.get("keepdims", 1))
    axes = _axes_list(axes_in)
    if not axes:
        if attrs.get("noop_with_empty_axes", 0):
            return x.copy()
        axes = None
    ax = None if axes is None else tuple(_norm_axis(a, x.ndim) for a in axes)
    return np.asarray(fn(x, ax, keepdims))


def _reduction(name: str, fn: Any) -> None:
    def op(x: np.ndarray, axes: np.ndarray | Sequence[int] | None = None,
           **attrs: Any) -> np.ndarray:
        if name in _NOOP_TERMS and attrs.get("noop_with_empty_axes", 0) \
                and not _axes_list(axes) and x.dtype in _ORDERED:
            return _noop_reduction(name, x)
        return _reduce(x, axes, attrs, fn)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"ONNX {name}: axes attribute before its input opset, input after."
    register(op)


# ONNX Runtime's reductions over no axes (noop_with_empty_axes = 1) still run each
# element through the reduction's own update from +0 (and its finishing function): ReduceL1
# gives |x| (v > 0 ? v : -v, a NaN's sign flipped), ReduceSumSquare x·x, ReduceL2
# sqrt(x·x), ReduceLogSum log(x), ReduceLogSumExp log(exp(x - x)) + x = +0 + x (-0 as +0,
# a signalling NaN quieted: (O186)); the others give x as it is (O153)
_NOOP_TERMS: dict[str, Any] = {
    "ReduceL1": lambda v: np.where(v > 0, v, -v),
    "ReduceSumSquare": lambda v: v * v,
    "ReduceL2": lambda v: v * v,
    "ReduceLogSum": lambda v: v,
    "ReduceLogSumExp": lambda v: v,
}


def _noop_reduction(name: str, x: np.ndarray) -> np.ndarray:
    """`name` (a key of _NOOP_TERMS) of float32 or float64 `x` over no axes, as ONNX Runtime
    computes it: +0 + term(x) (a NaN term's NaN, quieted), then sqrt or the C library's
    log."""
    with np.errstate(all="ignore"):
        total = ort_math.sse_op(np.add, np.zeros_like(x), _NOOP_TERMS[name](x)).astype(x.dtype)
        if name == "ReduceL2":
            return np.sqrt(total).astype(x.dtype)
        if name == "ReduceLogSum":
            log = libm.log_float64 if x.dtype == np.float64 else libm.logf
            return np.asarray(log(total), x.dtype).reshape(x.shape)
        return total


def _float_reduction(fn: Any) -> Any:
    def red(x: np.ndarray, ax: Any, keep: bool) -> np.ndarray:
        if not np.issubdtype(x.dtype, np.floating):
            return np.asarray(fn(x, ax, keep)).astype(x.dtype)
        return _as(fn(_f(x), ax, keep), x)
    return red


def _ort_sum(mean: bool) -> Any:
    """Sum / mean in ONNX Runtime's float32 order where lowp.ort_math models it, else
    numpy's."""
    def red(x: np.ndarray, ax: Any, keep: bool) -> np.ndarray:
        axes = tuple(range(x.ndim)) if ax is None else ax
        ordered = native_float.reduce_sum(x, axes, keep, mean)
        if ordered is None:
            ordered = ort_math.reduce_sum(x, axes, keep, mean=mean)
        if ordered is not None:
            return ordered
        return np.mean(x, axis=ax, keepdims=keep) if mean else np.sum(x, axis=ax,
                                                                         keepdims=keep)
    return red


_reduction("ReduceSum", _float_reduction(_ort_sum(mean=False)))
_reduction("ReduceMean", _float_reduction(_ort_sum(mean=True)))
def _ort_prod(x: np.ndarray, ax: Any, keep: bool) -> np.ndarray:
    """ReduceProd: over every axis of float32 or float64, Eigen's redux of the buffer
    (`ort_math.eigen_product`, (O120)); over some axes numpy's product (ONNX Runtime's
    order there)."""
    axes = tuple(range(x.ndim)) if ax is None else tuple(ax)
    if x.dtype in _ORDERED and x.size and len(axes) == x.ndim:
        shape = [1] * x.ndim if keep else []
        return np.asarray(ort_math.eigen_product(x)).reshape(shape)
    return np.prod(x, axis=ax, keepdims=keep)


_reduction("ReduceProd", _float_reduction(_ort_prod))
def _extreme(fn: Any, lowest: bool) -> Any:
    """np.max / np.min; over an empty set the spec's identity: the dtype's lowest
    (ReduceMax) or highest (ReduceMin) value, -inf / +inf for floats, False / True."""
    def red(x: np.ndarray, ax: Any, keep: bool) -> np.ndarray:
        if x.size:
            return fn(x, axis=ax, keepdims=keep)
        if x.dtype == np.bool_:
            initial: Any = not lowest
        elif np.issubdtype(x.dtype, np.integer):
            info = np.iinfo(x.dtype)
            initial = info.min if lowest else info.max
        else:
            initial = -np.inf if lowest else np.inf
        return fn(x, axis=ax, keepdims=keep, initial=initial)
    return red


_POSITIVE_ZERO, _NEGATIVE_ZERO = np.float32(0.0), np.float32(-0.0)


def max_reference(x: np.ndarray, ax: tuple[int, ...] | None, keep: bool) -> np.ndarray:
    """float32 ReduceMax of non-empty `x` (docs/operators.md (O48)): the maximum of the set,
    whatever the order: NaN (the default quiet NaN) when a value is NaN, +0 rather than -0
    when both are there. (np.max alone gives either zero, and any NaN's bits, by its vector
    order.)"""
    y = np.asarray(np.max(x, axis=ax, keepdims=keep))
    zero = y == 0
    if zero.any():
        positive = np.any((x == 0) & ~np.signbit(x), axis=ax, keepdims=keep)
        y = np.where(zero, np.where(positive, _POSITIVE_ZERO, _NEGATIVE_ZERO), y)
    nan = np.isnan(y)
    if nan.any():
        y = np.where(nan, np.float32(np.nan), y)
    return np.asarray(y, np.float32)


def _ort_extreme(is_min: bool) -> Any:
    """ReduceMax (ReduceMin): float32 and float64 as ONNX Runtime takes them
    (`ort_math.reduce_extreme`, docs/operators.md (O127); float32 natively where it can),
    others as np.max (np.min)."""
    other = _extreme(np.min if is_min else np.max, lowest=not is_min)

    def red(x: np.ndarray, ax: tuple[int, ...] | None, keep: bool) -> np.ndarray:
        if x.dtype not in (np.float32, np.float64) or not x.size:
            return other(x, ax, keep)
        axes = tuple(range(x.ndim)) if ax is None else tuple(ax)
        native = native_float.reduce_extreme(x, axes, keep, is_min)
        return native if native is not None else ort_math.reduce_extreme(x, axes, keep, is_min)
    return red


_reduction("ReduceMax", _ort_extreme(is_min=False))
_reduction("ReduceMin", _ort_extreme(is_min=True))
def _generic_rows(x: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, list[int]]:
    """(rows of the reduced elements of each output in row-major order, kept axes)."""
    kept = [a for a in range(x.ndim) if a not in axes]
    rows = np.transpose(x, kept + list(axes)).reshape(
        int(np.prod([x.shape[a] for a in kept])), -1)
    return rows, kept


def _generic_shape(x: np.ndarray, axes: tuple[int, ...], keep: bool) -> list[int]:
    return [1 if a in axes else x.shape[a] for a in range(x.ndim)] if keep else \
        [x.shape[a] for a in range(x.ndim) if a not in axes]


def _sequential(rows: np.ndarray) -> np.ndarray:
    """Each row's values added one after another from +0, in float32 (float64 rows in
    float64): acc += v, so the first NaN the sum meets stays (x86's first operand,
    quieted; (O142)), where numpy's cumulative sum may give a later one."""
    dt = np.float64 if rows.dtype == np.float64 else np.float32
    cum = np.cumsum(rows, axis=1, dtype=dt)
    out = (cum[:, -1] + dt(0)).astype(dt)
    nan = np.isnan(out)
    if nan.any():             # the value at the first NaN of the running sum
        first = np.isnan(cum[nan]).argmax(axis=1)
        met = cum[nan, first]
        value = rows[nan, first].astype(dt)
        out[nan] = np.where(np.isnan(value), ort_math.quieted(value), met)
    return out


_ORDERED = (np.float32, np.float64)     # the float types whose reduction orders are modelled


def _square_sum_nans(squares: np.ndarray, out: np.ndarray, shape: tuple[int, ...],
                     axes: tuple[int, ...]) -> np.ndarray:
    """`out` (`_sequential` of float32 `squares`, rows of the generic loop) with each NaN
    as ONNX Runtime's compiled loop keeps it (O184): its loop over the last run of reduced
    axes, when that run is contiguous, adds four squares at a time, the second and third
    of each four before the running sum (the later NaN), the rest, and every square of a
    strided run, after it (the earlier NaN)."""
    nan = np.isnan(out)
    if not nan.any():
        return out
    kinds, size = ort_math.merged_runs(shape, axes)
    last = kinds.rindex("R")
    run = size[last]
    unrolled = (run // 4) * 4 if int(np.prod(size[last + 1:])) == 1 else 0
    position = np.arange(squares.shape[1]) % run
    square_first = (position < unrolled) & np.isin(position % 4, (1, 2))
    rows = squares[nan]
    acc = np.zeros(rows.shape[0], squares.dtype)
    for j in range(rows.shape[1]):
        v = rows[:, j]
        take = np.isnan(v) & (~np.isnan(acc) | square_first[j])
        acc = np.where(take, v, acc)
    out = out.copy()
    out[nan] = acc
    return out


def _ort_sum_square(root: bool) -> Any:
    """ReduceSumSquare / ReduceL2 of float32 in ONNX Runtime's order (docs/operators.md
    (O38)): over every axis, Eigen's squared norm of the whole tensor (as ReduceSum's
    order, (O18)); over some axes, each output's squares added one after another in
    row-major order from +0 (its generic loop: these reductions have no fast path), which
    NaN of float32 as its compiled loop keeps it (O184)."""
    def red(x: np.ndarray, ax: Any, keep: bool) -> np.ndarray:
        axes = tuple(range(x.ndim)) if ax is None else tuple(sorted(ax))
        if x.dtype not in _ORDERED or x.size == 0:
            total = np.sum(x * x, axis=ax, keepdims=keep)
            return np.sqrt(total) if root else total
        with np.errstate(invalid="ignore"):     # a signalling NaN's square
            squares = (x * x).astype(x.dtype)
        if len(axes) == x.ndim:
            total = ort_math.reduce_sum(squares, axes, keep, nan_order="square")
            assert total is not None
        else:
            rows = _generic_rows(squares, axes)[0]
            total = _sequential(rows)
            if x.dtype == np.float32:   # float64's loop keeps the first NaN
                total = _square_sum_nans(rows, total, x.shape, axes)
            total = total.reshape(_generic_shape(x, axes, keep))
        return np.sqrt(total).astype(x.dtype) if root else total
    return red


def _ort_l1(x: np.ndarray, ax: Any, keep: bool) -> np.ndarray:
    """ReduceL1: over some axes of float32 or float64, |x| added in order (O38); over every
    axis, ReduceSum's order (O104; float32 (O120))."""
    axes = tuple(range(x.ndim)) if ax is None else tuple(sorted(ax))
    if x.dtype in _ORDERED and x.size and len(axes) == x.ndim:   # ReduceSum's order
        total = ort_math.reduce_sum(np.abs(x), axes, keep, nan_order="abs")
        assert total is not None
        return total
    if x.dtype not in _ORDERED or x.size == 0 or len(axes) == x.ndim:
        return np.sum(np.abs(x), axis=ax, keepdims=keep)
    rows = _generic_rows(x, axes)[0]
    # its update adds v > 0 ? v : -v: a NaN with its sign flipped (O153)
    return _sequential(np.where(rows > 0, rows, -rows)).reshape(_generic_shape(x, axes, keep))


def _ort_log_sum_exp(x: np.ndarray, ax: Any, keep: bool) -> np.ndarray:
    """ReduceLogSumExp: over some axes of float32 (any of float64; every axis of float32,
    (O120)), the maximum m, expf(x - m) added in order, logf of the sum plus m (O38; exp
    and log for float64, (O104))."""
    axes = tuple(range(x.ndim)) if ax is None else tuple(sorted(ax))
    if x.dtype not in _ORDERED or x.size == 0:
        return np.log(np.sum(np.exp(x), axis=ax, keepdims=keep))
    rows = _generic_rows(x, axes)[0]
    exp, log = (libm.exp_float64, libm.log_float64) if x.dtype == np.float64 else (
        libm.expf, libm.logf)
    with np.errstate(all="ignore"):
        if len(axes) == x.ndim:     # (aggall) Eigen's maxCoeff of the buffer
            top = ort_math.eigen_extreme_rows(np.ascontiguousarray(rows), False)
        else:                       # from the first value (+0 for an infinite one), each
            top = np.where(np.isinf(rows[:, 0]), rows.dtype.type(0), rows[:, 0])
            for j in range(rows.shape[1]):   # number not below it (O142)
                v = rows[:, j]
                top = np.where(np.isinf(v) | np.isnan(v) | (v < top), top, v)
        terms = exp(ort_math.sse_op(np.subtract, rows, top[:, None]))
        terms = np.where(rows == -np.inf, rows.dtype.type(0), terms)  # -inf skipped
        total = _sequential(terms.astype(x.dtype))
        # an infinite maximum is the result (no inf - inf)
        out = np.where(np.isinf(top), top, ort_math.sse_op(np.add, log(total), top))
    return out.reshape(_generic_shape(x, axes, keep))


_reduction("ReduceSumSquare", _float_reduction(_ort_sum_square(root=False)))
_reduction("ReduceL1", _float_reduction(_ort_l1))
_reduction("ReduceL2", _float_reduction(_ort_sum_square(root=True)))
def _log_sum(x: np.ndarray, ax: Any, keep: bool) -> np.ndarray:
    """ReduceLogSum of float32 and float64: over every axis ReduceSum's order, over some the
    values added in order, then the C library's log of the sum (O104, (O153))."""
    axes = tuple(range(x.ndim)) if ax is None else tuple(sorted(ax))
    if x.dtype not in _ORDERED or x.size == 0:
        return np.log(np.sum(x, axis=ax, keepdims=keep))
    log = libm.log_float64 if x.dtype == np.float64 else libm.logf
    if len(axes) == x.ndim:         # over every axis: ReduceSum's order
        total = ort_math.reduce_sum(x, axes, keep)
        assert total is not None
        return log(total)
    total = _sequential(_generic_rows(x, axes)[0])
    return log(total).reshape(_generic_shape(x, axes, keep))


_reduction("ReduceLogSum", _float_reduction(_log_sum))
_reduction("ReduceLogSumExp", _float_reduction(_ort_log_sum_exp))


def _ort_arg(x: np.ndarray, ax: int, last: bool, largest: bool) -> np.ndarray:
    """ONNX Runtime's ArgMax / ArgMin along `ax`: from the first value, each later one taken
    when it is larger (smaller; with `last` also when equal), so a NaN is never taken and
    a NaN first value is kept (numpy's argmax takes the first NaN) (O121)."""
    v = np.take(x, 0, axis=ax)
    best = np.zeros(v.shape, np.int64)
    for j in range(1, x.shape[ax]):
        u = np.take(x, j, axis=ax)
        taken = (u > v) if largest else (u < v)
        if last:
            taken |= u == v
        v = np.where(taken, u, v)
        best = np.where(taken, j, best)
    return best


def _ort_arg_whole(x: np.ndarray, largest: bool) -> np.ndarray:
    """ONNX Runtime's ArgMax / ArgMin of a 1-D float `x` without select_last_index: Eigen's
    maxCoeff / minCoeff with index over 16-byte packets (4 float32, 2 float64) from the
    first value, fewer values by the rule of `_ort_arg`. A packet's index is that rule
    within it (lane 0 if a NaN); the value kept is std::max (min) of lanes (j, j + half)
    then of those (a NaN kept when it is the first operand), so it need not be the
    indexed one. A later packet replaces both when its largest (smallest) non-NaN value
    beats the kept one; the tail values after, one by one (O121)."""
    n, lanes = len(x), 16 // x.dtype.itemsize
    if n < lanes:
        return _ort_arg(x, 0, False, largest)
    count = n // lanes
    packets = x[:count * lanes].reshape(count, lanes)
    nan = np.isnan(packets)
    fill = -np.inf if largest else np.inf
    filled = np.where(nan, fill, packets)
    lane = np.argmax(filled, axis=1) if largest else np.argmin(filled, axis=1)
    lane[nan[:, 0]] = 0
    best = filled.max(axis=1) if largest else filled.min(axis=1)
    best[nan.all(axis=1)] = np.nan
    kept = packets
    while kept.shape[1] > 1:
        a, b = np.split(kept, 2, axis=1)
        kept = np.where(a < b, b, a) if largest else np.where(b < a, b, a)
    value, idx = kept[0, 0], int(lane[0])
    for k in range(1, count):
        if np.isnan(value):
            break
        if (best[k] > value) if largest else (best[k] < value):
            value, idx = kept[k, 0], k * lanes + int(lane[k])
    for i in range(count * lanes, n):
        if (x[i] > value) if largest else (x[i] < value):
            value, idx = x[i], i
    return np.asarray(idx, np.int64)


def _arg(x: np.ndarray, axis: int, keepdims: int, select_last_index: int, fn: Any) -> np.ndarray:
    ax = _norm_axis(axis, x.ndim)
    if x.dtype == np.float16:
        # ONNX Runtime has no float16 ArgMax / ArgMin: it runs float32's after a Cast (a
        # 1-D vector over NaNs in 4-float packets, (O121); (O141))
        x = x.astype(np.float32)
    if x.dtype.kind == "f" and x.size and np.isnan(x).any():
        if x.ndim == 1 and not select_last_index and x.dtype in (np.float32, np.float64):
            idx = _ort_arg_whole(x, fn is np.argmax)
            return np.expand_dims(idx, ax) if keepdims else idx
        idx = _ort_arg(x, ax, bool(select_last_index), fn is np.argmax)
        return np.expand_dims(idx, ax) if keepdims else idx
    if fn is np.argmax:
        y = native_float.arg_max(x, ax, bool(keepdims), bool(select_last_index))
        if y is not None:
            return y
    if select_last_index:
        flipped = np.flip(x, axis=ax)
        idx = x.shape[ax] - 1 - fn(flipped, axis=ax)
    else:
        idx = fn(x, axis=ax)
    idx = np.asarray(idx, dtype=np.int64)
    return np.expand_dims(idx, ax) if keepdims else idx


@register
def ArgMax(x: np.ndarray, *, axis: int = 0, keepdims: int = 1, select_last_index: int = 0,
           **_: Any) -> np.ndarray:
    return _arg(x, axis, keepdims, select_last_index, np.argmax)


@register
def ArgMin(x: np.ndarray, *, axis: int = 0, keepdims: int = 1, select_last_index: int = 0,
           **_: Any) -> np.ndarray:
    return _arg(x, axis, keepdims, select_last_index, np.argmin)


@register
def TopK(x: np.ndarray, k: np.ndarray | int, *, axis: int = -1, largest: int = 1,
         sorted: int = 1, **_: Any) -> tuple[np.ndarray, np.ndarray]:
    kk = int(np.asarray(k).reshape(-1)[0])  # an attribute before opset 10
    ax = _norm_axis(axis, x.ndim)
    # Stable sort keeps the lower index first among equal values, as ONNX Runtime does.
    key: np.ndarray = x
    if largest:
        if x.dtype == np.bool_:
            key = ~x
        elif np.issubdtype(x.dtype, np.unsignedinteger):
            key = np.iinfo(x.dtype).max - x
        elif np.issubdtype(x.dtype, np.integer):
            key = -x.astype(np.int64)  # -(-128) must not wrap in int8
        else:
            key = -x
    if largest and x.dtype.kind == "f" and np.isnan(x).any():
        # ONNX Runtime ranks NaN above every number both ways (first when largest, last
        # when smallest, where numpy's sort already puts it), the lower index first (O121)
        moved = np.moveaxis(key, ax, -1)
        order = np.moveaxis(np.lexsort((moved, ~np.isnan(moved)), axis=-1), -1, ax)
    else:
        order = np.argsort(key, axis=ax, kind="stable")
    idx = np.take(order, np.arange(kk), axis=ax).astype(np.int64)
    n = x.shape[ax]
    if not sorted and kk > 1:
        # ONNX Runtime's own order (O127): its heap (priority-queue path) in heap order, or
        # libstdc++'s nth_element
        heap_path = kk < 4 or math.log2(kk) / math.log2(n) < 0.725
        pick = _topk_heap if heap_path else _topk_nth_element
        rows = np.moveaxis(x, ax, -1).reshape(-1, n)
        found = [pick(row, kk, bool(largest)) for row in rows]
        if all(f is not None for f in found):
            heap = np.array(found, np.int64)
            idx = np.moveaxis(heap.reshape(*np.moveaxis(x, ax, -1).shape[:-1], kk), -1, ax)
    return np.take_along_axis(x, idx, axis=ax), idx


def _topk_better(row: np.ndarray, largest: bool) -> tuple[Any, Any]:
    """ONNX Runtime's TopK comparators over the positions of `row`: (beats_value(i, j): the
    value at i larger (smaller) than at j, NaN above every number either way; better(i, j):
    that, or equal values and i the lower index)."""
    flags = (np.isnan(row) if row.dtype.kind == "f" else np.zeros(row.shape, bool)).tolist()
    vals = row.tolist()

    def key(i: int) -> tuple[bool, Any]:
        return (flags[i], 0 if flags[i] else vals[i])

    def beats_value(i: int, j: int) -> bool:
        a, b = key(i), key(j)
        return a > b if largest else (a[0] < b[0] or (a[0] == b[0] and a[1] < b[1]))

    def better(i: int, j: int) -> bool:
        return beats_value(i, j) or (key(i) == key(j) and i < j)

    return beats_value, better


def _topk_nth_element(row: np.ndarray, k: int, largest: bool) -> list[int] | None:
    """The first k positions after libstdc++'s std::nth_element(begin, begin + k - 1, end,
    better) over 0 .. n - 1 (ONNX Runtime's Linux build, its SelectTopK): introselect with
    a median-of-three pivot moved first, the unguarded partition, an insertion sort of the
    last three or fewer; None where its depth limit would end in a heap select (not
    modelled)."""
    _, better = _topk_better(row, largest)
    a = list(range(len(row)))
    nth, first, last = k - 1, 0, len(a)
    if nth == last:
        return a[:k]
    depth = 2 * (last.bit_length() - 1)
    while last - first > 3:
        if depth == 0:
            return None
        depth -= 1
        mid = first + (last - first) // 2
        x, y, z = first + 1, mid, last - 1
        if better(a[x], a[y]):
            m = y if better(a[y], a[z]) else (z if better(a[x], a[z]) else x)
        else:
            m = x if better(a[x], a[z]) else (z if better(a[y], a[z]) else y)
        a[first], a[m] = a[m], a[first]
        lo, hi = first + 1, last
        while True:
            while better(a[lo], a[first]):
                lo += 1
            hi -= 1
            while better(a[first], a[hi]):
                hi -= 1
            if not lo < hi:
                break
            a[lo], a[hi] = a[hi], a[lo]
            lo += 1
        if lo <= nth:
            first = lo
        else:
            last = lo
    for i in range(first + 1, last):        # insertion sort of [first, last)
        v = a[i]
        if better(v, a[first]):
            a[first + 1:i + 1] = a[first:i]
            a[first] = v
        else:
            j = i
            while better(v, a[j - 1]):
                a[j] = a[j - 1]
                j -= 1
            a[j] = v
    return a[:k]


def _topk_heap(row: np.ndarray, k: int, largest: bool) -> list[int] | None:
    """The indices of ONNX Runtime's TopK heap over `row` (k > 1), in the heap's order (its
    unsorted output): the first k values pushed from the bottom up, then each later value
    that beats the top (the weakest kept) put there and sifted down; a value beats another
    when larger (smaller), NaN above every number either way, equal values by the lower
    index (docs/operators.md (O127))."""
    beats_value, better = _topk_better(row, largest)
    heap = [0] * k

    def sift(i: int, size: int) -> None:
        while True:
            left, right = 2 * i + 1, 2 * i + 2
            if right < size:
                replaces_left = better(heap[i], heap[left])
                if replaces_left and better(heap[right], heap[left]):
                    heap[i], heap[left] = heap[left], heap[i]
                    i = left
                elif replaces_left or better(heap[i], heap[right]):
                    heap[i], heap[right] = heap[right], heap[i]
                    i = right
                else:
                    return
            elif left < size and better(heap[i], heap[left]):
                heap[i], heap[left] = heap[left], heap[i]
                i = left
            else:
                return

    for pos in range(k):
        heap[k - pos - 1] = pos
        sift(k - pos - 1, k)
    for pos in range(k, len(row)):
        if beats_value(pos, heap[0]):
            heap[0] = pos
            sift(0, k)
    return heap


@register
def CumSum(x: np.ndarray, axis: np.ndarray, *, exclusive: int = 0, reverse: int = 0,
           **_: Any) -> np.ndarray:
    # (ONNX Runtime's loop: an exclusive sum adds the inputs before each position, never
    # subtracts one from the inclusive sum, which gave NaN after an infinity)
    from .float_data_ops import running
    ax = _norm_axis(int(np.asarray(axis).reshape(-1)[0]), x.ndim)
    return running(x, ax, np.add, exclusive=exclusive, reverse=reverse)


# --- shape and data movement (these must also work on integer tensors) -------------------


@register
def Identity(x: np.ndarray, **_: Any) -> np.ndarray:
    return x


@register
def Dropout(x: np.ndarray, ratio: np.ndarray | None = None,
            training_mode: np.ndarray | None = None, *, num_outputs: int = 1,
            **_: Any) -> OpResult:
    if training_mode is not None and bool(np.asarray(training_mode)):
        raise unsupported("Dropout", "training_mode=True")
    if num_outputs >= 2:
        return x, np.ones(x.shape, dtype=np.bool_)
    return x


@register
def Shape(x: np.ndarray, *, start: int = 0, end: int | None = None, **_: Any) -> np.ndarray:
    return np.array(x.shape[slice(start, end)], dtype=np.int64)


@register
def Size(x: np.ndarray, **_: Any) -> np.ndarray:
    return np.array(x.size, dtype=np.int64)


@register
def Reshape(x: np.ndarray, shape: np.ndarray | Sequence[int], *, allowzero: int = 0,
            **_: Any) -> np.ndarray:
    target = [int(s) for s in np.asarray(shape).reshape(-1)]
    if not allowzero:
        target = [x.shape[i] if s == 0 else s for i, s in enumerate(target)]
    return x.reshape(target)


@register
def Flatten(x: np.ndarray, *, axis: int = 1, **_: Any) -> np.ndarray:
    ax = _norm_axis(axis, x.ndim)
    return x.reshape(int(np.prod(x.shape[:ax])), int(np.prod(x.shape[ax:])))


@register
def Transpose(x: np.ndarray, *, perm: Sequence[int] | None = None, **_: Any) -> np.ndarray:
    return np.transpose(x, None if perm is None else list(perm))


# Squeeze, Unsqueeze and Split took `axes`/`split` as attributes before opset 13; the
# attribute binds to the same parameter as the later input.


@register
def Squeeze(x: np.ndarray, axes: np.ndarray | Sequence[int] | None = None,
            **_: Any) -> np.ndarray:
    ax = _axes_list(axes)
    if ax is None:
        return np.squeeze(x)
    return np.squeeze(x, axis=tuple(_norm_axis(a, x.ndim) for a in ax))


@register
def Unsqueeze(x: np.ndarray, axes: np.ndarray | Sequence[int] | None = None,
              **_: Any) -> np.ndarray:
    ax = _axes_list(axes) or []
    rank = x.ndim + len(ax)
    return np.expand_dims(x, tuple(_norm_axis(a, rank) for a in ax))


@register
def Concat(*xs: np.ndarray, axis: int, **_: Any) -> np.ndarray:
    arrays = [x for x in xs if x is not None]
    ax = _norm_axis(axis, arrays[0].ndim)
    y = native_float.concat(arrays, ax) if arrays[0].ndim else None
    return np.concatenate(arrays, axis=ax) if y is None else y


@register
def Split(x: np.ndarray, split: np.ndarray | Sequence[int] | None = None, *, axis: int = 0,
          num_outputs: int | None = None, **_: Any) -> tuple[np.ndarray, ...]:
    """Split by sizes, or into num_outputs equal parts (the last one smaller)."""
    ax = _norm_axis(axis, x.ndim)
    sizes = _axes_list(split)
    if sizes is not None and len(sizes) == 0:
        sizes = None
    dim = x.shape[ax]
    if sizes is None:
        if num_outputs is None:
            raise unsupported("Split", "neither 'split' nor the number of outputs is known")
        chunk = -(-dim // num_outputs)
        sizes = [min(chunk, dim - i * chunk) for i in range(num_outputs)]
    bounds = np.cumsum(sizes)[:-1]
    return tuple(np.split(x, bounds, axis=ax))


_INT_MAX_ENDS = (2**31 - 1, 2**63 - 1)


def _slice_index(dim: int, start: int, end: int, step: int) -> slice:
    """Python slice for ONNX Slice bounds on one axis (ONNX clamps differently for step<0).
    An end of INT32_MAX or INT64_MAX slices to the end in the step's direction, as ONNX
    Runtime reads the spec's "INT_MAX" (also for negative steps, where clamping alone
    would give an empty slice)."""
    if end in _INT_MAX_ENDS:
        end = dim if step > 0 else -1 - dim
    if start < 0:
        start += dim
    if end < 0:
        end += dim
    if step > 0:
        start = min(max(start, 0), dim)
        end = min(max(end, 0), dim)
        return slice(start, end, step)
    start = min(max(start, 0), dim - 1)
    end = min(max(end, -1), dim - 1)
    return slice(start, None if end == -1 else end, step)


@register
def Slice(x: np.ndarray, starts: np.ndarray | Sequence[int], ends: np.ndarray | Sequence[int],
          axes: np.ndarray | Sequence[int] | None = None, steps: np.ndarray | None = None,
          **_: Any) -> np.ndarray:
    """ONNX Slice, including its clamping of out-of-range bounds for negative steps."""
    # Before opset 10 starts/ends/axes were attributes of the same names.
    st = _axes_list(starts) or []
    en = _axes_list(ends) or []
    ax = _axes_list(axes) or list(range(len(st)))
    sp = _axes_list(steps) or [1] * len(st)
    index: list[slice] = [slice(None)] * x.ndim
    for s, e, a, k in zip(st, en, ax, sp, strict=True):
        a = _norm_axis(a, x.ndim)
        index[a] = _slice_index(x.shape[a], s, e, k)
    return x[tuple(index)]


@register
def Gather(x: np.ndarray, indices: np.ndarray, *, axis: int = 0, **_: Any) -> np.ndarray:
    """Gather; an index outside [-n, n) of the axis is the data's error (NodeError), as in
    ONNX Runtime. Indices read at run time (token ids) go through native row copies."""
    ax = _norm_axis(axis, x.ndim)
    y = native_float.gather(x, indices, ax) if isinstance(indices, np.ndarray) else None
    if y is not None:
        return y
    n = x.shape[ax]
    bad = (indices < -n) | (indices >= n)
    if np.any(bad):
        status = np.array([1, np.asarray(indices)[bad].ravel()[0]], np.int64)
        raise native_float.gather_error(status, n)
    idx = np.where(indices < 0, indices + n, indices)
    return np.take(x, idx, axis=ax)


@register
def GatherElements(x: np.ndarray, indices: np.ndarray, *, axis: int = 0,
                   **_: Any) -> np.ndarray:
    ax = _norm_axis(axis, x.ndim)
    idx = np.where(indices < 0, indices + x.shape[ax], indices)
    return np.take_along_axis(x, idx, axis=ax)


@register
def ScatterElements(x: np.ndarray, indices: np.ndarray, updates: np.ndarray, *, axis: int = 0,
                    reduction: str = "none", **_: Any) -> np.ndarray:
    ax = _norm_axis(axis, x.ndim)
    keeps_nan = reduction in ("add", "mul") and x.dtype.kind == "f" and bool(
        np.isnan(updates).any())
    if (reduction in ("add", "mul") and ax == 0 and indices.shape == updates.shape
            and indices.shape[1:] == x.shape[1:] and indices.size and not keeps_nan):
        # whole rows, one index a row (a graph network's messages: an Expand of the edge
        # list): ScatterND's native kernel adds each row in the indices' order, the order of
        # every element's updates here too (None for an index out of range: checked below);
        # with no NaN update no NaN meets another, so the NaN kept is the same (O172)
        rows = indices.reshape(indices.shape[0], -1)
        if (rows == rows[:, :1]).all():
            y = native_float.scatter_nd(x, np.ascontiguousarray(rows[:, :1]),
                                        np.ascontiguousarray(updates), reduction)
            if y is not None:
                return y
    # ONNX Runtime's checks (numpy would broadcast the updates, and read an index below -n
    # from the end once more)
    if indices.shape != updates.shape or indices.ndim != x.ndim:
        raise NodeError(f"indices {list(indices.shape)} and updates {list(updates.shape)} "
                        f"differ in shape, or not of the data's rank {x.ndim}")
    if any(indices.shape[k] > x.shape[k] for k in range(x.ndim) if k != ax):
        raise NodeError(f"indices {list(indices.shape)} larger than the data "
                        f"{list(x.shape)} outside axis {ax}")
    n = x.shape[ax]
    bad = (indices < -n) | (indices >= n)
    if np.any(bad):
        raise NodeError(f"indices element {int(indices[bad].ravel()[0])} out of range "
                        f"[-{n}, {n - 1}]")
    idx = np.where(indices < 0, indices + n, indices)
    out = x.copy()
    full: list[Any] = list(np.indices(idx.shape, sparse=True))
    full[ax] = idx
    if keeps_nan:   # (O172): a NaN update meeting a NaN element leaves the element's NaN
        op, unit = (np.add, 0) if reduction == "add" else (np.multiply, 1)
        _in_rounds(out, tuple(full), updates, lambda here, update: np.where(
            np.isnan(here), op(here, here.dtype.type(unit)), op(here, update)))
        return out
    _scatter_reduce(out, tuple(full), updates, reduction, "ScatterElements")
    return out


def _scatter_reduce(out: np.ndarray, index: tuple[Any, ...], updates: np.ndarray,
                    reduction: str, op: str) -> None:
    if reduction == "none":
        out[index] = updates
    elif reduction == "add":
        np.add.at(out, index, updates)
    elif reduction == "mul":
        np.multiply.at(out, index, updates)
    elif reduction in ("max", "min") and out.dtype.kind == "f":
        keeps = np.greater if reduction == "max" else np.less
        _in_rounds(out, index, updates,
                   lambda here, update: np.where(keeps(here, update), here, update))
    elif reduction == "max":
        np.maximum.at(out, index, updates)
    elif reduction == "min":
        np.minimum.at(out, index, updates)
    else:
        raise unsupported(op, f"reduction={reduction!r}")


def _in_rounds(out: np.ndarray, index: tuple[Any, ...], updates: np.ndarray,
               combine: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> None:
    """Scatter with a reduction as ONNX Runtime does: one update at a time in the indices'
    order, the element there replaced by `combine(element, update)`. `index` selects
    elements (ScatterElements) or whole slices over the trailing axes (ScatterND) of
    C-contiguous `out`. The updates go in rounds, the k-th update of every target in round
    k: no target twice in a round, each target's updates in their order, so a round is one
    vector step (a Python step an update took 90 ms for minimol_v1's max pooling of 32,768
    updates, 9 ms in rounds).

    Float max / min combine as `where(keeps(element, update), element, update)`: the update
    taken unless the element is larger (max) / smaller (min), so a NaN in the data takes the
    update and a tie of signed zeros the update's sign (numpy's maximum.at keeps the NaN)."""
    where = np.broadcast_arrays(*index)
    tail = out.shape[len(index):]
    size = int(np.prod(tail, dtype=np.int64))
    starts = np.ravel_multi_index(tuple(where), out.shape[:len(index)]) * size
    flat = (starts[..., None] + np.arange(size)).ravel()
    values = np.broadcast_to(updates, where[0].shape + tail).ravel()
    view = out.reshape(-1)
    order = np.argsort(flat, kind="stable")
    ranked = flat[order]
    first = np.ones(ranked.size, bool)
    first[1:] = ranked[1:] != ranked[:-1]
    group = np.maximum.accumulate(np.where(first, np.arange(ranked.size), 0))
    rank = np.empty(ranked.size, np.int64)
    rank[order] = np.arange(ranked.size) - group
    for k in range(int(rank.max(initial=-1)) + 1):
        now = rank == k
        targets = flat[now]
        view[targets] = combine(view[targets], values[now])


@register
def GatherND(x: np.ndarray, indices: np.ndarray, *, batch_dims: int = 0, **_: Any) -> np.ndarray:
    b = batch_dims
    batch_shape = x.shape[:b]
    nb = int(np.prod(batch_shape)) if b else 1
    k = indices.shape[-1]
    xs = x.reshape((nb,) + x.shape[b:])
    ids = indices.reshape((nb, -1, k))
    ids = np.where(ids < 0, ids + np.array(x.shape[b:b + k]), ids)
    bidx = np.arange(nb)[:, None]
    gathered = xs[(bidx,) + tuple(ids[..., j] for j in range(k))]
    return gathered.reshape(indices.shape[:-1] + x.shape[b + k:])


@register
def ScatterND(x: np.ndarray, indices: np.ndarray, updates: np.ndarray, *,
              reduction: str = "none", **_: Any) -> np.ndarray:
    """A copy of x whose slices at the index tuples (the last axis of `indices`, each
    negative index counted from the end) take the updates in order: written, or combined
    by `reduction` (numpy's ufunc.at; float max / min as ONNX Runtime compares); ONNX
    Runtime's checks of shapes and indices."""
    k = indices.shape[-1] if indices.ndim else 0
    if not 1 <= k <= x.ndim or updates.shape != indices.shape[:-1] + x.shape[k:]:
        raise NodeError(f"ScatterND: indices {list(indices.shape)} and updates "
                        f"{list(updates.shape)} do not fit the data {list(x.shape)}")
    bounds = np.array(x.shape[:k], dtype=np.int64)
    bad = (indices < -bounds) | (indices >= bounds)
    if np.any(bad):
        raise NodeError(f"ScatterND: indices element {int(indices[bad].ravel()[0])} out of "
                        f"range for the data {list(x.shape)}")
    y = native_float.scatter_nd(x, indices, updates, reduction) if (
        x.dtype == updates.dtype) else None
    if y is not None:
        return y
    out = x.copy()
    ids = np.where(indices < 0, indices + bounds, indices)
    index = tuple(ids[..., j] for j in range(k))
    _scatter_reduce(out, index, updates, reduction, "ScatterND")
    return out


@register
def Expand(x: np.ndarray, shape: np.ndarray, **_: Any) -> np.ndarray:
    target = np.broadcast_shapes(x.shape, tuple(int(s) for s in np.asarray(shape)))
    return np.ascontiguousarray(np.broadcast_to(x, target))


@register
def Tile(x: np.ndarray, repeats: np.ndarray, **_: Any) -> np.ndarray:
    return np.tile(x, [int(r) for r in np.asarray(repeats)])


@register
def ConstantOfShape(shape: np.ndarray, *, value: np.ndarray | None = None,
                    **_: Any) -> np.ndarray:
    v = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
    return np.full([int(s) for s in np.asarray(shape)], v[0], dtype=v.dtype)


@register
def Constant(**attrs: Any) -> np.ndarray:
    attrs.pop("opset", None)
    attrs.pop("num_outputs", None)
    if "value" in attrs:
        return freeze(np.asarray(attrs["value"]))    # the node's one array, on every run
    if "value_float" in attrs:
        return np.array(attrs["value_float"], dtype=np.float32)
    if "value_floats" in attrs:
        return np.array(attrs["value_floats"], dtype=np.float32)
    if "value_int" in attrs:
        return np.array(attrs["value_int"], dtype=np.int64)
    if "value_ints" in attrs:
        return np.array(attrs["value_ints"], dtype=np.int64)
    if "value_string" in attrs:
        return np.array(attrs["value_string"], dtype=object)
    if "value_strings" in attrs:
        return np.array(attrs["value_strings"], dtype=object)
    raise unsupported("Constant", f"attributes {sorted(attrs)}")


@register
def Range(start: np.ndarray, limit: np.ndarray, delta: np.ndarray, **_: Any) -> np.ndarray:
    s, lim, d = start.item(), limit.item(), delta.item()
    n = max(int(math.ceil((lim - s) / d)), 0)
    return (s + np.arange(n) * d).astype(start.dtype)


@register
def NonZero(x: np.ndarray, **_: Any) -> np.ndarray:
    if x.ndim == 0:
        return np.zeros((0, int(bool(x))), dtype=np.int64)
    return np.array(np.nonzero(x), dtype=np.int64).reshape(x.ndim, -1)


_FLOAT8 = frozenset({TensorProto.FLOAT8E4M3FN, TensorProto.FLOAT8E4M3FNUZ,
                     TensorProto.FLOAT8E5M2, TensorProto.FLOAT8E5M2FNUZ})


@register
def Cast(x: np.ndarray, *, to: int, saturate: int = 1, round_mode: str = "up",
         **_: Any) -> np.ndarray:
    """Cast; to float8 with saturate=1 (the default) out-of-range values become the
    largest finite value of the sign (numpy_helper's saturate_cast, as the spec says). To
    the input's own type it is the input itself (no copy: lowp.runtime.replay hands it on)."""
    dtype = helper.tensor_dtype_to_np_dtype(to)
    if dtype == np.object_ or x.dtype == np.object_:
        raise unsupported("Cast", "string tensors")
    if dtype == x.dtype:
        return x
    y = native_float.cast_integer(x, np.dtype(dtype))
    if y is None:
        y = native_float.cast_half(x, np.dtype(dtype))
    if y is not None:
        return y
    if (x.dtype, np.dtype(dtype)) in ((np.float32, np.float16), (np.float16, np.float32)):
        return _cast_half(x, np.dtype(dtype))
    if dtype == np.bool_:
        return x != 0
    if dtype == np.float32:
        y = native_float.cast_to_float(x)
        if y is not None:
            return y
    if np.issubdtype(dtype, np.integer) and np.issubdtype(x.dtype, np.floating):
        y = native_float.cast_from_float(x, np.dtype(dtype))
        if y is not None:
            return y
        return np.trunc(x).astype(dtype)
    if to in _FLOAT8 and saturate:
        return numpy_helper.saturate_cast(_f(x), dtype)
    if to == TensorProto.FLOAT8E8M0:
        return numpy_helper.to_float8e8m0(_f(x), bool(saturate), round_mode).astype(dtype)
    return x.astype(dtype)


def _cast_half(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float32 <-> float16 as ONNX Runtime's Cast converts on x86 (native/cast_half.h; the
    numbers as numpy rounds them), in TryParallelFor's blocks of (O117) above 128,000 values
    (one block otherwise). To float16 MLAS converts each block 8 at a time (vcvtps2ph: a NaN
    quiet with its sign and top payload bits), its last length % 8 in C++ (every NaN 0x7e00
    with its sign); to float32 16 at a time (vcvtph2ps quiets a NaN), each block's last
    length % 16 in C++ (the payload kept as it is, as numpy keeps it). docs/operators.md
    (O141), (O154)."""
    flat = np.ascontiguousarray(x).reshape(-1)
    y = flat.astype(dtype)
    nan = np.flatnonzero(np.isnan(flat))
    if nan.size == 0:
        return y.reshape(x.shape)
    n = flat.size
    cost = 6 * n * eigen_math._BYTE_CYCLES + (n >> 1)
    blocks = eigen_math.ort_parallel_blocks(n, cost, native_float.get_threads(), 0) \
        if n > 128000 else [(0, n)]
    size = blocks[0][1] - blocks[0][0]
    first = nan - nan % size
    width = 8 if dtype == np.float16 else 16
    vector = nan < first + (np.minimum(first + size, n) - first) // width * width
    if dtype == np.float16:
        bits = flat[nan].view(np.uint32)
        sign = ((bits >> 16) & 0x8000).astype(np.uint16)
        payload = np.where(vector, (bits >> 13) & 0x3FF, 0).astype(np.uint16)
        y.view(np.uint16)[nan] = sign | np.uint16(0x7E00) | payload
        return y.reshape(x.shape)
    y.view(np.uint32)[nan[vector]] |= _QUIET
    return y.reshape(x.shape)


@register
def CastLike(x: np.ndarray, like: np.ndarray, *, saturate: int = 1, round_mode: str = "up",
             **_: Any) -> np.ndarray:
    return Cast(x, to=helper.np_dtype_to_tensor_dtype(like.dtype), saturate=saturate,
                round_mode=round_mode)


@register
def Trilu(x: np.ndarray, k: np.ndarray | None = None, *, upper: int = 1, **_: Any) -> np.ndarray:
    kk = 0 if k is None else int(np.asarray(k).reshape(-1)[0])
    return np.triu(x, kk) if upper else np.tril(x, kk)


@register
def OneHot(indices: np.ndarray, depth: np.ndarray, values: np.ndarray, *, axis: int = -1,
           **_: Any) -> np.ndarray:
    """values[1] where an index (float ones truncated, negative ones counted from `depth`)
    equals the position along the new axis `axis`, values[0] elsewhere; an index out of
    [-depth, depth) gives a row of values[0]."""
    d = int(np.asarray(depth).reshape(-1)[0])
    ax = _norm_axis(axis, indices.ndim + 1)
    if ax == indices.ndim and isinstance(values, np.ndarray):
        y = native_float.one_hot(np.asarray(indices), d, values, ax)
        if y is not None:
            return y
    idx = np.asarray(indices).astype(np.int64)
    idx = np.where(idx < 0, idx + d, idx)
    hot = np.expand_dims(idx, ax) == np.arange(d).reshape(
        [d if i == ax else 1 for i in range(indices.ndim + 1)])
    off, on = np.asarray(values).reshape(-1)[:2]
    return np.where(hot, on, off).astype(values.dtype)


@register
def DepthToSpace(x: np.ndarray, *, blocksize: int, mode: str = "DCR", **_: Any) -> np.ndarray:
    n, c, h, w = x.shape
    b = blocksize
    if mode == "DCR":
        t = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    elif mode == "CRD":
        t = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    else:
        raise unsupported("DepthToSpace", f"mode={mode!r}")
    return t.reshape(n, c // (b * b), h * b, w * b)


@register
def SpaceToDepth(x: np.ndarray, *, blocksize: int, mode: str = "DCR", **_: Any) -> np.ndarray:
    """Blocks to channels: block-major channels (DCR) or channel-major (CRD, opset 25)."""
    n, c, h, w = x.shape
    b = blocksize
    perm = _SPACE_TO_DEPTH_PERM.get(mode)
    if perm is None:
        raise unsupported("SpaceToDepth", f"mode={mode!r}")
    t = x.reshape(n, c, h // b, b, w // b, b).transpose(perm)
    return t.reshape(n, c * b * b, h // b, w // b)


_SPACE_TO_DEPTH_PERM = {"DCR": (0, 3, 5, 1, 2, 4), "CRD": (0, 1, 3, 5, 2, 4)}


@register
def Pad(x: np.ndarray, pads: np.ndarray | Sequence[int],
        constant_value: np.ndarray | None = None, axes: np.ndarray | None = None, *,
        mode: str = "constant", value: float = 0.0, **_: Any) -> np.ndarray:
    # Before opset 11 `pads` and `value` were attributes; `pads` binds to the same parameter.
    pads_l = _axes_list(pads) or []
    fill: Any = value if constant_value is None else np.asarray(constant_value).reshape(-1)[0]
    ax = _axes_list(axes)
    ax = list(range(x.ndim)) if ax is None else [_norm_axis(a, x.ndim) for a in ax]
    n = len(ax)
    widths = [(0, 0)] * x.ndim
    for i, a in enumerate(ax):
        widths[a] = (pads_l[i], pads_l[i + n])
    # Negative pads crop; apply them first with a slice.
    crop = tuple(slice(-b if b < 0 else 0, x.shape[d] + e if e < 0 else None)
                 for d, (b, e) in enumerate(widths))
    x = x[crop]
    pos = [(max(b, 0), max(e, 0)) for b, e in widths]
    if mode == "constant":
        return np.pad(x, pos, mode="constant", constant_values=np.asarray(fill).astype(x.dtype))
    if mode == "reflect":
        return np.pad(x, pos, mode="reflect")
    if mode == "edge":
        return np.pad(x, pos, mode="edge")
    if mode == "wrap":
        return np.pad(x, pos, mode="wrap")
    raise unsupported("Pad", f"mode={mode!r}")


# --- quantization in float semantics -----------------------------------------------------


def _broadcast_qparam(p: np.ndarray, x: np.ndarray, axis: int, block_size: int) -> np.ndarray:
    """Reshape a per-tensor, per-axis or blocked scale/zero point to broadcast against `x`."""
    p = np.asarray(p)
    if p.size == 1 and not block_size:  # one value: per tensor, whatever its rank
        return p.reshape(())
    ax = _norm_axis(axis, x.ndim)
    if block_size:
        return np.repeat(p, block_size, axis=ax)[tuple(
            slice(0, x.shape[d]) if d == ax else slice(None) for d in range(x.ndim))]
    if p.ndim == 1:
        shape = [1] * x.ndim
        shape[ax] = p.shape[0]
        return p.reshape(shape)
    return p


_INT_RANGE = {np.dtype(t): (int(np.iinfo(t).min), int(np.iinfo(t).max))
              for t in (np.uint8, np.int8, np.uint16, np.int16, np.int32, np.uint32)}
# sub-byte integers and the small floats, as onnx's numpy_helper holds them (ml_dtypes)
_INT_RANGE.update({np.dtype(t): (int(ml_dtypes.iinfo(t).min), int(ml_dtypes.iinfo(t).max))
                   for t in (ml_dtypes.int4, ml_dtypes.uint4, ml_dtypes.int2, ml_dtypes.uint2)})
_SMALL_FLOATS = frozenset(np.dtype(t) for t in (
    ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e4m3fnuz, ml_dtypes.float8_e5m2,
    ml_dtypes.float8_e5m2fnuz, ml_dtypes.float4_e2m1fn))


def _quantized_dtype(zero_point: np.ndarray | None, output_dtype: int) -> np.dtype:
    if zero_point is not None:
        return np.dtype(zero_point.dtype)
    if output_dtype:
        return np.dtype(helper.tensor_dtype_to_np_dtype(output_dtype))
    return np.dtype(np.uint8)


def _to_small_float(v: np.ndarray, dtype: np.dtype, saturate: int) -> np.ndarray:
    """Round float32 `v` to a float8/float4 type (nearest, ties to even); with `saturate`
    (and always for float4, which has no infinity) out-of-range values take the largest
    finite value of their sign, as the spec's saturating conversion does."""
    if saturate or dtype == np.dtype(ml_dtypes.float4_e2m1fn):
        top = np.float32(ml_dtypes.finfo(dtype).max)
        v = np.where(np.isnan(v), v, np.clip(v, -top, top))
    return v.astype(dtype)


# the integer types whose float16 QuantizeLinear from opset 23 rounds x / scale to float16
# first (measured, (O358))
_HALF_QUOTIENT = frozenset(np.dtype(t) for t in (np.int8, np.uint8, np.int16, np.uint16))


def rounds_quotient_to_half(x_dtype: np.dtype, dtype: np.dtype, opset: int) -> bool:
    """Whether QuantizeLinear of `x_dtype` to `dtype` at `opset` rounds its float32
    quotient x / scale to float16 before rounding it to an integer, as ONNX Runtime's
    kernel does from opset 23 on (docs/operators.md (O358))."""
    return x_dtype == np.float16 and opset >= 23 and dtype in _HALF_QUOTIENT


@register
def QuantizeLinear(x: np.ndarray, y_scale: np.ndarray, y_zero_point: np.ndarray | None = None,
                   *, axis: int = 1, block_size: int = 0, output_dtype: int = 0,
                   saturate: int = 1, opset: int = 0, **_: Any) -> np.ndarray:
    """y = saturate(round_half_even(x / scale) + zero_point), per tensor, axis or block;
    to 2/4/8/16/32-bit integers, or float8/float4 (x / scale + zero_point, rounded to the
    type). x / scale is a float32 division also for float16 x and scale (rounded to float16
    from opset 23 on, `rounds_quotient_to_half`), NaN gives the integer type's lowest value
    (docs/operators.md (O217), (O358))."""
    dtype = _quantized_dtype(y_zero_point, output_dtype)
    scale = _broadcast_qparam(y_scale, x, axis, block_size).astype(np.float32)
    zero = (None if y_zero_point is None else
            _broadcast_qparam(y_zero_point, x, axis, block_size).astype(np.float32))
    v = x.astype(np.float32) / scale
    if dtype in _SMALL_FLOATS:     # (no zero point: -0 stays -0 in the signed-zero types)
        return _to_small_float(v if zero is None else v + zero, dtype, saturate)
    if dtype not in _INT_RANGE:
        raise unsupported("QuantizeLinear", f"output type {dtype}")
    if rounds_quotient_to_half(x.dtype, dtype, opset):
        with np.errstate(over="ignore"):     # (beyond float16's range: an infinity)
            v = v.astype(np.float16).astype(np.float32)
    lo, hi = _INT_RANGE[dtype]
    q = np.rint(v)
    q = q if zero is None else q + zero
    # NaN gives the type's lowest value, as ONNX Runtime's kernels do (float32 and float16)
    return np.clip(np.where(np.isnan(q), lo, q), lo, hi).astype(dtype)


@register
def DequantizeLinear(x: np.ndarray, x_scale: np.ndarray, x_zero_point: np.ndarray | None = None,
                     *, axis: int = 1, block_size: int = 0, output_dtype: int = 0,
                     **_: Any) -> np.ndarray:
    """y = (x - zero_point) * scale in float32 (the scale's type when it is float16), per
    tensor, axis or block; x any integer type, float8 or float4."""
    scale = _broadcast_qparam(x_scale, x, axis, block_size)
    # integers subtract the zero point exactly (int64), float8/float4 in float32
    wide = np.float32 if np.dtype(x.dtype) in _SMALL_FLOATS else np.int64
    xw = x.astype(wide)
    if x_zero_point is not None:
        xw = xw - _broadcast_qparam(x_zero_point, x, axis, block_size).astype(wide)
    y = xw.astype(np.float32) * scale.astype(np.float32)
    return y.astype(scale.dtype if scale.dtype != np.float64 else np.float32)


@register
def DynamicQuantizeLinear(x: np.ndarray, **_: Any) -> tuple[np.ndarray, ...]:
    """uint8 quantization with qparams from this tensor's range (ONNX DynamicQuantizeLinear).

    scale = (max(0, max x) - min(0, min x)) / 255, zero_point = saturate(round(-min / scale)),
    y = saturate(round(x / scale) + zero_point), all in float32, rounding half to even.
    """
    native = native_integer.dynamic_quantize(x)
    if native is not None:
        return native
    x = x.astype(np.float32)
    lo = np.float32(min(0.0, float(x.min()))) if x.size else np.float32(0)
    hi = np.float32(max(0.0, float(x.max()))) if x.size else np.float32(0)
    scale = np.float32((hi - lo) / np.float32(255))
    with np.errstate(divide="ignore", invalid="ignore"):
        zp = np.clip(np.rint(np.float32(0) - lo / scale), 0, 255) if scale else np.float32(0)
        q = np.rint(x / scale) if scale else np.zeros_like(x)
    y = np.clip(q + np.float32(zp), 0, 255).astype(np.uint8)
    return y, np.asarray(scale, np.float32), np.asarray(zp, np.float32).astype(np.uint8)


@register
def MatMulInteger(a: np.ndarray, b: np.ndarray, a_zero_point: np.ndarray | None = None,
                  b_zero_point: np.ndarray | None = None, **_: Any) -> np.ndarray:
    """int32 (a - a_zp) @ (b - b_zp); b_zero_point may be per column."""
    from lowp.ops.linear import exact_matmul, wrap_int32

    native = native_integer.matmul_integer(a, b, a_zero_point, b_zero_point)
    if native is not None:
        return native
    ai = a.astype(np.int64) - (0 if a_zero_point is None else a_zero_point.astype(np.int64))
    bz = 0 if b_zero_point is None else b_zero_point.astype(np.int64)
    bi = b.astype(np.int64) - bz
    return wrap_int32(exact_matmul(ai, bi))


@register
def MatMulIntegerToFloat(a: np.ndarray, b: np.ndarray, a_scale: np.ndarray,
                         b_scale: np.ndarray, a_zero_point: np.ndarray | None = None,
                         b_zero_point: np.ndarray | None = None,
                         bias: np.ndarray | None = None, **_: Any) -> np.ndarray:
    """ONNX Runtime's com.microsoft MatMulIntegerToFloat: float32(MatMulInteger) *
    float32(a_scale * b_scale), then + bias, each step rounded to float32 as the Cast, Mul
    and Add it fuses (lowp.runtime.ort_fusions, docs/operators.md (O23r)). As ONNX Runtime's
    kernel (MLAS's scale-bias output processor) the result keeps the product's shape and
    adds the first N bias values along its last axis (N its width), whatever the bias's
    rank."""
    if a_scale.size != 1 and b_scale.size == 1:    # the scales in either order, as the Mul
        a_scale, b_scale = b_scale, a_scale
    native = native_integer.matmul_integer_scaled(a, b, a_zero_point, b_zero_point,
                                                  a_scale, b_scale, bias)
    if native is not None:
        return native
    acc = MatMulInteger(a, b, a_zero_point, b_zero_point)
    y = acc.astype(np.float32) * np.multiply(a_scale, b_scale, dtype=np.float32)
    if bias is None:
        return y
    return np.add(y, bias.reshape(-1)[:y.shape[-1]], dtype=np.float32)


# Convolution, pooling, normalization, resize and recurrent ops, the small data ops, the
# sequence and optional ops and the ai.onnx.ml ops register themselves here.
from lowp.runtime import (  # noqa: E402, F401
    conv_bias_fusion,
    conv_integer_fusion,
    float_attention,
    float_data_ops,
    float_detection,
    float_nn,
    float_normalize,
    float_rotary,
    float_signal,
    ml_ops,
    ml_tree_ensemble,
    ml_trees,
    optional_ops,
    per_token_fusion,
    quantized_lstm,
    sequence_ops,
    tfidf,
)

# float16 operators ONNX Runtime's CPU provider has no kernel for, run as float32's between
# Casts there (its outputs equal those of the explicit Cast -> op -> Cast graph, a pool
# never NCHWc: the layout transformer saw a float16 pool), which lowp computed otherwise
# (docs/operators.md (O187); MaxPool in float_nn.MaxPool itself)
_FLOAT32_BETWEEN_CASTS = (
    "GlobalMaxPool", "GlobalAveragePool", "AveragePool", "LpPool", "GlobalLpPool",
    "ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSum", "ReduceProd", "Elu",
    "LeakyRelu", "HardSigmoid", "Hardmax", "DFT", "STFT",
    "LpNormalization")


def _between_casts(fn: Any) -> Any:
    """`fn` of a float16 first input as float32's between ONNX Runtime's Casts (every
    float16 input cast to float32, every float32 output back to float16)."""
    @functools.wraps(fn)
    def run(*xs: Any, **attrs: Any) -> Any:
        if not xs or not isinstance(xs[0], np.ndarray) or xs[0].dtype != np.float16:
            return fn(*xs, **attrs)
        if "nchwc_channels" in attrs:
            attrs = {**attrs, "nchwc_channels": 0}
        wide = [Cast(v, to=TensorProto.FLOAT) if isinstance(v, np.ndarray)
                and v.dtype == np.float16 else v for v in xs]
        out = fn(*wide, **attrs)

        def narrow(v: Any) -> Any:
            return Cast(v, to=TensorProto.FLOAT16) if isinstance(v, np.ndarray) \
                and v.dtype == np.float32 else v
        return tuple(narrow(v) for v in out) if isinstance(out, tuple) else narrow(out)
    return run


for _name in _FLOAT32_BETWEEN_CASTS:
    FLOAT_OPS[_name] = _between_casts(FLOAT_OPS[_name])
