"""The local-error model: a QDQ model rewired so that every quantized layer reads the float
model's values of its inputs, which measures the error each layer adds by itself."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import onnx

from ..ir.graph import Graph
from ..ir.names import NameAllocator


@dataclass(frozen=True)
class LocalModel:
    """A QDQ model whose layers compute from float inputs (see `local_model`).

    Attributes
    ----------
    model
        The rewired model; its outputs are the original outputs plus every tensor in
        `measured`.
    feeds
        New graph input -> the tensor of the float model whose value it is fed.
    measured
        The activation tensors (outputs of DequantizeLinear) the model exposes.
    """

    model: onnx.ModelProto
    feeds: dict[str, str]
    measured: list[str]


def local_model(qdq: onnx.ModelProto, measured: list[str],
                ranks: Mapping[str, int]) -> LocalModel:
    """Rewire `qdq` so that each quantized tensor is computed from float values.

    In a QDQ model each quantized activation `t` is `DQ(Q(x))`, with `x` computed by its
    producer, and its readers take `t`. Here every reader of `t` takes a copy of the pair,
    `DQ'(Q'(t_float))`, with the same scale and zero point, fed a new graph input that
    carries the float model's value of `t`. So `t` itself is still its producer's output
    quantized, but the producer (and any float node between two quantized tensors) now
    computes from the float model's values of its inputs, rounded as the quantized model
    rounds them. The difference between `t` here and `t` in the float model is the error
    the layer adds by itself: rounding of its inputs, of its weights, of its output and
    its integer arithmetic, without the errors of the layers before it.

    A tensor whose quantize node reads a graph input is its own input already and is left
    as it is; readers inside subgraphs (If, Loop) keep the accumulated value.

    Parameters
    ----------
    qdq
        The QDQ model.
    measured
        DequantizeLinear outputs to rewire and expose (per-tensor activations whose float
        values are known).
    ranks
        Rank of each measured tensor: the new inputs are declared with that many free axes.
    """
    out = onnx.ModelProto()
    out.CopyFrom(qdq)
    g = Graph(qdq)
    names = NameAllocator.for_model(qdq)
    inputs = set(g.input_names)
    feeds: dict[str, str] = {}
    copies: dict[str, str] = {}                 # t -> the locally fed copy of t
    new_nodes: list[onnx.NodeProto] = []
    for t in measured:
        dq = g.producer.get(t)
        q = g.producer.get(dq.input[0]) if dq is not None else None
        if (dq is None or q is None or q.op_type != "QuantizeLinear" or q.input[0] in inputs
                or t not in ranks):
            continue
        fed = names.fresh(f"{t}_float_in")
        quantized = names.fresh(f"{t}_local_quantized")
        copy = names.fresh(f"{t}_local")
        new_nodes.append(onnx.helper.make_node(
            "QuantizeLinear", [fed, *q.input[1:]], [quantized], names.fresh(f"{q.name}_local"),
            **{a.name: onnx.helper.get_attribute_value(a) for a in q.attribute}))
        new_nodes.append(onnx.helper.make_node(
            "DequantizeLinear", [quantized, *dq.input[1:]], [copy],
            names.fresh(f"{dq.name}_local"),
            **{a.name: onnx.helper.get_attribute_value(a) for a in dq.attribute}))
        out.graph.input.append(onnx.helper.make_tensor_value_info(
            fed, onnx.TensorProto.FLOAT, [f"{fed}_{i}" for i in range(ranks[t])]))
        feeds[fed] = t
        copies[t] = copy
    for node in out.graph.node:
        for i, name in enumerate(node.input):
            if name in copies:
                node.input[i] = copies[name]
    # the copies go first: they read graph inputs only, so the order stays topological
    nodes = [*new_nodes, *out.graph.node]
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    present = {o.name for o in out.graph.output}
    for t in measured:
        if t not in present and t in ranks:
            out.graph.output.append(onnx.helper.make_tensor_value_info(
                t, onnx.TensorProto.FLOAT, [f"{t}_{i}" for i in range(ranks[t])]))
            present.add(t)
    return LocalModel(out, feeds, [t for t in measured if t in ranks])
