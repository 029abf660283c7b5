"""A bias-free Conv with the per-channel bias Add (and Relu) after a Squeeze, fused.

TensorFlow's 1-D convolutions reach ONNX (tf2onnx) as

    c = Conv(Unsqueeze(x), W)                     (no bias; a (1, k) or (k, 1) kernel)
    s = Squeeze(c, axes)                          (the unit spatial axis)
    y = Relu(Add(s, B))                           (B one value per output channel)

ONNX Runtime's fusions do not see through the Squeeze (its graph keeps the Squeeze, the
Add and the Relu, each a pass over the whole tensor). At load (`apply`, one of
lowp.runtime.session.LOAD_REWRITES) the Conv becomes ``ConvBias(x, W, b)`` (domain
`DOMAIN`, the Conv's attributes and ``relu``), b the bias as an (M,) constant, and the
Squeeze reads it and writes the Add's (or the Relu's) result: y = Squeeze(ConvBias(...)).
Exact: the Add is one IEEE sum of each convolution output and its channel's value, which
MLAS's NCHWc kernel order in lowp (lowp.runtime.nchwc_conv) adds last, and the Relu is
ONNX Runtime's Relu node's select (0 > y ? 0 : y: NaN and -0 kept), made in the kernel's
write-out ((O164)). The fusion takes only a Conv of a constant float32 4-D weight and no
bias, whose output only the Squeeze reads; a Squeeze of constant spatial axes (2, 3)
whose output only the Add reads; an Add of a float32 constant without NaNs (the NaN
of two NaN operands would depend on the order) that is one value per output channel; a
Relu when it is the Add's only reader. No result it removes may be a graph output.

The operator's reference is the nodes' numpy operators one after the other (`_unfused`),
which it computes where ONNX Runtime's NCHWc kernel does not apply (lowp.runtime.nchwc_conv
`plan`). `disabled()` (or ``LOWP_NO_CONV_BIAS_FUSION=1`` for a process) leaves the nodes
as they are in sessions made inside it.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..ir.graph import CONV_ATTRIBUTES, is_onnx_op, with_nodes
from . import nchwc_conv
from .float_registry import FLOAT_OPS, register
from .switch import Switch

DOMAIN = "ai.lowp"
OP_TYPE = "ConvBias"

_enabled = Switch(os.environ.get("LOWP_NO_CONV_BIAS_FUSION", "") in ("", "0"))

#: Load sessions made inside the body with the Conv, Squeeze, Add and Relu unfused (the
#: reference to compare a fused session with).
disabled = _enabled.off


def _squeezed_axes(node: onnx.NodeProto, inits: dict[str, onnx.TensorProto]
                   ) -> list[int] | None:
    """The Squeeze's axes of a 4-D tensor (constant), or None."""
    if len(node.input) > 1 and node.input[1]:
        t = inits.get(node.input[1])
        if t is None:
            return None
        axes = [int(a) for a in numpy_helper.to_array(t).reshape(-1)]
    else:
        found = [list(a.ints) for a in node.attribute if a.name == "axes"]
        if not found:
            return None
        axes = [int(a) for a in found[0]]
    return sorted({a + 4 if a < 0 else a for a in axes})


def _channel_bias(value: np.ndarray, m: int, rank: int) -> np.ndarray | None:
    """The (m,) float32 bias an Add of constant `value` to an (n, m, ...) tensor of `rank`
    axes adds per channel, or None when it is not one value per channel (or has a NaN)."""
    if value.dtype != np.float32 or value.ndim > rank or np.isnan(value).any():
        return None
    target = (1, m) + (1,) * (rank - 2)
    try:
        if np.broadcast_shapes(value.shape, target) != target:
            return None
    except ValueError:
        return None
    return np.ascontiguousarray(np.broadcast_to(value, target).reshape(m))


def apply(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with each Relu(Add(Squeeze(Conv(x, W)), B)) (or the Add without the Relu)
    as Squeeze(ConvBias(x, W, b)) (a new model), or `model` itself when there is none (or
    the fusion is disabled)."""
    if not _enabled or not any(n.op_type == "Squeeze" for n in model.graph.node):
        return model
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    outputs = {o.name for o in graph.output}

    def only_reader(name: str) -> onnx.NodeProto | None:
        found = readers.get(name, [])
        return found[0] if len(found) == 1 and name not in outputs else None

    replaced: dict[int, list[onnx.NodeProto]] = {}
    dropped: set[int] = set()
    biases: list[onnx.TensorProto] = []
    for conv in graph.node:
        if not is_onnx_op(conv, "Conv") or len(conv.input) != 2 or not conv.output[0]:
            continue
        weight = inits.get(conv.input[1])
        if weight is None or weight.data_type != TensorProto.FLOAT or len(weight.dims) != 4:
            continue
        squeeze = only_reader(conv.output[0])
        if not is_onnx_op(squeeze, "Squeeze"):
            continue
        assert squeeze is not None
        axes = _squeezed_axes(squeeze, inits)
        add = only_reader(squeeze.output[0])
        if not axes or not set(axes) <= {2, 3} or not is_onnx_op(add, "Add"):
            continue
        assert add is not None
        other = add.input[1] if add.input[0] == squeeze.output[0] else add.input[0]
        if other == squeeze.output[0] or other not in inits:
            continue
        bias = _channel_bias(numpy_helper.to_array(inits[other]), int(weight.dims[0]),
                             4 - len(axes))
        if bias is None:
            continue
        last, relu = add, only_reader(add.output[0])
        if is_onnx_op(relu, "Relu"):
            assert relu is not None
            last = relu
        name = f"{conv.output[0]}_{OP_TYPE}_bias"
        biases.append(numpy_helper.from_array(bias, name))
        fused = helper.make_node(OP_TYPE, [conv.input[0], conv.input[1], name],
                                 [conv.output[0]], name=(conv.name or conv.output[0])
                                 + "_" + OP_TYPE, domain=DOMAIN, relu=int(last is not add))
        fused.attribute.extend(a for a in conv.attribute if a.name in CONV_ATTRIBUTES)
        moved = onnx.NodeProto()
        moved.CopyFrom(squeeze)
        moved.output[0] = last.output[0]
        replaced[id(conv)] = [fused, moved]
        dropped.update({id(squeeze), id(add), id(last)})
    if not replaced:
        return model
    nodes = [m for n in graph.node if id(n) not in dropped
             for m in replaced.get(id(n), [n])]
    return with_nodes(model, nodes, biases, domains=[DOMAIN])


def _unfused(x: np.ndarray, w: np.ndarray, b: np.ndarray, relu: bool,
             attrs: dict[str, Any]) -> np.ndarray:
    """The nodes a ConvBias stands for (the Squeeze aside), by their numpy operators."""
    y = FLOAT_OPS["Conv"](x, w, **attrs)
    y = FLOAT_OPS["Add"](y, b.reshape((1, -1) + (1,) * (y.ndim - 2)))
    return np.asarray(FLOAT_OPS["Relu"](y) if relu else y)


@register
def ConvBias(x: np.ndarray, w: np.ndarray, b: np.ndarray, *, relu: int = 0,
             w_constant: bool = False, **attrs: Any) -> np.ndarray:
    """Conv(x, w) + b per channel (then ONNX Runtime's Relu with `relu`), with the values
    of the nodes it fuses (`_unfused`); the bias and Relu in the NCHWc kernel's write-out
    where ONNX Runtime's NCHWc kernel computes the Conv."""
    conv = {k: v for k, v in attrs.items() if k in CONV_ATTRIBUTES}
    conv.update(w_constant=w_constant, b_constant=True)     # (the Conv had no bias)
    f32 = all(v.dtype == np.float32 for v in (x, w, b))
    if f32 and x.ndim == 4 and w.ndim == 4 and nchwc_conv.plan(
            x.shape, w.shape, int(conv.get("group", 1)), w_constant, True) is not None:
        return np.asarray(FLOAT_OPS["Conv"](x, w, b, relu=bool(relu), **conv))
    return _unfused(x, w, b, bool(relu), conv)
