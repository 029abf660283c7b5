"""A MaxPool moved before the Relu that feeds it, onto the integers of a QDQ pair.

Keras CNNs exported by tf2onnx pool after each activation: a QDQ file then reads
``DequantizeLinear(q) -> Relu -> MaxPool`` in float (the pool's output goes on to a float
BatchNormalization, so no QuantizeLinear closes the group), and every float step runs on
the full-size convolution output. With a per-tensor DequantizeLinear of positive scale s
and zero point z, dq(c) = float32(c - z) * s is non-decreasing in the code c, and Relu is
non-decreasing too, so a maximum passes through both:

    MaxPool(Relu(dq(q))) == Relu(dq(MaxPool(q))) == Relu(dq(Q(MaxPool(dq(q)))))

element for element (docs/operators.md (O7b)): every window holds input taps only (no pads,
no ceil_mode), dq never gives NaN or -0, and quantizing dq(c) with the same s and z gives
back c (|c - z| <= 255 steps of a normal scale: the division is off by far less than half
a step). The right-hand side is written as ``DequantizeLinear -> MaxPool ->
QuantizeLinear -> DequantizeLinear -> Relu``: lowp runs the first three as its integer
MaxPool (O7) on the codes, then dequantizes and rectifies a quarter of the values (2x2
windows of stride 2). Applied when the DequantizeLinear has constant scalar parameters of
an 8-bit type, each value has one reader and none is a graph output or read from a
subgraph; only the top-level graph is rewritten; the result is a new model.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..ir.graph import ONNX_DOMAINS
from .ort_qdq_propagation import QdqGraph

_SMALLEST_SCALE = np.float32(2.0 ** -100)   # dq(c) stays a normal float32 for |c - z| >= 1


def apply(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with each such MaxPool moved before its Relu (a new model), or `model`
    itself when it has none."""
    if not any(n.op_type == "MaxPool" and n.domain in ONNX_DOMAINS for n in model.graph.node):
        return model
    out, g = QdqGraph.editable_copy(model)
    changed = False
    for pool in list(g.nodes):
        found = _chain(g, pool)
        if found is None:
            continue
        dq, relu = found
        pooled = g.fresh(f"{pool.output[0]}_codes_max")
        codes = g.fresh(f"{pool.output[0]}_codes")
        values = g.fresh(f"{pool.output[0]}_values")
        result = pool.output[0]
        g.nodes.remove(relu)
        pool.input[0] = dq.output[0]
        pool.output[0] = pooled
        relu.input[0] = values
        relu.output[0] = result
        at = g.nodes.index(pool) + 1
        g.nodes[at:at] = [
            helper.make_node("QuantizeLinear", [pooled, *dq.input[1:]], [codes],
                             name=g.fresh(f"{pool.name or 'MaxPool'}_Q")),
            helper.make_node("DequantizeLinear", [codes, *dq.input[1:]], [values],
                             name=g.fresh(f"{pool.name or 'MaxPool'}_DQ")),
            relu]
        g.edited()
        changed = True
    if not changed:
        return model
    return g.write_nodes(out)


def _chain(g: QdqGraph, pool: onnx.NodeProto
           ) -> tuple[onnx.NodeProto, onnx.NodeProto] | None:
    """(DequantizeLinear, Relu) of DequantizeLinear -> Relu -> `pool` as the module says,
    or None."""
    if pool.op_type != "MaxPool" or pool.domain not in ONNX_DOMAINS or len(pool.output) != 1 \
            or not _no_pads(pool):
        return None
    relu = g.producer(pool.input[0])
    if relu is None or relu.op_type != "Relu" or relu.domain not in ONNX_DOMAINS \
            or g.single_reader(relu.output[0]) is not pool:
        return None
    dq = g.producer(relu.input[0])
    if dq is None or dq.op_type != "DequantizeLinear" or dq.domain not in ONNX_DOMAINS \
            or g.single_reader(dq.output[0]) is not relu or len(dq.input) < 3 \
            or g.scalar_parameters(dq) is None or not dq.input[2]:
        return None
    scale = numpy_helper.to_array(g.inits[dq.input[1]]).reshape(-1)[0]
    zero = numpy_helper.to_array(g.inits[dq.input[2]])
    if scale.dtype != np.float32 or zero.dtype not in (np.uint8, np.int8) \
            or not (np.isfinite(scale) and scale >= _SMALLEST_SCALE):
        return None
    return dq, relu


def _no_pads(pool: onnx.NodeProto) -> bool:
    """Every window of `pool` lies inside its input: no pads, no ceil_mode, no SAME_*."""
    attrs = {a.name: helper.get_attribute_value(a) for a in pool.attribute}
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
    return auto_pad in ("NOTSET", "VALID") and not any(attrs.get("pads", [])) \
        and not attrs.get("ceil_mode", 0)
