"""Weights packed once per constant array, as ONNX Runtime reorders them once at load.

The float kernels that read weights in their own order (the NCHWc convolution, the LSTM and
GRU recurrence) take model constants: the same array object on every run. `PackCache` packs
an array on first use and hands back the packing while the array lives. A frozen array
(read-only all the way down: a Session's constants are) is trusted as it is; any other array
is compared with a copy kept beside its packing, so a caller that changes it in place gets
it packed again.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

import numpy as np

P = TypeVar("P")


def aligned64(a: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of `a` starting on a 64-byte boundary (numpy's allocations are
    16-byte aligned), so that a kernel's 64-byte loads of a packed panel never straddle two
    cache lines (every panel of the LSTM and GRU packings is a multiple of 64 bytes)."""
    buf = np.empty(a.nbytes + 64, np.uint8)
    off = -buf.ctypes.data % 64
    out = buf[off:off + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


def frozen(a: np.ndarray) -> bool:
    """True when `a` and every array it views are read-only and the memory at the bottom is
    an array's own or an immutable `bytes` object (numpy_helper.to_array's). numpy would let
    the owner of read-only memory make it writeable again; lowp never does that to an array
    it has frozen, and a caller who does must not expect old packings to notice."""
    base: object = a
    while isinstance(base, np.ndarray):
        if base.flags.writeable:
            return False
        if base.base is None:
            return True
        base = base.base
    return isinstance(base, bytes)


def freeze(a: np.ndarray) -> np.ndarray:
    """`a`, made read-only with every array it views (arrays the caller owns: a constant
    just read from the model), so that `frozen(a)` holds."""
    base: object = a
    while isinstance(base, np.ndarray):
        base.flags.writeable = False
        base = base.base
    return a


class PackCache(Generic[P]):
    """`pack(*args)` computed once per call's arrays (the objects, and their values unless
    frozen) and other arguments (hashable: compared by value)."""

    def __init__(self, pack: Callable[..., P]) -> None:
        self._pack = pack
        self._entries: dict[tuple[Hashable, ...],
                            tuple[list[weakref.ref[np.ndarray]], P,
                                  list[np.ndarray | None]]] = {}

    def __call__(self, *args: Any) -> P:
        arrays = [a for a in args if isinstance(a, np.ndarray)]
        key = tuple(id(a) if isinstance(a, np.ndarray) else a for a in args)
        hit = self._entries.get(key)
        alive = hit is not None and all(r() is a for r, a in zip(hit[0], arrays, strict=True))
        if hit is not None and alive and all(
                c is None or np.array_equal(c, a) for c, a in zip(hit[2], arrays, strict=True)):
            return hit[1]
        packed = self._pack(*args)
        if not alive:
            weakref.finalize(arrays[0], self._entries.pop, key, None)
        self._entries[key] = ([weakref.ref(a) for a in arrays], packed,
                              [None if frozen(a) else np.array(a, copy=True) for a in arrays])
        return packed

    def __len__(self) -> int:
        return len(self._entries)
