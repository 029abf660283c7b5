"""Benchmark helpers: timing (median after warm-up), measured peaks, table printing."""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lowp import _native  # type: ignore[attr-defined]


def median_seconds(fn: Callable[[], object], *, warmup: int = 2, repeats: int = 15,
                   budget: float = 0.6) -> float:
    """Median wall time of `fn()` over `repeats` runs (fewer if `budget` seconds run out)."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats and (len(times) < 3 or time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def interleaved_ms(fns: list[Callable[[], object]], repeats: int,
                   budget: float) -> list[float]:
    """Median ms of each of `fns`, timed in turn round after round, so that a change in the
    machine's load (it is shared) falls on all of them alike."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    start = time.perf_counter()
    while len(times[0]) < repeats and (len(times[0]) < 3 or
                                       time.perf_counter() - start < budget):
        for fn, ts in zip(fns, times, strict=True):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return [1e3 * float(np.median(ts)) for ts in times]


def in_child(target: Callable[..., None], *args: object) -> Any:
    """Run ``target(*args, queue)`` in a fresh (spawned) process and return what it puts on
    the queue: each measurement starts with its own heap, thread pools and RSS."""
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    p = ctx.Process(target=target, args=(*args, queue))
    p.start()
    result = queue.get()
    p.join()
    return result


def peak_gops(kind: str, seconds: float = 0.5, threads: int = 1, tries: int = 1) -> float:
    """Measured peak of a register-only loop run on `threads` threads at once (best of tries)."""
    return max(float(_native.peak_gops(kind, seconds, threads)) for _ in range(tries))


def print_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(h) for h in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for n, r in enumerate(cells):
        print("  ".join(c.rjust(w) if i else c.ljust(w)
                        for i, (c, w) in enumerate(zip(r, widths, strict=True))))
        if n == 0:
            print("  ".join("-" * w for w in widths))
