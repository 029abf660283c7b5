"""Float MaxPool in ONNX Runtime's orders (docs/operators.md (O150), (O151)).

Which NaN, zero or lowest float a float MaxPool window gives depends on the kernel ONNX
Runtime runs it with, and each reduces a window in its own order:

- ``nchwc``: a float32 4-D input whose channel count its shape inference knows and MLAS's
  NCHWc block divides, one output (NchwcTransformer; dilated or storage_order=1 too): from
  the lowest float, maxps(acc, x) (acc > x ? acc : x) over the in-bounds taps, row-major.
- ``loop``: MaxPoolV8's loop (an Indices output, storage_order=1 or a dilation above 1;
  every float64 MaxPool): the first in-bounds tap, then a tap only where it is greater.
- ``global``: MlasPool's global kernel (a window of the whole unpadded input, unit strides):
  GlobalMaxPool's order ((O140), `ort_math.mlas_global_max`).
- ``vector``: MlasPool's 2-D / 3-D vector kernel (float_nn._mlas_vector_pool): each input
  column of the window's leading axes reduced first (2-D: from its first in-bounds row,
  3-D: from the lowest float), maxps on the first w - w % 4 columns and std::max (acc < x ?
  x : acc) on the last w % 4; then across the width from the first tap by maxps, padding
  holding the lowest float.
- ``generic``: MlasPool's generic kernels (1-D, or a width stride above 2, a kernel side
  above 32): std::max from the lowest float, row-major (a NaN never enters).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product

import numpy as np

from .. import ort_math

LOWEST = np.finfo(np.float32).min


def path(x: np.ndarray, k: Sequence[int], s: Sequence[int], d: Sequence[int],
         begin: Sequence[int], end: Sequence[int], extra: Sequence[int], *,
         num_outputs: int, storage_order: int, nchwc: bool, vector: bool) -> str:
    """The kernel ONNX Runtime runs this float MaxPool with (the module's names). `nchwc`:
    the layout transformer takes it (its channels fill the NCHWc blocks); `vector`: MlasPool
    would take it with its vector kernel."""
    if x.dtype != np.float32:
        return "loop"
    if nchwc and num_outputs < 2:
        return "nchwc"
    if num_outputs > 1 or storage_order or any(v > 1 for v in d):
        return "loop"
    if list(x.shape[2:]) == list(k) and all(v == 1 for v in s) and not any(begin) \
            and not any(end) and not any(extra):
        return "global"
    return "vector" if vector else "generic"


def _maxps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(a > b, a, b)


def _std_max(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(a < b, b, a)


def _inside(size: int, k: int, s: int, d: int, b: int, out: int) -> np.ndarray:
    """(k, out): whether tap t of output o (o * s - b + t * d) is inside the input."""
    pos = np.arange(out)[None, :] * s - b + np.arange(k)[:, None] * d
    return (pos >= 0) & (pos < size)


def _tap_mask(inside: list[np.ndarray], tap: tuple[int, ...]) -> np.ndarray:
    """The in-bounds outputs (shape out) of window tap `tap`."""
    nd = len(tap)
    mask = np.ones((1,) * nd, bool)
    for i, t in enumerate(tap):
        mask = mask & inside[i][t].reshape(tuple(-1 if j == i else 1 for j in range(nd)))
    return mask


def reduce(win: np.ndarray, x_shape: Sequence[int], k: Sequence[int], s: Sequence[int],
           d: Sequence[int], begin: Sequence[int], out: Sequence[int], kind: str,
           xp_last: np.ndarray | None = None
           ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
    """The maxima of the windows `win` (N, C, *out, *k; padded taps hold the lowest float)
    in path `kind`'s order, and for "loop" each window's chosen tap (per axis, shape
    (N, C, *out); -1 where a window has no tap inside the input)."""
    nd = len(k)
    inside = [_inside(int(x_shape[2 + i]), k[i], s[i], d[i], begin[i], out[i])
              for i in range(nd)]
    taps = list(product(*(range(v) for v in k)))
    lead = (slice(None),) * (2 + nd)
    if kind == "generic":
        acc = np.full(win.shape[:2 + nd], LOWEST, win.dtype)
        for t in taps:
            acc = _std_max(acc, win[lead + t])
        return acc, None
    if kind == "nchwc":
        acc = np.full(win.shape[:2 + nd], LOWEST, win.dtype)
        for t in taps:
            v = win[lead + t]
            acc = np.where(_tap_mask(inside, t), _maxps(acc, v), acc)
        return acc, None
    if kind == "loop":
        acc = np.full(win.shape[:2 + nd], LOWEST, win.dtype)
        started = np.zeros(acc.shape, bool)
        chosen = np.full((nd,) + acc.shape, -1, np.int64)
        for t in taps:
            v = win[lead + t]
            take = _tap_mask(inside, t) & (~started | (v > acc))
            acc = np.where(take, v, acc)
            chosen[:, take] = np.array(t, np.int64)[:, None]
            started |= _tap_mask(inside, t)
        return acc, tuple(chosen)
    raise ValueError(f"no MaxPool order {kind!r}")


def mlas_global(x: np.ndarray) -> np.ndarray:
    """MlasPool's global kernel over each (n, c) plane: (O140)'s order."""
    n, c = x.shape[:2]
    rows = np.ascontiguousarray(x).reshape(n * c, int(np.prod(x.shape[2:])))
    if rows.size == 0:
        return np.empty((n, c) + (1,) * (x.ndim - 2), x.dtype)
    return ort_math.mlas_global_max(rows, False).reshape((n, c) + (1,) * (x.ndim - 2))


def mlas_vector(x: np.ndarray, k: Sequence[int], s: Sequence[int], begin: Sequence[int],
                end: Sequence[int], extra: Sequence[int], out: Sequence[int]) -> np.ndarray:
    """MlasPool's 2-D / 3-D vector kernel (float32 NCHW or NCDHW `x`, unit dilations)."""
    nd = x.ndim - 2
    w = x.shape[-1]
    vec = np.arange(w) < w - w % 4            # columns its 4-float vectors reduce
    # pass 1: the window's leading axes, per input column (N, C, *out[:-1], w)
    inside = [_inside(int(x.shape[2 + i]), k[i], s[i], 1, begin[i], out[i])
              for i in range(nd - 1)]
    widths = [(0, 0), (0, 0)] + [(begin[i], end[i] + extra[i]) for i in range(nd - 1)] \
        + [(0, 0)]
    xp = np.pad(x, widths, constant_values=LOWEST) if any(map(any, widths)) else x
    cols: np.ndarray | None = None
    started = None
    for t in product(*(range(v) for v in k[:-1])):
        sl = tuple(slice(t[i], t[i] + (out[i] - 1) * s[i] + 1, s[i]) for i in range(nd - 1))
        v = xp[(slice(None), slice(None)) + sl]
        mask = _tap_mask(inside, t)[..., None]
        if cols is None:
            if nd == 2:     # the first in-bounds row as it is
                cols, started = np.where(mask, v, LOWEST).astype(np.float32), mask
                continue
            cols, started = np.full(v.shape, LOWEST, np.float32), np.ones(mask.shape, bool)
        assert started is not None
        step = np.where(vec, _maxps(cols, v), _std_max(cols, v))
        cols = np.where(mask, np.where(started, step, v), cols)
        started = started | mask
    assert cols is not None
    # pass 2: across the width, padding the lowest float, from the first tap by maxps
    row = np.pad(cols, [(0, 0)] * (cols.ndim - 1) + [(begin[-1], end[-1] + extra[-1])],
                 constant_values=LOWEST)
    acc = row[..., 0:(out[-1] - 1) * s[-1] + 1:s[-1]]
    for j in range(1, k[-1]):
        acc = _maxps(acc, row[..., j:j + (out[-1] - 1) * s[-1] + 1:s[-1]])
    return np.ascontiguousarray(acc)
