"""ONNX Runtime's EliminateIdentity and NoopElimination (level 1), mirrored at load before
lowp.runtime.ort_fusions.

Both remove nodes that compute nothing, and so change no value; but ONNX Runtime's fusions
after them match nodes that are next to each other, and paddle2onnx writes an Identity
after nearly every residual branch and `x * s + 0` for a scale: in PP-OCRv6's recogniser
ONNX Runtime fuses an attention's Mul into its MatMul (FusedMatMul alpha), a residual Add
into a SkipLayerNormalization and an RMSNorm (after the Transpose moved), none of which
lowp matched through the Identity and Add 0 nodes (docs/operators.md, (O54)).

* EliminateIdentity: an Identity's readers read its input. When its output is a graph
  output, the node making its input writes that output instead, if the Identity is the
  input's only reader and the input no graph output itself.
* NoopElimination: x + 0, 0 + x, x - 0, x * 1, 1 * x and x / 1, the constant (an
  initializer or a Constant) of at most one element (none counts too), of a rank no greater
  than x's, x of known shape (so that nothing broadcasts) and made by a node; the constant
  float32, float16, double, int32 or int64 and equal to 0 or 1 read as a float.

A node whose output is a graph output (but for the Identity above) stays, as in ONNX
Runtime (graph_utils::CanRemoveNode); lowp also keeps one whose output a subgraph (If,
Loop, Scan) reads, which ONNX Runtime renames inside the subgraph.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from ..ir.graph import ONNX_DOMAINS, constant_tensors, subgraph_reads
from .ort_fusions import _ort_inferred

# the value each operator drops, and whether the constant may be its first input
_NOOP = {"Add": (0.0, True), "Sub": (0.0, False), "Mul": (1.0, True), "Div": (1.0, False)}
_NOOP_TYPES = frozenset({TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE,
                         TensorProto.INT32, TensorProto.INT64})


def _ranks(model: onnx.ModelProto) -> dict[str, int]:
    """The rank of every value whose shape ONNX Runtime's inference would know."""
    g = _ort_inferred(model).graph
    ranks = {t.name: len(t.dims) for t in g.initializer}
    for v in (*g.input, *g.value_info, *g.output):
        if v.type.HasField("tensor_type") and v.type.tensor_type.HasField("shape"):
            ranks[v.name] = len(v.type.tensor_type.shape.dim)
    return ranks


def _noop_input(node: onnx.NodeProto, constants: dict[str, onnx.TensorProto],
                ranks: dict[str, int], made: set[str]) -> str | None:
    """The input a no-op Add, Sub, Mul or Div passes on, else None."""
    if len(node.input) != 2:
        return None
    is_const = [i in constants for i in node.input]
    if is_const[0] == is_const[1]:
        return None
    k = 0 if is_const[0] else 1
    identity, either_side = _NOOP[node.op_type]
    if k == 0 and not either_side:
        return None
    tensor, x = constants[node.input[k]], node.input[1 - k]
    if x not in made or x not in ranks or len(tensor.dims) > ranks[x]:
        return None
    size = int(np.prod(tensor.dims))
    if size > 1:
        return None
    if size == 1:
        if tensor.data_type not in _NOOP_TYPES:
            return None
        if np.float32(numpy_helper.to_array(tensor).reshape(-1)[0]) != np.float32(identity):
            return None
    return x


def apply(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` without the Identity and no-op arithmetic nodes ONNX Runtime removes (a new
    model), or `model` itself when it has none."""
    if not any(n.domain in ONNX_DOMAINS and (n.op_type == "Identity" or n.op_type in _NOOP)
               for n in model.graph.node):
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    every = list(g.node)        # one Python object per node (ids stay valid)
    outputs = {o.name for o in g.output}
    keep = set().union(*(subgraph_reads(n) for n in every))
    constants = constant_tensors(g)
    made = {o for n in every for o in n.output if o}
    ranks: dict[str, int] | None = None
    renamed: dict[str, str] = {}
    removed: set[int] = set()
    to_output: list[onnx.NodeProto] = []
    for node in every:
        if node.domain not in ONNX_DOMAINS or len(node.output) != 1 or node.output[0] in keep:
            continue
        name = node.output[0]
        if node.op_type == "Identity" and len(node.input) == 1 and node.input[0]:
            if name in outputs:
                to_output.append(node)
                continue
            passed: str | None = node.input[0]
        elif node.op_type in _NOOP and name not in outputs:
            if ranks is None:
                ranks = _ranks(model)   # shape inference only once a candidate is found
            passed = _noop_input(node, constants, ranks, made)
        else:
            continue
        if passed is not None:
            renamed[name] = passed
            removed.add(id(node))

    def source(name: str) -> str:
        while name in renamed:
            name = renamed[name]
        return name

    nodes = [n for n in every if id(n) not in removed]
    for node in nodes:
        for k, name in enumerate(node.input):
            if name in renamed:
                node.input[k] = source(name)
    # an Identity writing a graph output: its input's maker writes that output instead
    reads = Counter(i for n in nodes for i in n.input if i)
    reads.update(keep)
    producer = {o: n for n in nodes for o in n.output if o}
    moved: set[str] = set()
    for node in to_output:
        src = node.input[0]
        maker = producer.get(src)
        if maker is None or maker.op_type == "Identity" or reads[src] != 1 or src in outputs:
            continue
        maker.output[list(maker.output).index(src)] = node.output[0]
        moved.add(src)
        removed.add(id(node))
    if not removed:
        return model
    del g.node[:]
    g.node.extend(n for n in nodes if id(n) not in removed)
    gone = set(renamed) | moved
    infos = [v for v in g.value_info if v.name not in gone]
    del g.value_info[:]
    g.value_info.extend(infos)
    return out
