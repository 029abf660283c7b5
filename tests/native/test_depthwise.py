"""Depthwise 3x3 against lowp.ops.conv.conv on every path, over the special cases of the
uint8-quad kernel: channel blocks of 64/32/16 and their masked tails, output rows computed
in pairs or singly, strips of output pixels, padding on each side, width stride 1 and 2, and
the geometries that must fall back to the pair-row kernel (width dilation, weight zero
points). Tolerance 0."""

from __future__ import annotations

import numpy as np
import pytest

from lowp.fixedpoint import RequantMode
from lowp.ops.conv import conv
from lowp.ops.layout import Layout
from lowp.runtime.native_backend import NativeConv

from .helpers import assert_all_paths, centering_bias, random_ints, spanning_requant

# around the block widths (16, 32, 64) and their sums: every tail shape of dw_quad_block
CHANNELS = [1, 15, 16, 17, 31, 32, 33, 47, 48, 49, 63, 64, 65, 80, 96, 112, 144]
U8, I8 = np.dtype(np.uint8), np.dtype(np.int8)


def _check(x_shape: tuple[int, ...], kernel: tuple[int, ...], *, strides: tuple[int, ...],
           pads: tuple[int, ...], dilations: tuple[int, ...] | None = None,
           x_dtype: np.dtype = U8, w_dtype: np.dtype = I8, w_zp: int | None = None,
           mode: RequantMode = RequantMode.FLOAT32, out_dtype: np.dtype = U8,
           clamp: tuple[float, float] = (0.0, 1.0), seed: int = 0, threads: int = 1) -> None:
    rng = np.random.default_rng(seed)
    c = x_shape[-1]
    x = random_ints(rng, x_shape, x_dtype)
    w = random_ints(rng, (c, 1, *kernel), w_dtype)
    xi = np.iinfo(x_dtype)
    x_zp = int(rng.integers(xi.min, xi.max + 1))
    if w_zp is None:
        w_zp = 128 if w_dtype == U8 else 0  # no weight zero-point term: the quad kernel
    dil = dilations or (1,) * len(kernel)
    kw = {"strides": strides, "pads": pads, "dilations": dil, "group": c}
    bias = centering_bias(conv(x, w, None, x_zero_point=x_zp, w_zero_point=w_zp,
                               requant=None, layout=Layout.CHANNELS_LAST, **kw), rng)
    acc = conv(x, w, bias, x_zero_point=x_zp, w_zero_point=w_zp, requant=None,
               layout=Layout.CHANNELS_LAST, **kw)
    rq = spanning_requant(acc, out_dtype=out_dtype, mode=mode, per_channel=True,
                          stretch=float(rng.uniform(0.7, 1.3)), clamp=clamp)
    ref = rq.apply(acc)

    def make() -> NativeConv:
        return NativeConv(w, bias, x_zero_point=x_zp, x_dtype=x_dtype, w_zero_point=w_zp,
                          requant=rq, threads=threads, **kw)

    assert_all_paths(make, x, ref)


@pytest.mark.parametrize("c", CHANNELS)
@pytest.mark.parametrize("strides", [(1, 1), (2, 2), (1, 2), (2, 1)])
def test_channels_strides_pads(c: int, strides: tuple[int, int]) -> None:
    """Every channel tail with each stride; sizes, pads, batch and types vary per seed."""
    for seed in range(3):
        rng = np.random.default_rng(1000 * c + 10 * strides[0] + strides[1] + seed)
        pads = tuple(int(p) for p in rng.integers(0, 3, size=4))
        h = int(rng.integers(max(1, 3 - pads[0] - pads[2]), 10))
        w = int(rng.integers(max(1, 3 - pads[1] - pads[3]), 12))
        batch = int(rng.choice([0, 1, 2, 3]))
        _check((batch, h, w, c), (3, 3), strides=strides, pads=pads,
               x_dtype=[U8, I8][seed % 2], w_dtype=[I8, U8][(seed + c) % 2],
               mode=[RequantMode.FLOAT32, RequantMode.FIXEDPOINT][(seed + c) % 2],
               out_dtype=[U8, I8][(seed // 2 + c) % 2],
               clamp=[(0.0, 1.0), (0.1, 0.8)][seed % 2], seed=seed)


@pytest.mark.parametrize("w", [1, 2, 3, 31, 32, 33, 34, 63, 64, 65, 66, 67])
@pytest.mark.parametrize("stride", [1, 2])
def test_widths_around_strips(w: int, stride: int) -> None:
    """Output rows shorter and longer than a strip (32 pixels), left/right padding alone."""
    for pads, c in (((1, 1, 1, 1), 80), ((0, 0, 0, 2), 17), ((2, 2, 0, 0), 48)):
        if w + pads[1] + pads[3] < 3:
            continue
        _check((1, 4, w, c), (3, 3), strides=(1, stride), pads=pads, seed=w,
               x_dtype=I8 if w % 2 else U8)


@pytest.mark.parametrize("mode", [RequantMode.FLOAT32, RequantMode.FIXEDPOINT])
@pytest.mark.parametrize("out_dtype", [U8, I8])
@pytest.mark.parametrize("clamp", [(0.0, 1.0), (0.5, 1.0), (0.2, 0.7)])
def test_epilogue_modes(mode: RequantMode, out_dtype: np.dtype,
                        clamp: tuple[float, float]) -> None:
    """FLOAT32 with and without the float clamp (saturate_only), FIXEDPOINT, ReLU-like
    ranges, both output types."""
    _check((2, 7, 9, 70), (3, 3), strides=(1, 1), pads=(1, 1, 1, 1), mode=mode,
           out_dtype=out_dtype, clamp=clamp, x_dtype=I8, seed=5)


@pytest.mark.parametrize("strides,dilations", [((1, 1), (2, 1)), ((3, 1), (1, 1)),
                                               ((2, 2), (2, 1)), ((1, 1), (1, 2)),
                                               ((1, 3), (1, 1))])
def test_single_rows_and_fallbacks(strides: tuple[int, int],
                                   dilations: tuple[int, int]) -> None:
    """Height stride or dilation other than 1 (one output row per call, rows r * dh apart);
    width dilation 2 and width stride 3 (the pair-row kernel)."""
    for c in (16, 33, 72):
        _check((2, 11, 10, c), (3, 3), strides=strides, dilations=dilations,
               pads=(2, 1, 0, 2), seed=c, x_dtype=I8 if c % 2 else U8)


@pytest.mark.parametrize("w_zp", [3, 100])
def test_weight_zero_point_falls_back(w_zp: int) -> None:
    """A weight zero point other than 0 (int8) or 128 (uint8) needs the row-sum term."""
    _check((1, 6, 7, 40), (3, 3), strides=(1, 1), pads=(1, 1, 1, 1),
           w_dtype=U8 if w_zp == 100 else I8, w_zp=w_zp, seed=w_zp)


@pytest.mark.parametrize("c", [16, 65])
def test_conv3d_with_unit_depth_kernel(c: int) -> None:
    """A (1, 3, 3) kernel on 3-D input: depth planes, depth stride and depth padding."""
    _check((2, 5, 6, 7, c), (1, 3, 3), strides=(2, 1, 2), pads=(1, 1, 0, 0, 1, 1), seed=c)


def test_3x3x3_unchanged() -> None:
    _check((1, 4, 5, 6, 24), (3, 3, 3), strides=(1, 1, 1), pads=(1,) * 6, seed=9)


def test_threads_do_not_change_results() -> None:
    for threads in (1, 2):
        _check((2, 40, 41, 96), (3, 3), strides=(1, 1), pads=(1, 1, 1, 1), seed=3,
               threads=threads)


@pytest.mark.parametrize("shape,strides", [((1, 7, 7, 960), (1, 1)), ((1, 14, 14, 576), (2, 2)),
                                           ((2, 6, 6, 300), (1, 1)), ((1, 17, 9, 200), (2, 1)),
                                           ((3, 6, 17, 136), (1, 2))])
def test_channel_chunks_across_threads(shape: tuple[int, ...], strides: tuple[int, int]) -> None:
    """Few output rows and many channels: with two threads the tasks also split the channels
    into chunks of 64-channel blocks (the last chunk holding the tail blocks)."""
    for threads in (1, 2):
        _check(shape, (3, 3), strides=strides, pads=(1, 1, 1, 1), seed=shape[-1],
               x_dtype=I8 if shape[-1] % 3 else U8, threads=threads)
