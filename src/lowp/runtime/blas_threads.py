"""The bound a Session puts on numpy's BLAS (and OpenMP) pools for the length of a run.

threadpoolctl finds the pools once (`controller`); `bounded` then calls their own
get/set_num_threads around each run, without threadpoolctl's per-call bookkeeping
(`ThreadpoolController.limit`: ~15 us a run on the development VM, ~5 us this way, which is
a few percent of a small model's run). Pools already at or below the bound are left alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


def controller(threads: int) -> Any:
    """threadpoolctl's controller when some pool uses more than `threads` threads, else
    None (also without threadpoolctl)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    found = ThreadpoolController()
    if all(int(info.get("num_threads", 1)) <= threads for info in found.info()):
        return None
    return found


@contextlib.contextmanager
def bounded(found: Any, threads: int) -> Iterator[None]:
    """Run the body with every pool of `found` at most `threads` threads, then restore."""
    changed = []
    for lib in found.lib_controllers:
        previous = lib.get_num_threads()
        if previous is not None and previous > threads:
            lib.set_num_threads(threads)
            changed.append((lib, previous))
    try:
        yield
    finally:
        for lib, previous in changed:
            lib.set_num_threads(previous)
