"""The end-of-run summary: sizes, accuracy, engine agreement and the most damaged layers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import onnx

from ..errors import DataError
from ..inputs import model_inputs
from ..passes.calibrate import expose_tensors, float_session, reference_session, run_exposed
from ..runtime import Session
from .analysis import (
    AgreementStats,
    LayerError,
    LayerErrorStats,
    OutputAgreement,
    output_scales,
)
from .layers import LayerReport, LayerSources, LayerStats
from .table import format_table

if TYPE_CHECKING:
    from ..passes.fallback import FallbackResult
    from .speed import SpeedReport

_SQNR_SAMPLES = 64
# Samples per run of the per-layer comparison, which holds every exposed float activation
# and every captured engine value of the run at once (models with a free batch axis only).
_SQNR_RUN_SAMPLES = 4


@dataclass
class Summary:
    float_bytes: int
    int8_bytes: int
    agreement: list[OutputAgreement]
    worst_layers: list[LayerError]
    accuracy: dict[str, float] = field(default_factory=dict)
    backend: str = ""
    int_ops: int = 0
    float_ops: int = 0
    fallback: FallbackResult | None = None     # the accuracy budget's record, if one was set
    layers: LayerReport | None = None          # per-layer detail for the HTML report
    speed: SpeedReport | None = None           # float vs int8 latency (lowp.report.speed)

    def format(self, top: int = 5) -> str:
        parts = []
        rows: list[list[object]] = [
            ["model size (KiB)", round(self.float_bytes / 1024, 1),
             round(self.int8_bytes / 1024, 1)]]
        for name, acc in self.accuracy.items():
            rows.append([f"accuracy, {name} (%)", "", round(100 * acc, 2)])
        if "float" in self.accuracy:
            rows = [r for r in rows if r[0] != "accuracy, float (%)"]
            rows.insert(1, ["accuracy (%)", round(100 * self.accuracy["float"], 2), ""])
        parts.append(format_table(["", "float", "int8"], rows, title="Summary"))
        parts.append(f"lowp engine ({self.backend}): {self.int_ops} integer operators, "
                     f"{self.float_ops} float operators")
        if self.agreement:
            parts.append(format_table(
                ["output", "elements", "identical %", "max diff (quantized units)"],
                [[a.output, a.elements, round(100 * a.identical_share, 3),
                  a.max_units if np.isfinite(a.max_units) else a.max_abs]
                 for a in self.agreement],
                title="\nlowp engine vs ONNX Runtime on the same QDQ model"))
        if self.worst_layers:
            parts.append(format_table(
                ["tensor", "producer", "op", "SQNR (dB)", "max |error|"],
                [[e.tensor, e.producer, e.op_type, round(e.sqnr_db, 2), e.max_abs_error]
                 for e in self.worst_layers[:top]],
                title=f"\nMost damaged layers (end-to-end SQNR vs float, worst {top})"))
        if self.speed is not None:
            parts.append(self.speed.format())
        return "\n".join(parts)


def summarize(qdq: onnx.ModelProto, float_model: onnx.ModelProto,
              feeds: Mapping[str, np.ndarray] | Iterable[Mapping[str, np.ndarray]],
              labels: np.ndarray | None = None, *, backend: str = "auto",
              fallback: FallbackResult | None = None,
              layers: LayerSources | None = None) -> Summary:
    """Run float (ONNX Runtime), int8 (lowp) and int8 (ONNX Runtime) on `feeds` and compare.

    `feeds` is one mapping of arrays (run as one feed) or an iterable of feeds, streamed:
    every statistic is accumulated feed by feed, so memory holds one feed and its outputs.
    The per-layer SQNR uses the first `_SQNR_SAMPLES` samples (counted on the first axis of
    the first input). `labels` holds one integer per sample, in feed order, for accuracy.
    `fallback` (what the accuracy budget measured) is carried to the report. With `layers`
    (the calibration table and target), the same samples also give the per-layer detail
    of the HTML report (`lowp.report.layers`): three more runs per feed.
    """
    session = Session(qdq, backend=backend)
    ort_q = reference_session(qdq)
    ort_names = [o.name for o in ort_q.get_outputs()]
    agreement = AgreementStats(output_scales(qdq))
    inner = [n.output[0] for n in qdq.graph.node if n.op_type == "DequantizeLinear"]
    float_names = {o for n in float_model.graph.node for o in n.output}
    exposed = [t for t in inner if t in float_names]
    fs = float_session(expose_tensors(float_model, exposed), mem_pattern=False)
    fs_names = [o.name for o in fs.get_outputs()]
    errors = LayerErrorStats(qdq)
    detail = None if layers is None else LayerStats(qdq, float_model, layers, backend=backend)
    batch_free = all(spec.shape and spec.shape[0] is None for spec in model_inputs(float_model))
    first = [o.name for o in float_model.graph.output][0]
    correct = {"float": 0, "lowp engine": 0, "ONNX Runtime": 0}
    samples = 0                                  # seen by the accuracy (label offset)
    layer_samples = 0
    for feed in ([feeds] if isinstance(feeds, Mapping) else feeds):
        feed = dict(feed)
        lowp_out = session.run(feed)
        ort_out = dict(zip(ort_names, ort_q.run(None, feed), strict=True))
        agreement.update(lowp_out, ort_out)
        if layer_samples < _SQNR_SAMPLES:
            n = _samples(feed)
            sub = feed if n <= _SQNR_SAMPLES - layer_samples else {
                k: v[:_SQNR_SAMPLES - layer_samples] for k, v in feed.items()}
            layer_samples += min(n, _SQNR_SAMPLES - layer_samples)
            for part in _sample_runs(sub, batch_free):
                float_values = dict(zip(fs_names, run_exposed(fs, fs_names, part),
                                        strict=True))
                lowp_values = session.run(part, capture=True)
                errors.update(float_values, lowp_values)
                if detail is not None:
                    detail.update(part, float_values, lowp_values, _samples(part))
                del float_values, lowp_values   # before the next run: one run's values
        if labels is not None:
            full_float = fs.run([first], feed)[0]
            got = labels[samples:samples + full_float.shape[0]]
            samples += full_float.shape[0]
            if got.shape[0] != full_float.shape[0]:
                raise DataError(f"labels: {labels.shape[0]} entries for at least {samples} "
                                "samples")
            for key, logits in (("float", full_float), ("lowp engine", lowp_out[first]),
                                ("ONNX Runtime", ort_out[first])):
                correct[key] += int(np.count_nonzero(np.argmax(logits, axis=-1) == got))
    accuracy: dict[str, float] = {}
    if labels is not None and samples != labels.shape[0]:
        raise DataError(f"labels: {labels.shape[0]} entries for {samples} samples")
    if labels is not None and samples:
        accuracy = {k: v / samples for k, v in correct.items()}
    return Summary(len(float_model.SerializeToString()), len(qdq.SerializeToString()),
                   agreement.result(), errors.result(), accuracy, session.backend.name,
                   len(session.int_steps) + len(session.integer_product_steps),
                   sum(1 for s in session.steps if s.kind == "float")
                   - len(session.integer_product_steps), fallback,
                   detail.result() if detail is not None else None)


def _sample_runs(feed: dict[str, np.ndarray], batch_free: bool) -> list[dict[str, np.ndarray]]:
    """The feed cut into runs of `_SQNR_RUN_SAMPLES` samples along the first axis, when the
    model's inputs leave that axis free and every array has it; else the feed whole."""
    n = _samples(feed)
    if not batch_free or n <= _SQNR_RUN_SAMPLES or any(
            np.ndim(v) == 0 or np.shape(v)[0] != n for v in feed.values()):
        return [feed]
    return [{k: v[i:i + _SQNR_RUN_SAMPLES] for k, v in feed.items()}
            for i in range(0, n, _SQNR_RUN_SAMPLES)]


def _samples(feed: Mapping[str, np.ndarray]) -> int:
    """Samples in a feed: the first axis of its first input (1 for a scalar)."""
    first = np.asarray(next(iter(feed.values())))
    return int(first.shape[0]) if first.ndim else 1


