"""Data movement on quantized tensors: Pad, Resize (nearest), DepthToSpace, SpaceToDepth."""

from __future__ import annotations

import enum
from collections.abc import Sequence

import numpy as np

from .layout import Layout, from_channels_first, to_channels_first
from .registry import register


class PadMode(enum.Enum):
    """ONNX Pad modes."""

    CONSTANT = "constant"
    REFLECT = "reflect"
    EDGE = "edge"
    WRAP = "wrap"


@register("Pad")
def pad(x: np.ndarray, pads: Sequence[int], *, zero_point: int,
        mode: PadMode = PadMode.CONSTANT, axes: Sequence[int] | None = None) -> np.ndarray:
    """ONNX Pad on a quantized tensor (O14); the constant is the zero point (real 0).

    `pads` is in ONNX order (all begins, then all ends) over `axes` (default: every axis);
    negative pads crop. Same qparams in and out.

    Examples
    --------
    >>> pad(np.array([1, 2], np.uint8), [1, 2], zero_point=7).tolist()
    [7, 1, 2, 7, 7]
    """
    x = np.asarray(x)
    axes = [a % x.ndim for a in axes] if axes is not None else list(range(x.ndim))
    if len(pads) != 2 * len(axes):
        raise ValueError(f"pad: {len(pads)} pads for {len(axes)} axes")
    begin = [0] * x.ndim
    end = [0] * x.ndim
    for i, a in enumerate(axes):
        begin[a], end[a] = int(pads[i]), int(pads[i + len(axes)])
    crop = tuple(slice(max(0, -b), x.shape[a] - max(0, -e))
                 for a, (b, e) in enumerate(zip(begin, end, strict=True)))
    x = x[crop]
    widths = [(max(0, b), max(0, e)) for b, e in zip(begin, end, strict=True)]
    if mode is PadMode.CONSTANT:
        return np.pad(x, widths, mode="constant", constant_values=zero_point).astype(x.dtype)
    return np.pad(x, widths, mode=mode.value)


class CoordinateTransform(enum.Enum):
    """ONNX Resize coordinate_transformation_mode (the ones meaningful for nearest)."""

    HALF_PIXEL = "half_pixel"
    ASYMMETRIC = "asymmetric"
    ALIGN_CORNERS = "align_corners"
    PYTORCH_HALF_PIXEL = "pytorch_half_pixel"


class NearestMode(enum.Enum):
    """ONNX Resize nearest_mode."""

    ROUND_PREFER_FLOOR = "round_prefer_floor"
    ROUND_PREFER_CEIL = "round_prefer_ceil"
    FLOOR = "floor"
    CEIL = "ceil"


def nearest_indices(in_size: int, out_size: int, scale: float,
                    transform: CoordinateTransform, nearest: NearestMode) -> np.ndarray:
    """Source index of every output index along one axis (O15), computed in float32."""
    f = np.float32
    xr = np.arange(out_size, dtype=np.float32)
    s = f(scale)
    if transform is CoordinateTransform.HALF_PIXEL:
        xo = (xr + f(0.5)) / s - f(0.5)
    elif transform is CoordinateTransform.PYTORCH_HALF_PIXEL:
        xo = (xr + f(0.5)) / s - f(0.5) if out_size > 1 else np.zeros_like(xr)
    elif transform is CoordinateTransform.ASYMMETRIC:
        xo = xr / s
    else:
        # multiplied first, then divided, as ONNX Runtime does: 23 * 7 / 23 is exactly 7
        xo = (xr * f(in_size - 1)) / f(out_size - 1) if out_size > 1 else np.zeros_like(xr)
    xo = xo.astype(np.float32)
    if nearest is NearestMode.FLOOR:
        idx = np.floor(xo)
    elif nearest is NearestMode.CEIL:
        idx = np.ceil(xo)
    else:
        fl = np.floor(xo)
        tie = (xo - fl) == f(0.5)
        up = nearest is NearestMode.ROUND_PREFER_CEIL
        idx = np.where(tie, fl + f(1) if up else fl, np.floor(xo + f(0.5)))
    return np.clip(idx.astype(np.int64), 0, in_size - 1)


@register("Resize")
def resize_nearest(x: np.ndarray, *, scales: Sequence[float] | None = None,
                   sizes: Sequence[int] | None = None,
                   coordinate_transformation_mode: CoordinateTransform =
                   CoordinateTransform.HALF_PIXEL,
                   nearest_mode: NearestMode = NearestMode.ROUND_PREFER_FLOOR) -> np.ndarray:
    """ONNX Resize with mode="nearest" on a quantized tensor (O15); same qparams in and out.

    Exactly one of `scales` / `sizes` (one entry per axis of `x`). With `scales` the output
    size is floor(in * scale); with `sizes` the scale is float32(out) / float32(in). The
    source coordinate of output index i is computed in float32 (as ONNX Runtime does),
    rounded by `nearest_mode` and clamped to [0, in - 1].

    Examples
    --------
    >>> resize_nearest(np.array([1, 2], np.int8), scales=[2.0]).tolist()
    [1, 1, 2, 2]
    """
    x = np.asarray(x)
    if (scales is None) == (sizes is None):
        raise ValueError("resize: give exactly one of scales and sizes")
    if scales is not None:
        sc = [np.float32(s) for s in scales]
        out = [int(np.floor(np.float64(n) * np.float64(s))) for n, s in zip(x.shape, sc,
                                                                             strict=True)]
    else:
        assert sizes is not None
        out = [int(v) for v in sizes]
        sc = [np.float32(o) / np.float32(n) if n else np.float32(1)
              for o, n in zip(out, x.shape, strict=True)]
    if len(out) != x.ndim:
        raise ValueError(f"resize: need one scale or size per axis of {x.shape}")
    y = x
    for ax, (n, o, s) in enumerate(zip(x.shape, out, sc, strict=True)):
        if n == o and s == 1:
            continue
        idx = nearest_indices(n, o, float(s), coordinate_transformation_mode, nearest_mode)
        y = np.take(y, idx, axis=ax)
    return y


@register("DepthToSpace")
def depth_to_space(x: np.ndarray, *, blocksize: int, mode: str = "DCR",
                   layout: Layout = Layout.CHANNELS_FIRST) -> np.ndarray:
    """ONNX DepthToSpace (DCR or CRD) on a 4-d quantized tensor (O16).

    Examples
    --------
    >>> x = np.arange(4, dtype=np.uint8).reshape(1, 4, 1, 1)
    >>> depth_to_space(x, blocksize=2)[0, 0].tolist()
    [[0, 1], [2, 3]]
    """
    xc = to_channels_first(np.asarray(x), layout)
    n, c, h, w = xc.shape
    b = blocksize
    if c % (b * b):
        raise ValueError(f"depth_to_space: {c} channels not divisible by blocksize^2={b * b}")
    if mode == "DCR":
        t = xc.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    elif mode == "CRD":
        t = xc.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    else:
        raise ValueError(f"depth_to_space: unknown mode {mode!r}")
    y = t.reshape(n, c // (b * b), h * b, w * b)
    return np.ascontiguousarray(from_channels_first(y, layout))


@register("SpaceToDepth")
def space_to_depth(x: np.ndarray, *, blocksize: int,
                   layout: Layout = Layout.CHANNELS_FIRST) -> np.ndarray:
    """ONNX SpaceToDepth on a 4-d quantized tensor (O16), the inverse of DCR DepthToSpace."""
    xc = to_channels_first(np.asarray(x), layout)
    n, c, h, w = xc.shape
    b = blocksize
    if h % b or w % b:
        raise ValueError(f"space_to_depth: spatial size {h}x{w} not divisible by {b}")
    t = xc.reshape(n, c, h // b, b, w // b, b).transpose(0, 3, 5, 1, 2, 4)
    y = t.reshape(n, c * b * b, h // b, w // b)
    return np.ascontiguousarray(from_channels_first(y, layout))
