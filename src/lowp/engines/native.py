"""Front of lowp._acc16 (saturating 16-bit GEMM): path selection, argument checks, fallback.

The native paths ('scalar', 'avx2') equal `lowp.engines.acc16.acc16_outlier_matmul`
bit for bit. `LOWP_ACC16_ISA=scalar|avx2` forces a path at import.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from types import ModuleType

import numpy as np

from .acc16 import OutlierSplit

_ENV_VAR = "LOWP_ACC16_ISA"


def _load() -> ModuleType | None:
    try:
        from .. import _acc16  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _acc16


_mod = _load()


def available() -> bool:
    """True when the extension lowp._acc16 is built and importable."""
    return _mod is not None


def available_paths() -> list[str]:
    """Paths this CPU runs ('scalar' first); empty without the extension."""
    return list(_mod.available_paths()) if _mod is not None else []


def active_path() -> str:
    """Path new calls use ('reference' without the extension)."""
    return str(_mod.active_path()) if _mod is not None else "reference"


def set_path(name: str) -> None:
    """Force 'scalar' or 'avx2', or 'auto' for the best; ValueError if unavailable."""
    if _mod is None:
        raise ValueError("lowp._acc16 is not built")
    _mod.set_path(str(name))


@contextlib.contextmanager
def use_path(name: str) -> Iterator[None]:
    """Run the body on path `name`, then restore the previous choice."""
    previous = active_path()
    set_path(name)
    try:
        yield
    finally:
        set_path(previous)


class NativeAcc16Gemm:
    """Packed dense + outlier weights (K, N); ``__call__(a)`` returns (S1)-(S5) as int32.

    No zero-point terms: those are added in int32 by the caller (S6).
    """

    def __init__(self, split: OutlierSplit, block_pairs: int) -> None:
        if _mod is None:
            raise ValueError("lowp._acc16 is not built")
        self.k, self.n = (int(s) for s in split.dense.shape)
        self._gemm = _mod.Acc16Gemm(np.ascontiguousarray(split.dense, dtype=np.int8),
                                    np.ascontiguousarray(split.col_ptr, dtype=np.int32),
                                    np.ascontiguousarray(split.row_idx, dtype=np.int32),
                                    np.ascontiguousarray(split.values, dtype=np.int8),
                                    int(block_pairs))

    def __call__(self, a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        a = np.asarray(a)
        if a.dtype != np.uint8 or a.ndim != 2 or a.shape[1] != self.k:
            raise ValueError(f"a must be uint8 (M, {self.k}), got {a.dtype} {a.shape}")
        if self.k % 2:
            a = np.pad(a, [(0, 0), (0, 1)])
        a = np.ascontiguousarray(a)
        if out is None:
            out = np.empty((a.shape[0], self.n), dtype=np.int32)
        self._gemm.run(a, out)
        return out


def _apply_env() -> None:
    forced = os.environ.get(_ENV_VAR, "").strip()
    if forced and _mod is not None:
        try:
            set_path(forced)
        except ValueError as err:
            raise ValueError(f"{_ENV_VAR}={forced}: {err}") from None


_apply_env()
