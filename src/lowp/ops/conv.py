"""Quantized N-d convolution reference (1D/2D/3D, groups, dilation, asymmetric pads), im2col."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from ..errors import NodeError
from ..fixedpoint import Requant
from .layout import Layout, channel_axis, from_channels_first, to_channels_first
from .linear import accumulator, exact_matmul
from .registry import register


def conv_output_shape(in_shape: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
                      pads: Sequence[int], dilations: Sequence[int]) -> tuple[int, ...]:
    """Spatial output size (O4): floor((in + pad_begin + pad_end - ((k - 1) d + 1)) / s) + 1."""
    r = len(in_shape)
    out = []
    for i in range(r):
        span = (kernel[i] - 1) * dilations[i] + 1
        padded = in_shape[i] + pads[i] + pads[i + r]
        if padded < span:
            raise NodeError(f"conv: kernel extent {span} exceeds padded input {padded} "
                             f"on spatial axis {i}")
        out.append((padded - span) // strides[i] + 1)
    return tuple(out)


def im2col(xc: np.ndarray, kernel: Sequence[int], strides: Sequence[int],
           dilations: Sequence[int], out_shape: Sequence[int]) -> np.ndarray:
    """Patches of an already padded channels-first array: (N, C, prod(kernel), prod(out)).

    Patch element (n, c, k, l) is ``xc[n, c, o_l * s + k * d]`` per spatial axis, k running
    over kernel offsets in row-major order (matching the ONNX weight layout).
    """
    n, c = xc.shape[:2]
    length = int(np.prod(out_shape))
    cols = []
    for offs in itertools.product(*(range(k) for k in kernel)):
        sl = tuple(slice(o * d, o * d + (l - 1) * s + 1, s)
                   for o, d, s, l in zip(offs, dilations, strides, out_shape, strict=True))
        cols.append(xc[(slice(None), slice(None)) + sl].reshape(n, c, length))
    return np.stack(cols, axis=2)


@register("Conv")
def conv(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, *, x_zero_point: int,
         w_zero_point: int | np.ndarray, requant: Requant | None,
         strides: Sequence[int] | None = None, pads: Sequence[int] | None = None,
         dilations: Sequence[int] | None = None, group: int = 1,
         layout: Layout = Layout.CHANNELS_FIRST) -> np.ndarray:
    """Quantized convolution (O3)-(O5), ONNX Conv semantics on integers.

    Parameters
    ----------
    x
        Input, (N, C, *spatial) for CHANNELS_FIRST or (N, *spatial, C) for CHANNELS_LAST;
        uint8/int8/uint16/int16; spatial rank 1, 2 or 3. N may be 0.
    w
        Weights in ONNX layout (M, C / group, *kernel); int8/uint8/int16.
    bias
        int32 (M,) at scale s_x * s_w, or None.
    x_zero_point
        Zero point of `x`; it is also the padding value, so padded taps contribute 0.
    w_zero_point
        Scalar, or one per output channel (M,).
    requant
        None to return the int32 accumulators; otherwise applied per output channel.
    strides, dilations
        Per spatial axis, default 1.
    pads
        ONNX order: all begins then all ends (asymmetric allowed), default 0.
    group
        Number of groups; group == C is depthwise.
    layout
        Layout of `x` and of the result.

    Returns
    -------
    np.ndarray
        int32 accumulators or requantized values, in the layout of `x`.

    Examples
    --------
    >>> x = np.arange(4, dtype=np.uint8).reshape(1, 1, 4)
    >>> w = np.array([[[1, -1]]], np.int8)
    >>> conv(x, w, None, x_zero_point=0, w_zero_point=0, requant=None, pads=[1, 0]).tolist()
    [[[0, -1, -1, -1]]]
    """
    x = np.asarray(x)
    w = np.asarray(w)
    r = x.ndim - 2
    if not (np.issubdtype(x.dtype, np.integer) and np.issubdtype(w.dtype, np.integer)):
        raise NodeError(f"conv: integer input and weight needed, got {x.dtype}, {w.dtype}")
    if r not in (1, 2, 3):
        raise NodeError(f"conv: input must have 1 to 3 spatial axes, got shape {x.shape}")
    if w.ndim != r + 2:
        raise NodeError(f"conv: weight rank {w.ndim} does not match input rank {x.ndim}")
    strides = tuple(strides) if strides is not None else (1,) * r
    dilations = tuple(dilations) if dilations is not None else (1,) * r
    pads = tuple(pads) if pads is not None else (0,) * (2 * r)
    if len(strides) != r or len(dilations) != r or len(pads) != 2 * r:
        raise NodeError("conv: strides/dilations need one entry per spatial axis and pads two")
    xc = to_channels_first(x, layout)
    n, c = xc.shape[:2]
    m, cg = w.shape[:2]
    kernel = w.shape[2:]
    if group < 1 or c % group or m % group or cg * group != c:
        raise NodeError(f"conv: {c} input channels, weight {w.shape} and group={group} "
                         "do not agree")
    zw = np.asarray(w_zero_point, dtype=np.int64)
    if zw.ndim > 1 or (zw.ndim == 1 and zw.shape[0] != m):
        raise NodeError(f"conv: w_zero_point of shape {zw.shape} for {m} output channels")
    out_shape = conv_output_shape(xc.shape[2:], kernel, strides, pads, dilations)

    # (O3): padding with the zero point == padding (x - zx) with 0.
    xs = xc.astype(np.int64) - int(x_zero_point)
    xs = np.pad(xs, [(0, 0), (0, 0)] + [(pads[i], pads[i + r]) for i in range(r)])
    cols = im2col(xs, kernel, strides, dilations, out_shape)       # (N, C, K, L)
    kprod = cols.shape[2]
    cols = cols.reshape(n, group, cg * kprod, cols.shape[3])                # (N, G, Cg*K, L)
    ws = w.astype(np.int64) - zw.reshape((-1,) + (1,) * (w.ndim - 1))
    ws = ws.reshape(group, m // group, cg * kprod)                 # (G, M/G, Cg*K)
    acc = exact_matmul(ws[None], cols).reshape((n, m) + out_shape)
    if bias is not None:
        acc = acc + np.asarray(bias, dtype=np.int64).reshape((-1,) + (1,) * r)
    acc32 = from_channels_first(accumulator(acc, x.dtype, w.dtype), layout)
    if layout is Layout.CHANNELS_LAST:
        acc32 = np.ascontiguousarray(acc32)
    if requant is None:
        return acc32
    return requant.apply(acc32, channel_axis=channel_axis(layout, acc32.ndim))
