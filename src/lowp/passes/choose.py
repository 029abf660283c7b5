"""Choose qparams under a Target: activations from calibrated ranges, weights from their
values (per channel where allowed), biases derived at s_x * s_w."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx

from ..calib import CalibrationTable
from ..config import Config
from ..errors import QuantizationError
from ..ir.graph import Graph
from ..qparams import PerAxis, PerTensor, QParams, choose_qparams, quantize, quantize_bias
from ..targets import Target, WeightGranularity
from .annotate import Annotation


@dataclass
class QuantPlan:
    """Every number the QDQ model will carry."""

    activations: dict[str, QParams] = field(default_factory=dict)
    weights: dict[str, tuple[np.ndarray, QParams]] = field(default_factory=dict)
    biases: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


def choose(model: onnx.ModelProto, ann: Annotation, table: CalibrationTable,
           config: Config) -> QuantPlan:
    target = config.resolved_target()
    graph = Graph(model)
    plan = QuantPlan()
    for t in ann.activations:
        lo, hi = table.ranges[t]
        if lo == hi == 0.0 and not graph.is_constant(t):
            producer = graph.producer.get(t)
            where = f"output of node '{producer.name}'" if producer else "a graph input"
            raise QuantizationError(
                f"tensor '{t}' ({where}) is zero on all calibration data (range [0, 0]); "
                "use more representative data or exclude that node")
        plan.activations[t] = activation_qparams(lo, hi, target, t)
    for t in ann.shared:
        plan.activations[t] = plan.activations[ann.qparams_source(t)]
    for w, spec in ann.weights.items():
        value = graph.constant(w).astype(np.float32)
        axis = spec.axis
        if (config.weight_granularity is WeightGranularity.PER_TENSOR
                or WeightGranularity.PER_CHANNEL not in target.weight_granularities):
            axis = None
        plan.weights[w] = quantize_weight(value, axis, target, w)
    for b, bspec in ann.biases.items():
        x_qp = plan.activations[ann.qparams_source(bspec.input)]
        w_qp = plan.weights[bspec.weight][1]
        bias = graph.constant(b).astype(np.float32)
        w_scale = w_qp.scale if w_qp.scale.ndim == 0 or w_qp.scale.size == bias.size else None
        if w_scale is None:
            raise QuantizationError(f"bias '{b}' has {bias.size} entries but weight "
                                    f"'{bspec.weight}' has {w_qp.scale.size} scales")
        plan.biases[b] = quantize_bias(bias, x_qp.scale, w_scale)
    return plan


def activation_qparams(lo: float, hi: float, target: Target, name: str) -> QParams:
    return choose_qparams(lo, hi, target.activation_qtype,
                          symmetric=target.activation_symmetric,
                          reduce_range=target.reduce_range, min_scale=target.min_scale,
                          name=name)


def quantize_weight(value: np.ndarray, axis: int | None, target: Target,
                    name: str) -> tuple[np.ndarray, QParams]:
    """Quantize a float weight per tensor (axis None) or per channel along `axis`."""
    if not np.all(np.isfinite(value)):
        raise QuantizationError(f"weight '{name}' contains NaN or Inf")
    if axis is None or value.ndim == 0:
        lo, hi = value.min(initial=0.0), value.max(initial=0.0)
        granularity: PerTensor | PerAxis = PerTensor()
    else:
        axis = axis % value.ndim
        other = tuple(i for i in range(value.ndim) if i != axis)
        lo, hi = value.min(axis=other, initial=0.0), value.max(axis=other, initial=0.0)
        granularity = PerAxis(axis)
    qp = choose_qparams(lo, hi, target.weight_qtype, symmetric=target.weight_symmetric,
                        narrow_range=target.weight_narrow_range, min_scale=target.min_scale,
                        granularity=granularity, name=name)
    return quantize(value, qp), qp
