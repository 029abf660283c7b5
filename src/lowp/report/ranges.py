"""Per tensor: the activation histogram, the range calibration chose, and the range every
other method would have chosen from the same histogram, with each range's error."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..calib.methods import AUTO_CANDIDATES, choose_range, range_error
from ..calib.observers import HistogramObserver, MinMaxObserver
from ..calib.table import CalibrationTable
from ..config import CalibMethod
from ..errors import LowpError

# Bins of the histograms the report collects itself (when calibration kept min/max only).
REPORT_BINS = 2048


@dataclass(frozen=True)
class RangeChoice:
    """How one tensor's range was chosen, and what the alternatives were.

    Attributes
    ----------
    counts, edges
        The histogram drawn (counts and len(counts) + 1 edges).
    source
        "calibration" (the histogram the range was chosen from) or "report samples" (a
        histogram of the samples the report ran on, calibration having kept min/max only).
    method
        The method that set the range ("minmax", ...; for AUTO, the candidate it kept).
    chosen
        The range calibration recorded for the tensor.
    candidates
        Method name -> (lo, hi) that method gives on this histogram.
    errors
        Method name -> mean squared error per element of quantizing the histogram on that
        range's grid (`lowp.calib.methods.range_error`; recorded by AUTO, else computed).
    why
        One sentence: why this range.
    """

    counts: np.ndarray
    edges: np.ndarray
    source: str
    method: str
    chosen: tuple[float, float]
    candidates: dict[str, tuple[float, float]]
    errors: dict[str, float]
    why: str


def report_histogram(name: str, table: CalibrationTable | None, key: str | None,
                     first: np.ndarray) -> HistogramObserver:
    """An empty histogram for the report's own samples of `name` (its bins follow the
    values it is given; `table`, `key` and `first` are not needed any more)."""
    del table, key, first
    return HistogramObserver(name, REPORT_BINS)


def range_choice(table: CalibrationTable | None, key: str | None,
                 observed: HistogramObserver | None, *, unsigned: bool = False
                 ) -> RangeChoice | None:
    """The range record of one tensor: `key` is its name in the calibration table (the
    tensor whose qparams it uses), `observed` the report's own histogram of its values."""
    stats = table[key] if table is not None and key is not None and key in table else None
    hist: HistogramObserver | None
    if isinstance(stats, HistogramObserver):
        hist, source = stats, "calibration"
    else:
        hist, source = observed, "report samples"
    if hist is None or hist.is_empty:
        return None
    settings = table.settings if table is not None else {}
    steps = int(settings.get("num_quantized_bins", 255))
    percentile = float(settings.get("percentile", 99.99))
    candidates: dict[str, tuple[float, float]] = {}
    errors: dict[str, float] = {}
    for m in AUTO_CANDIDATES:
        try:
            rng = choose_range(hist, m, num_quantized_bins=steps, percentile=percentile,
                               unsigned=unsigned)
        except LowpError:
            continue
        candidates[m.value] = rng
        errors[m.value] = range_error(hist.counts, hist.edges, *rng, steps,
                                      exact_zeros=hist.zeros)
    chosen = (table.ranges.get(key) if table is not None and key is not None else None)
    choice = table.choices.get(key) if table is not None and key is not None else None
    method = str(settings.get("method", "minmax"))
    if choice is not None:
        method = choice.method.value
        errors.update(choice.errors)
        why = (f"AUTO kept {method}: the least quantization error of the candidates on "
               "the calibration histogram" if choice.errors else
               "AUTO kept min/max: min/max statistics only (a constant) or one value")
    elif isinstance(stats, MinMaxObserver) and method != CalibMethod.MINMAX.value:
        method, why = "minmax", "a constant of the graph: its exact [min, max]"
    else:
        why = f"--method {method}"
    if chosen is None:
        chosen = (hist.min, hist.max)
        why = "no calibrated range recorded: the observed [min, max] is shown"
    return RangeChoice(np.asarray(hist.counts), hist.edges, source, method, chosen,
                       candidates, errors, why)


def rebin(counts: np.ndarray, edges: np.ndarray, lo: float, hi: float,
          bars: int = 120) -> tuple[np.ndarray, np.ndarray]:
    """The histogram cut to the bins that overlap [lo, hi] and summed into at most `bars`
    bars of whole bins: (counts, edges)."""
    first = min(len(counts) - 1, max(0, int(np.searchsorted(edges, lo, side="right")) - 1))
    last = min(len(counts), max(first + 1, int(np.searchsorted(edges, hi, side="left"))))
    c, e = counts[first:last], edges[first:last + 1]
    group = max(1, -(-len(c) // bars))
    pad = (-len(c)) % group
    summed = np.concatenate([c, np.zeros(pad, c.dtype)]).reshape(-1, group).sum(axis=1)
    return summed, np.append(e[:-1][::group], e[-1])    # the last group ends at the last edge


def ordered_methods(candidates: Mapping[str, object]) -> list[str]:
    """Method names in AUTO's order (ties go to the earlier)."""
    return [m.value for m in AUTO_CANDIDATES if m.value in candidates]
