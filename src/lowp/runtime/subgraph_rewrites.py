"""Load rewrites applied inside subgraphs (Loop and Scan bodies, If branches) as well.

ONNX Runtime runs each of its graph transformers on the main graph and then, through
GraphTransformer::Recurse, on every subgraph of every node, nested ones included: a MatMul
and its bias Add inside a Loop body fuse into one Gemm there as they would outside it (tf2onnx's
Keras LSTM: x_t · W + h · R becomes Gemm(x_t, W, h · R), which starts from h · R and so
rounds otherwise, (O33s)). `in_subgraphs(rewrite)` is `rewrite` followed by the same rewrite
of each subgraph, seen as a model of its own:

* its inputs (a Loop's iteration number, condition and carried values) and the values it
  reads from enclosing scopes are the model's inputs, never constants: ONNX Runtime's
  constant checks (graph_utils::IsConstantInitializer / GetConstantInitializer with
  check_outer_scope) look through to an enclosing graph's initializers only, so those, and
  the enclosing graphs' Constant outputs (initializers in ONNX Runtime), are the model's
  initializers while it is rewritten, and are left out of the subgraph again after;
* the shapes of the values read from outside are those inferred in the enclosing graph;
  a Loop body's own inputs keep the shapes the body declares (ONNX's Loop inference clears
  the carried values' shapes before inferring the body).

The rewritten subgraph keeps its inputs, takes the rewritten nodes, outputs and the
initializers the rewrite made, and the enclosing model takes any opset import it added.
"""

from __future__ import annotations

from collections.abc import Callable

import onnx
from onnx import helper

from ..ir.graph import constant_tensors, free_names, infer_shapes

Rewrite = Callable[[onnx.ModelProto], onnx.ModelProto]


def in_subgraphs(rewrite: Rewrite) -> Rewrite:
    """`rewrite`, then the same rewrite of every subgraph (depth first) of the result."""
    def apply(model: onnx.ModelProto) -> onnx.ModelProto:
        return rewrite_subgraphs(rewrite(model), rewrite)
    apply.__name__ = apply.__qualname__ = getattr(rewrite, "__module__", "rewrite").rsplit(
        ".", 1)[-1] + "+subgraphs"
    apply.__wrapped__ = rewrite    # type: ignore[attr-defined]
    return apply


def _has_subgraph(graph: onnx.GraphProto) -> bool:
    return any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
               for n in graph.node for a in n.attribute)


def _constants(graph: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    """The graph's constants (ir.graph.constant_tensors), each a tensor named as it is read
    (a Constant node's value copied under its output's name)."""
    out = {}
    for name, t in constant_tensors(graph).items():
        if t.name != name:
            named = onnx.TensorProto()
            named.CopyFrom(t)
            named.name = name
            t = named
        out[name] = t
    return out


def _value_infos(model: onnx.ModelProto) -> dict[str, onnx.ValueInfoProto]:
    g = infer_shapes(model).graph
    return {v.name: v for v in (*g.input, *g.value_info, *g.output)}


def rewrite_subgraphs(model: onnx.ModelProto, rewrite: Rewrite) -> onnx.ModelProto:
    """`model` with `rewrite` applied to each of its subgraphs (a new model), or `model`
    itself when no subgraph changes."""
    if not _has_subgraph(model.graph):
        return model
    constants = _constants(model.graph)
    infos: dict[str, onnx.ValueInfoProto] | None = None
    out = onnx.ModelProto()
    out.CopyFrom(model)
    changed = False
    for node in out.graph.node:
        for attr in node.attribute:
            subs = ([attr.g] if attr.type == onnx.AttributeProto.GRAPH
                    else list(attr.graphs) if attr.type == onnx.AttributeProto.GRAPHS else [])
            for sub in subs:
                if infos is None:
                    infos = _value_infos(model)
                new, opsets = _rewritten(sub, model, rewrite, constants, infos)
                if new is None:
                    continue
                sub.CopyFrom(new)
                changed = True
                for o in opsets:
                    if not any(p.domain == o.domain for p in out.opset_import):
                        out.opset_import.append(o)
    return out if changed else model


def _rewritten(sub: onnx.GraphProto, model: onnx.ModelProto, rewrite: Rewrite,
               constants: dict[str, onnx.TensorProto],
               infos: dict[str, onnx.ValueInfoProto]
               ) -> tuple[onnx.GraphProto | None, list[onnx.OperatorSetIdProto]]:
    """The subgraph rewritten (None when nothing changed), and the opset imports of the
    model it was rewritten as."""
    own = {t.name for t in sub.initializer}
    free = sorted(free_names(sub))
    borrowed = [constants[n] for n in free if n in constants and n not in own]
    graph = onnx.GraphProto()
    graph.CopyFrom(sub)
    graph.input.extend(infos.get(n) or helper.make_empty_tensor_value_info(n)
                       for n in free if n not in constants)
    graph.initializer.extend(borrowed)
    standalone = helper.make_model(graph, opset_imports=list(model.opset_import),
                                   ir_version=model.ir_version)
    done = rewrite_subgraphs(rewrite(standalone), rewrite)
    if done is standalone:
        return None, []
    lent = {t.name: t for t in borrowed}
    result = onnx.GraphProto()
    result.CopyFrom(sub)
    del result.node[:]
    result.node.extend(done.graph.node)
    del result.initializer[:]
    result.initializer.extend(t for t in done.graph.initializer
                              if t.name not in lent or t != lent[t.name])
    del result.output[:]
    result.output.extend(done.graph.output)
    made = {o for n in done.graph.node for o in n.output}
    del result.value_info[:]
    result.value_info.extend(v for v in done.graph.value_info if v.name in made)
    return result, list(done.opset_import)
