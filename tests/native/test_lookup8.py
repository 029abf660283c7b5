"""The native 8-bit lookup (`lookup8`: one table, or one per channel of the last axis, the
per-channel tables of a quantized Add/Mul by a per-channel constant) equals numpy's
indexing on every path, for any length, channel count and thread split."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lowp.runtime import native_backend
from lowp.runtime.backends import native_available

pytestmark = pytest.mark.skipif(not native_available(), reason="the native extension is not built")
PATHS = native_backend.available_paths()


def _check(x: np.ndarray, table: np.ndarray, channels: int, threads: int) -> None:
    y = np.empty_like(x)
    native_backend._native.lookup8(x, table, y, channels, threads)
    want = table.reshape(channels, 256)[np.arange(x.size) % channels, x]
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("path", PATHS)
@given(channels=st.integers(1, 70), pixels=st.integers(0, 40), seed=st.integers(0, 2**16),
       threads=st.sampled_from([1, 2]))
def test_lookup_equals_numpy(path, channels, pixels, seed, threads):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, channels * pixels, dtype=np.uint8)
    table = rng.integers(0, 256, channels * 256, dtype=np.uint8)
    with native_backend.use_path(path):
        _check(x, table, channels, threads)


@pytest.mark.parametrize("channels", [1, 7, 24, 64, 513])
def test_thread_chunks_start_inside_a_pixel(channels):
    """Two threads split 2^18 + ... values at a multiple of 64, mid-pixel for most counts."""
    rng = np.random.default_rng(channels)
    x = rng.integers(0, 256, channels * ((1 << 19) // channels + 3), dtype=np.uint8)
    table = rng.integers(0, 256, channels * 256, dtype=np.uint8)
    _check(x, table, channels, 2)


@pytest.mark.parametrize("path", PATHS)
@given(groups=st.integers(1, 20), pixels=st.integers(0, 12), seed=st.integers(0, 2**16),
       threads=st.sampled_from([1, 2]))
def test_channel_groups_of_sixteen(path, groups, pixels, seed, threads):
    """Channel counts that are multiples of 16 (the AVX-512 gathers on the avx512vnni and
    amx paths), with the first and last entries of the first and last tables looked up."""
    channels = 16 * groups
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, channels * pixels, dtype=np.uint8)
    if pixels:
        x[[0, channels - 1]] = [0, 255]
        x[[-channels, -1]] = [255, 255]
        x[:channels][:2] = [255, 0]
    table = rng.integers(0, 256, channels * 256, dtype=np.uint8)
    with native_backend.use_path(path):
        _check(x, table, channels, threads)


@pytest.mark.parametrize("channels", [48, 80, 272])
def test_channel_groups_from_inside_a_pixel(channels):
    """Two threads' parts start at a multiple of 64 values, inside a pixel for these counts:
    the partial pixel one by one, then whole pixels by gathers."""
    rng = np.random.default_rng(channels)
    x = rng.integers(0, 256, channels * ((1 << 19) // channels + 3), dtype=np.uint8)
    table = rng.integers(0, 256, channels * 256, dtype=np.uint8)
    _check(x, table, channels, 2)
