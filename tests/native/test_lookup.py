"""Native 8-bit table lookup (O13) against numpy indexing, on every instruction-set path."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowp.runtime import fastops
from lowp.runtime import native_backend as nb

from .helpers import INT8_DTYPES, PATHS, random_ints


def _expected(x: np.ndarray, table: np.ndarray) -> np.ndarray:
    codes = x.view(np.uint8).astype(np.int64)
    if table.ndim == 1:
        return table[codes]
    return table[np.arange(table.shape[0]), codes]


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(0, 70), min_size=1, max_size=4), x_dtype=INT8_DTYPES,
       y_dtype=INT8_DTYPES, per_channel=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_lookup_random(shape: list[int], x_dtype: np.dtype, y_dtype: np.dtype,
                       per_channel: bool, seed: int) -> None:
    """Sizes around the 64-byte vector (tails, empty), one table or one per channel."""
    rng = np.random.default_rng(seed)
    x = random_ints(rng, tuple(shape), x_dtype)
    tshape = (shape[-1], 256) if per_channel and shape[-1] else (256,)
    table = random_ints(rng, tshape, y_dtype)
    want = _expected(x, table)
    for path in PATHS:
        with nb.use_path(path):
            got = nb.lookup(x, table)
            assert got.dtype == table.dtype and got.shape == x.shape, path
            np.testing.assert_array_equal(got, want, err_msg=path)
            arena = fastops.Arena()
            for _ in range(2):
                np.testing.assert_array_equal(fastops.lookup(x, table, arena), want, err_msg=path)


@pytest.mark.parametrize("channels", [0, 1, 3, 16, 64, 300])
def test_lookup_every_byte_and_threads(channels: int) -> None:
    """All 256 inputs through every table entry (one table, or one per channel: fewer
    channels than a vector, a multiple of it, more), large enough to split over threads."""
    rng = np.random.default_rng(3)
    x = np.tile(np.arange(256, dtype=np.uint8), 4099)
    width = channels or 64
    x = x[:len(x) // width * width].reshape(-1, width)
    table = random_ints(rng, (channels, 256) if channels else (256,), np.dtype(np.int8))
    want = _expected(x, table)
    for path in PATHS:
        with nb.use_path(path):
            for threads in (1, 2, 0):
                np.testing.assert_array_equal(nb.lookup(x, table, threads=threads), want,
                                              err_msg=f"{path} {threads}")


def test_lookup_rejects_mismatched_tables() -> None:
    x = np.zeros((2, 3), np.uint8)
    with pytest.raises(ValueError, match="does not fit"):
        nb.lookup(x, np.zeros((4, 256), np.uint8))
    with pytest.raises(ValueError, match="8-bit"):
        nb.lookup(x.astype(np.int16), np.zeros(256, np.uint8))


def _pair_expected(a: np.ndarray, b: np.ndarray, table: np.ndarray) -> np.ndarray:
    index = (a.view(np.uint8).astype(np.int64) << 8) | b.view(np.uint8)
    return table[index]


@st.composite
def _pair_operands(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Two 8-bit operands that broadcast: each axis of b is the full length or 1, b may
    have fewer axes, and either may be a channels-last view (non-contiguous)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = draw(st.lists(st.integers(0, 9), min_size=1, max_size=5))
    b_shape = [n if draw(st.booleans()) else 1 for n in shape][draw(st.integers(0, len(shape))):]
    a = random_ints(rng, tuple(shape), draw(INT8_DTYPES))
    b = random_ints(rng, tuple(b_shape), draw(INT8_DTYPES))
    if draw(st.booleans()) and a.ndim >= 3:
        a = np.moveaxis(np.ascontiguousarray(np.moveaxis(a, 1, -1)), -1, 1)
    if draw(st.booleans()):
        a, b = b, a
    return a, b


@settings(max_examples=80, deadline=None)
@given(operands=_pair_operands(), y_dtype=INT8_DTYPES, seed=st.integers(0, 2**32 - 1))
def test_lookup_pair_broadcasts_as_numpy(operands: tuple[np.ndarray, np.ndarray],
                                         y_dtype: np.dtype, seed: int) -> None:
    a, b = operands
    table = random_ints(np.random.default_rng(seed), (65536,), y_dtype)
    want = _pair_expected(a, b, table)
    for path in PATHS:
        with nb.use_path(path):
            got = nb.lookup_pair(a, b, table)
            if got is None:       # more than four axes left after merging: numpy's turn
                assert len([n for n in want.shape if n > 1]) > 4
                got = fastops.pair_lookup(a, b, table)
            assert got.dtype == table.dtype and got.shape == want.shape, path
            np.testing.assert_array_equal(got, want, err_msg=path)


def test_lookup_pair_row_kinds_and_threads() -> None:
    """The four row loops (both operands along the row, either one constant along it, both
    strided) on a shape large enough to be split over threads."""
    rng = np.random.default_rng(5)
    table = random_ints(rng, (65536,), np.dtype(np.uint8))
    x = random_ints(rng, (2, 96, 40, 48), np.dtype(np.int8))
    cases = [(x, random_ints(rng, x.shape, np.dtype(np.uint8))),
             (x, random_ints(rng, (2, 96, 1, 1), np.dtype(np.uint8))),
             (random_ints(rng, (2, 1, 1, 48), np.dtype(np.uint8)), x),
             (x[..., ::2], random_ints(rng, (2, 96, 40, 1), np.dtype(np.int8))[..., ::1]),
             # one long row (an operand of one value), split inside it between threads
             (x.reshape(-1), random_ints(rng, (1,), np.dtype(np.uint8)))]
    for a, b in cases:
        want = _pair_expected(a, b, table)
        for path in PATHS:
            with nb.use_path(path):
                for threads in (1, 2, 3):
                    np.testing.assert_array_equal(nb.lookup_pair(a, b, table, threads=threads),
                                                  want, err_msg=f"{path} {threads}")


def test_lookup_pair_rejects_other_types() -> None:
    a = np.zeros((4, 4), np.uint8)
    with pytest.raises(ValueError, match="65,536"):
        nb.lookup_pair(a, a, np.zeros(256, np.uint8))
    with pytest.raises(ValueError, match="8-bit"):
        nb.lookup_pair(a.astype(np.int16), a, np.zeros(65536, np.uint8))


@settings(max_examples=80, deadline=None)
@given(shape=st.lists(st.integers(0, 40), min_size=1, max_size=4), dtype=INT8_DTYPES,
       xs=st.sampled_from([0.002, 0.05, 0.3, 2.0]), ys=st.sampled_from([1 / 256, 1 / 255, 0.01]),
       yz=st.integers(-20, 20), threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**32 - 1))
def test_quantized_softmax_rows_equal_the_reference(shape: list[int], dtype: np.dtype,
                                                    xs: float, ys: float, yz: int,
                                                    threads: int, seed: int) -> None:
    """(O17) natively: the table of exponentials, the float32 row sum in order and the
    float64 quotient, bit for bit with lowp.ops.softmax (over any axis, rows of any length,
    empty ones)."""
    from lowp.ops.softmax import exp_table, output_multiplier, softmax

    rng = np.random.default_rng(seed)
    x = random_ints(rng, tuple(shape), dtype)
    info = np.iinfo(dtype)
    zero = int(np.clip(yz + (0 if dtype == np.int8 else 128), info.min, info.max))
    axis = int(rng.integers(0, x.ndim))
    n, inner = x.shape[axis], int(np.prod(x.shape[axis + 1:]))
    want = softmax(x, axis=axis, x_scale=xs, y_scale=ys, y_zero_point=zero)
    if n == 0 or inner == 0:
        return
    got = nb.qsoftmax_rows(x, n, exp_table(float(np.float32(xs)), n),
                           float(output_multiplier(ys)), zero, int(info.min), int(info.max),
                           threads=threads, inner=inner)
    np.testing.assert_array_equal(got, want)


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 19), n=st.integers(1024, 2600), dtype=INT8_DTYPES,
       xs=st.sampled_from([0.002, 0.05, 0.3]), ys=st.sampled_from([1 / 255, 2e-4, 1e-5]),
       spread=st.sampled_from([4, 40, 256]), seed=st.integers(0, 2**32 - 1))
def test_quantized_softmax_long_rows_equal_the_reference(rows: int, n: int, dtype: np.dtype,
                                                         xs: float, ys: float, spread: int,
                                                         seed: int) -> None:
    """Rows of 1024 values or more (a recogniser's class scores) take the row's 256
    quotients once and look the bytes up; rows run in groups of eight whose sums interleave:
    bit for bit with lowp.ops.softmax on every path, a group and a remainder of rows, with
    values close to the maximum (`spread`) so that the outputs are not all zero."""
    from lowp.ops.softmax import exp_table, output_multiplier, softmax

    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    x = rng.integers(int(info.max) - spread + 1, int(info.max) + 1, (rows, n)).astype(dtype)
    zero = int(info.min)
    want = softmax(x, axis=1, x_scale=xs, y_scale=ys, y_zero_point=zero)
    assert want.any() or ys > 1e-3
    for path in PATHS:
        with nb.use_path(path):
            for threads in (1, 2):
                got = nb.qsoftmax_rows(x, n, exp_table(float(np.float32(xs)), n),
                                       float(output_multiplier(ys)), zero, int(info.min),
                                       int(info.max), threads=threads)
                np.testing.assert_array_equal(got, want, err_msg=f"{path} {threads}")


@pytest.mark.parametrize("ys", [1 / 253.5, 1 / 255.5, 1e-30])
@pytest.mark.parametrize("dtype", [np.dtype(np.uint8), np.dtype(np.int8)])
def test_quantized_softmax_rounds_half_way_quotients_to_even(ys: float,
                                                             dtype: np.dtype) -> None:
    """Rows of two equal values: every quotient is half of floor(1 / ys), half-way between
    two integers for ys = 1/253.5 or 1/255.5 (126.5, 127.5: to even);
    an output scale of 1e-30 puts them far past the type's bounds (clamped)."""
    from lowp.ops.softmax import exp_table, output_multiplier, softmax

    x = np.full((3, 2), 7, dtype)
    info = np.iinfo(dtype)
    zero = 0 if dtype == np.int8 else 1
    want = softmax(x, axis=1, x_scale=0.05, y_scale=ys, y_zero_point=zero)
    got = nb.qsoftmax_rows(x, 2, exp_table(float(np.float32(0.05)), 2),
                           float(output_multiplier(ys)), zero, int(info.min), int(info.max))
    np.testing.assert_array_equal(got, want)
    if ys > 1e-3 and dtype == np.uint8:
        assert int(want[0, 0]) - zero == 126 + 2 * (ys < 1 / 254)     # ties to even


@pytest.mark.parametrize("channels", [3, 7, 255])
def test_per_channel_lookup_split_inside_a_pixel(channels: int) -> None:
    """Threads split the data at element counts that are not multiples of the channels, so a
    part starts and ends inside a pixel (its first and last channels run apart)."""
    rng = np.random.default_rng(channels)
    x = random_ints(rng, ((1 << 18) // channels + 1, channels), np.dtype(np.uint8))
    table = random_ints(rng, (channels, 256), np.dtype(np.uint8))
    want = _expected(x, table)
    for path in PATHS:
        with nb.use_path(path):
            for threads in (1, 2):
                np.testing.assert_array_equal(nb.lookup(x, table, threads=threads), want,
                                              err_msg=f"{path} {threads}")
