"""Hypothesis strategies shared by the whole test suite (qparams, integer arrays, conv geometry)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from lowp.qparams import QType

ACTIVATION_QTYPES = st.sampled_from([QType.UINT8, QType.INT8])


@st.composite
def int_arrays(draw: st.DrawFn, shape: tuple[int, ...], qtype: QType,
               lo: int | None = None, hi: int | None = None) -> np.ndarray:
    """A random integer array of `shape` in [lo, hi] (default: the qtype's range)."""
    lo = qtype.qmin if lo is None else lo
    hi = qtype.qmax if hi is None else hi
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    return rng.integers(lo, hi + 1, size=shape).astype(qtype.numpy_dtype)


# --- convolution / pooling geometry ----------------------------------------------------------

@dataclass(frozen=True)
class WindowGeometry:
    """Spatial geometry of a convolution or pooling window (ONNX attribute conventions)."""

    spatial: tuple[int, ...]
    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    pads: tuple[int, ...]          # all begins, then all ends
    dilations: tuple[int, ...]

    @property
    def rank(self) -> int:
        return len(self.spatial)


@st.composite
def window_geometries(draw: st.DrawFn, rank: int | None = None, max_kernel: int = 3,
                      max_stride: int = 3, max_dilation: int = 2,
                      max_size: int | None = None,
                      pad_below_kernel: bool = False) -> WindowGeometry:
    """Stride, asymmetric pads, kernel, dilation and a spatial size that gives >= 1 output.

    Sizes shrink with rank to keep tests fast. With `pad_below_kernel` each pad is below
    the kernel size (the ONNX pooling requirement).
    """
    r = draw(st.integers(1, 3)) if rank is None else rank
    cap = max_size if max_size is not None else {1: 12, 2: 8, 3: 5}[r]
    kernel = tuple(draw(st.integers(1, max_kernel)) for _ in range(r))
    dil = tuple(draw(st.integers(1, max_dilation)) for _ in range(r))
    strides = tuple(draw(st.integers(1, max_stride)) for _ in range(r))
    span = [(k - 1) * d + 1 for k, d in zip(kernel, dil, strict=True)]
    pmax = [(k - 1 if pad_below_kernel else s) for k, s in zip(kernel, span, strict=True)]
    pb = [draw(st.integers(0, min(p, 2))) for p in pmax]
    pe = [draw(st.integers(0, min(p, 2))) for p in pmax]
    spatial = tuple(max(draw(st.integers(1, cap)), s - b - e, 1)
                    for s, b, e in zip(span, pb, pe, strict=True))
    return WindowGeometry(spatial, kernel, strides, tuple(pb + pe), dil)


@dataclass(frozen=True)
class ConvCase:
    """A convolution problem: geometry plus batch, groups and channels per group."""

    geometry: WindowGeometry
    batch: int
    group: int
    in_per_group: int
    out_per_group: int


@st.composite
def conv_cases(draw: st.DrawFn, rank: int | None = None) -> ConvCase:
    """Conv geometry in the style of DNNLOWP's conv tests (batch 0 and depthwise included)."""
    geom = draw(window_geometries(rank=rank))
    batch = draw(st.integers(0, 2))
    if draw(st.booleans()):                       # depthwise: group == C, one channel each
        group = draw(st.integers(1, 4))
        return ConvCase(geom, batch, group, 1, draw(st.integers(1, 2)))
    return ConvCase(geom, batch, draw(st.integers(1, 3)), draw(st.integers(1, 3)),
                    draw(st.integers(1, 3)))
