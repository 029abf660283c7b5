"""Per-channel activation grids along pointwise Conv -> channel-wise op -> depthwise Conv.

A depthwise convolution reads one input channel per output channel, and the channels of its
input can differ in range by tens of times (MobileNetV3-style networks: a 1x1 Conv, a
HardSwish, a depthwise Conv). On one grid per tensor the narrowest channels keep a few of
the 256 levels; on one grid per channel each keeps them all (docs/accuracy.md, "Per-channel
activation grids along pointwise -> depthwise chains"). This pass rewrites the Q/DQ pairs of
such a chain (the pointwise Conv's output, the channel-wise op's output) with one scale and
zero point per channel (QuantizeLinear / DequantizeLinear with axis 1), from the min/max of
each channel on the calibration feeds.

The grids are int8 (asymmetric, one zero point per channel): ONNX Runtime's QLinearConv
refuses per-channel activation parameters, and its x86 Conv selector leaves a group with an
int8 activation, or an output type other than the input's, unfused (DequantizeLinear ->
float Conv -> QuantizeLinear), which runs them as written (docs/operators.md (O239),
(O240)). lowp's engine runs those groups as ONNX Runtime does, in float.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import QuantizationError
from ..ir.graph import Graph, attributes
from ..ir.names import NameAllocator
from ..qparams import PerAxis, QParams, QType, choose_qparams
from ..targets import Target
from .calibrate import expose_tensors, float_session, run_exposed

# Operators that act on each element alone, so a per-channel grid passes through them, and
# that ONNX Runtime runs in float between Q/DQ pairs (it fuses Sigmoid and LeakyRelu into
# table kernels that refuse per-channel activations, (O239))
CHANNEL_WISE_OPS = frozenset({"HardSwish", "Relu", "Clip", "HardSigmoid", "Tanh"})
CHANNEL_AXIS = 1


@dataclass(frozen=True)
class QdqPair:
    """One QuantizeLinear -> DequantizeLinear pair of the QDQ model: `tensor` is the
    DequantizeLinear's output (the float model's name of the activation)."""

    q: onnx.NodeProto
    dq: onnx.NodeProto

    @property
    def tensor(self) -> str:
        return str(self.dq.output[0])


def _pair_before(graph: Graph, tensor: str) -> QdqPair | None:
    """The Q -> DQ pair that produces `tensor`, each node read by the next alone."""
    dq = graph.producer.get(tensor)
    if dq is None or dq.op_type != "DequantizeLinear":
        return None
    q = graph.producer.get(dq.input[0])
    if (q is None or q.op_type != "QuantizeLinear"
            or len(graph.consumers.get(q.output[0], [])) != 1
            or len(graph.consumers.get(tensor, [])) != 1
            or tensor in graph.output_names or _per_axis(q, graph)):
        return None
    return QdqPair(q, dq)


def _per_axis(node: onnx.NodeProto, graph: Graph) -> bool:
    return not graph.is_constant(node.input[1]) or graph.constant(node.input[1]).size != 1


def _weight_shape(conv: onnx.NodeProto, graph: Graph) -> tuple[int, ...] | None:
    """The shape of a Conv's constant weight (behind its DequantizeLinear), or None."""
    w = conv.input[1] if len(conv.input) > 1 else ""
    dq = graph.producer.get(w)
    if dq is not None and dq.op_type == "DequantizeLinear":
        w = dq.input[0]
    return tuple(graph.constant(w).shape) if graph.is_constant(w) else None


def _dense(node: onnx.NodeProto | None, graph: Graph) -> bool:
    """A 2-D Conv with one group (a pointwise 1x1 Conv, or a network's first Conv): each
    output channel its own weights, so its own grid costs nothing there."""
    if node is None or node.op_type != "Conv" or int(attributes(node).get("group", 1)) != 1:  # type: ignore[call-overload]
        return False
    shape = _weight_shape(node, graph)
    return shape is not None and len(shape) == 4


def _depthwise(node: onnx.NodeProto, graph: Graph) -> bool:
    """A 2-D Conv with one input and one output channel per group."""
    if node.op_type != "Conv":
        return False
    shape = _weight_shape(node, graph)
    group = int(attributes(node).get("group", 1))  # type: ignore[call-overload]
    return shape is not None and len(shape) == 4 and group > 1 and shape[:2] == (group, 1)


def chain_pairs(model: onnx.ModelProto) -> list[QdqPair]:
    """The Q/DQ pairs to put on per-channel grids: walking back from each depthwise Conv's
    input through a pair, then (optionally) a channel-wise operator and its input's pair, to
    a Conv of one group. Nothing else reads any of them."""
    graph = Graph(model)
    pairs: list[QdqPair] = []
    for node in model.graph.node:
        if not _depthwise(node, graph):
            continue
        last = _pair_before(graph, node.input[0])
        if last is None:
            continue
        producer = graph.producer.get(last.q.input[0])
        if _dense(producer, graph):
            pairs.append(last)
            continue
        if (producer is None or producer.op_type not in CHANNEL_WISE_OPS
                or len(graph.consumers.get(last.q.input[0], [])) != 1):
            continue
        first = _pair_before(graph, producer.input[0])
        if first is not None and _dense(graph.producer.get(first.q.input[0]), graph):
            pairs.extend([first, last])
    return pairs


def channel_ranges(float_model: onnx.ModelProto, tensors: list[str],
                   feeds: Iterable[Mapping[str, np.ndarray]]
                   ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-channel (axis 1) min and max of `tensors` over the feeds, in the float model."""
    session = float_session(expose_tensors(float_model, tensors), mem_pattern=False)
    ranges: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for feed in feeds:
        for t, v in zip(tensors, run_exposed(session, tensors, feed), strict=True):
            axes = tuple(a for a in range(v.ndim) if a != CHANNEL_AXIS)
            lo, hi = v.min(axis=axes), v.max(axis=axes)
            if t in ranges:
                lo, hi = np.minimum(ranges[t][0], lo), np.maximum(ranges[t][1], hi)
            ranges[t] = (lo.astype(np.float32), hi.astype(np.float32))
    return ranges


def channel_qtype(target: Target) -> QType:
    """The storage type of `target`'s per-channel activation grids; refused when it takes
    none."""
    if target.channel_activation_qtype is None:
        raise QuantizationError(f"target '{target.name}' takes no per-channel activations: "
                                "per_channel_chains needs target 'lowp' or 'onnxruntime'")
    return target.channel_activation_qtype


def channel_qparams(lo: np.ndarray, hi: np.ndarray, name: str, target: Target) -> QParams:
    """Asymmetric qparams of `target`'s per-channel activation type, one scale and zero
    point per channel, for [lo, hi]."""
    return choose_qparams(lo, hi, channel_qtype(target), granularity=PerAxis(CHANNEL_AXIS),
                          min_scale=target.min_scale, name=name)


def per_channel_chains(qdq: onnx.ModelProto, float_model: onnx.ModelProto,
                       feeds: Iterable[Mapping[str, np.ndarray]], target: Target
                       ) -> tuple[onnx.ModelProto, list[str]]:
    """The QDQ model with every chain pair on per-channel grids (min/max per channel on
    `feeds`), and the tensors rewritten; the input model is not modified."""
    channel_qtype(target)
    pairs = chain_pairs(qdq)
    if not pairs:
        return qdq, []
    ranges = channel_ranges(float_model, [p.tensor for p in pairs], feeds)
    out = onnx.ModelProto()
    out.CopyFrom(qdq)
    names = NameAllocator.for_model(out)
    nodes = {n.output[0]: n for n in out.graph.node}
    for pair in pairs:
        qp = channel_qparams(*ranges[pair.tensor], pair.tensor, target)
        scale, zero_point = names.fresh(f"{pair.tensor}_channel_scale"), names.fresh(
            f"{pair.tensor}_channel_zero_point")
        out.graph.initializer.extend([
            numpy_helper.from_array(qp.scale.astype(np.float32), scale),
            numpy_helper.from_array(qp.zero_point.astype(qp.qtype.numpy_dtype), zero_point)])
        for node in (nodes[pair.q.output[0]], nodes[pair.dq.output[0]]):
            node.input[1], node.input[2] = scale, zero_point
            del node.attribute[:]
            node.attribute.append(helper.make_attribute("axis", CHANNEL_AXIS))
    retyped = {p.q.output[0] for p in pairs}          # uint8 before, int8 now
    infos = [v for v in out.graph.value_info if v.name not in retyped]
    del out.graph.value_info[:]
    out.graph.value_info.extend(infos)
    used = {i for n in out.graph.node for i in n.input}
    kept = [t for t in out.graph.initializer if t.name in used]
    del out.graph.initializer[:]
    out.graph.initializer.extend(kept)
    return out, [p.tensor for p in pairs]
