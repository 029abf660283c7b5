"""Mode choice (QuantMode.AUTO): static, dynamic per-token and dynamic per-tensor quantization
measured side by side, one kept by a stated rule (docs/accuracy.md, "Mode choice").

Each candidate is measured on held-out calibration feeds (the last quarter of the feeds, cut
off before the static candidate is calibrated; all feeds when there are fewer than
`MIN_FEEDS`, which is said in the record) for its output SQNR against the float model, with
the accuracy budget's evaluator (passes.sensitivity.Evaluator: lowp's engine against ONNX
Runtime's float run), and timed on lowp's engine (the median of `TIMED_RUNS` runs of one
feed after one warm-up run, the candidates' runs interleaved). `pick` applies the rule.
The record (`ModeChoice`) is printed by the CLI and saved beside the model as
OUTPUT.mode.json.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from ..calib import CalibrationTable
from ..config import ActivationGranularity, Config, QuantMode
from ..errors import LowpError, UnsupportedOpError
from ..feeds import FeedSource
from ..inputs import InputSpec
from ..records import choice_dict, write_json
from ..runtime import Session
from .annotate import Annotation
from .choose import QuantPlan
from .fallback import evaluation_feeds
from .scored_outputs import record_lines
from .sensitivity import Built, Evaluator

FORMAT = "lowp.mode"
MIN_FEEDS = 4            # fewer calibration feeds: no held-out split
HELD_OUT_PART = 4        # the last 1/HELD_OUT_PART of the feeds are held out
TIMED_RUNS = 5
_SQNR_CAP_DB = 200.0     # an exact candidate counts as 200 dB (as sqnr_gain)

STATIC = "static"
PER_TOKEN = "dynamic per-token"
PER_TENSOR = "dynamic per-tensor"
# candidate name -> (mode, activation granularity); the order breaks ties
CANDIDATES: dict[str, tuple[QuantMode, ActivationGranularity]] = {
    STATIC: (QuantMode.STATIC, ActivationGranularity.PER_TENSOR),
    PER_TOKEN: (QuantMode.DYNAMIC, ActivationGranularity.PER_TOKEN),
    PER_TENSOR: (QuantMode.DYNAMIC, ActivationGranularity.PER_TENSOR),
}


def candidate_config(config: Config, name: str) -> Config:
    """`config` in the mode of candidate `name`; dynamic candidates drop the static-only
    rewrites (equalization, bias correction), and the static one the measured method's
    per-token step (passes.per_token_step): per-token is a candidate of its own here."""
    mode, granularity = CANDIDATES[name]
    if mode is QuantMode.STATIC:
        return dataclasses.replace(config, mode=mode, per_token_below_db=None)
    return dataclasses.replace(config, mode=mode, activation_granularity=granularity,
                               equalize=False, bias_correction=False)


def float_convolutions(model: onnx.ModelProto, config: Config) -> list[str]:
    """Conv/ConvTranspose nodes static mode may quantize and dynamic mode leaves float."""
    return [n.name for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose")
            and n.op_type in config.quantize_op_types and n.name not in config.exclude_nodes
            and n.op_type not in config.exclude_op_types]


@dataclass(frozen=True)
class ModeCandidate:
    """One measured candidate (SQNR and latency None when it could not be built or run)."""

    name: str
    sqnr_db: float | None
    latency_ms: float | None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.sqnr_db is not None and self.latency_ms is not None


@dataclass
class ModeChoice:
    """What mode AUTO measured and chose."""

    chosen: str                             # a key of CANDIDATES
    reason: str
    candidates: list[ModeCandidate] = field(default_factory=list)
    max_slowdown: float = 1.5
    tolerance_db: float = 1.0
    dynamic_layers: int = 0                 # MatMul/Gemm nodes dynamic mode quantizes
    samples: int = 0                        # evaluation samples
    data: str = ""                          # which feeds the candidates were measured on
    note: str = ""                          # a caveat (too few feeds, ...)
    engine: str = "lowp Session"
    seconds: float = 0.0
    scored_outputs: list[str] = field(default_factory=list)  # the outputs the SQNR is over
    outputs_left_out: dict[str, str] = field(default_factory=dict)   # output -> why

    def flags(self) -> str:
        """CLI options that give the chosen model without measuring again."""
        mode, granularity = CANDIDATES[self.chosen]
        if mode is QuantMode.STATIC:
            return "--mode static --per-token-below off"
        return f"--mode dynamic --activations {granularity.value}"

    def format(self) -> str:
        """Console lines: a table of the candidates, the choice and why."""
        if not self.candidates:
            return f"Mode auto: {self.chosen} ({self.reason})"
        lines = [f"Mode auto: {self.chosen} chosen ({self.reason})",
                 f"  output SQNR vs float on {self.samples} samples, {self.data}; latency: "
                 f"median of {TIMED_RUNS} runs of one feed on lowp's engine",
                 *record_lines(self.scored_outputs, self.outputs_left_out),
                 f"  {'candidate':<20} {'SQNR (dB)':>10} {'latency (ms)':>13}"]
        for c in self.candidates:
            mark = " <" if c.name == self.chosen else ""
            if c.ok:
                assert c.sqnr_db is not None and c.latency_ms is not None
                lines.append(f"  {c.name:<20} {c.sqnr_db:>10.2f} {c.latency_ms:>13.2f}{mark}")
            else:
                lines.append(f"  {c.name:<20} failed: {c.error}")
        if self.note:
            lines.append(f"  note: {self.note}")
        lines.append(f"  same model without measuring: {self.flags()} ({self.seconds:.1f} s)")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return choice_dict(self, FORMAT)

    def save(self, path: str | os.PathLike[str]) -> None:
        write_json(path, self.to_dict())


def pick(candidates: Sequence[ModeCandidate], max_slowdown: float, tolerance_db: float
         ) -> tuple[str, str]:
    """The chosen candidate's name and the reason in words.

    The rule: let B be the most accurate candidate (highest output SQNR, capped at 200 dB;
    ties go to the earlier one in CANDIDATES order) and F the fastest candidate (lowest
    latency, ties to the earlier) among those whose SQNR is at least SQNR(B) -
    `tolerance_db` (B itself is one of them). B is kept unless latency(B) >
    `max_slowdown` * latency(F); then F is kept. Candidates that failed are left out.

    Examples
    --------
    >>> c = [ModeCandidate("static", 20.0, 1.0), ModeCandidate("dynamic per-token", 35.0, 3.0)]
    >>> pick(c, 1.5, 1.0)[0]
    'dynamic per-token'
    >>> c[0] = ModeCandidate("static", 34.5, 1.0)
    >>> pick(c, 1.5, 1.0)[0]
    'static'
    """
    ok = [c for c in candidates if c.ok]
    if not ok:
        raise LowpError("mode auto: no candidate could be measured: "
                        + "; ".join(f"{c.name}: {c.error}" for c in candidates))

    def sqnr(c: ModeCandidate) -> float:
        assert c.sqnr_db is not None
        return min(c.sqnr_db, _SQNR_CAP_DB)

    def latency(c: ModeCandidate) -> float:
        assert c.latency_ms is not None
        return c.latency_ms

    best = max(ok, key=sqnr)                       # max/min keep the first of equals
    near = [c for c in ok if sqnr(c) >= sqnr(best) - tolerance_db]
    fastest = min(near, key=latency)
    if latency(best) > max_slowdown * latency(fastest):
        return fastest.name, (
            f"{best.name} is {sqnr(best) - sqnr(fastest):.2f} dB more accurate but "
            f"{latency(best) / latency(fastest):.2f}x slower, above {max_slowdown:g}x")
    if len(near) == 1:
        runner_up = max((sqnr(c) for c in ok if c is not best), default=None)
        return best.name, ("the only candidate" if runner_up is None else
                           f"most accurate by {sqnr(best) - runner_up:.2f} dB, no other "
                           f"candidate within {tolerance_db:g} dB")
    if fastest is best:
        return best.name, (f"most accurate and fastest of the {len(near)} candidates within "
                           f"{tolerance_db:g} dB")
    return best.name, (f"most accurate; {latency(best) / latency(fastest):.2f}x the latency "
                       f"of {fastest.name}, within {max_slowdown:g}x")


def split_feeds(feeds: FeedSource) -> tuple[FeedSource, FeedSource, str, str]:
    """(feeds to calibrate on, feeds to measure on, what those are, a note).

    The last 1/HELD_OUT_PART of the feeds (at least one) are held out; with fewer than
    MIN_FEEDS feeds, all are used for both and the note says so.
    """
    n = feeds.num_feeds
    if n is None:
        n = sum(1 for _ in feeds)
    if n < MIN_FEEDS:
        return feeds, feeds, "all calibration feeds", (
            f"only {n} calibration feed{'s' if n != 1 else ''} (fewer than {MIN_FEEDS}): "
            "the candidates are measured on the data the static candidate is calibrated "
            "on, which favours static; give more data or --eval for a held-out measurement")
    held = max(1, n // HELD_OUT_PART)
    return (feeds.slice(0, n - held), feeds.slice(n - held, n),
            f"held out (the last {held} of {n} calibration feeds)", "")


def latencies_ms(models: Mapping[str, onnx.ModelProto], feed: Mapping[str, np.ndarray]
                 ) -> dict[str, float]:
    """Median wall time in ms of `TIMED_RUNS` runs of `feed` on lowp's engine per model,
    after one warm-up run each. The runs are interleaved (one of each model per round) so
    that load from other processes falls on every candidate alike."""
    sessions = {name: Session(model) for name, model in models.items()}
    for session in sessions.values():
        session.run(dict(feed))
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(TIMED_RUNS):
        for name, session in sessions.items():
            start = time.perf_counter()
            session.run(dict(feed))
            times[name].append(1000.0 * (time.perf_counter() - start))
    return {name: float(statistics.median(t)) for name, t in times.items()}


def measure(float_model: onnx.ModelProto, models: Mapping[str, onnx.ModelProto | str],
            evaluation: FeedSource, calib: FeedSource, inputs: list[InputSpec],
            config: Config) -> tuple[list[ModeCandidate], int]:
    """Output SQNR (the minimum over the outputs scored, Config.score_outputs) and latency
    of each model against `float_model`, on the first `config.fallback_samples` samples of
    `evaluation`; a value of `models` that is a string is the error that kept the candidate
    from being built.

    Returns the candidates in the order of `models` and the number of samples measured. An
    operator lowp's engine refuses in every candidate is the model's, not a candidate's:
    that UnsupportedOpError is raised as it is.
    """
    feeds = evaluation_feeds(evaluation, config.fallback_samples)
    evaluator = Evaluator(float_model, CalibrationTable(), feeds, calib, inputs, config)
    sqnr: dict[str, float] = {}
    errors: dict[str, str] = {}
    refusals: list[UnsupportedOpError] = []
    for name, model in models.items():
        if isinstance(model, str):
            errors[name] = model
            continue
        try:
            built = Built(model, Annotation(), QuantPlan(), candidate_config(config, name))
            sqnr[name] = evaluator.measure(built).min_sqnr_db
        except LowpError as e:
            refusals += [e] if isinstance(e, UnsupportedOpError) else []
            errors[name] = str(e).strip().splitlines()[0]
    if refusals and not sqnr:
        raise refusals[0]
    timed = {name: m for name, m in models.items() if name in sqnr and not isinstance(m, str)}
    latency = latencies_ms(timed, feeds[0])
    out = [ModeCandidate(name, sqnr[name], latency[name]) if name in sqnr
           else ModeCandidate(name, None, None, errors[name]) for name in models]
    return out, sum(_samples(f) for f in feeds)


def _samples(feed: Mapping[str, np.ndarray]) -> int:
    first = np.asarray(next(iter(feed.values())))
    return int(first.shape[0]) if first.ndim else 1
