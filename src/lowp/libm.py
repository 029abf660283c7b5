"""The C library's float32 functions (powf, expf, logf, log1pf, the trigonometric and
hyperbolic ones and their inverses), vectorized.

ONNX Runtime's Pow kernel calls std::pow(float, float) (powf) element by element, and Eigen
hands the elements after its last packet (at most three) to the C library's float functions.
glibc's powf computes in double precision and rounds once: its result is the correctly
rounded one except when the exact value lies within about 0.002 float32 ulp of a rounding
midpoint (measured: 2.4 million random powers, every difference within 0.0016 ulp). `powf`
rounds numpy's float64 result and calls the C function itself only for the elements within
1/64 ulp of a midpoint (about 1.5% of them), so it equals the C library at numpy speed.
glibc's expf (within 0.502 ulp) is treated the same way. glibc's logf is not that close to
correct rounding (differences up to 0.28 ulp from a midpoint), so it and the other functions
call the C library for every element: they serve Eigen's tails, per-row values, and the
operators ONNX Runtime computes with the C library element by element (Tan, Sinh, Cosh,
Asinh, Acosh, Atanh: glibc 2.36's are not correctly rounded, 3-14% of the values of a random
sweep differ from the correctly rounded ones).
Without a C library found (not glibc), the correctly rounded value is returned.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable
from typing import cast

import numpy as np

_F = np.float32
MIDPOINT_MARGIN = 1 / 64          # in float32 ulps


@functools.cache
def _c_function(name: str, arity: int) -> Callable[..., float] | None:
    found = ctypes.util.find_library("m")
    if found is None:
        return None
    fn = getattr(ctypes.CDLL(found), name)
    fn.restype, fn.argtypes = ctypes.c_float, [ctypes.c_float] * arity
    return cast(Callable[..., float], fn)


def _near_midpoint(exact: np.ndarray, rounded: np.ndarray) -> np.ndarray:
    finite = np.isfinite(exact) & np.isfinite(rounded) & (rounded != 0)
    ulp = np.spacing(np.abs(rounded), dtype=_F).astype(np.float64)
    with np.errstate(all="ignore"):
        off = np.abs(exact - rounded.astype(np.float64)) / ulp
    return finite & (np.abs(off - 0.5) < MIDPOINT_MARGIN)


def _like_c(name: str, exact: np.ndarray, *args: np.ndarray,
            everywhere: bool = False) -> np.ndarray:
    with np.errstate(over="ignore"):
        rounded = np.array(exact, ndmin=1).astype(_F).ravel()
    fn = _c_function(name, len(args))
    if fn is None:
        return rounded.reshape(np.shape(exact))
    flat = [np.ravel(a) for a in args]
    redo = everywhere or _near_midpoint(np.ravel(exact), rounded)
    for i in np.flatnonzero(np.broadcast_to(redo, rounded.shape)):
        rounded[i] = fn(*(float(a[i]) for a in flat))
    return rounded.reshape(np.shape(exact))


def powf(x: np.ndarray, y: np.ndarray | float) -> np.ndarray:
    """powf(x, y) elementwise (numpy broadcasting), float32."""
    xb, yb = np.broadcast_arrays(np.asarray(x, _F), np.asarray(y, _F))
    with np.errstate(all="ignore"):
        exact = np.power(xb.astype(np.float64), yb.astype(np.float64))
    return _like_c("powf", exact, xb, yb)


def expf(x: np.ndarray) -> np.ndarray:
    """expf(x) elementwise, float32. glibc's expf is within 0.502 ulp: it differs from the
    correctly rounded value only next to a rounding midpoint, where the C function is
    called (as `powf` does)."""
    xf = np.asarray(x, _F)
    with np.errstate(all="ignore"):
        exact = np.exp(xf.astype(np.float64))
    return _like_c("expf", exact, xf)


Unary = Callable[[np.ndarray], np.ndarray]


def _each(name: str, exact: Unary) -> Unary:
    def fn(x: np.ndarray) -> np.ndarray:
        xf = np.asarray(x, _F)
        with np.errstate(all="ignore"):
            wide = exact(xf.astype(np.float64))
        return _like_c(name, wide, xf, everywhere=True)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"{name}(x) elementwise, float32 (one C call per element)."
    return fn


logf = _each("logf", np.log)
log1pf = _each("log1pf", np.log1p)
sinf = _each("sinf", np.sin)
cosf = _each("cosf", np.cos)
tanf = _each("tanf", np.tan)
asinf = _each("asinf", np.arcsin)
acosf = _each("acosf", np.arccos)
atanf = _each("atanf", np.arctan)
sinhf = _each("sinhf", np.sinh)
coshf = _each("coshf", np.cosh)
asinhf = _each("asinhf", np.arcsinh)
acoshf = _each("acoshf", np.arccosh)
atanhf = _each("atanhf", np.arctanh)

