"""ONNX Runtime's NCHWc Add fusion (NchwcTransformerImpl::TransformBinary, level 3, CPU),
mirrored at load after lowp.runtime.ort_fusions and before lowp.runtime.ort_conv_add.

The layout transformer moves most float 2-D Convs to MLAS's NCHWc kernels
(lowp.runtime.nchwc_conv). An Add (or a two-input Sum) of two values it keeps in that layout
(lowp.runtime.ort_context.ort_nchwc) with the same channel count and a shape it can prove equal
(`nchwc_same_shapes`: tracked through the Convs and pools that keep a dimension, or inferred
as the same size or name) is folded into the Convolution that makes one of them: the Conv
takes the other as its Sum, and MLAS adds its first block of input channels to the Sum
instead of starting from it, the later blocks and the bias after (docs/operators.md (O31n)).
The Conv of the Add's first input is tried first, then the second's; it must be a Conv the
transformer moved (not a BatchNormalization it rewrote as one: those are left unfused here,
and so is the Add), read by the Add alone (one edge, not a graph output), without a fused
activation and without a Sum already. Here the pair becomes one com.microsoft FusedConv(X, W,
B, Sum) (lowp.runtime.float_nn.FusedConv), at the Add's place (the Sum may be made after the
Conv). An activation after the Add (ONNX Runtime fuses Relu, Sigmoid or Tanh into the Conv
then) stays a node: it rounds the same. A Conv that reads a DequantizeLinear output is left
alone (QDQ groups become QLinearConv first in ONNX Runtime).
"""

from __future__ import annotations

import onnx
from onnx import helper

from ..ir.graph import ONNX_DOMAINS, Graph, infer_shapes, read_counts, with_nodes
from .ort_context import (
    batch_norm_context,
    channel_count,
    eliminated_identity,
    nchwc_same_shapes,
    ort_nchwc,
)
from .ort_fusions import _without_invented_symbols

_MS = "com.microsoft"


def apply(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with every Conv -> Add pair that ONNX Runtime's layout transformer fuses
    replaced by a com.microsoft FusedConv (a new model), or `model` itself when none does."""
    from . import nchwc_conv

    g = model.graph
    if not nchwc_conv.block_size() or not any(
            n.op_type in ("Add", "Sum") and n.domain in ONNX_DOMAINS for n in g.node):
        return model
    graph = Graph(_without_invented_symbols(infer_shapes(model), model))
    reads = read_counts(g)
    outputs = {o.name for o in g.output}

    def uses(name: str) -> int:
        """The edges of `name` once ONNX Runtime removed the Identity nodes after it
        (`eliminated_identity`), one more for a graph output."""
        identities = {r.output[0]: r for r in graph.consumers.get(name, [])
                      if eliminated_identity(r, graph)}
        return reads[name] + int(name in outputs) + sum(uses(o) - 1 for o in identities)

    def single_use(name: str) -> bool:
        return uses(name) == 1

    def source(name: str) -> tuple[str, list[onnx.NodeProto]]:
        """`name` before the eliminated Identity nodes that pass it on, and those."""
        chain = []
        p = graph.producer.get(name)
        while p is not None and eliminated_identity(p, graph):
            chain.append(p)
            name = p.input[0]
            p = graph.producer.get(name)
        return name, chain

    def channels(name: str) -> int | None:
        shape = graph.inferred_shape(name)
        c = shape[1] if shape is not None and len(shape) == 4 else None
        return c if isinstance(c, int) and c > 0 else channel_count(name, graph)

    def conv_of(name: str) -> onnx.NodeProto | None:
        p = graph.producer.get(name)
        if p is None or p.op_type != "Conv" or p.domain not in ONNX_DOMAINS or any(
                graph.producer.get(i) is not None
                and graph.producer[i].op_type == "DequantizeLinear" for i in p.input if i):
            return None
        return p

    def bn_conv(name: str) -> bool:
        """A BatchNormalization the transformer runs as an NCHWc Conv, read by the Add
        alone: ONNX Runtime fuses the Add into it (not mirrored)."""
        p = graph.producer.get(name)
        return (p is not None and p.op_type == "BatchNormalization" and single_use(name)
                and bool(batch_norm_context(p, graph)["nchwc"]))

    fused: dict[str, onnx.NodeProto] = {}      # the Add's output -> FusedConv
    gone: set[str] = set()                     # first outputs of the nodes it replaces
    for add in graph.graph.node:
        if add.op_type not in ("Add", "Sum") or add.domain not in ONNX_DOMAINS \
                or len(add.input) != 2 or not all(add.input) or len(add.output) != 1:
            continue
        sources = [source(i) for i in add.input]
        ins = [name for name, _ in sources]
        if (not all(ort_nchwc(i, graph) for i in ins)
                or channels(ins[0]) is None or channels(ins[0]) != channels(ins[1])
                or not nchwc_same_shapes(ins, graph)):
            continue
        for k in (0, 1):
            if bn_conv(ins[k]):
                break
            conv = conv_of(ins[k])
            if conv is None or conv.output[0] in gone or not single_use(ins[k]):
                continue
            attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
            bias = conv.input[2] if len(conv.input) > 2 else ""
            fused[add.output[0]] = helper.make_node(
                "FusedConv", [conv.input[0], conv.input[1], bias, ins[1 - k]],
                list(add.output), name=(conv.name or conv.output[0]) + "_nchwc_sum",
                domain=_MS, **attrs)
            gone |= {conv.output[0], add.output[0], *(n.output[0] for n in sources[k][1])}
            break
    if not fused:
        return model
    return with_nodes(model, [fused.get(n.output[0], n) for n in g.node
                              if not n.output or n.output[0] not in gone
                              or n.output[0] in fused], domains=[_MS])
