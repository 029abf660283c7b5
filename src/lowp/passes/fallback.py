"""Accuracy-budget fallback: move the layers that cost the most accuracy to 16 bits, then to
float, one at a time, until the model meets the budget (docs/accuracy.md, "Accuracy budget").

The budget is the model's output SQNR against the float model in dB, the minimum over the
outputs scored (`Config.accuracy_budget`, `Config.score_outputs`: by default the float
outputs but recurrent state, passes.scored_outputs), and/or a user metric that may drop at most
`Config.metric_tolerance` below its value on the float outputs. Candidates (single layers,
and op types as groups) are taken in the order of their measured sensitivity
(passes.sensitivity). Phase 1 moves each to 16 bits where the target accepts its 16-bit
form for that layer and its bias fits int32 (else to float); phase 2, if the budget is
still not met, moves the layers to float. Every move is measured and undone unless it
gains `_MIN_GAIN_DB`. The decisions are returned as a `FallbackResult`, which the CLI
saves as a JSON sidecar.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import re
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from tqdm import tqdm

from ..calib import CalibrationTable
from ..config import Config
from ..errors import DataError, QuantizationError
from ..inputs import InputSpec
from ..records import cli_word, write_json
from .sensitivity import (
    Built,
    Evaluator,
    LayerCost,
    Measurement,
    Metric,
    Precision,
    initial_precision,
    rounding_layers,
    saturated_bias,
    sensitivities,
    sqnr_gain,
)

FORMAT = "lowp.fallback"
_BLOCKERS = 5
_MIN_GAIN_DB = 0.01        # smallest SQNR gain for which a move is kept


class BudgetNotMetWarning(UserWarning):
    """The accuracy budget could not be met; the model is the closest lowp found."""


@dataclass(frozen=True)
class FallbackStep:
    """One measured move of one layer."""

    node: str
    op_type: str
    before: str                  # Precision values
    after: str
    sqnr_before_db: float
    sqnr_after_db: float
    metric_before: float | None = None
    metric_after: float | None = None
    kept: bool = True            # False: it did not help and was undone
    members: tuple[str, ...] = ()    # the layers moved, for a group ("all Mul")


@dataclass
class FallbackResult:
    """What the budget fallback measured and decided."""

    budget_db: float | None
    metric_name: str | None
    metric_reference: float | None          # the metric on the float outputs
    tolerance: float | None
    samples: int                            # evaluation samples
    engine: str                             # who ran the quantized variants
    initial: Measurement                    # the fully quantized model
    final: Measurement
    met: bool
    layers: list[LayerCost] = field(default_factory=list)   # sensitivity, measured first
    steps: list[FallbackStep] = field(default_factory=list)
    precisions: dict[str, str] = field(default_factory=dict)  # moved node -> Precision
    blockers: list[LayerCost] = field(default_factory=list)   # when not met
    unmeasured_quantized: int = 0           # quantized layers outside the candidates
    seconds: float = 0.0
    data: str = "calibration"               # whose samples: "calibration" or "held-out"
    method: str | None = None               # the range method the ranges were chosen with
    bias_correction: bool = False           # the variants were built with bias correction

    @property
    def sixteen_bit_nodes(self) -> list[str]:
        return [n for n, p in self.precisions.items() if p == Precision.INT16.value]

    @property
    def float_nodes(self) -> list[str]:
        return [n for n, p in self.precisions.items() if p == Precision.FLOAT.value]

    def goal(self) -> str:
        """The budget in words."""
        parts = []
        if self.budget_db is not None:
            parts.append(f"output SQNR >= {self.budget_db:g} dB")
        if self.metric_name is not None and self.metric_reference is not None:
            parts.append(f"{self.metric_name} >= {self.metric_reference:.6g} - "
                         f"{self.tolerance:g}")
        return " and ".join(parts)

    def cli_flags(self) -> str:
        """Options that give the same model without measuring again (added to the run's
        own options, with the same calibration table)."""
        flags = []
        if self.method is not None and (self.float_nodes or self.sixteen_bit_nodes):
            # a measured default (CalibMethod.MEASURED) could choose again otherwise
            flags.append(f"--method {self.method}")
        if self.float_nodes:
            flags.append("--exclude " + " ".join(cli_word(n) for n in self.float_nodes))
        if self.sixteen_bit_nodes:
            flags.append("--sixteen-bit " + " ".join(cli_word(n) for n in self.sixteen_bit_nodes))
        if self.bias_correction:
            # the measured default may have kept it; a fixed --method would not measure it
            flags.append("--bias-correction")
        return " ".join(flags)

    def format(self) -> str:
        """Console lines: the goal, what was moved, the result."""
        lines = [f"Accuracy budget: {self.goal()} (lowp engine vs float, {self.samples} "
                 f"{self.data} samples)",
                 f"  fully quantized: {_fmt_measure(self.initial, self.metric_name)}"]
        for i, s in enumerate(self.steps, 1):
            metric = (f", {self.metric_name} {s.metric_after:.6g}"
                      if s.metric_after is not None else "")
            lines.append(f"  {i}. {s.node} ({s.op_type}): {s.before} -> {s.after}: "
                         f"{_db(s.sqnr_before_db)} -> {_db(s.sqnr_after_db)}{metric}"
                         + ("" if s.kept else " (no gain: undone)"))
        lines.append(f"  final: {_fmt_measure(self.final, self.metric_name)}; "
                     f"{len(self.sixteen_bit_nodes)} layers 16-bit, {len(self.float_nodes)} "
                     f"float ({self.seconds:.1f} s)")
        flags = self.cli_flags()
        if flags:
            lines.append("  same model without measuring: " + (
                flags if len(flags) <= 240 else "the 'flags' of the .fallback.json record"))
        return "\n".join(lines)

    def warning(self) -> str:
        """One line saying why the budget is not met (empty when it is)."""
        if self.met:
            return ""
        if self.blockers:
            who = ", ".join(f"{b.node} ({b.op_type}, {_db(b.added_noise_db)})"
                            for b in self.blockers)
            why = f"the layers still quantized that add the most noise: {who}"
        elif self.unmeasured_quantized:
            why = "every measured layer is already float"
        else:
            why = ("no layer is quantized any more: the rest is lowp's float kernels against "
                   "ONNX Runtime's")
        return (f"accuracy budget not met ({self.goal()}): reached "
                f"{_fmt_measure(self.final, self.metric_name)}; {why}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["initial"] = _measure_dict(self.initial)
        d["final"] = _measure_dict(self.final)
        return {"format": FORMAT, "version": 1, **_json_safe(d),
                "flags": self.cli_flags()}

    def save(self, path: str | os.PathLike[str]) -> None:
        write_json(path, self.to_dict())


def wants_fallback(config: Config) -> bool:
    return config.accuracy_budget is not None or config.metric is not None


def fallback(float_model: onnx.ModelProto, table: CalibrationTable,
             feeds: Iterable[Mapping[str, np.ndarray]], inputs: list[InputSpec],
             config: Config, *, progress: bool = False,
             held_out: Iterable[Mapping[str, np.ndarray]] | None = None,
             input_means: Mapping[str, np.ndarray] | None = None
             ) -> tuple[Built, FallbackResult]:
    """Quantize under `config`, then move layers until the budget of `config` is met.

    The budget is measured on the first `config.fallback_samples` samples of `held_out`
    when given, else of the calibration `feeds`.

    Returns the final variant and the record of what was measured and moved. When the
    budget cannot be met (every candidate layer is float), the final variant is the last
    one measured and a `BudgetNotMetWarning` names the layers still costing the most.
    `input_means` turns on the bias correction in every variant (`choose`).
    """
    start = time.perf_counter()
    eval_feeds = evaluation_feeds(feeds if held_out is None else held_out,
                                  config.fallback_samples)
    evaluator = Evaluator(float_model, table, eval_feeds, feeds, inputs, config,
                          config.metric, progress, input_means)
    levels: dict[str, Precision] = {}
    base = evaluator.build(levels)
    initial = evaluator.measure(base)
    steps: list[FallbackStep] = []
    current, measure = base, initial
    # measured even when the budget is met already: the report shows which layers cost
    layers = sensitivities(evaluator, levels, base, initial.min_sqnr_db,
                           config.fallback_candidates, progress=progress)
    if not _met(measure, config, evaluator.reference_metric):
        graph_nodes = {n.name: n for n in float_model.graph.node}
        order = [c for c in layers if c.gain_db is not None]
        plan = _moves(order, graph_nodes, config)
        bar = tqdm(total=len(plan), desc="accuracy fallback", unit="move",
                   disable=not progress, leave=False)
        try:
            for cost, to in plan:
                if _met(measure, config, evaluator.reference_metric):
                    break
                precision = {n: levels.get(n, initial_precision(graph_nodes[n], config))
                             for n in cost.nodes}
                moved = [n for n, p in precision.items()
                         if (p is Precision.INT8 if to is Precision.INT16
                             else p is not Precision.FLOAT)]
                if not moved:
                    continue
                before = precision[moved[0]]
                trial = {**levels, **dict.fromkeys(moved, to)}
                built = evaluator.build(trial)
                if to is Precision.INT16 and evaluator.violations(built):
                    if cost.is_group:
                        continue                  # the target has no 16-bit form for them
                    to = Precision.FLOAT          # ... for this layer: float instead
                elif (to is Precision.INT16 and not cost.is_group
                      and saturated_bias(built, cost.node)):
                    to = Precision.FLOAT          # its bias does not fit int32 at 16 bits
                if trial[moved[0]] is not to:
                    trial = {**levels, **dict.fromkeys(moved, to)}
                    built = evaluator.build(trial)
                after = evaluator.measure(built)
                kept = _improves(after, measure, config)
                steps.append(FallbackStep(cost.node, cost.op_type, before.value, to.value,
                                          measure.min_sqnr_db, after.min_sqnr_db,
                                          measure.metric, after.metric, kept,
                                          tuple(moved) if cost.is_group else ()))
                if kept:
                    levels, current, measure = trial, built, after
                bar.update(1)
        finally:
            bar.close()
    met = _met(measure, config, evaluator.reference_metric)
    blockers: list[LayerCost] = []
    if not met:
        local = evaluator.local_errors(current)
        still = [n for n in rounding_layers(float_model, current.annotation)]
        blockers = sorted((LayerCost(n.name, n.op_type, local[n.name]) for n in still
                           if n.name in local), key=lambda c: c.added_noise_db)[:_BLOCKERS]
    unmeasured = sum(1 for c in layers if c.gain_db is None)
    result = FallbackResult(
        config.accuracy_budget, _metric_name(config.metric), evaluator.reference_metric,
        config.metric_tolerance, _count_samples(eval_feeds), "lowp Session", initial, measure,
        met, layers, steps, {n: p.value for n, p in levels.items()}, blockers, unmeasured,
        time.perf_counter() - start, "calibration" if held_out is None else "held-out",
        config.method.value, config.bias_correction)
    if not met:
        warnings.warn(result.warning(), BudgetNotMetWarning, stacklevel=3)
    return current, result


def _moves(order: list[LayerCost], nodes: Mapping[str, onnx.NodeProto], config: Config
           ) -> list[tuple[LayerCost, Precision]]:
    """Phase 1: each candidate to 16 bits (a layer already 16-bit: to float); phase 2: the
    layers to float. Same order in both: most sensitive first. Groups (every layer of an
    op type) only move to 16 bits: float for all of them is rarely what a budget needs."""
    phase1 = [(c, Precision.INT16 if c.is_group or initial_precision(nodes[c.node], config)
               is Precision.INT8 else Precision.FLOAT) for c in order]
    phase2 = [(c, Precision.FLOAT) for c, to in phase1
              if to is Precision.INT16 and not c.is_group]
    return phase1 + phase2


def _improves(after: Measurement, before: Measurement, config: Config) -> bool:
    """Whether a move is kept: the output SQNR rises by `_MIN_GAIN_DB` without the metric
    falling, or the metric rises. A move that does not help is undone (the layer stays
    quantized): on YOLOv8n, head convolutions moved to float for +0.001 dB each."""
    if config.metric is not None:
        assert after.metric is not None and before.metric is not None
        if after.metric > before.metric:
            return True
        if after.metric < before.metric:
            return False
    return sqnr_gain(after.min_sqnr_db, before.min_sqnr_db) >= _MIN_GAIN_DB


def _met(m: Measurement, config: Config, reference: float | None) -> bool:
    """Whether a measurement meets every goal of `config`."""
    if config.accuracy_budget is not None and not m.min_sqnr_db >= config.accuracy_budget:
        return False
    if config.metric is not None:
        assert m.metric is not None and reference is not None
        tolerance = config.metric_tolerance or 0.0
        if not m.metric >= reference - tolerance:
            return False
    return True


def evaluation_feeds(feeds: Iterable[Mapping[str, np.ndarray]], samples: int
                     ) -> list[dict[str, np.ndarray]]:
    """The first whole feeds that hold at least `samples` samples (first axis of the first
    input; a feed counts as one sample when that input is a scalar)."""
    out: list[dict[str, np.ndarray]] = []
    seen = 0
    for feed in feeds:
        out.append({k: np.asarray(v) for k, v in feed.items()})
        seen += _samples(out[-1])
        if seen >= samples:
            break
    if not out:
        raise DataError("the accuracy budget needs calibration data: the feeds are empty")
    return out


def _samples(feed: Mapping[str, np.ndarray]) -> int:
    first = np.asarray(next(iter(feed.values())))
    return int(first.shape[0]) if first.ndim else 1


def _count_samples(feeds: list[dict[str, np.ndarray]]) -> int:
    return sum(_samples(f) for f in feeds)


# --- parsing the budget and the metric ----------------------------------------------------

_DB = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*dB\s*$")


def parse_budget(text: str) -> float:
    """'30dB' or '30 dB' -> 30.0; anything else raises QuantizationError.

    Examples
    --------
    >>> parse_budget("32.5dB")
    32.5
    """
    m = _DB.match(text)
    if not m:
        raise QuantizationError(f"--accuracy-budget '{text}': give the output SQNR in dB with "
                                "its unit, e.g. 30dB")
    value = float(m.group(1))
    if not value > 0:
        raise QuantizationError(f"--accuracy-budget '{text}': the output SQNR must be above "
                                "0 dB (noise weaker than the signal)")
    return value


def parse_tolerance(text: str) -> float:
    """A finite number >= 0 (the allowed drop of the metric)."""
    try:
        value = float(text)
    except ValueError:
        raise QuantizationError(f"--tolerance '{text}' is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise QuantizationError(f"--tolerance {text}: the allowed drop of the metric must be "
                                "a finite number >= 0")
    return value


def load_metric(spec: str) -> Metric:
    """'package.module:function' or 'path/to/file.py:function' -> the callable."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise QuantizationError(f"--metric '{spec}': give module:function or "
                                "file.py:function")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise QuantizationError(f"--metric '{spec}': file '{path}' does not exist")
            loader = importlib.util.spec_from_file_location(path.stem, path)
            assert loader is not None and loader.loader is not None
            module = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except QuantizationError:
        raise
    except Exception as e:
        raise QuantizationError(f"--metric '{spec}': cannot import '{module_name}': "
                                f"{type(e).__name__}: {e}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise QuantizationError(f"--metric '{spec}': '{module_name}' has no function "
                                f"'{attr}'")
    fn_metric: Metric = fn
    return fn_metric


# --- formatting ---------------------------------------------------------------------------

def _metric_name(metric: Metric | None) -> str | None:
    if metric is None:
        return None
    return getattr(metric, "__qualname__", None) or getattr(metric, "__name__", "metric")


def _db(value: float) -> str:
    return f"{value:.2f} dB" if math.isfinite(value) else f"{value} dB"


def _fmt_measure(m: Measurement, metric_name: str | None) -> str:
    text = f"SQNR {_db(m.min_sqnr_db)}"
    if m.metric is not None:
        text += f", {metric_name} {m.metric:.6g}"
    return text


def _measure_dict(m: Measurement) -> dict[str, Any]:
    return {"min_sqnr_db": m.min_sqnr_db, "sqnr_db": dict(m.sqnr_db), "metric": m.metric,
            "scored": list(m.scored)}


def _json_safe(value: Any) -> Any:
    """inf / nan as strings (JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value
