"""Eigen's vectorized float32 pow(x, y), as ONNX Runtime's CPU kernels evaluate it.

ONNX Runtime's LRN raises its scale to -beta with an Eigen array expression
(`x * scale.pow(-beta)`). Eigen evaluates it four floats at a time (SSE packets of the
wheel's baseline) with its generic pow: x = m * 2^e, log2(m) in double-word arithmetic
(Dekker's products: no fused multiply-add in the baseline build), y * log2(x) split into
an integer and a fraction r, and 2^r as exp(ln 2 * r) with Eigen's 6th-order minimax exp.
The elements after the last full packet go through the C library's powf. The result is
within about one float32 ulp of the exact power but not always the correctly rounded one
(about a quarter of LRN's outputs differ from the correctly rounded power), so a
QuantizeLinear after an LRN lands on ONNX Runtime's integer only with this form
(docs/operators.md, (O26)). It equals ONNX Runtime 1.32 on all but about one LRN output in
100,000, which is one ulp off: there ONNX Runtime's exp(r) is the correctly rounded one and
this polynomial's is not; which evaluation order gives it is not known.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

import numpy as np

_F = np.float32
PACKET = 4                                    # SSE: four floats per packet

# log2(1 + x) / x on [sqrt(1/2) - 1, sqrt(2) - 1]: P in float32 (p6 .. p0) ...
_LOG2_P = tuple(_F(c) for c in (9.703654795885e-2, -0.1690667718648, 0.1720575392246,
                                -0.1789081543684, 0.2050433009862, -0.2404672354459,
                                0.2885761857032))
# ... then C3 .. C0 as double words (hi, lo)
_LOG2_C = tuple((_F(h), _F(lo)) for h, lo in (
    (-0.360674142838, -6.13283912543e-09), (0.480897903442, -1.44861207474e-08),
    (-0.721347510815, -4.84483164698e-09), (1.44269502163, 2.01711713999e-08)))
# exp(r) on [-ln2/2, ln2/2]: p6 .. p2 (p1 = p0 = 1)
_EXP_P = tuple(_F(c) for c in (1.37449637986719608306884765625e-3,
                               8.36894474923610687255859375e-3,
                               4.166965186595916748046875e-2,
                               0.16666518151760101318359375,
                               0.49999988079071044921875))
_LN2 = _F(0.6931471805599453)
_LOG2E = _F(1.44269504088896341)
_EXP_C1, _EXP_C2 = _F(-0.693359375), _F(2.12194440e-4)
_EXP_HI = _F(88.723)
_SQRT_HALF = _F(0.70710678118654752440)


def _split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Veltkamp's split: hi + lo == x, hi holding the upper half of the significand."""
    gamma = _F(4097) * x
    hi = (x - gamma) + gamma
    return hi, x - hi


def _two_prod(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dekker's exact product: hi = fl(x * y), hi + lo == x * y."""
    xh, xl = _split(x)
    yh, yl = _split(y)
    hi = x * y
    lo = xh * yh - hi
    lo = xh * yl + lo
    lo = xl * yh + lo
    return hi, xl * yl + lo


def _fast_two_sum(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = x + y
    return s, y - (s - x)


def _dw_times(hi: np.ndarray, lo: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Double word (hi, lo) times float y, as a double word."""
    c_hi, c_lo1 = _two_prod(hi, y)
    t_hi, t_lo1 = _fast_two_sum(c_hi, lo * y)
    return _fast_two_sum(t_hi, t_lo1 + c_lo1)


def _dw_plus(x_hi: np.ndarray, x_lo: np.ndarray, y_hi: np.ndarray,
             y_lo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Double-word sum, assuming |x_hi| >= |y_hi|."""
    r_hi, r_lo = _fast_two_sum(x_hi, y_hi)
    return _fast_two_sum(r_hi, (y_lo + r_lo) + x_lo)


def _log2(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log2(m) for m in [sqrt(1/2), sqrt(2)) as a double word."""
    x = m - _F(1)
    p6, p5, p4, p3, p2, p1, p0 = _LOG2_P
    x2 = x * x
    even = ((p6 * x2 + p4) * x2 + p2) * x2 + p0
    odd = (p5 * x2 + p3) * x2 + p1
    t_hi, t_lo = _two_prod(odd * x + even, x)
    (c_hi, c_lo), *rest = _LOG2_C
    q_hi, q_lo = _dw_plus(np.full_like(x, c_hi), np.full_like(x, c_lo), t_hi, t_lo)
    for c_hi, c_lo in rest:
        t_hi, t_lo = _dw_times(q_hi, q_lo, x)
        q_hi, q_lo = _dw_plus(np.full_like(x, c_hi), np.full_like(x, c_lo), t_hi, t_lo)
    return _dw_times(q_hi, q_lo, x)


def _exp(x0: np.ndarray) -> np.ndarray:
    """Eigen's float exp: x = m ln2 + r, a 6th-order polynomial in r, scaled by 2^m."""
    x = np.minimum(x0, _EXP_HI)
    m = np.floor(x * _LOG2E + _F(0.5))
    r = m * _EXP_C1 + x
    r = m * _EXP_C2 + r
    p6, p5, p4, p3, p2 = _EXP_P
    r2 = r * r
    even = r2 * (r2 * p6 + p4) + p2
    odd = r2 * p5 + p3
    y = r2 * (r * odd + even) + (r + _F(1))
    return np.maximum(np.ldexp(y, m.astype(np.int32)).astype(_F), x0)


def _round_half_away(x: np.ndarray) -> np.ndarray:
    return (np.sign(x) * np.floor(np.abs(x) + _F(0.5))).astype(_F)


def _pow_positive(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x ** y for finite x > 0: Eigen's generic_pow_impl."""
    m, e = np.frexp(x)
    m, e = m.astype(_F), e.astype(_F)
    low = m < _SQRT_HALF
    m = np.where(low, _F(2) * m, m)
    e = np.where(low, e - _F(1), e)
    lx_hi, lx_lo = _log2(m)
    f1_hi, f1_lo = _two_prod(e, y)
    f2_hi, f2_lo = _dw_times(lx_hi, lx_lo, y)
    f_hi, f_lo = _dw_plus(f1_hi, f1_lo, f2_hi, f2_lo)
    n = _round_half_away(f_hi)
    r = (f_hi - n) + f_lo
    n_r = _round_half_away(r)
    r, n = r - n_r, n + n_r
    return np.ldexp(_exp(_LN2 * r), n.astype(np.int32)).astype(_F)


def packet_pow(x: np.ndarray, y: float) -> np.ndarray:
    """Eigen's packet pow of float32 `x` (any shape) to the scalar power `y`, every element.

    The special cases follow Eigen's generic_pow (y == 1, x == 1 or y == 0 give x and 1;
    zero, infinite, NaN and negative x as IEEE pow does)."""
    x = np.asarray(x, _F)
    yv = _F(y)
    with np.errstate(all="ignore"):
        ax = np.abs(x)
        finite_pos = np.isfinite(x) & (x > 0)
        body = _pow_positive(np.where(finite_pos, ax, _F(1)), np.full_like(x, yv))
        y_int = np.floor(yv) == yv
        y_odd = y_int and np.floor(yv / 2) * 2 != yv
        neg_ok = (x < 0) & np.isfinite(x)
        if y_int:                               # negative x: |x|^y with the sign of x^y
            mag = _pow_positive(np.where(neg_ok, ax, _F(1)), np.full_like(x, yv))
            body = np.where(neg_ok, -mag if y_odd else mag, body)
        special = np.power(x.astype(np.float64), float(yv)).astype(_F)  # IEEE pow's cases
        out = np.where(finite_pos | (neg_ok & y_int), body, special)
    if yv == 1:
        return x.copy()
    return np.where((x == 1) | (yv == 0), _F(1), out).astype(_F)


@functools.lru_cache(maxsize=1)
def _powf() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    name = ctypes.util.find_library("m")
    if name is None:
        return None
    fn = ctypes.CDLL(name).powf
    fn.restype, fn.argtypes = ctypes.c_float, [ctypes.c_float, ctypes.c_float]
    return fn


def scalar_pow(x: np.ndarray, y: float) -> np.ndarray:
    """The C library's powf, element by element (Eigen's scalar path for the tail)."""
    fn = _powf()
    flat = np.asarray(x, _F).ravel()
    if fn is None:                               # no libm found: the exact power, rounded
        return np.power(flat.astype(np.float64), float(_F(y))).astype(_F)
    return np.array([fn(float(v), float(_F(y))) for v in flat], _F)


def eigen_pow(x: np.ndarray, y: float) -> np.ndarray:
    """float32 `x ** y` as one Eigen assignment over contiguous `x` evaluates it: packets
    of four from the start (ONNX Runtime's buffers are aligned), the last n % 4 elements by
    powf."""
    flat = np.ascontiguousarray(x, _F).ravel()
    split = len(flat) - len(flat) % PACKET
    out = np.empty_like(flat)
    out[:split] = packet_pow(flat[:split], y)
    out[split:] = scalar_pow(flat[split:], y)
    return out.reshape(np.shape(x))
