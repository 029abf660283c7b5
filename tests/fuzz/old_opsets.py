"""Random float32 image models written at opsets 7-12, as older exporters still write them:
attributes where later opsets take inputs (Clip min/max, Pad pads and value, Split sizes,
Reduce* and Squeeze/Unsqueeze axes, Slice starts/ends, Dropout ratio), Upsample (scales an
attribute at 7-8, an input at 9), Resize-10, BatchNormalization-7 (spatial) and -9,
Softmax over the coerced 2-D view (before 13), MaxPool with ceil_mode (10 on)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st
from onnx import TensorProto, helper

from .graphs import Builder, Draw, FuzzGraph, Image, _batches, _model, conv


def _act(draw: Draw, b: Builder, x: str) -> str:
    """An activation valid at every opset from 7: Relu, LeakyRelu, Sigmoid, Clip(0, 6)
    with attributes (opset < 11) or inputs."""
    kind = draw(st.sampled_from(["Relu", "LeakyRelu", "Sigmoid", "Clip", "none"]))
    if kind == "none":
        return x
    if kind == "LeakyRelu":
        return b.one(kind, [x], alpha=0.1)
    if kind == "Clip":
        return _clip(b, x, 0.0, 6.0)
    return b.one(kind, [x])


def _clip(b: Builder, x: str, lo: float | None, hi: float | None) -> str:
    if b.opset < 11:
        bounds = {k: v for k, v in (("min", lo), ("max", hi)) if v is not None}
        return b.one("Clip", [x], **bounds)
    return b.one("Clip", [x, "" if lo is None else b.const(np.float32(lo), "lo")]
                 + ([] if hi is None else [b.const(np.float32(hi), "hi")]))


def conv_act(draw: Draw, b: Builder, x: Image) -> Image:
    """A plain, depthwise or strided convolution (+ BatchNormalization) and an activation."""
    k = draw(st.sampled_from([1, 3])) if min(x.h, x.w) >= 3 else 1
    depthwise = draw(st.booleans())
    c_out = x.c if depthwise else draw(st.integers(2, 12))
    y = conv(b, x, c_out, k, draw(st.sampled_from([1, 2])), pad=k // 2,
             group=x.c if depthwise else 1)
    if draw(st.booleans()):
        y = Image(_batch_norm(draw, b, y), y.c, y.h, y.w)
    return Image(_act(draw, b, y.name), y.c, y.h, y.w)


def _batch_norm(draw: Draw, b: Builder, x: Image) -> str:
    """BatchNormalization-7 (spatial=1 written at times) or -9 (no spatial)."""
    stats = [b.rng.uniform(0.5, 1.5, x.c), b.rng.normal(0, 0.1, x.c),
             b.rng.normal(0, 0.1, x.c), b.rng.uniform(0.5, 1.5, x.c)]
    attrs: dict[str, Any] = {"epsilon": draw(st.sampled_from([1e-5, 1e-3]))}
    if b.opset < 9 and draw(st.booleans()):
        attrs["spatial"] = 1
    return b.one("BatchNormalization", [x.name] + [b.const(s.astype(np.float32), "bn")
                                                   for s in stats], **attrs)


def upsample(draw: Draw, b: Builder, x: Image) -> Image:
    """Upsample (opset 7-9: scales an attribute before 9), Resize-10 or Resize-11 by 2
    on H and/or W, nearest or linear."""
    if max(x.h, x.w) > 8:
        return x
    sh, sw = draw(st.sampled_from([(2, 2), (2, 1), (1, 2)]))
    scales = [1.0, 1.0, float(sh), float(sw)]
    mode = draw(st.sampled_from(["nearest", "linear"]))
    if b.opset < 9:
        y = b.one("Upsample", [x.name], scales=scales, mode=mode)
    elif b.opset < 11:
        y = b.one("Upsample" if b.opset == 9 else "Resize", [x.name, b.floats(scales)],
                  mode=mode)
    else:                # Resize-11: an roi (required, empty) before the scales
        y = b.one("Resize", [x.name, b.floats([]), b.floats(scales)], mode=mode,
                  coordinate_transformation_mode=draw(st.sampled_from(
                      ["asymmetric", "half_pixel", "align_corners"])))
    return Image(y, x.c, sh * x.h, sw * x.w)


def clip(draw: Draw, b: Builder, x: Image) -> Image:
    """Clip with bounds as attributes (before 11) or inputs: both, only min, only max."""
    lo, hi = draw(st.sampled_from([(0.0, 6.0), (-1.0, 1.0), (0.0, None), (None, 0.5)]))
    return Image(_clip(b, x.name, lo, hi), x.c, x.h, x.w)


def pad(draw: Draw, b: Builder, x: Image) -> Image:
    """Pad with pads (and a constant value) as attributes (before 11) or inputs:
    constant, reflect, edge."""
    mode = draw(st.sampled_from(["constant", "reflect", "edge"]))
    most = 2 if mode != "reflect" else min(2, x.h - 1, x.w - 1)
    if most < 1:
        return x
    t, l_, bo, r = (draw(st.integers(0, most)) for _ in range(4))
    pads = [0, 0, t, l_, 0, 0, bo, r]
    value = draw(st.sampled_from([0.0, -1.0, 0.5]))
    if b.opset < 11:
        attrs: dict[str, Any] = {"pads": pads, "mode": mode}
        if mode == "constant" and value:
            attrs["value"] = value
        y = b.one("Pad", [x.name], **attrs)
    else:
        inputs = [x.name, b.ints(pads)]
        if mode == "constant" and value:
            inputs.append(b.const(np.float32(value), "pv"))
        y = b.one("Pad", inputs, mode=mode)
    return Image(y, x.c, x.h + t + bo, x.w + l_ + r)


def split(draw: Draw, b: Builder, x: Image) -> Image:
    """Split on the channels (sizes an attribute, or equal parts without one), a
    convolution on one part, Concat back in either order."""
    if x.c < 2:
        return x
    if x.c % 2 == 0 and draw(st.booleans()):
        parts = b.node("Split", [x.name], 2, axis=1)
        sizes = [x.c // 2] * 2
    else:
        first = draw(st.integers(1, x.c - 1))
        sizes = [first, x.c - first]
        parts = b.node("Split", [x.name], 2, axis=1, split=sizes)
    k = 3 if min(x.h, x.w) >= 3 else 1
    right = conv(b, Image(parts[1], sizes[1], x.h, x.w), draw(st.integers(2, 6)), k,
                 pad=k // 2)
    right = Image(_act(draw, b, right.name), right.c, x.h, x.w)
    order = [parts[0], right.name] if draw(st.booleans()) else [right.name, parts[0]]
    return Image(b.one("Concat", order, axis=1), sizes[0] + right.c, x.h, x.w)


def reduce_gate(draw: Draw, b: Builder, x: Image) -> Image:
    """ReduceMean | ReduceMax | ReduceSum | ReduceMin with axes as an attribute over H, W
    (keepdims, or not and put back by Unsqueeze with axes as an attribute) or over the
    channels, as a Sigmoid gate."""
    op = draw(st.sampled_from(["ReduceMean", "ReduceMax", "ReduceSum", "ReduceMin"]))
    # (negative axes from opset 11)
    axes = draw(st.sampled_from([[2, 3], [1]] + ([[-1, -2]] if b.opset >= 11 else [])))
    if draw(st.booleans()):
        g = b.one(op, [x.name], axes=axes, keepdims=1)
    else:
        flat = b.one(op, [x.name], axes=axes, keepdims=0)
        back = sorted(a % 4 for a in axes)
        g = b.one("Unsqueeze", [flat], axes=back)
    return Image(b.one("Mul", [x.name, b.one("Sigmoid", [g])]), x.c, x.h, x.w)


def squeeze(draw: Draw, b: Builder, x: Image) -> Image:
    """Unsqueeze then Squeeze with axes as attributes (Squeeze of every size-1 axis
    without axes when only the new one is), an activation between."""
    axis = draw(st.sampled_from([0, 2, 4]))
    y = _act(draw, b, b.one("Unsqueeze", [x.name], axes=[axis]))
    only_new_one = isinstance(b.batch, int) and min(b.batch, x.c, x.h, x.w) > 1
    if only_new_one and draw(st.booleans()):
        return Image(b.one("Squeeze", [y]), x.c, x.h, x.w)
    return Image(b.one("Squeeze", [y], axes=[axis]), x.c, x.h, x.w)


def dropout(draw: Draw, b: Builder, x: Image) -> Image:
    """Dropout (an identity at inference): ratio an attribute before 12, an input (or
    none) from 12; its mask output written at times."""
    attrs: dict[str, Any] = {}
    inputs = [x.name]
    if b.opset < 12:
        attrs["ratio"] = draw(st.sampled_from([0.1, 0.5]))
    elif draw(st.booleans()):
        inputs.append(b.const(np.float32(0.5), "ratio"))
    n_out = 2 if b.opset >= 10 and draw(st.booleans()) else 1
    y = b.node("Dropout", inputs, n_out, **attrs)[0]
    return Image(_act(draw, b, y), x.c, x.h, x.w)


def softmax(draw: Draw, b: Builder, x: Image) -> Image:
    """Softmax or LogSoftmax over the coerced 2-D view from an axis (1, 2, 3 or -1)."""
    op = draw(st.sampled_from(["Softmax", "LogSoftmax"]))
    axes = [1, 2, 3] + ([-1] if b.opset >= 11 else [])
    return Image(b.one(op, [x.name], axis=draw(st.sampled_from(axes))),
                 x.c, x.h, x.w)


def slice_(draw: Draw, b: Builder, x: Image) -> Image:
    """Slice of H (and W) with starts, ends, axes as attributes (before 10) or inputs."""
    if x.h < 2:
        return x
    start = draw(st.integers(0, x.h - 2))
    end = draw(st.sampled_from([x.h, 1000, -1 if x.h - start > 1 else x.h]))
    size = min(end, x.h) - start if end >= 0 else x.h - 1 - start
    if b.opset < 10:
        y = b.one("Slice", [x.name], starts=[start], ends=[end], axes=[2])
    else:
        y = b.one("Slice", [x.name, b.ints([start]), b.ints([end]), b.ints([2])])
    return Image(y, x.c, size, x.w)


def pool(draw: Draw, b: Builder, x: Image) -> Image:
    """MaxPool or AveragePool 2x2|3x3, stride 2, ceil_mode from opset 10 (AveragePool
    from 10, MaxPool from 10), count_include_pad at times."""
    if min(x.h, x.w) < 3:
        return x
    k = draw(st.sampled_from([2, 3]))
    op = draw(st.sampled_from(["MaxPool", "AveragePool"]))
    ceil = int(b.opset >= 10 and draw(st.booleans()))
    attrs: dict[str, Any] = {"kernel_shape": [k, k], "strides": [2, 2]}
    if ceil:
        attrs["ceil_mode"] = 1
    if op == "AveragePool" and draw(st.booleans()):
        attrs["count_include_pad"] = 1
    # (no padding: a last window of ceil mode always starts inside the input)
    h, w = ((-(-(n - k) // 2) if ceil else (n - k) // 2) + 1 for n in (x.h, x.w))
    return Image(b.one(op, [x.name], **attrs), x.c, h, w)


OldBlock = Callable[[Draw, Builder, Image], Image]
OLD_BLOCKS: list[OldBlock] = [conv_act, clip, pad, split, reduce_gate, squeeze, dropout,
                              upsample, softmax, slice_, pool]


@st.composite
def old_opset_graphs(draw: Draw, max_blocks: int = 4) -> FuzzGraph:
    """A random float32 image model of opset 7-12: a convolution stem, blocks of the
    operator forms of that opset, a Flatten -> Gemm head at times."""
    opset = draw(st.integers(7, 12))
    dynamic = draw(st.booleans())
    batch = draw(st.integers(1, 3))
    c, h, w = draw(st.integers(2, 8)), draw(st.integers(1, 12)), draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2 ** 16))
    b = Builder(opset, "N" if dynamic else batch, np.random.default_rng(seed))
    x = conv_act(draw, b, Image("input", c, h, w))
    names = ["conv_act"]
    for index in draw(st.lists(st.integers(0, len(OLD_BLOCKS) - 1), max_size=max_blocks)):
        names.append(OLD_BLOCKS[index].__name__)
        x = OLD_BLOCKS[index](draw, b, x)
    batch_dim: int | str = "N" if dynamic else batch
    outputs = [(x.name, [batch_dim, x.c, x.h, x.w])]
    if draw(st.booleans()):
        names.append("gemm_head")
        flat = b.one("Flatten", [x.name], axis=1)
        n_out = draw(st.integers(2, 8))
        wt, trans_b = b.weight(n_out, x.c * x.h * x.w), int(draw(st.booleans()))
        head = b.one("Gemm", [flat, b.const(wt if trans_b else wt.T.copy()),
                              b.const(b.weight(n_out) * 0.1, "b")], transB=trans_b)
        outputs.insert(0, (head, [batch_dim, n_out]))
    # IR version 3 (opsets 7 and 8) lists every initializer among the graph's inputs too,
    # as the exporters of the time wrote them
    inits = [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
             for t in b.inits] if opset < 9 else []
    graph = helper.make_graph(
        b.nodes, "old_opset",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch_dim, c, h, w]),
         *inits],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, s) for o, s in outputs],
        b.inits)
    batches = _batches(batch, dynamic, draw(st.booleans()), b.nodes)
    return FuzzGraph(_model(graph, opset), "input", (c, h, w), batches, seed, tuple(names))
