"""If nodes whose condition is an initializer are replaced by the branch they always take.

Exporters leave such Ifs behind when an input was frozen into a constant (Silero VAD's sample
rate: its decoder is a whole LSTM inside `If(sr == 16000)`). Run as a control-flow step, a
branch's steps run one by one from Python on every call and never replay; inlined, they are
ordinary steps of the plan. The branch's nodes keep their names (ONNX names are unique
across nested scopes), its initializers join the graph's, and an Identity per output binds
the If's output names; a branch that would clash with a name of the graph stays an If.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


def inline_constant_ifs(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with every main-graph If on a constant condition inlined (nested ones too,
    once their enclosing If is inlined); the same object when there is none."""
    graph = model.graph
    if not any(n.op_type == "If" for n in graph.node):
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    while _inline_one(out.graph):
        pass
    return out


def _condition(graph: onnx.GraphProto, name: str) -> bool | None:
    for t in graph.initializer:
        if t.name == name:
            value = numpy_helper.to_array(t)
            return bool(np.asarray(value).reshape(-1)[0]) if value.size == 1 else None
    return None


def _defined(graph: onnx.GraphProto, skip: onnx.NodeProto | None = None) -> set[str]:
    """Every name a graph and its nested subgraphs define (but those of `skip`'s
    subgraphs)."""
    names = {t.name for t in graph.initializer} | {i.name for i in graph.input}
    for node in graph.node:
        names.update(o for o in node.output if o)
        if node is skip:
            continue
        for a in node.attribute:
            for g in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                names |= _defined(g)
    return names


def _inline_one(graph: onnx.GraphProto) -> bool:
    """Inline the first If of `graph` on a constant condition; False when there is none."""
    for position, node in enumerate(graph.node):
        if node.op_type != "If" or not node.input or not node.input[0]:
            continue
        cond = _condition(graph, node.input[0])
        if cond is None:
            continue
        branch = next((a.g for a in node.attribute
                       if a.name == ("then_branch" if cond else "else_branch")), None)
        if branch is None or len(branch.output) != len(node.output):
            continue
        own = {t.name for t in branch.initializer} | {n for b in branch.node for n in b.output}
        if own & _defined(graph, skip=node):
            continue
        nodes = list(branch.node) + [
            helper.make_node("Identity", [o.name], [y], name=f"{node.name}/{y}/Identity")
            for o, y in zip(branch.output, node.output, strict=True) if y]
        graph.initializer.extend(branch.initializer)
        del graph.node[position]
        for k, n in enumerate(nodes):
            graph.node.insert(position + k, n)
        return True
    return False

