"""Dynamic quantization: int8 weights offline, activations quantized per batch at run time.

Each MatMul/Gemm with a constant weight gets DynamicQuantizeLinear -> DequantizeLinear on its
activation input and DequantizeLinear on its int8 per-channel weight; no calibration.
"""

from __future__ import annotations

import onnx
from onnx import helper

from ..config import DYNAMIC_OPS, Config
from ..ir.graph import Graph
from ..ir.names import NameAllocator
from ..targets import WeightGranularity
from .annotate import RULES, Annotation, WeightSpec
from .choose import QuantPlan, quantize_weight
from .insert_qdq import insert_qdq


def dynamic_quantize(model: onnx.ModelProto, config: Config) -> onnx.ModelProto:
    """Return `model` with dynamic activation quantization around its matrix products."""
    graph = Graph(model)
    target = config.resolved_target()
    ann, plan = Annotation(), QuantPlan()
    activations: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        if (node.op_type not in DYNAMIC_OPS or node.name in config.exclude_nodes
                or node.op_type in config.exclude_op_types or len(node.input) < 2):
            continue
        rule = RULES[node.op_type]
        if not rule.applies(node, graph) or not graph.is_constant(node.input[1]):
            continue
        w = node.input[1]
        axis = rule.weight_axis(node, graph) if rule.weight_axis else None
        if config.weight_granularity is WeightGranularity.PER_TENSOR:
            axis = None
        if w not in ann.weights:
            ann.weights[w] = WeightSpec(node.name, axis)
            plan.weights[w] = quantize_weight(graph.constant(w).astype("float32"), axis,
                                              target, w)
        ann.nodes.append(node.name)
        activations.setdefault(node.input[0], []).append(node)
    out = insert_qdq(model, ann, plan)
    names = NameAllocator.for_model(out)
    new_nodes: list[onnx.NodeProto] = []
    rewired = {}
    for x in activations:
        q, s, z = (names.fresh(f"{x}_dynamic_{k}") for k in ("quantized", "scale", "zero_point"))
        dq = names.fresh(f"{x}_dynamic_dequantized")
        new_nodes.append(helper.make_node("DynamicQuantizeLinear", [x], [q, s, z],
                                          name=names.fresh(f"{x}_DynamicQuantizeLinear")))
        new_nodes.append(helper.make_node("DequantizeLinear", [q, s, z], [dq],
                                          name=names.fresh(f"{x}_DequantizeLinear")))
        rewired[x] = (dq, new_nodes[-2:])
    quantized = set(ann.nodes)
    nodes: list[onnx.NodeProto] = []
    placed: set[str] = set()
    for node in out.graph.node:
        if node.name in quantized and node.input[0] in rewired:
            x = node.input[0]
            dq, pair = rewired[x]
            if x not in placed:
                nodes.extend(pair)
                placed.add(x)
            node.input[0] = dq
        nodes.append(node)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return out
