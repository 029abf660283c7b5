"""Native channels-last max pool, quantized average pool and per-tensor quantize against
the numpy references (lowp.ops.pool.max_pool and average_pool, lowp.qparams.quantize),
tolerance 0, on every instruction-set path."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lowp.fixedpoint import RequantMode
from lowp.ops.layout import Layout
from lowp.ops.pool import average_pool as ref_average_pool
from lowp.ops.pool import max_pool as ref_max_pool
from lowp.qparams import QParams, QType
from lowp.qparams import quantize as ref_quantize
from lowp.runtime import fastops, native_float
from lowp.runtime import native_backend as nb

from .helpers import INT8_DTYPES, PATHS, random_ints

QTYPES = {np.dtype(np.uint8): QType.UINT8, np.dtype(np.int8): QType.INT8}


def _pool_both(x: np.ndarray, **geo: object) -> None:
    try:
        expected = ref_max_pool(x, layout=Layout.CHANNELS_LAST, **geo)  # type: ignore[arg-type]
    except Exception:  # geometry without any output: nothing to compare
        assume(False)
        return
    for path in PATHS:
        with nb.use_path(path):
            got = fastops.max_pool(x, layout=Layout.CHANNELS_LAST, **geo)  # type: ignore[arg-type]
            assert got.dtype == expected.dtype and got.shape == expected.shape, path
            np.testing.assert_array_equal(got, expected, err_msg=path)


@settings(max_examples=120, deadline=None)
@given(data=st.data(), dtype=INT8_DTYPES, n=st.integers(0, 2), h=st.integers(1, 9),
       w=st.integers(1, 9), c=st.sampled_from([1, 3, 16, 63, 64, 65, 130]),
       ceil_mode=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_max_pool_geometries(data: st.DataObject, dtype: np.dtype, n: int, h: int, w: int,
                             c: int, ceil_mode: bool, seed: int) -> None:
    kernel = [data.draw(st.integers(1, 4)) for _ in range(2)]
    strides = [data.draw(st.integers(1, 3)) for _ in range(2)]
    dilations = [data.draw(st.integers(1, 3)) for _ in range(2)]
    pads = [data.draw(st.integers(0, kernel[i % 2] - 1)) for i in range(4)]
    x = random_ints(np.random.default_rng(seed), (n, h, w, c), dtype)
    _pool_both(x, kernel_shape=kernel, strides=strides, pads=pads, dilations=dilations,
               ceil_mode=ceil_mode)


@pytest.mark.parametrize("dtype", [np.dtype(np.uint8), np.dtype(np.int8)])
def test_max_pool_resnet_stem_and_extremes(dtype: np.dtype) -> None:
    rng = np.random.default_rng(3)
    x = random_ints(rng, (1, 112, 112, 64), dtype)
    geo = dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], dilations=[1, 1],
               ceil_mode=False)
    _pool_both(x, **geo)
    info = np.iinfo(dtype)
    for value in (info.min, info.max):
        _pool_both(np.full((2, 7, 5, 70), value, dtype), **geo)
    # a window with no in-bounds tap gives the lowest value
    _pool_both(random_ints(rng, (1, 2, 2, 5), dtype), kernel_shape=[2, 2], strides=[1, 1],
               pads=[1, 1, 1, 1], dilations=[3, 3], ceil_mode=False)


def test_max_pool_threads_match() -> None:
    x = random_ints(np.random.default_rng(5), (2, 120, 96, 80), np.dtype(np.uint8))
    geo = dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], dilations=[1, 1])
    expected = ref_max_pool(x, layout=Layout.CHANNELS_LAST, ceil_mode=False, **geo)  # type: ignore[arg-type]
    out_hw = expected.shape[1:3]
    for path in PATHS:
        with nb.use_path(path):
            for threads in (1, 3, 0):
                got = nb.max_pool_2d(x, out_hw=out_hw, threads=threads, **geo)  # type: ignore[arg-type]
                np.testing.assert_array_equal(got, expected, err_msg=f"{path} {threads}")


def _quantize_both(x: np.ndarray, qp: QParams, threads: int = 1) -> None:
    expected = ref_quantize(x, qp)
    for path in PATHS:
        with nb.use_path(path):
            got = nb.quantize(x, scale=float(qp.scale), zero_point=int(qp.zero_point),
                              qmin=qp.qmin, qmax=qp.qmax, dtype=qp.qtype.numpy_dtype,
                              threads=threads)
            assert got.dtype == expected.dtype and got.shape == expected.shape, path
            np.testing.assert_array_equal(got, expected, err_msg=path)
            np.testing.assert_array_equal(fastops.quantize(x, qp), expected, err_msg=path)


def _qparams(dtype: np.dtype, scale: float, zp: int, narrow: bool = False) -> QParams:
    qt = QTYPES[np.dtype(dtype)]
    qmin, qmax = (min(max(zp, qt.qmin), qt.qmax - 3), qt.qmax - 3) if narrow else (qt.qmin, qt.qmax)
    return QParams(np.float32(scale), np.int32(zp), qt, qmin, qmax)


SPECIAL = np.array([0.0, -0.0, np.nan, -np.nan, np.inf, -np.inf, 3.4e38, -3.4e38, 1e-45,
                    -1e-45, 1e-38, 16777216.0, -16777217.0, 2.0**31, -(2.0**31), 127.5, 128.5,
                    -128.5, -127.5, 255.5, 254.5, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5],
                   np.float32)


@pytest.mark.parametrize("dtype", [np.dtype(np.uint8), np.dtype(np.int8)])
@pytest.mark.parametrize("scale", [1.0, 0.25, 0.1, 3.0, 1e-45, 1e-40, 1.2e-38, 3e38])
def test_quantize_special_values(dtype: np.dtype, scale: float) -> None:
    info = np.iinfo(dtype)
    for zp in (int(info.min), 0, int(info.max), (int(info.min) + int(info.max)) // 2 + 7):
        with np.errstate(over="ignore"):
            x = np.concatenate([SPECIAL, SPECIAL * np.float32(scale)]).astype(np.float32)
        x = np.tile(x, 5)  # whole vectors and a remainder
        for narrow in (False, True):
            _quantize_both(x, _qparams(dtype, scale, zp, narrow))


@pytest.mark.parametrize("dtype", [np.dtype(np.uint8), np.dtype(np.int8)])
def test_quantize_ties_round_to_even(dtype: np.dtype) -> None:
    k = np.arange(-400, 400, dtype=np.float32)
    for scale in (0.5, 0.25, 0.0625, 2.0, 0.1, 0.3):
        s = np.float32(scale)
        x = ((k + np.float32(0.5)) * s).astype(np.float32)
        # where the float32 division is exact the quotient is exactly k + 0.5
        for zp in (0, 3, int(np.iinfo(dtype).max) // 2):
            _quantize_both(x, _qparams(dtype, scale, zp))
    x = (k + np.float32(0.5)).astype(np.float32)
    assert np.array_equal(x / np.float32(1.0), k + np.float32(0.5))
    _quantize_both(x, _qparams(dtype, 1.0, 0))


@settings(max_examples=80, deadline=None)
@given(shape=st.lists(st.integers(0, 9), min_size=0, max_size=4), dtype=INT8_DTYPES,
       scale=st.floats(float(np.float32(1e-45)), float(np.float32(1e30)), width=32),
       spread=st.floats(1e-3, 1e6), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_quantize_random(shape: list[int], dtype: np.dtype, scale: float, spread: float,
                         seed: int, data: st.DataObject) -> None:
    assume(np.float32(scale) > 0)
    info = np.iinfo(dtype)
    zp = data.draw(st.integers(int(info.min), int(info.max)))
    rng = np.random.default_rng(seed)
    with np.errstate(over="ignore"):
        x = (rng.standard_normal(shape) * spread * scale).astype(np.float32)
    if x.size:
        x.reshape(-1)[rng.integers(0, x.size, size=min(3, x.size))] = np.nan
    _quantize_both(x, _qparams(dtype, scale, zp, narrow=data.draw(st.booleans())))


def test_quantize_large_threads_and_fallbacks() -> None:
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((1, 3, 224, 224)) * 3).astype(np.float32)
    for threads in (1, 4, 0):
        _quantize_both(x, _qparams(np.dtype(np.uint8), 0.0187, 114), threads=threads)
    # non-contiguous, float64 and per-axis inputs take the reference path
    qp = _qparams(np.dtype(np.int8), 0.05, -3)
    np.testing.assert_array_equal(fastops.quantize(x[..., ::2], qp), ref_quantize(x[..., ::2], qp))
    np.testing.assert_array_equal(fastops.quantize(x.astype(np.float64), qp),
                                  ref_quantize(x.astype(np.float64), qp))


def _quantize_to_channels_last_both(x: np.ndarray, qp: QParams, threads: int = 1) -> None:
    expected = np.ascontiguousarray(np.moveaxis(ref_quantize(x, qp), 1, -1))
    for path in PATHS:
        with nb.use_path(path):
            got = nb.quantize_to_channels_last(
                x, scale=float(qp.scale), zero_point=int(qp.zero_point), qmin=qp.qmin,
                qmax=qp.qmax, dtype=qp.qtype.numpy_dtype, threads=threads)
            assert got.dtype == expected.dtype and got.shape == expected.shape, path
            np.testing.assert_array_equal(got, expected, err_msg=path)
            arena = fastops.Arena()
            for _ in range(2):  # the second call writes into the first one's buffer
                np.testing.assert_array_equal(
                    fastops.quantize(x, qp, arena=arena, channels_last=True), expected,
                    err_msg=path)


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(0, 7), min_size=3, max_size=5), dtype=INT8_DTYPES,
       scale=st.floats(0.0009765625, 8.0, width=32), seed=st.integers(0, 2**32 - 1),
       data=st.data())
def test_quantize_to_channels_last_random(shape: list[int], dtype: np.dtype, scale: float,
                                          seed: int, data: st.DataObject) -> None:
    """Quantize of (N, C, *spatial) written as (N, *spatial, C) equals the reference
    quantize followed by the layout change, batch 0 and NaN included."""
    info = np.iinfo(dtype)
    zp = data.draw(st.integers(int(info.min), int(info.max)))
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 100 * scale).astype(np.float32)
    if x.size:
        x.reshape(-1)[rng.integers(0, x.size, size=min(3, x.size))] = np.nan
    _quantize_to_channels_last_both(x, _qparams(dtype, scale, zp, narrow=data.draw(st.booleans())))


def test_quantize_to_channels_last_large_and_threads() -> None:
    """Planes longer than one task chunk, split over threads, and many channels (blocks of
    16 channels by 16 pixels moved by unpacks, the channels and pixels left over one by
    one)."""
    rng = np.random.default_rng(12)
    for shape in ((2, 3, 150, 151), (1, 40, 33, 35), (3, 1, 20000), (1, 64, 40, 32),
                  (2, 48, 17, 3), (1, 35, 600, 9)):
        x = (rng.standard_normal(shape) * 3).astype(np.float32)
        for threads in (1, 2, 0):
            _quantize_to_channels_last_both(x, _qparams(np.dtype(np.uint8), 0.0187, 114),
                                            threads=threads)


def test_more_threads_than_cores_fill_every_output() -> None:
    """Asking for more threads than the machine has still computes every output (the work
    split into that many parts is taken in turn), into buffers pre-filled with garbage."""
    rng = np.random.default_rng(13)
    x = random_ints(rng, (2, 120, 96, 80), np.dtype(np.uint8))
    geo = dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], dilations=[1, 1])
    expected = ref_max_pool(x, layout=Layout.CHANNELS_LAST, ceil_mode=False, **geo)  # type: ignore[arg-type]
    xf = (rng.standard_normal((1, 3, 300, 301)) * 3).astype(np.float32)
    qp = _qparams(np.dtype(np.uint8), 0.02, 100)
    for threads in (nb.max_threads() + 1, 3 * nb.max_threads() + 1):
        out = np.full(expected.shape, 7, np.uint8)
        nb.max_pool_2d(x, out_hw=expected.shape[1:3], threads=threads, out=out, **geo)  # type: ignore[arg-type]
        np.testing.assert_array_equal(out, expected, err_msg=str(threads))
        q = np.full(xf.shape, 7, np.uint8)
        nb.quantize(xf, scale=0.02, zero_point=100, qmin=0, qmax=255, dtype=np.uint8,
                    threads=threads, out=q)
        np.testing.assert_array_equal(q, ref_quantize(xf, qp), err_msg=str(threads))
        qcl = np.full((1, 300, 301, 3), 7, np.uint8)
        nb.quantize_to_channels_last(xf, scale=0.02, zero_point=100, qmin=0, qmax=255,
                                     dtype=np.uint8, threads=threads, out=qcl)
        np.testing.assert_array_equal(qcl, np.moveaxis(ref_quantize(xf, qp), 1, -1))


@settings(max_examples=150, deadline=None)
@given(data=st.data(), dtype=INT8_DTYPES, n=st.integers(0, 2), h=st.integers(1, 9),
       w=st.integers(1, 9), c=st.sampled_from([1, 3, 16, 65]), channels_last=st.booleans(),
       ceil_mode=st.booleans(), include_pad=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_average_pool_geometries(data: st.DataObject, dtype: np.dtype, n: int, h: int, w: int,
                                 c: int, channels_last: bool, ceil_mode: bool,
                                 include_pad: bool, seed: int) -> None:
    """The native quantized AveragePool (O8a) equals lowp.ops.pool.average_pool in float32
    mode on every geometry (pads, dilations, ceil mode, count_include_pad), both layouts,
    every path and thread count."""
    kernel = [data.draw(st.integers(1, 4)) for _ in range(2)]
    geometry = dict(kernel_shape=kernel, strides=[data.draw(st.integers(1, 3)) for _ in "hw"],
                    pads=[data.draw(st.integers(0, kernel[i % 2] - 1)) for i in range(4)],
                    dilations=[data.draw(st.integers(1, 3)) for _ in "hw"],
                    count_include_pad=include_pad, ceil_mode=ceil_mode)
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    params = dict(x_zero_point=int(rng.integers(info.min, info.max + 1)),
                  x_scale=float(np.float32(rng.uniform(1e-3, 1))),
                  y_scale=float(np.float32(rng.uniform(1e-3, 1))),
                  y_zero_point=int(rng.integers(info.min, info.max + 1)),
                  qmin=int(info.min), qmax=int(info.max))
    layout = Layout.CHANNELS_LAST if channels_last else Layout.CHANNELS_FIRST
    x = random_ints(rng, (n, h, w, c) if channels_last else (n, c, h, w), dtype)
    try:
        want = ref_average_pool(x, layout=layout, **geometry, **params)  # type: ignore[arg-type]
    except Exception:  # geometry without any output: nothing to compare
        assume(False)
        return
    pool = fastops.make_average_pool(geometry, {**params, "mode": RequantMode.FLOAT32})
    for path in PATHS:
        with nb.use_path(path):
            for threads in (1, 2):
                with native_float.threads(threads):
                    got = pool(x, layout)
                assert got.dtype == want.dtype and got.shape == want.shape, path
                np.testing.assert_array_equal(got, want, err_msg=f"{path} {threads}")

