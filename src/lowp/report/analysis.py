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
    noise = float(np.sum((ref - approx.astype(np.float64)) ** 2))
    signal = float(np.sum(ref ** 2))
    if noise == 0.0:
        return float("inf")
    if signal == 0.0:
        return float("-inf")
    return 10.0 * float(np.log10(signal / noise))


def dequantized_tensors(qdq: onnx.ModelProto, int_values: Mapping[str, np.ndarray]
                        ) -> dict[str, tuple[np.ndarray, float]]:
    """For each activation DQ node: its float output name -> (dequantized value, scale)."""
    g = Graph(qdq)
    out = {}
    for node in qdq.graph.node:
        if node.op_type != "DequantizeLinear" or node.input[0] not in int_values:
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
        out[node.output[0]] = (dequantize(int_values[node.input[0]], qp), float(scale))
    return out


def layer_errors(qdq: onnx.ModelProto, float_values: Mapping[str, np.ndarray],
                 int_values: Mapping[str, np.ndarray]) -> list[LayerError]:
    """SQNR of every quantized activation against the float model, worst first."""
    g = Graph(qdq)
    errors = []
    for name, (deq, scale) in dequantized_tensors(qdq, int_values).items():
        ref = float_values.get(name)
        if ref is None or ref.shape != deq.shape:
            continue
        q_node = g.producer.get(g.producer[name].input[0]) if name in g.producer else None
        src = g.producer.get(q_node.input[0]) if q_node is not None else None
        errors.append(LayerError(name, src.name if src else "(input)",
                                 src.op_type if src else "input", sqnr_db(ref, deq),
                                 float(np.max(np.abs(ref - deq))) if ref.size else 0.0, scale))
    errors.sort(key=lambda e: e.sqnr_db)
    return errors


def compare_outputs(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray],
                    scales: Mapping[str, float] | None = None) -> list[OutputAgreement]:
    """Agreement of two engines' outputs (float arrays), in units of each output's scale."""
    out = []
    for name in a:
        if name not in b:
            continue
        x, y = np.asarray(a[name], np.float64), np.asarray(b[name], np.float64)
        diff = np.abs(x - y)
        scale = (scales or {}).get(name) or 0.0
        max_abs = float(diff.max()) if diff.size else 0.0
        out.append(OutputAgreement(name, int(diff.size), int(np.count_nonzero(diff)),
                                   max_abs / scale if scale else float("nan"), max_abs))
    return out


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
