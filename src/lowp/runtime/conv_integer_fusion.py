"""ConvInteger with the int32 bias Add, the Cast to float and the scale Mul after it, fused.

ONNX Runtime's quantize_dynamic writes each convolution of a float model as

    acc = ConvInteger(x_q, W_q, x_zp, W_zp)
    f = Cast<float>(Add(acc, Reshape(bias_q)))      (bias_q int32, one per output channel)
    y = Mul(f, Mul(x_scale, W_scale))               (one float32 value)

and ONNX Runtime runs the nodes one after the other, each a pass over the whole
(n, m, oh, ow) tensor. At load (`apply`, one of lowp.runtime.session.LOAD_REWRITES) the
Mul (or, when the Cast has another reader, the Cast) becomes one ``ConvIntegerToFloat(x_q,
W_q, x_zp, W_zp, bias[, scale])`` node (domain `DOMAIN`, the ConvInteger's attributes),
whose operator calls lowp._native's IntMatMul.run_conv: the windows gathered, the integer
product, acc + bias (wrapping, as ONNX Runtime's int32 Add), the conversion to float32
(round to nearest, as its Cast) and the product by the scale (one rounding, as its Mul)
written in NCHW order in one call, recorded and replayed as the ConvInteger's
(lowp.runtime.replay.NATIVE_FLOAT). The nodes it stands for stay in the graph; the lowering
drops them when nothing else reads them. The fusion takes only a ConvInteger and an Add
whose results have no other reader and are no graph output, an int32 Cast to FLOAT, and a
Mul as the Cast's only reader.

The operator's reference is the three nodes' numpy operators one after the other
(`_unfused`), which it computes where the native call does not apply (no extension, a
weight that is not a constant, several groups, a bias that is not one value per output
channel, a scale that is not one float32 value). `disabled()` (or
``LOWP_NO_CONV_INTEGER_FUSION=1`` for a process) leaves the nodes as they are in sessions
made inside it.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from ..ir.graph import CONV_ATTRIBUTES, is_onnx_op, with_nodes
from . import native_integer
from .float_registry import FLOAT_OPS, register
from .switch import Switch

DOMAIN = "ai.lowp"
OP_TYPE = "ConvIntegerToFloat"

_enabled = Switch(os.environ.get("LOWP_NO_CONV_INTEGER_FUSION", "") in ("", "0"))

#: Load sessions made inside the body with ConvInteger, Add and Cast unfused (the reference
#: to compare a fused session with).
disabled = _enabled.off


def apply(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with each Cast<float>(Add(ConvInteger(...), bias)) replaced by a
    ConvIntegerToFloat node (a new model), or `model` itself when there is none (or the
    fusion is disabled)."""
    if not _enabled or not any(n.op_type == "ConvInteger" for n in model.graph.node):
        return model
    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output if o}
    readers: dict[str, int] = {}
    readers_of: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for i in n.input:
            readers[i] = readers.get(i, 0) + 1
            readers_of.setdefault(i, []).append(n)
    outputs = {o.name for o in graph.output}

    def only_reader(name: str) -> bool:
        return readers.get(name, 0) == 1 and name not in outputs

    fused: dict[int, onnx.NodeProto] = {}
    for cast in graph.node:
        if not is_onnx_op(cast, "Cast") or len(cast.input) != 1 or not any(
                a.name == "to" and a.i == TensorProto.FLOAT for a in cast.attribute):
            continue
        add = producer.get(cast.input[0])
        if add is None or not is_onnx_op(add, "Add") or len(add.input) != 2 or not only_reader(
                add.output[0]):
            continue
        for side in (0, 1):
            conv = producer.get(add.input[side])
            if (is_onnx_op(conv, "ConvInteger") and only_reader(add.input[side])
                    and add.input[1 - side]):
                break
        else:
            continue
        assert conv is not None
        inputs = [*conv.input, *[""] * (4 - len(conv.input)), add.input[1 - side]]
        last = cast
        mul = readers_of.get(cast.output[0], [])
        if (len(mul) == 1 and only_reader(cast.output[0]) and is_onnx_op(mul[0], "Mul")
                and len(mul[0].input) == 2 and mul[0].input[0] != mul[0].input[1]
                and all(mul[0].input)):
            last = mul[0]
            inputs.append(last.input[1] if last.input[0] == cast.output[0] else last.input[0])
        node = helper.make_node(OP_TYPE, inputs, [last.output[0]],
                                name=(last.name or last.output[0]) + "_" + OP_TYPE,
                                domain=DOMAIN)
        node.attribute.extend(a for a in conv.attribute if a.name in CONV_ATTRIBUTES)
        fused[id(last)] = node
    if not fused:
        return model
    return with_nodes(model, [fused.get(id(n), n) for n in graph.node], domains=[DOMAIN])


def _unfused(x: np.ndarray, w: np.ndarray, x_zero_point: np.ndarray | None,
             w_zero_point: np.ndarray | None, bias: np.ndarray, scale: np.ndarray | None,
             attrs: dict[str, Any]) -> np.ndarray:
    """The nodes a ConvIntegerToFloat stands for, run by their numpy operators in order."""
    acc = FLOAT_OPS["ConvInteger"](x, w, x_zero_point, w_zero_point, **attrs)
    f = np.asarray(FLOAT_OPS["Cast"](FLOAT_OPS["Add"](acc, bias), to=TensorProto.FLOAT))
    return f if scale is None else np.asarray(FLOAT_OPS["Mul"](f, scale))


@register
def ConvIntegerToFloat(x: np.ndarray, w: np.ndarray, x_zero_point: np.ndarray | None = None,
                       w_zero_point: np.ndarray | None = None,
                       bias: np.ndarray | None = None, scale: np.ndarray | None = None,
                       **attrs: Any) -> np.ndarray:
    """float32(ConvInteger(x, w, x_zero_point, w_zero_point) + bias) (* scale), the int32
    sum wrapping, with the values of the nodes it fuses (`_unfused`); natively when it
    can."""
    from .float_nn import _ints, auto_pads

    assert bias is not None
    conv = {k: v for k, v in attrs.items() if k in CONV_ATTRIBUTES}
    shape = conv.get("kernel_shape")
    if x.ndim == 4 and w.ndim == 4 and (not shape or list(shape) == list(w.shape[2:])):
        strides = _ints(conv.get("strides"), 2, 1)
        dilations = _ints(conv.get("dilations"), 2, 1)
        begin, end = auto_pads("ConvInteger", x.shape[2:], list(w.shape[2:]), strides,
                               dilations, conv.get("pads"), conv.get("auto_pad", "NOTSET"))
        native = native_integer.conv_integer(
            x, w, x_zero_point, w_zero_point, int(conv.get("group", 1)), strides, dilations,
            begin, end, bias=bias, to_float=True, scale=scale)
        if native is not None:
            return native
    return _unfused(x, w, x_zero_point, w_zero_point, bias, scale, conv)
