"""The native index-map copy (`take`, lowp.runtime.moves: y[i] = x[map[i]], or fill[-1 -
map[i]] for a negative entry) equals numpy's indexing bit for bit, whether it copies element
by element or, where the map holds long runs of consecutive indices (a nearest upsampling or
a slice of channels-last data: whole pixels), one run at a time; every element size, both
thread counts, runs of x and of fill mixed with single elements."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowp.runtime import native_backend
from lowp.runtime.backends import native_available

pytestmark = pytest.mark.skipif(not native_available(), reason="the native extension is not built")


@st.composite
def maps(draw: st.DrawFn) -> tuple[np.ndarray, int, int]:
    """A map of runs (of x's indices, of fill's, single elements), and the sizes of x and
    fill; long runs make the run copy apply, short ones the element loop."""
    nx, nf = draw(st.integers(1, 300)), draw(st.integers(1, 20))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    long_runs = draw(st.booleans())
    parts = []
    for _ in range(draw(st.integers(0, 30))):
        kind = draw(st.sampled_from(["x", "fill", "one"]))
        if kind == "x":
            length = int(rng.integers(1, 64 if long_runs else 3))
            start = int(rng.integers(0, nx))
            parts.append(np.arange(start, min(nx, start + length)))
        elif kind == "fill":
            start = int(rng.integers(0, nf))
            length = int(rng.integers(1, nf - start + 1))
            parts.append(-1 - np.arange(start, start + length))
        else:
            parts.append(rng.integers(-nf, nx, 1))
    mapped = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    return np.ascontiguousarray(mapped, np.int32), nx, nf


@settings(max_examples=150, deadline=None)
@given(case=maps(), itemsize=st.sampled_from([1, 2, 4, 8]), threads=st.sampled_from([1, 2]),
       seed=st.integers(0, 2**32 - 1))
def test_take_equals_numpy_indexing(case, itemsize, threads, seed):
    from lowp.runtime.native_backend import _native

    mapped, nx, nf = case
    dtype = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[itemsize]
    rng = np.random.default_rng(seed)
    x = rng.integers(0, np.iinfo(dtype).max, nx, dtype=dtype, endpoint=True)
    fill = rng.integers(0, np.iinfo(dtype).max, nf, dtype=dtype, endpoint=True)
    want = np.where(mapped >= 0, x[np.clip(mapped, 0, None)], fill[np.clip(-1 - mapped, 0, None)])
    y = np.zeros(mapped.size, dtype)
    _native.take(x.view(np.uint8), mapped, fill.view(np.uint8), y.view(np.uint8), itemsize,
                 threads)
    np.testing.assert_array_equal(y, want)


def test_take_of_a_channels_last_nearest_upsampling():
    """Whole pixels of 32 one-byte channels, each copied twice per row and per column (the
    text detector's 2x nearest Resize): runs of 32 bytes."""
    from lowp.runtime.native_backend import _native

    x = np.random.default_rng(0).integers(0, 256, (1, 8, 8, 32), dtype=np.uint8)
    ids = np.arange(x.size, dtype=np.int32).reshape(x.shape)
    mapped = np.ascontiguousarray(ids.repeat(2, axis=1).repeat(2, axis=2).reshape(-1))
    y = np.zeros(mapped.size, np.uint8)
    _native.take(x.reshape(-1), mapped, np.zeros(1, np.uint8), y, 1, 1)
    np.testing.assert_array_equal(y.reshape(1, 16, 16, 32),
                                  x.repeat(2, axis=1).repeat(2, axis=2))


@settings(max_examples=100, deadline=None)
@given(batches=st.integers(1, 3), rows=st.integers(1, 70), cols=st.integers(1, 70),
       base=st.integers(0, 5), tail=st.integers(0, 5), itemsize=st.sampled_from([1, 2, 4, 8]),
       threads=st.sampled_from([1, 2]), broken=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_take_of_a_transposition_equals_numpy(batches, rows, cols, base, tail, itemsize,
                                              threads, broken, seed):
    """A map transposing the last two axes of (batches, rows, cols) data (a layout
    conversion: y[b, c, r] = x[base + (b rows + r) cols + c]) is copied tile by tile; the
    same bits as numpy's indexing, tiles cut at every size, x larger than the block read;
    and a map one entry off that pattern takes the element loop, still numpy's bits."""
    from lowp.runtime.native_backend import _native

    dtype = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[itemsize]
    rng = np.random.default_rng(seed)
    n = batches * rows * cols
    x = rng.integers(0, np.iinfo(dtype).max, base + n + tail, dtype=dtype, endpoint=True)
    ids = np.arange(n, dtype=np.int32).reshape(batches, rows, cols).transpose(0, 2, 1)
    mapped = np.ascontiguousarray(ids.reshape(-1) + base, np.int32)
    if broken and n > 1:
        k = int(rng.integers(0, n))
        mapped[k] = (mapped[k] + 1) % x.size
    y = np.zeros(n, dtype)
    _native.take(x.view(np.uint8), mapped, np.zeros(1, dtype).view(np.uint8),
                 y.view(np.uint8), itemsize, threads)
    np.testing.assert_array_equal(y, x[mapped])


@settings(max_examples=60, deadline=None)
@given(batches=st.integers(1, 3), rows=st.integers(1, 70), cols=st.integers(1, 70),
       base=st.integers(0, 5), threads=st.sampled_from([1, 2]),
       path=st.sampled_from(native_backend.available_paths()), seed=st.integers(0, 2**32 - 1))
def test_four_byte_transposition_on_every_path(batches, rows, cols, base, threads, path, seed):
    """4-byte elements (float32 of any bits: NaN payloads, -0) transposed in 8 x 8 register
    blocks on the AVX2 and wider paths and element by element on `scalar`, edges of every
    size: numpy's bits on each path."""
    from lowp.runtime.native_backend import _native

    rng = np.random.default_rng(seed)
    n = batches * rows * cols
    x = rng.integers(0, 2**32, base + n, dtype=np.uint32)
    ids = np.arange(n, dtype=np.int32).reshape(batches, rows, cols).transpose(0, 2, 1)
    mapped = np.ascontiguousarray(ids.reshape(-1) + base, np.int32)
    y = np.zeros(n, np.uint32)
    with native_backend.use_path(path):
        _native.take(x.view(np.uint8), mapped, np.zeros(1, np.uint32).view(np.uint8),
                     y.view(np.uint8), 4, threads)
    np.testing.assert_array_equal(y, x[mapped])
