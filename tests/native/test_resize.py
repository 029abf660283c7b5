"""The native 8-bit bilinear Resize (ONNX Runtime's integer kernel, docs/operators.md (O41))
equals its numpy form (lowp.runtime.float_nn._bilinear_integer without the extension) on
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
