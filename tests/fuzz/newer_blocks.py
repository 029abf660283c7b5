"""Image blocks of the newer float operators, drawn inside random graphs (graphs.BLOCKS) so
that their inputs come from convolutions, Reshape and Transpose chains and quantized
neighbours: detection and sampling (NonMaxSuppression, RoiAlign, GridSample, AffineGrid,
MaxUnpool, Col2Im, CenterCropPad), signal (DFT, STFT, the windows, MelWeightMatrix),
normalization (LpNormalization, MeanVarianceNormalization, RMSNormalization, Swish), data
(EyeLike, CumProd, Compress, ReverseSequence, Unique, BitShift, BitwiseNot, Det) and
RotaryEmbedding. Each operator is drawn only at an opset that has it (RMSNormalization and
RotaryEmbedding 23, Swish 24, CumProd 26: newer_op_graphs draws those opsets)."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st
from onnx import TensorProto, helper

from .graphs import ACTIVATIONS, Builder, Draw, Image, _reduce, _unsqueeze, conv


def _tokens(b: Builder, x: Image) -> str:
    """[N, C, H, W] -> [N, H * W, C]."""
    return b.one("Transpose", [b.one("Reshape", [x.name, b.ints([0, x.c, x.h * x.w])])],
                 perm=[0, 2, 1])


def _nms(draw: Draw, b: Builder, x: Image) -> Image:
    """Boxes [N, HW, 4] and scores [N, classes, HW] from 1x1 convolutions, the selected
    (batch, class, box) triples scattered as ones into zeros of the scores' shape: a mask
    concatenated to the channels."""
    boxes = _tokens(b, conv(b, x, 4))
    classes = draw(st.integers(1, 3))
    score = conv(b, x, classes).name
    if draw(st.booleans()):
        score = b.one("Sigmoid", [score])
    scores = b.one("Reshape", [score, b.ints([0, classes, x.h * x.w])])
    inputs = [boxes, scores, b.ints([draw(st.integers(1, x.h * x.w + 1))]),
              b.floats([draw(st.sampled_from([0.0, 0.3, 0.5, 0.9]))])]
    if draw(st.booleans()):
        inputs.append(b.floats([draw(st.sampled_from([-0.5, 0.0, 0.5]))]))
    picked = b.one("NonMaxSuppression", inputs,
                   center_point_box=int(draw(st.booleans())))               # K, 3
    zeros = b.one("ConstantOfShape", [b.one("Shape", [scores])],
                  value=helper.make_tensor("z", TensorProto.FLOAT, [1], [0.0]))
    count = b.one("Slice", [b.one("Shape", [picked]), b.ints([0]), b.ints([1])])
    ones = b.one("ConstantOfShape", [count],
                 value=helper.make_tensor("o", TensorProto.FLOAT, [1], [1.0]))
    mask = b.one("ScatterND", [zeros, picked, ones])
    mask = b.one("Reshape", [mask, b.ints([0, classes, x.h, x.w])])
    return Image(b.one("Concat", [x.name, mask], axis=1), x.c + classes, x.h, x.w)


def _roi_align(draw: Draw, b: Builder, x: Image) -> Image:
    """RoiAlign of constant boxes of the first image at the input's size, their mean added
    to every image (broadcast over the batch)."""
    rois = []
    scale = draw(st.sampled_from([1.0, 0.5]))
    for _ in range(draw(st.integers(1, 3))):
        y0, y1 = sorted(b.rng.uniform(-1.0, x.h / scale + 1.0, 2))
        x0, x1 = sorted(b.rng.uniform(-1.0, x.w / scale + 1.0, 2))
        rois.append([x0, y0, x1, y1])
    attrs: dict[str, Any] = {
        "output_height": x.h, "output_width": x.w, "spatial_scale": scale,
        "sampling_ratio": draw(st.integers(0, 2)),
        "mode": draw(st.sampled_from(["avg", "max"])),
        "coordinate_transformation_mode": draw(st.sampled_from(["half_pixel",
                                                                "output_half_pixel"]))}
    pooled = b.one("RoiAlign", [x.name, b.const(np.asarray(rois, np.float32), "roi"),
                                b.const(np.zeros(len(rois), np.int64), "i")], **attrs)
    mean = _reduce(b, "ReduceMean", pooled, [0])
    return Image(b.one("Add", [x.name, mean]), x.c, x.h, x.w)


def _grid(draw: Draw, b: Builder, x: Image) -> tuple[str, bool]:
    """A sampling grid [N, H, W, 2] from the input: a 1x1 convolution to two channels,
    Tanh times 1 or 1.2 (past the border at times), channels last; and whether it stays
    inside [-1, 1]."""
    gain = draw(st.sampled_from([1.0, 1.2]))
    g = b.one("Tanh", [conv(b, x, 2).name])
    g = b.one("Mul", [g, b.const(np.float32(gain), "k")])
    return b.one("Transpose", [g], perm=[0, 2, 3, 1]), gain <= 1.0


def _grid_sample(draw: Draw, b: Builder, x: Image, grid: str, h: int, w: int,
                 inside: bool) -> Image:
    modes = ["linear", "nearest", "cubic"] if b.opset >= 20 else ["bilinear", "nearest",
                                                                   "bicubic"]
    # (a grid far past the border reflected lands outside the input in ONNX Runtime's
    # GsReflect, which then reads outside it: lowp refuses that (float_detection); the
    # reflection padding is drawn on grids inside [-1, 1] only)
    paddings = ["zeros", "border"] + (["reflection"] if inside else [])
    attrs = {"mode": draw(st.sampled_from(modes)),
             "padding_mode": draw(st.sampled_from(paddings)),
             "align_corners": int(draw(st.booleans()))}
    return Image(b.one("GridSample", [x.name, grid], **attrs), x.c, h, w)


def _theta(b: Builder, x: Image) -> str:
    """AffineGrid's theta [N, 2, 3] from the pooled input (a 1x1 convolution), near the
    identity."""
    pooled = Image(b.one("GlobalAveragePool", [x.name]), x.c, 1, 1)
    t = b.one("Reshape", [conv(b, pooled, 6).name, b.ints([0, 2, 3])])
    return b.one("Add", [t, b.const(np.asarray([[1, 0, 0], [0, 1, 0]], np.float32), "id")])


def _sampling(draw: Draw, b: Builder, x: Image) -> Image:
    """GridSample of the input at a grid computed from it (or from AffineGrid, opset
    20)."""
    if b.opset >= 20 and draw(st.booleans()):
        theta = _theta(b, x)
        h, w = draw(st.integers(1, 8)), draw(st.integers(1, 8))
        nc = b.one("Slice", [b.one("Shape", [x.name]), b.ints([0]), b.ints([2])])
        size = b.one("Concat", [nc, b.ints([h, w])], axis=0)
        grid = b.one("AffineGrid", [theta, size], align_corners=int(draw(st.booleans())))
        return _grid_sample(draw, b, x, grid, h, w, inside=False)
    grid, inside = _grid(draw, b, x)
    return _grid_sample(draw, b, x, grid, x.h, x.w, inside)


def _max_unpool(draw: Draw, b: Builder, x: Image) -> Image:
    """MaxPool 2x2 stride 2 with its indices, MaxUnpool back (to the input's Shape, or
    the default size of an even input)."""
    if min(x.h, x.w) < 2:
        return x
    attrs: dict[str, Any] = {"kernel_shape": [2, 2], "strides": [2, 2]}
    y, idx = b.node("MaxPool", [x.name], 2, **attrs)
    # (the indices count in the input's layout: unpooled to another size, an index past
    # the output is the model's error in both engines)
    if x.h % 2 or x.w % 2 or draw(st.booleans()):
        return Image(b.one("MaxUnpool", [y, idx, b.one("Shape", [x.name])], **attrs),
                     x.c, x.h, x.w)
    return Image(b.one("MaxUnpool", [y, idx], **attrs), x.c, x.h // 2 * 2, x.w // 2 * 2)


def _col2im(draw: Draw, b: Builder, x: Image) -> Image:
    """A convolution to c * k * k channels whose output positions are Col2Im's blocks of an
    image the input's size (the same kernel, stride, pads): overlapping blocks summed."""
    k = draw(st.integers(1, min(3, x.h, x.w)))
    stride = draw(st.integers(1, 2))
    pad = draw(st.integers(0, k - 1))
    c = draw(st.integers(1, 3))
    y = conv(b, x, c * k * k, k, stride, pad)
    cols = b.one("Reshape", [y.name, b.ints([0, c * k * k, y.h * y.w])])
    out = b.one("Col2Im", [cols, b.ints([x.h, x.w]), b.ints([k, k])], strides=[stride] * 2,
                pads=[pad] * 4)
    return Image(out, c, x.h, x.w)


def _center_crop_pad(draw: Draw, b: Builder, x: Image) -> Image:
    h, w = draw(st.integers(1, x.h + 3)), draw(st.integers(1, x.w + 3))
    axes = draw(st.sampled_from([[2, 3], [-2, -1], [3, 2]]))
    sizes = [h, w] if axes != [3, 2] else [w, h]
    return Image(b.one("CenterCropPad", [x.name, b.ints(sizes)], axes=axes), x.c, h, w)


def detection_ops(draw: Draw, b: Builder, x: Image) -> Image:
    """Detection and sampling operators: NonMaxSuppression of boxes and scores computed by
    convolutions (_nms), RoiAlign (16-21), GridSample (16) of a computed grid or AffineGrid
    (20), MaxPool indices through MaxUnpool, Col2Im (18), CenterCropPad (18)."""
    # (ONNX Runtime 1.32 has no RoiAlign-22 kernel: a graph of opset 22 or later with one
    # does not load there)
    kinds = ["nms", "max_unpool"] + (["sampling"] if b.opset >= 16 else []) + (
        ["roi_align"] if 16 <= b.opset < 22 else []) + (
        ["col2im", "center_crop_pad"] if b.opset >= 18 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "nms":
        return _nms(draw, b, x)
    if kind == "roi_align":
        return _roi_align(draw, b, x)
    if kind == "sampling":
        return _sampling(draw, b, x)
    if kind == "max_unpool":
        return _max_unpool(draw, b, x)
    if kind == "col2im":
        return _col2im(draw, b, x)
    return _center_crop_pad(draw, b, x)


def _window(draw: Draw, b: Builder, n: int) -> str:
    op = draw(st.sampled_from(["HannWindow", "HammingWindow", "BlackmanWindow"]))
    return b.one(op, [b.const(np.int64(n), "n")], periodic=int(draw(st.booleans())))


def _dft(draw: Draw, b: Builder, x: Image) -> Image:
    """DFT of the image along its height or width (a real signal, the trailing axis 1),
    one-sided at times, a dft_length other than the axis at times; the inverse transform of
    that at times; the real and imaginary parts back as channels."""
    axis = draw(st.sampled_from([2, 3]))
    n = x.h if axis == 2 else x.w
    # (ONNX Runtime's Bluestein transform reads past its buffer for a signal longer than
    # its chirp (about twice dft_length): lowp refuses that, float_signal)
    length = draw(st.none() | st.integers(max(1, (n + 1) // 2), 2 * n))
    onesided = int(draw(st.booleans()))
    signal = _unsqueeze(b, x.name, 4)                                     # N, C, H, W, 1
    y = _dft_node(b, signal, length, axis, onesided=onesided)
    size = length or n
    out = size // 2 + 1 if onesided else size
    if draw(st.booleans()):              # the inverse of the complex spectrum
        y = _dft_node(b, y, None, axis, inverse=1)
    y = b.one("Transpose", [y], perm=[0, 1, 4, 2, 3])                     # N, C, 2, H, W
    h, w = (out, x.w) if axis == 2 else (x.h, out)
    return Image(b.one("Reshape", [y, b.ints([0, 2 * x.c, h, w])]), 2 * x.c, h, w)


def _dft_node(b: Builder, signal: str, length: int | None, axis: int, **attrs: Any) -> str:
    """DFT with its axis as an attribute (opset 17) or an input (20)."""
    size = b.const(np.int64(length), "n") if length is not None else ""
    if b.opset >= 20:
        return b.one("DFT", [signal, size, b.const(np.int64(axis), "ax")], **attrs)
    return b.one("DFT", [signal, size] if size else [signal], axis=axis, **attrs)


def _stft(draw: Draw, b: Builder, x: Image) -> Image:
    """STFT of the flattened image (one signal per batch item) with a Hann, Hamming or
    Blackman window, a constant one, or none (frame_length); the frames as an image of
    the real and imaginary parts, or the magnitudes through a MelWeightMatrix."""
    size = x.c * x.h * x.w
    frame = draw(st.sampled_from([f for f in (4, 5, 8, 16) if f <= size] or [size]))
    step = draw(st.integers(1, frame))
    onesided = int(draw(st.booleans()))
    signal = b.one("Reshape", [x.name, b.ints([0, size, 1])])
    window = draw(st.sampled_from(["op", "constant", "none"]))
    inputs = [signal, b.const(np.int64(step), "step")]
    if window == "op":
        inputs.append(_window(draw, b, frame))
    elif window == "constant":
        inputs.append(b.const(b.rng.uniform(0.0, 1.0, frame).astype(np.float32), "win"))
    else:
        inputs += ["", b.const(np.int64(frame), "n")]
    spec = b.one("STFT", inputs, onesided=onesided)                    # N, frames, bins, 2
    frames, bins = (size - frame) // step + 1, frame // 2 + 1 if onesided else frame
    if onesided and draw(st.booleans()):
        mag = _reduce(b, "ReduceL2", spec, [3], keepdims=0)              # N, frames, bins
        mels = draw(st.integers(1, 3))
        # band edges in hertz inside the spectrogram's bins (lowp refuses edges outside,
        # as ONNX Runtime's kernel then writes outside its matrix)
        rate, top = 16000, (frame // 2) * 16000 // (frame + 1)
        weights = b.one("MelWeightMatrix", [b.const(np.int64(mels), "m"),
                                            b.const(np.int64(frame), "n"),
                                            b.const(np.int64(rate), "r"),
                                            b.const(np.float32(0.0), "lo"),
                                            b.const(np.float32(top), "hi")])
        y = b.one("MatMul", [mag, weights])                               # N, frames, mels
        return Image(_unsqueeze(b, y, 1), 1, frames, mels)
    return Image(b.one("Transpose", [spec], perm=[0, 3, 1, 2]), 2, frames, bins)


def signal_ops(draw: Draw, b: Builder, x: Image) -> Image:
    """The signal operators of opset 17: DFT along an image axis (_dft), STFT of the
    flattened image (_stft, with the window operators and MelWeightMatrix)."""
    if b.opset < 17:
        return x
    return _dft(draw, b, x) if draw(st.booleans()) else _stft(draw, b, x)


def normalize_ops(draw: Draw, b: Builder, x: Image) -> Image:
    """LpNormalization (p 1|2, over the channels, the width or the height),
    MeanVarianceNormalization over drawn axes, RMSNormalization (23) over the last axes,
    Swish (opset 24)."""
    # (ONNX Runtime 1.32 runs Swish as its function body at opset 24 only: from opset 25
    # on it finds no implementation and does not load the graph)
    kinds = ["lp", "mvn"] + (["rms"] if b.opset >= 23 else []) + (
        ["swish"] if b.opset == 24 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "lp":
        return Image(b.one("LpNormalization", [x.name], axis=draw(st.sampled_from([1, -1, 2])),
                           p=draw(st.sampled_from([1, 2]))), x.c, x.h, x.w)
    if kind == "mvn":
        axes = draw(st.sampled_from([[0, 2, 3], [2, 3], [1, 2, 3], [1], [-1]]))
        return Image(b.one("MeanVarianceNormalization", [x.name], axes=axes), x.c, x.h, x.w)
    if kind == "rms":
        axis = draw(st.sampled_from([-1, 1, 2]))
        shape = (x.c, x.h, x.w)[axis - 1 if axis > 0 else 2:]
        scale = b.const(b.rng.uniform(0.5, 1.5, shape).astype(np.float32), "g")
        return Image(b.one("RMSNormalization", [x.name, scale], axis=axis,
                           epsilon=draw(st.sampled_from([1e-5, 1e-2]))), x.c, x.h, x.w)
    return Image(b.one("Swish", [x.name], alpha=draw(st.sampled_from([1.0, 0.5, 1.702]))),
                 x.c, x.h, x.w)


def _ints_of(draw: Draw, b: Builder, x: str, to: int) -> str:
    """x scaled and Cast to int32, then to the type `to` (wrapping around)."""
    gain = b.const(np.float32(draw(st.sampled_from([1.0, 40.0, 300.0]))), "gain")
    y = b.one("Cast", [b.one("Mul", [x, gain])], to=TensorProto.INT32)
    return y if to == TensorProto.INT32 else b.one("Cast", [y], to=to)


_UNSIGNED = {TensorProto.UINT8: np.uint8, TensorProto.UINT16: np.uint16,
             TensorProto.UINT32: np.uint32, TensorProto.UINT64: np.uint64}


def data_ops(draw: Draw, b: Builder, x: Image) -> Image:
    """Data operators: EyeLike of the spatial plane added; CumProd (26) along an axis;
    Compress along an axis (an empty selection concatenated, or the flattened selection's
    sum); ReverseSequence along the height per channel; Unique values and counts gathered
    back; BitShift and BitwiseNot (18) of the integer-cast image; Det of the spatial
    plane's top-left square as a per-channel gain."""
    kinds = ["eye_like", "compress", "reverse_sequence", "unique", "bit_shift", "det"]
    kinds += ["bitwise_not"] if b.opset >= 18 else []
    kinds += ["cumprod"] if b.opset >= 26 else []
    kind = draw(st.sampled_from(kinds))
    c, h, w = x.c, x.h, x.w
    if kind == "eye_like":
        hw = b.one("Slice", [b.one("Shape", [x.name]), b.ints([2]), b.ints([4])])
        plane = b.one("ConstantOfShape", [hw])                                  # H, W
        eye = b.one("EyeLike", [plane], k=draw(st.integers(-2, 2)))
        return Image(b.one("Add", [x.name, eye]), c, h, w)
    if kind == "cumprod":
        axis = draw(st.sampled_from([1, 2, 3, -1]))
        kind_of = draw(st.sampled_from([np.int64, np.int32]))
        attrs = {k: int(draw(st.booleans())) for k in ("exclusive", "reverse")}
        y = b.one("CumProd", [x.name, b.const(kind_of(axis), "ax")], **attrs)
        return Image(y, c, h, w)
    if kind == "compress":
        axis = draw(st.sampled_from([None, 1, 2, 3, -1]))
        n = {None: 0, 1: c, 2: h, 3: w, -1: w}[axis]
        if axis is None:
            keep = draw(st.lists(st.booleans(), min_size=1, max_size=c * h * w))
            picked = b.one("Compress", [x.name, b.const(np.asarray(keep), "cond")])
            total = _reduce(b, "ReduceSum", picked, [0])                         # [1]
            return Image(b.one("Add", [x.name, total]), c, h, w)
        keep = draw(st.lists(st.booleans(), min_size=1, max_size=n))
        picked = b.one("Compress", [x.name, b.const(np.asarray(keep), "cond")], axis=axis)
        kept = sum(keep)
        if kept == 0:                    # an empty axis, concatenated
            return Image(b.one("Concat", [x.name, picked], axis=axis), c, h, w)
        dims = [c, h, w]
        dims[(axis if axis > 0 else 3) - 1] = kept
        return Image(picked, *dims)
    if kind == "reverse_sequence":
        t = b.one("Transpose", [x.name], perm=[2, 1, 0, 3])                     # H, C, N, W
        lens = b.const(np.asarray([draw(st.integers(0, h)) for _ in range(c)], np.int64),
                       "lens")
        y = b.one("ReverseSequence", [t, lens], batch_axis=1, time_axis=0)
        return Image(b.one("Transpose", [y], perm=[2, 1, 0, 3]), c, h, w)
    if kind == "unique":
        axis = draw(st.sampled_from([None, 1, 2]))
        attrs: dict[str, Any] = {"sorted": int(draw(st.booleans()))}
        if axis is not None:
            attrs["axis"] = axis
        values, _, inverse, counts = b.node("Unique", [x.name], 4, **attrs)
        if axis is None:
            back = b.one("Reshape", [b.one("Gather", [values, inverse], axis=0),
                                     b.one("Shape", [x.name])])
            many = b.one("Reshape", [b.one("Gather", [counts, inverse], axis=0),
                                     b.one("Shape", [x.name])])
        else:
            back = b.one("Gather", [values, inverse], axis=axis)
            shape = [1, 1, 1, 1]
            shape[axis] = -1
            many = b.one("Reshape", [b.one("Gather", [counts, inverse], axis=0),
                                     b.ints(shape)])
        many = b.one("Cast", [many], to=TensorProto.FLOAT)
        return Image(b.one("Add", [back, many]), c, h, w)
    if kind in ("bit_shift", "bitwise_not"):
        to = draw(st.sampled_from([TensorProto.INT32, *_UNSIGNED]) if kind == "bitwise_not"
                  else st.sampled_from(list(_UNSIGNED)))
        y = _ints_of(draw, b, x.name, to)
        if kind == "bitwise_not":
            y = b.one("BitwiseNot", [y])
        else:
            dtype = _UNSIGNED[to]
            bits = 8 * np.dtype(dtype).itemsize
            amounts = np.asarray([draw(st.integers(0, bits - 1)) for _ in range(c)], dtype)
            y = b.one("BitShift", [y, b.const(amounts.reshape(c, 1, 1), "sh")],
                      direction=draw(st.sampled_from(["LEFT", "RIGHT"])))
        return Image(b.one("Cast", [y], to=TensorProto.FLOAT), c, h, w)
    k = min(h, w, 6)
    square = b.one("Slice", [x.name, b.ints([0, 0]), b.ints([k, k]), b.ints([2, 3])])
    det = b.one("Det", [square])                                                # N, C
    det = b.one("Unsqueeze", [det, b.ints([2, 3])])
    return Image(b.one("Mul", [x.name, b.one("Tanh", [det])]), c, h, w)


def rotary(draw: Draw, b: Builder, x: Image) -> Image:
    """RotaryEmbedding (23) of the image as [batch, heads = C, seq = H, head = W] (W even),
    or of its tokens [N, H * W, C] with num_heads; caches [positions, dim / 2] read at
    position_ids Range(offset, offset + seq) Expanded to the batch, or (a fixed batch)
    caches [N, seq, dim / 2] without position_ids; interleaved at times (a rotary
    dimension of 16 or more)."""
    if b.opset < 23:
        return x
    four_d = x.w % 2 == 0 and draw(st.booleans())
    if four_d:
        src, seq, head = x.name, x.h, x.w
        attrs: dict[str, Any] = {}
    else:
        heads = draw(st.sampled_from([n for n in (1, 2, 3) if x.c % (2 * n) == 0] or [0]))
        if not heads:
            return x
        src, seq, head = _tokens(b, x), x.h * x.w, x.c // heads
        attrs = {"num_heads": heads}
    dim = draw(st.sampled_from([d for d in range(2, head + 1, 2)]))
    if dim != head:
        attrs["rotary_embedding_dim"] = dim
    # (lowp reproduces ONNX Runtime's interleaved rotation in whole blocks of 16 only and
    # refuses the rest, float_rotary)
    if dim % 16 == 0 and draw(st.booleans()):
        attrs["interleaved"] = 1
    offset = draw(st.integers(0, 3))
    theta = (offset + np.arange(seq + 4))[:, None] * (
        10000.0 ** (-np.arange(dim // 2) / max(1, dim // 2)))[None]
    if isinstance(b.batch, int) and draw(st.booleans()):
        cos = np.broadcast_to(np.cos(theta[:seq]), (b.batch, seq, dim // 2))
        sin = np.broadcast_to(np.sin(theta[:seq]), (b.batch, seq, dim // 2))
        inputs = [src, b.const(cos.astype(np.float32), "cos"),
                  b.const(sin.astype(np.float32), "sin")]
    else:
        n = b.one("Slice", [b.one("Shape", [x.name]), b.ints([0]), b.ints([1])])
        ids = b.one("Range", [b.const(np.int64(offset), "i"),
                              b.const(np.int64(offset + seq), "i"), b.const(np.int64(1), "i")])
        ids = b.one("Expand", [ids, b.one("Concat", [n, b.ints([seq])], axis=0)])
        inputs = [src, b.const(np.cos(theta).astype(np.float32), "cos"),
                  b.const(np.sin(theta).astype(np.float32), "sin"), ids]
    y = b.one("RotaryEmbedding", inputs, **attrs)
    if four_d:
        return Image(y, x.c, x.h, x.w)
    back = b.one("Transpose", [y], perm=[0, 2, 1])
    act = ACTIVATIONS[draw(st.integers(0, 1))](b, back)
    return Image(b.one("Reshape", [act, b.ints([0, x.c, x.h, x.w])]), x.c, x.h, x.w)


NEWER_BLOCKS = [detection_ops, signal_ops, normalize_ops, data_ops, rotary]
