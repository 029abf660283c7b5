"""Per-token quantized products (the chains lowp.passes.per_token writes) fused into one step.

A per-token dynamic file spells out each row's quantization (D1)-(D3) and the product (D4)
(docs/quantization.md) in about twenty standard nodes, so that every runtime can read it:

    lo = Min(ReduceMin(x), 0), hi = Max(ReduceMax(x), 0)    (last axis, kept)
    scale = Max(hi - lo, tiny) / 255, zp = Clip(Round(Neg(lo) / scale), 0, 255)
    q = Cast<uint8>(Clip(Round(x / scale) + zp, 0, 255))
    acc = MatMulInteger(q, W, "", zw) - Cast<int32>(zp) * column sums of (W - zw)
    y = Cast<float>(acc) * (scale * w_scale) [+ bias]

Run node by node, each step reads and writes a whole tensor (float copies of q among them).
At load (`apply`, the last of lowp.runtime.session.LOAD_REWRITES) the node writing y becomes
one ``PerTokenMatMul(x, W, zw, w_scale, bias)`` node (domain `DOMAIN`), whose operator
(`PerTokenMatMul`) calls lowp._native's IntMatMul.run_per_token: the row ranges, the
quantization into the GEMM's own row buffer, the integer product on the packed W and the
scaled epilogue in one call. The nodes it stands for stay in the graph; the lowering drops
those that nothing reads any more (the shared row quantization once every product reading it
is fused), so a value read elsewhere is still computed as before.

A chain fuses only when it is exactly that form: the constants 0, 255 and the smallest
normal float32 where they belong, reductions over the last axis with kept dimensions, a
constant 2-D 8-bit W, a constant zero point (one or one per column) and a constant
float32 w_scale (one or one per column), and column sums equal to those of W - zw (so that
the fused product, which computes them itself, is the file's).

The operator's reference is the unfused nodes' numpy operators, applied one after the other
(`_unfused`): the native call equals it bit for bit (tested on every instruction-set path and
thread count), rows with a NaN or an infinity included (their values follow from the x86
casts of NaN, as the reference's do: docs/native.md), and is recorded and replayed like
MatMulInteger's (lowp.runtime.replay.NATIVE_FLOAT). Where it does not apply (no extension,
an x of another type, a bias other than one value per column) the operator computes the
reference. `disabled()` (or ``LOWP_NO_PER_TOKEN_FUSION=1`` for a process) leaves the chains
as they are in sessions made inside it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..ir.graph import with_nodes
from . import native_integer
from .float_registry import FLOAT_OPS, register
from .switch import Switch

DOMAIN = "ai.lowp"
OP_TYPE = "PerTokenMatMul"

_enabled = Switch(os.environ.get("LOWP_NO_PER_TOKEN_FUSION", "") in ("", "0"))

#: Load sessions made inside the body with the per-token chains unfused (the reference to
#: compare a fused session with).
disabled = _enabled.off

_TINY = np.finfo(np.float32).tiny


class _Index:
    """Producers and constants of one graph."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.producer = {o: n for n in model.graph.node for o in n.output if o}
        self.constants = {t.name: t for t in model.graph.initializer}
        self._arrays: dict[str, np.ndarray] = {}

    def node(self, name: str, op_type: str, arity: int) -> onnx.NodeProto | None:
        n = self.producer.get(name)
        if n is None or n.op_type != op_type or n.domain not in ("", "ai.onnx") or len(
                n.input) != arity:
            return None
        return n

    def array(self, name: str) -> np.ndarray | None:
        if name not in self.constants:
            return None
        if name not in self._arrays:
            self._arrays[name] = numpy_helper.to_array(self.constants[name])
        return self._arrays[name]

    def scalar(self, name: str, value: float) -> bool:
        a = self.array(name)
        return (a is not None and a.dtype == np.float32 and a.ndim == 0
                and a.tobytes() == np.float32(value).tobytes())


def _attr(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _row_bound(name: str, index: _Index, reduce: str, combine: str) -> str | None:
    """x of ``combine(reduce(x, last axis, kept), 0)``, or None."""
    outer = index.node(name, combine, 2)
    if outer is None or not index.scalar(outer.input[1], 0.0):
        return None
    red = index.producer.get(outer.input[0])
    if red is None or red.op_type != reduce or red.domain not in ("", "ai.onnx"):
        return None
    if _attr(red, "keepdims", 1) != 1 or _attr(red, "noop_with_empty_axes", 0):
        return None
    if len(red.input) == 2:
        axes = index.array(red.input[1])
        if axes is None or axes.reshape(-1).tolist() != [-1] or _attr(red, "axes") is not None:
            return None
    elif len(red.input) != 1 or list(_attr(red, "axes", [])) != [-1]:
        return None
    return red.input[0]


def _rows(q: str, index: _Index) -> tuple[str, str, str] | None:
    """(x, scale, zero point) of a q that is x quantized row by row (D1)-(D3), or None."""
    cast = index.node(q, "Cast", 1)
    if cast is None or _attr(cast, "to") != TensorProto.UINT8:
        return None
    clip = index.node(cast.input[0], "Clip", 3)
    if clip is None or not (index.scalar(clip.input[1], 0.0)
                            and index.scalar(clip.input[2], 255.0)):
        return None
    add = index.node(clip.input[0], "Add", 2)
    if add is None:
        return None
    rounded, zp = add.input
    rnd = index.node(rounded, "Round", 1)
    div = None if rnd is None else index.node(rnd.input[0], "Div", 2)
    if div is None:
        return None
    x, scale = div.input
    # scale = Max(Sub(hi, lo), tiny) / 255
    top = index.node(scale, "Div", 2)
    if top is None or not index.scalar(top.input[1], 255.0):
        return None
    span = index.node(top.input[0], "Max", 2)
    if span is None or not index.scalar(span.input[1], _TINY):
        return None
    sub = index.node(span.input[0], "Sub", 2)
    if sub is None:
        return None
    hi, lo = sub.input
    if _row_bound(hi, index, "ReduceMax", "Max") != x or _row_bound(
            lo, index, "ReduceMin", "Min") != x:
        return None
    # zp = Clip(Round(Neg(lo) / scale), 0, 255)
    zclip = index.node(zp, "Clip", 3)
    if zclip is None or not (index.scalar(zclip.input[1], 0.0)
                             and index.scalar(zclip.input[2], 255.0)):
        return None
    zround = index.node(zclip.input[0], "Round", 1)
    zdiv = None if zround is None else index.node(zround.input[0], "Div", 2)
    if zdiv is None or zdiv.input[1] != scale:
        return None
    neg = index.node(zdiv.input[0], "Neg", 1)
    if neg is None or neg.input[0] != lo:
        return None
    return x, scale, zp


def _fuse(out: onnx.NodeProto, index: _Index) -> onnx.NodeProto | None:
    """The PerTokenMatMul node that writes `out`'s output, when `out` ends a chain."""
    bias = ""
    mul = out
    if out.op_type == "Add" and len(out.input) == 2:
        bias = out.input[1]
        got = index.node(out.input[0], "Mul", 2)
        if got is None or not bias:
            return None
        mul = got
    elif out.op_type != "Mul" or len(out.input) != 2:
        return None
    if out.domain not in ("", "ai.onnx"):
        return None
    real = index.node(mul.input[0], "Cast", 1)
    scales = index.node(mul.input[1], "Mul", 2)
    if real is None or scales is None or _attr(real, "to") != TensorProto.FLOAT:
        return None
    sub = index.node(real.input[0], "Sub", 2)
    if sub is None:
        return None
    mmi = index.producer.get(sub.input[0])
    correction = index.node(sub.input[1], "Mul", 2)
    if (mmi is None or mmi.op_type != "MatMulInteger" or mmi.domain not in ("", "ai.onnx")
            or correction is None or len(mmi.input) not in (2, 4)
            or (len(mmi.input) == 4 and mmi.input[2])):
        return None
    rows = _rows(mmi.input[0], index)
    if rows is None:
        return None
    x, scale, zp = rows
    zp_int = index.node(correction.input[0], "Cast", 1)
    if (zp_int is None or _attr(zp_int, "to") != TensorProto.INT32 or zp_int.input[0] != zp
            or scales.input[0] != scale):
        return None
    w = index.array(mmi.input[1])
    zw_name = mmi.input[3] if len(mmi.input) == 4 else ""
    zw = index.array(zw_name) if zw_name else np.zeros((), np.int8 if w is None else w.dtype)
    w_scale = index.array(scales.input[1])
    colsum = index.array(correction.input[1])
    if (w is None or w.ndim != 2 or w.dtype not in (np.int8, np.uint8) or zw is None
            or zw.dtype != w.dtype or zw.size not in (1, w.shape[1]) or zw.ndim > 1
            or w_scale is None or w_scale.dtype != np.float32 or w_scale.ndim > 1
            or w_scale.size not in (1, w.shape[1]) or colsum is None
            or colsum.dtype != np.int32 or colsum.shape != (w.shape[1],)):
        return None
    want = (w.astype(np.int64) - zw.astype(np.int64)).sum(axis=0)
    if not np.array_equal(colsum.astype(np.int64), (want + 2**31) % 2**32 - 2**31):
        return None
    return helper.make_node(OP_TYPE, [x, mmi.input[1], zw_name, scales.input[1], bias],
                            [out.output[0]], name=(out.name or out.output[0]) + "_" + OP_TYPE,
                            domain=DOMAIN)


def apply(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with each per-token product's last node replaced by a PerTokenMatMul node (a
    new model), or `model` itself when there is none (or the fusion is disabled)."""
    if not _enabled or not any(n.op_type == "MatMulInteger" for n in model.graph.node):
        return model
    index = _Index(model)
    # the biased products first: their Mul (the unbiased product) is then no chain end
    fused = {id(n): f for n in model.graph.node if n.op_type == "Add"
             for f in [_fuse(n, index)] if f is not None}
    inner = {index.producer[n.input[0]].output[0] for n in model.graph.node
             if id(n) in fused}
    fused.update({id(n): f for n in model.graph.node
                  if n.op_type == "Mul" and n.output[0] not in inner
                  for f in [_fuse(n, index)] if f is not None})
    if not fused:
        return model
    return with_nodes(model, [fused.get(id(n), n) for n in model.graph.node],
                      domains=[DOMAIN])


def _unfused(x: np.ndarray, w: np.ndarray, w_zero_point: np.ndarray | None,
             w_scale: np.ndarray, bias: np.ndarray | None, opset: int) -> np.ndarray:
    """The nodes a PerTokenMatMul stands for, run by their numpy operators in file order."""
    op: dict[str, Callable[..., Any]] = FLOAT_OPS
    zero, top, tiny = np.float32(0), np.float32(255), np.float32(_TINY)
    axes: dict[str, Any] = {"keepdims": 1, "opset": opset}
    lo = op["Min"](op["ReduceMin"](x, np.array([-1], np.int64), **axes), zero)
    hi = op["Max"](op["ReduceMax"](x, np.array([-1], np.int64), **axes), zero)
    scale = op["Div"](op["Max"](op["Sub"](hi, lo), tiny), top)
    zp = op["Clip"](op["Round"](op["Div"](op["Neg"](lo), scale)), zero, top)
    shifted = op["Add"](op["Round"](op["Div"](x, scale)), zp)
    q = op["Cast"](op["Clip"](shifted, zero, top), to=TensorProto.UINT8)
    zw = np.zeros((), w.dtype) if w_zero_point is None else w_zero_point
    acc = op["MatMulInteger"](q, w, None, w_zero_point)
    col = (w.astype(np.int64) - zw.astype(np.int64)).sum(axis=0)
    col = ((col + 2**31) % 2**32 - 2**31).astype(np.int32)
    exact = op["Sub"](acc, op["Mul"](op["Cast"](zp, to=TensorProto.INT32), col))
    y = op["Mul"](op["Cast"](exact, to=TensorProto.FLOAT), op["Mul"](scale, w_scale))
    return y if bias is None else op["Add"](y, bias)


@register
def PerTokenMatMul(x: np.ndarray, w: np.ndarray, w_zero_point: np.ndarray | None,
                   w_scale: np.ndarray, bias: np.ndarray | None = None, *, opset: int = 13,
                   **_: Any) -> np.ndarray:
    """Per-token dynamic quantization of x's rows and the product with the 8-bit constant w,
    (D1)-(D4), with the values of the nodes it fuses (`_unfused`); natively when it can."""
    native = native_integer.per_token_matmul(x, w, w_zero_point, w_scale, bias)
    if native is not None:
        return native
    return _unfused(x, w, w_zero_point, w_scale, bias, opset)
