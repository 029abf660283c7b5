"""PackCache: one packing per constant array, no copy kept for arrays nobody can write."""

from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from lowp.runtime.prepacked import PackCache, freeze, frozen


def _counting() -> tuple[PackCache, list[int]]:
    calls: list[int] = []

    def pack(a: np.ndarray, k: int) -> np.ndarray:
        calls.append(k)
        return np.ascontiguousarray(a.T) * k

    return PackCache(pack), calls


def test_an_initializer_is_packed_once_and_no_copy_is_kept() -> None:
    w = numpy_helper.to_array(numpy_helper.from_array(
        np.arange(12, dtype=np.float32).reshape(3, 4), "w"))
    assert frozen(w)
    cache, calls = _counting()
    first = cache(w, 2)
    assert cache(w, 2) is first and calls == [2]
    assert cache(w, 3) is not first and calls == [2, 3]       # other arguments, other entry
    assert all(kept == [None] for _, _, kept in cache._entries.values())
    del w
    assert len(cache) == 0                                     # dropped with the array


def test_a_writeable_array_changed_in_place_is_packed_again() -> None:
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert not frozen(w)
    cache, calls = _counting()
    first = cache(w, 1)
    assert cache(w, 1) is first
    w[0, 0] = 99.0
    again = cache(w, 1)
    assert again is not first and again[0, 0] == 99.0 and calls == [1, 1]


def test_only_read_only_memory_is_trusted() -> None:
    base = np.zeros((4, 4), np.float32)
    view = base[1:]
    view.flags.writeable = False
    assert not frozen(view)
    owner = np.zeros(3, np.float32)
    owner.flags.writeable = False
    assert frozen(owner) and frozen(owner.reshape(3, 1))
    assert frozen(np.frombuffer(b"\0" * 16, np.float32))


def test_freeze_makes_a_constant_and_the_memory_it_views_read_only() -> None:
    owner = np.arange(6, dtype=np.float32)
    w = freeze(owner.reshape(2, 3))
    assert frozen(w) and not owner.flags.writeable
