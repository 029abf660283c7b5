"""A QuantizeLinear moved before the Concat of Slices of one value that it quantizes.

torch.onnx writes a circular padding as ``Concat(Slice(x), x, Slice(x))`` along time; a QDQ
file made by lowp quantizes the Concat's float output for the convolution that reads it.
A per-tensor QuantizeLinear maps each element on its own, and Slice and Concat only move
elements, so

    Q(Concat(Slice(x), x, Slice(x))) == Concat(Slice(Q(x)), Q(x), Slice(Q(x)))

element for element, in any engine. The right-hand side quantizes x once (the padded
output is up to twice as long as x: dilation 4096 around 7500 steps) and moves 8-bit
values instead of float32 ones. Applied when the Concat's parts are x itself or Slices of
x that nothing else reads, the Concat's only reader is the QuantizeLinear (with constant
scalar scale and zero point), and none of them is a graph output or read from a
subgraph. Only the top-level graph is rewritten; the result is a new model.
"""

from __future__ import annotations

import onnx

from ..ir.graph import ONNX_DOMAINS
from .ort_qdq_propagation import QdqGraph


def apply(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with each such QuantizeLinear moved before its Concat (a new model), or
    `model` itself when it has none."""
    joined = {n.output[0] for n in model.graph.node
              if n.op_type == "Concat" and n.domain in ONNX_DOMAINS and n.output}

    def quantizes_a_concat(node: onnx.NodeProto) -> bool:
        return node.op_type == "QuantizeLinear" and node.domain in ONNX_DOMAINS and \
            bool(node.input) and node.input[0] in joined

    if not any(quantizes_a_concat(n) for n in model.graph.node):
        return model
    out, g = QdqGraph.editable_copy(model)
    changed = False
    for q in list(g.nodes):
        if not quantizes_a_concat(q) or g.scalar_parameters(q) is None:
            continue
        concat = g.producer(q.input[0])
        if concat is None or concat.op_type != "Concat" or concat.domain not in ONNX_DOMAINS \
                or not _read_only_by(g, concat.output[0], q):
            continue
        moved = _one_source(g, concat)
        if moved is None:
            continue
        source, slices = moved
        quantized = g.fresh(f"{source}_quantized")
        first = min(g.nodes.index(n) for n in (*slices, concat))
        g.nodes.insert(first, onnx.helper.make_node(
            "QuantizeLinear", [source, *q.input[1:]], [quantized], name=g.fresh(q.name or "Q")))
        g.nodes[first].attribute.extend(q.attribute)
        for node in slices:
            node.input[0] = quantized
        for k, name in enumerate(concat.input):
            if name == source:
                concat.input[k] = quantized
        concat.output[0] = q.output[0]
        g.nodes.remove(q)
        g.edited()
        changed = True
    if not changed:
        return model
    return g.write_nodes(out)


def _read_only_by(g: QdqGraph, name: str, node: onnx.NodeProto) -> bool:
    """`name` is no graph output and `node` is its one reader."""
    return g.single_reader(name) is node


def _one_source(g: QdqGraph, concat: onnx.NodeProto
                ) -> tuple[str, list[onnx.NodeProto]] | None:
    """(x, the Slices) when every part of `concat` is x or a Slice of x read only by it,
    with at least one Slice; else None."""
    sources: set[str] = set()
    slices: list[onnx.NodeProto] = []
    for name in concat.input:
        node = g.producer(name) if name else None
        if node is not None and node.op_type == "Slice" and node.domain in ONNX_DOMAINS \
                and _read_only_by(g, name, concat):
            sources.add(node.input[0])
            slices.append(node)
        elif name:
            sources.add(name)
        else:
            return None
    if len(sources) != 1 or not slices:
        return None
    return sources.pop(), slices
