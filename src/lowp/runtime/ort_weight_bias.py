"""ONNX Runtime's WeightBiasQuantization, applied before lowering.

When a float Conv, ConvTranspose or Gemm reads a DequantizeLinear (per-tensor scale) and its
output reaches a QuantizeLinear through nothing but Relu or Clip, ONNX Runtime quantizes the
node's float constant weights and bias itself at load, so that its QDQ fusions run the node
as an integer operator (QLinearConv, QGemm): the weights per tensor to int8 with the
asymmetric parameters of its GetQuantizationParameter, the bias to int32 at
input scale x weight scale (Round, Cast). A QDQ file that leaves such a layer in float (an
accuracy fallback, a quantizer told to skip the operator) therefore runs it in integers in
ONNX Runtime; lowp rewrites the graph the same way so that both give the same integers
(docs/operators.md (O37)). The weights' QuantizeLinear is left for
lowering.fold_constant_quantize to compute (ONNX Runtime's rounding); the bias is computed
here, as ONNX Runtime's constant folding does (float32 product and quotient, rounding half
to even).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..ir.graph import ONNX_DOMAINS

_F = np.float32
_TARGETS = ("Conv", "ConvTranspose", "Gemm")


def weight_parameters(w: np.ndarray) -> tuple[np.float32, np.int8]:
    """GetQuantizationParameter<int8_t>: the range widened to hold 0, scale = range / 255,
    zero point -128 - min / scale clamped and rounded half to even (all in float32)."""
    lo = min(_F(w.min()), _F(0)) if w.size else _F(0)
    hi = max(_F(w.max()), _F(0)) if w.size else _F(0)
    scale = _F(1) if hi == lo else _F(_F(hi - lo) / _F(255))
    initial = _F(_F(-128) - _F(lo / scale))
    zp = np.rint(np.clip(initial, _F(-128), _F(127)))
    return scale, np.int8(zp)


def quantized_bias(bias: np.ndarray, input_scale: np.ndarray,
                   weight_scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int32 bias, its float32 scale): Cast(Round(bias / (input scale x weight scale)))."""
    scale = (np.asarray(input_scale, _F) * np.asarray(weight_scale, _F)).astype(_F)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        q = np.rint((np.asarray(bias, _F) / scale).astype(_F))
    return q.astype(np.int32), scale


class _Graph:
    """Producers, consumers and constants of one (top-level) graph."""

    def __init__(self, model: onnx.ModelProto) -> None:
        g = model.graph
        self.inputs = {i.name for i in g.input}
        self.inits = {t.name: t for t in g.initializer if t.name not in self.inputs}
        self.producer = {o: n for n in g.node for o in n.output if o}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in g.node:
            for i in n.input:
                if i:
                    self.consumers.setdefault(i, []).append(n)

    def constant(self, name: str) -> np.ndarray | None:
        """An initializer's value, or a Constant node's (ONNX Runtime's constant folding
        has made it an initializer before this rewrite)."""
        t = self.inits.get(name)
        if t is not None:
            return numpy_helper.to_array(t)
        node = self.producer.get(name)
        if node is None or node.op_type != "Constant" or node.domain not in ONNX_DOMAINS:
            return None
        value = next((a.t for a in node.attribute if a.name == "value"), None)
        return None if value is None else numpy_helper.to_array(value)

    def path_to_quantize(self, node: onnx.NodeProto, opset: int
                         ) -> tuple[onnx.NodeProto, str | None] | None:
        """IsNoBranchPathToQuantizeLinear, after ONNX Runtime's QDQ propagation: one output
        and one consumer each step, Relu or Clip, then data movement that the propagation
        crosses (a QuantizeLinear -> DequantizeLinear pair then sits before it), then the
        QuantizeLinear. (That QuantizeLinear, and the tensor before which the pair goes or
        None.)"""
        current, moved = node, None
        while True:
            if len(current.output) != 1:
                return None
            users = self.consumers.get(current.output[0], [])
            if len(users) != 1:
                return None
            user = users[0]
            if user.op_type == "QuantizeLinear":
                return user, moved
            if user.op_type in ("Relu", "Clip") and moved is None:
                current = user
                continue
            if not _propagates(user, opset):
                return None
            if moved is None:
                moved = current.output[0]
            current = user


def _propagates(node: onnx.NodeProto, opset: int) -> bool:
    """Whether ONNX Runtime's QDQ propagation carries a QuantizeLinear up across `node`."""
    if node.op_type in ("Reshape", "Transpose", "Squeeze", "Unsqueeze"):
        return True
    if node.op_type == "MaxPool":
        return opset >= 12 and len([o for o in node.output if o]) == 1
    return node.op_type == "Slice" and opset <= 13


def _scalar(a: np.ndarray | None) -> bool:
    return a is not None and a.size == 1 and a.ndim <= 1


def apply(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with ONNX Runtime's weight and bias quantization (a new model), or `model`
    itself when no node qualifies."""
    if not any(n.op_type in _TARGETS and n.domain in ONNX_DOMAINS for n in model.graph.node):
        return model
    g = _Graph(model)
    opset = next((int(o.version) for o in model.opset_import if o.domain in ONNX_DOMAINS), 0)
    new_nodes: dict[int, list[onnx.NodeProto]] = {}
    new_inits: list[onnx.TensorProto] = []
    rewired: dict[int, onnx.NodeProto] = {}
    pairs: list[tuple[str, onnx.NodeProto, str]] = []
    for k, node in enumerate(model.graph.node):
        if node.op_type not in _TARGETS or node.domain not in ONNX_DOMAINS or len(node.input) < 2:
            continue
        dq0 = g.producer.get(node.input[0])
        if dq0 is None or dq0.op_type != "DequantizeLinear" or len(dq0.input) < 2:
            continue
        in_scale = g.constant(dq0.input[1])
        path = g.path_to_quantize(node, opset) if _scalar(in_scale) else None
        if path is None:
            continue
        q_node, moved = path
        dq1 = g.producer.get(node.input[1])
        weight_dq = dq1 is not None and dq1.op_type == "DequantizeLinear"
        weights = None if weight_dq else g.constant(node.input[1])
        if not weight_dq and (weights is None or weights.dtype != np.float32):
            continue
        bias_name = node.input[2] if len(node.input) > 2 and node.input[2] else None
        bias = None
        if bias_name is not None:
            bias = g.constant(bias_name)
            if bias is None or bias.ndim != 1:
                continue
        if weight_dq and bias is None:
            continue
        per_channel = False
        if weight_dq:
            assert dq1 is not None
            w_scale = g.constant(dq1.input[1])
            if w_scale is None:
                continue
            if not _scalar(w_scale):
                per_channel = True
                attrs = {a.name: helper.get_attribute_value(a) for a in dq1.attribute}
                if (bias is None or w_scale.ndim != 1 or w_scale.size != bias.size
                        or attrs.get("block_size", 0)):
                    continue
                axis = int(attrs.get("axis", 1))
                w_shape = g.constant(dq1.input[0])
                if axis < 0:
                    if w_shape is None:
                        continue
                    axis += w_shape.ndim
                expected = 0
                if node.op_type == "Gemm":
                    tb = next((helper.get_attribute_value(a) for a in node.attribute
                               if a.name == "transB"), 0)
                    expected = 1 if tb == 0 else 0
                if axis != expected:
                    continue
        base = node.name or node.output[0]
        updated = onnx.NodeProto()
        updated.CopyFrom(node)
        added: list[onnx.NodeProto] = []
        if moved is not None:
            pairs.append((moved, q_node, base))
        if not weight_dq:
            assert weights is not None
            scale, zp = weight_parameters(weights)
            w_scale = np.asarray(scale, _F)
            names = [f"{base}_weight_scale", f"{base}_weight_zp", f"{base}_weight_q",
                     f"{base}_weight_dq"]
            new_inits += [numpy_helper.from_array(np.asarray(scale, _F), names[0]),
                          numpy_helper.from_array(np.asarray(zp, np.int8), names[1])]
            added += [helper.make_node("QuantizeLinear", [node.input[1], names[0], names[1]],
                                       [names[2]], name=names[2]),
                      helper.make_node("DequantizeLinear", [names[2], names[0], names[1]],
                                       [names[3]], name=names[3])]
            updated.input[1] = names[3]
        if bias is not None and bias_name is not None:
            assert in_scale is not None and w_scale is not None
            q, b_scale = quantized_bias(bias, in_scale.reshape(()), w_scale)
            names = [f"{base}_bias_int32", f"{base}_bias_scale", f"{base}_bias_dq"]
            new_inits += [numpy_helper.from_array(q, names[0]),
                          numpy_helper.from_array(np.asarray(b_scale, _F), names[1])]
            bias_dq = helper.make_node("DequantizeLinear", [names[0], names[1]], [names[2]],
                                       name=names[2])
            if per_channel:
                bias_dq.attribute.append(helper.make_attribute("axis", 0))
            added.append(bias_dq)
            updated.input[2] = names[2]
        new_nodes[k] = added
        rewired[k] = updated
    if not rewired:
        return model
    # the propagated QuantizeLinear -> DequantizeLinear pair, with the final one's parameters,
    # on the tensor that leaves the Relu / Clip (or the node itself)
    renamed: dict[str, str] = {}
    after: dict[str, list[onnx.NodeProto]] = {}
    for tensor, q_node, base in pairs:
        q_name, dq_name = f"{base}_propagated_q", f"{base}_propagated_dq"
        after[tensor] = [
            helper.make_node("QuantizeLinear", [tensor, *q_node.input[1:]], [q_name],
                             name=q_name),
            helper.make_node("DequantizeLinear", [q_name, *q_node.input[1:]], [dq_name],
                             name=dq_name)]
        renamed[tensor] = dq_name
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    for k, node in enumerate(model.graph.node):
        out.graph.node.extend(new_nodes.get(k, []))
        node = rewired.get(k, node)
        if any(i in renamed for i in node.input) and node.op_type != "QuantizeLinear":
            moved_node = onnx.NodeProto()
            moved_node.CopyFrom(node)
            for j, i in enumerate(moved_node.input):
                if i in renamed:
                    moved_node.input[j] = renamed[i]
            node = moved_node
        out.graph.node.append(node)
        for o in node.output:
            out.graph.node.extend(after.get(o, []))
    out.graph.initializer.extend(new_inits)
    return out
