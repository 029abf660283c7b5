"""Numpy implementations of small ONNX data operators, as ONNX Runtime's CPU kernels compute
them: EyeLike, CumProd, Compress, ReverseSequence, Unique, BitShift, BitwiseNot and Det
(docs/operators.md, (O258)-(O265)).

They move or combine the elements of one tensor; the float arithmetic among them (CumProd's
products, Det's LU factorization) runs in ONNX Runtime's order, float16 as float32 between
casts where ONNX Runtime has no float16 kernel. Unique keeps ONNX Runtime's ordered map
(lowp.runtime.ordered_map) so NaN keys land where ONNX Runtime's land.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import TensorProto, helper

from lowp.errors import NodeError
from lowp.runtime.float_registry import OpResult, register, unsupported
from lowp.runtime.ordered_map import OrderedMap

# The largest matrix Det factors as ONNX Runtime does: Eigen's PartialPivLU runs its unblocked
# loop up to this size and a blocked one (with its own matrix products) above it.
DET_UNBLOCKED_SIZE = 16


def _axis(axis: int, rank: int, what: str = "axis") -> int:
    if not -rank <= axis < rank:
        raise NodeError(f"{what} {axis} is out of range for a tensor of rank {rank}")
    return axis + rank if axis < 0 else axis


def _float16_as_float32(x: np.ndarray) -> bool:
    return x.dtype == np.float16


def _to_float16(y: np.ndarray) -> np.ndarray:
    from lowp.runtime.float_ops import Cast
    return np.asarray(Cast(y, to=TensorProto.FLOAT16))


@register
def EyeLike(x: np.ndarray, *, dtype: int | None = None, k: int = 0,
            **_: Any) -> np.ndarray:
    """Zeros of `x`'s 2-D shape with ones on diagonal `k` (above the main one when k > 0),
    of element type `dtype` (default: `x`'s)."""
    if x.ndim != 2:
        raise NodeError(f"EyeLike takes a 2-D tensor, got shape {list(x.shape)}")
    out = x.dtype if dtype is None else np.dtype(helper.tensor_dtype_to_np_dtype(int(dtype)))
    return np.eye(x.shape[0], x.shape[1], k=int(k), dtype=out)


@register
def CumProd(x: np.ndarray, axis: np.ndarray, *, exclusive: int = 0, reverse: int = 0,
            **_: Any) -> np.ndarray:
    """Running products along `axis`, each the previous output times the next input (one
    rounding a step), from the back with `reverse`; `exclusive` starts from 1 and leaves
    the last input out. float16 runs as float32 between casts (ONNX Runtime's CumProd has
    no float16 kernel)."""
    if x.ndim == 0:
        raise NodeError("CumProd does not take a scalar")
    a = np.asarray(axis)
    if a.ndim > 1 or a.size != 1 or a.dtype not in (np.int32, np.int64):
        raise NodeError(f"'axis' must be one int32 or int64, got shape {list(a.shape)} of "
                        f"{a.dtype}")
    ax = _axis(int(a.reshape(-1)[0]), x.ndim)
    if _float16_as_float32(x):
        return _to_float16(CumProd(x.astype(np.float32), axis, exclusive=exclusive,
                                   reverse=reverse))
    return running(x, ax, np.multiply, exclusive=exclusive, reverse=reverse)


def running(x: np.ndarray, ax: int, step: Any, *, exclusive: int, reverse: int) -> np.ndarray:
    """ONNX Runtime's CumSum / CumProd loop along axis `ax` with `step` (numpy.add or
    numpy.multiply): out[0] = x[0], out[i] = step(out[i - 1], x[i]), a rounding a step;
    exclusive: out[0] is the identity and out[i] = step(out[i - 1], x[i - 1]) (a real
    step even for the first, so 0 + -0 is +0 and 1 * sNaN quiet); from the back with
    `reverse`."""
    v = np.moveaxis(x, ax, 0)
    if reverse:
        v = v[::-1]
    out = np.empty_like(v)
    if v.shape[0]:
        identity = np.ones_like(v[0]) if step is np.multiply else np.zeros_like(v[0])
        acc = identity if exclusive else v[0].copy()
        out[0] = acc
        for i in range(1, v.shape[0]):
            with np.errstate(all="ignore"):
                acc = step(acc, v[i - 1] if exclusive else v[i], dtype=x.dtype)
            out[i] = acc
    if reverse:
        out = out[::-1]
    return np.ascontiguousarray(np.moveaxis(out, 0, ax))


@register
def Compress(input: np.ndarray, condition: np.ndarray, *,  # noqa: A002
             axis: int | None = None, **_: Any) -> np.ndarray:
    """The slices of `input` along `axis` (the flattened input without one) whose entry of
    the bool `condition` (read flattened) is true; entries past the axis' length are
    ignored and a shorter `condition` counts the rest as false (as ONNX Runtime does)."""
    x = input.reshape(-1) if axis is None else input
    ax = 0 if axis is None else _axis(int(axis), input.ndim)
    c = np.asarray(condition).reshape(-1)[:x.shape[ax]].astype(bool)
    return np.ascontiguousarray(np.take(x, np.nonzero(c)[0], axis=ax))


@register
def ReverseSequence(input: np.ndarray, sequence_lens: np.ndarray, *,  # noqa: A002
                    batch_axis: int = 1, time_axis: int = 0, **_: Any) -> np.ndarray:
    """Each batch entry's first sequence_lens[b] time steps reversed, the rest kept."""
    x = input
    if x.ndim < 2:
        raise NodeError(f"ReverseSequence takes a tensor of rank 2 or more, got "
                        f"{list(x.shape)}")
    if {int(batch_axis), int(time_axis)} != {0, 1}:
        raise NodeError(f"batch_axis {batch_axis} and time_axis {time_axis} must be 0 and 1")
    lens = np.asarray(sequence_lens)
    batch, steps = x.shape[int(batch_axis)], x.shape[int(time_axis)]
    if lens.shape != (batch,):
        raise NodeError(f"'sequence_lens' has shape {list(lens.shape)}, the batch has "
                        f"{batch} entries")
    if lens.size and (lens.min() < 0 or lens.max() > steps):
        raise NodeError(f"'sequence_lens' {lens.tolist()} must be in [0, {steps}]")
    bt = x if int(batch_axis) == 0 else np.swapaxes(x, 0, 1)
    out = bt.copy()
    for b, n in enumerate(lens.tolist()):
        out[b, :n] = bt[b, :n][::-1]
    return out if int(batch_axis) == 0 else np.ascontiguousarray(np.swapaxes(out, 0, 1))


def _unique_order(keys: list[Any], less: Any) -> tuple[list[int], list[int], list[int]]:
    """ONNX Runtime's Unique walk over `keys` (a std::map from key to its first position):
    the first positions of the distinct keys in the map's order, each key's map entry in
    order of first appearance, and every key's entry (by first appearance)."""
    ordered = OrderedMap(less)
    firsts: list[int] = []
    inverse: list[int] = []
    for i, key in enumerate(keys):
        found = ordered.find(key)
        if found is None:
            if not ordered.insert(key, len(firsts)):
                raise unsupported("Unique", "a key ONNX Runtime's ordered map finds no place "
                                  "for (NaN keys out of order): its result is undefined")
            inverse.append(len(firsts))
            firsts.append(i)
        else:
            inverse.append(found)
    return ordered.values(), firsts, inverse


def _float_less(a: float, b: float) -> bool:
    return a < b


def _rows_less(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    # std::vector's operator< (C++20): the three-way comparison of the elements, which
    # stops at the first pair that is not equal, a NaN pair (unordered) counting as not less
    for u, v in zip(a, b, strict=True):
        if u < v:
            return True
        if u != v:
            return False
    return False


def _sorted_groups(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows without NaN (a strict order): each row's group among equal rows, groups
    numbered in ascending order, and each group's first row."""
    n = rows.shape[0]
    order = (np.lexsort(rows.T[::-1]) if rows.shape[1] else np.arange(n)).astype(np.int64)
    s = rows[order]
    starts = np.ones(n, bool)
    if n:
        starts[1:] = np.any(s[1:] != s[:-1], axis=1)
    group = np.empty(n, np.int64)
    group[order] = np.cumsum(starts) - 1
    return group, order[starts]


@register
def Unique(x: np.ndarray, *, sorted: int = 1, axis: int | None = None,  # noqa: A002
           **_: Any) -> OpResult:
    """The distinct elements of the flattened `x` (slices along `axis` with one), ascending
    or (sorted=0) in order of first appearance, with their first indices, every element's
    index in the output and their counts. Equal means neither is less (-0 and 0 are one,
    the first kept); a NaN, less than nothing and nothing less than it, joins whichever key
    ONNX Runtime's ordered map meets it at."""
    if axis is None:
        rows = x.reshape(-1, 1)
    else:
        ax = _axis(int(axis), x.ndim)
        rest = x.size // x.shape[ax] if x.shape[ax] else 0
        rows = np.moveaxis(x, ax, 0).reshape(x.shape[ax], rest)
    n = rows.shape[0]
    if rows.dtype.kind == "f" and np.isnan(rows).any():
        keys = [tuple(r) for r in rows.astype(np.float64).tolist()]
        entries, firsts_list, inverse_list = _unique_order(
            [k[0] for k in keys] if axis is None else keys,
            _float_less if axis is None else _rows_less)
        firsts = np.array(firsts_list, np.int64)
        by_appearance = np.array(inverse_list, np.int64)
        sorted_entries = np.array(entries, np.int64)    # map order -> appearance number
    else:
        group, group_first = _sorted_groups(rows)
        appearance = np.argsort(group_first, kind="stable")
        rank = np.empty_like(appearance)
        rank[appearance] = np.arange(appearance.size)
        firsts = group_first[appearance]
        by_appearance = rank[group]
        sorted_entries = rank
    counts = np.bincount(by_appearance, minlength=firsts.size).astype(np.int64)
    if sorted:
        to_sorted = np.empty_like(sorted_entries)
        to_sorted[sorted_entries] = np.arange(sorted_entries.size)
        pick = firsts[sorted_entries]
        inverse = to_sorted[by_appearance] if n else by_appearance
        counts = counts[sorted_entries]
    else:
        pick, inverse = firsts, by_appearance
    if axis is None:
        y = x.reshape(-1)[pick]
    else:
        y = np.ascontiguousarray(np.take(x, pick, axis=ax))
    return y, pick.astype(np.int64), inverse.astype(np.int64), counts


_UNSIGNED = (np.uint8, np.uint16, np.uint32, np.uint64)


@register
def BitShift(x: np.ndarray, y: np.ndarray, *, direction: str, **_: Any) -> np.ndarray:
    """x shifted LEFT or RIGHT by y bits (broadcast; unsigned types): the bits shifted out
    are lost, and a shift by the type's width or more gives 0."""
    if direction not in ("LEFT", "RIGHT"):
        raise NodeError(f"direction must be 'LEFT' or 'RIGHT', got {direction!r}")
    if x.dtype == y.dtype and x.dtype.kind == "i":
        raise unsupported("BitShift", f"{x.dtype} tensors (signed shifts, ONNX opset 26): "
                          "ONNX Runtime's CPU provider does not run them either")
    if x.dtype != y.dtype or x.dtype.type not in _UNSIGNED:
        raise NodeError(f"BitShift takes two tensors of one unsigned integer type, got "
                        f"{x.dtype} and {y.dtype}")
    bits = x.dtype.itemsize * 8
    big = y >= bits
    amount = np.where(big, y.dtype.type(0), y)
    shifted = np.left_shift(x, amount) if direction == "LEFT" else np.right_shift(x, amount)
    return np.where(big, x.dtype.type(0), shifted).astype(x.dtype, copy=False)


@register
def BitwiseNot(x: np.ndarray, **_: Any) -> np.ndarray:
    """Every bit of an integer tensor flipped."""
    if x.dtype.kind not in "iu":
        raise NodeError(f"BitwiseNot takes an integer tensor, got {x.dtype}")
    return np.invert(x)


def _eigen_abs_max(column: np.ndarray) -> int:
    """The row Eigen's maxCoeff picks: the first of the largest, a later one only when
    strictly greater than the best so far (so a NaN is picked only in the first row)."""
    best, at = column[0], 0
    for i in range(1, column.size):
        if column[i] > best:
            best, at = column[i], i
    return at


def _determinant(m: np.ndarray) -> np.float32:
    """Eigen's PartialPivLU determinant of one float32 matrix of at most 16 rows (its
    unblocked loop): for each column the pivot of largest magnitude, the rows swapped, the
    column below divided by the pivot (skipped for a zero pivot), the rest less the outer
    product; then the sign of the permutation times the diagonal's product, left to right
    (each new entry times the product so far)."""
    lu = m.astype(np.float32, copy=True)
    n = lu.shape[0]
    swaps = 0
    for k in range(n):
        p = k + _eigen_abs_max(np.abs(lu[k:, k]))
        if lu[p, k] != 0:
            if p != k:
                lu[[k, p]] = lu[[p, k]]
                swaps += 1
            lu[k + 1:, k] /= lu[k, k]
        if k < n - 1:
            # (each product the pivot row's entry times the column's: which NaN of two
            # goes on, as ONNX Runtime's build has it)
            lu[k + 1:, k + 1:] -= np.multiply.outer(lu[k, k + 1:], lu[k + 1:, k]).T
    product = np.float32(1)
    for i in range(n):
        product = lu[i, i] * product if i else lu[0, 0]
    return np.float32(-1 if swaps % 2 else 1) * product


@register
def Det(x: np.ndarray, **_: Any) -> np.ndarray:
    """The determinants of the trailing square matrices of a float32 (or float16, run as
    float32 between casts) tensor, by Eigen's partial-pivoting LU, as ONNX Runtime
    computes them; matrices past 16 rows (Eigen's blocked factorization) are refused."""
    if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
        raise NodeError(f"Det takes square matrices (rank 2 or more), got shape "
                        f"{list(x.shape)}")
    if x.dtype.kind != "f":
        raise NodeError(f"Det takes a float tensor, got {x.dtype}")
    if x.dtype == np.float64:
        raise unsupported("Det", "float64 input: ONNX Runtime's CPU provider does not run "
                          "it either")
    n = x.shape[-1]
    if n > DET_UNBLOCKED_SIZE:
        raise unsupported("Det", f"{n} x {n} matrices: lowp reproduces Eigen's LU only up "
                          f"to {DET_UNBLOCKED_SIZE} rows")
    mats = x.astype(np.float32).reshape(int(np.prod(x.shape[:-2])), n, n)
    with np.errstate(all="ignore"):
        dets = [_determinant(m) for m in mats]
    out = np.array(dets, np.float32).reshape(x.shape[:-2])
    return _to_float16(out) if x.dtype == np.float16 else out
