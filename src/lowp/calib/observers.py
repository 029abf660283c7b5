"""Calibration observers: streaming min/max and fixed-edge histograms that merge exactly.

An observer has two jobs: `update` with a batch, and hand its statistics to a range method
(`lowp.calib.methods`). Observers never keep batches; memory is bounded by the histogram.
Statistics are integers or exact min/max values, so `merge` is exact, associative and
commutative, and a map (per shard) + reduce (merge) equals one pass over all data.
See docs/calibration.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DataError, QuantizationError
from . import scan

DEFAULT_NUM_BINS = 8001
# Elements binned per step of HistogramObserver.update: bounds the float64 temporaries.
_CHUNK = 1 << 18


def _check_batch(name: str, x: np.ndarray) -> np.ndarray:
    """Return `x` as a real numeric array or raise DataError naming the tensor."""
    x = np.asarray(x)
    if x.dtype == np.bool_ or not (np.issubdtype(x.dtype, np.integer)
                                   or np.issubdtype(x.dtype, np.floating)):
        raise DataError(f"tensor '{name}': calibration data must be real numbers, "
                        f"got dtype {x.dtype}")
    return x


def _batch_min_max(name: str, x: np.ndarray) -> tuple[float, float]:
    """Exact min and max of a non-empty batch; NaN or Inf raises DataError naming the tensor.

    float32 batches take one native pass (`lowp.calib.scan`), the reference two reductions.
    """
    found = scan.min_max(x)
    if found is not None:
        return found
    lo = x.min()
    hi = x.max()
    # min/max propagate NaN and expose +-Inf, so two reductions check finiteness.
    if not (np.isfinite(lo) and np.isfinite(hi)):
        n_nan = int(np.count_nonzero(np.isnan(x)))
        n_inf = int(np.count_nonzero(np.isinf(x)))
        raise DataError(f"tensor '{name}': calibration data contains {n_nan} NaN and "
                        f"{n_inf} Inf values (of {x.size})")
    return float(lo), float(hi)


def _opt_float(v: Any, what: str) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
        raise DataError(f"observer state: '{what}' must be a finite number or null, got {v!r}")
    return float(v)


def _int(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise DataError(f"observer state: '{what}' must be a non-negative integer, got {v!r}")
    return v


def _str(v: Any, what: str) -> str:
    if not isinstance(v, str):
        raise DataError(f"observer state: '{what}' must be a string, got {v!r}")
    return v


class _Observed:
    """What both observers know: the tensor's name and the exact extremes seen so far."""

    _name: str
    _min: float | None
    _max: float | None

    @property
    def name(self) -> str:
        """Tensor name."""
        return self._name

    @property
    def min(self) -> float:
        """Smallest value seen (+inf before any data)."""
        return float("inf") if self._min is None else self._min

    @property
    def max(self) -> float:
        """Largest value seen (-inf before any data)."""
        return float("-inf") if self._max is None else self._max


class MinMaxObserver(_Observed):
    """Running exact minimum and maximum of a tensor (calibration pass 1).

    Parameters
    ----------
    name
        Tensor name, used in error messages and as the key in a calibration table.

    Examples
    --------
    >>> obs = MinMaxObserver("x")
    >>> obs.update(np.array([-1.0, 2.0], np.float32))
    >>> obs.update(np.array([3.0], np.float32))
    >>> obs.min, obs.max, obs.count
    (-1.0, 3.0, 3)
    """

    kind = "minmax"

    def __init__(self, name: str) -> None:
        self._name = name
        self._min: float | None = None
        self._max: float | None = None
        self._count = 0

    @property
    def amax(self) -> float:
        """max(|min|, |max|): the half-width of the symmetric histogram range of pass 2."""
        if self._min is None or self._max is None:
            raise DataError(f"tensor '{self._name}': no calibration data observed")
        return max(abs(self._min), abs(self._max))

    @property
    def count(self) -> int:
        """Number of elements seen."""
        return self._count

    @property
    def is_empty(self) -> bool:
        """True before the first non-empty batch."""
        return self._count == 0

    def update(self, x: np.ndarray) -> None:
        """Fold one batch into the statistics; NaN or Inf raises DataError naming the tensor."""
        x = _check_batch(self._name, x)
        if x.size == 0:
            return
        lo, hi = _batch_min_max(self._name, x)
        self._min = lo if self._min is None else min(self._min, lo)
        self._max = hi if self._max is None else max(self._max, hi)
        self._count += int(x.size)

    def merge(self, other: MinMaxObserver) -> MinMaxObserver:
        """A new observer holding the statistics of both (exact, associative, commutative)."""
        if not isinstance(other, MinMaxObserver):
            raise DataError(f"tensor '{self._name}': cannot merge MinMaxObserver with "
                            f"{type(other).__name__}")
        if other.name != self._name:
            raise DataError(f"cannot merge statistics of tensor '{self._name}' with "
                            f"those of tensor '{other.name}'")
        out = MinMaxObserver(self._name)
        mins = [v for v in (self._min, other._min) if v is not None]
        maxs = [v for v in (self._max, other._max) if v is not None]
        out._min = min(mins) if mins else None
        out._max = max(maxs) if maxs else None
        out._count = self._count + other._count
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly state (floats round-trip exactly through json)."""
        return {"kind": self.kind, "name": self._name, "min": self._min, "max": self._max,
                "count": self._count}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MinMaxObserver:
        """Rebuild an observer from `to_dict` output; malformed state raises DataError."""
        _expect_kind(d, cls.kind)
        obs = cls(_str(d.get("name"), "name"))
        obs._min = _opt_float(d.get("min"), "min")
        obs._max = _opt_float(d.get("max"), "max")
        obs._count = _int(d.get("count"), "count")
        _check_min_max(obs._name, obs._min, obs._max, obs._count)
        return obs

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MinMaxObserver):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"MinMaxObserver(name={self._name!r}, min={self.min}, max={self.max}, "
                f"count={self._count})")


class HistogramObserver(_Observed):
    """Histogram with fixed edges over [-amax, amax] plus exact min/max (calibration pass 2).

    The range is fixed at construction (from pass 1), so every update adds integer counts
    to the same bins and merging is exact. `num_bins` is odd so that zero is the centre of
    the middle bin. Values outside [-amax, amax] (possible when pass 2 sees other data than
    pass 1) are counted in the edge bins; `min` and `max` still record them exactly.

    Parameters
    ----------
    name
        Tensor name.
    amax
        Half-width of the histogram range, max(|min|, |max|) from pass 1.
    num_bins
        Odd number of bins (8001 by default, as MXNet).

    Examples
    --------
    >>> obs = HistogramObserver("x", amax=2.5, num_bins=5)
    >>> obs.update(np.array([-2.5, 0.0, 0.4, 1.0, 2.5], np.float32))
    >>> obs.counts.tolist(), obs.edges.tolist()
    ([1, 0, 2, 1, 1], [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5])
    """

    kind = "histogram"

    def __init__(self, name: str, amax: float, num_bins: int = DEFAULT_NUM_BINS) -> None:
        if isinstance(num_bins, bool) or not isinstance(num_bins, (int, np.integer)) \
                or num_bins < 3 or num_bins % 2 == 0:
            raise QuantizationError(f"tensor '{name}': num_bins must be an odd integer >= 3 "
                                    f"(zero in the middle bin), got {num_bins}")
        amax = float(amax)
        if not np.isfinite(amax) or amax < 0:
            raise DataError(f"tensor '{name}': histogram half-width amax must be finite and "
                            f">= 0, got {amax}")
        self._name = name
        self._amax = amax
        self._num_bins = int(num_bins)
        self._counts = np.zeros(self._num_bins, dtype=np.int64)
        self._min: float | None = None
        self._max: float | None = None
        self._zeros = 0

    @classmethod
    def from_minmax(cls, minmax: MinMaxObserver,
                    num_bins: int = DEFAULT_NUM_BINS) -> HistogramObserver:
        """Pass-2 observer whose symmetric range comes from the pass-1 min/max."""
        return cls(minmax.name, minmax.amax, num_bins)

    @property
    def amax(self) -> float:
        """Half-width of the fixed histogram range."""
        return self._amax

    @property
    def num_bins(self) -> int:
        """Number of bins (odd)."""
        return self._num_bins

    @property
    def counts(self) -> np.ndarray:
        """Bin counts (int64, read-only view)."""
        v = self._counts.view()
        v.flags.writeable = False
        return v

    @property
    def edges(self) -> np.ndarray:
        """Bin edges: `num_bins + 1` values from -amax to amax (float64)."""
        return np.linspace(-self._amax, self._amax, self._num_bins + 1)

    @property
    def bin_width(self) -> float:
        """Width of one bin, 2 * amax / num_bins."""
        return 2.0 * self._amax / self._num_bins

    @property
    def count(self) -> int:
        """Number of elements seen (the sum of the counts)."""
        return int(self._counts.sum())

    @property
    def zeros(self) -> int:
        """Number of elements exactly equal to zero (they quantize without error)."""
        return self._zeros

    @property
    def is_empty(self) -> bool:
        """True before the first non-empty batch."""
        return self._min is None

    def bin_index(self, x: np.ndarray) -> np.ndarray:
        """Bin of each element: floor(x * num_bins / (2 amax) + num_bins / 2), clamped.

        Elementwise and deterministic, which is what makes merging exact.
        """
        nb = self._num_bins
        xf = np.asarray(x, dtype=np.float64)
        factor = nb / (2.0 * self._amax) if self._amax > 0 else np.inf
        if not np.isfinite(factor):  # zero (or denormal) range: the sign picks the bin
            return np.where(xf > 0, nb - 1, np.where(xf < 0, 0, nb // 2)).astype(np.intp)
        idx = np.floor(xf * factor + nb / 2.0)
        return np.clip(idx, 0, nb - 1).astype(np.intp)

    def update(self, x: np.ndarray) -> None:
        """Add one batch to the histogram; NaN or Inf raises DataError naming the tensor.

        A float32 batch is binned, counted and its min/max found in one native pass
        (`lowp.calib.scan`, the same counts); other dtypes, and batches holding NaN or Inf,
        run the numpy reference below.
        """
        x = _check_batch(self._name, x)
        if x.size == 0:
            return
        factor = self._num_bins / (2.0 * self._amax) if self._amax > 0 else np.inf
        found = scan.histogram(x, self._counts, factor)
        if found is not None:
            lo, hi, zeros = found
            self._zeros += zeros
        else:
            lo, hi = _batch_min_max(self._name, x)
            flat = x.reshape(-1)
            for start in range(0, flat.size, _CHUNK):
                part = flat[start:start + _CHUNK]
                self._counts += np.bincount(self.bin_index(part), minlength=self._num_bins)
                self._zeros += int(np.count_nonzero(part == 0))
        self._min = lo if self._min is None else min(self._min, lo)
        self._max = hi if self._max is None else max(self._max, hi)

    def merge(self, other: HistogramObserver) -> HistogramObserver:
        """A new observer equal to one pass over both inputs (exact integer counts).

        Both must describe the same tensor with the same fixed range and number of bins.
        """
        if not isinstance(other, HistogramObserver):
            raise DataError(f"tensor '{self._name}': cannot merge HistogramObserver with "
                            f"{type(other).__name__}")
        if other.name != self._name:
            raise DataError(f"cannot merge statistics of tensor '{self._name}' with "
                            f"those of tensor '{other.name}'")
        if other.amax != self._amax or other.num_bins != self._num_bins:
            raise DataError(
                f"tensor '{self._name}': histograms have different fixed ranges "
                f"(amax {self._amax} vs {other.amax}, bins {self._num_bins} vs "
                f"{other.num_bins}); build both from the same pass-1 min/max")
        out = HistogramObserver(self._name, self._amax, self._num_bins)
        out._counts = self._counts + other._counts
        mins = [v for v in (self._min, other._min) if v is not None]
        maxs = [v for v in (self._max, other._max) if v is not None]
        out._min = min(mins) if mins else None
        out._max = max(maxs) if maxs else None
        out._zeros = self._zeros + other._zeros
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly state; `counts` is a list of ints."""
        return {"kind": self.kind, "name": self._name, "amax": self._amax,
                "num_bins": self._num_bins, "min": self._min, "max": self._max,
                "zeros": self._zeros, "counts": self._counts.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HistogramObserver:
        """Rebuild an observer from `to_dict` output; malformed state raises DataError."""
        _expect_kind(d, cls.kind)
        name = _str(d.get("name"), "name")
        amax = _opt_float(d.get("amax"), "amax")
        if amax is None:
            raise DataError(f"tensor '{name}': histogram state lacks 'amax'")
        num_bins = _int(d.get("num_bins"), "num_bins")
        try:
            obs = cls(name, amax, num_bins)
        except QuantizationError as exc:
            raise DataError(str(exc)) from exc
        raw = d.get("counts")
        counts = np.asarray(raw if isinstance(raw, list) else [])
        if counts.shape != (num_bins,) or (counts.size and counts.dtype.kind not in "iu"):
            raise DataError(f"tensor '{name}': 'counts' must be a list of {num_bins} integers")
        if np.any(counts < 0):
            raise DataError(f"tensor '{name}': histogram counts must be non-negative")
        obs._counts = counts.astype(np.int64)
        obs._min = _opt_float(d.get("min"), "min")
        obs._max = _opt_float(d.get("max"), "max")
        obs._zeros = _int(d.get("zeros", 0), "zeros")
        _check_min_max(name, obs._min, obs._max, obs.count)
        if obs._zeros > obs._counts[num_bins // 2]:
            raise DataError(f"tensor '{name}': more zeros than counts in the middle bin")
        return obs

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HistogramObserver):
            return NotImplemented
        return (self._name == other._name and self._amax == other._amax
                and self._num_bins == other._num_bins and self._min == other._min
                and self._max == other._max and self._zeros == other._zeros
                and np.array_equal(self._counts, other._counts))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"HistogramObserver(name={self._name!r}, amax={self._amax}, "
                f"num_bins={self._num_bins}, min={self.min}, max={self.max}, "
                f"count={self.count})")


Observer = MinMaxObserver | HistogramObserver


def observer_from_dict(d: Any) -> Observer:
    """Rebuild a MinMaxObserver or HistogramObserver from its `to_dict` state."""
    kind = d.get("kind") if isinstance(d, dict) else None
    if kind == MinMaxObserver.kind:
        return MinMaxObserver.from_dict(d)
    if kind == HistogramObserver.kind:
        return HistogramObserver.from_dict(d)
    raise DataError(f"observer state has unknown kind {kind!r} "
                    f"(expected '{MinMaxObserver.kind}' or '{HistogramObserver.kind}')")


def _expect_kind(d: Any, kind: str) -> None:
    if not isinstance(d, dict) or d.get("kind") != kind:
        got = d.get("kind") if isinstance(d, dict) else type(d).__name__
        raise DataError(f"observer state: expected kind '{kind}', got {got!r}")


def _check_min_max(name: str, lo: float | None, hi: float | None, count: int) -> None:
    if (lo is None) != (hi is None) or (lo is None) != (count == 0):
        raise DataError(f"tensor '{name}': min, max and count are inconsistent")
    if lo is not None and hi is not None and lo > hi:
        raise DataError(f"tensor '{name}': min {lo} is greater than max {hi}")
