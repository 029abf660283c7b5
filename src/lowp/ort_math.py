"""ONNX Runtime's float32 tanh and logistic (sigmoid), reproduced bit for bit.

ONNX Runtime's CPU kernels for Tanh and Sigmoid, and the table of its QLinearSigmoid, do
not call the C library: MLAS evaluates a rational approximation (Eigen's coefficients) with
fused multiply-adds on x86-64. The exact function and this one differ by a float32 ulp or
two on about a third of all inputs, and a quantizer rounds those differently near a
half-way point. lowp uses these forms wherever it evaluates tanh or the logistic function in
float32 (float operators and lookup tables), so that a QDQ file gives the same integers as
ONNX Runtime. docs/operators.md, (O13).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from .cpu import cpu_flags
from .fixedpoint import fma32

_F = np.float32

# numerator (odd powers, highest first) and denominator (even powers) of tanh on [-9, 9]
_TANH_RANGE = _F(9.0)
_TANH_P = tuple(_F(c) for c in (-2.76076847742355e-16, 2.00018790482477e-13,
                                -8.60467152213735e-11, 5.12229709037114e-08,
                                1.48572235717979e-05, 6.37261928875436e-04,
                                4.89352455891786e-03))
_TANH_Q = tuple(_F(c) for c in (1.19825839466702e-06, 1.18534705686654e-04,
                                2.26843463243900e-03, 4.89352518554385e-03))
# logistic(x) - 1/2 on [-18, 18]
_LOGISTIC_RANGE = _F(18.0)
_LOGISTIC_P = tuple(_F(c) for c in (4.37031012579801e-11, 1.15627324459942e-07,
                                    6.08574864600143e-05, 8.51377133304701e-03,
                                    2.48287947061529e-01))
_LOGISTIC_Q = tuple(_F(c) for c in (6.10247389755681e-13, 5.76102136993427e-09,
                                    6.29106785017040e-06, 1.70198817374094e-03,
                                    1.16817656904453e-01, 9.93151921023180e-01))


def _horner_fma(coefficients: tuple[np.float32, ...], t: np.ndarray) -> np.ndarray:
    """c0*t^(n-1) + ... + c(n-1), one fma per step, starting fma(t, c0, c1)."""
    r = fma32(t, coefficients[0], coefficients[1])
    for c in coefficients[2:]:
        r = fma32(r, t, c)
    return r


def _clamp(x: np.ndarray, bound: np.float32) -> np.ndarray:
    # NaN passes through (np.clip keeps NaN)
    return np.clip(np.asarray(x, _F), -bound, bound)


def tanh(x: np.ndarray) -> np.ndarray:
    """float32 tanh as ONNX Runtime computes it (MLAS, x86-64 with FMA).

    Examples
    --------
    >>> tanh(np.array([0.0, 0.5, -3.0, 20.0], np.float32)).tolist()
    [0.0, 0.46211716532707214, -0.9950547218322754, 1.0]
    """
    v = _clamp(x, _TANH_RANGE)
    s = v * v
    with np.errstate(invalid="ignore"):
        p = _horner_fma(_TANH_P, s) * v
        q = _horner_fma(_TANH_Q, s)
        return (p / q).astype(_F)


def logistic(x: np.ndarray) -> np.ndarray:
    """float32 logistic function 1 / (1 + e^-x) as ONNX Runtime computes it (MLAS).

    Examples
    --------
    >>> logistic(np.array([0.0, 2.0, -30.0], np.float32)).tolist()
    [0.5, 0.8807970881462097, 0.0]
    """
    v = _clamp(x, _LOGISTIC_RANGE)
    s = v * v
    with np.errstate(invalid="ignore"):
        p = _horner_fma(_LOGISTIC_P, s) * v
        q = _horner_fma(_LOGISTIC_Q, s)
        # the x86-64 kernel clamps at 0 but not at 1: 1 + 2^-23 happens near x = 18
        return np.maximum((p / q).astype(_F) + _F(0.5), _F(0.0))


# --- sums in the order of ONNX Runtime's ReduceSum / ReduceMean ----------------------------
#
# For float32, ONNX Runtime's reductions over the trailing axes (its "KR" case) and over all
# axes sum each row with Eigen's vectorized redux (4-float SSE packets, the wheel's baseline
# ISA): scalars up to the first 16-byte boundary are put aside, the aligned packets are
# summed in two interleaved accumulators (8 floats a step), the two are added, then a last
# odd packet; the packet is reduced as (a0 + a2) + (a1 + a3), then the leading and trailing
# scalars are added in order. Rows start at row * length floats from a 64-byte-aligned
# buffer, which fixes each row's boundary. Over middle axes ("KRK": kept, reduced, kept) it
# multiplies by a row of ones with MLAS's M = 1 kernel: groups of four rows are summed
# ((r0 + r1) + r2) + r3 and each group is added to the running result, then a pair, then a
# single row. Reductions over the leading axes add whole rows in order.
# docs/operators.md, (O18).

_PACKET = 4


def _lanes(block: np.ndarray, op: np.ufunc = np.add) -> np.ndarray:
    """Sequential sums (or `op`) down axis 1 of (rows, J, lanes): one accumulator per
    lane."""
    acc = block[:, 0].copy()
    for j in range(1, block.shape[1]):
        op(acc, block[:, j], out=acc)
    return acc


def _redux_rows(x: np.ndarray, start: int, packet: int = _PACKET,
                op: np.ufunc = np.add, nan_order: str = "sum") -> np.ndarray:
    """Eigen's redux sum (or product: `op` np.multiply) of every row of `x` (rows, n), each
    row having `start` scalars before its first aligned packet; packets of `packet` lanes
    (4 float32, 2 float64). A sum over NaNs keeps ONNX Runtime's NaN (`_redux_nan_rows`,
    `nan_order` the summed expression's)."""
    if np.isnan(x).any():
        return _redux_nan_rows(x, start, packet, nan_order, op)
    rows, n = x.shape
    start = min(start, n)
    size = ((n - start) // packet) * packet
    size2 = ((n - start) // (2 * packet)) * (2 * packet)
    if size == 0:
        res = x[:, 0].copy()
        for i in range(1, n):
            op(res, x[:, i], out=res)
        return res
    end2, end = start + size2, start + size
    if size > packet:
        pair = _lanes(x[:, start:end2].reshape(rows, -1, 2 * packet), op)
        p = op(pair[:, :packet], pair[:, packet:])
        if end > end2:
            op(p, x[:, end2:end], out=p)
    else:
        p = x[:, start:start + packet].copy()
    res = (op(op(p[:, 0], p[:, 2]), op(p[:, 1], p[:, 3])) if packet == 4 else
           op(p[:, 0], p[:, 1]))
    for i in [*range(start), *range(end, n)]:
        op(res, x[:, i], out=res)
    return res


def first_nan_add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a + b as x86's addps / addpd give it: of two NaNs a's, quieted (`sse_op`)."""
    return sse_op(np.add, a, b)


def _redux_nan_rows(x: np.ndarray, start: int, packet: int, nan_order: str = "sum",
                    op: np.ufunc = np.add) -> np.ndarray:
    """`_redux_rows`'s sums with each add's NaN as ONNX Runtime's compiled Eigen keeps it
    (docs/operators.md (O153); measured over every pair of NaN positions). "sum" (a sum,
    and the squared norm): an accumulator before the packet added to it, packet 0 before
    packet 1 before the leftover packet; float32 lanes (a2 + a0, a3 + a1) then the second
    of those first, float64 lane 0 first; the running sum before each head and tail
    scalar; the squared norm of fewer float32 values than a packet takes the second before
    the first. "abs" (ReduceL1's sum of |x|): float32 lanes (a0 + a2, a1 + a3) then the
    first first; float64 packet 1 before packet 0. "norm" (InstanceNormalization's squared
    norm of x - mean, an expression): "abs"'s float32 lanes, and of fewer values than a
    packet each value before the running sum ((O221)). A product (`op` np.multiply) keeps
    "sum"'s order (O185)."""
    def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return sse_op(op, a, b)
    rows, n = x.shape
    start = min(start, n)
    size = ((n - start) // packet) * packet
    size2 = ((n - start) // (2 * packet)) * (2 * packet)
    if size == 0:
        res = x[:, 0]
        for i in range(1, n):
            value_first = nan_order == "norm" or (i == 1 and nan_order == "square")
            res = add(x[:, i], res) if value_first else add(res, x[:, i])
        return res
    end2, end = start + size2, start + size
    p = x[:, start:start + packet]
    if size > packet:
        q = x[:, start + packet:start + 2 * packet]
        for j in range(start + 2 * packet, end2, 2 * packet):
            p, q = add(p, x[:, j:j + packet]), add(q, x[:, j + packet:j + 2 * packet])
        p = add(q, p) if nan_order == "abs" and packet == 2 else add(p, q)
        if end > end2:
            p = add(p, x[:, end2:end])
    if packet == 4 and nan_order in ("abs", "norm"):
        t = add(p[:, :2], p[:, 2:])
        res = add(t[:, 0], t[:, 1])
    elif packet == 4:
        t = add(p[:, 2:], p[:, :2])
        res = add(t[:, 1], t[:, 0])
    else:
        res = add(p[:, 0], p[:, 1])
    for i in [*range(start), *range(end, n)]:
        res = add(res, x[:, i])
    return res


def eigen_product(x: np.ndarray) -> np.ndarray:
    """The product of every element of float32 or float64 `x` (size >= 1) as ONNX Runtime's
    ReduceProd over every axis takes it: Eigen's redux of the aligned buffer with pmul
    ((O18)'s order, multiplying; (O120)), over NaNs x86's NaN of each multiply (O185)."""
    flat = np.ascontiguousarray(x).reshape(1, -1)
    return _redux_rows(flat, 0, 16 // flat.dtype.itemsize, np.multiply)[0]


def eigen_row_sums(x: np.ndarray, nan_order: str = "sum") -> np.ndarray:
    """Sums of the rows of a C-contiguous float32 or float64 (rows, n) array that starts on
    a 16-byte boundary, each as ONNX Runtime sums one (n >= 1; over NaNs `nan_order`'s
    NaN, `_redux_nan_rows`)."""
    rows, n = x.shape
    packet = 16 // x.dtype.itemsize
    out = np.empty(rows, x.dtype)
    offsets = (-(np.arange(rows) * n)) % packet      # scalars before each row's boundary
    for start in np.unique(offsets):
        sel = offsets == start
        out[sel] = _redux_rows(x[sel], int(start), packet, nan_order=nan_order)
    return out


def eigen_expression_sums(x: np.ndarray, nan_order: str = "sum") -> np.ndarray:
    """Row sums of float32 (rows, n), n >= 1, as Eigen sums an expression without direct
    memory access (a squared difference, say): packets from each row's first element, no
    alignment peeling; over NaNs `nan_order`'s NaN (`_redux_nan_rows`)."""
    return _redux_rows(np.asarray(x, np.float32), 0, nan_order=nan_order)


def mlas_m1_sums(x: np.ndarray) -> np.ndarray:
    """Sums over axis 1 of float32 (outer, k, inner), as MLAS's M = 1 kernel forms
    ones(k) @ x[d] (k >= 1)."""
    k = x.shape[1]
    # over NaNs (O153): the group's sum keeps its first NaN, and stands before the running sum
    add = first_nan_add if np.isnan(x).any() else np.add
    acc: np.ndarray | None = None
    i = 0
    while i < k:
        take = 4 if k - i >= 4 else (2 if k - i >= 2 else 1)
        part = x[:, i].copy()
        for j in range(1, take):
            part = add(part, x[:, i + j])
        acc = part if acc is None else add(part, acc)
        i += take
    assert acc is not None
    return acc


def dgemm_stride_k(n: int, k: int) -> int:
    """The depth of MLAS's DGEMM blocks for an (M, k) x (k, n) product: 128, doubled (and
    the column block of 64 halved) while the column block is above 16 and its half still
    holds n (measured, (O120))."""
    stride_n, stride_k = 64, 128
    if n >= k:
        return stride_k
    while stride_n > 16 and stride_n // 2 >= n:
        stride_k, stride_n = stride_k * 2, stride_n // 2
    return stride_k


def dgemm_m1_sums(x: np.ndarray) -> np.ndarray:
    """Sums over axis 1 of float64 (outer, k, inner), outer >= 2, as ONNX Runtime's
    FastReduceKRK forms ones(1, k) @ x[d] by MLAS's DGEMM: rows added in order within
    each block of `dgemm_stride_k` rows, then the blocks' sums added in order (O120)."""
    k = x.shape[1]
    step = dgemm_stride_k(x.shape[2], k)
    # over NaNs each add keeps the later row's (block's) NaN: the last NaN of a column (O153)
    later = (lambda a, b: first_nan_add(b, a)) if np.isnan(x).any() else np.add
    acc: np.ndarray | None = None
    for start in range(0, k, step):
        part = x[:, start].copy()
        for j in range(start + 1, min(start + step, k)):
            part = later(part, x[:, j])
        acc = part if acc is None else later(acc, part)
    assert acc is not None
    return acc


# the forms of lowp._native.float_reduce_sum (native/float_reduce.h)
REDUCE_EIGEN_ROWS, REDUCE_M1, REDUCE_IN_ORDER = 0, 1, 2


def merged_runs(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[str, list[int]]:
    """ONNX Runtime merges neighbouring axes of the same kind (K kept, R reduced), unit
    axes included: the kinds of the runs and their sizes."""
    kinds, size = "", list[int]()
    for a, d in enumerate(shape):
        kind = "R" if a in axes else "K"
        if kinds.endswith(kind):
            size[-1] *= d
        else:
            kinds, size = kinds + kind, [*size, d]
    return kinds, size


def reduce_plan(shape: tuple[int, ...], axes: tuple[int, ...]
                ) -> tuple[int, int, int, int] | None:
    """How ONNX Runtime sums a float32 array of `shape` over `axes`: (form, outer, k, inner)
    with the array seen as (outer, k, inner) and summed over k, or None where the order is
    not modelled: reductions of one run of consecutive axes (trailing, leading, middle or
    all) are. ONNX Runtime takes its M = 1 path for middle axes from max(2, its intra-op
    threads) outer rows on; this models up to two threads (with more, it sums fewer rows
    that way)."""
    if not shape or 0 in shape:
        return None
    kinds, size = merged_runs(shape, axes)
    if kinds in ("R", "KR"):
        return REDUCE_EIGEN_ROWS, int(np.prod(size[:-1])), size[-1], 1
    if kinds == "KRK" and size[0] >= 2:
        return REDUCE_M1, size[0], size[1], size[2]
    if kinds == "RK":    # leading axes: whole rows added in order
        return REDUCE_IN_ORDER, 1, size[0], size[1]
    if kinds == "KRK":   # middle ones under one outer row (its M = 1 path needs two)
        return REDUCE_IN_ORDER, 1, size[1], size[2]
    return None


def _separated_sums(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Sums of float32 or float64 `x` over `axes` that form two or more runs once merged
    (`reduce_plan` None), flat in the output's order, as ONNX Runtime adds them (O120):
    R K R (reduced, kept, reduced runs; the kept run longer than 1) by its FastReduceRKR,
    each output from +0 plus Eigen's redux of each leading index's trailing block, in
    order; any other pattern by its generic loop, each output's elements added one at a
    time in row-major order from +0."""
    kinds, size = merged_runs(x.shape, axes)
    zero = x.dtype.type(0)
    if kinds == "RKR" and size[1] > 1:
        blocks = eigen_row_sums(x.reshape(-1, size[2])).reshape(size[0], size[1])
        # over NaNs each block's sum before the running one: the last block's NaN (O153)
        add = (lambda acc, b: first_nan_add(b, acc)) if np.isnan(blocks).any() else np.add
        acc = np.full(size[1], zero)
        for i in range(size[0]):
            acc = add(acc, blocks[i])
        return acc
    kept = [a for a in range(x.ndim) if a not in axes]
    red = [a for a in range(x.ndim) if a in axes]
    cols = x.transpose(kept + red).reshape(-1, int(np.prod([x.shape[a] for a in red])))
    return in_order_sums(np.concatenate([np.full((1, cols.shape[0]), zero), cols.T]))


_ACCUMULATE_COLUMNS = 256


def in_order_sums(rows: np.ndarray) -> np.ndarray:
    """The rows of `rows` (k, m) added in order (acc += row): over NaNs the running sum's
    NaN before the row's, so each column keeps its first NaN, quieted (O153)."""
    acc = rows[0].copy()
    if not np.isnan(rows).any():
        if rows.shape[1] <= _ACCUMULATE_COLUMNS:
            # (np.add.accumulate adds each column's rows one at a time in order, in the
            # array's type: the same sums without a call per row, where the columns are few,
            # a generic loop's one output)
            return np.add.accumulate(rows, axis=0)[-1].copy()
        for j in range(1, rows.shape[0]):
            np.add(acc, rows[j], out=acc)
        return acc
    for j in range(1, rows.shape[0]):
        acc = first_nan_add(acc, rows[j])
    return acc


def reduced_shape(shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool
                  ) -> list[int]:
    return [1 if a in axes else d for a, d in enumerate(shape)] if keepdims else [
        d for a, d in enumerate(shape) if a not in axes]


def reduce_sum(x: np.ndarray, axes: tuple[int, ...], keepdims: bool, mean: bool = False,
               nan_order: str = "sum") -> np.ndarray | None:
    """ReduceSum (or ReduceMean, the sum divided by the count in x's type) of float32 `x`
    over `axes` in ONNX Runtime's order (`reduce_plan`), or None where the order is not
    modelled (the caller then sums with numpy). float64: trailing axes (Eigen's row sums
    with two-lane packets; docs/operators.md (O104)), middle axes (MLAS's DGEMM blocks,
    (O120)), leading axes whole rows in order (as float32). Two or more runs of reduced
    axes: `_separated_sums` (O120)."""
    if x.dtype not in (np.float32, np.float64) or not x.size:
        return None
    plan = reduce_plan(x.shape, axes)
    if plan is None:
        sums = _separated_sums(np.ascontiguousarray(x), axes)
        if mean:
            sums = sums / x.dtype.type(x.size // max(sums.size, 1))
        return sums.astype(x.dtype, copy=False).reshape(reduced_shape(x.shape, axes, keepdims))
    form, outer, k, inner = plan
    flat = np.ascontiguousarray(x)
    if x.dtype == np.float64 and form == REDUCE_M1:
        sums = dgemm_m1_sums(flat.reshape(outer, k, inner)).reshape(-1)
    elif form == REDUCE_EIGEN_ROWS:
        sums = eigen_row_sums(flat.reshape(outer, k), nan_order)
    elif form == REDUCE_M1:
        sums = mlas_m1_sums(flat.reshape(outer, k, inner)).reshape(-1)
    else:
        sums = in_order_sums(flat.reshape(k, inner))
    if form != REDUCE_EIGEN_ROWS:
        # (O224) its sums over leading and middle axes start from +0 (MLAS's GEMM
        # accumulators, FastReduceRK's zeroed output): a column of -0 sums to +0, a lone
        # signalling NaN comes out quiet
        with np.errstate(invalid="ignore"):
            sums = sums + x.dtype.type(0)
    if mean:
        sums = sums / x.dtype.type(k)
    return sums.astype(x.dtype, copy=False).reshape(reduced_shape(x.shape, axes, keepdims))


# --- exp: MLAS's MlasComputeExp (ONNX Runtime's float32 Exp) ------------------------------
#
# A range reduction exp(x) = 2^m exp(r) with m rounded by the 1.5 * 2^23 trick, r from a
# two-part ln 2, a degree-6 polynomial in fused multiply-adds, and 2^m rebuilt from two
# exponent factors (so that results down to 2^-150 stay finite). docs/operators.md, (O19).

_EXP_LOW, _EXP_HIGH = _F(-103.9720840454), _F(88.7762626647950)
_EXP_BIAS = _F(12582912.0)
_EXP_LOG2E = _F(1.44269504088896341)
_EXP_LN2_HIGH, _EXP_LN2_LOW = _F(-6.93145752e-1), _F(-1.42860677e-6)
_EXP_POLY = tuple(_F(float.fromhex(c)) for c in (
    "0x1.694000p-10", "0x1.125edcp-7", "0x1.555b5ap-5", "0x1.555450p-3", "0x1.fffff6p-2",
    "0x1.000000p+0"))
_ONE_BITS, _MIN_EXPONENT_BITS = 0x3F800000, -0x3F000000    # 1.0f and 2^-126 as int32 bits


def _wrap32(v: np.ndarray) -> np.ndarray:
    return v.astype(np.int64).astype(np.uint32).view(np.int32)


def exp(x: np.ndarray) -> np.ndarray:
    """ONNX Runtime's float32 exp of float32 `x`, bit for bit."""
    v = np.clip(np.asarray(x, np.float32), _EXP_LOW, _EXP_HIGH)   # NaN stays NaN
    biased = fma32(v, _EXP_LOG2E, _EXP_BIAS)
    m = (biased - _EXP_BIAS).astype(np.float32)
    v = fma32(m, _EXP_LN2_HIGH, v)
    v = fma32(m, _EXP_LN2_LOW, v)
    overflow = _wrap32(biased.view(np.int32).astype(np.int64) << 23)
    normal = np.clip(overflow, _MIN_EXPONENT_BITS, _ONE_BITS).astype(np.int32)
    overflow = _wrap32(overflow.astype(np.int64) - normal + _ONE_BITS)
    normal = _wrap32(normal.astype(np.int64) + _ONE_BITS)
    p = np.full_like(v, _EXP_POLY[0])
    for c in _EXP_POLY[1:]:
        p = fma32(p, v, c)
    scale_hi, scale_lo = overflow.view(np.float32), normal.view(np.float32)
    with np.errstate(over="ignore"):                 # large x: inf, as in ONNX Runtime
        p = fma32(p, (v * scale_hi).astype(np.float32), scale_hi)
        return (p * scale_lo).astype(np.float32).reshape(np.shape(x))


# --- erf: MLAS's MlasComputeErf (ONNX Runtime's float32 Erf, Gelu and BiasGelu) ----------
#
# |x| clamped to 3.925; below the split 0.921875 an odd polynomial in x² (fused
# multiply-adds), above it 1 - exp(-q(|x|)) with q a degree-7 polynomial and exp evaluated
# as in MLAS's erf kernel (clamp at -88.376, 2^r rebuilt from r's integer bits); the sign
# copied back. Gelu(x) = (0.5 x) (erf(x · float32(1/√2)) + 1). docs/operators.md, (O22).

_ERF_RANGE, _ERF_SPLIT = _F(3.925), _F(0.921875)
_ERF_SMALL = tuple(_F(c) for c in (-5.99104969e-4, 4.99339588e-3, -2.67667342e-2,
                                   1.12818025e-1, -3.76124859e-1, 1.28379151e-1))
_ERF_BIG = tuple(_F(c) for c in (1.72948930e-5, -3.83208680e-4, 3.88393435e-3,
                                 -2.42545605e-2, 1.06777847e-1, 6.34846687e-1,
                                 1.28717512e-1))
_ERF_EXP = tuple(_F(c) for c in (1.38319808e-3, 8.37550033e-3, 4.16689515e-2,
                                 1.66664466e-1, 4.99999851e-1, 1.0, 1.0))
_ERF_EXP_LOW = _F(-88.3762626647949)
_INV_SQRT2 = _F(0.70710678118654752440)
_GELU_B, _GELU_C = _F(0.7978845608028654), _F(0.035677408136300125)


def erf(x: np.ndarray) -> np.ndarray:
    """ONNX Runtime's float32 erf of float32 `x`, bit for bit."""
    x = np.asarray(x, np.float32)
    a = np.minimum(np.abs(x), _ERF_RANGE)                   # NaN stays NaN
    s = (a * a).astype(np.float32)
    p = np.full_like(a, _ERF_SMALL[0])
    for c in _ERF_SMALL[1:]:
        p = fma32(p, s, c)
    small = fma32(p, a, a)
    big = a > _ERF_SPLIT
    ab = np.where(big, a, _F(0))
    q = np.full_like(a, _ERF_BIG[0])
    for c in _ERF_BIG[1:]:
        q = fma32(q, ab, c)
    q = np.maximum(-fma32(q, ab, ab), _ERF_EXP_LOW)
    r = (fma32(_EXP_LOG2E, q, _EXP_BIAS) - _EXP_BIAS).astype(np.float32)
    f = fma32(r, _EXP_LN2_LOW, fma32(r, _EXP_LN2_HIGH, q))
    y = np.full_like(a, _ERF_EXP[0])
    for c in _ERF_EXP[1:]:
        y = fma32(y, f, c)
    with np.errstate(invalid="ignore"):
        two_r = np.ldexp(np.float32(1), np.nan_to_num(r).astype(np.int32)).astype(np.float32)
    e = (_F(1) - (y * two_r).astype(np.float32)).astype(np.float32)
    out = np.where(big, e, small)
    return np.where(np.signbit(x), -out, out).astype(np.float32).reshape(np.shape(x))


def gelu_tanh(x: np.ndarray, tanh_fn: Callable[[np.ndarray], np.ndarray] | None = None
              ) -> np.ndarray:
    """ONNX Runtime's float32 tanh-approximated GELU (Gelu with approximate='tanh',
    com.microsoft FastGelu): (0.5 x) (tanh(x (c x x + b)) + 1), b = √(2/π), c = 0.044715 b,
    tanh as above (or `tanh_fn`, a kernel equal to it)."""
    x = np.asarray(x, np.float32)
    with np.errstate(over="ignore", invalid="ignore"):   # huge |x|: inf, as in ONNX Runtime
        inner = ((_GELU_C * x).astype(np.float32) * x).astype(np.float32) + _GELU_B
        t = (tanh_fn or tanh)((x * inner.astype(np.float32)).astype(np.float32))
        return ((_F(0.5) * x).astype(np.float32) * (t + _F(1)).astype(np.float32)).astype(
            np.float32)


def gelu(x: np.ndarray) -> np.ndarray:
    """ONNX Runtime's float32 exact GELU (Gelu, com.microsoft Gelu and BiasGelu after the
    bias add), bit for bit."""
    x = np.asarray(x, np.float32)
    e = erf((x * _INV_SQRT2).astype(np.float32))
    return ((_F(0.5) * x).astype(np.float32) * (e + _F(1)).astype(np.float32)).astype(
        np.float32)


def gelu_keep_nan(x: np.ndarray) -> np.ndarray:
    """ONNX Runtime 1.32's float32 exact GELU where MLAS takes its AVX-512F kernel
    (MlasGeluErfKernelAvx512F, mlas_has_avx512f): gelu's values, a NaN x put back as it is
    (gelu's arithmetic quiets a signalling NaN: 0x7f800001 -> 0x7fc00001)."""
    x = np.asarray(x, np.float32)
    return np.where(np.isnan(x), x, gelu(x))


# --- LayerNormalization: ONNX Runtime 1.32's float32 kernel (MLAS's AVX2 row kernel) ------
#
# Rows of n >= 8 values: mean = float32(the float64 mean); d = x - mean; q = d·d summed in 8
# lanes by fused multiply-adds over whole 8-blocks (lane l takes the l-th of each block),
# folded ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)); of the last n mod 8, a first
# four (when there are four) added as rounded products, the rest by fused multiply-adds;
# inv = 1 / sqrt(q / n + eps); y = fma(d · inv, scale, bias), or (d · inv) · scale without
# a bias. Rows of fewer than 8 values: ONNX Runtime's generic loop, Welford's statistics
# (skip_layer_norm_rows below). docs/operators.md, (O24).


def layer_norm_rows(x: np.ndarray, scale: np.ndarray, bias: np.ndarray | None,
                    epsilon: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y, mean, inv_std_dev) of float32 rows x (rows, n) with scale, bias of n values."""
    x = np.asarray(x, np.float32)
    n = x.shape[1]
    mean = (x.astype(np.float64).sum(axis=1) / n).astype(np.float32)
    d = (x - mean[:, None]).astype(np.float32)
    q = _lane_squares(d)
    var = (q / np.float32(n)).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = (_F(1) / np.sqrt((var + np.float32(epsilon)).astype(np.float32))).astype(
            np.float32)
    t = (d * inv[:, None]).astype(np.float32)
    s = np.asarray(scale, np.float32).reshape(1, n)
    y = fma32(t, s, np.asarray(bias, np.float32).reshape(1, n)) if bias is not None else \
        (t * s).astype(np.float32)
    return y, mean, inv


# --- SimplifiedLayerNormalization (RMSNorm): ONNX Runtime 1.32's float32 kernel ----------
#
# Rows of n >= 16 values: q = x·x summed as (O24) sums d·d (8 lanes of fused multiply-adds
# over whole 8-blocks, the same fold and tail); inv = 1 / sqrt(q / n + eps);
# y = (x · inv) · scale. Rows of fewer than 16 values: the generic loop, q = the rounded
# squares added in order from 0, r = sqrt(q / n + eps), y = (x / r) · scale.
# docs/operators.md, (O49).

RMS_LANE_ROWS = 16      # the first row length summed in lanes


def simplified_layer_norm_rows(x: np.ndarray, scale: np.ndarray, epsilon: float
                               ) -> tuple[np.ndarray, np.ndarray]:
    """(y, inv_std_dev) of float32 rows x (rows, n) with a scale of n values.

    Examples
    --------
    >>> y, inv = simplified_layer_norm_rows(np.array([[2.0, -2.0]], np.float32),
    ...                                     np.array([1.0, 3.0], np.float32), 0.0)
    >>> y.tolist(), inv.tolist()
    ([[1.0, -3.0]], [0.5])
    """
    x = np.asarray(x, _F)
    n = x.shape[1]
    s = np.asarray(scale, _F).reshape(1, n)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if n < RMS_LANE_ROWS:
            q = np.zeros(x.shape[0], _F)
            for h in range(n):
                q = (q + (x[:, h] * x[:, h]).astype(_F)).astype(_F)
            r = np.sqrt((q / _F(n)).astype(_F) + _F(epsilon)).astype(_F)
            y = ((x / r[:, None]).astype(_F) * s).astype(_F)
            return y, (_F(1) / r).astype(_F)
        q = _lane_squares(x)
        inv = (_F(1) / np.sqrt(((q / _F(n)).astype(_F) + _F(epsilon)).astype(_F))).astype(_F)
        return ((x * inv[:, None]).astype(_F) * s).astype(_F), inv


def _lane_squares(d: np.ndarray) -> np.ndarray:
    """Sum of d·d per row in MLAS's order (8 fma lanes, folded; the tail as (O24))."""
    n = d.shape[1]
    blocks = n // 8 * 8
    lanes = np.zeros((d.shape[0], 8), _F)
    for k0 in range(0, blocks, 8):
        lanes = fma32(d[:, k0:k0 + 8], d[:, k0:k0 + 8], lanes)
    half = (lanes[:, :4] + lanes[:, 4:]).astype(_F)
    q = ((half[:, 0] + half[:, 2]).astype(_F) + (half[:, 1] + half[:, 3]).astype(_F)).astype(_F)
    for k in range(blocks, n):
        if k - blocks < 4 and n - blocks >= 4:
            q = (q + (d[:, k] * d[:, k]).astype(_F)).astype(_F)
        else:
            q = fma32(d[:, k], d[:, k], q)
    return q


# --- SkipLayerNormalization: ONNX Runtime's com.microsoft kernel (float32) ----------------
#
# Per row of v = (input + skip) + bias: Welford's running statistics in float32, from 0,
# for h = 0..n-1: delta = v_h - mean; mean += delta / (h + 1); M2 += delta * (v_h - mean)
# (each operation rounded, no fused multiply-add); sd = sqrt(M2 / n + eps);
# y_h = ((v_h - mean) / sd) * gamma_h + beta_h. docs/operators.md, (O40).


def _welford_rows(v: np.ndarray, gamma: np.ndarray, beta: np.ndarray | None, epsilon: float,
                  dtype: type) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y, mean, inv_std_dev) of rows v (rows, n), every operation in `dtype`: ONNX Runtime's
    generic LayerNormalization loop (Welford's running mean and m2, sd = sqrt(m2 / n +
    epsilon), (v - mean) / sd * gamma (+ beta))."""
    t = np.dtype(dtype).type
    v = np.asarray(v, t)
    rows, n = v.shape
    mean = np.zeros(rows, t)
    m2 = np.zeros(rows, t)
    for h in range(n):
        value = v[:, h]
        delta = value - mean
        mean = mean + delta / t(h + 1)
        m2 = m2 + delta * (value - mean)
    with np.errstate(divide="ignore", invalid="ignore"):
        sd = np.sqrt(m2 / t(n) + t(epsilon))
        y = (v - mean[:, None]) / sd[:, None]
        inv = t(1) / sd
    y = y * np.asarray(gamma, t).reshape(1, n)
    if beta is not None:
        y = y + np.asarray(beta, t).reshape(1, n)
    return y, mean, inv


def skip_layer_norm_rows(v: np.ndarray, gamma: np.ndarray, beta: np.ndarray | None,
                         epsilon: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y, mean, inv_std_dev) of float32 rows v (rows, n) with gamma, beta of n values."""
    return _welford_rows(v, gamma, beta, epsilon, np.float32)


def layer_norm_rows_double(v: np.ndarray, gamma: np.ndarray, beta: np.ndarray | None,
                           epsilon: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y, mean, inv_std_dev) of float64 rows v (rows, n) as ONNX Runtime's double
    LayerNormalization computes them (docs/operators.md (O352)): skip_layer_norm_rows's
    generic loop in double, every row length; mean and 1 / sd rounded to float32 once (its
    stash type)."""
    y, mean, inv = _welford_rows(v, gamma, beta, epsilon, np.float64)
    return y, mean.astype(_F), inv.astype(_F)


# --- softmax: MLAS's MlasComputeSoftmax on AVX-512F (ONNX Runtime's float32 Softmax) -------
#
# Per row: the maximum m; e_i = exp'(x_i + (-m)), where exp' is the sum-exp variant of the
# exp above (clamped below only, at -103.972084; the polynomial's last two steps both
# fma(p, r, 1); p scaled by 2^k as vscalefps does); the e_i summed in 16 lanes (lane l adds
# e_l, e_(16+l), ... in order), the lanes folded as t_i = a_i + a_(8+i),
# ((t0 + t1) + (t2 + t3)) + ((t4 + t5) + (t6 + t7)); y_i = e_i * float32(1 / S).
# docs/operators.md, (O20).

_SUMEXP_LOW = _EXP_LOW
_LANES = 16


def _sum_exp(v: np.ndarray) -> np.ndarray:
    v = np.maximum(v, _SUMEXP_LOW)
    biased = fma32(v, _EXP_LOG2E, _EXP_BIAS)
    m = (biased - _EXP_BIAS).astype(np.float32)
    v = fma32(m, _EXP_LN2_HIGH, v)
    v = fma32(m, _EXP_LN2_LOW, v)
    p = np.full_like(v, _EXP_POLY[0])
    for c in (*_EXP_POLY[1:], _EXP_POLY[-1]):
        p = fma32(p, v, c)
    return np.ldexp(p, m.astype(np.int32)).astype(np.float32)


def sse_op(op: np.ufunc, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a op b (float32 or float64) as x86's SSE and AVX give it: of two NaNs the first
    operand's, quieted (numpy's scalar op and the tails of its array loops keep the second's).
    Callers put the operands in the order of ONNX Runtime's compiled code."""
    a, b = np.asarray(a), np.asarray(b)
    with np.errstate(all="ignore"):
        out = op(a, b)
    out = np.where(np.isnan(b), quieted(b), out)
    return np.where(np.isnan(a), quieted(a), out).astype(out.dtype)


def quieted(x: np.ndarray) -> np.ndarray:
    """`x` (float32 or float64) with the quiet bit set: a NaN as x86 arithmetic passes it on
    (numbers are not NaNs and are not asked for)."""
    x = np.asarray(x)
    uint, bit = (np.uint32, 1 << 22) if x.dtype == np.float32 else (np.uint64, 1 << 51)
    return (x.view(uint) | uint(bit)).view(x.dtype)


def _lane_sum(e: np.ndarray) -> np.ndarray:
    """The 16-lane accumulation and fold of MLAS's AVX-512F sum-exp kernel, per row, each
    add with its NaN order (docs/operators.md (O139)): acc + e; t_i = a_(8+i) + a_i; the
    pairs (t0 + t1), ... and their sums, the earlier first."""
    rows, n = e.shape
    padded = np.zeros((rows, -(-n // _LANES) * _LANES), np.float32)
    padded[:, :n] = e                            # masked lanes add nothing (+0 is exact)
    blocks = padded.reshape(rows, -1, _LANES)
    if not np.isnan(e).any():
        a = _lanes(blocks)
        t = a[:, 8:] + a[:, :8]
        return ((t[:, 0] + t[:, 1]) + (t[:, 2] + t[:, 3])) + ((t[:, 4] + t[:, 5])
                                                              + (t[:, 6] + t[:, 7]))
    a = blocks[:, 0]
    for j in range(1, blocks.shape[1]):
        a = sse_op(np.add, a, blocks[:, j])
    t = sse_op(np.add, a[:, 8:], a[:, :8])
    pair = [sse_op(np.add, t[:, i], t[:, i + 1]) for i in range(0, 8, 2)]
    return sse_op(np.add, sse_op(np.add, pair[0], pair[1]), sse_op(np.add, pair[2], pair[3]))


def _minus_max(x: np.ndarray) -> np.ndarray:
    """(-max) + x of every row of float32 (rows, n) as MLAS forms it: the maximum of
    `mlas_row_max`; a NaN maximum's negation (quieted) is the first operand of each add, so
    its NaN fills the row, NaN elements too (docs/operators.md (O127))."""
    return sse_op(np.add, -mlas_row_max(x), x)


def _row_sum_exp(shifted: np.ndarray) -> np.ndarray:
    """MLAS's sum-exp exponential of (-max) + x: a NaN passes on (quieted), +inf (a row whose
    maximum a NaN hid) gives +inf, not the NaN of the polynomial's inf - inf
    (docs/operators.md (O139))."""
    e = _sum_exp(shifted)
    if np.isnan(shifted).any() or np.isposinf(shifted).any():
        e = np.where(np.isnan(shifted) | np.isposinf(shifted), shifted, e)
    return e


def softmax_rows(x: np.ndarray) -> np.ndarray:
    """ONNX Runtime's float32 softmax of every row of float32 (rows, n), n >= 1."""
    with np.errstate(all="ignore"):              # rows with inf or NaN give NaN, as there
        e = _row_sum_exp(_minus_max(x))
        scale = (_F(1) / _lane_sum(e)).astype(np.float32)
        y = (e * scale[:, None]).astype(np.float32)
        nan = np.isnan(scale)
        if nan.any():       # MLAS multiplies scale by e: a NaN sum's NaN fills its row
            y[nan] = scale[nan, None]
        return y


def log_softmax_rows(x: np.ndarray) -> np.ndarray:
    """ONNX Runtime's float32 log-softmax of every row of float32 (rows, n), n >= 1: the
    same sum of exponentials as softmax_rows, its logarithm by the C library's logf, and
    (x - max) - log(sum)."""
    from .libm import logf

    with np.errstate(all="ignore"):
        shifted = _minus_max(x)
        log_sum = logf(_lane_sum(_row_sum_exp(shifted)))
        return sse_op(np.subtract, shifted, log_sum[:, None]).astype(np.float32)


@functools.cache
def mlas_has_avx512f() -> bool:
    """Whether ONNX Runtime's MLAS takes its AVX-512F kernels on this CPU (the softmax order
    above is theirs; with AVX2 only, MLAS sums in 8 lanes and lowp keeps numpy's softmax)."""
    return "avx512f" in cpu_flags()


def scalar_operand(shape0: tuple[int, ...], shape1: tuple[int, ...]) -> int | None:
    """Which operand ONNX Runtime's two-input broadcast loop (its CPU Broadcaster) takes as
    one value per span of the output: 0, 1, or None when it walks both as spans.

    The span is the innermost axis (from the right) where either operand is longer than 1,
    or the last axis both have when there is none; an operand of length 1 there (or of rank
    0) is the one value, the first operand before the second. A kernel specialised by that
    value (Pow by 2 and 3) sees it only then: a one-element base by a one-element exponent
    goes through the base's path (docs/operators.md (O107)).

    Examples
    --------
    >>> scalar_operand((4, 5), ()), scalar_operand((1,), (1,)), scalar_operand((4, 1), (2,))
    (1, 0, 0)
    >>> scalar_operand((2, 3), (2, 1)), scalar_operand((2, 3), (2, 3))
    (1, None)
    """
    if not shape0:
        return 0
    if not shape1:
        return 0 if shape0[-1] <= 1 else 1
    common = min(len(shape0), len(shape1))
    for k in range(1, common + 1):
        a, b = shape0[-k], shape1[-k]
        if max(a, b) > 1 or k == common:
            break
    if a <= 1:
        return 0
    return 1 if b <= 1 else None


def where_zero_operand(c: tuple[int, ...], a: np.ndarray, b: tuple[int, ...]) -> int:
    """Which operand of Where(c, a, b) (`c` and `b` by their shapes) gives its -0 as +0 in
    ONNX Runtime: 0 (a) or 1 (b) for floats, -1 for other types ((O345)).

    ONNX Runtime selects a' = c ? a : 0 and b' = c ? 0 : b, then merges the two in its
    two-operand broadcast loop: where b' is one value per span (scalar_operand), b' unless
    it equals 0, else a'; otherwise a' unless it equals 0, else b'. A -0 equals 0, so the
    operand tested first loses its sign there.

    Examples
    --------
    >>> f32 = np.zeros((2, 3), np.float32)
    >>> where_zero_operand((2, 3), f32, (2, 3)), where_zero_operand((1,), f32, (1,))
    (0, 1)
    >>> where_zero_operand((2, 3), f32.astype(np.int64), (2, 3))
    -1
    """
    if a.dtype.kind != "f":
        return -1
    return int(scalar_operand(np.broadcast_shapes(c, a.shape), np.broadcast_shapes(c, b)) == 1)


def _keep_first(a: np.ndarray, b: np.ndarray, is_min: bool) -> np.ndarray:
    """ONNX Runtime's select of ReduceMax (ReduceMin): b where b > a (b < a), else a, so a
    NaN or an equal value met later never replaces `a` (Eigen's pmax / pmin, maxps with the
    operands reversed, and std::max alike)."""
    return np.where(b < a if is_min else b > a, b, a)


def eigen_extreme_rows(x: np.ndarray, is_min: bool) -> np.ndarray:
    """Eigen's maxCoeff (minCoeff) of each row of C-contiguous (rows, n) float32 or float64
    `x` whose buffer starts on a 16-byte boundary (SSE packets: 4 or 2 lanes), each row with
    its own scalars before its first aligned packet: two packet accumulators, the leftover
    packet, the lanes, then the head and the tail scalars, each step `_keep_first`."""
    rows, n = x.shape
    lanes = 16 // x.dtype.itemsize
    out = np.empty(rows, x.dtype)
    offsets = (-(np.arange(rows) * n)) % lanes
    for first in np.unique(offsets):
        sel = offsets == first
        out[sel] = _eigen_extreme_block(x[sel], min(int(first), n), lanes, is_min)
    return out


def _eigen_extreme_block(x: np.ndarray, start: int, lanes: int, is_min: bool) -> np.ndarray:
    """Eigen's maxCoeff (minCoeff) of every row of (rows, n) `x` of `lanes`-value packets,
    each row with `start` (<= n) scalars before its first aligned packet: two packet
    accumulators, the leftover packet, the lanes ((a0, a2), (a1, a3) for four), then the
    head and the tail, each step `_keep_first` (a NaN in an accumulator stays, a NaN met
    later is dropped)."""
    n = x.shape[1]
    size = ((n - start) // lanes) * lanes
    if size == 0:
        res = x[:, 0]
        for i in range(1, n):
            res = _keep_first(res, x[:, i], is_min)
        return res
    end2 = start + ((n - start) // (2 * lanes)) * (2 * lanes)
    end = start + size
    acc = x[:, start:start + lanes]
    if size > lanes:
        other = x[:, start + lanes:start + 2 * lanes]
        for i in range(start + 2 * lanes, end2, 2 * lanes):
            acc = _keep_first(acc, x[:, i:i + lanes], is_min)
            other = _keep_first(other, x[:, i + lanes:i + 2 * lanes], is_min)
        acc = _keep_first(acc, other, is_min)
        if end > end2:
            acc = _keep_first(acc, x[:, end2:end], is_min)
    if lanes == 2:
        res = _keep_first(acc[:, 0], acc[:, 1], is_min)
    else:                                               # (a0, a2), (a1, a3), then the two
        res = _keep_first(_keep_first(acc[:, 0], acc[:, 2], is_min),
                          _keep_first(acc[:, 1], acc[:, 3], is_min), is_min)
    for i in [*range(start), *range(end, n)]:
        res = _keep_first(res, x[:, i], is_min)
    return res


# the forms of lowp._native.float_reduce_extreme (native/float_reduce.h)
EXTREME_ROWS, EXTREME_RKR, EXTREME_KRK, EXTREME_IN_ORDER = 0, 1, 2, 3


def extreme_plan(shape: tuple[int, ...], axes: tuple[int, ...]
                 ) -> tuple[int, int, int, int] | None:
    """How ONNX Runtime takes ReduceMax / ReduceMin of an array of `shape` over `axes`
    (`reduce_extreme`): (form, a, b, c), or None for separated axes other than R K R:
    EXTREME_ROWS (a rows of b values, c = 1; trailing or all axes), EXTREME_RKR ((a, b, c)
    over a and c), EXTREME_KRK ((a, b, c) over b, a >= 2: Eigen's rowwise maxCoeff),
    EXTREME_IN_ORDER ((a, b, c) over b one row at a time: leading axes, or middle ones under
    one outer index)."""
    if not shape or 0 in shape:
        return None
    kinds, size = merged_runs(shape, axes)
    if kinds in ("R", "KR"):
        return EXTREME_ROWS, int(np.prod(size[:-1])), size[-1], 1
    if kinds == "RKR" and size[1] > 1:
        return EXTREME_RKR, size[0], size[1], size[2]
    if kinds == "KRK":
        return (EXTREME_KRK if size[0] >= 2 else EXTREME_IN_ORDER), size[0], size[1], size[2]
    if kinds == "RK":
        return EXTREME_IN_ORDER, 1, size[0], size[1]
    return None


def _krk_extreme(x: np.ndarray, acc: np.ndarray, is_min: bool) -> None:
    """EXTREME_KRK: the outputs (a, c) `acc`, already taken one row at a time, where Eigen's
    rowwise maxCoeff writes packets instead: from the first 16-byte boundary of each outer
    index's c outputs on, whole packets, each from its packetwise redux p = c0, then p =
    max(p, max(max(c1, c2), max(c3, c4))) for each four columns while 1 + 4 more fit before
    the last, then one at a time (a NaN first of a four drops the four)."""
    outer, k, inner = x.shape
    lanes = 16 // x.dtype.itemsize
    quad = (k - 1) & ~3
    for o in range(outer):
        head = min((-(o * inner)) % lanes, inner)
        end = head + (inner - head) // lanes * lanes
        if end == head:
            continue
        c = x[o, :, head:end]
        p = c[0]
        i = 1
        while i < quad:
            four = _keep_first(_keep_first(c[i], c[i + 1], is_min),
                               _keep_first(c[i + 2], c[i + 3], is_min), is_min)
            p = _keep_first(p, four, is_min)
            i += 4
        for j in range(i, k):
            p = _keep_first(p, c[j], is_min)
        acc[o, head:end] = p


def reduce_extreme(x: np.ndarray, axes: tuple[int, ...], keepdims: bool, is_min: bool
                   ) -> np.ndarray:
    """ReduceMax (ReduceMin) of non-empty float32 or float64 `x` over `axes` as ONNX Runtime
    1.32 computes it (docs/operators.md (O127)), by `extreme_plan`: trailing axes or all:
    Eigen's maxCoeff of each row (`eigen_extreme_rows`); R K R with a kept run longer than
    1: each output from its first element, then the maxCoeff of each leading index's block
    where larger; middle axes under two or more outer indices: Eigen's packetwise redux
    where its packets are (`_krk_extreme`); any other pattern: from the first element in
    row-major order, each later one where larger. Every step keeps its first operand on a
    NaN or a tie."""
    shape = reduced_shape(x.shape, axes, keepdims)
    x = np.ascontiguousarray(x)
    plan = extreme_plan(x.shape, axes)
    if plan is not None and plan[0] == EXTREME_ROWS:
        return eigen_extreme_rows(x.reshape(plan[1], plan[2]), is_min).reshape(shape)
    if plan is not None and plan[0] == EXTREME_RKR:
        _, d0, d1, d2 = plan
        blocks = eigen_extreme_rows(x.reshape(-1, d2), is_min).reshape(d0, d1)
        acc = x.reshape(d0, d1, d2)[0, :, 0]
        for i in range(d0):
            acc = _keep_first(acc, blocks[i], is_min)
        return acc.reshape(shape)
    kept = [a for a in range(x.ndim) if a not in axes]
    red = [a for a in range(x.ndim) if a in axes]
    cols = x.transpose(kept + red).reshape(-1, int(np.prod([x.shape[a] for a in red])))
    acc = cols[:, 0]
    for j in range(1, cols.shape[1]):
        acc = _keep_first(acc, cols[:, j], is_min)
    if plan is not None and plan[0] == EXTREME_KRK:
        acc = acc.reshape(plan[1], plan[3])
        _krk_extreme(x.reshape(plan[1:]), acc, is_min)
    return acc.reshape(shape)


def _second_wins(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """vmaxps / vmaxss a, b: a where a > b, else b (b on a NaN or a tie)."""
    return np.where(a > b, a, b)


def mlas_row_max(x: np.ndarray) -> np.ndarray:
    """MLAS's float32 row maximum (MlasReduceMaximumF32KernelAvx512F) of each row of (rows, n)
    `x`, shape (rows, 1): from the lowest float, 64-value steps into four 16-lane
    accumulators ((a0, a1), (a2, a3) then the two), 16-value steps into the first, the lanes
    halved (8, 4, 2, 1), then one value at a time; every step keeps its second operand on a
    NaN or a tie, so a NaN survives only from the last value read into its place
    (docs/operators.md (O127))."""
    rows, n = x.shape
    low = np.full(rows, np.finfo(np.float32).min, np.float32)
    i = 0
    if n >= 16:
        acc = np.broadcast_to(low[:, None], (rows, 16))
        if n >= 64:
            accs = [acc] * 4
            while n - i >= 64:
                accs = [_second_wins(accs[j], x[:, i + 16 * j:i + 16 * j + 16]) for j in range(4)]
                i += 64
            acc = _second_wins(_second_wins(accs[0], accs[1]), _second_wins(accs[2], accs[3]))
        while n - i >= 16:
            acc = _second_wins(acc, x[:, i:i + 16])
            i += 16
        v8 = _second_wins(acc[:, :8], acc[:, 8:])
        v4 = _second_wins(v8[:, :4], v8[:, 4:])
        v2 = _second_wins(v4[:, :2], v4[:, 2:])
        low = _second_wins(v2[:, 0], v2[:, 1])
    for j in range(i, n):
        low = _second_wins(low, x[:, j])
    return np.asarray(low, np.float32)[:, None]


def mlas_global_max(v: np.ndarray, nchwc: bool) -> np.ndarray:
    """MLAS's float32 global maximum pooling of each row of (rows, n) `v` (a channel's spatial
    values in row-major order; docs/operators.md (O140)). From the lowest float, each step
    maxps's a > b ? a : b (`_second_wins`: b on a NaN or a tie). NCHWc (`nchwc`, ONNX
    Runtime's layout for 4-D input of a whole number of channel blocks): one value at a
    time. Otherwise MlasPoolGlobalKernel: 4-value steps into four lanes, lanes (0, 2),
    (1, 3) then the two, then the last n % 4 one at a time by std::max (`_keep_first`: the
    first operand on a NaN or a tie). -inf throughout gives the lowest float."""
    rows, n = v.shape
    acc = np.full(rows if nchwc else (rows, 4), np.finfo(np.float32).min, np.float32)
    if nchwc:
        for j in range(n):
            acc = _second_wins(acc, v[:, j])
        return acc
    whole = n // 4 * 4
    for j in range(0, whole, 4):
        acc = _second_wins(acc, v[:, j:j + 4])
    acc = _second_wins(acc, acc[:, [2, 3, 2, 3]])
    res = _second_wins(acc[:, 0], acc[:, 1])
    for j in range(whole, n):
        res = _keep_first(res, v[:, j], False)
    return res
