"""ONNX Runtime's PreInliner (onnxruntime/core/optimizer/pre_inliner.cc) for CastLike,
mirrored first at load.

CastLike is an ONNX function (its body: one Cast to the element type of its second input,
with its `saturate` from opset 19) that ONNX Runtime's CPU provider has no kernel for: it
inlines every CastLike into that Cast before any other rewrite, in subgraphs too (and the
graph partitioner inlines any left when the optimizers are off). The other rewrites then see
a Cast: a CastLike to float32 that ends a float16 chain is one of the Cast pairs that
InsertCastTransformer's chains remove (lowp.runtime.ort_insert_cast, docs/operators.md
(O53), (O211)), where lowp, which ran the CastLike as written, rounded the chain's value
to float16 first. lowp replaces each CastLike whose target's element type is known with
that Cast; the values are the same, only the rewrites that follow change. A CastLike of a
constant stays: ONNX Runtime's ConstantFolding meets it as a CastLike, and inlining it
moved a float16 attention graph further from ONNX Runtime's results (docs/operators.md
(O211)).
"""

from __future__ import annotations

import onnx
from onnx import helper

from ..ir.graph import ONNX_DOMAINS, with_nodes
from .ort_cast_elimination import inferred_types


def apply(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with each CastLike of a known target type and a computed input written as its
    Cast (a new model), or `model` itself when it has none."""
    g = model.graph
    if not any(n.op_type == "CastLike" and n.domain in ONNX_DOMAINS for n in g.node):
        return model
    types = inferred_types(model)
    constant = {i.name for i in g.initializer} | {
        o for n in g.node if n.op_type == "Constant" for o in n.output}
    nodes = []
    changed = False
    for node in g.node:
        to = types.get(node.input[1]) if len(node.input) == 2 else None
        if node.op_type != "CastLike" or node.domain not in ONNX_DOMAINS or not to \
                or node.input[0] in constant:
            nodes.append(node)
            continue
        saturate = {a.name: a.i for a in node.attribute if a.name == "saturate"}
        nodes.append(helper.make_node("Cast", [node.input[0]], list(node.output),
                                      name=node.name, to=to, **saturate))
        changed = True
    if not changed:
        return model
    return with_nodes(model, nodes)
