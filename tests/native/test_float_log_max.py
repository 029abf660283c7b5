"""The native float32 Log (ONNX Runtime's: Eigen's packet log, logf on the last n % 4 values)
equals lowp.eigen_math.log bit for bit, and the native float32 ReduceMax equals
float_ops.max_reference (the maximum of the set: NaN when one is there, +0 over -0) bit for
bit, on every path and thread count; a log-mel tail (Log, ReduceMax, Clip at the maximum
minus a constant) replays as one Program with the plain run's values."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from onnx import TensorProto, helper

from lowp import eigen_math
from lowp.runtime import Session, native_backend, native_float
from lowp.runtime.backends import native_available
from lowp.runtime.float_ops import max_reference

pytestmark = pytest.mark.skipif(not native_available(), reason="the native extension is not built")
PATHS = native_backend.available_paths()
SPECIALS = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1e-45, -1e-45, 1e-38, 2.0,
                     -2.0, 3.4e38, 0.25, 0.7071067, 0.7071068, 1.0, 1.4142135], np.float32)


def _native_log(x: np.ndarray, threads: int = 1) -> np.ndarray:
    y = np.empty_like(x)
    native_backend._native.float_log(x.reshape(-1), y.reshape(-1), [], threads)
    return y


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, np.float32).view(np.uint32)


@pytest.mark.parametrize("path", PATHS)
@given(bits=hnp.arrays(np.uint32, st.integers(0, 300)), threads=st.sampled_from([1, 2]),
       specials_first=st.booleans())
def test_log_equals_eigen_form_on_any_bits(path, bits, threads, specials_first):
    """Any float32 (NaN payloads, subnormals, negatives, infinities), every length modulo 4
    (the last n % 4 values go through logf)."""
    parts = [SPECIALS, bits.view(np.float32)]
    x = np.concatenate(parts if specials_first else parts[::-1])
    with native_backend.use_path(path):
        got = _native_log(x, threads)
    np.testing.assert_array_equal(_bits(got), _bits(eigen_math.log(x)))


def test_log_sweep_of_bit_patterns_on_two_threads():
    """Every 4099th bit pattern (1M values: positive, negative, NaN, subnormal), in thread
    chunks, with a ragged tail."""
    x = (np.arange(0, 2**32, 4099, dtype=np.uint64).astype(np.uint32)[:-3]).view(np.float32)
    assert x.size % 4 != 0
    np.testing.assert_array_equal(_bits(_native_log(x, 2)), _bits(eigen_math.log(x)))


@pytest.mark.parametrize("path", PATHS)
@given(bits=hnp.arrays(np.uint32, st.integers(1, 120)), cuts=st.lists(st.integers(0, 120)),
       threads=st.sampled_from([1, 2]))
def test_log_runs_each_as_its_own_assignment(path, bits, cuts, threads):
    """Consecutive runs given by their ends (ONNX Runtime's parallel blocks and their heads):
    each run's last length % 4 values go through logf, the rest through the packets."""
    x = np.concatenate([SPECIALS, bits.view(np.float32)])
    ends = sorted({c for c in cuts if 0 < c < x.size} | {x.size})
    y = np.empty_like(x)
    with native_backend.use_path(path):
        native_backend._native.float_log(x, y, ends, threads)
    starts = [0, *ends[:-1]]
    want = np.concatenate([eigen_math.log(x[a:b]) for a, b in zip(starts, ends, strict=True)])
    np.testing.assert_array_equal(_bits(y), _bits(want))


def test_log_operator_runs_natively_and_falls_back():
    x = np.random.default_rng(0).uniform(0, 10, (3, 5)).astype(np.float32)
    native = native_float.log(x)
    assert native is not None
    with native_float.disabled():
        assert native_float.log(x) is None
    np.testing.assert_array_equal(_bits(native), _bits(eigen_math.log(x)))


_VALUES = st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.5, np.inf, -np.inf, np.nan, 1e-45, -3e38])


@st.composite
def _reductions(draw):
    shape = tuple(draw(st.lists(st.integers(1, 7), min_size=1, max_size=4)))
    x = draw(hnp.arrays(np.float32, shape, elements=_VALUES))
    if draw(st.booleans()):
        # distinct NaN payloads and signs
        bits = x.view(np.uint32)
        nan = np.isnan(x)
        payload = draw(hnp.arrays(np.uint32, shape, elements=st.integers(0, 0x3fffff)))
        sign = draw(hnp.arrays(np.uint32, shape, elements=st.sampled_from([0, 0x80000000])))
        bits[nan] = (0x7fc00000 | payload[nan] | sign[nan])
    first = draw(st.integers(0, len(shape) - 1))
    last = draw(st.integers(first, len(shape) - 1))
    return x, tuple(range(first, last + 1)), draw(st.booleans())


@pytest.mark.parametrize("path", PATHS)
@given(case=_reductions(), threads=st.sampled_from([1, 2]))
def test_reduce_max_equals_reference(path, case, threads):
    x, axes, keep = case
    with native_backend.use_path(path), native_float.threads(threads):
        got = native_float.reduce_max(x, axes, keep)
    assert got is not None
    want = max_reference(x, axes, keep)
    assert got.shape == want.shape
    np.testing.assert_array_equal(_bits(got), _bits(want))


@given(case=_reductions(), seed=st.integers(0, 2**16))
def test_reference_is_the_maximum_of_the_set(case, seed):
    """Order-free: the same bits for any order of the reduced values, the value of np.max."""
    x, axes, keep = case
    want = max_reference(x, axes, keep)
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(want, np.max(x, axis=axes, keepdims=keep))
    flat = np.moveaxis(x, axes, range(x.ndim - len(axes), x.ndim))
    rows = flat.reshape(flat.shape[:x.ndim - len(axes)] + (-1,))
    shuffled = np.random.default_rng(seed).permuted(rows, axis=-1)
    got = max_reference(shuffled, (shuffled.ndim - 1,), False)
    np.testing.assert_array_equal(_bits(got).reshape(-1), _bits(want).reshape(-1))


@pytest.mark.parametrize("path", PATHS)
def test_reduce_max_large_rows_and_spans(path):
    """Long rows and wide spans (each path's vectors and their tails; magika's
    GlobalMaxPool, (8, 508, 512) channels-last, reduces 508 rows of 512), with -0, +0
    and NaN of either sign among them."""
    rng = np.random.default_rng(2)
    for shape, axes in itertools.product([(3, 700, 5000), (2, 9000), (8, 508, 531)],
                                         [(1,), (0,)]):
        x = rng.standard_normal(shape).astype(np.float32)
        x.reshape(-1)[::997] = -0.0
        x.reshape(-1)[5::1009] = 0.0
        x.reshape(-1)[7::40013] = np.nan
        x.reshape(-1)[11::50021] = -np.nan
        with native_backend.use_path(path), native_float.threads(2):
            got = native_float.reduce_max(x, axes, False)
        assert got is not None
        np.testing.assert_array_equal(_bits(got), _bits(max_reference(x, axes, False)))


def _log_mel_tail(opset: int = 13) -> bytes:
    """Clip -> Log -> Mul -> ReduceMax -> Sub -> Clip(x, max - 80): openWakeWord's tail."""
    c = [helper.make_tensor(n, TensorProto.FLOAT, [], [v])
         for n, v in (("eps", 1e-10), ("ten", 10.0), ("range", 80.0))]
    nodes = [helper.make_node("Clip", ["x", "eps"], ["c"]),
             helper.make_node("Log", ["c"], ["l"]),
             helper.make_node("Mul", ["l", "ten"], ["m"]),
             helper.make_node("ReduceMax", ["m"], ["top"], keepdims=0),
             helper.make_node("Sub", ["top", "range"], ["low"]),
             helper.make_node("Clip", ["m", "low"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [2, 1, 9, 7])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [2, 1, 9, 7])], c)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]
                             ).SerializeToString()


def test_log_mel_tail_replays_as_one_program():
    model = _log_mel_tail()
    fast, plain = Session(model), Session(model, replay=False)
    rng = np.random.default_rng(3)
    for k in range(6):
        x = np.exp(rng.uniform(-30, 5, (2, 1, 9, 7))).astype(np.float32)
        x.reshape(-1)[k] = 0.0
        got, want = fast.run({"x": x})["y"], plain.run({"x": x})["y"]
        np.testing.assert_array_equal(_bits(got), _bits(want))
    assert fast._replayer is not None
    signature = (("x", (2, 1, 9, 7), "<f4"),)
    assert fast._replayer.programs(signature) == [6]
    assert fast._replayer.plain_steps(signature) == []
