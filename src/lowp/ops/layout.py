"""Memory layouts of activation tensors (channels first / channels last) and moves between them."""

from __future__ import annotations

import enum

import numpy as np


class Layout(enum.Enum):
    """Where the channel axis of an activation sits.

    CHANNELS_FIRST is ONNX's native layout (NCW, NCHW, NCDHW); CHANNELS_LAST puts the
    channels innermost (NWC, NHWC, NDHWC) as most int8 CPU kernels prefer.
    """

    CHANNELS_FIRST = "NCHW"
    CHANNELS_LAST = "NHWC"


def channel_axis(layout: Layout, ndim: int) -> int:
    """Index (non-negative) of the channel axis of a rank-`ndim` activation in `layout`."""
    return 1 if layout is Layout.CHANNELS_FIRST else ndim - 1


def to_channels_first(x: np.ndarray, layout: Layout) -> np.ndarray:
    """View of `x` in channels-first order (N, C, *spatial); no copy."""
    if layout is Layout.CHANNELS_FIRST:
        return x
    return np.moveaxis(x, -1, 1)


def from_channels_first(x: np.ndarray, layout: Layout) -> np.ndarray:
    """View of a channels-first `x` in `layout` order; inverse of `to_channels_first`."""
    if layout is Layout.CHANNELS_FIRST:
        return x
    return np.moveaxis(x, 1, -1)
