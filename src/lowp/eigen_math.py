"""Eigen's vectorized float32 log and pow, as ONNX Runtime's CPU kernels evaluate them.

ONNX Runtime's Log kernel and its LRN (`x * scale.pow(-beta)`) are Eigen array expressions.
Eigen evaluates them four floats at a time (SSE packets of the wheel's baseline), from the
start of the buffer (ONNX Runtime's buffers are aligned), and the elements after the last
full packet through the C library (logf, powf). The packet functions are Eigen's own
approximations, within about one float32 ulp of the exact value but often not the correctly
rounded one (about 17% of logs and 25% of LRN's powers differ from it), so a QuantizeLinear
after a Log or an LRN lands on ONNX Runtime's integer only with these forms
(docs/operators.md, (O26), (O27)). The Eigen inside ONNX Runtime 1.32's wheel is newer than
release 3.4.0, whose log, log2 and exp differ.

* log: x = m * 2^e with m in [sqrt(1/2), sqrt(2)); log(m) as a (3, 3) rational function of
  m - 1; plus e * ln 2.
* atan: not Eigen's: the wheel's Atan loop (read from its machine code) is a rational
  function of t^2 times t, t = |x| or 1 / |x|, pi/2 minus it past 1, up to 4 ulps off.
* threads: at T >= 2 intra-op threads ONNX Runtime runs an element-wise functor in the
  blocks of its TryParallelFor (`ort_parallel_blocks`), each an assignment of its own whose
  unaligned head takes the C library too (`assignment_runs`, docs/operators.md (O91)).
* pow: log2(m) by a degree-10 polynomial finished in double-word arithmetic (Dekker's
  products: no fused multiply-add in the baseline build), y * log2(x) split into an integer
  and a fraction r, and 2^r as exp(ln 2 * r) with Eigen's 6th-order minimax exp.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import libm

_F = np.float32
LANES = 4                                    # SSE: four floats per packet

# log2(1 + x) / x on [sqrt(1/2) - 1, sqrt(2) - 1]: c8 .. c2 in float32 (Horner) ...
_LOG2_C = tuple(_F(c) for c in (9.7010828554630279541015625e-02, -1.6896486282348632812500000e-01,
                                1.7200836539268493652343750e-01, -1.7892272770404815673828125e-01,
                                2.0505344867706298828125000e-01, -2.4046677350997924804687500e-01,
                                2.8857553005218505859375000e-01, -3.6067414283752441406250000e-01,
                                4.8089790344238281250000000e-01))
# ... then C1 and C0 as double words (hi, lo): float32 head and float32 tail of a double
_C1 = -7.2134751588268664068692714863573201000690460205078125e-01
_C0 = 1.442695041742110273474963832995854318141937255859375e+00
_LOG2_C1 = (_F(_C1), _F(_C1 - float(_F(_C1))))
_LOG2_C0 = (_F(_C0), _F(_C0 - float(_F(_C0))))
# log(1 + x) on [sqrt(1/2) - 1, sqrt(2) - 1] as p(x) / q(x): p1 .. p3, q1 .. q3
_LOG_P = tuple(_F(c) for c in (1.0000000190281136, 1.0000000190281063, 0.18256296349849254))
_LOG_Q = tuple(_F(c) for c in (1.4999999999999927, 0.59923249590823520, 0.049616247954120038))
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
# the result Eigen gives an invalid lane of log: the input ORed with an all-ones mask
_INVALID = np.array(0xFFFFFFFF, np.uint32).view(_F)[()]


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
    """log2(m) for m in [sqrt(1/2), sqrt(2)) as a double word: x = m - 1, a degree-8
    polynomial in float32, its last two Horner steps and the final product by x in
    double-word arithmetic."""
    x = m - _F(1)
    p = np.full_like(x, _LOG2_C[0])
    for c in _LOG2_C[1:]:
        p = p * x + c
    hi, lo = _two_prod(x, p)
    hi, lo = _dw_plus(*_full(x, _LOG2_C1), hi, lo)
    hi, lo = _dw_times(hi, lo, x)
    hi, lo = _dw_plus(*_full(x, _LOG2_C0), hi, lo)
    return _dw_times(hi, lo, x)


def _full(like: np.ndarray, pair: tuple[np.float32, np.float32]) -> tuple[np.ndarray, np.ndarray]:
    return np.full_like(like, pair[0]), np.full_like(like, pair[1])


def _exp(x0: np.ndarray) -> np.ndarray:
    """Eigen's packet exp: x = m ln2 + r (ln2 in two parts), a 6th-order polynomial in r,
    scaled by 2^m; 0 below -104, the input itself where it is larger (inf, NaN)."""
    with np.errstate(all="ignore"):
        x = np.minimum(x0, _EXP_HI)
        m = np.floor(x * _LOG2E + _F(0.5))
        r = m * _EXP_C1 + x
        r = m * _EXP_C2 + r
        p6, p5, p4, p3, p2 = _EXP_P
        r2 = r * r
        even = r2 * (r2 * p6 + p4) + p2
        odd = r2 * p5 + p3
        y = r2 * (r * odd + even) + (r + _F(1))
        scaled = np.ldexp(y, np.nan_to_num(m, nan=0).astype(np.int32)).astype(_F)
        out = np.where(np.isnan(x0), x0, np.maximum(scaled, x0))
        return np.where(x0 < _F(-104), _F(0), out).astype(_F)


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


def _packet_log(x: np.ndarray) -> np.ndarray:
    """Eigen's plog_float: every element, IEEE log's special cases."""
    with np.errstate(all="ignore"):
        m, e = np.frexp(x)
        m, e = m.astype(_F), e.astype(_F)
        low = m < _SQRT_HALF
        t = (m - _F(1)) + np.where(low, m, _F(0))
        e = e - np.where(low, _F(1), _F(0))
        p1, p2, p3 = _LOG_P
        q1, q2, q3 = _LOG_Q
        p = t * (t * (t * p3 + p2) + p1)
        q = t * (t * (t * q3 + q2) + q1) + _F(1)
        out = e * _LN2 + p / q
        out = np.where(x == np.inf, _F(np.inf), out)
        # Eigen ORs the invalid lanes' mask into them: all ones, a negative NaN
        out = np.where((x < 0) | np.isnan(x), _INVALID, out)
        return np.where(x == 0, _F(-np.inf), out).astype(_F)


def assign(x: np.ndarray, packet: Callable[[np.ndarray], np.ndarray],
           scalar: Callable[[np.ndarray], np.ndarray], lanes: int = LANES) -> np.ndarray:
    """One Eigen assignment over contiguous `x`: packets of `lanes` from the start (four
    float32, or two float64 with `lanes` 2), the last n % lanes elements by the scalar
    function."""
    flat = np.ascontiguousarray(x, _F if lanes == LANES else np.float64).ravel()
    split = len(flat) - len(flat) % lanes
    out = np.empty_like(flat)
    out[:split] = packet(flat[:split])
    out[split:] = scalar(flat[split:])
    return out.reshape(np.shape(x))


def _packet_log1p(x: np.ndarray) -> np.ndarray:
    """Eigen's generic log1p: x * log(1 + x) / ((1 + x) - 1), x itself where 1 + x rounds
    to 1 (or log(1 + x) is infinite). Every NaN it gives (x NaN, or 1 + x below 0) is log's
    0xffffffff: ONNX Runtime's build keeps the quotient's NaN where x is a NaN too. Set here,
    not left to numpy, whose loops keep either operand's NaN depending on the length."""
    with np.errstate(all="ignore"):
        up = x + _F(1)
        log_up = _packet_log(up)
        keep = (up == _F(1)) | (up == log_up)
        out = np.where(keep, x, x * (log_up / (up - _F(1))))
        return np.where(np.isnan(x) | (up < 0), _INVALID, out).astype(_F)


# Cody-Waite reduction by pi/2 in four float32 parts (no fused multiply-add)
_PIO2_PARTS = tuple(_F(c) for c in (-1.5703125, -0.000483989715576171875,
                                    1.62865035235881805419921875e-07,
                                    5.5644315544167710640977020375430583953857421875e-11))
_COS_P = tuple(_F(c) for c in (2.4372266125283204019069671630859375e-05,
                               -0.00138865201734006404876708984375,
                               0.041666619479656219482421875, -0.5, 1.0))
_SIN_P = tuple(_F(c) for c in (-0.0001959234114083702898469196984621021329076029360294342041015625,
                               0.0083326873655616851693794799871284340042620897293090820312500000,
                               -0.1666666203982298255503735617821803316473960876464843750000000000))
# 2/pi in 8-bit-shifted words (Payne-Hanek reduction of huge arguments)
_TWO_OVER_PI = (
    0x00000028, 0x000028be, 0x0028be60, 0x28be60db, 0xbe60db93, 0x60db9391, 0xdb939105,
    0x9391054a, 0x91054a7f, 0x054a7f09, 0x4a7f09d5, 0x7f09d5f4, 0x09d5f47d, 0xd5f47d4d,
    0xf47d4d37, 0x7d4d3770, 0x4d377036, 0x377036d8, 0x7036d8a5, 0x36d8a566, 0xd8a5664f,
    0xa5664f10, 0x664f10e4, 0x4f10e410, 0x10e41000, 0xe4100000)
_HUGE = {True: _F(25966.0), False: _F(18838.0)}          # sin, cos


def _reduce_huge(value: np.float32) -> tuple[np.float32, int]:
    """Eigen's trig_reduce_huge: value = q pi/2 + r for |value| >= the huge threshold, in
    2.62 fixed point."""
    bits = int(np.float32(value).view(np.uint32))
    e = (bits >> 23) - 118
    xi = (((bits & 0x007FFFFF) | 0x00800000) << (e & 7)) & 0xFFFFFFFF
    i = e >> 3
    mask64 = (1 << 64) - 1
    p = xi * _TWO_OVER_PI[i + 7]
    p = (xi * _TWO_OVER_PI[i + 3] + (p >> 32)) & mask64
    p = ((((xi * _TWO_OVER_PI[i - 1]) & 0xFFFFFFFF) << 32) + p) & mask64
    q = ((p + (1 << 61)) & mask64) >> 62
    p = (p - (q << 62)) & mask64
    signed = p - (1 << 64) if p >= 1 << 63 else p
    return np.float32(float(signed) * 3.4061215800865545e-19), q


def _packet_sincos(x0: np.ndarray, sine: bool) -> np.ndarray:
    """Eigen's psincos_float (no fused multiply-add): reduce |x| by pi/2, pick the sine or
    cosine polynomial by the quadrant, set the sign."""
    with np.errstate(all="ignore"):
        x = np.abs(x0)
        y = x * _F(0.636619746685028076171875)
        rounded = y + _F(12582912)
        quadrant = rounded.view(np.int32).copy()
        y = rounded - _F(12582912)
        for c in _PIO2_PARTS:
            x = y * c + x
        for k in np.flatnonzero(np.isfinite(x0) & (np.abs(x0) >= _HUGE[sine])):
            x.flat[k], quadrant.flat[k] = _reduce_huge(np.abs(x0.flat[k]))
        if sine:
            sign = (x0.view(np.int32) ^ (quadrant << 30)) & np.int32(-2**31)
        else:
            sign = ((quadrant + 1) << 30) & np.int32(-2**31)
        x2 = x * x
        cos_poly = np.full_like(x, _COS_P[0])
        for c in _COS_P[1:]:
            cos_poly = cos_poly * x2 + c
        sin_poly = np.full_like(x, _SIN_P[0])
        for c in _SIN_P[1:]:
            sin_poly = sin_poly * x2 + c
        sin_poly = (sin_poly * x2) * x + x
        even = (quadrant & 1) == 0
        out = np.where(even, sin_poly, cos_poly) if sine else np.where(even, cos_poly, sin_poly)
        return (out.astype(_F).view(np.int32) ^ sign).view(_F)


# Eigen's asin and acos packets (GenericPacketMathFunctions.h): polynomial
# coefficients, highest first, evaluated as its pmadd chains (a * b + c, two roundings: no
# fused multiply-add in the baseline build)
_ASIN_P = tuple(_F(c) for c in (5.08838854730129241943359375e-2,
                                3.95139865577220916748046875e-2,
                                7.550220191478729248046875e-2, 0.16664917767047882080078125,
                                1.00000011920928955078125))
_ACOS_EVEN = tuple(_F(c) for c in (2.36423197202384471893310546875e-3,
                                   2.717843465507030487060546875e-2,
                                   8.8804088532924652099609375e-2,
                                   1.57079637050628662109375))
_ACOS_ODD = tuple(_F(c) for c in (-1.1368644423782825469970703125e-2,
                                  -4.8969544470310211181640625e-2,
                                  -0.214591205120086669921875))
_PI_OVER_2 = _F(np.pi / 2)


def _horner(t: np.ndarray, coefficients: tuple[np.float32, ...]) -> np.ndarray:
    """c0 t^k + ... + ck as pmadd steps (p = p * t + c), float32."""
    p = np.full_like(t, coefficients[0])
    for c in coefficients[1:]:
        p = p * t + c
    return p


def _sign_of(x: np.ndarray, value: np.ndarray) -> np.ndarray:
    """`value` with the sign bit of `x` xor-ed in (Eigen's pxor with the sign mask)."""
    return (value.astype(_F).view(np.int32) ^ (x.view(np.int32) & np.int32(-2**31))).view(_F)


_ALL_ONES = np.uint32(0xFFFFFFFF).view(_F)


def _nan_through(x_in: np.ndarray, out: np.ndarray) -> np.ndarray:
    """`out` with a NaN input's own bits (quieted) where x is NaN, as SSE arithmetic
    passes its first NaN operand on."""
    quiet = (x_in.view(np.uint32) | np.uint32(0x00400000)).view(_F)
    return np.where(np.isnan(x_in), quiet, out).astype(_F)


def _packet_asin(x_in: np.ndarray) -> np.ndarray:
    """Eigen's pasin_float: |x| > 1/2 mapped to sqrt((1 - |x|) / 2) (pi/2 - 2 asin), an
    odd degree-9 polynomial, the sign restored; NaN outside [-1, 1]."""
    with np.errstate(all="ignore"):
        a = np.abs(x_in)
        large = a > _F(0.5)
        x = np.where(large, np.sqrt(_F(0.5) - _F(0.5) * a), a).astype(_F)
        p = _horner(x * x, _ASIN_P) * x
        p = np.where(large, _PI_OVER_2 - _F(2) * p, p)
        out = _sign_of(x_in, p)
        out = np.where(a > _F(1), _ALL_ONES, out).astype(_F)     # por with the invalid mask
        return _nan_through(x_in, out)


def _packet_acos(x_in: np.ndarray) -> np.ndarray:
    """Eigen's pacos_float: acos(|x|) / sqrt(1 - |x|) as a degree-6 polynomial (even and
    odd halves in x^2), times sqrt(1 - |x|); pi - acos(|x|) for negative x."""
    with np.errstate(all="ignore"):
        a = np.abs(x_in)
        x2 = x_in * x_in
        p = _horner(x2, _ACOS_ODD) * a + _horner(x2, _ACOS_EVEN)
        result = np.sqrt(_F(1) - a) * p
        negative = np.signbit(x_in)
        return _nan_through(x_in, np.where(negative, _F(np.pi) - result, result).astype(_F))


# ONNX Runtime's atan packet (the wheel's Atan loop): atan(t) / t on [0, 1] as a rational
# function of t^2 (numerator of degree 2, denominator 3), coefficients highest
# first, evaluated as the wheel's code does (mulps / addps: no fused multiply-add)
_ATAN_NUM = tuple(_F(c) for c in (0.11202698200941086, 0.7296695709228516,
                                  0.8109951019287109))
_ATAN_DEN = tuple(_F(c) for c in (0.010091710835695267, 0.28318560123443604, 1.0,
                                  0.8109951019287109))


def _packet_atan(x_in: np.ndarray) -> np.ndarray:
    """ONNX Runtime's atan packet: |x| > 1 mapped to 1 / |x| (pi/2 minus its atan), t times
    a rational function of t^2, the sign of x xor-ed back."""
    with np.errstate(all="ignore"):
        a = np.abs(x_in)
        large = _F(1) < a
        t = np.where(large, _F(1) / a, a).astype(_F)
        t2 = t * t
        p = (_horner(t2, _ATAN_NUM) / _horner(t2, _ATAN_DEN)) * t
        p = np.where(large, _PI_OVER_2 - p, p)
        return _sign_of(x_in, p)


@dataclass(frozen=True)
class Path:
    """The primitives of one side of an Eigen assignment: its packets or its scalar tail."""

    exp: Callable[[np.ndarray], np.ndarray]
    log: Callable[[np.ndarray], np.ndarray]
    log1p: Callable[[np.ndarray], np.ndarray]


PACKETS = Path(exp=_exp, log=_packet_log, log1p=_packet_log1p)
SCALARS = Path(exp=libm.expf, log=libm.logf, log1p=libm.log1pf)


# ONNX Runtime's ThreadPool::ParallelFor on Eigen's TensorCostModel: cycles to start a
# parallel loop and per extra thread, the cycles of one ideal task, an L2 byte's cycles
_STARTUP_CYCLES = 100000.0
_THREAD_CYCLES = 100000.0
_TASK_CYCLES = 40000.0
_BYTE_CYCLES = 1.0 / 64 * 11
_OVERSHARDING = 4


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def ort_parallel_blocks(n: int, cost: float, threads: int,
                        element_bytes: int = 4) -> list[tuple[int, int]]:
    """The [first, last) blocks in which ONNX Runtime's `TryParallelFor` runs an element-wise
    functor of `cost` compute cycles per element (its `Cost()`) over `n` elements of
    `element_bytes` bytes (loaded and stored: sizeof(T)) at `threads` intra-op threads:
    Eigen's cost model decides whether to cut at all, then `CalculateParallelForBlock` (at
    most 4 blocks a thread, at least one ideal task a block, coarser while the threads'
    efficiency does not drop) gives the block size."""
    if n <= 1:
        return [(0, n)]
    per_element = 2.0 * element_bytes * _BYTE_CYCLES + float(np.float32(cost))
    block = ort_parallel_block(n, per_element, threads)
    return [(first, min(n, first + block)) for first in range(0, n, block)]


def ort_parallel_cost(bytes_loaded: float, bytes_stored: float, compute: float) -> float:
    """The cycles of one unit of a `TensorOpCost{bytes_loaded, bytes_stored, compute}`
    (Eigen's `TensorOpCost::total_cost` with an L2 byte's cycles)."""
    return bytes_loaded * _BYTE_CYCLES + bytes_stored * _BYTE_CYCLES + compute


def ort_parallel_block(n: int, unit_cycles: float, threads: int) -> int:
    """The units of one block (one call of the functor; `n`: one call) in which ONNX
    Runtime's `TryParallelFor` runs `n` units of `unit_cycles` cycles each
    (`ort_parallel_cost`) at `threads` intra-op threads: Eigen's cost model decides whether
    to cut at all, then `CalculateParallelForBlock` (`ort_parallel_blocks`)."""
    threads = max(1, int(threads))
    wanted = (n * unit_cycles - _STARTUP_CYCLES) / _THREAD_CYCLES + 0.9
    if threads == 1 or n <= 1 or min(threads, max(1, int(wanted))) == 1:
        return max(n, 1)
    ideal = int(1.0 / (unit_cycles / _TASK_CYCLES))
    block = min(n, max(_cdiv(n, _OVERSHARDING * threads), ideal))
    largest = min(n, 2 * block)
    count = _cdiv(n, block)
    efficiency = count / (_cdiv(count, threads) * threads)
    previous = count
    while efficiency < 1.0 and previous > 1:
        coarser = _cdiv(n, previous - 1)
        if coarser > largest:
            break
        previous = _cdiv(n, coarser)
        coarser_efficiency = previous / (_cdiv(previous, threads) * threads)
        if coarser_efficiency + 0.01 >= efficiency:
            block = coarser
            efficiency = max(efficiency, coarser_efficiency)
    return block


def assignment_runs(n: int, cost: float, threads: int,
                    lanes: int = LANES) -> list[tuple[int, int]]:
    """The runs [first, last) of `n` elements that each evaluate as one Eigen assignment
    from its own start (packets of `lanes`: four float32 or two float64, the C library on
    the last length % lanes) when ONNX Runtime's functor of `cost` runs at `threads`
    threads: each block's unaligned head (up to the next 16-byte boundary of ONNX Runtime's
    aligned buffer) is a run of its own. Adjacent runs that would evaluate alike as one are
    merged (one run at one thread)."""
    runs: list[tuple[int, int]] = []
    for first, last in ort_parallel_blocks(n, cost, threads, 16 // lanes):
        head = min(-first % lanes, last - first)
        for run in ((first, first + head), (first + head, last)):
            if run[1] == run[0]:
                continue
            if runs and (runs[-1][1] - runs[-1][0]) % lanes == 0:
                runs[-1] = (runs[-1][0], run[1])
            else:
                runs.append(run)
    return runs or [(0, n)]


def blockwise(x: np.ndarray, fn: Callable[[np.ndarray], np.ndarray], cost: float,
              threads: int, lanes: int = LANES) -> np.ndarray:
    """`fn` (one Eigen assignment of `x`, as at one thread: float32, or float64 with
    `lanes` 2) run as ONNX Runtime's functor of `cost` runs at `threads` threads: on each of
    `assignment_runs` by itself."""
    runs = assignment_runs(int(np.size(x)), cost, threads, lanes)
    if len(runs) == 1:
        return fn(x)
    flat = np.ascontiguousarray(x, _F if lanes == LANES else np.float64).reshape(-1)
    out = np.empty_like(flat)
    for first, last in runs:
        out[first:last] = np.asarray(fn(flat[first:last])).reshape(-1)
    return out.reshape(np.shape(x))


def evaluate(x: np.ndarray, expression: Callable[[np.ndarray, Path], np.ndarray],
             cost: float = 0.0, threads: int = 1) -> np.ndarray:
    """An Eigen array expression of float32 `x`, as ONNX Runtime's element-wise functor of
    `cost` cycles per element runs it at `threads` intra-op threads: in each run of
    `assignment_runs`, `expression(t, PACKETS)` on the full packets, `expression(t,
    SCALARS)` on the last length % 4 elements (at one thread: one run, the whole vector)."""
    def one(t: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):             # IEEE's inf and NaN, as the kernels
            return assign(t, lambda u: expression(u, PACKETS), lambda u: expression(u, SCALARS))
    return blockwise(x, one, cost, threads)


# --- ONNX Runtime's element-wise functors as Eigen expressions (float32) -------------------
# expression(t, path): `path` is PACKETS on a run's full packets, SCALARS on its last
# length % 4 elements; where the expression calls exp or log1p the two sides differ, so an
# element's result depends on its position (docs/operators.md (O28), (O91), (O132))
Expression = Callable[[np.ndarray, Path], np.ndarray]


def _elu(alpha: float = 1.0) -> Expression:
    a = _F(alpha)
    return lambda t, p: np.where(t >= 0, t, a * (p.exp(t) - _F(1)))


def _selu(alpha: float = 1.67326319217681884765625,
          gamma: float = 1.05070102214813232421875) -> Expression:
    a, g = _F(alpha), _F(gamma)          # ONNX Runtime's build multiplies gamma * alpha
    return lambda t, p: g * np.maximum(t, _F(0)) + (g * a) * np.minimum(p.exp(t) - _F(1), _F(0))


def _celu(alpha: float = 1.0) -> Expression:
    a = _F(alpha)
    return lambda t, p: np.maximum(t, _F(0)) + np.minimum(a * (p.exp(t / a) - _F(1)), _F(0))


def _softplus() -> Expression:
    return lambda t, p: np.where(t > 0, t + p.log1p(p.exp(-t)), p.log1p(p.exp(t)))


def _softsign() -> Expression:
    return lambda t, p: (_F(1) / (_F(1) + np.abs(t))) * t


FUNCTORS: dict[str, Callable[..., Expression]] = {
    "Elu": _elu, "Selu": _selu, "Celu": _celu, "Softplus": _softplus, "Softsign": _softsign,
}
"""ONNX op type -> factory; ``FUNCTORS[op](**attrs)`` gives ONNX Runtime's functor."""

# their Cost() (compute cycles per element), which cuts them into blocks at several threads
# (`ort_parallel_blocks`); Softsign's functor runs in one assignment at any thread count,
# and so do Sin and Cos (POSITIONAL)
FUNCTOR_COSTS: dict[str, float] = {"Elu": 30.0, "Softplus": 15.0, "Selu": 4.0, "Celu": 1.0,
                                   "Log": 15.0}


def functor_runs(op: str, n: int, threads: int) -> list[tuple[int, int]]:
    """The runs [first, last) of `n` elements that ONNX Runtime's functor `op` evaluates
    each as one assignment at `threads` intra-op threads."""
    if op not in FUNCTOR_COSTS:
        return [(0, n)]
    return assignment_runs(n, FUNCTOR_COSTS[op], threads)


def _log_kernel() -> Expression:
    return lambda t, p: p.log(t)


def _sincos_kernel(sine: bool) -> Callable[[], Expression]:
    scalar = libm.sinf if sine else libm.cosf
    return lambda: (lambda t, p: _packet_sincos(t, sine) if p is PACKETS else scalar(t))


POSITIONAL: dict[str, Callable[..., Expression]] = {
    **{op: f for op, f in FUNCTORS.items() if op != "Softsign"},
    "Log": _log_kernel, "Sin": _sincos_kernel(True), "Cos": _sincos_kernel(False),
}
"""ONNX op type -> factory of ONNX Runtime's float32 kernel as an expression(t, path), for
the kernels whose two sides differ (exp, log1p, log, sin, cos): an element's value depends
on its position in the runs of `functor_runs` (docs/operators.md (O132), (O169))."""


def sin(x: np.ndarray) -> np.ndarray:
    """float32 sin(x) as ONNX Runtime's Sin kernel computes it."""
    return assign(x, lambda t: _packet_sincos(t, True), libm.sinf)


def cos(x: np.ndarray) -> np.ndarray:
    """float32 cos(x) as ONNX Runtime's Cos kernel computes it."""
    return assign(x, lambda t: _packet_sincos(t, False), libm.cosf)


def asin(x: np.ndarray) -> np.ndarray:
    """float32 asin(x) as ONNX Runtime's Asin kernel computes it."""
    return assign(x, _packet_asin, libm.asinf)


def acos(x: np.ndarray) -> np.ndarray:
    """float32 acos(x) as ONNX Runtime's Acos kernel computes it."""
    return assign(x, _packet_acos, libm.acosf)


def atan(x: np.ndarray) -> np.ndarray:
    """float32 atan(x) as ONNX Runtime's Atan kernel computes it."""
    return assign(x, _packet_atan, libm.atanf)


def log(x: np.ndarray) -> np.ndarray:
    """float32 log(x) as ONNX Runtime's Log kernel computes it."""
    return assign(x, _packet_log, libm.logf)


def power(x: np.ndarray, y: float) -> np.ndarray:
    """float32 x ** y (scalar y) as one Eigen `pow` assignment computes it (ONNX Runtime's
    LRN)."""
    yf = float(_F(y))
    return assign(x, lambda t: packet_pow(t, yf), lambda t: libm.powf(t, yf))
