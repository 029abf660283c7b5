"""Per-layer error analysis (SQNR against the float model) and output agreement between
two engines, measured in quantized units."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx

from ..ir.graph import Graph
from ..qparams import QParams, QType, dequantize


@dataclass(frozen=True)
class LayerError:
    """How far a quantized tensor is from its float counterpart, end to end."""

    tensor: str
    producer: str
    op_type: str
    sqnr_db: float
    max_abs_error: float
    scale: float


@dataclass(frozen=True)
class OutputAgreement:
    """Elementwise agreement of two engines on one output."""

    output: str
    elements: int
    differ: int
    max_units: float           # largest difference in units of the output's scale
    max_abs: float

    @property
    def identical_share(self) -> float:
        return 1.0 - self.differ / self.elements if self.elements else 1.0


def sqnr_db(reference: np.ndarray, approx: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio in dB (inf when identical)."""
    ref = reference.astype(np.float64)
    return sqnr_of_energies(float(np.sum(ref ** 2)),
                            float(np.sum((ref - approx.astype(np.float64)) ** 2)))


def activation_dqs(qdq: onnx.ModelProto) -> dict[str, tuple[str, QParams, float]]:
    """Each per-tensor activation DQ node: its float output -> (integer input, qparams,
    scale)."""
    g = Graph(qdq)
    out = {}
    for node in qdq.graph.node:
        if node.op_type != "DequantizeLinear":
            continue
        if g.is_constant(node.input[0]) or not g.is_constant(node.input[1]):
            continue
        scale = g.constant(node.input[1]).astype(np.float32)
        if scale.size != 1:
            continue
        zp = (g.constant(node.input[2]) if len(node.input) > 2 and node.input[2]
              else np.zeros((), np.uint8))
        qtype = QType.from_numpy(zp.dtype)
        qp = QParams(scale.reshape(()), zp.reshape(()).astype(np.int32), qtype, qtype.qmin,
                     qtype.qmax)
        out[node.output[0]] = (node.input[0], qp, float(scale))
    return out


def dequantized_tensors(qdq: onnx.ModelProto, int_values: Mapping[str, np.ndarray]
                        ) -> dict[str, tuple[np.ndarray, float]]:
    """For each activation DQ node: its float output name -> (dequantized value, scale)."""
    return {name: (dequantize(int_values[src], qp), scale)
            for name, (src, qp, scale) in activation_dqs(qdq).items() if src in int_values}


# Elements per block of LayerErrorStats.update's float64 temporaries.
_BLOCK_ELEMENTS = 1 << 20


class LayerErrorStats:
    """SQNR of every quantized activation against the float model, accumulated feed by feed.

    Signal and noise energies add over feeds, so the result equals `layer_errors` on all
    feeds at once (up to float64 summation order) while one feed is in memory at a time.
    """

    def __init__(self, qdq: onnx.ModelProto) -> None:
        g = Graph(qdq)
        self._dqs = activation_dqs(qdq)
        self._where: dict[str, tuple[str, str]] = {}
        for name in self._dqs:
            q_node = g.producer.get(g.producer[name].input[0]) if name in g.producer else None
            src = g.producer.get(q_node.input[0]) if q_node is not None else None
            self._where[name] = ((src.name, src.op_type) if src else ("(input)", "input"))
        self._sums: dict[str, list[float]] = {}       # name -> [signal, noise, max |error|]

    def update(self, float_values: Mapping[str, np.ndarray],
               int_values: Mapping[str, np.ndarray]) -> None:
        """Add one feed: the float model's and the integer engine's values of the tensors."""
        for name, (src, qp, _) in self._dqs.items():
            ref = float_values.get(name)
            if src not in int_values or ref is None:
                continue
            q = np.asarray(int_values[src])
            if ref.shape != q.shape:
                continue
            sums = self._sums.setdefault(name, [0.0, 0.0, 0.0])
            # per-tensor qparams: blocks of samples, so that the float64 temporaries stay
            # small whatever the batch (a per-channel axis may be any axis: in one piece)
            rows = (max(1, _BLOCK_ELEMENTS // max(1, q[0].size))
                    if q.ndim and q.shape[0] and qp.scale.ndim == 0 else max(1, len(q)))
            for i in range(0, max(1, q.shape[0] if q.ndim else 1), rows):
                part = (slice(i, i + rows),) if q.ndim else ()
                r = ref[part].astype(np.float64)
                err = r - dequantize(q[part], qp).astype(np.float64)
                sums[0] += float(np.sum(r ** 2))
                sums[1] += float(np.sum(err ** 2))
                sums[2] = max(sums[2], float(np.max(np.abs(err))) if err.size else 0.0)

    def result(self) -> list[LayerError]:
        """The errors, worst (lowest SQNR) first."""
        errors = [LayerError(name, *self._where[name], sqnr_of_energies(signal, noise),
                             max_abs, self._dqs[name][2])
                  for name, (signal, noise, max_abs) in self._sums.items()]
        errors.sort(key=lambda e: e.sqnr_db)
        return errors


def sqnr_of_energies(signal: float, noise: float) -> float:
    """10 log10(signal / noise) of energies (inf without noise, -inf without signal)."""
    if noise == 0.0:
        return float("inf")
    if signal == 0.0:
        return float("-inf")
    return 10.0 * float(np.log10(signal / noise))


def layer_errors(qdq: onnx.ModelProto, float_values: Mapping[str, np.ndarray],
                 int_values: Mapping[str, np.ndarray]) -> list[LayerError]:
    """SQNR of every quantized activation against the float model, worst first."""
    stats = LayerErrorStats(qdq)
    stats.update(float_values, int_values)
    return stats.result()


class AgreementStats:
    """Agreement of two engines' outputs, accumulated feed by feed (see `compare_outputs`)."""

    def __init__(self, scales: Mapping[str, float] | None = None) -> None:
        self._scales = dict(scales or {})
        self._acc: dict[str, list[float]] = {}        # name -> [elements, differ, max_abs]

    def update(self, a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> None:
        """Add one feed's outputs of both engines (outputs missing from `b` are skipped)."""
        for name in a:
            if name not in b:
                continue
            diff = np.abs(np.asarray(a[name], np.float64) - np.asarray(b[name], np.float64))
            acc = self._acc.setdefault(name, [0, 0, 0.0])
            acc[0] += int(diff.size)
            acc[1] += int(np.count_nonzero(diff))
            acc[2] = max(acc[2], float(diff.max()) if diff.size else 0.0)

    def result(self) -> list[OutputAgreement]:
        out = []
        for name, (elements, differ, max_abs) in self._acc.items():
            scale = self._scales.get(name) or 0.0
            out.append(OutputAgreement(name, int(elements), int(differ),
                                       max_abs / scale if scale else float("nan"), max_abs))
        return out


def compare_outputs(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray],
                    scales: Mapping[str, float] | None = None) -> list[OutputAgreement]:
    """Agreement of two engines' outputs (float arrays), in units of each output's scale."""
    stats = AgreementStats(scales)
    stats.update(a, b)
    return stats.result()


def output_scales(qdq: onnx.ModelProto) -> dict[str, float]:
    """Scale of each graph output that leaves a per-tensor DequantizeLinear."""
    g = Graph(qdq)
    out = {}
    for name in g.output_names:
        node = g.producer.get(name)
        if node is not None and node.op_type == "DequantizeLinear" and g.is_constant(
                node.input[1]) and g.constant(node.input[1]).size == 1:
            out[name] = float(g.constant(node.input[1]))
    return out
