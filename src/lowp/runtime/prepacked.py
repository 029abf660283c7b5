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
from typing import Generic, TypeVar

import numpy as np

P = TypeVar("P")


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
    """`pack(array, *args)` computed once per (array object, args) and its values."""

    def __init__(self, pack: Callable[..., P]) -> None:
        self._pack = pack
        self._entries: dict[tuple[int, Hashable], tuple[weakref.ref[np.ndarray], P,
                                                         np.ndarray | None]] = {}

    def __call__(self, a: np.ndarray, *args: Hashable) -> P:
        key = (id(a), args)
        hit = self._entries.get(key)
        if hit is not None and hit[0]() is a and (hit[2] is None or np.array_equal(hit[2], a)):
            return hit[1]
        packed = self._pack(a, *args)
        if hit is None or hit[0]() is not a:
            weakref.finalize(a, self._entries.pop, key, None)
        kept = None if frozen(a) else np.array(a, copy=True)
        self._entries[key] = (weakref.ref(a), packed, kept)
        return packed

    def __len__(self) -> int:
        return len(self._entries)
