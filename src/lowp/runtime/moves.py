"""Data-movement float steps as index maps, for lowp.runtime.replay.

Every output element of Slice, Transpose, Pad, Gather (constant indices), Expand, Tile, ...
is an element of the step's data input or a fill value. Once per feed signature the step is
run on element indices in place of its data (twice, with two offsets: an element that moves
with the offset came from the input, one that does not is a fill value); the result is the
map of `_native.take`: ``y[i] = x[map[i]]`` for ``map[i] >= 0``, else
``fill[-1 - map[i]]``, copied as bits. The map is checked against the step's own result
before it is used, so the native copy gives exactly that result on every later run, as long
as the step's other inputs (starts, pads, indices, shapes) are the same values, which is why
they must be constants or values the feed shapes fix (`replay.fixed_steps`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .plan import CF, Step

Env = dict[str, np.ndarray]
Layouts = dict[str, object]
Execute = Callable[[Step, Env, Layouts], None]

# operators whose outputs are elements of their first input (or fill values); Resize is
# one in nearest mode (in another mode its map fails the check below and it runs plain)
MOVES = frozenset({"Slice", "Transpose", "Gather", "Pad", "Expand", "Tile", "Squeeze",
                   "Unsqueeze", "Flatten", "Reshape", "Identity", "DepthToSpace",
                   "SpaceToDepth", "Resize"})
_INT32_MAX = 2**31 - 1


def applies(step: Step, env: Env, fixed: frozenset[str] | set[str]) -> bool:
    """`step` may run as a map: a data-movement step (float, or the same operator on
    quantized integers) with one output whose data input is a contiguous array of 1, 2, 4
    or 8-byte elements and whose other inputs are fixed."""
    names = step.inputs
    if step.kind not in ("float", "int") or step.op_type not in MOVES or not names or \
            not names[0]:
        return False
    if len([o for o in step.outputs if o]) != 1 or names[0] in names[1:]:
        return False
    if any(n and n not in fixed for n in names[1:]):
        return False
    x = env.get(names[0])
    return (type(x) is np.ndarray and x.flags.c_contiguous and not x.dtype.hasobject
            and x.dtype.itemsize in (1, 2, 4, 8) and 0 < x.size < _INT32_MAX)


def index_map(step: Step, env: Env, layout: Layouts, execute: Execute
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, object] | None:
    """(map, fill bytes, the step's result, its layout) of an `applies` step on these
    inputs, or None when its result is not a copy of input elements and fills."""
    name, out = step.inputs[0], next(o for o in step.outputs if o)
    x = env[name]

    def run(data: np.ndarray) -> tuple[Any, object]:
        e = {n: env[n] for n in step.inputs if n and n in env}
        lay = {n: layout.get(n, CF) for n in e}
        e[name] = data
        execute(step, e, lay)
        return e.get(out), lay.get(out, CF)

    y, y_layout = run(x)
    ids = np.arange(1, x.size + 1, dtype=np.int64).reshape(x.shape)
    # a float fill (a Pad's -inf or NaN) is no integer: its value in the index runs does not
    # matter (a fill is what stays put between them; its bits come from `y`)
    with np.errstate(invalid="ignore", over="ignore"):
        m1, lay1 = run(ids)
        m2, lay2 = run(ids + 1)
    if not all(type(v) is np.ndarray and v.shape == np.shape(y) for v in (y, m1, m2)):
        return None
    if m1.dtype != np.int64 or m2.dtype != np.int64 or not (lay1 is lay2 is y_layout):
        return None
    if y.dtype != x.dtype:
        return None
    flat = np.ascontiguousarray(y).reshape(-1)
    first = m1.reshape(-1)
    step_of = m2.reshape(-1) - first
    moved = step_of == 1
    index = first - 1
    if np.any((step_of != 0) & ~moved) or np.any(moved & ((index < 0) | (index >= x.size))):
        return None         # a value computed from the data, or an index out of the input
    fills = ~moved
    count = int(fills.sum())
    index[fills] = -1 - np.arange(count)
    fill = flat[fills] if count else np.zeros(1, y.dtype)
    mapped = index.astype(np.int32)
    got = np.where(moved, x.reshape(-1)[np.where(moved, mapped, 0)],
                   fill[np.where(moved, 0, -1 - mapped)])
    if got.view(np.uint8).tobytes() != flat.view(np.uint8).tobytes():
        return None
    y = flat.reshape(np.shape(y))
    return mapped, fill.reshape(-1).view(np.uint8), y, y_layout


NO_FILL = np.zeros(8, np.uint8)     # the fill values of a copy that has none


def extension() -> Any:
    """lowp._native (its `take`), or None when the extension is missing."""
    try:
        from . import native_backend
    except ImportError:
        return None
    return native_backend._native


def take_call(ext: Any, x: np.ndarray, mapped: np.ndarray, fill: np.ndarray, out: np.ndarray,
              threads: int) -> tuple[Any, tuple[object, ...]]:
    """The native call copying the mapped elements of `x` into `out`."""
    return ext.take, (x.reshape(-1).view(np.uint8), mapped, fill,
                      out.reshape(-1).view(np.uint8), x.dtype.itemsize, threads)


class SplitCopies:
    """A Split's parts in contiguous buffers of its own, the same arrays run after run (its
    readers, often convolutions or gate activations, then read stable memory and replay):
    of contiguous 1/2/4/8-byte data by native copies along index maps of the parts (one set
    per input shape, key and split sizes), recorded for replay; otherwise numpy's parts
    copied in."""

    def __init__(self, outputs: int, reuse: bool) -> None:
        from .fastops import Arena
        self.arenas = [Arena(reuse) for _ in range(outputs)]
        self.maps: dict[object, list[tuple[tuple[int, ...], np.ndarray]]] = {}

    def __call__(self, parts: Callable[..., tuple[np.ndarray, ...]], vals: list[Any],
                 key: object = None) -> tuple[np.ndarray, ...]:
        """The parts of `vals` (the Split's inputs) by `parts(*vals)`, the Split itself
        (numpy views of its first input); `key` tells apart what else changes the parts
        (the layout the split axis was chosen for)."""
        from . import native_float
        from .tape import call
        data = vals[0]
        ext = extension()
        if (ext is None or not isinstance(data, np.ndarray) or data.dtype.hasobject
                or data.dtype.itemsize not in (1, 2, 4, 8) or not data.flags.c_contiguous
                or not 0 < data.size < _INT32_MAX):
            return self._copied(parts(*vals))
        index = (data.shape, key, tuple(tuple(np.asarray(a).reshape(-1).tolist())
                                        for a in vals[1:] if a is not None))
        maps = self.maps.get(index)
        if maps is None:
            ids = np.arange(data.size, dtype=np.int64).reshape(data.shape)
            maps = self.maps[index] = [
                (p.shape, np.ascontiguousarray(p, np.int32).reshape(-1))
                for p in parts(ids, *vals[1:])[:len(self.arenas)]]
        copies = []
        for arena, (shape, mapped) in zip(self.arenas, maps, strict=True):
            b = arena.get(shape, data.dtype)
            take, take_args = take_call(ext, data, mapped, NO_FILL, b, native_float.get_threads())
            call(take, *take_args)
            copies.append(b)
        return tuple(copies)

    def _copied(self, parts: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        bufs = []
        for arena, p in zip(self.arenas, parts, strict=False):
            p = np.asarray(p)
            b = arena.get(p.shape, p.dtype)
            np.copyto(b, p)
            bufs.append(b)
        return tuple(bufs)
