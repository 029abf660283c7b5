"""ONNX Runtime's NotWhereFusion (level 1), mirrored at load: Where(Not(c), a, b) runs as
Where(c, b, a).

The two are the same selection, but ONNX Runtime's Where gives one operand's -0 as +0
(docs/operators.md (O345)), and which one depends on the operands' places: after the swap
the -0 that comes out +0 is the other operand's ((O347)).

The matching rule (not_where_fusion.cc): a Where whose condition is a Not's output that is
no graph output, where every reader of the Not (when it has several) is a Where; each of
them then reads the Not's input with its value inputs swapped, and the Not goes. lowp also
asks that each reader reads the Not at its condition only (ONNX Runtime would rewrite a
Where reading it as a value too, into another selection).
"""

from __future__ import annotations

import onnx

from ..ir.graph import is_onnx_op, read_counts, with_nodes


def apply(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with each Not that ONNX Runtime folds into its Where readers removed and
    those Wheres' value inputs swapped (a new model), or `model` itself when there is none."""
    g = model.graph
    if not any(is_onnx_op(n, "Not") for n in g.node) or \
            not any(is_onnx_op(n, "Where") for n in g.node):
        return model
    outputs = {o.name for o in g.output}
    reads = read_counts(g)
    readers: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    swapped: dict[str, str] = {}                # a folded Not's output -> its input
    for node in g.node:
        if not is_onnx_op(node, "Not") or len(node.input) != 1 or node.output[0] in outputs:
            continue
        out = node.output[0]
        users = readers.get(out, [])
        if (not users or reads.get(out, 0) != len(users)        # (a subgraph's read)
                or not all(is_onnx_op(u, "Where") and len(u.input) == 3 and u.input[0] == out
                           and out not in u.input[1:] for u in users)):
            continue
        swapped[out] = node.input[0]
    if not swapped:
        return model
    nodes = []
    for node in g.node:
        if is_onnx_op(node, "Not") and node.output[0] in swapped:
            continue
        if is_onnx_op(node, "Where") and node.input[0] in swapped:
            new = onnx.NodeProto()
            new.CopyFrom(node)
            new.input[:] = [swapped[node.input[0]], node.input[2], node.input[1]]
            node = new
        nodes.append(node)
    return with_nodes(model, nodes)
