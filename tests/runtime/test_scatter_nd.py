"""ScatterND: the native copy-then-write kernel (lowp.runtime.native_float.scatter_nd) equals
the numpy reference (float_ops.ScatterND) bit for bit, the reference equals ONNX Runtime,
and a replayed run records the step into its Programs."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from lowp.errors import NodeError
from lowp.runtime import Session, native_float
from lowp.runtime.backends import native_available
from lowp.runtime.float_ops import ScatterND

_TYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE,
          np.dtype(np.int64): TensorProto.INT64, np.dtype(np.int32): TensorProto.INT32,
          np.dtype(np.uint8): TensorProto.UINT8, np.dtype(np.bool_): TensorProto.BOOL}
native = pytest.mark.skipif(not native_available(), reason="native extension not built")


def _values(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if dtype == np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


@st.composite
def _scatter_cases(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Data of ranks 1-4, index tuples of depth 1..rank (some negative) in 0-2 leading
    axes, updates of the right shape; duplicate tuples only with a reduction (ONNX leaves
    their order undefined with none)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    dtype = np.dtype(draw(st.sampled_from(list(_TYPES))))
    reductions = ["none"] + (["add", "mul"] if dtype in native_float.SCATTER_TYPES else [])
    reduction = draw(st.sampled_from(reductions))
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=4)))
    depth = draw(st.integers(1, len(shape)))
    lead = tuple(draw(st.lists(st.integers(1, 4), min_size=0, max_size=2)))
    count = int(np.prod(lead))
    tuples = int(np.prod(shape[:depth]))
    if reduction == "none":
        count = min(count, tuples)
        lead = (count,)
        flat = rng.permutation(tuples)[:count]
    else:
        flat = rng.integers(0, tuples, count)
    idx = np.stack(np.unravel_index(flat, shape[:depth]), axis=-1).reshape(lead + (depth,))
    negative = rng.integers(0, 2, idx.shape).astype(bool)
    idx = np.where(negative, idx - np.array(shape[:depth]), idx)
    idx = idx.astype(draw(st.sampled_from([np.int64, np.int32])))
    x = _values(rng, shape, dtype)
    updates = _values(rng, lead + shape[depth:], dtype)
    return x, idx, updates, reduction


def _ort_scatter(x: np.ndarray, idx: np.ndarray, updates: np.ndarray, reduction: str
                 ) -> np.ndarray:
    t = _TYPES[x.dtype]
    node = helper.make_node("ScatterND", ["x", "i", "u"], ["y"], reduction=reduction)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", t, list(x.shape)),
                      helper.make_tensor_value_info("i", TensorProto.INT64, list(idx.shape)),
                      helper.make_tensor_value_info("u", t, list(updates.shape))],
        [helper.make_tensor_value_info("y", t, list(x.shape))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x, "i": idx.astype(np.int64), "u": updates})[0]


@native
@given(case=_scatter_cases())
@settings(max_examples=200, deadline=None)
def test_native_scatter_nd_equals_the_reference_and_onnxruntime(case):
    x, idx, updates, reduction = case
    got = native_float.scatter_nd(x, idx, updates, reduction)
    assert got is not None
    with native_float.disabled():
        reference = ScatterND(x, idx, updates, reduction=reduction)
    assert got.dtype == reference.dtype
    np.testing.assert_array_equal(got, reference)
    np.testing.assert_array_equal(reference, _ort_scatter(x, idx, updates, reduction))


@pytest.mark.parametrize("index", [3, -4, 7])
def test_index_out_of_range_raises(index):
    # before: an index in [-2d, -d) was counted from the end twice (numpy's indexing),
    # where ONNX Runtime refuses it
    x = np.zeros((3, 2), np.float32)
    idx = np.array([[0], [index]], np.int64)
    updates = np.ones((2, 2), np.float32)
    for enabled in (True, False):
        with pytest.raises(NodeError, match="out of range"):
            if enabled:
                ScatterND(x, idx, updates)
            else:
                with native_float.disabled():
                    ScatterND(x, idx, updates)
    assert native_float.scatter_nd(x, idx, updates, "none") is None


@given(case=_scatter_cases(), reduction=st.sampled_from(["max", "min"]),
       nan_data=st.booleans())
@settings(max_examples=60, deadline=None)
def test_reference_max_min_equal_onnxruntime(case, reduction, nan_data):
    x, idx, updates, _ = case
    if x.dtype == np.bool_:
        return                      # (ONNX Runtime refuses bool with max / min)
    if nan_data and x.dtype.kind == "f":
        x = x.copy()
        x.reshape(-1)[::3] = np.nan
    with native_float.disabled():
        got = ScatterND(x, idx, updates, reduction=reduction)
    np.testing.assert_array_equal(got, _ort_scatter(x, idx, updates, reduction))


@pytest.mark.parametrize("reduction", ["max", "min"])
def test_max_min_of_nan_data_and_signed_zeros_equal_onnxruntime(reduction):
    # before: numpy's maximum.at / minimum.at kept a NaN of the data where ONNX Runtime
    # takes the update (evals/corpus/repro/README.md, 57)
    x = np.array([[0.0, -0.0, 1.0, np.nan], [2.0, np.nan, -1.0, 3.0]], np.float32)
    idx = np.array([[0], [1], [0]], np.int64)
    updates = np.array([[-0.0, 0.0, np.nan, 1.0], [np.nan, 5.0, -2.0, 3.0],
                        [0.5, -0.0, 4.0, -1.0]], np.float32)
    got = ScatterND(x, idx, updates, reduction=reduction)
    expected = _ort_scatter(x, idx, updates, reduction)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(expected))


def test_updates_of_another_shape_raise():
    # (numpy would broadcast them; ONNX Runtime refuses)
    with pytest.raises(NodeError, match="do not fit"):
        ScatterND(np.zeros((3, 2), np.float32), np.array([[0], [1]], np.int64),
                  np.ones((1, 2), np.float32))


def _decoder_model(steps: int) -> bytes:
    """Greedy decoding's output written one position at a time, as g2p-id's exported
    transformer does: ScatterND of a computed value into the previous ScatterND's result
    at constant indices, then read (a Relu of the values)."""
    from onnx import numpy_helper

    nodes, inits = [], [numpy_helper.from_array(np.ones((1, steps + 1), np.float32), "out0")]
    for t in range(steps):
        inits.append(numpy_helper.from_array(np.array([[[0, t + 1]]], np.int64), f"i{t}"))
        nodes += [helper.make_node("ReduceMax", ["x"], [f"m{t}"], axes=[1], keepdims=0),
                  helper.make_node("Add", [f"m{t}", f"out{t}_first"], [f"v{t}"]),
                  helper.make_node("Slice", [f"out{t}", "zero", "one", "one"],
                                   [f"out{t}_first"]),
                  helper.make_node("Reshape", [f"v{t}", "shape"], [f"u{t}"]),
                  helper.make_node("ScatterND", [f"out{t}", f"i{t}", f"u{t}"],
                                   [f"out{t + 1}"])]
    inits += [numpy_helper.from_array(np.array([0], np.int64), "zero"),
              numpy_helper.from_array(np.array([1], np.int64), "one"),
              numpy_helper.from_array(np.array([1, 1], np.int64), "shape")]
    nodes.append(helper.make_node("Relu", [f"out{steps}"], ["y"]))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, steps + 1])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


@native
def test_scatter_nd_steps_replay_in_programs():
    """The ScatterND steps of a replayed run are native calls in its Programs (before:
    numpy's copy and assignment from Python on every run); every run equals the plain
    run's and ONNX Runtime's."""
    model = _decoder_model(4)
    fast, plain = Session(model, threads=1), Session(model, threads=1, replay=False)
    reference = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    for seed in range(4):
        feeds = {"x": np.random.default_rng(seed).standard_normal((1, 5)).astype(np.float32)}
        got = fast.run(feeds)["y"]
        np.testing.assert_array_equal(got, plain.run(feeds)["y"])
        np.testing.assert_array_equal(got, reference.run(None, feeds)[0])
    (signature,) = fast._replayer._ready
    assert "ScatterND" not in [s.op_type for s in fast._replayer.plain_steps(signature)]
    fast.run(feeds, profile=True)
    assert "ScatterND:float" in fast.last_profile, fast.last_profile
    assert "ScatterND:float (python)" not in fast.last_profile


@native
def test_scatter_nd_index_out_of_range_in_a_program_raises():
    """An index read at run time outside the data (status of the native call) makes the
    segment run the plain way, which raises as the plain run does."""
    node = helper.make_node("ScatterND", ["x", "i", "u"], ["s"])
    relu = helper.make_node("Relu", ["s"], ["y"])
    graph = helper.make_graph(
        [node, relu], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 3]),
         helper.make_tensor_value_info("i", TensorProto.INT64, [2, 1]),
         helper.make_tensor_value_info("u", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    fast = Session(model.SerializeToString(), threads=1)
    feeds = {"x": np.ones((4, 3), np.float32), "i": np.array([[1], [-1]], np.int64),
             "u": np.full((2, 3), -2.0, np.float32)}
    for _ in range(3):
        got = fast.run(feeds)["y"]
    assert got[1].tolist() == [0, 0, 0] and got[3].tolist() == [0, 0, 0]
    assert fast._replayer.replayed_steps(next(iter(fast._replayer._ready))) > 0
    feeds["i"] = np.array([[1], [4]], np.int64)
    with pytest.raises(NodeError, match="out of range"):
        fast.run(feeds)
