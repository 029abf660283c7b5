"""Dynamic quantization: int8 weights offline, activations quantized per batch at run time.

Each MatMul/Gemm with a constant weight gets DynamicQuantizeLinear -> DequantizeLinear on its
activation input and DequantizeLinear on its int8 per-channel weight; no calibration. With
per-token activations (ActivationGranularity.PER_TOKEN) each row gets its own scale and the
product becomes MatMulInteger (passes.per_token).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from ..config import DYNAMIC_OPS, ActivationGranularity, Config
from ..ir.graph import Graph, attributes, node_reads
from ..ir.names import NameAllocator
from ..targets import WeightGranularity
from .annotate import RULES, Annotation, WeightSpec
from .choose import QuantPlan, quantize_weight
from .insert_qdq import insert_qdq
from .per_token import PerTokenBuilder


def dynamic_quantize(model: onnx.ModelProto, config: Config) -> onnx.ModelProto:
    """Return `model` with dynamic activation quantization around its matrix products."""
    if config.activation_granularity is ActivationGranularity.PER_TOKEN:
        return _per_token(model, config)
    graph = Graph(model)
    target = config.resolved_target()
    ann, plan = Annotation(), QuantPlan()
    activations: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        if not _quantizes(node, graph, config):
            continue
        rule = RULES[node.op_type]
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


def dynamic_nodes(model: onnx.ModelProto, config: Config) -> list[str]:
    """Names of the MatMul/Gemm nodes that dynamic mode quantizes (a constant weight, not
    excluded): per-token mode takes those of them with a 2-D float32 weight."""
    graph = Graph(model)
    return [n.name for n in model.graph.node if _quantizes(n, graph, config)]


def _quantizes(node: onnx.NodeProto, graph: Graph, config: Config) -> bool:
    """Whether per-tensor dynamic mode quantizes `node`."""
    if (node.op_type not in DYNAMIC_OPS or node.name in config.exclude_nodes
            or node.op_type in config.exclude_op_types or len(node.input) < 2):
        return False
    return RULES[node.op_type].applies(node, graph) and graph.is_constant(node.input[1])


def _per_token(model: onnx.ModelProto, config: Config) -> onnx.ModelProto:
    """Every eligible MatMul/Gemm becomes a per-token quantized product (D1)-(D4); the row
    quantization of an activation is shared by all its products."""
    graph = Graph(model)
    target = config.resolved_target()
    out = onnx.ModelProto()
    out.CopyFrom(model)
    builder = PerTokenBuilder(NameAllocator.for_model(model), graph.opset)
    rows = {}
    nodes: list[onnx.NodeProto] = []
    for node in model.graph.node:
        weight = _per_token_weight(node, graph, config)
        if weight is None:
            nodes.append(node)
            continue
        w, trans_b = weight
        axis = None if config.weight_granularity is WeightGranularity.PER_TENSOR else (
            0 if trans_b else 1)
        w_q, w_qp = quantize_weight(w, axis, target, node.input[1])
        if trans_b:
            w_q = np.ascontiguousarray(w_q.T)
        x = node.input[0]
        builder.nodes = []
        if x not in rows:
            rows[x] = builder.quantize_rows(x)
        bias = node.input[2] if node.op_type == "Gemm" and len(node.input) > 2 and (
            node.input[2]) else None
        builder.matmul(rows[x], w_q, w_qp, node.output[0], bias)
        nodes.extend(builder.nodes)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    out.graph.initializer.extend(builder.initializers)
    used = {i for n in nodes for i in node_reads(n)} | {o.name for o in out.graph.output}
    kept = [t for t in out.graph.initializer if t.name in used]
    del out.graph.initializer[:]
    out.graph.initializer.extend(kept)
    return out


def _per_token_weight(node: onnx.NodeProto, graph: Graph, config: Config
                      ) -> tuple[np.ndarray, bool] | None:
    """(float weight, transposed) of a MatMul/Gemm that per-token mode quantizes, or None."""
    if (node.op_type not in DYNAMIC_OPS or node.name in config.exclude_nodes
            or node.op_type in config.exclude_op_types or len(node.input) < 2
            or node.domain not in ("", "ai.onnx")):
        return None
    if not RULES[node.op_type].applies(node, graph) or not graph.is_constant(node.input[1]):
        return None
    w = graph.constant(node.input[1])
    if w.ndim != 2 or w.dtype != np.float32:
        return None
    trans_b = node.op_type == "Gemm" and bool(attributes(node).get("transB", 0))
    if node.op_type == "Gemm" and attributes(node).get("transA", 0):
        return None
    return w, trans_b
