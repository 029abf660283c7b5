"""Eigen's vectorized float64 exp, log, tanh, sin and cos, as ONNX Runtime's CPU kernels
evaluate them (docs/operators.md (O104)).

ONNX Runtime 1.32's double Exp, Log, Tanh, Sigmoid, Sin and Cos are Eigen array expressions
(`x.array().exp()`, the Tanh and Sigmoid functors). Eigen evaluates them two doubles at a
time (SSE2 packets of the wheel's baseline, no fused multiply-add: each pmadd is a product
rounded, then a sum rounded) from the start of ONNX Runtime's aligned buffer, and the last
element of an odd length through the C library (exp, log, tanh, sin, cos). The packet
functions are Eigen's own approximations, within a few ulps but not the correctly rounded
values: of 100,003 N(0, 16) values numpy's float64 routines gave 14,767 (exp) to 71,242
(cos) other bits. Read against ONNX Runtime's bits (0 apart on random values, every bit
pattern class, +-0, subnormals, +-inf, NaNs with payloads):

* exp: Cephes' rational function of the remainder of x by ln 2 (ln 2 in two parts), scaled by
  2^n; x clamped above at 709.784, 0 below -745.519; a NaN comes back quieted.
* log: x = m 2^e, m in [sqrt(1/2), sqrt(2)); Cephes' log(1 + t) = t - t^2/2 + t^3 P(t)/Q(t),
  plus e ln 2; negative or NaN input gives the all-ones NaN, 0 gives -inf.
* tanh: a (19, 18) odd/even rational function of x clamped to +-17.714196154005176 (the
  clamp of builds without fused multiply-add).
* sin, cos: |x| reduced by pi/2 (two parts of pi/2 below 15; four parts, with the quotient
  split at 2^24, when either element of the packet is 15 or more), Pade approximants (8, 8)
  of sin and cos on [-pi/4, pi/4], the quadrant's sign xor-ed in; an element above 1e14 of
  a packet with one at or above 1e14 takes the C library's sin / cos.
* threads: Exp, Log, Tanh and Sigmoid run through ONNX Runtime's TryParallelFor in blocks
  (costs 2, 15, 1 and 2, eight bytes an element; Exp's cost measured, the others' from their
  functors; `eigen_math.assignment_runs` with two lanes): each
  block's unaligned head element and odd tail take the C library.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import eigen_math, libm, ort_math

_D = np.float64
LANES = 2                                    # SSE2: two doubles per packet
Unary = Callable[[np.ndarray], np.ndarray]

# Cephes' exp: p0 .. p2 and q0 .. q3 (in the square of the remainder), ln 2 in two parts
_EXP_P = (_D(1.26177193074810590878e-4), _D(3.02994407707441961300e-2),
          _D(9.99999999999999999910e-1))
_EXP_Q = (_D(3.00198505138664455042e-6), _D(2.52448340349684104192e-3),
          _D(2.27265548208155028766e-1), _D(2.00000000000000000009e0))
_EXP_C1, _EXP_C2 = _D(0.693145751953125), _D(1.42860682030941723212e-6)
_LOG2E = _D(1.4426950408889634073599)
_EXP_HI, _EXP_LO = _D(709.784), _D(-745.519)
# Cephes' log(1 + t) = t - t^2 / 2 + t^3 P(t) / Q(t): p0 .. p5, q0 .. q5
_LOG_P = tuple(_D(c) for c in (1.01875663804580931796E-4, 4.97494994976747001425E-1,
                               4.70579119878881725854E0, 1.44989225341610930846E1,
                               1.79368678507819816313E1, 7.70838733755885391666E0))
_LOG_Q = tuple(_D(c) for c in (1.0, 1.12873587189167450590E1, 4.52279145837532221105E1,
                               8.29875266912776603211E1, 7.11544750618563894466E1,
                               2.31251620126765340583E1))
_SQRT_HALF = _D(0.70710678118654752440)
_LN2 = _D(0.693147180559945309417232121458)
_ALL_ONES = np.array(0xFFFFFFFFFFFFFFFF, np.uint64).view(_D)[()]
# tanh(x) = (x + x^3 P(x^2)) / Q(x^2), coefficients highest first
_TANH_P = tuple(_D(c) for c in (2.6158007860482230e-23, 7.6534862268749319e-19,
                                3.1309488231386680e-15, 4.2303918148209176e-12,
                                2.4618379131293676e-09, 6.8644367682497074e-07,
                                9.3839087674268880e-05, 5.9809711724441161e-03,
                                1.5184719640284322e-01))
_TANH_Q = tuple(_D(c) for c in (6.463747022670968018e-21, 5.782506856739003571e-17,
                                1.293019623712687916e-13, 1.123643448069621992e-10,
                                4.492975677839633985e-08, 8.785185266237658698e-06,
                                8.295161192716231542e-04, 3.437448108450402717e-02,
                                4.851805297361760360e-01, 1.0))
_TANH_CLAMP = _D(17.714196154005176)
# pi/2 in four parts and 2/pi; Pade approximants of cos and sin (numerators, denominators)
_PIO2 = (_D(-1.570796325802803), _D(-9.920935184482005e-10), _D(-6.123234014771656e-17),
         _D(1.903488962019325e-25))
_TWO_OVER_PI = _D(0.63661977236758134307553505349006)
_SPLIT = _D(1 << 24)
_COS_NUM = tuple(_D(c) for c in (80737373, -13853547000, 727718024880, -11275015752000,
                                 23594700729600))
_COS_DEN = tuple(_D(c) for c in (147173, 39328920, 5772800880, 522334612800,
                                 23594700729600))
_SIN_NUM = tuple(_D(c) for c in (4585922449, -1066023933480, 83284044283440,
                                 -2303682236856000, 15605159573203200))
_SIN_DEN = tuple(_D(c) for c in (1029037, 345207016, 61570292784, 6603948711360,
                                 346781323848960))
_SMALL, _HUGE = _D(15), _D(1e14)
_SIGN = np.int64(-2**63)


def _horner(t: np.ndarray, coefficients: tuple[np.float64, ...]) -> np.ndarray:
    """c0 t^k + ... + ck as pmadd steps (p = p * t + c, two roundings)."""
    p = np.full_like(t, coefficients[0])
    for c in coefficients[1:]:
        p = p * t + c
    return p


def _quiet(x: np.ndarray) -> np.ndarray:
    return ort_math.quieted(x)


def _packet_exp(x0: np.ndarray) -> np.ndarray:
    """Eigen's pexp_double: x = n ln 2 + g, exp(g) = 1 + 2 g P(g^2) / (Q(g^2) - g P(g^2)),
    scaled by 2^n."""
    with np.errstate(all="ignore"):
        x = np.minimum(x0, _EXP_HI)
        n = np.floor(_LOG2E * x + _D(0.5))
        x = x - n * _EXP_C1
        x = x - n * _EXP_C2
        x2 = x * x
        px = _horner(x2, _EXP_P) * x
        qx = _horner(x2, _EXP_Q)
        y = _D(2) * (px / (qx - px)) + _D(1)
        e = np.clip(np.nan_to_num(n, nan=0.0), -2099, 2099).astype(np.int64)
        out = np.maximum(np.ldexp(y, e), x0)
        out = np.where(np.isnan(x0), _quiet(x0), out)
        return np.where(x0 < _EXP_LO, _D(0), out)


def _packet_log(x0: np.ndarray) -> np.ndarray:
    """Eigen's plog_double (Cephes' log)."""
    with np.errstate(all="ignore"):
        m, exponent = np.frexp(x0)
        e = exponent.astype(_D)
        low = m < _SQRT_HALF
        x = m - _D(1)
        e = e - np.where(low, _D(1), _D(0))
        x = x + np.where(low, m, _D(0))
        x2 = x * x
        x3 = x2 * x
        p0, p1, p2, p3, p4, p5 = _LOG_P
        q0, q1, q2, q3, q4, q5 = _LOG_Q
        num = ((p0 * x + p1) * x + p2) * x3 + ((p3 * x + p4) * x + p5)
        den = ((q0 * x + q1) * x + q2) * x3 + ((q3 * x + q4) * x + q5)
        y = (num * x3) / den
        y = _D(-0.5) * x2 + y
        out = e * _LN2 + (x + y)
        out = np.where(x0 == np.inf, _D(np.inf), out)
        out = np.where((x0 < 0) | np.isnan(x0), _ALL_ONES, out)
        return np.where(x0 == 0, _D(-np.inf), out)


def _packet_tanh(a: np.ndarray) -> np.ndarray:
    """Eigen's ptanh_double (no fused multiply-add)."""
    with np.errstate(all="ignore"):
        x = np.maximum(np.minimum(a, _TANH_CLAMP), -_TANH_CLAMP)
        x2 = x * x
        p = (x2 * x) * _horner(x2, _TANH_P) + x
        out = p / _horner(x2, _TANH_Q)
        return np.where(np.isnan(a), _quiet(a), out)


def _by_packet(mask: np.ndarray) -> np.ndarray:
    """`mask` true on both elements of every packet where it is true on one."""
    pairs = np.pad(mask, (0, len(mask) % LANES)).reshape(-1, LANES).any(axis=1)
    return np.repeat(pairs, LANES)[:len(mask)]


def _packet_sincos(x: np.ndarray, sine: bool) -> np.ndarray:
    """Eigen's psincos_double: |x| = q pi/2 + s, Pade approximants of sin(s) and cos(s)
    chosen by q's parity, the sign from q (and x's sign for sin). The reduction takes the
    medium path for both elements of a packet when either is 15 or more."""
    with np.errstate(all="ignore"):
        a = np.abs(x)
        q = np.trunc(a * _TWO_OVER_PI + _D(0.5))
        s = _PIO2[1] * q + (_PIO2[0] * q + a)
        medium = _by_packet(_SMALL <= a)
        if medium.any():
            q_high = np.floor(a * (_TWO_OVER_PI / _SPLIT)) * _SPLIT
            q_low = np.trunc((a * _TWO_OVER_PI - q_high) + _D(0.5))
            s_medium = a
            for c in _PIO2[:3]:
                s_medium = c * q_high + s_medium
                s_medium = c * q_low + s_medium
            s_medium = _PIO2[3] * (q_low + q_high) + s_medium
            s = np.where(medium, s_medium, s)
            q = np.where(medium, q_low, q)
        # cvttsd2si: NaN and out-of-range quotients give the integer indefinite, -2^63
        valid = np.isfinite(q) & (np.abs(q) < _D(2**63))
        q_int = np.where(valid, q, _D(0)).astype(np.int64)
        q_int = np.where(valid, q_int, np.int64(-2**63))
        ss = s * s
        cos_s = _horner(ss, _COS_NUM) / _horner(ss, _COS_DEN)
        sin_s = (s * _horner(ss, _SIN_NUM)) / (_D(45) * _horner(ss, _SIN_DEN))
        even = (q_int & 1) == 0
        if sine:
            sign = x.view(np.int64) ^ (q_int << 62)
            out = np.where(even, sin_s, cos_s)
        else:
            sign = (q_int + 1) << 62
            out = np.where(even, cos_s, sin_s)
        out = (out.view(np.int64) ^ (sign & _SIGN)).view(_D)
        redo = _by_packet(_HUGE <= a) & (a > _HUGE) & np.isfinite(x)
        if redo.any():
            c_function = libm.sin_float64 if sine else libm.cos_float64
            out = np.where(redo, c_function(np.where(redo, x, _D(0))), out)
        return out


def _assign(x: np.ndarray, packet: Unary, scalar: Unary) -> np.ndarray:
    """One Eigen assignment over contiguous float64 `x` (`eigen_math.assign` with
    two-double packets)."""
    return eigen_math.assign(x, packet, scalar, LANES)


def _blockwise(x: np.ndarray, fn: Unary, cost: float, threads: int) -> np.ndarray:
    """`fn` on each run of ONNX Runtime's functor of `cost` over double `x` at `threads`
    threads (`eigen_math.blockwise` with two-double packets)."""
    return eigen_math.blockwise(x, fn, cost, threads, LANES)


def exp(x: np.ndarray, threads: int = 1) -> np.ndarray:
    """float64 exp(x) as ONNX Runtime's Exp kernel computes it at `threads` (cut as a
    functor of cost 2)."""
    return _blockwise(x, lambda u: _assign(u, _packet_exp, libm.exp_float64), 2.0, threads)


def log(x: np.ndarray, threads: int = 1) -> np.ndarray:
    """float64 log(x) as ONNX Runtime's Log functor (cost 15) computes it at `threads`."""
    return _blockwise(x, lambda u: _assign(u, _packet_log, libm.log_float64), 15.0, threads)


def sin(x: np.ndarray) -> np.ndarray:
    """float64 sin(x) as ONNX Runtime's Sin kernel computes it."""
    return _assign(x, lambda t: _packet_sincos(t, True), libm.sin_float64)


def cos(x: np.ndarray) -> np.ndarray:
    """float64 cos(x) as ONNX Runtime's Cos kernel computes it."""
    return _assign(x, lambda t: _packet_sincos(t, False), libm.cos_float64)


def tanh(x: np.ndarray, threads: int = 1) -> np.ndarray:
    """float64 tanh(x) as ONNX Runtime's Tanh functor (cost 1) computes it at `threads`."""
    return _blockwise(x, lambda u: _assign(u, _packet_tanh, libm.tanh_float64), 1.0, threads)


def _sigmoid(x: np.ndarray, exp_fn: Unary) -> np.ndarray:
    """ONNX Runtime's Sigmoid expression: 1 / (1 + exp(-|x|)) for x >= 0, else 1 minus it."""
    with np.errstate(all="ignore"):
        e = exp_fn(-np.abs(x))
        positive = _D(1) / (_D(1) + e)
        return np.where(x >= 0, positive, _D(1) - positive)


def sigmoid(x: np.ndarray, threads: int = 1) -> np.ndarray:
    """float64 logistic sigmoid as ONNX Runtime's Sigmoid functor (cost 2) computes it at
    `threads`."""
    return _blockwise(x, lambda u: _assign(u, lambda t: _sigmoid(t, _packet_exp),
                                           lambda t: _sigmoid(t, libm.exp_float64)),
                      2.0, threads)


def _sign(x: np.ndarray, nan: Unary) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.where(np.isnan(x), nan(x), np.sign(x))


def sign(x: np.ndarray) -> np.ndarray:
    """float64 sign(x) as ONNX Runtime's Sign kernel computes it: Eigen's packet sign gives
    a NaN with its sign bit cleared (payload and signalling bit kept), the scalar tail the
    NaN itself."""
    if not np.isnan(x).any():
        return np.sign(x)
    return _assign(x, lambda t: _sign(t, np.abs), lambda t: _sign(t, lambda u: u))


def _add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a + b as SSE2's addpd / addsd give it: of two NaNs the first operand's (quieted).
    numpy gives the second's in its scalar add and in the tails of its array loops. The
    callers put the operands in the order ONNX Runtime's compiled code has them (which
    NaN of a row its Softmax sum keeps, measured over every pair of NaN positions; (O121))."""
    return ort_math.sse_op(np.add, a, b)


def _row_sums(e: np.ndarray) -> np.ndarray:
    """Eigen's row-major matrix-vector product of (n, d) `e` by ones, as ONNX Runtime's
    Gemv<double> sums each row: one packet accumulator a row (lanes over even and odd
    columns, added in column order), its two lanes added, then the odd last column. A
    single row is Eigen's inner product instead (`_dot_sum`)."""
    n, d = e.shape
    if n == 1:
        return np.array([_dot_sum(e[0])])
    full = d - d % LANES
    lanes = [np.zeros(n), np.zeros(n)]
    for j in range(0, full, LANES):
        lanes[0] = _add(lanes[0], e[:, j])
        lanes[1] = _add(lanes[1], e[:, j + 1])
    total = _add(lanes[1], lanes[0])
    for j in range(full, d):
        total = _add(total, e[:, j])
    return total


def _dot_sum(v: np.ndarray) -> np.float64:
    """The sum of one row as Eigen's vectorized inner product: four packet accumulators
    over blocks of four packets (the first four packets start them), up to three leftover
    packets into accumulators 0, 1, 2, then a0 + (a1 + (a2 + a3)), the two lanes, and the
    odd last element."""
    count = len(v) // LANES
    if count == 0:
        return np.float64(np.cumsum(v)[-1])
    packets = [v[i * LANES:(i + 1) * LANES] for i in range(count)]
    acc = [p.copy() for p in packets[:4]]
    if count >= 4:
        whole = count // 4 * 4
        for i in range(4, whole, 4):
            for k in range(4):
                acc[k] = _add(acc[k], packets[i + k])
        for k in range(count - whole):
            acc[k] = _add(acc[k], packets[whole + k])
        acc[2] = _add(acc[3], acc[2])
        acc[1] = _add(acc[2], acc[1])
    elif count == 3:
        acc[1] = _add(acc[1], acc[2])
    if count >= 2:
        acc[0] = _add(acc[1], acc[0])
    lanes = (acc[0][1:], acc[0][:1]) if count in (1, 3) else (acc[0][:1], acc[0][1:])
    out = _add(*lanes)
    for k in range(count * LANES, len(v)):
        out = _add(out, v[k:k + 1])
    return np.float64(out[0])


def row_max(x: np.ndarray) -> np.ndarray:
    """ONNX Runtime's RowwiseMax of C-contiguous (rows, n) doubles, or float32 (four-lane
    packets; Hardmax, (O121)) (Eigen's maxCoeff of each row of the aligned buffer: ReduceMax's
    `ort_math.eigen_extreme_rows`), shape (rows, 1)."""
    return ort_math.eigen_extreme_rows(x, False)[:, None]


def _minus_peak(rows: np.ndarray, peak: np.ndarray) -> np.ndarray:
    """Softmax's x - max as ONNX Runtime's Gemm<double> adds it, (-1 * max) + x: a NaN
    maximum puts its own NaN (quieted) in every element of its row, NaN elements too
    (docs/operators.md (O121))."""
    shifted = rows - peak
    nan = np.isnan(peak[:, 0])
    if nan.any():
        shifted[nan] = _quiet(peak[nan])
    return shifted


def softmax_rows(x: np.ndarray, log: bool = False) -> np.ndarray:
    """float64 (Log)Softmax of the rows of (n, d) `x` as ONNX Runtime's SoftmaxCPU<double>
    computes it: x - max, Eigen's exp over the whole buffer, the row sums of `_row_sums`,
    then a division, or x - max - log(fmax(sum, 1e-20f)) with the C library's log."""
    with np.errstate(all="ignore"):
        rows = np.ascontiguousarray(x, _D)
        peak = row_max(rows)
        if not log:
            e = exp(_minus_peak(rows, peak).reshape(-1)).reshape(rows.shape)
            return e / _row_sums(e)[:, None]
        e = exp((rows - peak).reshape(-1)).reshape(rows.shape)
        total = _row_sums(e)
        log_total = libm.log_float64(np.fmax(total, _D(np.float32(1e-20))))
        return (rows - peak) - log_total[:, None]
