"""Front of lowp._calib: native calibration scans (exact min/max, power-of-two-bin histograms).

One threaded pass over a float32 batch gives its exact min and max, its zero count and
whether it is finite, and adds its histogram to an observer's int64 counts with
the bin of every value computed exactly as `HistogramObserver.bin_index` computes it
(docs/calibration.md, "Native scans"). The observers call `min_max` and `histogram`; both
return None when the native path does not apply (another dtype, no extension, the
reference forced, a non-finite value), and the observer then runs its numpy reference,
which also names the tensor in the error for NaN and Inf. `LOWP_CALIB_ISA=reference|
scalar|avx2|avx512` forces a path at import; `use_path` does so for a block of code.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from types import ModuleType

import numpy as np

_ENV_VAR = "LOWP_CALIB_ISA"
REFERENCE = "reference"


def _load() -> ModuleType | None:
    try:
        from .. import _calib  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _calib


_mod = _load()
_state = {"reference": False}


def available_paths() -> list[str]:
    """Native paths this CPU runs ('scalar' first); empty without the extension."""
    return list(_mod.available_paths()) if _mod is not None else []


def active_path() -> str:
    """Path the observers use now: a native path or 'reference' (numpy)."""
    if _mod is None or _state["reference"]:
        return REFERENCE
    return str(_mod.active_path())


def set_path(name: str) -> None:
    """Use 'reference' (numpy) or a native path ('scalar', 'avx2', 'avx512'); 'auto' is the
    widest native path. ValueError when the path is not available."""
    name = str(name)
    if name == REFERENCE:
        _state["reference"] = True
        return
    if _mod is None:
        raise ValueError("lowp._calib is not built: only the 'reference' path exists")
    paths = available_paths()
    if name != "auto" and name not in paths:
        raise ValueError(f"calibration scan path '{name}' is not available here "
                         f"(available: {', '.join([REFERENCE, *paths])})")
    _mod.set_path(paths[-1] if name == "auto" else name)
    _state["reference"] = False


@contextlib.contextmanager
def use_path(name: str) -> Iterator[None]:
    """Run the body on path `name`, then restore the previous choice."""
    previous = active_path()
    set_path(name)
    try:
        yield
    finally:
        set_path(previous)


def _native_vector(x: np.ndarray) -> np.ndarray | None:
    """x as a contiguous float32 vector when the native path applies to it, else None."""
    if _mod is None or _state["reference"] or x.dtype != np.float32:
        return None
    return np.ascontiguousarray(x).reshape(-1)


def _signed_zero(value: float, zeros: int, neg_zeros: int, x: np.ndarray,
                 reduce: str) -> float:
    """The extreme as numpy's reduction returns it: a zero extreme carries the sign numpy
    gives it, which depends on where +0 and -0 sit when the batch holds both."""
    if value != 0.0:
        return value
    if neg_zeros == 0:
        return 0.0
    if neg_zeros == zeros:
        return -0.0
    return float(getattr(x, reduce)())


def min_max(x: np.ndarray) -> tuple[float, float] | None:
    """(min, max) of a non-empty finite float32 batch, or None (use the reference)."""
    flat = _native_vector(x)
    if flat is None or _mod is None:
        return None
    finite, lo, hi, zeros, neg_zeros = _mod.min_max(flat)
    if not finite:
        return None
    return (_signed_zero(lo, zeros, neg_zeros, x, "min"),
            _signed_zero(hi, zeros, neg_zeros, x, "max"))


def histogram(x: np.ndarray, counts: np.ndarray, exponent: int, first: int,
              lo_ok: float, hi_ok: float) -> tuple[bool, float, float, int] | None:
    """Add the histogram of a non-empty float32 batch to `counts`; (added, min, max, zeros).

    `counts` (int64, contiguous) holds the bins first .. first + len(counts) - 1 of width
    2^exponent (bin k = [k w, (k+1) w)). `added` is False, and `counts` untouched, when a
    value lies outside [lo_ok, hi_ok]: the caller widens its bins for the batch's min and
    max and comes again. None (counts untouched) when the reference must run: not float32,
    no extension, or a NaN or Inf in the batch.
    """
    flat = _native_vector(x)
    if flat is None or _mod is None or not -1000 < exponent < 1000:
        return None
    factor = math.ldexp(1.0, -exponent)
    finite, lo, hi, zeros, neg_zeros = _mod.histogram(flat, counts, factor, int(first),
                                                      float(lo_ok), float(hi_ok))
    if not finite:
        return None
    return (lo_ok <= lo and hi <= hi_ok, _signed_zero(lo, zeros, neg_zeros, x, "min"),
            _signed_zero(hi, zeros, neg_zeros, x, "max"), int(zeros))


def _apply_env() -> None:
    forced = os.environ.get(_ENV_VAR)
    if forced:
        try:
            set_path(forced)
        except ValueError as err:
            raise ValueError(f"{_ENV_VAR}={forced}: {err}") from None


_apply_env()
