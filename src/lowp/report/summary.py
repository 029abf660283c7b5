"""The end-of-run summary: sizes, accuracy, engine agreement and the most damaged layers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import onnx

from ..passes.calibrate import expose_tensors, float_session
from ..runtime import Session
from .analysis import LayerError, OutputAgreement, compare_outputs, layer_errors, output_scales
from .table import format_table

_SQNR_SAMPLES = 64


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
        return "\n".join(parts)


def summarize(qdq: onnx.ModelProto, float_model: onnx.ModelProto,
              feeds: Mapping[str, np.ndarray], labels: np.ndarray | None = None, *,
              backend: str = "auto") -> Summary:
    """Run float (ONNX Runtime), int8 (lowp) and int8 (ONNX Runtime) on `feeds` and compare."""
    session = Session(qdq, backend=backend)
    lowp_out = session.run(feeds)
    ort_q = float_session(qdq)
    ort_out = dict(zip([o.name for o in ort_q.get_outputs()], ort_q.run(None, dict(feeds)),
                       strict=True))
    agreement = compare_outputs(lowp_out, ort_out, output_scales(qdq))

    sub = {k: v[:_SQNR_SAMPLES] for k, v in feeds.items()}
    inner = [n.output[0] for n in qdq.graph.node if n.op_type == "DequantizeLinear"]
    float_names = {o for n in float_model.graph.node for o in n.output}
    exposed = [t for t in inner if t in float_names]
    fs = float_session(expose_tensors(float_model, exposed))
    names = [o.name for o in fs.get_outputs()]
    float_values = dict(zip(names, fs.run(None, sub), strict=True))
    int_values = session.run(sub, capture=True)
    worst = layer_errors(qdq, float_values, int_values)

    accuracy: dict[str, float] = {}
    if labels is not None:
        first = [o.name for o in float_model.graph.output][0]
        full_float = fs.run([first], dict(feeds))[0]
        accuracy["float"] = _accuracy(full_float, labels)
        accuracy["lowp engine"] = _accuracy(lowp_out[first], labels)
        accuracy["ONNX Runtime"] = _accuracy(ort_out[first], labels)
    return Summary(len(float_model.SerializeToString()), len(qdq.SerializeToString()),
                   agreement, worst, accuracy, session.backend.name,
                   len(session.int_steps),
                   sum(1 for s in session.steps if s.kind == "float"))


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, axis=-1) == labels))
