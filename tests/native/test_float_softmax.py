"""The native float softmax and log-softmax (ONNX Runtime's AVX-512F order) equal their
numpy forms, lowp.ort_math.softmax_rows and log_softmax_rows, bit for bit on every
instruction-set path; those forms equal ONNX Runtime (tests/runtime/test_ort_float_order.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lowp import ort_math
from lowp.runtime import native_backend, native_float

PATHS = native_backend.available_paths()


def _rows_form(x: np.ndarray, log: bool) -> np.ndarray:
    """The numpy form of softmax (log-softmax) over the rows of 2-D x."""
    return (ort_math.log_softmax_rows if log else ort_math.softmax_rows)(x)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("log", [False, True])
@given(rows=st.integers(1, 40), n=st.integers(1, 300), seed=st.integers(0, 2**16),
       spread=st.sampled_from([0.01, 1.0, 8.0, 60.0, 300.0]), threads=st.sampled_from([1, 2]))
def test_native_softmax_equals_its_numpy_form(path, log, rows, n, seed, spread, threads):
    x = (np.random.default_rng(seed).standard_normal((rows, n)) * spread).astype(np.float32)
    with native_backend.use_path(path), native_float.threads(threads):
        got = native_float.softmax_rows(x, log=log)
    assert got is not None
    np.testing.assert_array_equal(got, _rows_form(x, log))


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("log", [False, True])
def test_native_softmax_special_values(path, log):
    x = np.array([[1, 2, np.inf, 0], [1, np.nan, 2, 3], [-np.inf, 0, 1, 2], [-np.inf] * 4,
                  [3e38, -3e38, 0, 1], [np.inf, np.inf, 0, 0], [-100, 0, -103.9, -200]],
                 np.float32)
    with native_backend.use_path(path):
        got = native_float.softmax_rows(x, log=log)
    np.testing.assert_array_equal(got, _rows_form(x, log))


def _special(x: np.ndarray, rng: np.random.Generator, share: float) -> np.ndarray:
    """x with a share of its values replaced by -inf, +-large or NaN."""
    picks = rng.random(x.shape) < share
    values = rng.choice(np.array([-np.inf, np.inf, 3e38, -3e38, 88.0, -104.0, np.nan],
                                 np.float32), size=x.shape)
    return np.where(picks, values, x).astype(np.float32)


def _moved_form(x: np.ndarray, axis: int, log: bool) -> np.ndarray:
    """softmax_rows' numpy form on the axis moved last, moved back."""
    rows = np.moveaxis(x, axis, -1)
    flat = np.ascontiguousarray(rows).reshape(-1, rows.shape[-1])
    return np.moveaxis(_rows_form(flat, log).reshape(rows.shape), -1, axis)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("log", [False, True])
@given(shape=st.lists(st.integers(1, 40), min_size=2, max_size=4), seed=st.integers(0, 2**16),
       spread=st.sampled_from([0.01, 1.0, 8.0, 60.0, 300.0]), threads=st.sampled_from([1, 2]),
       share=st.sampled_from([0.0, 0.0, 0.05, 0.5]), data=st.data())
def test_native_softmax_over_an_inner_axis_equals_the_moved_rows(path, log, shape, seed,
                                                                  spread, threads, share, data):
    """float_softmax_axis reads the lines along a non-last axis in place, one per vector lane
    (a last block of fewer lanes through padded copies), with the row kernel's arithmetic."""
    axis = data.draw(st.integers(0, len(shape) - 2))
    rng = np.random.default_rng(seed)
    x = _special((rng.standard_normal(shape) * spread).astype(np.float32), rng, share)
    with native_backend.use_path(path), native_float.threads(threads):
        got = native_float.softmax_axis(x, axis, log=log)
    assert got is not None
    np.testing.assert_array_equal(got, _moved_form(x, axis, log))


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("shape,axis", [((1, 16, 4, 2100), 1), ((2, 16, 4, 33), 1),
                                        ((3, 1, 17), 1), ((1, 300, 5), 1), ((40, 2, 3), 0)])
def test_native_softmax_over_an_inner_axis_fixed_shapes(path, log, shape, axis):
    """A detection head's DFL softmax (16 bins over axis 1 of (1, 16, 4, 2100)), a single
    value per line, long lines (more than 16 values per partial sum) and the first axis."""
    rng = np.random.default_rng(len(shape) + axis)
    x = _special((rng.standard_normal(shape) * 6).astype(np.float32), rng, 0.01)
    with native_backend.use_path(path), native_float.threads(2):
        got = native_float.softmax_axis(x, axis, log=log)
    assert got is not None
    np.testing.assert_array_equal(got, _moved_form(x, axis, log))


def _subnormal_rows(rng: np.random.Generator, rows: int, n: int) -> np.ndarray:
    """Rows whose values lie 0-110 below their maximum: many exponentials and products
    subnormal (the attention scores of g2p_id_bert span about 400)."""
    x = -rng.random((rows, n)) * 110.0
    x[:, 0] = 0.0
    return (x + rng.standard_normal((rows, 1)) * 5).astype(np.float32)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("subnormals", ["avoid", "plain"])
@given(rows=st.integers(1, 40), n=st.integers(1, 300), seed=st.integers(0, 2**16))
def test_native_softmax_subnormal_results_equal_the_numpy_form(path, log, subnormals, rows, n,
                                                               seed):
    """Rows reaching below -60 take (`avoid`) the exponential's tiny lanes and the final
    products under 2^-90 through integer and double arithmetic, or (`plain`) the plain
    instructions: the same single rounding."""
    x = _subnormal_rows(np.random.default_rng(seed), rows, n)
    with native_backend.use_path(path), native_float.softmax_subnormals(subnormals):
        got = native_float.softmax_rows(x, log=log)
    assert got is not None
    np.testing.assert_array_equal(got, _rows_form(x, log))


def test_native_softmax_subnormal_results_equal_onnxruntime():
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    x = _subnormal_rows(np.random.default_rng(5), 1024, 32).reshape(4, 8, 32, 32)
    graph = helper.make_graph(
        [helper.make_node("Softmax", ["x"], ["y"], axis=-1)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(x.shape))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    want = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = native_float.softmax_axis(x, 3)
    assert got is not None
    tiny = (want != 0) & (np.abs(want) < np.finfo(np.float32).tiny)
    assert tiny.sum() > 1000  # the case: many subnormal results
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))



def _row_cases(rng: np.random.Generator, rows: int, n: int, kind: str) -> np.ndarray:
    """Rows of one kind: N(0, 1), spanning 0-110 below the maximum, with special values,
    or a zero maximum (+0 or -0, maybe both) above negative values."""
    if kind == "subnormal":
        return _subnormal_rows(rng, rows, n)
    x = rng.standard_normal((rows, n)).astype(np.float32)
    if kind == "special":
        return _special(x * 30, rng, 0.2)
    if kind == "zero_max":
        x = -np.abs(x)
        zeros = rng.random(x.shape) < 0.3
        signs = np.where(rng.random(x.shape) < 0.5, np.float32(0.0), np.float32(-0.0))
        return np.where(zeros, signs, x).astype(np.float32)
    return x


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("log", [False, True])
@given(rows=st.integers(1, 8), n=st.integers(1, 70), seed=st.integers(0, 2**16),
       kind=st.sampled_from(["normal", "subnormal", "special", "zero_max"]))
def test_native_softmax_short_rows_and_partial_vectors(path, log, rows, n, seed, kind):
    """Rows of 1-70 values: shorter than a vector (one partial vector), two vectors
    overlapping at the end, four chains and a rest, and the 16 sums' partial last vector."""
    x = _row_cases(np.random.default_rng(seed), rows, n, kind)
    with native_backend.use_path(path):
        got = native_float.softmax_rows(x, log=log)
    assert got is not None
    np.testing.assert_array_equal(got, _rows_form(x, log))


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("shape", [(5, 33, 3), (7, 20, 17), (3, 9, 5, 2), (17, 6, 1), (2, 70, 15)])
def test_native_softmax_over_an_inner_axis_packs_the_last_columns(path, log, shape):
    """The last columns of several outer slices (fewer than a vector's lanes each) share a
    block, a last group of fewer slices included."""
    rng = np.random.default_rng(sum(shape))
    x = _special((rng.standard_normal(shape) * 8).astype(np.float32), rng, 0.02)
    with native_backend.use_path(path):
        got = native_float.softmax_axis(x, 1, log=log)
    assert got is not None
    np.testing.assert_array_equal(got, _moved_form(x, 1, log))


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("n", [1, 7, 8, 15, 16, 17, 31, 32, 33, 47, 48, 49, 63, 64, 65, 70, 1000])
def test_native_softmax_rows_equal_onnxruntime_bit_for_bit(op, n):
    ort = pytest.importorskip("onnxruntime")
    if not ort_math.mlas_has_avx512f():
        pytest.skip("ONNX Runtime's AVX2 softmax order is not modelled")
    from onnx import TensorProto, helper

    rng = np.random.default_rng(n)
    x = np.concatenate([_row_cases(rng, 6, n, kind) for kind in ("normal", "subnormal")])
    graph = helper.make_graph(
        [helper.make_node(op, ["x"], ["y"], axis=-1)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(x.shape))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    want = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = native_float.softmax_rows(x, log=op == "LogSoftmax")
    assert got is not None
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def _causal_rows(rng: np.random.Generator, rows: int, n: int) -> np.ndarray:
    """A causal attention head's scores: row i's values past i + (n - rows) masked with
    float32's lowest value (every row reaches far below its maximum)."""
    x = rng.standard_normal((rows, n)).astype(np.float32)
    masked = np.arange(n)[None, :] > np.arange(rows)[:, None] + (n - rows)
    return np.where(masked, np.finfo(np.float32).min, x).astype(np.float32)


def _both_paths(x: np.ndarray, log: bool) -> tuple[np.ndarray, np.ndarray]:
    """softmax_rows of x with the far rows on the path avoiding subnormals, then on the
    plain one."""
    got = []
    for name in ("avoid", "plain"):
        with native_float.softmax_subnormals(name) as taken:
            assert taken == name
            y = native_float.softmax_rows(x, log=log)
        assert y is not None
        got.append(np.asarray(y))
    return got[0], got[1]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("log", [False, True])
@given(rows=st.integers(1, 40), n=st.integers(1, 300), seed=st.integers(0, 2**16),
       kind=st.sampled_from(["subnormal", "causal", "special"]),
       threads=st.sampled_from([1, 2]))
def test_native_softmax_subnormal_paths_give_the_same_bits(path, log, rows, n, seed, kind,
                                                           threads):
    """Rows reaching more than 60 below their maximum round each exponential and product
    once either way: the path without subnormal operands and the plain one give the same
    bits (so which one runs is the CPU's choice, measured)."""
    rng = np.random.default_rng(seed)
    if kind == "causal":
        x = _causal_rows(rng, rows, max(n, rows))
    elif kind == "special":
        x = _special(_subnormal_rows(rng, rows, n), rng, 0.05)
    else:
        x = _subnormal_rows(rng, rows, n)
    with native_backend.use_path(path), native_float.threads(threads):
        avoid, plain = _both_paths(x, log)
    np.testing.assert_array_equal(avoid.view(np.uint32), plain.view(np.uint32))
    np.testing.assert_array_equal(plain, _rows_form(x, log))


@pytest.mark.parametrize("path", PATHS)
def test_native_softmax_subnormal_paths_agree_over_the_whole_tiny_range(path):
    """Every x - max from -110 to -60 in steps of 2^-13 (the exponential's results from
    normal through subnormal to zero, each product with 1 / sum below 2^-26 and above),
    in rows whose sums differ (a second value from 0 to -4 below the maximum)."""
    steps = np.arange(-110.0, -60.0, 2.0**-13).astype(np.float32)
    n = 256
    body = np.resize(steps, (steps.size + n - 2) // (n - 1) * (n - 1)).reshape(-1, n - 1)
    second = -np.random.default_rng(3).random((body.shape[0], 1)).astype(np.float32) * 4
    x = np.concatenate([np.zeros((body.shape[0], 1), np.float32), body], axis=1)
    x[:, 1:2] = second
    for log in (False, True):
        with native_backend.use_path(path):
            avoid, plain = _both_paths(x, log)
        tiny = (plain != 0) & (np.abs(plain) < np.finfo(np.float32).tiny)
        assert log or tiny.sum() > 100000  # the case: subnormal results
        np.testing.assert_array_equal(avoid.view(np.uint32), plain.view(np.uint32))
    np.testing.assert_array_equal(plain, _rows_form(x, True))


def test_native_softmax_measures_a_path():
    with native_float.softmax_subnormals("measure") as taken:
        assert taken in ("avoid", "plain")
