"""Calibration observers: streaming min/max and fixed-edge histograms that merge exactly.

An observer has two jobs: `update` with a batch, and hand its statistics to a range method
(`lowp.calib.methods`). Observers never keep batches; memory is bounded by the histogram.
Statistics are integers or exact min/max values, so `merge` is exact, associative and
commutative, and a map (per shard) + reduce (merge) equals one pass over all data.
See docs/calibration.md.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import DataError, QuantizationError
from . import scan

# Bin budget of a histogram's symmetric range [-amax, amax]: 8192 to 16384 bins over it.
DEFAULT_NUM_BINS = 16384
# Version of HistogramObserver.to_dict; 1 was the fixed-edge histogram of two passes.
HISTOGRAM_VERSION = 2
# Width exponent of a histogram that has seen only zeros (any value would do).
ZERO_EXPONENT = -200
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
    """Running exact minimum and maximum of a tensor (method minmax).

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
        """max(|min|, |max|) of the values seen."""
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
    """Histogram of power-of-two bins aligned at zero, built in one pass (no prior min/max).

    Bin k holds the values of [k w, (k+1) w) with w = 2^q: its index is floor(x * 2^-q),
    which is exact in float64 for every float32 x (a power-of-two scaling). The width
    follows the data: q is the least integer with amax * 2^-q < num_bins / 2, where amax is
    max(|min|, |max|) of everything seen, so [-amax, amax] spans from num_bins / 2 to
    num_bins bins. When a batch widens the range past the budget,
    the counts are coarsened exactly (bin k -> floor(k / 2^d)): a bin of width 2^q' is the
    union of 2^d bins of width 2^q. Only the bins from floor(min / w) to floor(max / w) are
    stored. The state is therefore a function of the final min, max and the multiset of
    values only, whatever the order of the batches or their split into shards, and `merge`
    is exact (integer counts). See docs/calibration.md, "One-pass histograms".

    `counts` and `edges` give the range methods (`lowp.calib.methods`) the symmetric view:
    2 K bins from -K w to K w, zero the middle edge.

    Parameters
    ----------
    name
        Tensor name.
    num_bins
        Bin budget of the symmetric range [-amax, amax] (16384 by default: 8192 to 16384
        bins over it, against 8001 fixed bins before).

    Examples
    --------
    >>> obs = HistogramObserver("x", num_bins=8)
    >>> obs.update(np.array([-2.5, 0.0, 0.4, 1.0, 2.5], np.float32))
    >>> obs.width, obs.first, obs.stored_counts.tolist()
    (1.0, -3, [1, 0, 0, 2, 1, 1])
    >>> obs.counts.tolist(), obs.edges.tolist()
    ([1, 0, 0, 2, 1, 1], [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0])
    """

    kind = "histogram"
    version = HISTOGRAM_VERSION

    def __init__(self, name: str, num_bins: int = DEFAULT_NUM_BINS) -> None:
        if isinstance(num_bins, bool) or not isinstance(num_bins, (int, np.integer)) \
                or num_bins < 4:
            raise QuantizationError(f"tensor '{name}': num_bins (the histogram's bin budget) "
                                    f"must be an integer >= 4, got {num_bins}")
        self._name = name
        self._budget = int(num_bins)
        self._q: int | None = None
        self._first = 0
        self._counts = np.zeros(0, dtype=np.int64)
        self._min: float | None = None
        self._max: float | None = None
        self._zeros = 0

    @property
    def num_bins(self) -> int:
        """The bin budget of the symmetric range."""
        return self._budget

    @property
    def exponent(self) -> int | None:
        """q of the bin width 2^q (None before any data)."""
        return self._q

    @property
    def width(self) -> float:
        """Bin width 2^q (0.0 before any data)."""
        return 0.0 if self._q is None else math.ldexp(1.0, self._q)

    @property
    def first(self) -> int:
        """Index k of the first stored bin [k w, (k+1) w)."""
        return self._first

    @property
    def stored_counts(self) -> np.ndarray:
        """Counts of the stored bins first .. first + len - 1 (int64, read-only view)."""
        v = self._counts.view()
        v.flags.writeable = False
        return v

    @property
    def amax(self) -> float:
        """max(|min|, |max|) of the values seen (0.0 before any data)."""
        if self._min is None or self._max is None:
            return 0.0
        return max(abs(self._min), abs(self._max))

    def _half(self) -> int:
        """K of the symmetric view: bins -K .. K - 1 cover every stored bin."""
        if self._q is None:
            return 0
        return max(-self._first, self._first + len(self._counts), 1)

    @property
    def counts(self) -> np.ndarray:
        """Counts of the symmetric view: 2 K bins, bin j = [(j - K) w, (j - K + 1) w)."""
        half = self._half()
        out = np.zeros(2 * half, dtype=np.int64)
        start = half + self._first
        out[start:start + len(self._counts)] = self._counts
        return out

    @property
    def edges(self) -> np.ndarray:
        """Edges of the symmetric view: 2 K + 1 exact values k w, k = -K .. K (float64)."""
        half = self._half()
        return np.ldexp(np.arange(-half, half + 1, dtype=np.float64), self._q or 0)

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
        """Bin of each element in the stored bins: floor(x * 2^-q) - first, clamped (the
        numpy reference of the native scan; x * 2^-q is exact for float32 x, and for
        float64 x unless it falls below float64's normal range)."""
        if self._q is None:
            raise DataError(f"tensor '{self._name}': no bins before the first batch")
        k = np.floor(np.ldexp(np.asarray(x, dtype=np.float64), -self._q))
        return (np.clip(k, self._first, self._first + len(self._counts) - 1)
                - self._first).astype(np.intp)

    def _fit(self, lo: float, hi: float) -> None:
        """Widen min/max to [lo, hi] and lay the bins out for them (coarsening exactly)."""
        lo = lo if self._min is None else min(self._min, lo)
        hi = hi if self._max is None else max(self._max, hi)
        q, first, n = bin_layout(lo, hi, self._budget)
        self._counts = _relayout(self._counts, self._q, self._first, q, first, n)
        self._q, self._first = q, first
        self._min, self._max = lo, hi

    def update(self, x: np.ndarray) -> None:
        """Add one batch; NaN or Inf raises DataError naming the tensor (state untouched).

        A float32 batch is binned, counted and its min/max found in one native pass
        (`lowp.calib.scan`) when its values lie within the min/max seen so far; otherwise
        the bins are widened for the min/max that pass found, and a second pass bins it
        (the first batch: a min/max pass, then the binning pass). Other dtypes and batches
        holding NaN or Inf run the numpy reference, with the same counts.
        """
        x = _check_batch(self._name, x)
        if x.size == 0:
            return
        found = self._bin_native(x) if self._q is not None else None
        if found is True:
            return
        lo, hi = found if isinstance(found, tuple) else _batch_min_max(self._name, x)
        self._fit(lo, hi)
        if self._bin_native(x) is True:
            return
        flat = x.reshape(-1)
        for start in range(0, flat.size, _CHUNK):
            part = flat[start:start + _CHUNK]
            self._counts += np.bincount(self.bin_index(part), minlength=len(self._counts))
            self._zeros += int(np.count_nonzero(part == 0))

    def _bin_native(self, x: np.ndarray) -> bool | tuple[float, float] | None:
        """Bin `x` natively if it lies within [min, max] seen: True; else the state is left
        as it is and the result is the batch's (min, max), or None when the reference must
        run."""
        assert self._q is not None and self._min is not None and self._max is not None
        found = scan.histogram(x, self._counts, self._q, self._first, self._min, self._max)
        if found is None:
            return None
        added, lo, hi, zeros = found
        if not added:
            return lo, hi
        self._zeros += zeros
        return True

    def merge(self, other: HistogramObserver) -> HistogramObserver:
        """A new observer equal to one pass over both inputs (exact integer counts).

        Both must describe the same tensor with the same bin budget.
        """
        if not isinstance(other, HistogramObserver):
            raise DataError(f"tensor '{self._name}': cannot merge HistogramObserver with "
                            f"{type(other).__name__}")
        if other.name != self._name:
            raise DataError(f"cannot merge statistics of tensor '{self._name}' with "
                            f"those of tensor '{other.name}'")
        if other.num_bins != self._budget:
            raise DataError(f"tensor '{self._name}': histograms have different bin budgets "
                            f"({self._budget} vs {other.num_bins})")
        out = HistogramObserver(self._name, self._budget)
        for part in (self, other):
            if part._min is None or part._max is None:
                continue
            out._fit(part._min, part._max)
        for part in (self, other):
            if part._q is None or out._q is None:
                continue
            out._counts += _relayout(part._counts, part._q, part._first, out._q,
                                     out._first, len(out._counts))
            out._zeros += part._zeros
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly state (version 2); `counts` is the list of stored bins."""
        return {"kind": self.kind, "version": self.version, "name": self._name,
                "num_bins": self._budget, "exponent": self._q, "first": self._first,
                "min": self._min, "max": self._max, "zeros": self._zeros,
                "counts": self._counts.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HistogramObserver:
        """Rebuild an observer from `to_dict` output; malformed state, or the state of
        another version (version 1: fixed edges over [-amax, amax]), raises DataError."""
        _expect_kind(d, cls.kind)
        name = _str(d.get("name"), "name")
        version = d.get("version", 1)
        if version != cls.version:
            raise DataError(
                f"tensor '{name}': histogram state of version {version!r}"
                + (" (fixed edges over [-amax, amax], written before lowp's one-pass "
                   "histograms)" if version == 1 else "")
                + f"; this lowp reads version {cls.version}: calibrate again")
        num_bins = _int(d.get("num_bins"), "num_bins")
        try:
            obs = cls(name, num_bins)
        except QuantizationError as exc:
            raise DataError(str(exc)) from exc
        obs._min = _opt_float(d.get("min"), "min")
        obs._max = _opt_float(d.get("max"), "max")
        raw = d.get("counts")
        counts = np.asarray(raw if isinstance(raw, list) else [None])
        if counts.ndim != 1 or (counts.size and counts.dtype.kind not in "iu"):
            raise DataError(f"tensor '{name}': 'counts' must be a list of integers")
        if np.any(counts < 0):
            raise DataError(f"tensor '{name}': histogram counts must be non-negative")
        obs._zeros = _int(d.get("zeros", 0), "zeros")
        _check_min_max(name, obs._min, obs._max, int(counts.sum()))
        if obs._min is not None and obs._max is not None:
            layout = bin_layout(obs._min, obs._max, num_bins)
            got = (d.get("exponent"), d.get("first"), counts.size)
            if got != layout:
                raise DataError(f"tensor '{name}': histogram layout (exponent, first, bins) "
                                f"{got} does not match min {obs._min} and max {obs._max} "
                                f"(expected {layout})")
            obs._q, obs._first = layout[0], layout[1]
            obs._counts = counts.astype(np.int64)
            zero_bin = -obs._first
            if obs._zeros and not (0 <= zero_bin < counts.size
                                   and obs._zeros <= counts[zero_bin]):
                raise DataError(f"tensor '{name}': more zeros than counts in the zero bin")
        elif obs._zeros:
            raise DataError(f"tensor '{name}': zeros counted without data")
        return obs

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HistogramObserver):
            return NotImplemented
        return (self._name == other._name and self._budget == other._budget
                and self._q == other._q and self._first == other._first
                and self._min == other._min and self._max == other._max
                and self._zeros == other._zeros
                and np.array_equal(self._counts, other._counts))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"HistogramObserver(name={self._name!r}, num_bins={self._budget}, "
                f"width={self.width}, bins={len(self._counts)}, min={self.min}, "
                f"max={self.max}, count={self.count})")


def width_exponent(amax: float, num_bins: int) -> int:
    """q of the bin width: the least integer with amax * 2^-q < num_bins // 2.

    Every step is exact (frexp, ldexp), so q depends on amax only. amax = 0 (only zeros
    seen) gives ZERO_EXPONENT: every bin layout then has the single bin [0, w).
    """
    if amax == 0:
        return ZERO_EXPONENT
    half = num_bins // 2
    q = math.frexp(amax)[1] - math.frexp(half)[1]
    while math.ldexp(amax, -q) >= half:
        q += 1
    while math.ldexp(amax, -(q - 1)) < half:
        q -= 1
    return q


def bin_layout(lo: float, hi: float, num_bins: int) -> tuple[int, int, int]:
    """(q, first, n): the bins of width 2^q from floor(lo 2^-q) to floor(hi 2^-q)."""
    q = width_exponent(max(abs(lo), abs(hi)), num_bins)
    first = math.floor(math.ldexp(lo, -q))
    return q, first, math.floor(math.ldexp(hi, -q)) - first + 1


def _relayout(counts: np.ndarray, q: int | None, first: int, new_q: int, new_first: int,
              n: int) -> np.ndarray:
    """`counts` of bins first.. at width 2^q as n bins new_first.. at width 2^new_q >= 2^q:
    bin k goes to k >> (new_q - q) (floor division by a power of two), counts summed."""
    out = np.zeros(n, dtype=np.int64)
    if q is None or counts.size == 0:
        return out
    if new_q < q:
        raise DataError(f"histogram bins cannot get finer (2^{q} -> 2^{new_q})")
    shift = min(new_q - q, 63)
    k = np.right_shift(np.arange(first, first + counts.size, dtype=np.int64), shift)
    idx = k - new_first
    if idx[0] < 0 or idx[-1] >= n:
        raise DataError("histogram bins fall outside the new layout")
    starts = np.flatnonzero(np.concatenate([[True], idx[1:] != idx[:-1]]))
    out[idx[starts]] += np.add.reduceat(counts, starts)
    return out


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
