"""QOperator -> QDQ: each quantized operator (QLinearConv, com.microsoft QLinearAdd, ...)
becomes DequantizeLinear(s) -> float operator -> QuantizeLinear with the same scales, zero
points and integers, as ONNX Runtime's quantizer writes the QDQ format.

Integer weights stay integer initializers behind a DequantizeLinear; an int32 bias stays
int32 behind a DequantizeLinear with scale s_x * s_w and zero point 0. Data movement that a
QOperator file runs on integers (MaxPool, Reshape, ...) becomes DQ -> op -> Q with the
input's qparams, which computes the same integers. `TO_QDQ` maps each operator to its
converter; a quantized operator it does not list is refused by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx

from ..errors import ModelError, UnsupportedOpError
from ..ir.graph import Graph, attributes, opset_of
from .computed_weights import fold_computed_weights
from .rewrite import MS_DOMAIN, Rewrite, is_default_domain, node_label


@dataclass(frozen=True)
class QTensor:
    """An integer tensor with the names of its (constant) scale and zero point."""

    name: str
    scale: str
    zero_point: str


class ToQdq(Rewrite):
    """The QOperator -> QDQ rewrite: dequantized views of integer tensors are made once
    per (tensor, scale, zero point, axis) and shared by every reader."""

    def __init__(self, model: onnx.ModelProto) -> None:
        super().__init__(model)
        self._dq: dict[tuple[str, bytes, bytes, int | None], str] = {}
        self.qparams: dict[str, QTensor] = {}       # integer tensor -> its qparams
        self.opset = opset_of(model)
        for n in model.graph.node:      # the file's own DequantizeLinear nodes are reused
            if (n.op_type == "DequantizeLinear" and is_default_domain(n) and len(n.input) > 1
                    and all(self.graph.is_constant(i) for i in n.input[1:] if i)):
                axis = int(attributes(n).get("axis", 1))  # type: ignore[call-overload]
                zp = n.input[2] if len(n.input) > 2 else ""
                key = self._key(QTensor(n.input[0], n.input[1], zp), axis)
                self._dq.setdefault(key, n.output[0])

    def _key(self, q: QTensor, axis: int | None) -> tuple[str, bytes, bytes, int | None]:
        scale = self.graph.constant(q.scale)
        zp = self.graph.constant(q.zero_point) if q.zero_point else None
        zp_key = b"" if zp is None else zp.tobytes() + zp.dtype.str.encode()
        return (q.name, scale.tobytes(), zp_key, axis if scale.size > 1 else None)

    def dequantized(self, q: QTensor, node: onnx.NodeProto, *, axis: int | None = None) -> str:
        """The float tensor DequantizeLinear(q) (per axis `axis` when the scale has more
        than one element)."""
        scale = self.constant(q.scale, node)
        if q.zero_point:
            self.constant(q.zero_point, node)
        per_axis = axis if scale.size > 1 else None
        if per_axis is not None and self.opset < 13:
            raise UnsupportedOpError(node.op_type, node_label(node), "per-channel "
                                     "DequantizeLinear needs opset 13 (the model has "
                                     f"{self.opset})")
        key = self._key(q, per_axis)
        if key not in self._dq:
            out = self.tensor(f"{q.name}_dequantized")
            inputs = [q.name, q.scale] + ([q.zero_point] if q.zero_point else [])
            attrs = {"axis": per_axis} if per_axis is not None else {}
            self.emit("DequantizeLinear", inputs, [out], base=f"{q.name}_DequantizeLinear",
                      attrs=attrs)
            self._dq[key] = out
        return self._dq[key]

    def quantize_into(self, x: str, scale: str, zero_point: str, out: str) -> None:
        """QuantizeLinear(x) written to the integer tensor `out` (the original name)."""
        inputs = [x, scale] + ([zero_point] if zero_point else [])
        self.emit("QuantizeLinear", inputs, [out], base=f"{out}_QuantizeLinear")
        self.qparams[out] = QTensor(out, scale, zero_point)

    def bias(self, name: str, scale: np.ndarray, node: onnx.NodeProto) -> str:
        """DequantizeLinear of an int32 bias at `scale` (s_x * s_w), zero point 0, as ONNX
        Runtime's QDQ files hold it: a 1-D scale, a zero point of the scale's shape (a
        scalar for one element), axis 0 when per channel."""
        self.constant(name, node)
        scale = np.asarray(scale, np.float32).reshape(-1)
        zp = np.zeros(() if scale.size == 1 else scale.shape, np.int32)
        s = self.initializer(f"{name}_scale", scale)
        z = self.initializer(f"{name}_zero_point", zp)
        out = self.tensor(f"{name}_dequantized")
        attrs = {"axis": 0} if scale.size > 1 else {}
        self.emit("DequantizeLinear", [name, s, z], [out], base=f"{name}_DequantizeLinear",
                  attrs=attrs)
        return out


Converter = Callable[[ToQdq, onnx.NodeProto], None]
TO_QDQ: dict[tuple[str, str], Converter] = {}


def converts(domain: str, *op_types: str) -> Callable[[Converter], Converter]:
    def deco(fn: Converter) -> Converter:
        for op in op_types:
            TO_QDQ[(domain, op)] = fn
        return fn
    return deco


def _inputs(node: onnx.NodeProto, n: int) -> list[str]:
    """The first `n` inputs of `node`, missing optional ones as ''."""
    return [node.input[i] if i < len(node.input) else "" for i in range(n)]


def _mark(emitted: onnx.NodeProto, node: onnx.NodeProto) -> None:
    """Tell the engine that `emitted` was the quantized operator `node` (QOPERATOR_KEY):
    ONNX Runtime runs a QOperator file's int8 QLinearAdd, QLinearMul, QLinearAveragePool,
    QLinearConv, QLinearMatMul and QGemm in its integer kernels, which the QDQ form alone cannot
    say (for a QDQ file it runs int8 groups of these in float)."""
    from ..runtime.lowering import QOPERATOR_KEY

    entry = emitted.metadata_props.add()
    entry.key, entry.value = QOPERATOR_KEY, node.op_type


def _float_out(rw: ToQdq, node: onnx.NodeProto, k: int = 0) -> str:
    return rw.tensor(f"{node.output[k]}_float")


def _op_attrs(node: onnx.NodeProto, drop: tuple[str, ...] = ()) -> dict[str, object]:
    return {k: v for k, v in attributes(node).items() if k not in drop}


@converts("", "QLinearConv")
def _qlinear_conv(rw: ToQdq, node: onnx.NodeProto) -> None:
    x, sx, zx, w, sw, zw, sy, zy, b = _inputs(node, 9)
    xf = rw.dequantized(QTensor(x, sx, zx), node)
    rw.constant(w, node)
    wf = rw.dequantized(QTensor(w, sw, zw), node, axis=0)
    ins = [xf, wf]
    if b:
        ins.append(rw.bias(b, rw.constant(sx, node) * rw.constant(sw, node), node))
    y = _float_out(rw, node)
    _mark(rw.emit("Conv", ins, [y], base="Conv", name=node.name, attrs=_op_attrs(node)), node)
    rw.quantize_into(y, sy, zy, node.output[0])


@converts("", "QLinearMatMul")
def _qlinear_matmul(rw: ToQdq, node: onnx.NodeProto) -> None:
    a, sa, za, b, sb, zb, sy, zy = _inputs(node, 8)
    af = rw.dequantized(QTensor(a, sa, za), node)
    b_rank = rw.graph.constant(b).ndim if rw.graph.is_constant(b) else 2
    bf = rw.dequantized(QTensor(b, sb, zb), node, axis=b_rank - 1)
    y = _float_out(rw, node)
    _mark(rw.emit("MatMul", [af, bf], [y], base="MatMul", name=node.name), node)
    rw.quantize_into(y, sy, zy, node.output[0])


@converts(MS_DOMAIN, "QGemm")
def _qgemm(rw: ToQdq, node: onnx.NodeProto) -> None:
    """C is int32 at scale alpha / beta * s_a * s_b (ONNX Runtime's contrib definition; its
    kernel adds C to the accumulator and scales by alpha * s_a * s_b, ignoring beta)."""
    a, sa, za, b, sb, zb, c, sy, zy = _inputs(node, 9)
    if not sy:
        _qgemm_float(rw, node)
        return
    attrs = attributes(node)
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))  # type: ignore[arg-type]
    af = rw.dequantized(QTensor(a, sa, za), node)
    # B may be computed (a weight reshaped to a shape the graph computes: tf2onnx's Gemm),
    # which ONNX Runtime's kernel reads unpacked, in the same arithmetic
    trans_b = int(attrs.get("transB", 0))  # type: ignore[call-overload]
    bf = rw.dequantized(QTensor(b, sb, zb), node, axis=0 if trans_b else 1)
    ins = [af, bf]
    if c:
        scale = rw.constant(sa, node) * rw.constant(sb, node)
        if alpha != beta:
            scale = np.float32(alpha / beta) * scale
        ins.append(rw.bias(c, scale, node))
    y = _float_out(rw, node)
    _mark(rw.emit("Gemm", ins, [y], base="Gemm", name=node.name, attrs=attrs), node)
    rw.quantize_into(y, sy, zy, node.output[0])


def _qgemm_float(rw: ToQdq, node: onnx.NodeProto) -> None:
    """QGemm without y_scale writes float32(A'B' + C) * float32(alpha * s_a * s_b[j]) (its
    kernel's order): MatMulInteger, an int32 Add of C, Cast and Mul compute exactly that,
    where DequantizeLinear -> float Gemm would round every product."""
    a, sa, za, b, sb, zb, c, _, _ = _inputs(node, 9)
    attrs = attributes(node)
    alpha = np.float32(attrs.get("alpha", 1.0))  # type: ignore[arg-type]
    if int(attrs.get("transA", 0)):  # type: ignore[call-overload]
        at = rw.tensor(f"{a}_transposed")
        rw.emit("Transpose", [a], [at], base=f"{a}_Transpose", attrs={"perm": [1, 0]})
        a = at
    if int(attrs.get("transB", 0)):  # type: ignore[call-overload]
        if rw.graph.is_constant(b):
            b = rw.initializer(f"{b}_transposed", np.ascontiguousarray(rw.graph.constant(b).T))
        else:       # a computed B: ONNX Runtime's kernel transposes it on every call
            bt = rw.tensor(f"{b}_transposed")
            rw.emit("Transpose", [b], [bt], base=f"{b}_Transpose", attrs={"perm": [1, 0]})
            b = bt
    out = node.output[0]
    acc = rw.tensor(f"{out}_int32")
    rw.emit("MatMulInteger", [a, b, za, zb], [acc], base="MatMulInteger", name=node.name)
    if c:
        with_c = rw.tensor(f"{out}_plus_c")
        rw.emit("Add", [acc, c], [with_c], base=f"{out}_Add")
        acc = with_c
    acc_f = rw.tensor(f"{out}_acc")
    rw.emit("Cast", [acc], [acc_f], base=f"{out}_Cast", attrs={"to": onnx.TensorProto.FLOAT})
    scale = (alpha * rw.constant(sa, node).astype(np.float32)).astype(np.float32) * rw.constant(
        sb, node).astype(np.float32)
    rw.emit("Mul", [acc_f, rw.initializer(f"{out}_scale", scale.astype(np.float32))], [out],
            base=f"{out}_Mul")


@converts(MS_DOMAIN, "QLinearAdd", "QLinearMul")
def _qlinear_binary(rw: ToQdq, node: onnx.NodeProto) -> None:
    a, sa, za, b, sb, zb, sy, zy = _inputs(node, 8)
    af = rw.dequantized(QTensor(a, sa, za), node)
    bf = rw.dequantized(QTensor(b, sb, zb), node)
    y = _float_out(rw, node)
    _mark(rw.emit(node.op_type.removeprefix("QLinear"), [af, bf], [y], base="Binary",
                  name=node.name), node)
    rw.quantize_into(y, sy, _zero_point_like(rw, zy, za, a, node), node.output[0])


def _zero_point_like(rw: ToQdq, zp: str, like_zp: str, like: str, node: onnx.NodeProto) -> str:
    """`zp`, or (an omitted optional zero point) a zero of the input's integer type, so the
    QuantizeLinear writes that type as the contrib operator does."""
    if zp:
        return zp
    dtype = (rw.constant(like_zp, node).dtype if like_zp else
             onnx.helper.tensor_dtype_to_np_dtype(rw.elem_type(like) or onnx.TensorProto.UINT8))
    return rw.initializer(f"{node.output[0]}_zero_point", np.zeros((), dtype))


def _unary(float_op: str, drop: tuple[str, ...] = ()) -> Converter:
    """X, X_scale, X_zp, Y_scale, Y_zp -> float_op with the node's other attributes."""

    def convert(rw: ToQdq, node: onnx.NodeProto) -> None:
        x, sx, zx, sy, zy = _inputs(node, 5)
        if int(attributes(node).get("channels_last", 0)):  # type: ignore[call-overload]
            raise UnsupportedOpError(node.op_type, node_label(node), "channels_last=1 has no "
                                     "QDQ form (the ONNX operator is channels-first)")
        xf = rw.dequantized(QTensor(x, sx, zx), node)
        y = _float_out(rw, node)
        _mark(rw.emit(float_op, [xf], [y], base=float_op, name=node.name,
                      attrs=_op_attrs(node, ("channels_last", *drop))), node)
        rw.quantize_into(y, sy, _zero_point_like(rw, zy, zx, x, node), node.output[0])

    return convert


TO_QDQ[(MS_DOMAIN, "QLinearSigmoid")] = _unary("Sigmoid")
TO_QDQ[(MS_DOMAIN, "QLinearLeakyRelu")] = _unary("LeakyRelu")
TO_QDQ[(MS_DOMAIN, "QLinearAveragePool")] = _unary("AveragePool")
TO_QDQ[(MS_DOMAIN, "QLinearGlobalAveragePool")] = _unary("GlobalAveragePool")


@converts(MS_DOMAIN, "QLinearSoftmax")
def _qlinear_softmax(rw: ToQdq, node: onnx.NodeProto) -> None:
    """The `opset` attribute says which Softmax the node computes: before 13, over all the
    axes from `axis` on (the input flattened to 2-D there), from 13 on over `axis` alone.
    Where that differs from the model's own Softmax, the old form is written out: the
    integers flattened, Softmax over the last axis, the integers reshaped back."""
    attrs = attributes(node)
    op_opset = int(attrs.get("opset", rw.opset))  # type: ignore[call-overload]
    axis = int(attrs.get("axis", 1 if op_opset < 13 else -1))  # type: ignore[call-overload]
    x, sx, zx, sy, zy = _inputs(node, 5)
    zy = _zero_point_like(rw, zy, zx, x, node)
    if (op_opset < 13) == (rw.opset < 13) or axis == -1:
        xf = rw.dequantized(QTensor(x, sx, zx), node)
        y = _float_out(rw, node)
        rw.emit("Softmax", [xf], [y], base="Softmax", name=node.name, attrs={"axis": axis})
        rw.quantize_into(y, sy, zy, node.output[0])
        return
    if rw.opset < 13:
        raise UnsupportedOpError(node.op_type, node_label(node), f"Softmax of opset {op_opset} "
                                 f"on axis {axis} has no form in the model's opset {rw.opset}")
    flat = rw.tensor(f"{x}_flattened")
    rw.emit("Flatten", [x], [flat], base=f"{x}_Flatten", attrs={"axis": axis})
    xf = rw.dequantized(QTensor(flat, sx, zx), node)
    y = _float_out(rw, node)
    rw.emit("Softmax", [xf], [y], base="Softmax", name=node.name, attrs={"axis": -1})
    y_flat = rw.tensor(f"{node.output[0]}_flattened")
    rw.quantize_into(y, sy, zy, y_flat)
    shape = rw.tensor(f"{x}_shape")
    rw.emit("Shape", [x], [shape], base=f"{x}_Shape")
    rw.emit("Reshape", [y_flat, shape], [node.output[0]], base=f"{node.output[0]}_Reshape")
    rw.qparams[node.output[0]] = QTensor(node.output[0], sy, zy)


@converts(MS_DOMAIN, "QLinearConcat")
def _qlinear_concat(rw: ToQdq, node: onnx.NodeProto) -> None:
    sy, zy = node.input[0], node.input[1]
    triples = list(node.input[2:])
    if len(triples) % 3:
        raise ModelError(f"node '{node_label(node)}' (QLinearConcat): inputs after Y_scale, "
                         "Y_zero_point must come in (X, X_scale, X_zero_point) triples")
    ins = [rw.dequantized(QTensor(*triples[k:k + 3]), node) for k in range(0, len(triples), 3)]
    y = _float_out(rw, node)
    rw.emit("Concat", ins, [y], base="Concat", name=node.name, attrs=_op_attrs(node))
    rw.quantize_into(y, sy, zy, node.output[0])


@converts(MS_DOMAIN, "DynamicQuantizeMatMul")
def _dynamic_quantize_matmul(rw: ToQdq, node: onnx.NodeProto) -> None:
    """A (float) quantized on the fly to uint8 by DynamicQuantizeLinear, times the integer
    B behind a DequantizeLinear, plus the float bias."""
    a, b, sb, zb, bias = _inputs(node, 5)
    aq, sa, za = (rw.tensor(f"{a}_{s}") for s in ("quantized", "scale", "zero_point"))
    rw.emit("DynamicQuantizeLinear", [a], [aq, sa, za], base=f"{a}_DynamicQuantizeLinear")
    af = rw.tensor(f"{a}_dequantized")
    rw.emit("DequantizeLinear", [aq, sa, za], [af], base=f"{a}_DequantizeLinear")
    rw.constant(b, node)
    bf = rw.dequantized(QTensor(b, sb, zb), node, axis=rw.graph.constant(b).ndim - 1)
    _matmul_bias(rw, node, af, bf, bias)


@converts(MS_DOMAIN, "MatMulIntegerToFloat")
def _matmul_integer_to_float(rw: ToQdq, node: onnx.NodeProto) -> None:
    """float32(int32 acc) * (s_a * s_b) + bias, in standard operators: MatMulInteger, Cast,
    Mul (ONNX Runtime's dynamic quantizer writes this chain and fuses it to the contrib op)."""
    a, b, sa, sb, za, zb, bias = _inputs(node, 7)
    acc = rw.tensor(f"{node.output[0]}_int32")
    rw.emit("MatMulInteger", [a, b, za, zb] if zb else [a, b, za] if za else [a, b], [acc],
            base="MatMulInteger", name=node.name)
    acc_f = rw.tensor(f"{node.output[0]}_acc")
    rw.emit("Cast", [acc], [acc_f], base=f"{acc}_Cast",
            attrs={"to": onnx.TensorProto.FLOAT})
    scale = rw.tensor(f"{node.output[0]}_scale")
    rw.emit("Mul", [sa, sb], [scale], base=f"{scale}_Mul")
    out = _float_out(rw, node) if bias else node.output[0]
    rw.emit("Mul", [acc_f, scale], [out], base=f"{out}_Mul")
    if bias:
        rw.emit("Add", [out, bias], [node.output[0]], base=f"{node.output[0]}_bias")


def _matmul_bias(rw: ToQdq, node: onnx.NodeProto, af: str, bf: str, bias: str) -> None:
    if not bias:
        rw.emit("MatMul", [af, bf], [node.output[0]], base="MatMul", name=node.name)
        return
    y = _float_out(rw, node)
    rw.emit("MatMul", [af, bf], [y], base="MatMul", name=node.name)
    rw.emit("Add", [y, bias], [node.output[0]], base=f"{node.name or 'MatMul'}_bias")


@converts(MS_DOMAIN, "MatMulNBits")
def _matmul_nbits(rw: ToQdq, node: onnx.NodeProto) -> None:
    """A MatMulNBits node in the file (MatMulNBitsQuantizer's output; docs/operators.md
    (O176)) becomes what ONNX Runtime fuses back into it: DequantizeLinear(uint4 or uint8
    weight (K, N), blockwise scales and zero points (ceil(K / block), N), block_size along
    axis 0) -> MatMul, then the Add of its bias. The nibbles unpack low first, a missing zero
    point is 2^(bits - 1). Only accuracy level 4 (the CompInt8 kernels (O118) / (O159),
    which lowp computes for that form) converts; other levels compute in float32 in ONNX
    Runtime, and a g_idx reorders K: both refused by name."""
    from ..ops.matmul_nbits import BLOCKS

    a, b, scales, zps, g_idx, bias = _inputs(node, 6)
    at = attributes(node)
    k, n = int(at["K"]), int(at["N"])  # type: ignore[call-overload]
    bits, block = int(at.get("bits", 4)), int(at["block_size"])  # type: ignore[call-overload]
    level = int(at.get("accuracy_level", 0))  # type: ignore[call-overload]
    if level != 4 or bits not in (4, 8) or block not in BLOCKS or g_idx:
        why = (f"accuracy_level {level} (ONNX Runtime computes in float32 below 4; lowp "
               "mirrors level 4 only)" if level != 4 else
               "g_idx (reordered K)" if g_idx else f"bits {bits}, block_size {block}")
        raise UnsupportedOpError(node.op_type, node_label(node), f"{why}: not mirrored")
    blocks = -(-k // block)
    packed = rw.constant(b, node).reshape(n, blocks, block * bits // 8)
    q = _unpack_nibbles(packed.reshape(n, -1)) if bits == 4 else packed.reshape(n, -1)
    scale = rw.constant(scales, node).reshape(n, blocks)
    if zps:
        zp = rw.constant(zps, node)
        if zp.dtype != np.uint8:
            raise UnsupportedOpError(node.op_type, node_label(node),
                                     f"{zp.dtype} zero points: not mirrored")
        zp = _unpack_nibbles(zp.reshape(n, -1))[:, :blocks] if bits == 4 else zp
    else:
        zp = np.full((n, blocks), 1 << (bits - 1), np.uint8)
    wtype = np.uint8 if bits == 8 else onnx.helper.tensor_dtype_to_np_dtype(
        onnx.TensorProto.UINT4)
    w = rw.initializer(f"{b}_unpacked", np.ascontiguousarray(q[:, :k].T).astype(wtype))
    s = rw.initializer(f"{scales}_blocks", np.ascontiguousarray(scale.T))
    z = rw.initializer(f"{b}_zero_point_blocks",
                       np.ascontiguousarray(zp.reshape(n, blocks).T).astype(wtype))
    wf = rw.tensor(f"{b}_dequantized")
    rw.emit("DequantizeLinear", [w, s, z], [wf], base=f"{b}_DequantizeLinear",
            attrs={"axis": 0, "block_size": block})
    if bias:
        rw.constant(bias, node)     # ONNX Runtime adds it inside the kernel, as a fused Add
    # both marked: the engine runs the file's MatMulNBits with its own bias only, whatever
    # ONNX Runtime would fuse around the QDQ form (another Add, a Gemm, a QuantizeLinear)
    first = len(rw.nodes)
    _matmul_bias(rw, node, a, wf, bias)
    for emitted in rw.nodes[first:]:
        _mark(emitted, node)


def _unpack_nibbles(packed: np.ndarray) -> np.ndarray:
    """(rows, bytes) uint8 -> (rows, 2 * bytes): each byte's low nibble, then its high."""
    return np.stack([packed & 0x0F, packed >> 4], axis=-1).reshape(packed.shape[0], -1)


@converts(MS_DOMAIN, "QuantizeLinear", "DequantizeLinear")
def _contrib_qdq(rw: ToQdq, node: onnx.NodeProto) -> None:
    """ONNX Runtime's contrib QuantizeLinear / DequantizeLinear (written with its
    UseQDQContribOps option, or for 16-bit types before opset 21) compute what the standard
    operators do from opset 21 on: the same node in the default domain."""
    from ..runtime.ort_insert_cast import CONTRIB_QDQ_KEY

    emitted = rw.emit(node.op_type, list(node.input), list(node.output), base=node.op_type,
                      name=node.name, attrs=attributes(node))
    # ONNX Runtime's float16 handling tells the two apart (docs/operators.md (O216))
    emitted.metadata_props.add(key=CONTRIB_QDQ_KEY, value="1")
    if node.op_type == "QuantizeLinear" and len(node.input) > 1:
        rw.qparams[node.output[0]] = QTensor(node.output[0], node.input[1],
                                             node.input[2] if len(node.input) > 2 else "")


# Data movement that QOperator files run on integers (ONNX Runtime's quantizer keeps these
# operators on the quantized tensor); input 0 is the data, the other inputs are shapes,
# axes or indices. In QDQ form each is DQ -> op -> Q with the input's qparams, which
# returns the same integers.
DIRECT_8BIT = frozenset({"MaxPool", "GlobalMaxPool", "Reshape", "Flatten", "Transpose",
                         "Squeeze", "Unsqueeze", "Slice", "Gather", "Split", "Identity",
                         "DepthToSpace", "SpaceToDepth", "Expand", "Tile"})

# Quantized operators of ONNX Runtime's contrib domain that have no converter: refused by
# name rather than left for the engine to fail on later.
_KNOWN_QUANTIZED = frozenset({
    "QAttention", "QEmbedLayerNormalization", "QLinearReduceMean", "QLinearWhere",
    "QLinearConvTranspose", "QOrderedMatMul", "QOrderedAttention", "QOrderedGelu",
    "QOrderedLayerNormalization", "QOrderedLongformerAttention", "QuantizeBFP",
    "DequantizeBFP", "MulInteger", "QLinearLookup", "QGemm",
    "QLinearAdd", "QLinearMul", "QLinearSigmoid", "QLinearLeakyRelu", "QLinearSoftmax",
    "QLinearConcat", "QLinearAveragePool", "QLinearGlobalAveragePool", "QLinearConv",
    "NhwcMaxPool", "QuantizeWithOrder", "DequantizeWithOrder",
    "MatMulBnb4", "GatherBlockQuantized"})


def is_qoperator_node(node: onnx.NodeProto) -> bool:
    """A node this module converts, or a quantized contrib operator it refuses."""
    return (node.domain, node.op_type) in TO_QDQ or (
        node.domain == MS_DOMAIN and node.op_type in _KNOWN_QUANTIZED)


def has_qoperator_nodes(model: onnx.ModelProto) -> bool:
    return any(is_qoperator_node(n) for n in model.graph.node)


def to_qdq(model: onnx.ModelProto) -> onnx.ModelProto:
    """The QDQ form of a QOperator model; a model without quantized operators is returned
    as it is (the same object).

    Raises UnsupportedOpError naming the first quantized operator without a converter.

    Examples
    --------
    QLinearConv(x_q, s_x, z_x, w_q, s_w, z_w, s_y, z_y, b_q) becomes::

        DequantizeLinear(x_q, s_x, z_x) -> x
        DequantizeLinear(w_q, s_w, z_w, axis=0) -> w
        DequantizeLinear(b_q, s_x * s_w, 0, axis=0) -> b
        Conv(x, w, b) -> y;  QuantizeLinear(y, s_y, z_y) -> y_q
    """
    if not has_qoperator_nodes(model):
        return model
    needed = _required_opset(model)
    if opset_of(model) < needed:
        # per-channel weights need DequantizeLinear-13, 16-bit integers QuantizeLinear-21;
        # the other nodes are upgraded with onnx's version converter, keeping their meaning
        from ..passes.canonicalize import upgrade_opset

        model = upgrade_opset(model, needed)
    # weights that the file quantizes with a QuantizeLinear of a constant (ONNX Runtime's
    # quantizer does so for weights held in Constant nodes) become integer initializers,
    # as the engine folds them
    from ..runtime.lower import fold_constant_quantize

    model = fold_computed_weights(fold_constant_quantize(model))
    rw = ToQdq(model)
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear" and is_default_domain(node) and len(node.input) > 1:
            rw.qparams[node.output[0]] = QTensor(
                node.output[0], node.input[1], node.input[2] if len(node.input) > 2 else "")
    for node in model.graph.node:
        convert = TO_QDQ.get((node.domain, node.op_type))
        if convert is not None:
            convert(rw, node)
        elif is_qoperator_node(node):
            raise UnsupportedOpError(node.op_type, node_label(node), "no conversion of this "
                                     "quantized operator to QDQ")
        elif _wrap_direct(rw, node):
            continue
        elif is_default_domain(node) and rw.constant_node_to_initializer(node):
            # as lowp's own QDQ files hold constants (canonicalize): no step per run
            continue
        else:
            rw.keep(node)
    return rw.finish()


# the input holding each converted operator's weight scale
_WEIGHT_SCALE = {"QLinearConv": 4, "QLinearMatMul": 4, "QGemm": 4, "DynamicQuantizeMatMul": 2,
                 "QuantizeLinear": 1, "DequantizeLinear": 1}
_SIXTEEN_BIT = (np.dtype(np.uint16), np.dtype(np.int16))


def _required_opset(model: onnx.ModelProto) -> int:
    """The default-domain opset the QDQ form needs: 13 for a per-axis DequantizeLinear (a
    weight with one scale per channel), 21 for 16-bit QuantizeLinear / DequantizeLinear and
    for MatMulNBits' blockwise DequantizeLinear."""
    graph = Graph(model)
    needed = 0
    for node in model.graph.node:
        if node.domain == MS_DOMAIN and node.op_type == "MatMulNBits":
            needed = max(needed, 21)        # blockwise, 4-bit DequantizeLinear
            continue
        k = _WEIGHT_SCALE.get(node.op_type)
        if k is None or (node.domain, node.op_type) not in TO_QDQ or len(node.input) <= k:
            continue
        if graph.is_constant(node.input[k]) and graph.constant(node.input[k]).size > 1:
            needed = max(needed, 13)
        zp = node.input[2] if node.domain == MS_DOMAIN and len(node.input) > 2 else ""
        if zp and graph.is_constant(zp) and graph.constant(zp).dtype in _SIXTEEN_BIT:
            needed = max(needed, 21)
    return needed


def _wrap_direct(rw: ToQdq, node: onnx.NodeProto) -> bool:
    """Data movement on a quantized tensor as DQ -> op -> Q with the same qparams."""
    if (not is_default_domain(node) or node.op_type not in DIRECT_8BIT or not node.input
            or node.input[0] not in rw.qparams):
        return False
    if node.op_type == "MaxPool" and len(node.output) > 1:
        return False
    q = rw.qparams[node.input[0]]
    if q.scale and rw.graph.is_constant(q.scale) and rw.graph.constant(q.scale).size != 1:
        return False
    xf = rw.dequantized(q, node)
    outs = [_float_out(rw, node, k) for k in range(len(node.output))]
    rw.emit(node.op_type, [xf, *node.input[1:]], outs, base=node.op_type, name=node.name,
            attrs=_op_attrs(node))
    for f, o in zip(outs, node.output, strict=True):
        rw.quantize_into(f, q.scale, q.zero_point, o)
    return True
