"""The native bilinear Resizes, ONNX Runtime's 8-bit integer kernel (docs/operators.md
(O41)) and its float32 one (on NCHW planes and on channels-last data), equal their numpy
forms (lowp.runtime.float_nn._bilinear_integer and _bilinear without the extension) on
random geometries, coordinate modes, types and batch sizes (0 included), on every
instruction-set path and thread count."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lowp.runtime import float_nn, native_backend, native_float

MODES = ["half_pixel", "pytorch_half_pixel", "asymmetric", "align_corners",
         "half_pixel_symmetric"]
# values the float kernel must hand on as the numpy form does: signed zeros, infinities
# (times a zero weight: NaN), NaNs of both signs and other payloads
SPECIAL = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1e-45, -3.4e38],
                   np.float32)
SPECIAL = np.concatenate([SPECIAL, np.array([0x7FC12345, 0xFFA00001], np.uint32)
                          .view(np.float32)])


def _float_input(shape: tuple[int, ...], seed: int, special: bool) -> np.ndarray:
    """Dequantized-like values (where rounding half-way points are common) and a wide range,
    half each; with `special`, a fifth of them signed zeros, infinities and NaNs."""
    rng = np.random.default_rng(seed)
    x = np.where(rng.random(shape) < 0.5, rng.integers(-128, 128, shape) * np.float32(0.0123),
                 rng.standard_normal(shape) * np.float32(1e3)).astype(np.float32)
    if special:
        picks = rng.random(shape) < 0.2
        x[picks] = rng.choice(SPECIAL, int(picks.sum()))
    return x


@given(st.integers(0, 2), st.integers(1, 5), st.integers(1, 9), st.integers(1, 9),
       st.integers(1, 20), st.integers(1, 20), st.sampled_from(MODES),
       st.sampled_from([np.uint8, np.int8]), st.sampled_from(native_backend.available_paths()),
       st.sampled_from([1, 2]), st.integers(0, 10**6))
def test_native_bilinear_integer_equals_numpy(n, c, h, w, out_h, out_w, mode, dtype, path,
                                              threads, seed):
    info = np.iinfo(dtype)
    x = np.random.default_rng(seed).integers(info.min, info.max + 1, (n, c, h, w)).astype(dtype)
    scale_h, scale_w = np.float32(out_h) / np.float32(h), np.float32(out_w) / np.float32(w)
    with native_float.disabled():
        want = float_nn._bilinear_integer(x, out_h, out_w, scale_h, scale_w, mode)
    previous = native_float.swap_threads(threads)
    try:
        with native_backend.use_path(path):
            got = float_nn._bilinear_integer(x, out_h, out_w, scale_h, scale_w, mode)
    finally:
        native_float.swap_threads(previous)
    assert got.dtype == want.dtype and got.shape == want.shape == (n, c, out_h, out_w)
    np.testing.assert_array_equal(got, want)


@given(st.integers(0, 2), st.integers(1, 40), st.integers(1, 9), st.integers(1, 9),
       st.integers(1, 20), st.integers(1, 20), st.sampled_from(MODES),
       st.sampled_from([np.uint8, np.int8]), st.sampled_from(native_backend.available_paths()),
       st.sampled_from([1, 2]), st.integers(0, 10**6))
def test_channels_last_bilinear_integer_is_the_channels_first_one_moved(
        n, c, h, w, out_h, out_w, mode, dtype, path, threads, seed):
    """On channels-last data (ONNX Runtime's own layout for this kernel, and lowp's between
    convolutions) the native and numpy forms give the channels-first result's values, moved
    to channels-last."""
    info = np.iinfo(dtype)
    x = np.random.default_rng(seed).integers(info.min, info.max + 1, (n, c, h, w)).astype(dtype)
    x_cl = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    scale_h, scale_w = np.float32(out_h) / np.float32(h), np.float32(out_w) / np.float32(w)
    with native_float.disabled():
        want = np.moveaxis(float_nn._bilinear_integer(x, out_h, out_w, scale_h, scale_w, mode),
                           1, -1)
        numpy_cl = float_nn._bilinear_integer(x_cl, out_h, out_w, scale_h, scale_w, mode,
                                              channels_last=True)
    previous = native_float.swap_threads(threads)
    try:
        with native_backend.use_path(path):
            got = float_nn._bilinear_integer(x_cl, out_h, out_w, scale_h, scale_w, mode,
                                             channels_last=True)
    finally:
        native_float.swap_threads(previous)
    assert got.shape == numpy_cl.shape == want.shape == (n, out_h, out_w, c)
    np.testing.assert_array_equal(numpy_cl, want)
    np.testing.assert_array_equal(got, want)


def test_native_bilinear_integer_refuses_indices_out_of_range():
    """The binding checks every index and distance once, so no run reads out of bounds."""
    ext = native_backend._native
    x, y = np.zeros(4, np.uint8), np.zeros(4, np.uint8)
    good, bad = np.array([0, 1], np.int32), np.array([0, 2], np.int32)
    d = np.array([512, 512], np.int32)
    ext.bilinear_integer(x, y, [1, 2, 2, 1, 2, 2], good, good, d, d, good, good, d, d, False)
    with pytest.raises(ValueError, match="out of range"):
        ext.bilinear_integer(x, y, [1, 2, 2, 1, 2, 2], good, bad, d, d, good, good, d, d,
                             False)


@given(st.integers(0, 2), st.integers(1, 5), st.integers(1, 9), st.integers(1, 9),
       st.integers(1, 20), st.integers(1, 20), st.sampled_from(MODES),
       st.sampled_from(native_backend.available_paths()), st.sampled_from([1, 2]),
       st.booleans(), st.integers(0, 10**6))
def test_native_bilinear_float_equals_numpy(n, c, h, w, out_h, out_w, mode, path, threads,
                                            special, seed):
    """ONNX Runtime's float32 bilinear Resize (UpsampleBilinear's sum order) natively gives
    the numpy form's bits, batch sizes 0 included; dequantized-like values, where rounding
    half-way points are common, a wide range, and signed zeros, infinities and NaNs (of
    two NaNs the running sum's, as ONNX Runtime's compiled loop keeps it)."""
    x = _float_input((n, c, h, w), seed, special)
    sizes = np.array([out_h, out_w], np.int64)

    def resize() -> np.ndarray:
        return float_nn.Resize(x, None, None, sizes, axes=[2, 3], mode="linear",
                               coordinate_transformation_mode=mode, opset=18)

    with native_float.disabled():
        want = resize()
    previous = native_float.swap_threads(threads)
    try:
        with native_backend.use_path(path):
            got = resize()
    finally:
        native_float.swap_threads(previous)
    assert got.dtype == want.dtype == np.float32
    assert got.shape == want.shape == (n, c, out_h, out_w)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_native_bilinear_float_runs_and_refuses_indices_out_of_range():
    """The float kernel is the one Resize calls, and its binding checks every index once."""
    ext = native_backend._native
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    coords_h, coords_w = np.array([0.25, 1.5], np.float32), np.array([2.75, 3, 0], np.float32)
    rows = float_nn._bilinear_axis(coords_h, 4)
    cols = float_nn._bilinear_axis(coords_w, 4)
    got = native_float.bilinear_float(x, rows, cols)
    with native_float.disabled():
        assert native_float.bilinear_float(x, rows, cols) is None
        want = float_nn._bilinear(x, rows, cols)
    assert got is not None
    np.testing.assert_array_equal(got, want)
    x1, x2 = (np.ascontiguousarray(v, np.int32) for v in cols[:2])
    d1, d2 = (np.ascontiguousarray(v, np.float32) for v in cols[2:])
    y = np.zeros(3, np.float32)
    good, bad = np.array([0], np.int32), np.array([4], np.int32)
    one = np.array([0.5], np.float32)
    ext.bilinear_float(x.reshape(-1), y, [1, 4, 4, 1, 1, 3], good, good, one, one, x1, x2, d1,
                       d2)
    with pytest.raises(ValueError, match="out of range"):
        ext.bilinear_float(x.reshape(-1), y, [1, 4, 4, 1, 1, 3], good, bad, one, one, x1, x2,
                           d1, d2)
    with pytest.raises(ValueError, match="does not match"):
        ext.bilinear_float(x.reshape(-1), y, [1, 4, 4, 2, 1, 3], good, good, one, one, x1, x2,
                           d1, d2)


@given(st.integers(0, 2), st.integers(1, 70), st.integers(1, 9), st.integers(1, 9),
       st.integers(1, 20), st.integers(1, 20), st.sampled_from(MODES),
       st.sampled_from(native_backend.available_paths()), st.sampled_from([1, 2]),
       st.booleans(), st.integers(0, 10**6))
def test_channels_last_bilinear_float_is_the_channels_first_one_moved(
        n, c, h, w, out_h, out_w, mode, path, threads, special, seed):
    """A float32 linear Resize of channels-last (N, H, W, C) data, as lowp runs it between
    its channels-last convolutions (float_nn.resize_channels_last: the channel loop
    innermost, vectorised on every path), gives the bits of the numpy form on the
    channels-first data, moved to channels-last: every channel count around the vector
    widths, batch sizes 0 included, signed zeros, infinities and NaNs among the inputs."""
    x = _float_input((n, c, h, w), seed, special)
    x_cl = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    # (sizes of the resized axes only: a 0 batch has no scale of its own)
    sizes = np.array([out_h, out_w], np.int64)
    resize = {"mode": "linear", "coordinate_transformation_mode": mode, "axes": [2, 3]}
    with native_float.disabled():
        want = np.moveaxis(float_nn.Resize(x, None, None, sizes, **resize), 1, -1)
        numpy_cl = float_nn.resize_channels_last(x_cl, None, None, sizes, **resize)
    previous = native_float.swap_threads(threads)
    try:
        with native_backend.use_path(path):
            got = float_nn.resize_channels_last(x_cl, None, None, sizes, **resize)
    finally:
        native_float.swap_threads(previous)
    if (h, w) == (out_h, out_w):
        assert got is None and numpy_cl is None     # (a copy: the channels-first step's)
        return
    assert got is not None and numpy_cl is not None
    assert got.dtype == np.float32 and got.shape == want.shape == (n, out_h, out_w, c)
    np.testing.assert_array_equal(numpy_cl.view(np.uint32), want.view(np.uint32))
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("resize", [
    {"sizes": [1, 3, 5, 5], "mode": "cubic"},                      # not bilinear
    {"sizes": [1, 3, 5, 5], "mode": "linear", "antialias": 1},
    {"sizes": [1, 6, 5, 5], "mode": "linear"},                     # the channels resized
    {"sizes": [1, 3, 5, 5], "mode": "linear",
     "coordinate_transformation_mode": "tf_crop_and_resize"},
    {"sizes": [1, 3, 8, 8], "mode": "linear", "nchwc_linear": True},   # (O320)'s order
])
def test_channels_last_float_resize_leaves_other_resizes_to_the_channels_first_step(resize):
    """Only the 2-D bilinear kernel runs on channels-last data; every other Resize is left
    to the caller (a channels-first view)."""
    x = np.ones((1, 4, 4, 3), np.float32)
    sizes = np.array(resize.pop("sizes"), np.int64)
    assert float_nn.resize_channels_last(x, None, None, sizes, **resize) is None
