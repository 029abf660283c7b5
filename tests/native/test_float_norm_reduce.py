"""The native LayerNormalization rows and ReduceSum / ReduceMean (ONNX Runtime's orders)
equal their numpy forms, lowp.ort_math.layer_norm_rows and lowp.ort_math.reduce_sum, bit for
bit on every instruction-set path and thread count; those forms equal ONNX Runtime
(tests/runtime/test_ort_float_order.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowp import ort_math
from lowp.runtime import native_backend, native_float, tape
from lowp.runtime.float_ops import FLOAT_OPS

PATHS = native_backend.available_paths()


def _values(rng: np.random.Generator, shape: tuple[int, ...], kind: str) -> np.ndarray:
    """float32 test data: plain normals, a large offset (cancellation in the mean and the
    deviations), or magnitudes spread over many binades (rounding in every sum)."""
    x = rng.standard_normal(shape)
    if kind == "offset":
        x = x * 1e-3 + 1e4
    elif kind == "spread":
        x = x * np.exp2(rng.integers(-40, 40, shape))
    return x.astype(np.float32)


@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 12), n=st.integers(1, 700), seed=st.integers(0, 2**16),
       kind=st.sampled_from(["normal", "offset", "spread"]), bias=st.booleans(),
       eps=st.sampled_from([1e-5, 1e-12, 0.0]), threads=st.sampled_from([1, 2]))
def test_layer_norm_equals_its_numpy_form(path, rows, n, seed, kind, bias, eps, threads):
    rng = np.random.default_rng(seed)
    x = _values(rng, (rows, n), kind)
    scale = rng.standard_normal(n).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32) if bias else None
    with native_backend.use_path(path), native_float.threads(threads):
        got = native_float.layer_norm(x, n, scale, b, eps, (rows, 1))
    assert got is not None
    with np.errstate(invalid="ignore"):    # eps 0 on a constant row: inv = inf, y NaN
        y, mean, inv = ort_math.layer_norm_rows(x, scale, b, eps)
    for g, e in zip(got, (y, mean.reshape(rows, 1), inv.reshape(rows, 1)), strict=True):
        np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("path", PATHS)
def test_layer_norm_special_values(path):
    x = np.array([[1, 2, np.inf, 0, 5, 6, 7, 8, 9], [1, np.nan, 2, 3, 0, 0, 0, 0, 0],
                  [3e38, 3e38, 3e38, 0, 0, 0, 0, 0, 0], [-0.0] * 9, [2.5] * 9], np.float32)
    scale = np.linspace(-2, 2, 9).astype(np.float32)
    with native_backend.use_path(path), np.errstate(all="ignore"):
        got = native_float.layer_norm(x, 9, scale, None, 0.0, (5, 1))
        y, mean, inv = ort_math.layer_norm_rows(x, scale, None, 0.0)
    assert got is not None
    for g, e in zip(got, (y, mean.reshape(5, 1), inv.reshape(5, 1)), strict=True):
        np.testing.assert_array_equal(g, e)


@st.composite
def reductions(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A shape of rank 1..4 and a run of consecutive axes (what ort_math.reduce_plan
    models), sizes around the packet and group boundaries, unit axes included."""
    rank = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.sampled_from([1, 2, 3, 4, 5, 7, 8, 9, 13, 33, 130]),
                                min_size=rank, max_size=rank)))
    start = draw(st.integers(0, rank - 1))
    stop = draw(st.integers(start + 1, rank))
    return shape, tuple(range(start, stop))


@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=80, deadline=None)
@given(case=reductions(), seed=st.integers(0, 2**16), kind=st.sampled_from(["normal", "spread"]),
       keepdims=st.booleans(), mean=st.booleans(), threads=st.sampled_from([1, 2]))
def test_reduce_sum_equals_its_numpy_form(path, case, seed, kind, keepdims, mean, threads):
    shape, axes = case
    x = _values(np.random.default_rng(seed), shape, kind)
    with native_backend.use_path(path), native_float.threads(threads):
        got = native_float.reduce_sum(x, axes, keepdims, mean)
    expected = ort_math.reduce_sum(x, axes, keepdims, mean=mean)
    assert got is not None and expected is not None
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_wide_rows_split_over_threads():
    # many rows and a wide middle axis: every task boundary of both kernels is crossed
    rng = np.random.default_rng(7)
    x = rng.standard_normal((64, 37, 5000)).astype(np.float32)
    with native_float.threads(2):
        for axes in [(1,), (2,), (0,)]:
            got = native_float.reduce_sum(x, axes, True, True)
            assert got is not None
            np.testing.assert_array_equal(got, ort_math.reduce_sum(x, axes, True, mean=True))
        rows = x.reshape(-1, 5000)
        scale = rng.standard_normal(5000).astype(np.float32)
        ln = native_float.layer_norm(rows, 5000, scale, scale, 1e-5, (rows.shape[0], 1))
        assert ln is not None
        np.testing.assert_array_equal(ln[0], ort_math.layer_norm_rows(rows, scale, scale,
                                                                      1e-5)[0])


def test_operators_take_the_native_kernels():
    # the float operators reach the kernels, and give the numpy forms' values
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 6, 9, 4)).astype(np.float32)
    scale, bias = (rng.standard_normal(36).astype(np.float32) for _ in range(2))
    for op, args, attrs in [("ReduceMean", (x, np.array([1])), {}),
                            ("ReduceSum", (x, np.array([2, 3])), {"keepdims": 0}),
                            ("LayerNormalization", (x, scale.reshape(9, 4),
                                                    bias.reshape(9, 4)), {"axis": 2})]:
        got = FLOAT_OPS[op](*args, **attrs, opset=18)
        with native_float.disabled():
            expected = FLOAT_OPS[op](*args, **attrs, opset=18)
        for g, e in zip(got if isinstance(got, tuple) else (got,),
                        expected if isinstance(expected, tuple) else (expected,), strict=True):
            np.testing.assert_array_equal(g, e)
        with tape.recording() as recorded:
            FLOAT_OPS[op](*args, **attrs, opset=18)
        kernel = "float_layer_norm" if op == "LayerNormalization" else "float_reduce_sum"
        assert [fn.__name__ for fn, _ in recorded] == [kernel], op


@given(st.sampled_from(native_backend.available_paths()), st.integers(0, 2),
       st.integers(1, 9), st.lists(st.integers(1, 13), min_size=1, max_size=3),
       st.sampled_from([1, 4]), st.booleans(), st.sampled_from([1, 2]), st.integers(0, 10**6))
def test_global_average_pool_equals_its_numpy_form(path, n, c, spatial, lanes, specials,
                                                   threads, seed):
    """MLAS's global average pooling orders (NCHW: four lanes; NCHWc: in order from +0) and
    the float32 division, natively (`float_reduce_sum` forms 3 and 4) as in numpy
    (lowp.runtime.nchwc_conv.pool_sums_reference), signed zeros and infinities included."""
    from lowp.runtime.nchwc_conv import pool_sums_reference

    rng = np.random.default_rng(seed)
    x = rng.normal(0, 10, (n, c, *spatial)).astype(np.float32)
    if specials and x.size:
        flat = x.reshape(-1)
        flat[rng.integers(0, flat.size, 4)] = rng.choice(
            np.array([np.inf, -np.inf, np.nan, -0.0, 1e30], np.float32), 4)
    size = int(np.prod(spatial))
    want = (pool_sums_reference(x.reshape(n * c, size), lanes) / np.float32(size)).astype(
        np.float32).reshape(n, c, *([1] * len(spatial)))
    previous = native_float.swap_threads(threads)
    try:
        with native_backend.use_path(path), tape.recording() as calls:
            got = native_float.global_average_pool(x, lanes)
    finally:
        native_float.swap_threads(previous)
    if n == 0:
        assert got is None and not calls
        return
    assert got is not None and len(calls) == 1
    np.testing.assert_array_equal(got, want)


@given(st.sampled_from(native_backend.available_paths()), st.integers(1, 3),
       st.integers(1, 300), st.lists(st.integers(1, 13), min_size=1, max_size=3),
       st.sampled_from([1, 4]), st.booleans(), st.sampled_from([1, 2]), st.integers(0, 10**6))
def test_global_average_pool_of_channels_last_data_reads_it_in_place(
        path, n, c, spatial, lanes, specials, threads, seed):
    """`float_reduce_sum` forms 3 and 4 with inner > 1: channels-last (N, ..., C) data, each
    channel (a strided column) summed in the same order as its channels-first plane, bit
    for bit; spans of the channel axis (more than 256 channels) on threads."""
    from lowp.runtime.nchwc_conv import pool_sums_reference

    rng = np.random.default_rng(seed)
    x = rng.normal(0, 10, (n, c, *spatial)).astype(np.float32)
    if specials:
        flat = x.reshape(-1)
        flat[rng.integers(0, flat.size, 4)] = rng.choice(
            np.array([np.inf, -np.inf, np.nan, -0.0, 1e30], np.float32), 4)
    size = int(np.prod(spatial))
    want = (pool_sums_reference(x.reshape(n * c, size), lanes) / np.float32(size)).astype(
        np.float32).reshape(n, c)
    cl = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    previous = native_float.swap_threads(threads)
    try:
        with native_backend.use_path(path):
            got = native_float.global_average_pool_channels_last(cl, lanes)
    finally:
        native_float.swap_threads(previous)
    assert got is not None and got.shape == (n, *([1] * len(spatial)), c)
    np.testing.assert_array_equal(got.reshape(n, c), want)


def test_float_global_average_pool_step_on_channels_last_data_equals_channels_first():
    """The lowered float GlobalAveragePool pools a channels-last value as it is (the NCHW
    kernel's four lanes, or the NCHWc order when the channel count makes ONNX Runtime take
    that kernel) and hands on channels-last (N, 1, 1, C): the channels-first operator's
    values, transposed."""
    from lowp.runtime import nchwc_conv
    from lowp.runtime.float_nn import global_average_pool_channels_last

    rng = np.random.default_rng(5)
    block = nchwc_conv.block_size()
    for c, channels in [(88, 0), (2 * max(block, 1), 2 * max(block, 1)), (40, 0)]:
        x = rng.normal(0, 3, (2, c, 3, 96)).astype(np.float32)
        want = FLOAT_OPS["GlobalAveragePool"](x, nchwc_channels=channels)
        got = global_average_pool_channels_last(np.ascontiguousarray(np.moveaxis(x, 1, -1)),
                                                channels)
        assert got is not None and got.shape == (2, 1, 1, c)
        np.testing.assert_array_equal(np.moveaxis(got, -1, 1), want)


@pytest.mark.parametrize("shape", [(0, 3, 4, 4), (0, 2, 7)])
def test_global_average_pool_of_an_empty_batch(shape):
    """An empty batch gives an empty result (its numpy form once failed to reshape)."""
    from lowp.runtime import float_nn

    x = np.zeros(shape, np.float32)
    with native_float.disabled():
        want = float_nn.GlobalAveragePool(x)
    got = float_nn.GlobalAveragePool(x)
    assert want.shape == got.shape == shape[:2] + (1,) * (len(shape) - 2)


def test_conv_transpose_and_group_norm_of_an_empty_batch():
    from lowp.runtime import float_nn

    x = np.zeros((0, 4, 3, 3), np.float32)
    assert float_nn.ConvTranspose(x, np.ones((4, 2, 2, 2), np.float32),
                                  strides=[2, 2]).shape == (0, 2, 6, 6)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # numpy's mean of no values
        y = float_nn.GroupNormalization(x, np.ones(4, np.float32), np.zeros(4, np.float32),
                                        num_groups=2)
    assert y.shape == x.shape
