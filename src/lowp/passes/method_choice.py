"""Range-method choice (CalibMethod.MEASURED, the default): one model per candidate range
method, each measured for its output SQNR against the float model on calibration data held
out from its ranges, the best kept (docs/accuracy.md, "The measured method choice").

The calibration feeds are cut into `FOLDS` folds (`folds`; sample-stacked data in fewer than
`MIN_FEEDS` feeds is re-cut into smaller feeds first); on each fold one calibration on the
other feeds gives the histograms, each method of `CANDIDATES` chooses its ranges from them
(`rechosen`, as `quantize_model(..., calib_table=...)` does), and each model is measured on
the held-out feeds with the accuracy budget's evaluator (`measure`: passes.sensitivity's
Evaluator, lowp's engine against ONNX Runtime's float run; the minimum SQNR over the float
outputs). `combine_folds` averages the folds, `pick` keeps the best; the pipeline then
quantizes on all the calibration data with that method, so the model equals the one
`Config(method=<chosen>)` gives. The record (`MethodChoice`) is printed by the CLI and saved
beside the model as OUTPUT.method.json.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import onnx

from ..calib import CalibrationTable, MinMaxObserver
from ..config import CalibMethod, Config
from ..errors import LowpError
from ..feeds import FeedSlice, FeedSource, FeedsWithout, StackedFeeds
from ..inputs import InputSpec
from ..records import choice_dict, write_json
from .annotate import Annotation
from .choose import QuantPlan
from .fallback import evaluation_feeds
from .mode_choice import HELD_OUT_PART, MIN_FEEDS, _samples
from .sensitivity import Built, Evaluator

FORMAT = "lowp.method"
_SQNR_CAP_DB = 200.0     # an exact candidate counts as 200 dB (as mode_choice)
FOLDS = 2                # every calibration feed is held out once, in one of 2 folds

# The fixed range methods measured, in the order that breaks ties (minmax first: the
# method of every lowp release before the choice). Left out (docs/accuracy.md, "The
# measured method choice"): AUTO (per tensor), which lost to the best fixed method on 17 of
# 23 corpus models, and entropy, far worst on most models, best only on two where every
# quantizer is below 10 dB, and two thirds of the choice's time on the demo model.
CANDIDATES: tuple[CalibMethod, ...] = (CalibMethod.MINMAX, CalibMethod.PERCENTILE,
                                       CalibMethod.MSE)


@dataclass(frozen=True)
class MethodCandidate:
    """One measured range method (SQNR None when its model could not be built or run)."""

    method: str
    sqnr_db: float | None                   # the mean over the folds
    error: str = ""
    folds_db: tuple[float, ...] = ()        # each fold's output SQNR

    @property
    def ok(self) -> bool:
        return self.sqnr_db is not None


@dataclass
class MethodChoice:
    """What the measured method choice measured and kept."""

    chosen: str                             # a CalibMethod value
    reason: str
    candidates: list[MethodCandidate] = field(default_factory=list)
    samples: int = 0                        # held-out samples measured
    data: str = ""                          # which feeds the candidates were measured on
    note: str = ""                          # a caveat (nothing held out, ...)
    engine: str = "lowp Session"
    seconds: float = 0.0

    def flags(self) -> str:
        """The CLI option that gives the chosen model without measuring again."""
        return f"--method {self.chosen}"

    def format(self) -> str:
        """Console lines: a table of the candidates, the choice and why."""
        lines = [f"Range method: {self.chosen} chosen ({self.reason})",
                 f"  output SQNR vs float on {self.samples} held-out samples, {self.data}",
                 f"  {'method':<12} {'SQNR (dB)':>10}  per fold"]
        for c in self.candidates:
            mark = " <" if c.method == self.chosen else ""
            if c.sqnr_db is not None:
                per_fold = " ".join(f"{v:.2f}" for v in c.folds_db)
                lines.append(f"  {c.method:<12} {c.sqnr_db:>10.2f}  {per_fold}{mark}")
            else:
                lines.append(f"  {c.method:<12} failed: {c.error}")
        if self.note:
            lines.append(f"  note: {self.note}")
        lines.append(f"  same model without measuring: {self.flags()} "
                     f"(the choice took {self.seconds:.1f} s)")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return choice_dict(self, FORMAT)

    def save(self, path: str | os.PathLike[str]) -> None:
        write_json(path, self.to_dict())


def pick(candidates: Sequence[MethodCandidate]) -> tuple[str, str]:
    """The chosen method and the reason in words: the highest output SQNR (capped at 200 dB;
    ties go to the earlier candidate in CANDIDATES order). Failed candidates are left out.

    Examples
    --------
    >>> pick([MethodCandidate("minmax", 20.0), MethodCandidate("mse", 23.5)])[0]
    'mse'
    >>> pick([MethodCandidate("minmax", 20.0), MethodCandidate("mse", 20.0)])[0]
    'minmax'
    """
    ok = [c for c in candidates if c.sqnr_db is not None]
    if not ok:
        raise LowpError("range method choice: no candidate could be measured: "
                        + "; ".join(f"{c.method}: {c.error}" for c in candidates))

    def sqnr(c: MethodCandidate) -> float:
        assert c.sqnr_db is not None
        return min(c.sqnr_db, _SQNR_CAP_DB)

    best = max(ok, key=sqnr)                       # max keeps the first of equals
    rest = [sqnr(c) for c in ok if c is not best]
    if not rest:
        return best.method, "the only candidate measured"
    return best.method, f"highest output SQNR, {sqnr(best) - max(rest):.2f} dB above the next"


@dataclass(frozen=True)
class Folds:
    """The (fit, held-out) pairs the candidates are measured on, what they are, a caveat."""

    pairs: list[tuple[FeedSource, FeedSource]]
    data: str
    note: str = ""


def folds(feeds: FeedSource, k: int = FOLDS) -> Folds:
    """`k` folds of the calibration feeds: fold i holds out the i-th of k equal runs of feeds
    and calibrates on the rest, so every feed is held out once.

    Sample-stacked data in fewer than MIN_FEEDS feeds, whose model does not fix the batch
    size, is re-cut first into feeds of 1/HELD_OUT_PART of the samples (rounded down, at
    least 1). With fewer than `k` feeds even so, the one pair is (all, all) and the note
    says that the measurement is not held out.
    """
    n = feeds.num_feeds
    if n is None:
        n = sum(1 for _ in feeds)
    unit = "feeds"
    if n < MIN_FEEDS and isinstance(feeds, StackedFeeds) and not feeds.fixed_batch:
        samples = feeds.num_samples
        if samples is None:
            samples = sum(int(next(iter(f.values())).shape[0]) for f in feeds)
        if samples >= MIN_FEEDS:
            feeds = feeds.rebatched(max(1, samples // HELD_OUT_PART), num_samples=samples)
            n, unit = feeds.num_feeds or 0, f"feeds of {feeds.feed_size} samples"
    if n < k:
        return Folds([(feeds, feeds)], "all calibration feeds", (
            f"only {n} calibration feed{'s' if n != 1 else ''} that cannot be cut in {k}: "
            "the methods are measured on the data their ranges come from, which favours "
            "minmax; give more data for a held-out measurement"))
    bounds = [(i * n // k, (i + 1) * n // k) for i in range(k)]
    return Folds([(FeedsWithout(feeds, lo, hi), FeedSlice(feeds, lo, hi))
                  for lo, hi in bounds],
                 f"{k}-fold on the calibration data ({n} {unit}; each fold calibrated on the "
                 "others)")


def rechosen(histograms: CalibrationTable, method: CalibMethod, config: Config
              ) -> CalibrationTable:
    """A copy of a histogram table with the ranges `method` chooses (constants keep their
    exact range; activations are unsigned when the target's are)."""
    table = CalibrationTable.from_dict(histograms.to_dict())
    exact = {n for n, obs in table.items() if isinstance(obs, MinMaxObserver)}
    unsigned = (set() if config.resolved_target().activation_qtype.signed
                else set(table) - exact)
    table.choose_ranges(method, num_quantized_bins=config.num_quantized_bins,
                        percentile=config.percentile, unsigned=unsigned, exact=exact)
    return table


def measure(float_model: onnx.ModelProto,
                     models: Mapping[CalibMethod, onnx.ModelProto | str],
                     evaluation: FeedSource, fit: FeedSource, inputs: list[InputSpec],
                     config: Config) -> tuple[list[MethodCandidate], int]:
    """Each model's output SQNR (the minimum over float outputs) against `float_model` on
    the first `config.fallback_samples` samples of `evaluation`, on lowp's engine; a value
    of `models` that is a string is the error that kept that model from being built."""
    feeds = evaluation_feeds(evaluation, config.fallback_samples)
    evaluator = Evaluator(float_model, CalibrationTable(), feeds, fit, inputs, config)
    out: list[MethodCandidate] = []
    for method, model in models.items():
        if isinstance(model, str):
            out.append(MethodCandidate(method.value, None, model))
            continue
        try:
            built = Built(model, Annotation(), QuantPlan(), config)
            out.append(MethodCandidate(method.value, evaluator.measure(built).min_sqnr_db))
        except LowpError as e:
            out.append(MethodCandidate(method.value, None, str(e).strip().splitlines()[0]))
    order = {m.value: i for i, m in enumerate(CANDIDATES)}
    out.sort(key=lambda c: order[c.method])
    return out, sum(_samples(f) for f in feeds)


def combine_folds(per_fold: Sequence[Sequence[MethodCandidate]]) -> list[MethodCandidate]:
    """One candidate per method: the mean of its SQNR over the folds (each fold's value
    capped at 200 dB), failed when it failed on any fold (with that fold's error).

    Examples
    --------
    >>> a = [MethodCandidate("minmax", 20.0), MethodCandidate("mse", 30.0)]
    >>> b = [MethodCandidate("minmax", 24.0), MethodCandidate("mse", None, "boom")]
    >>> [(c.method, c.sqnr_db, c.error) for c in combine_folds([a, b])]
    [('minmax', 22.0, ''), ('mse', None, 'boom')]
    """
    out = []
    for same in zip(*per_fold, strict=True):
        failed = next((c for c in same if c.sqnr_db is None), None)
        if failed is not None:
            out.append(MethodCandidate(same[0].method, None, failed.error))
            continue
        values = tuple(min(c.sqnr_db, _SQNR_CAP_DB) for c in same if c.sqnr_db is not None)
        out.append(MethodCandidate(same[0].method, sum(values) / len(values), "", values))
    return out
