"""Range selection from calibration statistics: minmax, entropy (KL), percentile, mse, auto.

Every method reads a histogram symmetric about zero (see observers.py) and returns a
real range (lo, hi); `choose_range` is the single entry point used by the pipeline. AUTO
picks, per tensor, the candidate range whose quantization error on the histogram is least
(`auto_choice`). The formulas are derived in docs/calibration.md and cited here as (Cn);
AUTO's error estimate is (A1) of docs/accuracy.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..config import CalibMethod
from ..errors import DataError, QuantizationError
from .observers import HistogramObserver, MinMaxObserver

# Smoothing constant of MXNet's _smooth_distribution (and TensorRT's calibrator).
KL_EPS = 1e-4
# Interior terms of the smoothed entropy are summed with a series in e/p (C6); candidates
# where e/p exceeds this ratio are evaluated directly instead.
_SERIES_MAX_RATIO = 0.5
_SERIES_MAX_TERMS = 64
# Truncation error of the series, relative to the total count (well below float64 noise of
# the divergence values).
_SERIES_TOL = 1e-17
# Elements per block of the (candidates, groups) temporaries of kl_divergences.
_BLOCK_ELEMENTS = 1 << 15


def _as_hist(hist: np.ndarray, *, symmetric: bool) -> np.ndarray:
    h = np.asarray(hist, dtype=np.float64)
    if h.ndim != 1 or h.size == 0:
        raise DataError(f"histogram must be a non-empty 1-d array, got shape {h.shape}")
    if not np.all(np.isfinite(h)) or np.any(h < 0):
        raise DataError("histogram counts must be finite and non-negative")
    return h


def _windows(num_bins: int, q_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, start, stop) of the entropy candidates of a symmetric histogram (C1).

    With an odd number of bins zero is the centre of the middle bin and candidate i covers
    the 2 i + 1 bins around it; with an even number zero is the middle edge and candidate i
    covers the 2 i bins around it (HistogramObserver's bins). Either way the window holds
    at least q_bins bins and grows up to the whole histogram.
    """
    c = num_bins % 2
    mid = num_bins // 2
    i = np.arange((q_bins - c + 1) // 2, mid + 1, dtype=np.int64)
    return i, mid - i, mid + i + c


def _as_edges(edges: np.ndarray, num_bins: int) -> np.ndarray:
    e = np.asarray(edges, dtype=np.float64)
    if e.shape != (num_bins + 1,):
        raise DataError(f"histogram of {num_bins} bins needs {num_bins + 1} edges, "
                        f"got shape {e.shape}")
    if not np.all(np.isfinite(e)) or np.any(np.diff(e) < 0):
        raise DataError("histogram edges must be finite and non-decreasing")
    return e


def _check_levels(num_quantized_bins: int) -> int:
    if isinstance(num_quantized_bins, bool) or int(num_quantized_bins) != num_quantized_bins \
            or num_quantized_bins < 2:
        raise QuantizationError(f"num_quantized_bins must be an integer >= 2, "
                                f"got {num_quantized_bins}")
    return int(num_quantized_bins)


# --- entropy (KL divergence) ------------------------------------------------------------------

def _xlogx(x: np.ndarray) -> np.ndarray:
    """x * log(x) with 0 log 0 = 0."""
    safe = np.where(x > 0, x, 1.0)
    return np.where(x > 0, x * np.log(safe), 0.0)


def _smooth(p: np.ndarray) -> np.ndarray | None:
    """MXNet's _smooth_distribution (C3) in float64; None when it cannot be applied."""
    nz = p != 0
    nnz = int(np.count_nonzero(nz))
    if nnz == 0:
        return None
    eps1 = KL_EPS * (p.size - nnz) / nnz
    out = np.where(nz, p - eps1, KL_EPS)
    return out if np.all(out > 0) else None


def _kl_candidate(h: np.ndarray, start: int, stop: int, q_bins: int) -> float:
    """KL divergence of the candidate window h[start:stop], evaluated directly (C2)-(C5)."""
    sliced = h[start:stop]
    p = sliced.copy()
    p[0] += h[:start].sum()
    p[-1] += h[stop:].sum()
    m = p.size // q_bins
    starts = np.arange(q_bins) * m
    sizes = np.diff(np.append(starts, p.size))          # the last group takes the remainder
    nz = p != 0
    merged = np.add.reduceat(sliced, starts)            # outliers are not part of q (C4)
    norm = np.add.reduceat(nz.astype(np.int64), starts)
    per = np.where(norm > 0, merged / np.maximum(norm, 1), 0.0)
    q = np.where(nz, np.repeat(per, sizes), 0.0)
    ps, qs = _smooth(p), _smooth(q)
    if ps is None or qs is None:
        return float("inf")
    pn, qn = ps / ps.sum(), qs / qs.sum()
    return float(np.sum(pn * np.log(pn / qn)))


def kl_divergences(hist: np.ndarray, num_quantized_bins: int = 255) -> np.ndarray:
    """KL divergence of every entropy-calibration candidate, vectorised over candidates.

    Candidate k covers the central 2*i + 1 bins (odd num_bins; 2*i for even num_bins), from
    the least i whose window holds num_quantized_bins bins up to i = num_bins // 2 (the
    whole histogram); its threshold is the upper edge of the window (`_windows`).
    The divergence follows MXNet's `_get_optimal_threshold` (TensorRT's entropy
    calibrator), see (C2)-(C7): the reference distribution p is the window with the
    outliers folded into its edge bins; q merges the window (without outliers) into
    `num_quantized_bins` groups (the last takes the remainder), spreads each group's count
    evenly over the bins where p is non-zero, and both are smoothed with eps = 1e-4.
    Computed in float64; a candidate whose smoothing would produce a non-positive entry
    (or whose q is empty) gets +inf.

    Parameters
    ----------
    hist
        Counts of a histogram symmetric about zero: zero the centre of the middle bin (odd
        number of bins) or the middle edge (even number, HistogramObserver).
    num_quantized_bins
        Quantization levels across [-t, t]: 255 for int8, 15 for int4.

    Returns
    -------
    numpy.ndarray
        float64 divergences, one per candidate (empty if num_bins < num_quantized_bins).
    """
    h = _as_hist(hist, symmetric=True)
    q_bins = _check_levels(num_quantized_bins)
    i, start, stop = _windows(h.size, q_bins)
    # Prefix sums: H[k] = sum(h[:k]), NZ[k] = number of non-zero bins in h[:k]. Every sum
    # below is a difference of H, so a sum over empty bins is exactly zero.
    nzmask = h != 0
    H = np.concatenate([[0.0], np.cumsum(h)])
    total = float(H[-1])
    if i.size == 0 or total <= 0:
        return np.full(i.size, np.inf)
    NZ = np.concatenate([[0], np.cumsum(nzmask, dtype=np.int64)])
    length = (stop - start).astype(np.float64)
    left, right = H[start], total - H[stop]
    p_first = h[start] + left                                # (C2) outliers in edge bins
    p_last = h[stop - 1] + right
    first_nz, last_nz = p_first != 0, p_last != 0
    nnz_inner = NZ[stop - 1] - NZ[start + 1]
    nnz_p = nnz_inner + first_nz + last_nz
    e_p = KL_EPS * (length - nnz_p) / nnz_p                  # (C3) eps1 of p

    # sum over non-zero p of (p - e_p) * log(q_smoothed), grouped (C7); in row blocks so
    # that the (candidates, q_bins) temporaries stay small.
    cross = np.empty(i.size)
    valid = np.empty(i.size, dtype=bool)
    first_fix = first_nz.astype(np.int64) - nzmask[start]
    last_fix = last_nz.astype(np.int64) - nzmask[stop - 1]
    rows = max(1, _BLOCK_ELEMENTS // (q_bins + 1))
    for r0 in range(0, i.size, rows):
        sl = slice(r0, r0 + rows)
        cross[sl], valid[sl] = _cross_entropy(H, NZ, start[sl], stop[sl], q_bins, left[sl],
                                              right[sl], first_fix[sl], last_fix[sl],
                                              e_p[sl])

    # sum over non-zero p of (p - e_p) log(p - e_p): edge bins directly, interior by (C6).
    edge_first, edge_last = p_first - e_p, p_last - e_p
    valid &= (~first_nz | (edge_first > 0)) & (~last_nz | (edge_last > 0))
    self_term = np.where(first_nz, _xlogx(edge_first), 0.0) + \
        np.where(last_nz, _xlogx(edge_last), 0.0)
    inner, direct = _inner_entropy(h, nzmask, start + 1, stop - 1, e_p, total)
    self_term += inner

    q_total = H[stop] - H[start]                             # sum(q) = window sum
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = (self_term - cross) / total + np.log(q_total / total)
    kl = np.where(valid, kl, np.inf)
    for k in np.flatnonzero(direct):                         # rare: e_p / p too large
        kl[k] = _kl_candidate(h, int(start[k]), int(stop[k]), q_bins)
    return kl


def _cross_entropy(H: np.ndarray, NZ: np.ndarray, start: np.ndarray, stop: np.ndarray,
                   q_bins: int, left: np.ndarray, right: np.ndarray, first_fix: np.ndarray,
                   last_fix: np.ndarray, e_p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """sum over non-zero p of (p - e_p) log(q_s) per candidate, and whether q_s is valid.

    Groups have shape (candidates, q_bins): group j spans bounds[:, j] .. bounds[:, j + 1].
    """
    length = (stop - start).astype(np.float64)
    m = (stop - start) // q_bins
    bounds = start[:, None] + np.arange(q_bins + 1)[None, :] * m[:, None]
    bounds[:, -1] = stop                                     # the last group takes the rest
    merged = H[bounds[:, 1:]] - H[bounds[:, :-1]]            # (C4) window sums, no outliers
    norm = NZ[bounds[:, 1:]] - NZ[bounds[:, :-1]]            # non-zero bins of p per group
    norm[:, 0] += first_fix
    norm[:, -1] += last_fix
    has_q = merged > 0
    nnz_q = np.sum(np.where(has_q, norm, 0), axis=1)
    e_q = KL_EPS * (length - nnz_q) / np.maximum(nnz_q, 1)  # (C3) eps1 of q
    q_val = merged / np.maximum(norm, 1) - e_q[:, None]      # (C5) smoothed q per group
    valid = (nnz_q > 0) & np.all(~has_q | (q_val > 0), axis=1)
    log_q = np.where(has_q, np.log(np.where(has_q & (q_val > 0), q_val, 1.0)),
                     np.log(KL_EPS))
    # p summed over the group is `merged` plus the outliers folded into the edge groups
    cross = np.sum((merged - e_p[:, None] * norm) * log_q, axis=1)
    cross += left * log_q[:, 0] + right * log_q[:, -1]
    return cross, valid


def _inner_entropy(h: np.ndarray, nzmask: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                   e: np.ndarray, total: float) -> tuple[np.ndarray, np.ndarray]:
    """sum of f(h[k] - e) over non-zero h[k], k in [lo, hi), f(x) = x log x, per candidate.

    Uses f(p - e) = f(p) - e (log p + 1) + sum_{n>=2} e^n / (n (n-1) p^(n-1))  (C6),
    each term a difference of prefix sums. Returns the sums and a mask of candidates whose
    ratio e / min(p) is too large for the series (to be evaluated directly).
    """
    hn = np.where(nzmask, h, 1.0)
    logh = np.where(nzmask, np.log(hn), 0.0)

    def window(v: np.ndarray) -> np.ndarray:
        c = np.concatenate([[0.0], np.cumsum(v)])
        return c[hi] - c[lo]

    nnz = window(nzmask.astype(np.float64))
    out = window(h * logh) - e * (window(logh) + nnz)
    # Windows are centred and nested, so min over window = running min over rings: ring j
    # is bins mid - j and mid + j (odd count) or mid - 1 - j and mid + j (even count).
    c = h.size % 2
    mid = h.size // 2
    hz = np.where(nzmask, h, np.inf)
    ring = np.minimum(hz[:mid + c][::-1], hz[mid:])
    ring_min = np.minimum.accumulate(ring)
    rings = (hi - lo + c) // 2                               # rings of the window [lo, hi)
    pmin = np.where(rings > 0, ring_min[np.maximum(rings, 1) - 1], np.inf)
    ratio = np.where(np.isfinite(pmin), e / np.where(np.isfinite(pmin), pmin, 1.0), 0.0)
    direct = ratio > _SERIES_MAX_RATIO
    r = np.where(direct, 0.0, ratio)
    ee = np.where(direct, 0.0, e)
    inv = np.where(nzmask, 1.0 / hn, 0.0)
    power = np.ones_like(h)
    e_pow = ee.copy()
    for n in range(2, _SERIES_MAX_TERMS + 1):
        power = power * inv                                  # p^-(n-1)
        e_pow = e_pow * ee                                   # e^n
        out += e_pow / (n * (n - 1)) * window(power)
        bound = ee * nnz * r ** n / (n * (n + 1))            # size of the next term
        if not np.any(bound > _SERIES_TOL * total):
            break
    else:
        direct |= ee * nnz * r ** _SERIES_MAX_TERMS > _SERIES_TOL * total
    return out, direct


def entropy_range(hist: np.ndarray, edges: np.ndarray,
                  num_quantized_bins: int = 255) -> tuple[float, float]:
    """Symmetric range (-t, t) minimising the KL divergence, as MXNet and TensorRT (C1)-(C7).

    Parameters
    ----------
    hist, edges
        Histogram symmetric about zero: zero the centre of the middle bin (odd number of
        bins) or the middle edge (even number, HistogramObserver).
    num_quantized_bins
        Quantization levels across [-t, t]: 255 for int8, 15 for int4.

    Returns
    -------
    tuple of float
        (-t, t) where t is the upper edge of the best window; the first minimum wins.
        (edges[0], edges[-1]) when there is no candidate.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = np.concatenate([rng.standard_normal(100_000), [-40.0, 40.0]])
    >>> hist, edges = np.histogram(x, bins=2001, range=(-40, 40))
    >>> lo, hi = entropy_range(hist, edges)
    >>> 2.0 < hi < 10.0 and lo == -hi
    True
    """
    h = _as_hist(hist, symmetric=True)
    e = _as_edges(edges, h.size)
    div = kl_divergences(h, num_quantized_bins)
    if div.size == 0 or not np.any(np.isfinite(div)):
        return float(e[0]), float(e[-1])
    best = int(np.argmin(div))
    t = float(e[_windows(h.size, _check_levels(num_quantized_bins))[2][best]])
    return -t, t


# --- percentile -------------------------------------------------------------------------------

def percentile_range(hist: np.ndarray, edges: np.ndarray,
                     percentile: float = 99.99) -> tuple[float, float]:
    """Range from the (100 - p) and p percentiles of a histogram (C8).

    The cumulative count is interpolated linearly inside a bin (values are taken as
    uniform within their bin).

    Parameters
    ----------
    hist, edges
        Any histogram (counts and num_bins + 1 edges).
    percentile
        p in [50, 100].

    Examples
    --------
    >>> percentile_range(np.array([0, 10, 10, 0]), np.array([-2.0, -1.0, 0.0, 1.0, 2.0]), 90)
    (-0.8, 0.8)
    """
    h = _as_hist(hist, symmetric=False)
    e = _as_edges(edges, h.size)
    p = float(percentile)
    if not 50.0 <= p <= 100.0:
        raise QuantizationError(f"percentile must be in [50, 100], got {percentile}")
    cum = np.cumsum(h)
    total = float(cum[-1])
    if total <= 0:
        raise DataError("percentile of an empty histogram")

    def value_at(target: float) -> float:
        if target >= total:
            last = int(np.flatnonzero(h)[-1])
            return float(e[last + 1])
        k = int(np.searchsorted(cum, target, side="right"))   # first bin with cum > target
        before = cum[k] - h[k]
        return float(e[k] + (target - before) / h[k] * (e[k + 1] - e[k]))

    lo = value_at(total * ((100.0 - p) / 100.0))
    hi = value_at(total * (p / 100.0))
    return lo, hi


# --- mse --------------------------------------------------------------------------------------

def mse_errors(hist: np.ndarray, edges: np.ndarray, num_quantized_bins: int = 255, *,
               exact_zeros: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Expected squared quantization error (summed over elements) per candidate threshold.

    Candidates t are the bin edges right of zero. With step d = 2 t / num_quantized_bins,
    a bin with centre c contributes count * (|c| - t)^2 if |c| > t (clipping) and
    count * d^2 / 12 otherwise (rounding); `exact_zeros` elements of the middle bin are
    exactly representable and cost nothing (C9).

    Returns
    -------
    tuple of numpy.ndarray
        (thresholds, errors), both float64.
    """
    h = _as_hist(hist, symmetric=True)
    e = _as_edges(edges, h.size)
    q_bins = _check_levels(num_quantized_bins)
    mid = h.size // 2
    centers = 0.5 * (e[:-1] + e[1:])
    a = np.abs(centers[mid:])                                # |c| of folded bins, ascending
    folded = h[mid:].copy()
    folded[h.size % 2:] += h[:mid][::-1]                     # odd: bin mid is zero's own
    t = e[mid + 1:]                                          # candidate i: bins 0..i inside

    def tail(v: np.ndarray) -> np.ndarray:                   # sum over bins j > i
        return np.concatenate([np.cumsum(v[::-1])[::-1][1:], [0.0]])

    s0, s1, s2 = tail(folded), tail(folded * a), tail(folded * a * a)
    clip = np.maximum(s2 - 2.0 * t * s1 + t * t * s0, 0.0)
    inside = np.maximum(float(h.sum()) - s0 - float(exact_zeros), 0.0)
    rounding = (2.0 * t / q_bins) ** 2 / 12.0 * inside
    return t, clip + rounding


def mse_range(hist: np.ndarray, edges: np.ndarray, num_quantized_bins: int = 255, *,
              exact_zeros: int = 0) -> tuple[float, float]:
    """Symmetric range (-t, t) minimising the expected quantization MSE (C9).

    Parameters
    ----------
    hist, edges
        Histogram symmetric about zero: zero the centre of the middle bin (odd number of
        bins) or the middle edge (even number, HistogramObserver).
    num_quantized_bins
        Quantization levels across [-t, t]: 255 for int8, 15 for int4.
    exact_zeros
        Number of elements exactly equal to zero (HistogramObserver.zeros).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.laplace(size=200_000)
    >>> amax = np.abs(x).max()
    >>> hist, edges = np.histogram(x, bins=4001, range=(-amax, amax))
    >>> lo, hi = mse_range(hist, edges, 15)      # 4 bits: clip hard
    >>> hi < 0.5 * amax and lo == -hi
    True
    """
    t, err = mse_errors(hist, edges, num_quantized_bins, exact_zeros=exact_zeros)
    best = float(t[int(np.argmin(err))])
    return -best, best


# --- auto: the candidate with the least quantization error -------------------------------------

# Candidates of CalibMethod.AUTO, in the order that breaks ties (the simplest range first).
AUTO_CANDIDATES: tuple[CalibMethod, ...] = (CalibMethod.MINMAX, CalibMethod.PERCENTILE,
                                            CalibMethod.ENTROPY, CalibMethod.MSE)


def range_error(hist: np.ndarray, edges: np.ndarray, lo: float, hi: float,
                num_quantized_bins: int = 255, *, exact_zeros: int = 0) -> float:
    """Mean squared error of quantizing a histogram's values on the grid of [lo, hi] (A1).

    The grid is the asymmetric one the range becomes (qparams (Q2), (Q4)): it spans
    [min(lo, 0), max(hi, 0)] in `num_quantized_bins` steps of d. A bin with centre c outside
    the grid costs count * (distance to the grid's end)^2 (clipping); inside, count * d^2 / 12
    (rounding), except the `exact_zeros` elements, which are exact.

    Parameters
    ----------
    hist, edges
        Any histogram (counts and num_bins + 1 edges).
    lo, hi
        The candidate range.
    num_quantized_bins
        Steps of the grid: 255 for 8 bits.
    exact_zeros
        Elements exactly equal to zero (HistogramObserver.zeros).

    Returns
    -------
    float
        The error per element (0.0 for an empty histogram).

    Examples
    --------
    >>> hist, edges = np.array([1, 0, 0, 1]), np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    >>> range_error(hist, edges, -1.5, 1.5, 3)       # both inside: d = 1, d^2 / 12
    0.08333333333333333
    >>> range_error(hist, edges, -0.5, 0.5, 2)       # both clipped by 1
    1.0
    """
    h = _as_hist(hist, symmetric=False)
    e = _as_edges(edges, h.size)
    steps = _check_levels(num_quantized_bins)
    total = float(h.sum())
    if total <= 0:
        return 0.0
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    centers = 0.5 * (e[:-1] + e[1:])
    clipped = np.maximum(centers - hi, 0.0) + np.maximum(lo - centers, 0.0)
    outside = clipped > 0
    inside = max(float(h[~outside].sum()) - float(exact_zeros), 0.0)
    step = (hi - lo) / steps
    return (float(np.sum(h * clipped ** 2)) + step * step / 12.0 * inside) / total


@dataclass(frozen=True)
class AutoChoice:
    """What CalibMethod.AUTO chose for one tensor and why.

    Attributes
    ----------
    method
        The candidate whose range was kept.
    errors
        Candidate method name -> its range's error per element (`range_error`); empty when
        there was nothing to choose (min/max statistics only, or a constant tensor).
    """

    method: CalibMethod
    errors: Mapping[str, float]

    def to_dict(self) -> dict[str, object]:
        return {"method": self.method.value, "errors": dict(self.errors)}

    @classmethod
    def from_dict(cls, d: object) -> AutoChoice:
        """Rebuild from `to_dict` output; anything else raises DataError."""
        if not isinstance(d, dict) or not isinstance(d.get("errors"), dict):
            raise DataError(f"auto choice must be an object with 'method' and 'errors', "
                            f"got {d!r}")
        try:
            method = CalibMethod(d.get("method"))
        except ValueError:
            raise DataError(f"auto choice: unknown method {d.get('method')!r}") from None
        errors = d["errors"]
        if not all(isinstance(k, str) and isinstance(v, (int, float))
                   and not isinstance(v, bool) for k, v in errors.items()):
            raise DataError(f"auto choice: 'errors' must map method names to numbers, "
                            f"got {errors!r}")
        return cls(method, {k: float(v) for k, v in errors.items()})


def auto_choice(stats: MinMaxObserver | HistogramObserver, *, num_quantized_bins: int = 255,
                percentile: float = 99.99, unsigned: bool = False
                ) -> tuple[tuple[float, float], AutoChoice]:
    """The range of the candidate method with the least `range_error`, and the record.

    Each of AUTO_CANDIDATES chooses its range (`choose_range`, same parameters); each range
    is scored by the error of quantizing the tensor's histogram on its grid; the least
    error wins, ties going to the earlier candidate. Min/max statistics (a constant
    tensor) or a tensor with one value keep their exact [min, max].

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = np.concatenate([rng.standard_normal(1_000_000), [60.0]])   # one far outlier
    >>> obs = HistogramObserver("x")
    >>> obs.update(x)
    >>> (lo, hi), choice = auto_choice(obs)
    >>> choice.method.value, hi < 10.0
    ('mse', True)
    """
    if stats.is_empty:
        raise DataError(f"tensor '{stats.name}': no calibration data observed")
    if not isinstance(stats, HistogramObserver) or stats.min == stats.max:
        return (stats.min, stats.max), AutoChoice(CalibMethod.MINMAX, {})
    steps = _check_levels(num_quantized_bins)
    hist, edges = stats.counts, stats.edges
    best: tuple[float, tuple[float, float], CalibMethod] | None = None
    errors: dict[str, float] = {}
    for method in AUTO_CANDIDATES:
        rng = choose_range(stats, method, num_quantized_bins=steps, percentile=percentile,
                           unsigned=unsigned)
        err = range_error(hist, edges, *rng, steps, exact_zeros=stats.zeros)
        errors[method.value] = err
        if best is None or err < best[0]:
            best = (err, rng, method)
    assert best is not None
    return best[1], AutoChoice(best[2], errors)


# --- entry point ------------------------------------------------------------------------------

def choose_range(stats: MinMaxObserver | HistogramObserver, method: CalibMethod, *,
                 num_quantized_bins: int = 255, percentile: float = 99.99,
                 unsigned: bool = False) -> tuple[float, float]:
    """Real range (lo, hi) of a tensor from its statistics, clipped to the observed [min, max].

    Parameters
    ----------
    stats
        MinMaxObserver (enough for MINMAX) or HistogramObserver.
    method
        CalibMethod.MINMAX, ENTROPY, PERCENTILE, MSE, or AUTO (`auto_choice`).
    num_quantized_bins
        Quantization levels across [-t, t] for ENTROPY and MSE: 255 for int8, 15 for int4.
    percentile
        p for PERCENTILE.
    unsigned
        The tensor is stored unsigned with an asymmetric range. If it is also non-negative,
        its levels all lie in [0, t], so ENTROPY and MSE use 2 * num_quantized_bins + 1
        levels across [-t, t] (as MXNet does for uint8).

    Returns
    -------
    tuple of float
        (lo, hi) with stats.min <= lo <= hi <= stats.max.

    Examples
    --------
    >>> obs = MinMaxObserver("x")
    >>> obs.update(np.array([-0.5, 2.0], np.float32))
    >>> choose_range(obs, CalibMethod.MINMAX)
    (-0.5, 2.0)
    """
    if stats.is_empty:
        raise DataError(f"tensor '{stats.name}': no calibration data observed")
    lo_obs, hi_obs = stats.min, stats.max
    method = CalibMethod(method)
    if method is CalibMethod.MEASURED:
        raise DataError(f"tensor '{stats.name}': method 'measured' chooses one of the fixed "
                        "methods by measuring whole quantized models (lowp quantize); a "
                        "calibration table needs a fixed method (minmax, entropy, "
                        "percentile, mse or auto)")
    if method is CalibMethod.MINMAX or lo_obs == hi_obs:
        return lo_obs, hi_obs
    if method is CalibMethod.AUTO:
        rng, _ = auto_choice(stats, num_quantized_bins=num_quantized_bins,
                             percentile=percentile, unsigned=unsigned)
        return rng
    if not isinstance(stats, HistogramObserver):
        raise DataError(f"tensor '{stats.name}': method '{method.value}' needs histogram "
                        "statistics, got min/max only")
    levels = _check_levels(num_quantized_bins)
    if unsigned and lo_obs >= 0:
        levels = 2 * levels + 1
    hist, edges = stats.counts, stats.edges
    if method is CalibMethod.ENTROPY:
        lo, hi = entropy_range(hist, edges, levels)
    elif method is CalibMethod.PERCENTILE:
        lo, hi = percentile_range(hist, edges, percentile)
    elif method is CalibMethod.MSE:
        lo, hi = mse_range(hist, edges, levels, exact_zeros=stats.zeros)
    else:  # pragma: no cover - every CalibMethod is handled above
        raise QuantizationError(f"unknown calibration method {method}")
    lo = min(max(lo, lo_obs), hi_obs)
    hi = min(max(hi, lo_obs), hi_obs)
    return float(lo), float(max(lo, hi))
