"""Random float32 ONNX models of 1-D signals [N, C, T], as audio and time-series exports
write them (voice-activity detectors, keyword spotters, wake-word and speech front ends,
temporal convolution networks): strided and dilated 1-D convolutions, a short-time Fourier
front end as a constant-basis convolution, magnitudes and log compression, gated linear
units, 1-D pooling, causal padding, recurrent layers over time (bidirectional too),
per-frame LayerNorm + MatMul, 1-D transposed convolutions, and 1-D convolutions written as
2-D ones on an unsqueezed axis (tf2onnx)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st
from onnx import TensorProto, helper

from .graphs import (
    ACTIVATIONS,
    Builder,
    Draw,
    FuzzGraph,
    _batches,
    _layer_norm,
    _matmul_w,
    _model,
    _reduce,
    batch_norm,
    chosen_blocks,
    conv_groups,
)


@dataclass
class Signal:
    """The running [N, C, T] activation: its name, channels and length."""

    name: str
    c: int
    t: int


def _act(draw: Draw, b: Builder, x: str, first: int = 0) -> str:
    return ACTIVATIONS[draw(st.integers(first, len(ACTIVATIONS) - 1))](b, x)


def conv1d(b: Builder, x: Signal, c_out: int, k: int = 1, stride: int = 1,
           pads: tuple[int, int] = (0, 0), dilation: int = 1, group: int = 1,
           bn: bool = False, bias: bool = True) -> Signal:
    """A 1-D Conv (+ BatchNormalization when `bn`) with the output signal's shape."""
    w = b.const(b.weight(c_out, x.c // group, k))
    inputs = [x.name, w] + ([b.const(b.weight(c_out) * 0.1, "b")] if bias else [])
    y = b.one("Conv", inputs, kernel_shape=[k], strides=[stride], pads=list(pads),
              dilations=[dilation], group=group)
    if bn:
        y = batch_norm(b, y, c_out)
    ext = dilation * (k - 1) + 1
    return Signal(y, c_out, (x.t + pads[0] + pads[1] - ext) // stride + 1)


def conv_act(draw: Draw, b: Builder, x: Signal) -> Signal:
    """A 1-D convolution of any shape (plain, grouped, depthwise; kernel 1-7, stride 1-3,
    dilation 1-4, any padding that keeps a frame) and an activation."""
    k = draw(st.sampled_from([k for k in (1, 3, 5, 7) if k <= x.t]))
    dilation = draw(st.sampled_from([d for d in (1, 2, 4) if d * (k - 1) < x.t])) \
        if k > 1 else 1
    stride = draw(st.integers(1, 3))
    half = dilation * (k - 1) // 2
    pads = (draw(st.integers(0, half)), draw(st.integers(0, half)))
    kind = draw(st.sampled_from(["plain", "depthwise", "grouped"]))
    group, c_out = conv_groups(draw, kind, x.c)
    y = conv1d(b, x, c_out, k, stride, pads, dilation, group, bn=draw(st.booleans()))
    return Signal(_act(draw, b, y.name), y.c, y.t)


def stft_front(draw: Draw, b: Builder, x: Signal) -> Signal:
    """A short-time Fourier transform as silero-style exports write it: the first channel
    reflect-padded, a Conv with a constant cos/sin basis (stride = hop), the real and
    imaginary halves split, the magnitude sqrt(re^2 + im^2) (Pow or Mul), then log(m + 1)
    or nothing."""
    frame = draw(st.sampled_from([4, 8]))
    if x.t < frame:
        return x
    bins, hop = frame // 2 + 1, draw(st.sampled_from([frame // 2, frame]))
    mono = b.one("Slice", [x.name, b.ints([0]), b.ints([1]), b.ints([1])])
    pad = frame // 2 if x.t > frame // 2 else 0
    if pad:
        mono = b.one("Pad", [mono, b.ints([0, 0, pad, 0, 0, pad])], mode="reflect")
    n = np.arange(frame)
    f = np.arange(bins)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / frame)
    basis = np.concatenate([np.cos(2 * np.pi * f * n / frame) * window,
                            -np.sin(2 * np.pi * f * n / frame) * window])
    spec = b.one("Conv", [mono, b.const(basis[:, None, :].astype(np.float32), "stft")],
                 kernel_shape=[frame], strides=[hop])
    length = (x.t + 2 * pad - frame) // hop + 1
    re, im = b.node("Split", [spec, b.ints([bins, bins])], 2, axis=1)
    if draw(st.booleans()):
        two = b.const(np.float32(2.0), "two")
        power = b.one("Add", [b.one("Pow", [re, two]), b.one("Pow", [im, two])])
    else:
        power = b.one("Add", [b.one("Mul", [re, re]), b.one("Mul", [im, im])])
    mag = b.one("Sqrt", [power])
    if draw(st.booleans()):
        # + 1, not a small epsilon: ONNX Runtime's quantizer (which the tests also run) rounds
        # |STFT| + 1e-2 to 0 before the Log, and the -inf its file then computes has no
        # defined quantization (tests/fuzz/test_regressions.py has the 1e-2 case for lowp)
        mag = b.one("Log", [b.one("Add", [mag, b.const(np.float32(1.0), "one")])])
    return Signal(mag, bins, length)


def residual(draw: Draw, b: Builder, x: Signal) -> Signal:
    """A temporal-convolution residual: x + act(dilated conv(x)) with "same" padding, the
    padding symmetric or causal (all on the left, by a Pad node)."""
    k = draw(st.sampled_from([k for k in (1, 3, 5) if k <= x.t]))
    dilation = draw(st.sampled_from([d for d in (1, 2, 4) if d * (k - 1) < x.t])) \
        if k > 1 else 1
    span = dilation * (k - 1)
    src = x
    if draw(st.booleans()) and span:                       # causal: Pad on the left
        src = Signal(b.one("Pad", [x.name, b.ints([0, 0, span, 0, 0, 0])]), x.c, x.t + span)
        pads = (0, 0)
    else:
        pads = (span // 2, span - span // 2)
    y = conv1d(b, src, x.c, k, 1, pads, dilation, bn=draw(st.booleans()))
    name = _act(draw, b, y.name)
    return Signal(b.one("Add", [x.name, name] if draw(st.booleans()) else [name, x.name]),
                  x.c, x.t)


def gated(draw: Draw, b: Builder, x: Signal) -> Signal:
    """A gated linear unit: a 1-D conv to 2C, Split in halves, a * Sigmoid(b) (or Tanh(a)
    * Sigmoid(b), WaveNet's gate)."""
    y = conv1d(b, x, 2 * x.c, 1)
    a, g = b.node("Split", [y.name, b.ints([x.c, x.c])], 2, axis=1)
    if draw(st.booleans()):
        a = b.one("Tanh", [a])
    return Signal(b.one("Mul", [a, b.one("Sigmoid", [g])]), x.c, x.t)


def pool(draw: Draw, b: Builder, x: Signal) -> Signal:
    """MaxPool or AveragePool over time, kernel 2-4, stride 1-3, optional padding."""
    if x.t < 2:
        return x
    k = draw(st.integers(2, min(4, x.t)))
    stride = draw(st.integers(1, 3))
    pad = draw(st.integers(0, k // 2))
    op = draw(st.sampled_from(["MaxPool", "AveragePool"]))
    attrs: dict[str, Any] = {"kernel_shape": [k], "strides": [stride], "pads": [pad, pad]}
    if op == "AveragePool":
        attrs["count_include_pad"] = int(draw(st.booleans()))
    y = b.one(op, [x.name], **attrs)
    return Signal(y, x.c, (x.t + 2 * pad - k) // stride + 1)


def frame_mlp(draw: Draw, b: Builder, x: Signal) -> Signal:
    """Per frame: Transpose to [N, T, C], LayerNorm, MatMul + Add, an activation, back to
    [N, C', T]."""
    t = b.one("Transpose", [x.name], perm=[0, 2, 1])
    if draw(st.booleans()):
        t = _layer_norm(b, t, x.c)
    c_out = draw(st.integers(2, 12))
    y = _act(draw, b, _matmul_w(b, t, x.c, c_out))
    return Signal(b.one("Transpose", [y], perm=[0, 2, 1]), c_out, x.t)


def recurrent(draw: Draw, b: Builder, x: Signal) -> Signal:
    """RNN, LSTM or GRU over time, forward, reverse or bidirectional, its outputs back to
    [N, directions * hidden, T]; at times with the attributes and inputs exports rarely
    write: a clip, other activations, per-row sequence_lens (the padded steps' outputs
    are 0), constant initial states, LSTM peepholes. (Not layout 1: ONNX Runtime's CPU
    kernels refuse a batch-first layout.)"""
    if x.t > 24:
        return x
    op, gates = draw(st.sampled_from([("LSTM", 4), ("GRU", 3), ("RNN", 1)]))
    direction = draw(st.sampled_from(["forward", "bidirectional", "reverse"]))
    directions = 2 if direction == "bidirectional" else 1
    hidden = draw(st.integers(2, 8))
    seq = b.one("Transpose", [x.name], perm=[2, 0, 1])                 # T, N, C
    w = b.const(b.weight(directions, gates * hidden, x.c))
    r = b.const(b.weight(directions, gates * hidden, hidden))
    bias = b.const(b.weight(directions, 2 * gates * hidden) * 0.1, "b")
    attrs: dict[str, Any] = {"hidden_size": hidden}
    if direction != "forward":
        attrs["direction"] = direction
    if op == "GRU":
        attrs["linear_before_reset"] = int(draw(st.booleans()))
    extras = draw(st.sets(st.sampled_from(["clip", "activations", "lens", "initial",
                                           "peepholes"]))) if draw(st.booleans()) else set()
    if "clip" in extras:
        attrs["clip"] = draw(st.sampled_from([0.5, 3.0]))
    if "activations" in extras:
        # any of ONNX Runtime's activations in every slot (RNN f; GRU f, g; LSTM f, g, h per
        # direction), alpha and beta consumed in order (docs/operators.md, (O58), (O62))
        slots = {"RNN": 1, "GRU": 2, "LSTM": 3}[op] * directions
        attrs["activations"] = [draw(st.sampled_from(
            ["Relu", "Tanh", "Sigmoid", "LeakyRelu", "ThresholdedRelu", "ScaledTanh",
             "HardSigmoid", "Elu", "Softsign", "Softplus", "Affine"])) for _ in range(slots)]
        if draw(st.booleans()):
            attrs["activation_alpha"] = [0.5]
            attrs["activation_beta"] = [0.25]
    inputs = [seq, w, r, bias]
    fixed = isinstance(b.batch, int)
    if "lens" in extras and fixed:
        lens = [draw(st.integers(1, x.t)) for _ in range(int(b.batch))]
        inputs.append(b.const(np.asarray(lens, np.int32), "lens"))
    if "initial" in extras and fixed:
        shape = (directions, int(b.batch), hidden)
        inputs += [""] * (5 - len(inputs))
        inputs.append(b.const(b.rng.normal(0, 0.5, shape).astype(np.float32), "h0"))
        if op == "LSTM":
            inputs.append(b.const(b.rng.normal(0, 0.5, shape).astype(np.float32), "c0"))
    if "peepholes" in extras and op == "LSTM":
        inputs += [""] * (7 - len(inputs))
        inputs.append(b.const(b.weight(directions, 3 * hidden), "p"))
    y = b.node(op, inputs, 1, **attrs)[0]                            # T, D, N, hidden
    y = b.one("Transpose", [y], perm=[2, 1, 3, 0])                   # N, D, hidden, T
    return Signal(b.one("Reshape", [y, b.ints([0, directions * hidden, -1])]),
                  directions * hidden, x.t)


def upsample(draw: Draw, b: Builder, x: Signal) -> Signal:
    """A 1-D ConvTranspose (kernel 2-4, stride 1-2) and an activation, as decoders and
    vocoders upsample."""
    if x.t > 16:
        return x
    k, stride = draw(st.integers(2, 4)), draw(st.sampled_from([1, 2]))
    c_out = draw(st.integers(2, 8))
    inputs = [x.name, b.const(b.weight(x.c, c_out, k))] + \
        ([b.const(b.weight(c_out) * 0.1, "b")] if draw(st.booleans()) else [])
    y = b.one("ConvTranspose", inputs, kernel_shape=[k], strides=[stride])
    return Signal(_act(draw, b, y, first=0), c_out, (x.t - 1) * stride + k)


def as_2d(draw: Draw, b: Builder, x: Signal) -> Signal:
    """A 1-D convolution written as a 2-D one (tf2onnx): Unsqueeze a unit axis (height or
    channel), a (1, k) Conv, an activation, Squeeze it back."""
    k = draw(st.sampled_from([k for k in (1, 3) if k <= x.t]))
    c_out = draw(st.integers(2, 12))
    if draw(st.booleans()):                                          # [N, C, 1, T]
        u = b.one("Unsqueeze", [x.name, b.ints([2])])
        w = b.const(b.weight(c_out, x.c, 1, k))
        y = b.one("Conv", [u, w, b.const(b.weight(c_out) * 0.1, "b")], kernel_shape=[1, k],
                  pads=[0, k // 2, 0, k // 2])
        y = _act(draw, b, y)
        return Signal(b.one("Squeeze", [y, b.ints([2])]), c_out, x.t)
    u = b.one("Unsqueeze", [x.name, b.ints([1])])                    # [N, 1, C, T]
    w = b.const(b.weight(c_out, 1, x.c, k))
    y = b.one("Conv", [u, w], kernel_shape=[x.c, k], pads=[0, k // 2, 0, k // 2])
    return Signal(b.one("Squeeze", [_act(draw, b, y), b.ints([2])]), c_out, x.t)


def excite(draw: Draw, b: Builder, x: Signal) -> Signal:
    """Squeeze-excitation over time: ReduceMean|ReduceMax over T (keepdims), a 1x1 conv,
    Relu, a 1x1 conv, Sigmoid, Mul."""
    op = draw(st.sampled_from(["ReduceMean", "ReduceMax", "GlobalAveragePool"]))
    g = b.one(op, [x.name]) if op == "GlobalAveragePool" else _reduce(b, op, x.name, [2])
    mid = conv1d(b, Signal(g, x.c, 1), draw(st.integers(2, 8)))
    gate = conv1d(b, Signal(b.one("Relu", [mid.name]), mid.c, 1), x.c)
    return Signal(b.one("Mul", [x.name, b.one("Sigmoid", [gate.name])]), x.c, x.t)


def trim(draw: Draw, b: Builder, x: Signal) -> Signal:
    """Frames cut from either end by a Slice on the time axis (what a streaming model does
    with its context), or the signal concatenated with itself shifted (a delta feature)."""
    if x.t < 3:
        return x
    if draw(st.booleans()):
        start = draw(st.integers(0, 1))
        stop = draw(st.sampled_from([x.t, x.t - 1, -1]))
        y = b.one("Slice", [x.name, b.ints([start]), b.ints([stop]), b.ints([2])])
        return Signal(y, x.c, (x.t if stop == x.t else x.t - 1) - start)
    shifted = b.one("Slice", [x.name, b.ints([1]), b.ints([x.t]), b.ints([2])])
    head = b.one("Slice", [x.name, b.ints([0]), b.ints([x.t - 1]), b.ints([2])])
    delta = b.one("Sub", [shifted, head])
    return Signal(b.one("Concat", [head, delta], axis=1), 2 * x.c, x.t - 1)


def time_ops(draw: Draw, b: Builder, x: Signal) -> Signal:
    """Operators over the time axis of real exports that the other blocks never draw: a
    causal running mean (CumSum over T divided by Range(1, T + 1) from the Shape); an
    attention pooling (a 1x1 conv to one channel, Softmax over T written as axis 2, the
    weighted ReduceSum Expanded back to the signal's Shape); a Where mask of the first
    frames (Less of Range(0, T)); Softmax over the channels (axis 1); LayerNormalization
    over the channels and time together (axis 1, opset 17)."""
    kinds = ["running_mean", "attention_pool", "where_mask", "softmax_channels"]
    kind = draw(st.sampled_from(kinds + (["layer_norm_ct"] if b.opset >= 17 else [])))
    frames = b.one("Gather", [b.one("Shape", [x.name]), b.const(np.int64(2), "i")], axis=0)
    one = b.const(np.int64(1), "i")
    if kind == "running_mean":
        total = b.one("CumSum", [x.name, b.const(np.int64(-1 if draw(st.booleans()) else 2),
                                                   "ax")])
        count = b.one("Range", [one, b.one("Add", [frames, one]), one])
        return Signal(b.one("Div", [total, b.one("Cast", [count], to=TensorProto.FLOAT)]),
                      x.c, x.t)
    if kind == "attention_pool":
        score = conv1d(b, x, 1).name
        weights = b.one("Softmax", [score], axis=2)
        pooled = _reduce(b, "ReduceSum", b.one("Mul", [x.name, weights]), [2])
        return Signal(b.one("Add", [x.name, b.one("Expand", [pooled, b.one("Shape", [x.name])])]),
                      x.c, x.t)
    if kind == "where_mask":
        t = b.one("Range", [b.const(np.int64(0), "i"), frames, one])
        early = b.one("Less", [t, b.const(np.int64(draw(st.integers(1, max(1, x.t)))), "k")])
        return Signal(b.one("Where", [early, x.name, b.const(np.float32(0.0), "zero")]),
                      x.c, x.t)
    if kind == "softmax_channels":
        return Signal(b.one("Softmax", [x.name], axis=1), x.c, x.t)
    gamma = b.const(b.rng.uniform(0.5, 1.5, (x.c, x.t)).astype(np.float32), "ln")
    beta = b.const(b.rng.normal(0, 0.1, (x.c, x.t)).astype(np.float32), "ln")
    return Signal(b.one("LayerNormalization", [x.name, gamma, beta], axis=1, epsilon=1e-3),
                  x.c, x.t)


SeqBlock = Callable[[Draw, Builder, Signal], Signal]

# Ordered simplest first: shrinking moves block indices towards 0.
SEQUENCE_BLOCKS: list[SeqBlock] = [conv_act, residual, pool, gated, frame_mlp, excite, trim,
                                   as_2d, upsample, recurrent, stft_front, time_ops]


def active_sequence_blocks() -> list[SeqBlock]:
    """SEQUENCE_BLOCKS, or those named in LOWP_FUZZ_BLOCKS (graphs.chosen_blocks)."""
    return chosen_blocks(SEQUENCE_BLOCKS)


def _head(draw: Draw, b: Builder, x: Signal) -> tuple[str, list[int | str]]:
    """Per-frame probabilities (a 1x1 conv to one channel, Sigmoid) or a clip classifier
    (the mean over time, MatMul, Softmax|nothing). Returns the output and its shape
    (N stands for the batch)."""
    if draw(st.booleans()):
        y = conv1d(b, x, 1, 1)
        return b.one("Sigmoid", [y.name]), ["N", 1, x.t]
    pooled = _reduce(b, "ReduceMean", x.name, [2], keepdims=0)         # N, C
    classes = draw(st.integers(2, 6))
    logits = _matmul_w(b, pooled, x.c, classes)
    if draw(st.booleans()):
        logits = b.one("Softmax", [logits], axis=-1)
    return logits, ["N", classes]


@st.composite
def sequence_graphs(draw: Draw, max_blocks: int = 4) -> FuzzGraph:
    """A random float32 model of [N, C, T] signals: a 1-D convolution stem (or a Fourier
    front end when the input is long enough), blocks (a list, so that shrinking removes
    them), then a per-frame or clip head, the last signal an output too at times."""
    opset = draw(st.integers(13, 21))
    dynamic = draw(st.booleans())
    batch = draw(st.integers(1, 3))
    c, t = draw(st.integers(1, 8)), draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2 ** 16))
    b = Builder(opset, "N" if dynamic else batch, np.random.default_rng(seed))
    x = Signal("input", c, t)
    names = ["stft_front" if t >= 8 and draw(st.booleans()) else "conv_act"]
    x = stft_front(draw, b, x) if names[0] == "stft_front" else conv_act(draw, b, x)
    blocks = active_sequence_blocks()
    for index in draw(st.lists(st.integers(0, len(blocks) - 1), max_size=max_blocks)):
        block = blocks[index]
        names.append(block.__name__)
        x = block(draw, b, x)
    head, shape = _head(draw, b, x)
    batch_dim: int | str = "N" if dynamic else batch
    outputs = [(head, [batch_dim if d == "N" else d for d in shape])]
    if draw(st.booleans()):
        outputs.append((x.name, [batch_dim, x.c, x.t]))
    graph = helper.make_graph(
        b.nodes, "signal",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch_dim, c, t])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, s) for o, s in outputs],
        b.inits)
    batches = _batches(batch, dynamic, draw(st.booleans()), b.nodes)
    return FuzzGraph(_model(graph, opset), "input", (c, t), batches, seed,
                     tuple(names))
