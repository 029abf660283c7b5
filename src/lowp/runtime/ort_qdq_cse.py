"""ONNX Runtime's CommonSubexpressionElimination of QuantizeLinear / DequantizeLinear nodes,
applied before the other Q/DQ rewrites.

At load ONNX Runtime's ConstantSharing (level 1) makes float32 initializers of one element
and equal value one initializer, and CommonSubexpressionElimination (level 1) keeps one of
several nodes of the same operator, attributes and inputs. So the pairs that the quantizer's
DedicatedQDQPair option writes (x -> Q_a -> DQ_a -> op1, x -> Q_b -> DQ_b -> op2, the same
scale and zero point) become one QuantizeLinear and one DequantizeLinear read by both
operators, and the QDQ selectors see the operator before them with one QuantizeLinear
reader: DQ -> Softmax -> Q becomes QLinearSoftmax, which it does not with two
(docs/operators.md (O177)). lowp merges the same nodes: QuantizeLinear and DequantizeLinear
of the default domain whose inputs are the same names, or float32 one-element initializers
of equal bits (int8 / uint8 zero points of equal value under other names are not shared by
ONNX Runtime, nor here). A node with a graph output, or whose output a subgraph reads, is
kept. Only the top-level graph is rewritten.
"""

from __future__ import annotations

import math

import onnx
from onnx import numpy_helper

from ..ir.graph import ONNX_DOMAINS, subgraph_reads, with_nodes

_MERGED = ("QuantizeLinear", "DequantizeLinear")


def apply(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with duplicate QuantizeLinear / DequantizeLinear nodes merged (a new model), or
    `model` itself when it has none."""
    graph = model.graph
    shared: dict[str, tuple[object, ...]] = {}   # ConstantSharing: name -> value key
    for t in graph.initializer:     # (only one-element tensors are read into numpy)
        if t.data_type == onnx.TensorProto.FLOAT and math.prod(t.dims) == 1:
            shared[t.name] = ("float32", tuple(t.dims), numpy_helper.to_array(t).tobytes())
    kept = {o.name for o in graph.output}.union(*map(subgraph_reads, graph.node))
    renamed: dict[str, str] = {}
    seen: dict[tuple[object, ...], onnx.NodeProto] = {}
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        node = _renamed(node, renamed)
        if node.op_type not in _MERGED or node.domain not in ONNX_DOMAINS:
            nodes.append(node)
            continue
        key = (node.op_type, tuple(shared.get(i, i) for i in node.input),
               tuple(a.SerializeToString() for a in sorted(node.attribute, key=lambda a: a.name)))
        first = seen.get(key)
        if first is None or any(o in kept for o in (*node.output, *first.output)):
            seen.setdefault(key, node)
            nodes.append(node)
            continue
        renamed.update(zip(node.output, first.output, strict=True))
    if not renamed:
        return model
    return with_nodes(model, nodes)


def _renamed(node: onnx.NodeProto, renamed: dict[str, str]) -> onnx.NodeProto:
    if not any(i in renamed for i in node.input):
        return node
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    copy.input[:] = [renamed.get(i, i) for i in node.input]
    return copy
