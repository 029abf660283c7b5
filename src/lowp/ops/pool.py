"""Quantized pooling reference: MaxPool, AveragePool, GlobalAveragePool (1D/2D/3D)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from ..errors import NodeError
from ..fixedpoint import RequantMode, requant_scale, requantize
from .layout import Layout, from_channels_first, to_channels_first
from .linear import wrap_int32
from .registry import register


def window_reaching_pads(in_shape: Sequence[int], kernel: Sequence[int],
                         strides: Sequence[int], pads: Sequence[int],
                         dilations: Sequence[int], ceil_mode: bool) -> list[int]:
    """`pads` as ONNX Runtime pools with them (O80): where the window is longer than the
    padded input by less than a stride, ONNX Runtime divides the negative numerator
    truncating toward zero and makes one output; outside ceil mode that window's taps past
    the end count as end padding (an AveragePool with count_include_pad divides by the whole
    kernel), so the end padding is extended to reach it. In ceil mode the overhang stays an
    overhang (`pool_output_shape` gives one output, its taps never count)."""
    r = len(in_shape)
    out = [int(v) for v in pads]
    if ceil_mode:
        return out
    for i in range(r):
        num = in_shape[i] + out[i] + out[i + r] - ((kernel[i] - 1) * dilations[i] + 1)
        if -strides[i] < num < 0:
            out[i + r] -= num
    return out


def pool_output_shape(in_shape: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
                      pads: Sequence[int], dilations: Sequence[int],
                      ceil_mode: bool) -> tuple[int, ...]:
    """Spatial output size of a pooling window (O6).

    out = floor_or_ceil((in + pad_begin + pad_end - ((k - 1) d + 1)) / s) + 1; in ceil mode
    a last window that would start at or after ``in + pad_begin`` (wholly in the end
    padding) is dropped, as PyTorch and ONNX Runtime do. A window longer than the padded
    input divides its negative numerator truncating toward zero, as ONNX Runtime does: one
    output within a stride (O80), none within two (O181), an error beyond.
    """
    r = len(in_shape)
    out = []
    for i in range(r):
        span = (kernel[i] - 1) * dilations[i] + 1
        num = in_shape[i] + pads[i] + pads[i + r] - span
        if num < 0:                                           # (O80), (O181)
            o = -(-num // strides[i]) + 1
            if o < 0:
                raise NodeError(f"pool: window extent {span} exceeds padded input on axis {i}")
            out.append(o)
            continue
        o = (-(-num // strides[i]) if ceil_mode else num // strides[i]) + 1
        if ceil_mode and (o - 1) * strides[i] >= in_shape[i] + pads[i]:
            o -= 1
        out.append(o)
    return tuple(out)


def ort_same_pads(spatial: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
                  auto_pad: str) -> tuple[list[int], list[int]]:
    """ONNX Runtime's pooling pads for SAME_UPPER / SAME_LOWER (PoolAttributes, (O180)):
    the needed padding from the kernel without dilation, not clamped at zero, split with
    C's division toward zero (the odd one at the end for SAME_UPPER, at the start
    otherwise). A negative pad drops input elements from that side (a kernel smaller than
    its stride, `crop_negative_pads`)."""
    begin, end = [], []
    for n, k, s in zip(spatial, kernel, strides, strict=True):
        needed = (-(-n // s) - 1) * s + k - n
        head = int(needed / 2) if auto_pad == "SAME_UPPER" else int((needed + 1) / 2)
        begin.append(head)
        end.append(needed - head)
    return begin, end


def crop_negative_pads(x: np.ndarray, begin: Sequence[int], end: Sequence[int],
                       first: int) -> np.ndarray:
    """`x` without the elements negative pads drop (spatial axes from `first`), contiguous."""
    if all(p >= 0 for p in (*begin, *end)):
        return x
    index = [slice(None)] * x.ndim
    for i, (b, e) in enumerate(zip(begin, end, strict=True)):
        index[first + i] = slice(max(-b, 0), x.shape[first + i] - max(-e, 0))
    return np.ascontiguousarray(x[tuple(index)])


def _windows(xc: np.ndarray, fill: int, kernel: Sequence[int], strides: Sequence[int],
             pads: Sequence[int], dilations: Sequence[int],
             out_shape: Sequence[int]) -> np.ndarray:
    """All window taps of channels-first `xc`: (prod(kernel), N, C, *out).

    Taps outside the input (padding, or the ceil-mode overhang) hold `fill`. A negative
    begin pad drops the elements before the first window; past a negative end pad the
    elements stay where a window reaches them (ONNX Runtime's MaxPool loop, (O200)).
    """
    r = len(kernel)
    xc = crop_negative_pads(xc, pads[:r], [0] * r, 2)
    widths = []
    for i in range(r):
        need = (out_shape[i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1
        begin = max(pads[i], 0)
        widths.append((begin, max(0, need - (xc.shape[2 + i] + begin))))
    xp = np.pad(xc, [(0, 0), (0, 0)] + widths, constant_values=fill)
    taps = []
    for offs in itertools.product(*(range(k) for k in kernel)):
        sl = tuple(slice(o * d, o * d + (l - 1) * s + 1, s)
                   for o, d, s, l in zip(offs, dilations, strides, out_shape, strict=True))
        taps.append(xp[(slice(None), slice(None)) + sl])
    return np.stack(taps, axis=0)


def _geometry(x: np.ndarray, kernel_shape: Sequence[int], strides: Sequence[int] | None,
              pads: Sequence[int] | None, dilations: Sequence[int] | None,
              ) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    r = x.ndim - 2
    if r not in (1, 2, 3) or len(kernel_shape) != r:
        raise NodeError(f"pool: kernel {tuple(kernel_shape)} does not fit input {x.shape}")
    k = tuple(int(v) for v in kernel_shape)
    s = tuple(strides) if strides is not None else (1,) * r
    p = tuple(pads) if pads is not None else (0,) * (2 * r)
    d = tuple(dilations) if dilations is not None else (1,) * r
    if len(s) != r or len(d) != r or len(p) != 2 * r:
        raise NodeError("pool: strides/dilations need one entry per spatial axis and pads two")
    return k, s, p, d


@register("MaxPool")
def max_pool(x: np.ndarray, *, kernel_shape: Sequence[int], strides: Sequence[int] | None = None,
             pads: Sequence[int] | None = None, dilations: Sequence[int] | None = None,
             ceil_mode: bool = False, layout: Layout = Layout.CHANNELS_FIRST) -> np.ndarray:
    """Quantized MaxPool (O7): the maximum of the in-bounds taps; same qparams in and out.

    Max commutes with the monotone dequantization, so no requantization is needed;
    padded positions never win (ONNX semantics). A window without any in-bounds tap (only
    possible with dilation) gives the lowest value of the dtype. Output dtype and layout
    are those of `x`.

    Examples
    --------
    >>> x = np.array([[[3, 9, 1, 4]]], np.int8)
    >>> max_pool(x, kernel_shape=[2], strides=[2]).tolist()
    [[[9, 4]]]
    """
    x = np.asarray(x)
    k, s, p, d = _geometry(x, kernel_shape, strides, pads, dilations)
    xc = to_channels_first(x, layout)
    p = tuple(window_reaching_pads(xc.shape[2:], k, s, p, d, ceil_mode))
    out_shape = pool_output_shape(xc.shape[2:], k, s, p, d, ceil_mode)
    if 0 in out_shape:                           # no window: an empty output (O181)
        return from_channels_first(np.empty((*xc.shape[:2], *out_shape), x.dtype), layout)
    lowest = int(np.iinfo(np.int64).min)
    taps = _windows(xc.astype(np.int64), lowest, k, s, p, d, out_shape)
    y = np.maximum(taps.max(axis=0), np.iinfo(x.dtype).min).astype(x.dtype)
    return np.ascontiguousarray(from_channels_first(y, layout))


@register("AveragePool")
def average_pool(x: np.ndarray, *, x_zero_point: int, x_scale: float, y_scale: float,
                 y_zero_point: int, qmin: int, qmax: int, kernel_shape: Sequence[int],
                 strides: Sequence[int] | None = None, pads: Sequence[int] | None = None,
                 dilations: Sequence[int] | None = None, count_include_pad: bool = False,
                 ceil_mode: bool = False, layout: Layout = Layout.CHANNELS_FIRST,
                 mode: RequantMode = RequantMode.FLOAT32) -> np.ndarray:
    """Quantized AveragePool: (O8a) in float32 mode, (O8)-(O9) in fixed-point mode.

    ``count`` = number of taps inside the input, or (count_include_pad) inside the padded
    input ``[-pad_begin, in + pad_end)`` (taps in the ceil-mode overhang never count).

    Float32 mode computes what the QDQ group DequantizeLinear -> AveragePool ->
    QuantizeLinear states, in ONNX Runtime's order (O8a): every tap dequantized to float32,
    summed one tap after another in window order, divided by ``count``, then
    ``y = clamp(round_half_even(float32(mean / s_y) + zy), qmin, qmax)``.
    Fixed-point mode (gemmlowp/QNNPACK) sums integers,
    ``acc = wrap_int32(sum over counted taps of (x - zx))``, and requantizes it with
    ``M = float32(float32(float32(s_x) / float32(s_y)) / float32(count))`` (R4).
    Padded taps are 0 in the sum. Output dtype and layout are those of `x`.

    Examples
    --------
    >>> x = np.array([[[10, 20, 31, 40]]], np.uint8)
    >>> average_pool(x, x_zero_point=0, x_scale=1.0, y_scale=1.0, y_zero_point=0, qmin=0,
    ...              qmax=255, kernel_shape=[2], strides=[2]).tolist()
    [[[15, 36]]]
    """
    x = np.asarray(x)
    k, s, p, d = _geometry(x, kernel_shape, strides, pads, dilations)
    xc = to_channels_first(x, layout)
    spatial = xc.shape[2:]
    p = tuple(window_reaching_pads(spatial, k, s, p, d, ceil_mode))
    out_shape = pool_output_shape(spatial, k, s, p, d, ceil_mode)
    count = window_counts(spatial, k, s, p, d, out_shape, count_include_pad)
    if mode is RequantMode.FLOAT32:
        return _dequantized_mean(xc, count, k, s, p, d, out_shape, x_zero_point, x_scale,
                                 y_scale, y_zero_point, qmin, qmax, layout)
    taps = _windows(xc.astype(np.int64) - int(x_zero_point), 0, k, s, p, d, out_shape)
    acc = wrap_int32(taps.sum(axis=0))
    return _requant_mean(acc, count, x_scale, y_scale, y_zero_point, qmin, qmax, mode,
                         x.dtype, layout)


def window_counts(spatial: Sequence[int], k: Sequence[int], s: Sequence[int],
                  p: Sequence[int], d: Sequence[int], out_shape: Sequence[int],
                  count_include_pad: bool) -> np.ndarray:
    """The taps each output of an average pool divides by, (1, 1, *out_shape): those inside
    the input, or (count_include_pad) inside the padded input (the ceil-mode overhang
    never counts). They depend on the geometry only: a ones array of one image and channel
    pooled."""
    ones = np.ones((1, 1) + tuple(spatial), dtype=np.int64)
    if count_include_pad:
        r = len(k)
        padded = np.pad(ones, [(0, 0), (0, 0)] + [(p[i], p[i + r]) for i in range(r)],
                        constant_values=1)
        return _windows(padded, 0, k, s, (0,) * (2 * r), d, out_shape).sum(axis=0)
    return _windows(ones, 0, k, s, p, d, out_shape).sum(axis=0)


def _dequantized_mean(xc: np.ndarray, count: np.ndarray, k: Sequence[int],
                      s: Sequence[int], p: Sequence[int], d: Sequence[int],
                      out_shape: Sequence[int], x_zero_point: int, x_scale: float,
                      y_scale: float, y_zero_point: int, qmin: int, qmax: int,
                      layout: Layout) -> np.ndarray:
    """(O8a): float32 taps (Q1) summed in window order, divided by count, quantized."""
    xf = ((xc.astype(np.int32) - np.int32(x_zero_point)).astype(np.float32)
          * np.float32(x_scale))
    taps = _windows(xf, 0, k, s, p, d, out_shape)
    acc = np.zeros(taps.shape[1:], np.float32)
    for tap in taps:           # one tap after another (not numpy's pairwise sum)
        acc += tap
    mean = acc / np.maximum(count, 1).astype(np.float32)
    # the zero point is added before rounding, as ONNX Runtime's QLinearAveragePool does
    q = np.rint(mean / np.float32(y_scale) + np.float32(y_zero_point))
    return np.ascontiguousarray(from_channels_first(
        np.clip(q, qmin, qmax).astype(xc.dtype), layout))


@register("GlobalAveragePool")
def global_average_pool(x: np.ndarray, *, x_zero_point: int, x_scale: float, y_scale: float,
                        y_zero_point: int, qmin: int, qmax: int,
                        layout: Layout = Layout.CHANNELS_FIRST,
                        mode: RequantMode = RequantMode.FLOAT32) -> np.ndarray:
    """Quantized GlobalAveragePool (O8) with the window = all spatial positions, requantized
    by (O59b) in float32 mode (ONNX Runtime's QLinearGlobalAveragePool), else (O9).

    Output keeps the spatial axes with size 1, e.g. (N, C, 1, 1) or (N, 1, 1, C).

    Examples
    --------
    >>> x = np.array([[[1, 2, 3, 5]]], np.int8)
    >>> global_average_pool(x, x_zero_point=0, x_scale=1.0, y_scale=1.0, y_zero_point=0,
    ...                     qmin=-128, qmax=127).tolist()
    [[[3]]]
    """
    x = np.asarray(x)
    xc = to_channels_first(x, layout)
    axes = tuple(range(2, xc.ndim))
    acc = wrap_int32((xc.astype(np.int64) - int(x_zero_point)).sum(axis=axes, keepdims=True))
    count = np.array(int(np.prod(xc.shape[2:])), dtype=np.int64)
    if mode is RequantMode.FLOAT32:
        m = global_average_scale(x_scale, y_scale, int(count))
        y = requantize(acc, m, y_zero_point, qmin, qmax, mode).astype(x.dtype)
        return np.ascontiguousarray(from_channels_first(y, layout))
    return _requant_mean(acc, count, x_scale, y_scale, y_zero_point, qmin, qmax, mode,
                         x.dtype, layout)


def global_average_scale(x_scale: float, y_scale: float, count: int) -> np.ndarray:
    """(O59b): the multiplier of a global average pool's integer sum in float32 mode,
    float32(s_x / float32(s_y * count)), in this order, as MLAS's
    QLinearGlobalAveragePool computes it (not (O9)'s (s_x / s_y) / count, which differs in
    the last bit for some scales and so, at a half-way point, by one unit)."""
    denominator = np.float32(np.float32(y_scale) * np.float32(max(count, 1)))
    return np.asarray(np.float32(x_scale) / denominator, dtype=np.float32)


def _requant_mean(acc: np.ndarray, count: np.ndarray, x_scale: float, y_scale: float,
                  y_zero_point: int, qmin: int, qmax: int, mode: RequantMode,
                  dtype: np.dtype, layout: Layout) -> np.ndarray:
    """(O9): requantize channels-first sums with M = float32(float32(sx / sy) / count)."""
    ratio = requant_scale(x_scale, 1.0, y_scale)                 # float32(s_x / s_y)
    # A window with no counted tap has sum 0; divide by 1 to keep M finite.
    cnt = np.maximum(count, 1).astype(np.float32)
    m = (ratio / cnt).astype(np.float32)
    y = requantize(acc, m, y_zero_point, qmin, qmax, mode).astype(dtype)
    return np.ascontiguousarray(from_channels_first(y, layout))
