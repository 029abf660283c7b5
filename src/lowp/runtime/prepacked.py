"""Weights packed once per constant array, as ONNX Runtime reorders them once at load.

The float kernels that read weights in their own order (the NCHWc convolution, the LSTM and
GRU recurrence) take model constants: the same array object on every run. `PackCache` packs
an array on first use and hands back the packing while the array lives. An array that cannot
change (read-only down to an immutable buffer, as `numpy_helper.to_array` gives every
initializer) is trusted as it is; any other array is compared with a copy kept beside its
packing, so a caller that changes it in place gets it packed again.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable

import numpy as np


def immutable(a: np.ndarray) -> bool:
    """True when no one can write `a`'s values: it and every array it views are read-only
    and the memory at the bottom is an immutable `bytes` object. (A read-only array that
    owns its memory is not enough: numpy lets its owner make it writeable again.)"""
    base: object = a
    while isinstance(base, np.ndarray):
        if base.flags.writeable:
            return False
        base = base.base
    return isinstance(base, bytes)


class PackCache:
    """`pack(array, *args)` computed once per (array object, args) and its values."""

    def __init__(self, pack: Callable[..., np.ndarray]) -> None:
        self._pack = pack
        self._entries: dict[tuple[int, Hashable], tuple[weakref.ref[np.ndarray], np.ndarray,
                                                         np.ndarray | None]] = {}

    def __call__(self, a: np.ndarray, *args: Hashable) -> np.ndarray:
        key = (id(a), args)
        hit = self._entries.get(key)
        if hit is not None and hit[0]() is a and (hit[2] is None or np.array_equal(hit[2], a)):
            return hit[1]
        packed = self._pack(a, *args)
        if hit is None or hit[0]() is not a:
            weakref.finalize(a, self._entries.pop, key, None)
        kept = None if immutable(a) else np.array(a, copy=True)
        self._entries[key] = (weakref.ref(a), packed, kept)
        return packed

    def __len__(self) -> int:
        return len(self._entries)
