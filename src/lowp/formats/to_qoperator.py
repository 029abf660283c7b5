"""QDQ -> QOperator: each DequantizeLinear -> op -> QuantizeLinear group that has a
quantized operator becomes that operator (QLinearConv, QLinearMatMul, com.microsoft QGemm,
QLinearAdd, ...), with the same scales, zero points and integers; data movement between
equal qparams runs on the integers. Groups with no QOperator form (16-bit, a float or
rescaled bias, per-channel activations, a fused Relu) stay as they are.

`FROM_QDQ` maps each float op type to the function that builds its quantized node; it
returns False, having emitted nothing, when the group does not fit the quantized operator.
Only groups whose scales and zero points are constants, with the zero points given, are
converted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import onnx

from ..ir.graph import attributes, node_reads, opset_of
from .qoperator import DIRECT_8BIT
from .rewrite import MS_DOMAIN, Rewrite, is_default_domain

_EIGHT_BIT = (np.dtype(np.uint8), np.dtype(np.int8))


@dataclass(frozen=True)
class QInput:
    """An integer tensor read through a DequantizeLinear: (tensor, scale, zero point)."""

    name: str
    scale: str
    zero_point: str
    dtype: np.dtype


class ToQOperator(Rewrite):
    """The QDQ -> QOperator rewrite; `absorbed` holds the QuantizeLinear nodes that a
    quantized operator replaced."""

    def __init__(self, model: onnx.ModelProto) -> None:
        super().__init__(model)
        self.dq_of = {n.output[0]: n for n in model.graph.node
                      if n.op_type == "DequantizeLinear" and is_default_domain(n)}
        self.absorbed: set[int] = set()
        self.opset = opset_of(model)

    def _params(self, qdq: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray] | None:
        g = self.graph
        if len(qdq.input) < 3 or not (g.is_constant(qdq.input[1]) and
                                      g.is_constant(qdq.input[2])):
            return None
        if int(attributes(qdq).get("block_size", 0)):  # type: ignore[call-overload]
            return None
        return g.constant(qdq.input[1]), g.constant(qdq.input[2])

    def activation(self, name: str) -> QInput | None:
        """`name` as a per-tensor 8-bit activation behind a DequantizeLinear."""
        dq = self.dq_of.get(name)
        params = self._params(dq) if dq is not None else None
        if dq is None or params is None:
            return None
        scale, zp = params
        if scale.size != 1 or zp.dtype not in _EIGHT_BIT:
            return None
        return QInput(dq.input[0], dq.input[1], dq.input[2], zp.dtype)

    def weight(self, name: str, axis: int) -> QInput | None:
        """`name` as constant 8-bit integers behind a DequantizeLinear, per tensor or per
        `axis` (normalized to the weight's rank)."""
        dq = self.dq_of.get(name)
        if dq is None or not self.graph.is_constant(dq.input[0]):
            return None
        params = self._params(dq)
        if params is None:
            return None
        scale, zp = params
        w = self.graph.constant(dq.input[0])
        if w.dtype not in _EIGHT_BIT:
            return None
        if scale.size > 1:
            dq_axis = int(attributes(dq).get("axis", 1))  # type: ignore[call-overload]
            if dq_axis % w.ndim != axis % w.ndim:
                return None
        return QInput(dq.input[0], dq.input[1], dq.input[2], w.dtype)

    def bias(self, name: str, scale: np.ndarray) -> str | None:
        """The int32 integers behind `name` when its DequantizeLinear has exactly `scale`
        and zero point 0 (what a quantized operator assumes)."""
        dq = self.dq_of.get(name)
        if dq is None or not self.graph.is_constant(dq.input[0]):
            return None
        params = self._params(dq)
        if params is None or self.graph.constant(dq.input[0]).dtype != np.int32:
            return None
        b_scale, zp = params
        want = np.asarray(scale, np.float32).reshape(-1)
        have = np.asarray(b_scale, np.float32).reshape(-1)
        try:
            shape = np.broadcast_shapes(have.shape, want.shape)
        except ValueError:
            return None
        if np.any(zp) or not np.array_equal(np.broadcast_to(have, shape),
                                            np.broadcast_to(want, shape)):
            return None
        return dq.input[0]

    def output(self, node: onnx.NodeProto, dtype: np.dtype) -> onnx.NodeProto | None:
        """The one QuantizeLinear reading `node`'s output, per tensor, of type `dtype`."""
        out = node.output[0]
        readers = self.graph.consumers.get(out, [])
        if (len(node.output) != 1 or len(readers) != 1 or out in self.graph.output_names
                or readers[0].op_type != "QuantizeLinear" or not is_default_domain(readers[0])):
            return None
        q = readers[0]
        params = self._params(q)
        if params is None or params[0].size != 1 or params[1].dtype != dtype:
            return None
        return q

    def replace(self, node: onnx.NodeProto, q: onnx.NodeProto, op_type: str,
                inputs: list[str], domain: str = "",
                attrs: Mapping[str, object] | None = None) -> None:
        """Emit the quantized operator that computes `node` and its QuantizeLinear `q`."""
        self.emit(op_type, inputs, [q.output[0]], base=op_type, name=node.name, domain=domain,
                  attrs=attrs)
        self.absorbed.add(id(q))


Builder = Callable[[ToQOperator, onnx.NodeProto], bool]
FROM_QDQ: dict[str, Builder] = {}


def builds(*op_types: str) -> Callable[[Builder], Builder]:
    def deco(fn: Builder) -> Builder:
        for op in op_types:
            FROM_QDQ[op] = fn
        return fn
    return deco


@builds("Conv")
def _conv(rw: ToQOperator, node: onnx.NodeProto) -> bool:
    x = rw.activation(node.input[0])
    w = rw.weight(node.input[1], 0) if x is not None else None
    q = rw.output(node, x.dtype) if x is not None else None
    if x is None or w is None or q is None:
        return False
    ins = [x.name, x.scale, x.zero_point, w.name, w.scale, w.zero_point, q.input[1], q.input[2]]
    if len(node.input) > 2 and node.input[2]:
        b = rw.bias(node.input[2], rw.graph.constant(x.scale) * rw.graph.constant(w.scale))
        if b is None:
            return False
        ins.append(b)
    rw.replace(node, q, "QLinearConv", ins, attrs=attributes(node))
    return True


@builds("MatMul")
def _matmul(rw: ToQOperator, node: onnx.NodeProto) -> bool:
    a = rw.activation(node.input[0])
    b = rw.activation(node.input[1])
    if b is None and rw.dq_of.get(node.input[1]) is not None and rw.graph.is_constant(
            rw.dq_of[node.input[1]].input[0]):
        b = rw.weight(node.input[1], -1)
    q = rw.output(node, a.dtype) if a is not None else None
    if a is None or b is None or q is None:
        return False
    rw.replace(node, q, "QLinearMatMul", [a.name, a.scale, a.zero_point, b.name, b.scale,
                                          b.zero_point, q.input[1], q.input[2]])
    return True


@builds("Gemm")
def _gemm(rw: ToQOperator, node: onnx.NodeProto) -> bool:
    attrs = attributes(node)
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))  # type: ignore[arg-type]
    a = rw.activation(node.input[0])
    b = rw.weight(node.input[1], 0 if int(attrs.get("transB", 0)) else 1)  # type: ignore[call-overload]
    q = rw.output(node, a.dtype) if a is not None else None
    if a is None or b is None or q is None or beta == 0.0:
        return False
    ins = [a.name, a.scale, a.zero_point, b.name, b.scale, b.zero_point]
    if len(node.input) > 2 and node.input[2]:
        scale = rw.graph.constant(a.scale) * rw.graph.constant(b.scale)
        if alpha != beta:
            scale = np.float32(alpha / beta) * scale
        c = rw.bias(node.input[2], scale)
        if c is None:
            return False
        ins.append(c)
    else:
        ins.append("")
    # QGemm has no beta: its C is stored at alpha / beta * s_a * s_b instead
    rw.replace(node, q, "QGemm", [*ins, q.input[1], q.input[2]], domain=MS_DOMAIN,
               attrs={k: v for k, v in attrs.items() if k != "beta"})
    return True


@builds("Add", "Mul")
def _binary(rw: ToQOperator, node: onnx.NodeProto) -> bool:
    a, b = rw.activation(node.input[0]), rw.activation(node.input[1])
    if a is None or b is None or a.dtype != b.dtype:
        return False
    q = rw.output(node, a.dtype)
    if q is None:
        return False
    rw.replace(node, q, f"QLinear{node.op_type}", [a.name, a.scale, a.zero_point, b.name,
                                                   b.scale, b.zero_point, q.input[1],
                                                   q.input[2]], domain=MS_DOMAIN)
    return True


def _unary(op_type: str, **extra: object) -> Builder:
    def build(rw: ToQOperator, node: onnx.NodeProto) -> bool:
        x = rw.activation(node.input[0])
        q = rw.output(node, x.dtype) if x is not None and len(node.input) == 1 else None
        if x is None or q is None:
            return False
        rw.replace(node, q, op_type, [x.name, x.scale, x.zero_point, q.input[1], q.input[2]],
                   domain=MS_DOMAIN, attrs={**attributes(node), **extra})
        return True

    return build


FROM_QDQ["Sigmoid"] = _unary("QLinearSigmoid")
FROM_QDQ["LeakyRelu"] = _unary("QLinearLeakyRelu")
FROM_QDQ["AveragePool"] = _unary("QLinearAveragePool")
# ONNX Runtime's quantizer states the layout of QLinearGlobalAveragePool explicitly
FROM_QDQ["GlobalAveragePool"] = _unary("QLinearGlobalAveragePool", channels_last=0)


@builds("Softmax")
def _softmax(rw: ToQOperator, node: onnx.NodeProto) -> bool:
    x = rw.activation(node.input[0])
    q = rw.output(node, x.dtype) if x is not None else None
    if x is None or q is None:
        return False
    axis = int(attributes(node).get("axis", 1 if rw.opset < 13 else -1))  # type: ignore[call-overload]
    rw.replace(node, q, "QLinearSoftmax", [x.name, x.scale, x.zero_point, q.input[1],
                                           q.input[2]], domain=MS_DOMAIN,
               attrs={"axis": axis, "opset": rw.opset})
    return True


@builds("Concat")
def _concat(rw: ToQOperator, node: onnx.NodeProto) -> bool:
    xs = [rw.activation(i) for i in node.input]
    if not xs or any(x is None or x.dtype != xs[0].dtype for x in xs):  # type: ignore[union-attr]
        return False
    q = rw.output(node, xs[0].dtype)  # type: ignore[union-attr]
    if q is None:
        return False
    ins = [q.input[1], q.input[2]]
    for x in xs:
        ins += [x.name, x.scale, x.zero_point]  # type: ignore[union-attr]
    rw.replace(node, q, "QLinearConcat", ins, domain=MS_DOMAIN, attrs=attributes(node))
    return True


def _direct(rw: ToQOperator, node: onnx.NodeProto) -> bool:
    """DQ -> data movement -> Q with the input's qparams (every output): the operator on
    the integers."""
    x = rw.activation(node.input[0]) if node.input else None
    if x is None:
        return False
    readers = [rw.graph.consumers.get(o, []) for o in node.output]
    qs = [r[0] if len(r) == 1 else None for r in readers]
    scale, zp = rw.graph.constant(x.scale), rw.graph.constant(x.zero_point)
    for o, q in zip(node.output, qs, strict=True):
        if q is None or q.op_type != "QuantizeLinear" or o in rw.graph.output_names:
            return False
        params = rw._params(q)
        if (params is None or params[1].dtype != x.dtype
                or not np.array_equal(params[0], scale) or not np.array_equal(params[1], zp)):
            return False
    rw.emit(node.op_type, [x.name, *node.input[1:]], [q.output[0] for q in qs],  # type: ignore[union-attr]
            base=node.op_type, name=node.name, attrs=attributes(node))
    rw.absorbed.update(id(q) for q in qs)
    return True


for _op in DIRECT_8BIT:
    FROM_QDQ.setdefault(_op, _direct)


def to_qoperator(model: onnx.ModelProto) -> onnx.ModelProto:
    """The QOperator form of a QDQ model: every group with a quantized operator becomes
    it; everything else stays, and DequantizeLinear nodes nothing reads any more go.

    Examples
    --------
    ``DequantizeLinear(a_q) -> Add <- DequantizeLinear(b_q)``, then ``QuantizeLinear -> y_q``
    becomes ``com.microsoft.QLinearAdd(a_q, s_a, z_a, b_q, s_b, z_b, s_y, z_y) -> y_q``.
    """
    rw = ToQOperator(model)
    for node in model.graph.node:
        if id(node) in rw.absorbed:
            continue
        build = FROM_QDQ.get(node.op_type) if is_default_domain(node) else None
        if build is None or not build(rw, node):
            rw.keep(node)
    rw.nodes = [n for n in rw.nodes if id(n) not in rw.absorbed]
    _drop_unread_dequantize(rw)
    return rw.finish()


def _drop_unread_dequantize(rw: ToQOperator) -> None:
    outputs = {o.name for o in rw.model.graph.output}
    while True:
        read = {i for n in rw.nodes for i in node_reads(n)} | outputs
        keep = [n for n in rw.nodes if not (n.op_type == "DequantizeLinear"
                                            and is_default_domain(n)
                                            and n.output[0] not in read)]
        if len(keep) == len(rw.nodes):
            return
        rw.nodes = keep
