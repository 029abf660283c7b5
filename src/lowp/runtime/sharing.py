"""Shared output memory for the native Programs of a replayed signature (lowp.runtime.replay).

Every replayed step writes its outputs into buffers of its own, so a run of a recorded
signature touches as much memory as all its intermediate values together; ONNX Runtime's
memory planner instead puts values that are not live at the same time in the same memory,
and a run stays in the caches. This module does the same for one segment (the recorded
calls one Program runs): each output buffer a step of the segment writes, that nothing
outside the segment touches, is live from the first call touching it to the last (to the
segment's end for the values the caller reads after the run), and buffers whose lives do
not overlap get the same place in one arena (greedy by size, 64-byte aligned). The calls
are then rewritten to the same views at the new places.

What stays where it is: feeds, constants and the values of fixed steps (computed once
when recorded), anything read or written from outside the segment (by Python, by another
Program, by a plain step), every buffer that is not a step's output (tables, scratch and
status arrays a kernel or Python reads again), and memory an array does not own.

`disabled()` turns sharing off for sessions made inside it (for comparing), as does the
environment variable ``LOWP_NO_SHARED_OUTPUTS=1`` for a whole process.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .switch import Switch
from .tape import Call

ALIGN = 64
_enabled = Switch(os.environ.get("LOWP_NO_SHARED_OUTPUTS", "") in ("", "0"))
disabled = _enabled.off


def enabled() -> bool:
    return bool(_enabled)


@dataclass(frozen=True)
class Block:
    """An output buffer of a segment: its place in the arena and the calls it lives over."""

    root: np.ndarray
    first: int
    last: int
    offset: int = 0


def root(a: np.ndarray) -> np.ndarray:
    """The array owning `a`'s memory (`a` itself, or the base it is a view of)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def arrays(values: Iterable[object]) -> Iterable[np.ndarray]:
    """The arrays among call arguments (float_fused's inputs come as a list)."""
    for v in values:
        if type(v) is np.ndarray:
            yield v
        elif isinstance(v, list):
            yield from arrays(v)


def plan(calls: list[Call], produced: Iterable[np.ndarray], outside: set[int],
         to_end: set[int]) -> list[Block]:
    """The blocks of the outputs `produced` by `calls` (in order) that may move: arrays
    owning their memory, touched by the calls, not in `outside` (root ids), each placed
    against the others it overlaps in time; the roots of `to_end` live to the last call."""
    candidates = {id(r): r for r in map(root, produced)
                  if r.base is None and r.flags.writeable and r.nbytes > 0
                  and id(r) not in outside}
    span: dict[int, list[int]] = {}
    for k, (_, args) in enumerate(calls):
        for a in arrays(args):
            key = id(root(a))
            if key in candidates:
                span.setdefault(key, [k, k])[1] = k
    end = len(calls) - 1
    blocks = sorted((Block(candidates[key], first, end if key in to_end else last)
                     for key, (first, last) in span.items()),
                    key=lambda b: (-b.root.nbytes, b.first))
    placed: list[Block] = []
    for b in blocks:
        busy = sorted((p.offset, p.offset + p.root.nbytes) for p in placed
                      if p.first <= b.last and b.first <= p.last)
        offset = 0
        for lo, hi in busy:
            if offset + b.root.nbytes <= lo:
                break
            offset = max(offset, _aligned(hi))
        placed.append(Block(b.root, b.first, b.last, offset))
    return placed


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


class Relocation:
    """Views of moved buffers rewritten to their places in one arena."""

    def __init__(self, blocks: list[Block]) -> None:
        size = max((b.offset + b.root.nbytes for b in blocks), default=0)
        # (numpy's allocation is 16-byte aligned: the arena starts on a 64-byte line)
        raw = np.empty(size + ALIGN, np.uint8)
        skip = -raw.__array_interface__["data"][0] % ALIGN
        self.arena = raw[skip:skip + size]
        self._places = {id(b.root): (b.root, b.offset) for b in blocks}

    @property
    def moved(self) -> int:
        return len(self._places)

    def moved_bytes(self) -> int:
        return sum(r.nbytes for r, _ in self._places.values())

    def array(self, a: np.ndarray) -> np.ndarray:
        """`a`, or the same view of its buffer's new place."""
        r = root(a)
        place = self._places.get(id(r))
        if place is None or place[0] is not r:
            return a
        at = a.__array_interface__["data"][0] - r.__array_interface__["data"][0]
        memory = self.arena[place[1]:place[1] + r.nbytes]
        return np.ndarray(a.shape, a.dtype, buffer=memory, offset=at, strides=a.strides)

    def value(self, v: object) -> object:
        if type(v) is np.ndarray:
            return self.array(v)
        if isinstance(v, list):
            return [self.value(x) for x in v]
        return v

    def call(self, c: Call) -> Call:
        fn, args = c
        return fn, tuple(self.value(a) for a in args)

    def poison(self) -> None:
        """Fill the arena with bytes no computed value depends on (every one 0xff: NaN as a
        float, -1 as an integer), so that a call reading memory before it is written this
        run shows (`replay._shared` compares a run on it with the plain one)."""
        self.arena.fill(0xFF)
