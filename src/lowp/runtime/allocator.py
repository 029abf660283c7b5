"""Keep freed memory in the process heap so that a model's float temporaries are reused.

numpy allocates its temporaries with malloc. With glibc's defaults, blocks above the mmap
threshold are mapped and unmapped on every allocation, and free memory at the top of the
heap is given back to the system, so the float operators of every run touch fresh pages
and pay a page fault per 4 KiB: on a small transformer encoder (evals/families.py, BERT)
that made a run 25-35% slower in a fresh process than in one whose allocator had been
warmed by other work. Raising the mmap and trim thresholds keeps those blocks in the heap;
the cost is that the process keeps up to about one run's worth of temporaries after a run.

Applied once, when the first Session is created, on glibc only; ``LOWP_TUNE_MALLOC=0`` in
the environment turns it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 27       # blocks up to 128 MiB come from the heap
TRIM_THRESHOLD = 1 << 28       # give memory back only beyond 256 MiB free at the top

_done = False


def tune_malloc() -> bool:
    """Raise glibc's mmap and trim thresholds (once per process); True when applied."""
    global _done
    if _done:
        return True
    if os.environ.get("LOWP_TUNE_MALLOC", "1").strip() == "0":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = (libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
              and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)
    except (OSError, AttributeError):
        return False
    _done = ok
    return ok
