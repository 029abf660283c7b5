"""ONNX Runtime's ConvAddActivationFusion (level 3, CPU), mirrored at load after
lowp.runtime.ort_fusions.

A float Conv with a bias whose only reader is an Add of two 4-D tensors of one shape
becomes one com.microsoft FusedConv(X, W, B, Sum), Sum the Add's other input, with the Add's
only reader folded in as its `activation` when it is Relu, Sigmoid, Tanh, LeakyRelu,
HardSigmoid or a Clip of constant bounds. ONNX Runtime's kernel copies Sum into the output
and lets MLAS's im2col SGEMM accumulate onto it (beta 1), the bias and the activation after
(lowp.runtime.float_nn.FusedConv); the unfused nodes add Sum last, so the two round
differently (centerface: 28% of its output values 1-2 ulps apart). ONNX Runtime's matching
rules (conv_add_act_fusion.cc): Conv of any version (1, 11 or 22 in ONNX Runtime 1.32,
whose rule lists 1 and 11), float input, one output edge and
not a graph output; Add of version 7, 13 or 14 with two inputs of rank 4 whose dimensions
are all known values (not 0) or names, equal one for one; of the Add's producers in node
order, the first Conv with a bias, one output edge and no fused activation is fused (not
always the one that triggered the match). The layout transformer runs first: a Conv it moves
to MLAS's NCHWc kernels (lowp.runtime.nchwc_conv.plan) is no longer a Conv there, and is
skipped here. A Conv that reads a DequantizeLinear output stays as it is (lowp lowers such
groups itself; docs/operators.md (O31f)).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..ir.graph import (
    ONNX_DOMAINS,
    constant_tensors,
    infer_shapes,
    opset_of,
    read_counts,
    with_nodes,
)
from . import nchwc_conv
from .ort_conv_bn import _version
from .ort_fusions import _without_invented_symbols

_MS = "com.microsoft"
_CONV_SINCE, _CONV_FUSED = (1, 11, 22), frozenset({1, 11, 22})
_ADD_SINCE, _ADD_FUSED = (1, 6, 7, 13, 14), frozenset({7, 13, 14})
# activation -> (its versions, the ones ONNX Runtime's rule accepts)
_ACTIVATIONS: dict[str, tuple[tuple[int, ...], frozenset[int]]] = {
    "Relu": ((1, 6, 13, 14), frozenset({6, 13, 14})),
    "Sigmoid": ((1, 6, 13), frozenset({6, 13})),
    "Tanh": ((1, 6, 13), frozenset({6, 13})),
    "LeakyRelu": ((1, 6, 16), frozenset({6, 16})),
    "Clip": ((1, 6, 11, 12, 13), frozenset({6, 11, 12, 13})),
    "HardSigmoid": ((1, 6, 22), frozenset({6})),
}


def _dims(v: onnx.ValueInfoProto | None) -> list[onnx.TensorShapeProto.Dimension] | None:
    if v is None or not v.type.HasField("tensor_type") or \
            not v.type.tensor_type.HasField("shape"):
        return None
    return list(v.type.tensor_type.shape.dim)


def _same_shapes(a: list[onnx.TensorShapeProto.Dimension] | None,
                 b: list[onnx.TensorShapeProto.Dimension] | None) -> bool:
    """SelectProducerConv's shape test: both of rank 4, every dimension of the first a
    known value (not 0) or a name, and the second equal to it (the same value, or the
    same name)."""
    if a is None or b is None or len(a) != 4 or len(b) != 4:
        return False
    for x, y in zip(a, b, strict=True):
        if not (x.HasField("dim_value") and x.dim_value != 0) and not x.dim_param:
            return False
        if not y.HasField("dim_value") or x.dim_value != y.dim_value:
            if not (x.dim_param and y.dim_param and x.dim_param == y.dim_param):
                return False
    return True


def _clip_bounds(node: onnx.NodeProto, opset: int, consts: dict[str, onnx.TensorProto]
                 ) -> list[float] | None:
    """GetClipConstantMinMax: the attributes before opset 11, else constant inputs (absent
    ones the float limits), or None when a bound is computed at run time."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if opset < 11:
        return [float(attrs.get("min", np.finfo(np.float32).min)),
                float(attrs.get("max", np.finfo(np.float32).max))]
    bounds = [float(np.finfo(np.float32).min), float(np.finfo(np.float32).max)]
    for k, name in enumerate(node.input[1:3]):
        if not name:
            continue
        if name not in consts:
            return None
        bounds[k] = float(numpy_helper.to_array(consts[name]).reshape(-1)[0])
    return bounds


def _activation(node: onnx.NodeProto, opset: int, consts: dict[str, onnx.TensorProto]
                ) -> dict[str, Any] | None:
    """The FusedConv attributes for activation `node`, or None when it does not fuse."""
    versions = _ACTIVATIONS.get(node.op_type)
    if node.domain not in ONNX_DOMAINS or versions is None or \
            _version(versions[0], opset) not in versions[1]:
        return None
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    params: list[float] = []
    if node.op_type == "LeakyRelu":
        params = [float(attrs.get("alpha", 0.01))]
    elif node.op_type == "HardSigmoid":
        params = [float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))]
    elif node.op_type == "Clip":
        bounds = _clip_bounds(node, opset, consts)
        if bounds is None:
            return None
        params = bounds
    out: dict[str, Any] = {"activation": node.op_type}
    if params:
        out["activation_params"] = params
    return out


def apply(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with every Conv -> Add (-> activation) that ONNX Runtime fuses replaced by a
    com.microsoft FusedConv (a new model), or `model` itself when there is none."""
    g = model.graph
    opset = opset_of(model)
    if (_version(_CONV_SINCE, opset) not in _CONV_FUSED
            or _version(_ADD_SINCE, opset) not in _ADD_FUSED
            or not any(n.op_type == "Conv" and n.domain in ONNX_DOMAINS for n in g.node)):
        return model
    shaped = _without_invented_symbols(infer_shapes(model), model)
    values = {v.name: v for v in (*shaped.graph.input, *shaped.graph.value_info,
                                  *shaped.graph.output)}
    consts = constant_tensors(model.graph)
    reads = read_counts(g)
    outputs = {o.name for o in g.output}
    producer = {o: n for n in g.node for o in n.output if o}
    consumer = {i: n for n in g.node for i in n.input if i}
    position = {id(n): k for k, n in enumerate(g.node)}

    def single_use(name: str) -> bool:
        return reads[name] == 1 and name not in outputs

    def is_float(name: str) -> bool:
        v = values.get(name)
        t = consts[name].data_type if name in consts else \
            (v.type.tensor_type.elem_type if v is not None else 0)
        return t == onnx.TensorProto.FLOAT

    def plain_conv(n: onnx.NodeProto) -> bool:
        """A Conv the layout transformer leaves in NCHW, not fed by a DequantizeLinear."""
        if n.op_type != "Conv" or n.domain not in ONNX_DOMAINS or len(n.input) < 2:
            return False
        if any(producer.get(i) is not None and producer[i].op_type == "DequantizeLinear"
               for i in n.input if i):
            return False
        w = consts.get(n.input[1])
        if w is None:
            return True
        group = next((a.i for a in n.attribute if a.name == "group"), 1)
        b_const = len(n.input) < 3 or not n.input[2] or n.input[2] in consts
        return nchwc_conv.plan((0, 0, 0, 0), tuple(w.dims), group, True, b_const) is None

    fused: dict[int, onnx.NodeProto] = {}      # id(last replaced node) -> FusedConv
    gone: set[int] = set()
    for conv in g.node:
        if not plain_conv(conv) or id(conv) in gone or not is_float(conv.input[0]) \
                or not single_use(conv.output[0]):
            continue
        add = consumer[conv.output[0]]
        if (add.op_type != "Add" or add.domain not in ONNX_DOMAINS or len(add.input) != 2
                or id(add) in gone
                or not _same_shapes(_dims(values.get(add.input[0])),
                                    _dims(values.get(add.input[1])))):
            continue
        parents = sorted({id(p): p for p in (producer.get(i) for i in add.input)
                          if p is not None}.values(), key=lambda p: position[id(p)])
        target = next((p for p in parents if plain_conv(p) and id(p) not in gone
                       and len(p.input) >= 3 and p.input[2]
                       and single_use(p.output[0])), None)
        if target is None:
            continue
        act = consumer.get(add.output[0]) if single_use(add.output[0]) else None
        attrs = _activation(act, opset, consts) if act is not None else None
        last = act if attrs is not None else add
        assert last is not None
        other = add.input[1] if add.input[0] == target.output[0] else add.input[0]
        conv_attrs = {a.name: helper.get_attribute_value(a) for a in target.attribute}
        node = helper.make_node("FusedConv", [*target.input[:3], other], list(last.output),
                                name=(target.name or target.output[0]) + "_FusedConv",
                                domain=_MS, **conv_attrs, **(attrs or {}))
        gone |= {id(target), id(add), id(last)}
        fused[id(last)] = node
    if not fused:
        return model
    # the FusedConv goes where its last node was: the Sum may be made after the Conv
    return with_nodes(model, [fused.get(id(n), n) for n in g.node
                              if id(n) in fused or id(n) not in gone], domains=[_MS])
