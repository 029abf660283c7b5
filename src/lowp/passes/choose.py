"""Choose qparams under a Target: activations from calibrated ranges, weights from their
values (per channel where allowed), biases derived at s_x * s_w."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import onnx

from ..calib import CalibrationTable, choose_range
from ..config import CalibMethod, Config
from ..errors import DataError, QuantizationError
from ..fixedpoint import requant_scale
from ..ir.graph import Graph
from ..qparams import (
    PerAxis,
    PerTensor,
    QParams,
    QType,
    choose_qparams,
    dequantize,
    quantize,
    quantize_bias,
)
from ..targets import Target, WeightGranularity
from .annotate import Annotation
from .bias_correct import weight_error_mean
from .verify import WEIGHTED_OPS


@dataclass
class QuantPlan:
    """Every number the QDQ model will carry."""

    activations: dict[str, QParams] = field(default_factory=dict)
    weights: dict[str, tuple[np.ndarray, QParams]] = field(default_factory=dict)
    biases: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


def choose(model: onnx.ModelProto, ann: Annotation, table: CalibrationTable,
           config: Config, input_means: Mapping[str, np.ndarray] | None = None) -> QuantPlan:
    """The qparams of every annotated tensor and the quantized weights and biases.

    `input_means` (node name -> mean input patch, `bias_correct.input_means`) turns on the
    bias correction (BC1) of those nodes: their bias is quantized as b - e, with e the mean
    output error of the weight as it is quantized here.
    """
    target = config.resolved_target()
    graph = Graph(model)
    plan = QuantPlan()
    wide_tensors, wide_weights = sixteen_bit_tensors(model, ann, config)
    wide_target = widened(target)
    for t in ann.activations:
        if t in table and table[t].is_empty:
            raise DataError(f"tensor '{t}': no calibration data observed (empty on every "
                            "calibration feed)")
        lo, hi = _wide_range(table, t) if t in wide_tensors else table.ranges[t]
        if lo == hi == 0.0 and not graph.is_constant(t) and not _shape_only(graph, t):
            producer = graph.producer.get(t)
            where = f"output of node '{producer.name}'" if producer else "a graph input"
            raise QuantizationError(
                f"tensor '{t}' ({where}) is zero on all calibration data (range [0, 0]); "
                "use more representative data or exclude that node")
        t_target = wide_target if t in wide_tensors else target
        plan.activations[t] = (constant_operand_qparams(lo, hi, t_target, t)
                               if graph.is_constant(t) else
                               activation_qparams(lo, hi, t_target, t))
    for w, spec in ann.weights.items():
        value = graph.constant(w).astype(np.float32)
        wt = wide_target if w in wide_weights else target
        if config.weight_granularity is WeightGranularity.PER_GROUP and spec.axis == 0:
            plan.weights[w] = _groupwise(value, spec.groups, wt)
            continue
        axis = spec.axis
        if (config.weight_granularity is WeightGranularity.PER_TENSOR
                or WeightGranularity.PER_CHANNEL not in target.weight_granularities):
            axis = None
        plan.weights[w] = quantize_weight(value, axis, wt, w)
    floors = _requant_scale_floors(graph, plan, ann, target)
    for t, floor in _global_average_scale_floors(graph, plan, ann).items():
        floors[t] = max(floor, floors.get(t, 0.0))
    for t, floor in floors.items():
        if t not in wide_tensors and not graph.is_constant(t):
            plan.activations[t] = activation_qparams(*table.ranges[t], target, t,
                                                     min_scale=floor)
    for t in ann.shared:
        plan.activations[t] = plan.activations[ann.qparams_source(t)]
    nodes = {n.name: n for n in model.graph.node}
    for b, bspec in ann.biases.items():
        x_qp = plan.activations[ann.qparams_source(bspec.input)]
        w_qp = plan.weights[bspec.weight][1]
        bias = graph.constant(b).astype(np.float32)
        w_scale = w_qp.scale if w_qp.scale.ndim == 0 or w_qp.scale.size == bias.size else None
        if w_scale is None:
            raise QuantizationError(f"bias '{b}' has {bias.size} entries but weight "
                                    f"'{bspec.weight}' has {w_qp.scale.size} scales")
        w_qp = _bias_fitting_weight(plan, bspec.weight, graph, bias, float(x_qp.scale), w_qp)
        if input_means is not None and bspec.node in input_means:
            bias = _corrected_bias(nodes[bspec.node], graph.constant(bspec.weight), bias,
                                   plan.weights[bspec.weight], input_means[bspec.node])
        plan.biases[b] = quantize_bias(bias, x_qp.scale, w_qp.scale)
    return plan


_INT32_MAX = float(np.iinfo(np.int32).max)


def _corrected_bias(node: onnx.NodeProto, w_float: np.ndarray, bias: np.ndarray,
                    weight: tuple[np.ndarray, QParams], mean: np.ndarray) -> np.ndarray:
    """b - e (BC1): the bias that cancels the weight quantization's mean output error."""
    w_quant = dequantize(*weight)
    error = weight_error_mean(node, w_float.astype(np.float32), w_quant, mean)
    return (bias.astype(np.float64) - error).astype(np.float32)


def _bias_fitting_weight(plan: QuantPlan, w: str, graph: Graph, bias: np.ndarray,
                         x_scale: float, w_qp: QParams) -> QParams:
    """The weight's qparams, with the scale of every channel whose int32 bias would
    saturate at s_x * s_w raised until it fits (and the weight requantized at it).

    With 16-bit activations s_x is about 256 times smaller than at 8 bits, and a bias of
    a few units no longer fits in int32 at s_x * s_w: clamped, it shifts that channel's
    every output (on YOLOv8n 45 of 63 convolutions at 16 bits). A slightly coarser weight
    scale costs far less than a clamped bias."""
    need = np.abs(bias.astype(np.float64)) / (x_scale * _INT32_MAX) * (1.0 + 2.0 ** -10)
    have = np.broadcast_to(w_qp.scale.astype(np.float64), need.shape)
    if not np.any(need > have):
        return w_qp
    scale = (np.float32(max(float(need.max()), float(w_qp.scale))) if w_qp.scale.ndim == 0
             else np.maximum(have, need).astype(np.float32))
    fitted = dataclasses.replace(w_qp, scale=np.asarray(scale, np.float32))
    plan.weights[w] = (quantize(graph.constant(w).astype(np.float32), fitted), fitted)
    return fitted


def _requant_scale_floors(graph: Graph, plan: QuantPlan, ann: Annotation,
                          target: Target) -> dict[str, float]:
    """Output scales too small for the target's requantization bound (QNNPACK needs
    M = s_x * s_w / s_y < 1): the smallest scale each such output may take instead, so
    that the quantized model obeys the target it was made for."""
    if target.requant_scale_bounds is None:
        return {}
    bound = target.requant_scale_bounds[1]
    floors: dict[str, float] = {}
    for node in graph.graph.node:
        if node.op_type not in WEIGHTED_OPS or len(node.input) < 2:
            continue
        x, w, y = node.input[0], node.input[1], node.output[0]
        readers = graph.consumers.get(y, [])
        if y not in plan.activations and len(readers) == 1 and readers[0].op_type in (
                "Relu", "Clip"):
            y = readers[0].output[0]           # a fused activation's output is quantized
        # shared tensors take their source's qparams (assigned after this pass)
        x, y = ann.qparams_source(x), ann.qparams_source(y)
        if x not in plan.activations or w not in plan.weights or y not in plan.activations:
            continue
        xw = float(np.max(requant_scale(plan.activations[x].scale, plan.weights[w][1].scale,
                                        1.0)))
        floor = xw / bound * (1 + 2.0 ** -20)      # M stays below the bound in float32
        if float(plan.activations[y].scale) < floor:
            floors[y] = max(floor, floors.get(y, 0.0))
    return floors


def _global_average_scale_floors(graph: Graph, plan: QuantPlan,
                                 ann: Annotation) -> dict[str, float]:
    """Output scales of quantized GlobalAveragePools too small for ONNX Runtime: its integer
    kernel (QLinearGlobalAveragePool, also what it makes of a QDQ group) refuses to run
    when s_x / (s_y * N) >= 256 (N = H * W; "parameter out of computation range"). An
    output whose range is 256 times narrower than its input's (x minus its own mean, then
    averaged) gets s_y = s_x / (256 N) instead: a mean of N codes of step s_x has no finer
    values anyway. N is the input's static spatial size, or 1 when it is not known (the
    floor then holds for every size)."""
    floors: dict[str, float] = {}
    for node in graph.graph.node:
        if node.op_type != "GlobalAveragePool":
            continue
        x, y = ann.qparams_source(node.input[0]), ann.qparams_source(node.output[0])
        if x not in plan.activations or y not in plan.activations:
            continue
        shape = graph.value_shape(node.input[0]) or [None]
        sizes = [d for d in shape[2:] if isinstance(d, int) and d > 0]
        n = math.prod(sizes) if len(sizes) == len(shape) - 2 else 1
        floor = float(plan.activations[x].scale) / (256.0 * n) * (1 + 2.0 ** -20)
        if float(plan.activations[y].scale) < floor:
            floors[y] = max(floor, floors.get(y, 0.0))
    return floors


# operators whose output depends on their input's shape, never on its values
_SHAPE_READERS = frozenset({"Shape", "Size"})


def _shape_only(graph: Graph, tensor: str) -> bool:
    """True when `tensor` depends on the model's inputs through their shapes only (the zero
    initial state of an exported recurrence: ConstantOfShape(Shape(x))). Such a tensor is
    zero by construction, not for lack of data, and quantizes exactly (zero is always
    representable) under the zero-range rule of choose_qparams."""
    seen: set[str] = set()
    stack = [tensor]
    while stack:
        name = stack.pop()
        if name in seen or graph.is_constant(name):
            continue
        seen.add(name)
        node = graph.producer.get(name)
        if node is None:                   # a graph input, read for its values
            return False
        if node.op_type in _SHAPE_READERS or (node.op_type == "ConstantOfShape"):
            continue                       # values come from attributes, not the input
        if node.op_type in ("If", "Loop", "Scan"):
            return False
        stack.extend(i for i in node.input if i)
    return True


def _groupwise(value: np.ndarray, groups: int, target: Target) -> tuple[np.ndarray, QParams]:
    """One qparams per convolution group, expanded to per channel (exact in QDQ)."""
    from ..engines.qparams import groupwise_weight_qparams

    if groups == 1:
        return quantize_weight(value, None, target, "weight")
    qp = groupwise_weight_qparams(value, groups, target).expand_groups(value.shape[0])
    return quantize(value, qp), qp


def _wide_range(table: CalibrationTable, t: str) -> tuple[float, float]:
    """The range of a 16-bit tensor: the observed [min, max], whatever the method.

    A clipping method (percentile, entropy, mse) trades clipping error for rounding error,
    a trade sized for 8 bits; at 16 bits the rounding error of the full range is 256 times
    smaller and the clipping would remain as the tensor's main error. Without statistics
    (a table read with ranges only) the table's range stays.
    """
    if t not in table or table[t].is_empty:
        return table.ranges[t]
    return choose_range(table[t], CalibMethod.MINMAX)


def widened(target: Target) -> Target:
    """The target with 16-bit activations and weights (DNNLOWP_16)."""
    return dataclasses.replace(
        target,
        activation_qtype=QType.INT16 if target.activation_qtype.signed else QType.UINT16,
        weight_qtype=QType.INT16, reduce_range=False, weight_narrow_range=False)


def sixteen_bit_tensors(model: onnx.ModelProto, ann: Annotation, config: Config
                        ) -> tuple[set[str], set[str]]:
    """Activation tensors and weights of the nodes configured for 16 bits.

    A tensor shared by a 16-bit and an 8-bit node is 16-bit (QDQ types are per tensor).
    """
    wide_nodes = {n.name for n in model.graph.node
                  if n.name in config.sixteen_bit_nodes
                  or n.op_type in config.sixteen_bit_op_types}
    if not wide_nodes:
        return set(), set()
    tensors: set[str] = set()
    for n in model.graph.node:
        if n.name in wide_nodes:
            tensors.update(i for i in n.input if i)
            tensors.update(o for o in n.output if o)
    weights = {w for w, spec in ann.weights.items() if spec.node in wide_nodes}
    return tensors - weights, weights


def activation_qparams(lo: float, hi: float, target: Target, name: str,
                       min_scale: float = 0.0) -> QParams:
    """Activation qparams under `target`; `min_scale` may raise the target's minimum."""
    return choose_qparams(lo, hi, target.activation_qtype,
                          symmetric=target.activation_symmetric,
                          reduce_range=target.reduce_range,
                          min_scale=max(min_scale, target.min_scale), name=name)


def constant_operand_qparams(lo: float, hi: float, target: Target, name: str) -> QParams:
    """A constant operand of a quantized Add/Mul/Concat (policy ALL): stored like the
    target's weights when its storage type is the weights' (symmetric targets require that:
    a constant int8 tensor is a weight to them), else like an activation."""
    if target.activation_qtype != target.weight_qtype:
        return activation_qparams(lo, hi, target, name)
    return choose_qparams(lo, hi, target.weight_qtype, symmetric=target.weight_symmetric,
                          narrow_range=target.weight_narrow_range,
                          min_scale=target.min_scale, name=name)


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
