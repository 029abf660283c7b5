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
def _c_function(name: str, arity: int,
                c_type: type[ctypes.c_float] | type[ctypes.c_double] = ctypes.c_float
                ) -> Callable[..., float] | None:
    found = ctypes.util.find_library("m")
    if found is None:
        return None
    fn = getattr(ctypes.CDLL(found), name)
    fn.restype, fn.argtypes = c_type, [c_type] * arity
    return cast(Callable[..., float], fn)


def _near_midpoint(exact: np.ndarray, rounded: np.ndarray,
                   margin: float = MIDPOINT_MARGIN) -> np.ndarray:
    finite = np.isfinite(exact) & np.isfinite(rounded) & (rounded != 0)
    # the ulp on the exact value's side: below a power of two it is half the one above
    # (sqrt(2^60 - 2^8) lies half an ulp under 2^30, a quarter of the ulp above it)
    with np.errstate(all="ignore"):
        below = np.abs(exact) < np.abs(rounded.astype(exact.dtype))
        ulp = np.where(below, np.abs(rounded - np.nextafter(rounded, rounded.dtype.type(0))),
                       np.spacing(np.abs(rounded))).astype(exact.dtype)
    with np.errstate(all="ignore"):
        off = np.abs(exact - rounded.astype(exact.dtype)) / ulp
    return finite & (np.abs(off - 0.5) < margin)


def _like_c(name: str, exact: np.ndarray, *args: np.ndarray, everywhere: bool = False,
            also: np.ndarray | None = None, dtype: type[np.floating] = _F,
            margin: float = MIDPOINT_MARGIN) -> np.ndarray:
    """`exact` rounded to `dtype`, with the C function `name` called on `args` for the
    elements near a rounding midpoint, every element if `everywhere`, and where `also`."""
    with np.errstate(over="ignore", under="ignore"):
        rounded = np.array(exact, ndmin=1).astype(dtype).ravel()
    c_type = ctypes.c_double if dtype == np.float64 else ctypes.c_float
    fn = _c_function(name, len(args), c_type)
    if fn is None:
        return rounded.reshape(np.shape(exact))
    flat = [np.ravel(a) for a in args]
    redo = everywhere or _near_midpoint(np.ravel(exact), rounded, margin)
    if also is not None:
        redo = np.ravel(also) | redo
    for i in np.flatnonzero(np.broadcast_to(redo, rounded.shape)):
        rounded[i] = fn(*(float(a[i]) for a in flat))
    return rounded.reshape(np.shape(exact))


def powf(x: np.ndarray, y: np.ndarray | float) -> np.ndarray:
    """powf(x, y) elementwise (numpy broadcasting), float32. A NaN operand goes to the C
    function as well: glibc's powf of a NaN is its own (of a negative NaN by an odd integer
    exponent a positive NaN, as it negates x * x for a negative x; a signalling NaN by an
    exponent of 0 a NaN, not 1), where numpy's power keeps the NaN's sign and gives 1."""
    xb, yb = np.broadcast_arrays(np.asarray(x, _F), np.asarray(y, _F))
    with np.errstate(all="ignore"):
        exact = np.power(xb.astype(np.float64), yb.astype(np.float64))
    out = _like_c("powf", exact, xb, yb, also=np.isnan(xb) | np.isnan(yb))
    return _signalling_nan_powers(xb, yb, out)


def _signalling_nan_powers(x: np.ndarray, y: np.ndarray, out: np.ndarray) -> np.ndarray:
    """glibc's powf(x, 0) and powf(1, y) are 1 for a quiet NaN but x + y, a quiet NaN, for a
    signalling one; ctypes hands the C function a float32 as a double, which quiets it."""
    xs, ys = _signalling(x), _signalling(y)
    if not (xs.any() or ys.any()):
        return out
    out = np.where(xs & (y == 0), _quieted(x), out)
    return np.where(ys & (x == 1), _quieted(y), out)


def _signalling(v: np.ndarray) -> np.ndarray:
    return np.isnan(v) & ((v.view(np.uint32) & np.uint32(0x00400000)) == 0)


def _quieted(v: np.ndarray) -> np.ndarray:
    return (v.view(np.uint32) | np.uint32(0x00400000)).view(_F)


_LONG_DOUBLE_WIDE = np.finfo(np.longdouble).nmant >= 63     # x87 extended precision


def pow_float64(x: np.ndarray, y: np.ndarray | float) -> np.ndarray:
    """pow(x, y) elementwise (numpy broadcasting), float64, as the C library's pow (what
    ONNX Runtime's Pow calls for a double, or for a float32 base by a double exponent).
    numpy's float64 power is a SIMD routine of its own, one ulp from glibc's pow on about 5%
    of random values; glibc's pow is within 0.52 ulp, so the power in long double rounded
    to float64 equals it except within 0.02 ulp of a rounding midpoint: within 1/32 ulp (and
    for a NaN operand, as in `powf`) the C function is called. Without an x87 long double,
    it is called for every element."""
    xb, yb = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(y, np.float64))
    with np.errstate(all="ignore"):
        exact = np.power(xb.astype(np.longdouble), yb.astype(np.longdouble))
    return _like_c("pow", exact, xb, yb, everywhere=not _LONG_DOUBLE_WIDE,
                   also=np.isnan(xb) | np.isnan(yb), dtype=np.float64, margin=1 / 32)


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
tanhf = _each("tanhf", np.tanh)



@functools.cache
def _c_double_function(name: str, version: str | None) -> Callable[[float], float] | None:
    """The C library's double function `name`, of symbol version `version` where given
    (the one a program linked against that glibc version calls), else the default one."""
    found = ctypes.util.find_library("m")
    if found is None:
        return None
    library = ctypes.CDLL(found)
    prototype = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_double)
    dlvsym = getattr(ctypes.CDLL(None), "dlvsym", None)
    if version is not None and dlvsym is not None:
        dlvsym.restype = ctypes.c_void_p
        dlvsym.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
        address = dlvsym(library._handle, name.encode(), version.encode())
        if address:
            return cast(Callable[[float], float], prototype(address))
    return cast(Callable[[float], float], prototype((name, library)))


def _each_float64(name: str, version: str | None = None) -> Unary:
    def fn(x: np.ndarray) -> np.ndarray:
        xd = np.ascontiguousarray(x, np.float64)
        c_function = _c_double_function(name, version)
        if c_function is None:
            with np.errstate(all="ignore"):
                return cast(np.ndarray, getattr(np, name)(xd))
        out = np.empty_like(xd)
        flat_in, flat_out = xd.reshape(-1), out.reshape(-1)
        for i in range(flat_in.size):
            flat_out[i] = c_function(float(flat_in[i]))
        return out.reshape(np.shape(x))
    fn.__name__ = fn.__qualname__ = f"{name}_float64"
    fn.__doc__ = f"{name}(x) elementwise, float64 (one C call per element)."
    return fn


# The C library's double functions: the tails of Eigen's float64 assignments. ONNX Runtime's
# wheel binds exp and log at symbol version GLIBC_2.2.5, glibc's compatibility wrappers
# (log of a negative number is +NaN there, -NaN in the GLIBC_2.29 log).
exp_float64 = _each_float64("exp", "GLIBC_2.2.5")
log_float64 = _each_float64("log", "GLIBC_2.2.5")
tanh_float64 = _each_float64("tanh")
sin_float64 = _each_float64("sin")
cos_float64 = _each_float64("cos")
