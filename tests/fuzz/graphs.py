"""Random float32 ONNX graphs composed from the blocks real exports contain (hypothesis)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import onnx
from hypothesis import settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

Draw = Callable[[st.SearchStrategy[Any]], Any]


@dataclass
class Image:
    """The running NCHW activation: its name, channels and spatial size."""

    name: str
    c: int
    h: int
    w: int


@dataclass
class Builder:
    """Nodes and initializers of the graph under construction; one name counter."""

    opset: int
    batch: int | str
    rng: np.random.Generator
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    inits: list[onnx.TensorProto] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    counter: int = 0

    def fresh(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}_{self.counter}"

    def node(self, op: str, inputs: list[str], n_out: int = 1, **attrs: Any) -> list[str]:
        outs = [self.fresh(op.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=self.fresh(op), **attrs))
        return outs

    def one(self, op: str, inputs: list[str], **attrs: Any) -> str:
        return self.node(op, inputs, **attrs)[0]

    def const(self, value: np.ndarray, stem: str = "w") -> str:
        name = self.fresh(stem)
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def ints(self, values: list[int]) -> str:
        return self.const(np.asarray(values, np.int64), "i")

    def floats(self, values: list[float]) -> str:
        return self.const(np.asarray(values, np.float32), "f")

    def weight(self, *shape: int) -> np.ndarray:
        fan_in = int(np.prod(shape[1:])) or 1
        return (self.rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)


# --- activations ---------------------------------------------------------------------

def _relu(b: Builder, x: str) -> str:
    return b.one("Relu", [x])


def _relu6(b: Builder, x: str) -> str:
    """Clip(0, 6) (min and max are inputs from opset 11 on)."""
    return b.one("Clip", [x, b.const(np.float32(0.0), "lo"), b.const(np.float32(6.0), "hi")])


def _hardswish(b: Builder, x: str) -> str:
    if b.opset < 14:
        return _written_hardswish(b, x)
    return b.one("HardSwish", [x])


def _written_hardswish(b: Builder, x: str) -> str:
    t = b.one("Add", [x, b.const(np.float32(3.0), "three")])
    t = b.one("Clip", [t, b.const(np.float32(0.0), "lo"), b.const(np.float32(6.0), "hi")])
    t = b.one("Mul", [x, t])
    return b.one("Div", [t, b.const(np.float32(6.0), "six")])


def _sigmoid(b: Builder, x: str) -> str:
    return b.one("Sigmoid", [x])


def _leaky(b: Builder, x: str) -> str:
    return b.one("LeakyRelu", [x], alpha=0.1)


def _identity(b: Builder, x: str) -> str:
    return x


def _elu(b: Builder, x: str) -> str:
    return b.one("Elu", [x], alpha=1.0)


def _mish(b: Builder, x: str) -> str:
    """Mish as YOLOv4 exports write it: x * tanh(softplus(x))."""
    return b.one("Mul", [x, b.one("Tanh", [b.one("Softplus", [x])])])


def _log_compress(b: Builder, x: str) -> str:
    """log(1 + |x|), as audio front ends compress spectra."""
    return b.one("Log", [b.one("Add", [b.one("Abs", [x]), b.const(np.float32(1.0), "one")])])


ACTIVATIONS: list[Callable[[Builder, str], str]] = [
    _relu, _identity, _relu6, _hardswish, _written_hardswish, _sigmoid, _leaky, _elu, _mish,
    _log_compress]


def _prelu(b: Builder, x: Image) -> str:
    slope = (b.rng.uniform(0.0, 0.3, (x.c, 1, 1))).astype(np.float32)
    return b.one("PRelu", [x.name, b.const(slope, "slope")])


# --- convolution ---------------------------------------------------------------------

def batch_norm(b: Builder, y: str, channels: int) -> str:
    """BatchNormalization of `y` with random statistics (scale, bias, mean, variance)."""
    stats = [b.rng.uniform(0.5, 1.5, channels), b.rng.normal(0, 0.1, channels),
             b.rng.normal(0, 0.1, channels), b.rng.uniform(0.5, 1.5, channels)]
    return b.one("BatchNormalization", [y] + [b.const(s.astype(np.float32), "bn")
                                              for s in stats])


def conv(b: Builder, x: Image, c_out: int, k: int = 1, stride: int = 1, pad: int = 0,
         dilation: int = 1, group: int = 1, bn: bool = False, bias: bool = True) -> Image:
    """Conv (+ BatchNormalization when `bn`) with the output image's shape."""
    w = b.const(b.weight(c_out, x.c // group, k, k))
    inputs = [x.name, w] + ([b.const(b.weight(c_out) * 0.1, "b")] if bias else [])
    y = b.one("Conv", inputs, kernel_shape=[k, k], strides=[stride, stride],
              pads=[pad] * 4, dilations=[dilation, dilation], group=group)
    if bn:
        y = batch_norm(b, y, c_out)
    ext = dilation * (k - 1) + 1
    return Image(y, c_out, (x.h + 2 * pad - ext) // stride + 1,
                 (x.w + 2 * pad - ext) // stride + 1)


def conv_groups(draw: Draw, kind: str, channels: int) -> tuple[int, int]:
    """The group count and output channels of a convolution of `kind` ("plain",
    "depthwise", "grouped": two groups, plain when `channels` is odd) on `channels`."""
    group, c_out = 1, draw(st.integers(2, 16))
    if kind == "depthwise":
        group, c_out = channels, channels * draw(st.sampled_from([1, 2]))
    elif kind == "grouped" and channels % 2 == 0:
        group, c_out = 2, 2 * draw(st.integers(1, 6))
    return group, c_out


def conv_act(draw: Draw, b: Builder, x: Image) -> Image:
    """Stem: a convolution of any shape (plain, grouped, depthwise) and an activation."""
    kind = draw(st.sampled_from(["plain", "depthwise", "grouped"]))
    k = draw(st.sampled_from([1, 3])) if min(x.h, x.w) >= 3 else 1
    stride = draw(st.sampled_from([1, 2]))
    dilation = draw(st.sampled_from([1, 2])) if k == 3 and min(x.h, x.w) >= 5 else 1
    pad = draw(st.integers(0, k // 2 * dilation))
    group, c_out = conv_groups(draw, kind, x.c)
    y = conv(b, x, c_out, k, stride, pad, dilation, group, bn=draw(st.booleans()))
    act = draw(st.integers(0, len(ACTIVATIONS)))
    name = _prelu(b, y) if act == len(ACTIVATIONS) else ACTIVATIONS[act](b, y.name)
    return Image(name, y.c, y.h, y.w)


def squeeze_excite(draw: Draw, b: Builder, x: Image) -> Image:
    """GlobalAveragePool -> 1x1 Conv -> Relu -> 1x1 Conv -> HardSigmoid|Sigmoid -> Mul."""
    g = Image(b.one("GlobalAveragePool", [x.name]), x.c, 1, 1)
    mid = conv(b, g, draw(st.integers(2, 8)))
    mid = Image(b.one("Relu", [mid.name]), mid.c, 1, 1)
    gate = conv(b, mid, x.c).name
    gate = (b.one("HardSigmoid", [gate], alpha=1.0 / 6, beta=0.5) if draw(st.booleans())
            else b.one("Sigmoid", [gate]))
    return Image(b.one("Mul", [x.name, gate]), x.c, x.h, x.w)


def residual(draw: Draw, b: Builder, x: Image) -> Image:
    """x + act(conv3x3(x)) with the shape kept."""
    k = 3 if min(x.h, x.w) >= 3 else 1
    y = conv(b, x, x.c, k, pad=k // 2, bn=draw(st.booleans()))
    name = ACTIVATIONS[draw(st.integers(0, len(ACTIVATIONS) - 1))](b, y.name)
    return Image(b.one("Add", [x.name, name] if draw(st.booleans()) else [name, x.name]),
                 x.c, x.h, x.w)


def _split(b: Builder, x: Image, sizes: list[int]) -> list[str]:
    if b.opset >= 18 and len(set(sizes)) == 1:
        return b.node("Split", [x.name], len(sizes), axis=1, num_outputs=len(sizes))
    return b.node("Split", [x.name, b.ints(sizes)], len(sizes), axis=1)


def csp(draw: Draw, b: Builder, x: Image) -> Image:
    """Split on channels, a convolution on one or both halves, Concat."""
    if x.c < 2:
        return x
    first = draw(st.integers(1, x.c - 1))
    halves = _split(b, x, [first, x.c - first])
    left = Image(halves[0], first, x.h, x.w)
    right = conv(b, Image(halves[1], x.c - first, x.h, x.w), draw(st.integers(2, 8)),
                 bn=draw(st.booleans()))
    right_name = ACTIVATIONS[draw(st.integers(0, 2))](b, right.name)
    if draw(st.booleans()):
        left = conv(b, left, draw(st.integers(2, 8)))
    return Image(b.one("Concat", [left.name, right_name], axis=1), left.c + right.c, x.h, x.w)


def two_heads(draw: Draw, b: Builder, x: Image) -> Image:
    """Two convolutions of the same input concatenated on channels (raw and activated)."""
    p = conv(b, x, draw(st.integers(2, 8)))
    q = conv(b, x, draw(st.integers(2, 8)))
    q_name = ACTIVATIONS[draw(st.integers(0, len(ACTIVATIONS) - 1))](b, q.name)
    parts = [p.name, q_name] if draw(st.booleans()) else [q_name, p.name]
    return Image(b.one("Concat", parts, axis=1), p.c + q.c, x.h, x.w)


def _resize(b: Builder, x: str, mode: str, scales: list[float] | None,
            sizes: list[int] | None) -> str:
    roi = ""
    attrs: dict[str, Any] = {"mode": mode}
    if mode == "nearest":
        attrs["nearest_mode"] = "floor" if sizes is None else "round_prefer_floor"
        attrs["coordinate_transformation_mode"] = "asymmetric"
    if scales is not None:
        return b.one("Resize", [x, roi, b.floats(scales)], **attrs)
    return b.one("Resize", [x, roi, "", b.ints(sizes or [])], **attrs)


def upsample(draw: Draw, b: Builder, x: Image) -> Image:
    """FPN: a stride-2 convolution, Resize back up (nearest|linear, scales|sizes), Concat."""
    mode = draw(st.sampled_from(["nearest", "linear"]))
    if draw(st.booleans()) or min(x.h, x.w) < 2:       # plain 2x upsample
        if max(x.h, x.w) > 8:
            return x
        name = _resize(b, x.name, mode, [1.0, 1.0, 2.0, 2.0], None)
        return Image(name, x.c, 2 * x.h, 2 * x.w)
    low = conv(b, x, draw(st.integers(2, 8)), k=1, stride=2)
    use_sizes = draw(st.booleans()) or x.h % 2 or x.w % 2
    up = (_resize(b, low.name, mode, None, [b.batch if isinstance(b.batch, int) else 1,
                                            low.c, x.h, x.w])
          if use_sizes and isinstance(b.batch, int)
          else _resize(b, low.name, mode, [1.0, 1.0, 2.0, 2.0], None))
    if not (use_sizes and isinstance(b.batch, int)) and (x.h % 2 or x.w % 2):
        up = b.one("Slice", [up, b.ints([0, 0]), b.ints([x.h, x.w]), b.ints([2, 3])])
    return Image(b.one("Concat", [x.name, up], axis=1), x.c + low.c, x.h, x.w)


def pool(draw: Draw, b: Builder, x: Image) -> Image:
    """MaxPool or AveragePool, kernel 2|3, stride 1|2, optional padding."""
    if min(x.h, x.w) < 2:
        return x
    k = draw(st.sampled_from([2, 3])) if min(x.h, x.w) >= 3 else 2
    stride = draw(st.sampled_from([1, 2]))
    pad = draw(st.integers(0, k // 2))
    op = draw(st.sampled_from(["MaxPool", "AveragePool"]))
    attrs: dict[str, Any] = {"kernel_shape": [k, k], "strides": [stride, stride],
                             "pads": [pad] * 4}
    if op == "AveragePool":
        attrs["count_include_pad"] = int(draw(st.booleans()))
    y = b.one(op, [x.name], **attrs)
    return Image(y, x.c, (x.h + 2 * pad - k) // stride + 1, (x.w + 2 * pad - k) // stride + 1)


def conv_transpose(draw: Draw, b: Builder, x: Image) -> Image:
    """ConvTranspose kernel 2|3 stride 1|2 (spatial kept at most 16)."""
    if max(x.h, x.w) > 7:
        return x
    k, stride = draw(st.sampled_from([2, 3])), draw(st.sampled_from([1, 2]))
    c_out = draw(st.integers(2, 8))
    w = b.const(b.weight(x.c, c_out, k, k))
    inputs = [x.name, w] + ([b.const(b.weight(c_out) * 0.1, "b")] if draw(st.booleans())
                            else [])
    y = b.one("ConvTranspose", inputs, kernel_shape=[k, k], strides=[stride, stride])
    y = ACTIVATIONS[draw(st.integers(0, 2))](b, y)
    return Image(y, c_out, (x.h - 1) * stride + k, (x.w - 1) * stride + k)


def _layer_norm(b: Builder, x: str, c: int) -> str:
    gamma = b.const(b.rng.uniform(0.5, 1.5, c).astype(np.float32), "ln")
    beta = b.const(b.rng.normal(0, 0.1, c).astype(np.float32), "ln")
    if b.opset >= 17:
        return b.one("LayerNormalization", [x, gamma, beta], axis=-1, epsilon=1e-5)
    axes: dict[str, Any] = {"axes": [-1]}
    mean = b.one("ReduceMean", [x], **axes)
    d = b.one("Sub", [x, mean])
    var = b.one("ReduceMean", [b.one("Mul", [d, d])], **axes)
    # a large epsilon: quantized, a small variance plus 1e-5 rounds to 0 and the QDQ
    # model divides by zero (NaN, whose quantization no engine defines)
    std = b.one("Sqrt", [b.one("Add", [var, b.const(np.float32(0.5), "eps")])])
    return b.one("Add", [b.one("Mul", [b.one("Div", [d, std]), gamma]), beta])


def _gelu(b: Builder, x: str) -> str:
    e = b.one("Erf", [b.one("Div", [x, b.const(np.float32(np.sqrt(2.0)), "sqrt2")])])
    e = b.one("Add", [e, b.const(np.float32(1.0), "one")])
    return b.one("Mul", [b.one("Mul", [x, e]), b.const(np.float32(0.5), "half")])


def _matmul_w(b: Builder, x: str, c_in: int, c_out: int) -> str:
    y = b.one("MatMul", [x, b.const(b.weight(c_out, c_in).T.copy())])
    return b.one("Add", [y, b.const(b.weight(c_out) * 0.1, "b")])


def attention(draw: Draw, b: Builder, x: Image) -> Image:
    """conv -> tokens (Reshape|Flatten, Transpose) -> LayerNorm, attention, Erf-GELU MLP
    -> back to an image. Pre-norm (LayerNorm before each sublayer) or post-norm (after each
    residual Add, which ONNX Runtime fuses into SkipLayerNormalization)."""
    if x.h * x.w > 64:
        return x
    c = x.c
    post_norm = draw(st.booleans())
    tokens = b.one("Reshape", [x.name, b.ints([0, c, -1])])
    t = b.one("Transpose", [tokens], perm=[0, 2, 1])                 # N, L, C
    n = t if post_norm else _layer_norm(b, t, c)
    q, k, v = (_matmul_w(b, n, c, c) for _ in range(3))
    kt = b.one("Transpose", [k], perm=[0, 2, 1])
    scores = b.one("Mul", [b.one("MatMul", [q, kt]), b.const(np.float32(c ** -0.5), "sc")])
    att = b.one("MatMul", [b.one("Softmax", [scores], axis=-1), v])
    t = b.one("Add", [t, att])
    if post_norm:
        t = _layer_norm(b, t, c)
    if draw(st.booleans()):
        hidden = draw(st.integers(2, 16))
        m = _gelu(b, _matmul_w(b, t if post_norm else _layer_norm(b, t, c), c, hidden))
        t = b.one("Add", [t, _matmul_w(b, m, hidden, c)])
        if post_norm:
            t = _layer_norm(b, t, c)
    back = b.one("Transpose", [t], perm=[0, 2, 1])
    return Image(b.one("Reshape", [back, b.ints([0, c, x.h, x.w])]), c, x.h, x.w)


def _unsqueeze(b: Builder, x: str, axis: int) -> str:
    return b.one("Unsqueeze", [x, b.ints([axis])])


def _squeeze(b: Builder, x: str, axis: int) -> str:
    return b.one("Squeeze", [x, b.ints([axis])])


def movement(draw: Draw, b: Builder, x: Image) -> Image:
    """Data movement that keeps an image: Transpose twice, channel Gather (negative
    indices at times), spatial Slice, Unsqueeze/Squeeze, Reshape round trip, Flatten round
    trip."""
    kind = draw(st.sampled_from(["transpose", "gather", "slice", "squeeze", "reshape",
                                 "flatten"]))
    if kind == "transpose":
        t = b.one("Transpose", [x.name], perm=[0, 2, 3, 1])
        t = ACTIVATIONS[draw(st.integers(0, 1))](b, t)
        return Image(b.one("Transpose", [t], perm=[0, 3, 1, 2]), x.c, x.h, x.w)
    if kind == "gather":
        idx = draw(st.permutations(list(range(x.c))))[:draw(st.integers(1, x.c))]
        if draw(st.booleans()):          # negative indices count from the end (tf2onnx)
            idx = [i - x.c if draw(st.booleans()) else i for i in idx]
        return Image(b.one("Gather", [x.name, b.ints(list(idx))], axis=1), len(idx), x.h, x.w)
    if kind == "slice":
        if x.h < 2:
            return x
        start = draw(st.integers(0, x.h - 2))
        y = b.one("Slice", [x.name, b.ints([start]), b.ints([x.h]), b.ints([2])])
        return Image(y, x.c, x.h - start, x.w)
    if kind == "squeeze":
        return Image(_squeeze(b, _unsqueeze(b, x.name, 2), 2), x.c, x.h, x.w)
    if kind == "reshape":
        flat = b.one("Reshape", [x.name, b.ints([0, x.c * x.h * x.w])])
        return Image(b.one("Reshape", [flat, b.ints([0, x.c, x.h, x.w])]), x.c, x.h, x.w)
    flat = b.one("Flatten", [x.name], axis=1)
    return Image(b.one("Reshape", [flat, b.ints([-1, x.c, x.h, x.w])]), x.c, x.h, x.w)


def recurrent(draw: Draw, b: Builder, x: Image) -> Image:
    """A sequence from the feature map (one step per pixel) through LSTM or GRU, back to
    an image with the hidden size as channels."""
    if x.h * x.w > 32:
        return x
    op, gates = draw(st.sampled_from([("LSTM", 4), ("GRU", 3)]))
    hidden = draw(st.integers(2, 8))
    seq = b.one("Reshape", [x.name, b.ints([0, x.c, -1])])
    seq = b.one("Transpose", [seq], perm=[2, 0, 1])                  # L, N, C
    w = b.const(b.weight(1, gates * hidden, x.c))
    r = b.const(b.weight(1, gates * hidden, hidden))
    bias = b.const(b.weight(1, 2 * gates * hidden) * 0.1, "b")
    attrs: dict[str, Any] = {"hidden_size": hidden}
    if op == "GRU":
        attrs["linear_before_reset"] = int(draw(st.booleans()))
    y = b.node(op, [seq, w, r, bias], 1, **attrs)[0]                 # L, 1, N, hidden
    y = _squeeze(b, y, 1)
    y = b.one("Transpose", [y], perm=[1, 2, 0])                      # N, hidden, L
    return Image(b.one("Reshape", [y, b.ints([0, hidden, x.h, x.w])]), hidden, x.h, x.w)


def branch(draw: Draw, b: Builder, x: Image) -> Image:
    """If on a constant condition; each branch reads the outer image (Relu | Sigmoid)."""
    def body(op: str) -> onnx.GraphProto:
        out = b.fresh(f"{op.lower()}_branch")
        return helper.make_graph(
            [helper.make_node(op, [x.name], [out], name=b.fresh(op))], b.fresh("body"), [],
            [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)])

    cond = b.const(np.array(draw(st.booleans())), "cond")
    y = b.one("If", [cond], then_branch=body("Relu"), else_branch=body("Sigmoid"))
    return Image(y, x.c, x.h, x.w)



def _reduce(b: Builder, op: str, x: str, axes: list[int], keepdims: int = 1) -> str:
    """A Reduce* node with its axes as the opset wants them (an input from opset 18, and
    for ReduceSum from 13; an attribute before)."""
    if b.opset >= 18 or (op == "ReduceSum" and b.opset >= 13):
        return b.one(op, [x, b.ints(axes)], keepdims=keepdims)
    return b.one(op, [x], axes=axes, keepdims=keepdims)


def reduce_excite(draw: Draw, b: Builder, x: Image) -> Image:
    """Attention gates built from reductions, as paddle2onnx, tf2onnx and YOLO-style
    exports write them: squeeze-excitation whose pooling is ReduceMean|ReduceMax|ReduceSum
    over H, W (keepdims) or GlobalMaxPool; or a spatial gate (CBAM): the mean and the max
    over the channels, concatenated, a 3x3 Conv to one channel, Sigmoid, Mul."""
    if draw(st.booleans()):
        op = draw(st.sampled_from(["ReduceMean", "ReduceMax", "ReduceSum", "GlobalMaxPool"]))
        g = (b.one(op, [x.name]) if op == "GlobalMaxPool"
             else _reduce(b, op, x.name, draw(st.sampled_from([[2, 3], [-2, -1], [3, 2]]))))
        mid = conv(b, Image(g, x.c, 1, 1), draw(st.integers(2, 8)))
        mid = Image(b.one("Relu", [mid.name]), mid.c, 1, 1)
        gate = conv(b, mid, x.c).name
        gate = (b.one("HardSigmoid", [gate], alpha=0.2, beta=0.5) if draw(st.booleans())
                else b.one("Sigmoid", [gate]))
        return Image(b.one("Mul", [gate, x.name] if draw(st.booleans()) else [x.name, gate]),
                     x.c, x.h, x.w)
    mean = _reduce(b, "ReduceMean", x.name, [1])
    peak = _reduce(b, "ReduceMax", x.name, [1])
    both = b.one("Concat", [mean, peak], axis=1)
    k = 3 if min(x.h, x.w) >= 3 else 1
    gate = b.one("Sigmoid", [conv(b, Image(both, 2, x.h, x.w), 1, k, pad=k // 2).name])
    return Image(b.one("Mul", [x.name, gate]), x.c, x.h, x.w)


def channel_ops(draw: Draw, b: Builder, x: Image) -> Image:
    """Per-channel arithmetic and channel-axis operators that exports leave between
    convolutions: a layer scale (Mul by a [C,1,1] constant) on a residual branch;
    normalization by per-channel constants (Sub, Div); Softmax over the channels; a
    LayerNorm over the channels written out (ReduceMean over axis 1, ConvNeXt-style);
    Pad (constant, reflect, edge, wrap from opset 19; a negative pad crops); Concat along
    the height."""
    kind = draw(st.sampled_from(["layer_scale", "normalize", "softmax", "channel_norm",
                                 "pad", "concat_h"]))
    c = x.c
    if kind == "layer_scale":
        shape = draw(st.sampled_from([(c, 1, 1), (1, c, 1, 1)]))
        y = conv(b, x, c, 1).name
        s = b.const(b.rng.uniform(0.05, 1.0, c).astype(np.float32).reshape(shape), "ls")
        return Image(b.one("Add", [x.name, b.one("Mul", [y, s])]), c, x.h, x.w)
    if kind == "normalize":
        m = b.const(b.rng.normal(0, 0.5, (1, c, 1, 1)).astype(np.float32), "mean")
        d = b.const(b.rng.uniform(0.5, 2.0, (1, c, 1, 1)).astype(np.float32), "std")
        return Image(b.one("Div", [b.one("Sub", [x.name, m]), d]), c, x.h, x.w)
    if kind == "softmax":
        return Image(b.one("Softmax", [x.name], axis=1), c, x.h, x.w)
    if kind == "channel_norm":
        mean = _reduce(b, "ReduceMean", x.name, [1])
        d = b.one("Sub", [x.name, mean])
        var = _reduce(b, "ReduceMean", b.one("Pow", [d, b.const(np.float32(2.0), "two")]),
                      [1])
        std = b.one("Sqrt", [b.one("Add", [var, b.const(np.float32(0.5), "eps")])])
        gamma = b.const(b.rng.uniform(0.5, 1.5, (c, 1, 1)).astype(np.float32), "ln")
        beta = b.const(b.rng.normal(0, 0.1, (c, 1, 1)).astype(np.float32), "ln")
        return Image(b.one("Add", [b.one("Mul", [b.one("Div", [d, std]), gamma]), beta]),
                     c, x.h, x.w)
    if kind == "pad":
        mode = draw(st.sampled_from(["constant", "reflect", "edge"]
                                    + (["wrap"] if b.opset >= 19 else [])))
        most = 2 if mode != "reflect" else min(2, x.h - 1, x.w - 1)
        if most < 1:
            return x
        t, l_, bo, r = (draw(st.integers(0, most)) for _ in range(4))
        if draw(st.booleans()):          # a negative pad crops (as a Slice would)
            t, l_ = -min(t, x.h - 1), -min(l_, x.w - 1)
        inputs = [x.name, b.ints([0, 0, t, l_, 0, 0, bo, r])]
        if mode == "constant" and draw(st.booleans()):
            inputs.append(b.const(np.float32(draw(st.sampled_from([0.0, -1.0, 0.5]))), "pv"))
        y = b.one("Pad", inputs, mode=mode)
        return Image(y, c, x.h + t + bo, x.w + l_ + r)
    if x.h > 8:
        return x
    y = ACTIVATIONS[draw(st.integers(0, len(ACTIVATIONS) - 1))](b, x.name)
    return Image(b.one("Concat", [x.name, y] if draw(st.booleans()) else [y, x.name], axis=2),
                 c, 2 * x.h, x.w)



def shape_ops(draw: Draw, b: Builder, x: Image) -> Image:
    """Shape arithmetic and broadcasting as torch and tf2onnx exports write them: a
    flatten and back through Shape -> Gather -> Unsqueeze -> Concat -> Reshape (a dynamic
    batch); a per-channel constant Expanded to the input's Shape; Tile along the height;
    LeakyRelu written out as Where(Greater(x, 0), x, 0.1 x); an L2 normalization over the
    channels (ReduceL2); the spatial mean subtracted (ReduceMean over H, W; or a
    ReduceMean, ReduceMax or ReduceSum with keepdims=0 and its axes put back by
    Unsqueeze)."""
    kind = draw(st.sampled_from(["dynamic_flatten", "expand", "tile", "where", "l2norm",
                                 "mean_sub"]))
    c = x.c
    if kind == "dynamic_flatten":
        shape = b.one("Shape", [x.name])
        n = b.one("Unsqueeze", [b.one("Gather", [shape, b.const(np.int64(0), "i")], axis=0),
                                b.ints([0])])                     # (opset >= 13: axes input)
        flat = b.one("Reshape", [x.name, b.one("Concat", [n, b.ints([-1])], axis=0)])
        flat = ACTIVATIONS[draw(st.integers(0, 1))](b, flat)
        back = b.one("Concat", [n, b.ints([c, x.h, x.w])], axis=0)
        return Image(b.one("Reshape", [flat, back]), c, x.h, x.w)
    if kind == "expand":
        k = b.const(b.rng.normal(0, 0.5, (1, c, 1, 1)).astype(np.float32), "k")
        big = b.one("Expand", [k, b.one("Shape", [x.name])])
        return Image(b.one("Add", [x.name, big]), c, x.h, x.w)
    if kind == "tile":
        if x.h > 8:
            return x
        return Image(b.one("Tile", [x.name, b.ints([1, 1, 2, 1])]), c, 2 * x.h, x.w)
    if kind == "where":
        positive = b.one("Greater", [x.name, b.const(np.float32(0.0), "zero")])
        small = b.one("Mul", [x.name, b.const(np.float32(0.1), "slope")])
        return Image(b.one("Where", [positive, x.name, small]), c, x.h, x.w)
    if kind == "l2norm":
        norm = _reduce(b, "ReduceL2", x.name, [1])
        norm = b.one("Max", [norm, b.const(np.float32(1e-3), "eps")])
        return Image(b.one("Div", [x.name, norm]), c, x.h, x.w)
    if draw(st.booleans()):              # keepdims=0, the axes put back by Unsqueeze
        op = draw(st.sampled_from(["ReduceMean", "ReduceMax", "ReduceSum"]))
        flat = _reduce(b, op, x.name, draw(st.sampled_from([[2, 3], [-1, -2]])), keepdims=0)
        return Image(b.one("Sub", [x.name, b.one("Unsqueeze", [flat, b.ints([2, 3])])]),
                     c, x.h, x.w)
    mean = _reduce(b, "ReduceMean", x.name, [2, 3])
    return Image(b.one("Sub", [x.name, mean]), c, x.h, x.w)


def misc_ops(draw: Draw, b: Builder, x: Image) -> Image:
    """Operators the other blocks never draw, cheap and shape-keeping: Sin, Cos, Neg, Abs
    (a periodic encoding); Where on Not(Less) (a written ReLU-like gate); ArgMax over the
    channels (first or last index on ties) through OneHot as a mask; Cast through int32,
    int16, int8 (truncation, then wrap-around) and back to float; ScatterElements of a
    per-channel constant at a permutation of the channels; Resize with the modes and
    coordinate transforms exports write (cubic, linear, nearest; half_pixel,
    align_corners, pytorch_half_pixel, asymmetric; every nearest_mode)."""
    kind = draw(st.sampled_from(["trig", "where_not", "argmax_onehot", "cast_ints",
                                 "scatter", "resize_modes"]))
    c = x.c
    if kind == "trig":
        s = b.one("Sin", [x.name])
        t = b.one("Cos", [b.one("Neg", [x.name])])
        y = b.one(draw(st.sampled_from(["Add", "Mul", "Sub"])), [s, t])
        return Image(b.one("Abs", [y]) if draw(st.booleans()) else y, c, x.h, x.w)
    if kind == "where_not":
        below = b.one("Less", [x.name, b.const(np.float32(0.0), "zero")])
        small = b.one("Neg", [b.one("Mul", [x.name, b.const(np.float32(0.2), "slope")])])
        return Image(b.one("Where", [b.one("Not", [below]), x.name, small]), c, x.h, x.w)
    if kind == "argmax_onehot":
        arg = b.one("ArgMax", [x.name], axis=1, keepdims=0,
                    select_last_index=int(draw(st.booleans())))           # N, H, W
        values = b.floats([draw(st.sampled_from([0.0, 0.5])), 1.0])
        mask = b.one("OneHot", [arg, b.ints([c]), values], axis=1)        # N, C, H, W
        return Image(b.one("Mul", [x.name, mask]), c, x.h, x.w)
    if kind == "cast_ints":
        gain = draw(st.sampled_from([1.0, 40.0, 300.0]))
        y = b.one("Mul", [x.name, b.const(np.float32(gain), "gain")])
        y = b.one("Cast", [y], to=TensorProto.INT32)
        for to in draw(st.lists(st.sampled_from([TensorProto.INT16, TensorProto.INT8,
                                                 TensorProto.INT64, TensorProto.UINT8]),
                                max_size=2)):
            y = b.one("Cast", [y], to=to)
        return Image(b.one("Cast", [y], to=TensorProto.FLOAT), c, x.h, x.w)
    if kind == "scatter":
        perm = np.asarray(draw(st.permutations(list(range(c)))), np.int64)
        rows = draw(st.integers(1, c))
        shape = (1, rows, 1, 1)
        idx = np.broadcast_to(perm[:rows].reshape(shape), (1, rows, x.h, x.w)).copy()
        upd = np.broadcast_to(b.rng.normal(0, 1, shape).astype(np.float32),
                              (1, rows, x.h, x.w)).copy()
        if b.batch != 1:                  # a batch of one: the constants' first axis
            return x
        y = b.one("ScatterElements", [x.name, b.const(idx, "i"), b.const(upd, "upd")], axis=1)
        return Image(y, c, x.h, x.w)
    mode = draw(st.sampled_from(["cubic", "linear", "nearest"]))
    ctm = draw(st.sampled_from(["half_pixel", "align_corners", "pytorch_half_pixel",
                                "asymmetric"]))
    attrs: dict[str, Any] = {"mode": mode, "coordinate_transformation_mode": ctm}
    if mode == "nearest":
        attrs["nearest_mode"] = draw(st.sampled_from(["round_prefer_floor",
                                                      "round_prefer_ceil", "floor", "ceil"]))
    if mode == "cubic" and draw(st.booleans()):
        attrs["cubic_coeff_a"] = -0.5
        attrs["exclude_outside"] = 1
    if max(x.h, x.w) > 8:
        h, w = max(1, x.h // 2), max(1, x.w // 2)             # downsample by sizes
    else:
        h, w = draw(st.integers(1, 2 * x.h)), draw(st.integers(1, 2 * x.w))
    if not isinstance(b.batch, int):
        # scales exact in float32: the output size is floor(scale * input)
        sh, sw = (draw(st.sampled_from([0.5, 1.0, 1.5, 2.0])) if max(x.h, x.w) <= 8
                  else 0.5 for _ in range(2))
        h, w = int(sh * x.h), int(sw * x.w)
        if h < 1 or w < 1:
            return x
        y = b.one("Resize", [x.name, "", b.floats([1.0, 1.0, sh, sw])], **attrs)
    else:
        y = b.one("Resize", [x.name, "", "", b.ints([b.batch, c, h, w])], **attrs)
    return Image(y, c, h, w)

def _same_size(size: int, stride: int) -> int:
    return -(-size // stride)


def exporter_padding(draw: Draw, b: Builder, x: Image) -> Image:
    """Padding and window attributes that tf2onnx, keras2onnx and paddle2onnx write and
    torch does not: Conv, MaxPool and AveragePool with auto_pad SAME_UPPER, SAME_LOWER or
    VALID (any stride), a SAME pool dilated at times (in ceil mode too); MaxPool with
    dilations or ceil_mode; AveragePool with ceil_mode; a window taller than the input by
    less than a stride (_big_window); SpaceToDepth -> a 1x1 Conv -> DepthToSpace (DCR or
    CRD), as space-to-depth stems and pixel-shuffle decoders write them."""
    kind = draw(st.sampled_from(["conv_auto_pad", "pool_auto_pad", "dilated_max",
                                 "ceil_pool", "depth_space", "big_window"]))
    if kind == "depth_space":
        if x.h % 2 or x.w % 2:
            return x
        d = b.one("SpaceToDepth", [x.name], blocksize=2)
        mid = conv(b, Image(d, 4 * x.c, x.h // 2, x.w // 2), 4 * draw(st.integers(1, 3)))
        mode = draw(st.sampled_from(["DCR", "CRD"]))
        return Image(b.one("DepthToSpace", [mid.name], blocksize=2, mode=mode),
                     mid.c // 4, x.h, x.w)
    if kind == "big_window":
        return _big_window(draw, b, x)
    k = draw(st.sampled_from([2, 3])) if min(x.h, x.w) >= 3 else 1 + int(min(x.h, x.w) >= 2)
    stride = draw(st.sampled_from([1, 2]))
    attrs: dict[str, Any] = {"kernel_shape": [k, k], "strides": [stride, stride]}
    ext, dilation = k, 1
    if kind in ("conv_auto_pad", "pool_auto_pad"):
        attrs["auto_pad"] = draw(st.sampled_from(["SAME_UPPER", "SAME_LOWER", "VALID"]))
    elif kind == "dilated_max":
        dilation = draw(st.sampled_from([1, 2]))
        ext = dilation * (k - 1) + 1
        if min(x.h, x.w) < ext:
            return x
        attrs["dilations"] = [dilation, dilation]
    else:
        attrs["ceil_mode"] = 1
    same = attrs.get("auto_pad", "VALID") != "VALID"
    op = "Conv" if kind == "conv_auto_pad" else "MaxPool" if kind == "dilated_max" else \
        draw(st.sampled_from(["MaxPool", "AveragePool"]))
    if same and op != "Conv" and (op == "MaxPool" or b.opset >= 19) and draw(st.booleans()):
        # a dilated SAME pool (ONNX Runtime pads for the undilated kernel, (O180)), in ceil
        # mode at times
        dilation = draw(st.sampled_from([2, 3]))
        attrs["dilations"] = [dilation, dilation]
        attrs["ceil_mode"] = int(draw(st.booleans()))
    if not same and min(x.h, x.w) < ext:
        return x
    if same and op != "Conv" and min(_ort_same_pad(n, k, stride) for n in (x.h, x.w)) < 0:
        # a stride past the kernel over an axis of one stride or more (kernel 1, stride 2
        # over 2 rows): ONNX Runtime refuses the pool's negative pad, so it never compares
        return x
    if same:
        h, w = (_ort_pool_size(n, k, stride, dilation, attrs.get("ceil_mode", 0),
                               _ort_same_pad(n, k, stride), attrs["auto_pad"])
                for n in (x.h, x.w))
        # onnx's shape inference sizes it by the spec (ceil(n / stride)): a graph whose
        # declared shapes are ONNX Runtime's other ones fails its check, so only the pads
        # differ here (where they place the windows, (O180))
        if (h, w) != (_same_size(x.h, stride), _same_size(x.w, stride)):
            return x
    elif attrs.get("ceil_mode"):
        h, w = (_same_size(n - ext, stride) + 1 for n in (x.h, x.w))
        # ONNX Runtime drops a last window wholly past the input, onnx's shape inference
        # does not: only the sizes both give
        if (h, w) != tuple(_ort_pool_size(n, k, stride, dilation, 1, 0, "VALID")
                           for n in (x.h, x.w)):
            return x
    else:
        h, w = ((n - ext) // stride + 1 for n in (x.h, x.w))
    if op == "Conv":
        c_out = draw(st.integers(2, 12))
        wt = b.const(b.weight(c_out, x.c, k, k))
        y = b.one("Conv", [x.name, wt, b.const(b.weight(c_out) * 0.1, "b")], **attrs)
        y = ACTIVATIONS[draw(st.integers(0, len(ACTIVATIONS) - 1))](b, y)
        return Image(y, c_out, h, w)
    if op == "AveragePool" and same:
        attrs["count_include_pad"] = int(draw(st.booleans()))
    return Image(b.one(op, [x.name], **attrs), x.c, h, w)


def _ort_same_pad(n: int, k: int, stride: int) -> int:
    """ONNX Runtime's total SAME pooling pad of an axis: the kernel without dilation."""
    return (_same_size(n, stride) - 1) * stride + k - n


def _ort_pool_size(n: int, k: int, stride: int, dilation: int, ceil: int, pad: int,
                   auto_pad: str) -> int:
    """ONNX Runtime's pooled size of an axis of `n` with `pad` in all, split as `auto_pad`
    SAME_* splits it (none for VALID; PoolAttributes): the numerator divided toward zero, up
    in ceil mode, a last window wholly in the end padding dropped."""
    num = n + pad - (k - 1) * dilation - 1
    if num < 0:
        return int(num / stride) + 1
    begin = pad // 2 if auto_pad == "SAME_UPPER" else (pad + 1) // 2
    out = (_same_size(num, stride) if ceil else num // stride) + 1
    return out - 1 if ceil and (out - 1) * stride >= n + begin else out


def _big_window(draw: Draw, b: Builder, x: Image) -> Image:
    """MaxPool or AveragePool whose window along the height passes the padded input by
    less than a stride (one output row, (O80)), as a classifier's last pool meets a small
    map."""
    stride = draw(st.sampled_from([2, 3]))
    k = x.h + draw(st.integers(1, stride - 1))
    op = draw(st.sampled_from(["MaxPool", "AveragePool"]))
    attrs: dict[str, Any] = {"kernel_shape": [k, 1], "strides": [stride, 1],
                             "ceil_mode": int(draw(st.booleans()))}
    if op == "AveragePool" and not attrs["ceil_mode"]:
        # (QLinearAveragePool divides a ceil-mode window past the end by the whole kernel
        # with count_include_pad, lowp by the taps inside the padded input: (O8), a decision
        # tests/runtime/test_pool_window_past_the_input.py leaves out too)
        attrs["count_include_pad"] = int(draw(st.booleans()))
    return Image(b.one(op, [x.name], **attrs), x.c, 1, x.w)


def more_elementwise(draw: Draw, b: Builder, x: Image) -> Image:
    """Elementwise and axis operators of real exports that the other blocks never draw:
    Exp of a bounded value, Reciprocal of a value kept away from zero, Min and Max against
    a constant and between branches, Sign as a gate, Atan, LogSoftmax over the channels,
    CumSum along the width (exclusive or reverse at times)."""
    kind = draw(st.sampled_from(["exp", "reciprocal", "min_max", "sign", "atan",
                                 "log_softmax", "cumsum"]))
    c = x.c
    if kind == "exp":
        bounded = b.one("Tanh", [x.name])
        return Image(b.one("Exp", [bounded]), c, x.h, x.w)
    if kind == "reciprocal":
        away = b.one("Add", [b.one("Abs", [x.name]), b.const(np.float32(0.5), "half")])
        return Image(b.one("Reciprocal", [away]), c, x.h, x.w)
    if kind == "min_max":
        y = conv(b, x, c, 1).name
        op = draw(st.sampled_from(["Min", "Max"]))
        inputs = [x.name, y] + ([b.const(np.float32(draw(st.sampled_from([0.0, 0.5]))), "m")]
                                if draw(st.booleans()) else [])
        return Image(b.one(op, inputs), c, x.h, x.w)
    if kind == "sign":
        return Image(b.one("Mul", [x.name, b.one("Sign", [x.name])]), c, x.h, x.w)
    if kind == "atan":
        return Image(b.one("Atan", [x.name]), c, x.h, x.w)
    if kind == "log_softmax":
        return Image(b.one("LogSoftmax", [x.name], axis=1), c, x.h, x.w)
    attrs: dict[str, Any] = {}
    if draw(st.booleans()):
        attrs["exclusive"] = 1
    if draw(st.booleans()):
        attrs["reverse"] = 1
    return Image(b.one("CumSum", [x.name, b.const(np.int64(3), "ax")], **attrs), c, x.h, x.w)


def _activation_op(draw: Draw, b: Builder, x: str) -> str:
    """An activation operator of its own (not written out): Gelu (opset 20, exact or
    tanh), Mish (18), HardSigmoid, Celu, Selu, Softsign, ThresholdedRelu."""
    ops = ["HardSigmoid", "Celu", "Selu", "Softsign", "ThresholdedRelu"]
    ops += ["Mish"] if b.opset >= 18 else []
    ops += ["Gelu", "GeluTanh"] if b.opset >= 20 else []
    op = draw(st.sampled_from(ops))
    attrs: dict[str, Any] = {"HardSigmoid": {"alpha": 0.3, "beta": 0.4}, "Celu": {"alpha": 0.7},
                             "ThresholdedRelu": {"alpha": 0.3},
                             "GeluTanh": {"approximate": "tanh"}}.get(op, {})
    return b.one("Gelu" if op == "GeluTanh" else op, [x], **attrs)


def more_layers(draw: Draw, b: Builder, x: Image) -> Image:
    """Layers of real exports that the other blocks never draw: activation operators
    (_activation_op); InstanceNormalization, LRN, GroupNormalization (opset 21, per-channel
    scale); reductions over the channels (ReduceMin, ReduceProd, ReduceLogSumExp,
    ReduceSumSquare, ReduceL1) as a gate; variadic Sum and Mean; a 1x1 projection as
    Einsum; a grouped, dilated ConvTranspose with asymmetric pads and output_padding."""
    kind = draw(st.sampled_from(["activation", "norm", "reduce_gate", "sum_mean", "einsum",
                                 "deconv"]))
    c = x.c
    if kind == "activation":
        return Image(_activation_op(draw, b, x.name), c, x.h, x.w)
    if kind == "norm":
        norms = ["InstanceNormalization", "LRN"] + (["GroupNormalization"]
                                                    if b.opset >= 21 and c % 2 == 0 else [])
        op = draw(st.sampled_from(norms))
        if op == "LRN":
            y = b.one("LRN", [x.name], size=draw(st.sampled_from([3, 5])), alpha=1e-2,
                      beta=0.75, bias=1.0)
            return Image(y, c, x.h, x.w)
        scale = b.const(b.rng.uniform(0.5, 1.5, c).astype(np.float32), "g")
        shift = b.const(b.rng.normal(0, 0.1, c).astype(np.float32), "b")
        groups = {"num_groups": 2} if op == "GroupNormalization" else {}
        return Image(b.one(op, [x.name, scale, shift], epsilon=1e-3, **groups), c, x.h, x.w)
    if kind == "reduce_gate":
        op = draw(st.sampled_from(["ReduceMin", "ReduceProd", "ReduceLogSumExp",
                                   "ReduceSumSquare", "ReduceL1"]))
        g = _reduce(b, op, b.one("Tanh", [x.name]), [1])
        return Image(b.one("Mul", [x.name, g]), c, x.h, x.w)
    if kind == "sum_mean":
        parts = [x.name, b.one("Relu", [x.name]), b.one("Sigmoid", [x.name])]
        return Image(b.one(draw(st.sampled_from(["Sum", "Mean"])), parts), c, x.h, x.w)
    if kind == "einsum":
        c_out = draw(st.integers(2, 8))
        w = b.const(b.weight(c_out, c).T.copy())
        return Image(b.one("Einsum", [x.name, w], equation="nchw,cd->ndhw"), c_out, x.h, x.w)
    if max(x.h, x.w) > 7:
        return x
    group = 2 if c % 2 == 0 and draw(st.booleans()) else 1
    c_out = group * draw(st.integers(1, 4))
    k, stride, dilation = 3, draw(st.sampled_from([1, 2])), draw(st.sampled_from([1, 2]))
    pads = [draw(st.integers(0, 1)) for _ in range(4)]
    extra = [draw(st.integers(0, stride - 1)) for _ in range(2)]
    w = b.const(b.weight(c, c_out // group, k, k))
    y = b.one("ConvTranspose", [x.name, w], kernel_shape=[k, k], strides=[stride, stride],
              dilations=[dilation, dilation], pads=pads, output_padding=extra, group=group)
    h, w_ = (stride * (n - 1) + e + dilation * (k - 1) + 1 - lo - hi
             for n, e, lo, hi in ((x.h, extra[0], pads[0], pads[2]),
                                  (x.w, extra[1], pads[1], pads[3])))
    return Image(y, c_out, h, w_)


def index_ops(draw: Draw, b: Builder, x: Image) -> Image:
    """Selection and indexing operators of real exports that the other blocks never draw:
    TopK over the channels (largest or smallest, ties in quantized values), the values or
    GatherElements of the input at its indices; Hardmax and ArgMin over the channels as
    masks; GatherND and ScatterND (reduction add or mul from opset 16, max or min from 18)
    on the channels-first transpose; Trilu of the spatial plane (upper or lower, an offset
    k); NonZero of a gate, GatherND of the values there and ScatterND of their Relu back
    into zeros of the input's shape (ConstantOfShape)."""
    kinds = ["topk", "hardmax", "argmin", "gather_nd", "scatter_nd", "trilu", "nonzero"]
    kind = draw(st.sampled_from([k for k in kinds if k != "trilu" or b.opset >= 14]))
    c = x.c
    if kind == "topk":
        k = draw(st.integers(1, c))
        values, indices = b.node("TopK", [x.name, b.ints([k])], 2, axis=draw(
            st.sampled_from([1, -3])), largest=int(draw(st.booleans())),
            sorted=1)
        if draw(st.booleans()):
            return Image(values, k, x.h, x.w)
        y = b.one("GatherElements", [x.name, indices], axis=1)
        return Image(b.one("Add", [y, values]), k, x.h, x.w)
    if kind == "hardmax":
        mask = b.one("Hardmax", [x.name], axis=1)          # (opset >= 13: one axis)
        return Image(b.one("Mul", [x.name, mask]), c, x.h, x.w)
    if kind == "argmin":
        arg = b.one("ArgMin", [x.name], axis=1, keepdims=1,
                    select_last_index=int(draw(st.booleans())))            # N, 1, H, W
        as_float = b.one("Cast", [arg], to=TensorProto.FLOAT)
        return Image(b.one("Add", [x.name, as_float]), c, x.h, x.w)
    t = b.one("Transpose", [x.name], perm=[1, 0, 2, 3])                    # C, N, H, W
    if kind == "gather_nd":
        rows = draw(st.lists(st.integers(-c, c - 1), min_size=1, max_size=c))
        y = b.one("GatherND", [t, b.const(np.asarray(rows, np.int64).reshape(-1, 1), "i")])
        return Image(b.one("Transpose", [y], perm=[1, 0, 2, 3]), len(rows), x.h, x.w)
    if kind == "scatter_nd":
        reductions = ["none"] + (["add", "mul"] if b.opset >= 16 else []) + (
            ["max", "min"] if b.opset >= 18 else [])
        reduction = draw(st.sampled_from(reductions))
        if reduction == "none":          # duplicate indices: the spec leaves the order open
            rows = draw(st.permutations(list(range(c))))[:draw(st.integers(1, c))]
        else:
            rows = draw(st.lists(st.integers(0, c - 1), min_size=1, max_size=c))
        upd = b.one("GatherND", [b.one("Tanh", [t]), b.const(
            np.asarray(rows[::-1], np.int64).reshape(-1, 1), "i")])
        attrs: dict[str, Any] = {} if reduction == "none" else {"reduction": reduction}
        y = b.one("ScatterND", [t, b.const(np.asarray(rows, np.int64).reshape(-1, 1), "i"),
                                upd], **attrs)
        return Image(b.one("Transpose", [y], perm=[1, 0, 2, 3]), c, x.h, x.w)
    if kind == "trilu":
        inputs = [x.name] + ([b.const(np.int64(draw(st.integers(-2, 2))), "k")]
                             if draw(st.booleans()) else [])
        return Image(b.one("Trilu", inputs, upper=int(draw(st.booleans()))), c, x.h, x.w)
    positive = b.one("Greater", [x.name, b.const(np.float32(0.25), "t")])
    where = b.one("Transpose", [b.one("NonZero", [positive])], perm=[1, 0])   # n, 4
    zeros = b.one("ConstantOfShape", [b.one("Shape", [x.name])],
                  value=helper.make_tensor("z", TensorProto.FLOAT, [1], [0.0]))
    picked = b.one("Relu", [b.one("GatherND", [x.name, where])])
    return Image(b.one("ScatterND", [zeros, where, picked]), c, x.h, x.w)


def math_ops(draw: Draw, b: Builder, x: Image) -> Image:
    """Elementwise math of real exports that the other blocks never draw: Round, Floor,
    Ceil of a scaled value; Mod (fmod on floats, the sign of the divisor on int32); Shrink;
    Tan, Sinh, Cosh, Asinh of a bounded value, Asin, Acos, Atanh inside (-1, 1); IsNaN
    and IsInf of a Log or Reciprocal as Where masks; GreaterOrEqual, LessOrEqual, And, Or,
    Xor gates; Size and ReduceLogSum; a Range over the width added as a position."""
    kind = draw(st.sampled_from(["round", "mod", "shrink", "trig", "nan_inf", "logic",
                                 "size_logsum", "range"]))
    c = x.c
    if kind == "round":
        op = draw(st.sampled_from(["Round", "Floor", "Ceil"]))
        gain = b.const(np.float32(draw(st.sampled_from([1.0, 4.0, 0.5]))), "gain")
        y = b.one(op, [b.one("Mul", [x.name, gain])])
        return Image(b.one("Div", [y, gain]), c, x.h, x.w)
    if kind == "mod":
        if draw(st.booleans()):
            d = b.const(np.float32(draw(st.sampled_from([0.5, -0.75, 1.0]))), "d")
            return Image(b.one("Mod", [x.name, d], fmod=1), c, x.h, x.w)
        q = b.one("Cast", [b.one("Mul", [x.name, b.const(np.float32(20.0), "g")])],
                  to=TensorProto.INT32)
        d = b.const(np.int32(draw(st.sampled_from([3, -4, 7]))), "d")
        return Image(b.one("Cast", [b.one("Mod", [q, d])], to=TensorProto.FLOAT), c, x.h,
                     x.w)
    if kind == "shrink":
        return Image(b.one("Shrink", [x.name], lambd=draw(st.sampled_from([0.25, 0.5])),
                           bias=draw(st.sampled_from([0.0, 0.1]))), c, x.h, x.w)
    if kind == "trig":
        op = draw(st.sampled_from(["Tan", "Sinh", "Cosh", "Asinh", "Asin", "Acos", "Atanh"]))
        bounded = b.one("Mul", [b.one("Tanh", [x.name]), b.const(np.float32(0.9), "k")])
        return Image(b.one(op, [bounded]), c, x.h, x.w)
    if kind == "nan_inf":
        if draw(st.booleans()):
            bad = b.one("IsNaN", [b.one("Log", [x.name])])                 # x < 0
        else:
            attrs = {k: int(draw(st.booleans())) for k in ("detect_positive",
                                                           "detect_negative")}
            bad = b.one("IsInf", [b.one("Reciprocal", [b.one("Floor", [x.name])])], **attrs)
        zero = b.const(np.float32(0.0), "zero")
        return Image(b.one("Where", [bad, zero, x.name]), c, x.h, x.w)
    if kind == "logic":
        lo = b.one("GreaterOrEqual", [x.name, b.const(np.float32(-0.5), "lo")])
        hi = b.one("LessOrEqual", [x.name, b.const(np.float32(0.5), "hi")])
        both = b.one(draw(st.sampled_from(["And", "Or", "Xor"])), [lo, hi])
        return Image(b.one("Mul", [x.name, b.one("Cast", [both], to=TensorProto.FLOAT)]),
                     c, x.h, x.w)
    if kind == "size_logsum":
        size = b.one("Cast", [b.one("Size", [x.name])], to=TensorProto.FLOAT)
        total = _reduce(b, "ReduceLogSum", b.one("Exp", [b.one("Tanh", [x.name])]), [1])
        return Image(b.one("Add", [b.one("Div", [x.name, size]), total]), c, x.h, x.w)
    width = b.one("Gather", [b.one("Shape", [x.name]), b.const(np.int64(3), "i")], axis=0)
    pos = b.one("Range", [b.const(np.int64(0), "i"), width, b.const(np.int64(1), "i")])
    pos = b.one("Mul", [b.one("Cast", [pos], to=TensorProto.FLOAT),
                        b.const(np.float32(0.25), "k")])
    return Image(b.one("Add", [x.name, pos]), c, x.h, x.w)


def other_types(draw: Draw, b: Builder, x: Image) -> Image:
    """A stretch of the graph in float16 or float64, as mixed-precision exports leave it
    (Cast in, the other type's constants, Cast back): Mul and Add by constants, Sigmoid,
    Relu, Softmax over the channels, a ReduceMean gate, LayerNormalization (opset 17),
    CastLike to come back at times."""
    to = draw(st.sampled_from([TensorProto.FLOAT16, TensorProto.DOUBLE]))
    dtype = helper.tensor_dtype_to_np_dtype(to)
    c = x.c
    y = b.one("Cast", [x.name], to=to)
    ops = ["Mul", "Add", "Sigmoid", "Softmax", "ReduceMean", "LayerNormalization"]
    # (a float16 Relu from opset 18 on ONNX Runtime expands into Max, which lowp does not
    # mirror and then leaves the whole model as written, docs/operators.md (O53))
    ops += ["Relu"] if to != TensorProto.FLOAT16 or b.opset < 18 else []
    for op in draw(st.lists(st.sampled_from(ops), min_size=1, max_size=3)):
        if op in ("Mul", "Add"):
            k = b.rng.uniform(0.5, 1.5, (c, 1, 1)).astype(dtype)
            y = b.one(op, [y, b.const(k, "k")])
        elif op == "Softmax":
            y = b.one(op, [y], axis=1)
        elif op == "ReduceMean":
            y = b.one("Mul", [y, _reduce(b, op, y, [2, 3])])
        elif op == "LayerNormalization":
            if b.opset < 17:
                continue
            gamma = b.const(b.rng.uniform(0.5, 1.5, x.w).astype(dtype), "ln")
            y = b.one(op, [y, gamma], axis=-1, epsilon=1e-3)
        else:
            y = b.one(op, [y])
    if b.opset >= 15 and draw(st.booleans()):
        return Image(b.one("CastLike", [y, b.const(np.float32(0.0), "like")]), c, x.h, x.w)
    return Image(b.one("Cast", [y], to=TensorProto.FLOAT), c, x.h, x.w)


def loops(draw: Draw, b: Builder, x: Image) -> Image:
    """Control flow beyond If: a Loop of a constant trip count (1 to 3) whose body updates
    the image (a loop-carried value; the body reads an outer constant and the iteration
    number) and stacks a scan output, of which the last is added to the final value; or a
    Scan (_scan)."""
    if draw(st.booleans()):
        return _scan(draw, b, x)
    trips = draw(st.integers(1, 3))
    k = b.const(np.float32(draw(st.sampled_from([0.5, 0.9]))), "k")
    i, cond_in, v = b.fresh("i"), b.fresh("cond"), b.fresh("v")
    v_out, cond_out, scan_out = b.fresh("v_out"), b.fresh("cond_out"), b.fresh("scan")
    it = b.fresh("it")
    body = helper.make_graph(
        [helper.make_node("Identity", [cond_in], [cond_out], name=b.fresh("Identity")),
         helper.make_node("Cast", [i], [it], to=TensorProto.FLOAT, name=b.fresh("Cast")),
         helper.make_node("Mul", [v, k], [v + "_h"], name=b.fresh("Mul")),
         helper.make_node("Tanh", [v], [v + "_t"], name=b.fresh("Tanh")),
         helper.make_node("Add", [v + "_h", v + "_t"], [v + "_s"], name=b.fresh("Add")),
         helper.make_node("Add", [v + "_s", it], [v_out], name=b.fresh("Add")),
         helper.make_node("Identity", [v_out], [scan_out], name=b.fresh("Identity"))],
        b.fresh("loop_body"),
        [helper.make_tensor_value_info(i, TensorProto.INT64, []),
         helper.make_tensor_value_info(cond_in, TensorProto.BOOL, []),
         helper.make_tensor_value_info(v, TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info(cond_out, TensorProto.BOOL, []),
         helper.make_tensor_value_info(v_out, TensorProto.FLOAT, None),
         helper.make_tensor_value_info(scan_out, TensorProto.FLOAT, None)])
    final, stacked = b.node("Loop", [b.const(np.int64(trips), "trips"), "", x.name], 2,
                            body=body)
    last = b.one("Gather", [stacked, b.const(np.int64(-1), "i")], axis=0)
    return Image(b.one("Add", [final, last]), x.c, x.h, x.w)


def _scan(draw: Draw, b: Builder, x: Image) -> Image:
    """A Scan along the height (axis 2 or -2, either direction) carrying a running state
    [N, C, W] from the mean over the height (a recurrence written as Scan); its outputs
    stacked back at axis 2 (or -2), reversed at times."""
    state0 = _reduce(b, "ReduceMean", x.name, [2], keepdims=0)              # N, C, W
    s, row, s_out, y = b.fresh("s"), b.fresh("row"), b.fresh("s_out"), b.fresh("y")
    half, sh, sa = b.fresh("half"), b.fresh("sh"), b.fresh("sa")
    # (the body's shapes declared as exporters write them: ONNX Runtime refuses a Scan whose
    # state's shape it cannot infer, e.g. after a Loop, whose body leaves it unknown)
    row_shape = [b.batch, x.c, x.w]
    body = helper.make_graph(
        [helper.make_node("Mul", [s, half], [sh], name=b.fresh("Mul")),
         helper.make_node("Add", [sh, row], [sa], name=b.fresh("Add")),
         helper.make_node("Tanh", [sa], [s_out], name=b.fresh("Tanh")),
         helper.make_node("Sub", [row, s_out], [y], name=b.fresh("Sub"))],
        b.fresh("scan_body"),
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, row_shape) for n in (s, row)],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, row_shape) for n in (s_out, y)],
        [numpy_helper.from_array(np.float32(draw(st.sampled_from([0.5, 0.9]))), half)])
    attrs: dict[str, Any] = {"num_scan_inputs": 1,
                             "scan_input_axes": [draw(st.sampled_from([2, -2]))],
                             "scan_output_axes": [draw(st.sampled_from([2, -2]))]}
    if draw(st.booleans()):
        attrs["scan_input_directions"] = [1]
    if draw(st.booleans()):
        attrs["scan_output_directions"] = [1]
    final, ys = b.node("Scan", [state0, x.name], 2, **attrs, body=body)
    return Image(b.one("Add", [ys, _unsqueeze(b, final, 2)]), x.c, x.h, x.w)

def _to_volume(draw: Draw, b: Builder, x: Image) -> tuple[str, int]:
    """The image as a volume [N, C, D, H, W]: depth 1 (Unsqueeze), or depth 2 (the image
    and an activation of it, stacked)."""
    v = _unsqueeze(b, x.name, 2)
    if not draw(st.booleans()):
        return v, 1
    other = _unsqueeze(b, ACTIVATIONS[draw(st.integers(0, 3))](b, x.name), 2)
    return b.one("Concat", [v, other], axis=2), 2


def _from_volume(draw: Draw, b: Builder, v: str, c: int, d: int, h: int, w: int) -> Image:
    """A volume [N, c, d, h, w] back to an image: the depth merged into the channels
    (Reshape), or reduced (ReduceMean | ReduceMax, keepdims=0)."""
    if draw(st.booleans()):
        return Image(b.one("Reshape", [v, b.ints([0, c * d, h, w])]), c * d, h, w)
    op = draw(st.sampled_from(["ReduceMean", "ReduceMax"]))
    return Image(_reduce(b, op, v, [2], keepdims=0), c, h, w)


def volumes(draw: Draw, b: Builder, x: Image) -> Image:
    """Video and medical-imaging layers on 5-D volumes [N, C, D, H, W]: Conv (3-D kernels
    [1|2, k, k], strides, pads, grouped or depthwise, BatchNormalization), MaxPool and
    AveragePool over 3-D windows (padded, count_include_pad), ConvTranspose (2x up in H and
    W), InstanceNormalization and a nearest Resize of the volume; back to an image by
    merging the depth into the channels or reducing it."""
    if max(x.h, x.w) > 8:
        return x
    v, d = _to_volume(draw, b, x)
    kind = draw(st.sampled_from(["conv", "pool", "deconv", "norm_resize"]))
    c, h, w = x.c, x.h, x.w
    if kind == "conv":
        kd = draw(st.integers(1, d))
        k = draw(st.sampled_from([1, 3])) if min(h, w) >= 3 else 1
        stride, pad = draw(st.sampled_from([1, 2])), draw(st.integers(0, k // 2))
        group, c_out = conv_groups(draw, draw(st.sampled_from(["plain", "depthwise",
                                                                 "grouped"])), c)
        inputs = [v, b.const(b.weight(c_out, c // group, kd, k, k))]
        inputs += [b.const(b.weight(c_out) * 0.1, "b")] if draw(st.booleans()) else []
        v = b.one("Conv", inputs, kernel_shape=[kd, k, k], strides=[1, stride, stride],
                  pads=[0, pad, pad, 0, pad, pad], group=group)
        if draw(st.booleans()):
            v = batch_norm(b, v, c_out)
        v = ACTIVATIONS[draw(st.integers(0, 3))](b, v)
        c, d = c_out, d - kd + 1
        h, w = ((n + 2 * pad - k) // stride + 1 for n in (h, w))
    elif kind == "pool":
        if min(h, w) < 2:
            return x
        kd, pad = draw(st.integers(1, d)), draw(st.integers(0, 1))
        op = draw(st.sampled_from(["MaxPool", "AveragePool"]))
        attrs: dict[str, Any] = {"kernel_shape": [kd, 2, 2], "strides": [1, 2, 2],
                                 "pads": [0, pad, pad, 0, pad, pad]}
        if op == "AveragePool":
            attrs["count_include_pad"] = int(draw(st.booleans()))
        v = b.one(op, [v], **attrs)
        d = d - kd + 1
        h, w = ((n + 2 * pad - 2) // 2 + 1 for n in (h, w))
    elif kind == "deconv":
        c_out = draw(st.integers(2, 6))
        inputs = [v, b.const(b.weight(c, c_out, 1, 2, 2))]
        inputs += [b.const(b.weight(c_out) * 0.1, "b")] if draw(st.booleans()) else []
        v = b.one("ConvTranspose", inputs, kernel_shape=[1, 2, 2], strides=[1, 2, 2])
        c, h, w = c_out, 2 * h, 2 * w
    else:
        scale = b.const(b.rng.uniform(0.5, 1.5, c).astype(np.float32), "g")
        shift = b.const(b.rng.normal(0, 0.1, c).astype(np.float32), "b")
        v = b.one("InstanceNormalization", [v, scale, shift], epsilon=1e-3)
        v = b.one("Resize", [v, "", b.floats([1.0, 1.0, 1.0, 2.0, 2.0])], mode="nearest")
        h, w = 2 * h, 2 * w
    return _from_volume(draw, b, v, c, d, h, w)


def strided_slices(draw: Draw, b: Builder, x: Image) -> Image:
    """Slicing and splitting of real exports beyond a crop: Slice with a negative step (a
    flip, torch.flip as tf2onnx writes it) or a step of 2 (subsampling), its ends past the
    axis (INT64_MAX, INT64_MIN) and negative axes; Split along the height into uneven parts
    concatenated back in another order (a roll); Gather of one row (a scalar index: the
    axis dropped) put back by Unsqueeze; GatherElements of the rows at constant indices."""
    kind = draw(st.sampled_from(["flip", "subsample", "roll", "row", "gather_elements"]))
    c, h, w = x.c, x.h, x.w
    big, small = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    if kind == "flip":
        axis = draw(st.sampled_from([2, 3, -1, -2]))
        ends = draw(st.sampled_from([small, -(x.h if axis in (2, -2) else x.w) - 5]))
        y = b.one("Slice", [x.name, b.ints([-1]), b.ints([ends]), b.ints([axis]),
                            b.ints([-1])])
        return Image(y, c, h, w)
    if kind == "subsample":
        # (from 1 over an axis of one element nothing is left, and ONNX Runtime refuses a
        # pool of the empty image after it, so that graph never compares)
        start = draw(st.integers(0, 1 if min(h, w) >= 2 else 0))
        y = b.one("Slice", [x.name, b.ints([start, start]), b.ints([big, big]),
                            b.ints([-2, -1]), b.ints([2, 2])])
        return Image(y, c, len(range(start, h, 2)), len(range(start, w, 2)))
    if kind == "roll":
        if h < 2:
            return x
        first = draw(st.integers(1, h - 1))
        top, bottom = b.node("Split", [x.name, b.ints([first, h - first])], 2, axis=2)
        return Image(b.one("Concat", [bottom, top], axis=-2), c, h, w)
    if kind == "row":
        if h < 1:                        # (a subsample of one row leaves none to gather)
            return x
        at = draw(st.integers(-h, h - 1))
        row = b.one("Gather", [x.name, b.const(np.int64(at), "i")], axis=2)   # N, C, W
        return Image(_unsqueeze(b, row, 2), c, 1, w)
    if not isinstance(b.batch, int):     # (the indices' batch axis: the output's)
        return x
    rows = b.rng.integers(-h, h, (1, 1, h, w))
    idx = np.broadcast_to(rows, (b.batch, c, h, w))
    y = b.one("GatherElements", [x.name, b.const(idx.astype(np.int64).copy(), "i")], axis=2)
    return Image(y, c, h, w)


def linear_forms(draw: Draw, b: Builder, x: Image) -> Image:
    """Linear layers in the forms exporters write besides x @ W + b: a 1x1 projection as
    W @ x with the constant on the left ([C', C] @ [N, C, H*W]); a MatMul with a batched
    constant [N|1, C, C'] (broadcast); Gemm with transA (on the flattened image
    transposed), alpha and beta, C of shape [n], [1, n] or absent; an LpPool or
    GlobalLpPool (p 1|2) and Acosh of 2 + |x| on the way."""
    kind = draw(st.sampled_from(["left", "batched", "gemm", "lp_pool", "acosh"]))
    c, h, w = x.c, x.h, x.w
    if kind == "left":
        c_out = draw(st.integers(2, 8))
        flat = b.one("Reshape", [x.name, b.ints([0, c, h * w])])
        y = b.one("MatMul", [b.const(b.weight(c_out, c)), flat])
        if draw(st.booleans()):
            y = b.one("Add", [y, b.const(b.weight(c_out, 1) * 0.1, "b")])
        return Image(b.one("Reshape", [y, b.ints([0, c_out, h, w])]), c_out, h, w)
    if kind == "batched":
        c_out = draw(st.integers(2, 8))
        tokens = b.one("Transpose", [b.one("Reshape", [x.name, b.ints([0, c, h * w])])],
                       perm=[0, 2, 1])                                   # N, HW, C
        wt = b.weight(c_out, c).T.copy()[None]
        y = b.one("MatMul", [tokens, b.const(wt)])                       # N, HW, C'
        back = b.one("Transpose", [y], perm=[0, 2, 1])
        return Image(b.one("Reshape", [back, b.ints([0, c_out, h, w])]), c_out, h, w)
    if kind == "gemm":
        n_out = draw(st.integers(2, 8))
        flat = b.one("Flatten", [x.name], axis=1)                        # N, CHW
        trans_a = int(draw(st.booleans()))
        a = b.one("Transpose", [flat], perm=[1, 0]) if trans_a else flat
        inputs = [a, b.const(b.weight(n_out, c * h * w).T.copy())]
        bias = draw(st.sampled_from(["n", "1n", "none"]))
        if bias != "none":
            inputs.append(b.const(b.weight(n_out).reshape(-1 if bias == "n" else (1, -1))
                                  * 0.1, "b"))
        y = b.one("Gemm", inputs, transA=trans_a, alpha=draw(st.sampled_from([1.0, 0.5])),
                  beta=draw(st.sampled_from([1.0, 2.0])))
        return Image(b.one("Reshape", [y, b.ints([0, n_out, 1, 1])]), n_out, 1, 1)
    if kind == "lp_pool":
        p = draw(st.sampled_from([1, 2]))
        if draw(st.booleans()) or min(h, w) < 2:
            return Image(b.one("GlobalLpPool", [x.name], p=p), c, 1, 1)
        y = b.one("LpPool", [x.name], kernel_shape=[2, 2], strides=[2, 2], p=p)
        return Image(y, c, h // 2, w // 2)
    # (2 + |x|: quantized, 1 + |x| rounds below 1 at times, where Acosh is NaN)
    away = b.one("Add", [b.one("Abs", [x.name]), b.const(np.float32(2.0), "two")])
    return Image(b.one("Acosh", [away]), c, h, w)


def broadcasts(draw: Draw, b: Builder, x: Image) -> Image:
    """Broadcasting of activations (not constants) as real exports write it: a pooled
    [N, C, 1, 1] Expanded to the input's Shape and added; coordinate attention (the mean
    over the width [N, C, H, 1] plus the mean over the height [N, C, 1, W], Sigmoid, Mul);
    a class token [1, 1, C] Expanded to the batch and Concatenated before the tokens, a
    position table added, the token Sliced off again (ViT); Where choosing between the
    input and its per-pixel mean over the channels [N, 1, H, W]; Tile of the channels
    before a 1x1 Conv."""
    kind = draw(st.sampled_from(["expand", "coordinate", "class_token", "where_mean",
                                 "tile_channels"]))
    c, h, w = x.c, x.h, x.w
    if kind == "expand":
        pooled = b.one(draw(st.sampled_from(["GlobalAveragePool", "GlobalMaxPool"])),
                       [x.name])
        big = b.one("Expand", [pooled, b.one("Shape", [x.name])])
        return Image(b.one("Add", [x.name, big]), c, h, w)
    if kind == "coordinate":
        along_w = _reduce(b, "ReduceMean", x.name, [3])
        along_h = _reduce(b, "ReduceMean", x.name, [2])
        gate = b.one("Sigmoid", [b.one("Add", [along_w, along_h])])
        return Image(b.one("Mul", [x.name, gate]), c, h, w)
    if kind == "class_token":
        if h * w > 64:
            return x
        tokens = b.one("Transpose", [b.one("Reshape", [x.name, b.ints([0, c, -1])])],
                       perm=[0, 2, 1])                                     # N, HW, C
        n = b.one("Gather", [b.one("Shape", [x.name]), b.const(np.int64(0), "i")], axis=0)
        n = _unsqueeze(b, n, 0)
        cls = b.const(b.rng.normal(0, 0.5, (1, 1, c)).astype(np.float32), "cls")
        cls = b.one("Expand", [cls, b.one("Concat", [n, b.ints([1, c])], axis=0)])
        seq = b.one("Concat", [cls, tokens], axis=1)                       # N, HW + 1, C
        pos = b.const(b.rng.normal(0, 0.5, (1, h * w + 1, c)).astype(np.float32), "pos")
        seq = _layer_norm(b, b.one("Add", [seq, pos]), c)
        rest = b.one("Slice", [seq, b.ints([1]), b.ints([h * w + 1]), b.ints([1])])
        back = b.one("Transpose", [rest], perm=[0, 2, 1])
        return Image(b.one("Reshape", [back, b.ints([0, c, h, w])]), c, h, w)
    if kind == "where_mean":
        mean = _reduce(b, "ReduceMean", x.name, [1])                       # N, 1, H, W
        above = b.one("Greater", [x.name, mean])
        inputs = [above, x.name, mean] if draw(st.booleans()) else [above, mean, x.name]
        return Image(b.one("Where", inputs), c, h, w)
    tiled = b.one("Tile", [x.name, b.ints([1, 2, 1, 1])])
    y = conv(b, Image(tiled, 2 * c, h, w), draw(st.integers(2, 8)))
    return Image(ACTIVATIONS[draw(st.integers(0, 3))](b, y.name), y.c, h, w)


Block = Callable[[Draw, Builder, Image], Image]

# Ordered simplest first: shrinking moves block indices towards 0.
BLOCKS: list[Block] = [conv_act, residual, squeeze_excite, two_heads, csp, pool, movement,
                       upsample, conv_transpose, attention, recurrent, branch, reduce_excite,
                       channel_ops, shape_ops, misc_ops, exporter_padding, more_elementwise,
                       more_layers, index_ops, math_ops, other_types, loops,
                       volumes, strided_slices, linear_forms, broadcasts]


def _with_newer_blocks() -> None:
    """BLOCKS followed by the newer operators' blocks (newer_blocks imports this module)."""
    from .newer_blocks import NEWER_BLOCKS

    BLOCKS.extend(NEWER_BLOCKS)


def active_blocks() -> list[Block]:
    """BLOCKS, or those named in LOWP_FUZZ_BLOCKS (chosen_blocks)."""
    return chosen_blocks(BLOCKS)


AnyBlock = TypeVar("AnyBlock", bound=Callable[..., Any])


def chosen_blocks(blocks: list[AnyBlock]) -> list[AnyBlock]:
    """The blocks of one generator named in LOWP_FUZZ_BLOCKS (comma-separated), to fuzz a
    few; all of them when it is unset or names only another generator's blocks (image
    blocks here, signal blocks in sequences.py). A name no generator has is an error."""
    wanted = {n.strip() for n in os.environ.get("LOWP_FUZZ_BLOCKS", "").split(",")
              if n.strip()}
    if not wanted:
        return blocks
    from .newer_blocks import NEWER_BLOCKS
    from .sequences import SEQUENCE_BLOCKS

    every = [blk.__name__ for blk in (*BLOCKS, *NEWER_BLOCKS, *SEQUENCE_BLOCKS)]
    unknown = wanted - set(every)
    if unknown:
        raise ValueError(f"LOWP_FUZZ_BLOCKS: no block {sorted(unknown)} (blocks: "
                         f"{', '.join(dict.fromkeys(every))})")
    return [blk for blk in blocks if blk.__name__ in wanted] or blocks


def gemm_head(draw: Draw, b: Builder, x: Image) -> str:
    """GlobalAveragePool | nothing -> Flatten -> Gemm (a classifier; its weight [out, in]
    with transB as torch writes it, or [in, out] as tf2onnx and keras2onnx do)."""
    src, size = x.name, x.c * x.h * x.w
    if draw(st.booleans()):
        src, size = b.one("GlobalAveragePool", [src]), x.c
    flat = b.one("Flatten", [src], axis=1)
    n_out = draw(st.integers(2, 10))
    w, trans_b = b.weight(n_out, size), int(draw(st.booleans()))
    return b.one("Gemm", [flat, b.const(w if trans_b else w.T.copy()),
                          b.const(b.weight(n_out) * 0.1, "b")], transB=trans_b)


@dataclass(frozen=True)
class FuzzGraph:
    """A drawn model and how to feed it."""

    model: onnx.ModelProto
    input_name: str
    shape: tuple[int, int, int]          # C, H, W
    batches: tuple[int, ...]             # batch sizes to feed (two when the axis is dynamic)
    seed: int
    blocks: tuple[str, ...]
    vocab: int = 0                       # > 0: the input is int64 token ids (token_graphs)

    def feeds(self, batch: int, seed: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        if self.vocab:
            # ids 1..vocab-1, each row padded with 0 after at least one real token
            ids = rng.integers(1, self.vocab, (batch, *self.shape))
            length = self.shape[-1]
            for row, keep in zip(ids, rng.integers(1, length + 1, batch), strict=True):
                row[keep:] = 0
            return {self.input_name: ids.astype(np.int64)}
        x = rng.standard_normal((batch, *self.shape)).astype(np.float32)
        return {self.input_name: x}


def _ir_version(opset: int) -> int:
    return helper.find_min_ir_version_for([helper.make_opsetid("", opset)])


def _model(graph: onnx.GraphProto, opset: int) -> onnx.ModelProto:
    """The drawn graph as a model of `opset`, shapes inferred."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="lowp-fuzz")
    model.ir_version = _ir_version(opset)
    return onnx.shape_inference.infer_shapes(model)


# ONNX Runtime 1.32 ends the process on an LSTM or GRU (std::terminate) and on an Einsum
# (SIGFPE) with an empty batch (evals/corpus/repro/README.md, "Not lowp bugs"); a RoiAlign
# of the first image (newer_blocks) has no image to read there
EMPTY_BATCH_ABORTS = frozenset({"LSTM", "GRU", "Einsum", "RoiAlign"})


def _batches(batch: int, dynamic: bool, empty: bool = False,
             nodes: list[onnx.NodeProto] | None = None) -> tuple[int, ...]:
    """The batch sizes fed: the drawn one, and a second one when the batch axis is free;
    with `empty` a third, 0, unless one of `nodes` would abort ONNX Runtime on it."""
    if not dynamic:
        return (batch,)
    empty = empty and not any(n.op_type in EMPTY_BATCH_ABORTS for n in nodes or [])
    return (batch, 1 + batch % 3) + ((0,) if empty else ())


# the opsets of newer_op_graphs: those of the newer operators (DFT 17, Col2Im 18, AffineGrid
# 20, RMSNormalization and RotaryEmbedding 23, Swish 24, CumProd 26)
NEWER_OPSETS = [17, 18, 20, 21, 23, 24, 26]


@st.composite
def fuzz_graphs(draw: Draw, max_blocks: int = 4, newer: bool = False) -> FuzzGraph:
    """A random float32 image model: a stem, blocks (a list, so that shrinking removes
    them), an optional Gemm head. With `newer`, at one of NEWER_OPSETS and with one of the
    newer operators' blocks (newer_blocks.NEWER_BLOCKS) among the blocks."""
    opset = draw(st.sampled_from(NEWER_OPSETS) if newer else st.integers(13, 21))
    dynamic = draw(st.booleans())
    batch = draw(st.integers(1, 3))
    c = draw(st.integers(2, 12))
    h, w = draw(st.integers(1, 16)), draw(st.integers(1, 16))
    seed = draw(st.integers(0, 2 ** 16))
    b = Builder(opset, "N" if dynamic else batch, np.random.default_rng(seed))
    x = Image("input", c, h, w)
    # a convolution stem first, as in every exported image model (a graph with nothing
    # quantizable hits tests/fuzz/test_regressions.py::test_single_relu_on_the_input_quantizes)
    x = conv_act(draw, b, x)
    names = ["conv_act"]
    blocks = active_blocks()
    drawn = [blocks[i] for i in draw(st.lists(st.integers(0, len(blocks) - 1), min_size=0,
                                              max_size=max_blocks))]
    if newer:
        from .newer_blocks import NEWER_BLOCKS

        required = chosen_blocks(NEWER_BLOCKS)
        drawn.insert(draw(st.integers(0, len(drawn))),
                     required[draw(st.integers(0, len(required) - 1))])
    for block in drawn:
        names.append(block.__name__)
        x = block(draw, b, x)
    outputs = [x.name]
    if draw(st.booleans()):
        names.append("gemm_head")
        head = gemm_head(draw, b, x)
        outputs = [head] + (outputs if draw(st.booleans()) else [])
    batch_dim: int | str = "N" if dynamic else batch
    graph = helper.make_graph(
        b.nodes, "fuzz",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch_dim, c, h, w])],
        # (the image's shape is declared: the checker wants a rank where a Reshape to a
        # computed shape leaves it unknown; the head's rank too: onnx 1.23's full check
        # stops on a GroupNormalization-21 in a graph with an output of no shape)
        [helper.make_tensor_value_info(o, TensorProto.FLOAT,
                                       [batch_dim, x.c, x.h, x.w] if o == x.name
                                       else [batch_dim, None])
         for o in outputs],
        b.inits)
    batches = _batches(batch, dynamic, draw(st.booleans()), b.nodes)
    return FuzzGraph(_model(graph, opset), "input", (c, h, w), batches, seed,
                     tuple(names))


def _heads(b: Builder, t: str, heads: int, d: int, order: list[int]) -> str:
    """[N, L, d] -> [N, heads, L, d / heads] (order [0, 2, 1, 3]) or its keys' transpose
    [N, heads, d / heads, L] (order [0, 2, 3, 1])."""
    split = b.one("Reshape", [t, b.ints([0, 0, heads, d // heads])])
    return b.one("Transpose", [split], perm=order)


def _self_attention(draw: Draw, b: Builder, x: str, mask: str, d: int) -> str:
    """Multi-head self-attention with an additive padding mask, as BERT-style exports write
    it (no fused Attention): Q, K, V projections, heads by Reshape + Transpose, scaled
    scores + mask, Softmax, heads merged back, output projection."""
    heads = draw(st.sampled_from([h for h in (1, 2, 4) if d % h == 0]))
    einsum = draw(st.booleans())
    q = _heads(b, _matmul_w(b, x, d, d), heads, d, [0, 2, 1, 3])
    kt = _heads(b, _matmul_w(b, x, d, d), heads, d, [0, 2, 1, 3] if einsum else [0, 2, 3, 1])
    v = _heads(b, _matmul_w(b, x, d, d), heads, d, [0, 2, 1, 3])
    scale = b.const(np.float32((d // heads) ** -0.5), "sc")
    qk = (b.one("Einsum", [q, kt], equation="bhld,bhmd->bhlm") if einsum
          else b.one("MatMul", [q, kt]))
    scores = (b.one("Div", [qk, b.const(np.float32((d // heads) ** 0.5), "sq")])
              if draw(st.booleans()) else b.one("Mul", [qk, scale]))
    if draw(st.booleans()):          # the mask Expanded to the scores' shape first
        mask = b.one("Expand", [mask, b.one("Shape", [scores])])
    probs = _softmax_last(draw, b, b.one("Add", [scores, mask]))
    att = (b.one("Einsum", [probs, v], equation="bhlm,bhmd->bhld") if einsum
           else b.one("MatMul", [probs, v]))
    merged = b.one("Reshape", [b.one("Transpose", [att], perm=[0, 2, 1, 3]),
                               b.ints([0, 0, d])])
    return _matmul_w(b, merged, d, d)


def _softmax_last(draw: Draw, b: Builder, scores: str) -> str:
    """Softmax over the keys of [N, heads, L, L] scores: axis -1, axis 3, or axis 2 of
    the scores transposed (and transposed back)."""
    axis = draw(st.sampled_from([-1, 3, 2]))
    if axis != 2:
        return b.one("Softmax", [scores], axis=axis)
    flipped = b.one("Softmax", [b.one("Transpose", [scores], perm=[0, 1, 3, 2])], axis=2)
    return b.one("Transpose", [flipped], perm=[0, 1, 3, 2])


def _layer_norm_axes(draw: Draw, b: Builder, x: str, d: int) -> str:
    """A LayerNorm of [N, L, d] tokens over d, written with an axis other than -1 at
    times (opset 17): axis 2, or axis -2 of the tokens reshaped [N, L, g, d / g] (its
    scale and bias [g, d / g])."""
    form = draw(st.sampled_from(["last", "axis2", "grouped"])) if b.opset >= 17 else "last"
    if form == "last":
        return _layer_norm(b, x, d)
    gamma = b.rng.uniform(0.5, 1.5, d).astype(np.float32)
    beta = b.rng.normal(0, 0.1, d).astype(np.float32)
    if form == "axis2":
        return b.one("LayerNormalization", [x, b.const(gamma, "ln"), b.const(beta, "ln")],
                     axis=2, epsilon=1e-5)
    g = next(g for g in (4, 2, 1) if d % g == 0)
    split = b.one("Reshape", [x, b.ints([0, 0, g, d // g])])
    y = b.one("LayerNormalization", [split, b.const(gamma.reshape(g, -1), "ln"),
                                     b.const(beta.reshape(g, -1), "ln")], axis=-2,
              epsilon=1e-5)
    return b.one("Reshape", [y, b.ints([0, 0, d])])


def _positions(draw: Draw, b: Builder, ids: str, is_pad: str, length: int, d: int) -> str:
    """Position embeddings of the tokens [N|1, L, d]: the table sliced to the input's
    length through Shape (a dynamic-length export), added whole, gathered at Range(0, L),
    or gathered at the positions counted by CumSum over the real tokens (RoBERTa:
    cumsum(mask) * mask + padding index)."""
    positions = b.rng.standard_normal((length + 3, d)).astype(np.float32) * 0.5
    kind = draw(st.sampled_from(["slice", "whole", "range", "cumsum"]))
    if kind == "whole":
        return b.const(positions[:length], "pos")
    table = b.const(positions, "pos")
    n_tokens = b.one("Gather", [b.one("Shape", [ids]), b.const(np.int64(1), "i")], axis=0)
    if kind == "slice":
        end = b.one("Unsqueeze", [n_tokens, b.ints([0])])
        return b.one("Slice", [table, b.ints([0]), end, b.ints([0])])
    if kind == "range":
        at = b.one("Range", [b.const(np.int64(0), "i"), n_tokens, b.const(np.int64(1), "i")])
        return b.one("Gather", [table, at], axis=0)
    real = b.one("Cast", [b.one("Not", [is_pad])], to=TensorProto.INT64)
    counted = b.one("Mul", [b.one("CumSum", [real, b.const(np.int64(1), "ax")]), real])
    return b.one("Gather", [table, b.one("Add", [counted, b.const(np.int64(1), "i")])],
                 axis=0)


def _gelu_tanh(b: Builder, x: str) -> str:
    """0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))), as GPT-style exports write it."""
    cube = b.one("Pow", [x, b.const(np.float32(3.0), "three")])
    inner = b.one("Add", [x, b.one("Mul", [cube, b.const(np.float32(0.044715), "k")])])
    t = b.one("Tanh", [b.one("Mul", [inner, b.const(np.float32(np.sqrt(2 / np.pi)), "s")])])
    half = b.one("Mul", [x, b.const(np.float32(0.5), "half")])
    return b.one("Mul", [half, b.one("Add", [t, b.const(np.float32(1.0), "one")])])


@st.composite
def token_graphs(draw: Draw, max_layers: int = 2) -> FuzzGraph:
    """A random text encoder on int64 token ids [N, L] (0 = padding): embedding Gather,
    position embeddings sliced to the input's length through Shape (a dynamic-length
    export) or added whole, LayerNorm, encoder layers (self-attention with the padding
    mask, Erf- or tanh-GELU feed-forward, post- or pre-norm residuals), then a mean over
    the tokens or the first token through Tanh, and a classifier."""
    opset = draw(st.integers(13, 21))
    dynamic = draw(st.booleans())
    batch = draw(st.integers(1, 3))
    length = draw(st.integers(1, 10))
    d = draw(st.sampled_from([4, 8, 12, 16]))
    vocab = draw(st.integers(3, 40))
    seed = draw(st.integers(0, 2 ** 16))
    b = Builder(opset, "N" if dynamic else batch, np.random.default_rng(seed))
    ids = "input_ids"
    table = b.const(b.rng.standard_normal((vocab, d)).astype(np.float32), "emb")
    # some exports Cast the ids to int32 before the lookup, some count them from the end
    # of the table (negative indices)
    lookup = draw(st.sampled_from(["int64", "int32", "negative"]))
    at = (b.one("Cast", [ids], to=TensorProto.INT32) if lookup == "int32"
          else b.one("Sub", [ids, b.const(np.int64(vocab), "i")]) if lookup == "negative"
          else ids)
    x = b.one("Gather", [table, at], axis=0)                        # N, L, d
    is_pad = b.one("Equal", [ids, b.const(np.int64(0), "i")])
    pos = _positions(draw, b, ids, is_pad, length, d)
    x = _layer_norm_axes(draw, b, b.one("Add", [x, pos]), d)
    if draw(st.booleans()):
        pad = b.one("Cast", [is_pad], to=TensorProto.FLOAT)
        additive = b.one("Mul", [pad, b.const(np.float32(-1e4), "neg")])
    else:                 # Where(Not(pad), 0, -1e4), as newer torch exports write it
        additive = b.one("Where", [b.one("Not", [is_pad]), b.const(np.float32(0.0), "zero"),
                                   b.const(np.float32(-1e4), "neg")])
    mask = b.one("Unsqueeze", [additive, b.ints([1, 2])])             # N, 1, 1, L
    names = []
    for _ in range(draw(st.integers(1, max_layers))):
        post_norm = draw(st.booleans())
        names.append("post_norm" if post_norm else "pre_norm")
        n = x if post_norm else _layer_norm(b, x, d)
        x = b.one("Add", [x, _self_attention(draw, b, n, mask, d)])
        if post_norm:
            x = _layer_norm(b, x, d)
        hidden = draw(st.sampled_from([d, 2 * d, 4 * d]))
        n = x if post_norm else _layer_norm(b, x, d)
        gelu = _gelu if draw(st.booleans()) else _gelu_tanh
        ffn = _matmul_w(b, gelu(b, _matmul_w(b, n, d, hidden)), hidden, d)
        x = b.one("Add", [x, ffn])
        if post_norm:
            x = _layer_norm(b, x, d)
    if draw(st.booleans()):
        names.append("mean_pool")
        pooled = _reduce(b, "ReduceMean", x, [1], keepdims=0)
    else:
        names.append("first_token")
        pooled = b.one("Tanh", [_matmul_w(b, b.one("Gather", [x, b.const(np.int64(0), "i")],
                                                     axis=1), d, d)])
    classes = draw(st.integers(2, 6))
    logits = _matmul_w(b, pooled, d, classes)
    outputs = [logits] + ([x] if draw(st.booleans()) else [])
    batch_dim: int | str = "N" if dynamic else batch
    length_dim: int | str = "L" if dynamic else length
    graph = helper.make_graph(
        b.nodes, "tokens",
        [helper.make_tensor_value_info(ids, TensorProto.INT64, [batch_dim, length_dim])],
        [helper.make_tensor_value_info(logits, TensorProto.FLOAT, [batch_dim, classes])]
        + [helper.make_tensor_value_info(o, TensorProto.FLOAT, [batch_dim, length_dim, d])
           for o in outputs[1:]],
        b.inits)
    batches = _batches(batch, dynamic, draw(st.booleans()), b.nodes)
    return FuzzGraph(_model(graph, opset), ids, (length,), batches, seed,
                     tuple(names), vocab=vocab)


# the newer operators' blocks join every image graph under `make fuzz`; derandomized (CI)
# test_newer_operators_equal_onnxruntime alone draws them, which keeps CI's other graphs
# (and its time) as they were
if not settings.default.derandomize:
    _with_newer_blocks()
