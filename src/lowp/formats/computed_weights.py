"""QLinearConv weights that a QOperator file computes from constants, computed once at load.

ONNX Runtime's quantizer, given a model whose weights are weight-only int8
(Mul(Cast(int8), scale)), quantizes that Mul like any other: a QLinearMul of the quantized
Cast and the quantized scale whose output is the QLinearConv weight. ONNX Runtime computes
that chain with its kernels (its constant folding at load) and convolves with the result.
Here the chain is run once on lowp's engine, whose QuantizeLinear and QLinearMul compute
ONNX Runtime's bits (docs/operators.md (O11a), (O221)), and its integers become the
weight's initializer; the QLinearConv then converts as one with a stored weight.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..ir.graph import Graph

# operator -> the input holding its integer weight
_WEIGHT_INPUT = {"QLinearConv": 3}


def computed_weights(model: onnx.ModelProto) -> list[str]:
    """The integer weights of `model`'s QLinearConv nodes that nodes compute from constants
    alone (weights that are initializers, or that depend on a graph input, are not
    listed)."""
    graph = Graph(model)
    found: list[str] = []
    for node in model.graph.node:
        k = _WEIGHT_INPUT.get(node.op_type)
        if (k is None or node.domain not in ("", "ai.onnx") or len(node.input) <= k
                or graph.is_constant(node.input[k]) or node.input[k] in found):
            continue
        if _cone(graph, node.input[k]) is not None:
            found.append(node.input[k])
    return found


def _cone(graph: Graph, name: str) -> list[onnx.NodeProto] | None:
    """The nodes that compute `name` from constants, or None when one of them reads a graph
    input, has a subgraph, or reads a tensor nothing produces."""
    seen: dict[int, onnx.NodeProto] = {}
    todo = [name]
    while todo:
        t = todo.pop()
        if not t or graph.is_constant(t):
            continue
        node = graph.producer.get(t)
        if node is None or any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                               for a in node.attribute):
            return None
        if id(node) not in seen:
            seen[id(node)] = node
            todo.extend(node.input)
    return list(seen.values())


def fold_computed_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with its computed QLinearConv weights (`computed_weights`) as initializers
    holding the integers lowp's engine computes for them; the model itself when it has none.
    The input model is not modified."""
    weights = computed_weights(model)
    if not weights:
        return model
    values = _run_cones(model, weights)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    out.graph.initializer.extend(numpy_helper.from_array(values[w], w) for w in weights)
    computed = set(weights)
    nodes = [n for n in out.graph.node if not computed.intersection(n.output)]
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return out


def _run_cones(model: onnx.ModelProto, weights: list[str]) -> dict[str, np.ndarray]:
    """Each weight's value, from one run of a model of the nodes that compute them."""
    from ..runtime.session import Session

    graph = Graph(model)
    wanted: set[int] = set()
    for w in weights:
        wanted.update(id(n) for n in _cone(graph, w) or ())
    nodes = [n for n in model.graph.node if id(n) in wanted]
    reads = {i for n in nodes for i in n.input if i}
    initializers = [t for t in model.graph.initializer if t.name in reads]
    outputs = [helper.make_tensor_value_info(w, _elem_type(graph, w), None) for w in weights]
    sub = helper.make_model(
        helper.make_graph(nodes, "computed_weights", [], outputs, initializers),
        opset_imports=list(model.opset_import), ir_version=model.ir_version)
    return Session(sub, backend="reference").run({})


def _elem_type(graph: Graph, weight: str) -> int:
    """The weight's integer type: its zero point's (the QLinearConv input after its scale)."""
    for node in graph.consumers[weight]:
        k = _WEIGHT_INPUT.get(node.op_type)
        if k is not None and node.input[k] == weight and graph.is_constant(node.input[k + 2]):
            return helper.np_dtype_to_tensor_dtype(graph.constant(node.input[k + 2]).dtype)
    return graph.value_elem_type(weight) or onnx.TensorProto.UINT8
