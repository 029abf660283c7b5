"""Close DequantizeLinear chains that ONNX Runtime would extend itself, and cannot.

ONNX Runtime's QDQ propagation moves a DequantizeLinear down through MaxPool, Reshape,
Transpose, Squeeze, Unsqueeze and Slice when no QuantizeLinear follows them, inserting a
QuantizeLinear -> DequantizeLinear pair after the node. From opset 21 on, for int8 (and
other non-uint8) data, the QuantizeLinear it makes declares `output_dtype` int8 next to a
uint8 zero point, and the session fails to load: "output_dtype INT8 does not match
y_zero_point type UINT8" (ONNX Runtime 1.32). lowp writes that pair itself, with the
DequantizeLinear's own scale and zero point. These nodes only move or select values, so
QuantizeLinear(DequantizeLinear(q)) after them is exactly q: the pair changes no value on
any engine, and ONNX Runtime then has nothing to propagate.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from ..ir.graph import opset_of
from ..ir.names import NameAllocator

# ONNX Runtime's QDQ propagation (CanNodePropagate): the data input is input 0
PROPAGATING = frozenset({"MaxPool", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Slice"})
FIRST_AFFECTED_OPSET = 21


def close_propagation(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with a QuantizeLinear -> DequantizeLinear pair after every propagating node
    that reads a non-uint8, per-tensor DequantizeLinear output and is not followed by a
    QuantizeLinear (in place; returned for chaining). Nothing changes below opset 21."""
    if opset_of(model) < FIRST_AFFECTED_OPSET:
        return model
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    names = NameAllocator.for_model(model)
    changed = True
    while changed:                      # a new pair may feed another propagating node
        changed = False
        consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in g.node:
            for i in n.input:
                consumers.setdefault(i, []).append(n)
        for dq in list(g.node):
            if dq.op_type != "DequantizeLinear" or dq.domain not in ("", "ai.onnx"):
                continue
            if not _closable(dq, inits):
                continue
            for node in consumers.get(dq.output[0], []):
                if (node.op_type not in PROPAGATING or node.domain not in ("", "ai.onnx")
                        or not node.input or node.input[0] != dq.output[0]):
                    continue
                out = node.output[0]
                if any(c.op_type == "QuantizeLinear" for c in consumers.get(out, [])):
                    continue
                _insert_pair(g, node, dq, names)
                changed = True
            if changed:
                break
    return model


def _closable(dq: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> bool:
    """An activation's per-tensor DequantizeLinear of a type other than uint8."""
    if len(dq.input) < 3 or dq.input[0] in inits:
        return False
    scale, zero = inits.get(dq.input[1]), inits.get(dq.input[2])
    if scale is None or zero is None or list(scale.dims) not in ([], [1]):
        return False
    return zero.data_type != TensorProto.UINT8


def _insert_pair(g: onnx.GraphProto, node: onnx.NodeProto, dq: onnx.NodeProto,
                 names: NameAllocator) -> None:
    out = node.output[0]
    moved = names.fresh(f"{out}_moved")
    quantized = names.fresh(f"{out}_quantized")
    node.output[0] = moved
    q = helper.make_node("QuantizeLinear", [moved, dq.input[1], dq.input[2]], [quantized],
                         name=names.fresh(f"{out}_QuantizeLinear"))
    d = helper.make_node("DequantizeLinear", [quantized, dq.input[1], dq.input[2]], [out],
                         name=names.fresh(f"{out}_DequantizeLinear"))
    at = list(g.node).index(node) + 1
    g.node.insert(at, d)
    g.node.insert(at, q)
    for v in g.value_info:
        if v.name == out:
            g.value_info.remove(v)
            break
