"""ScatterElements' float max / min against ONNX Runtime bit for bit: one update at a time
in the indices' order, the update taken unless the element there is larger (max) / smaller
(min), so a NaN in the data takes the update and a tie of signed zeros the update's sign
(numpy's maximum.at / minimum.at kept the NaN; evals/corpus/repro/README.md, 58)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from lowp.runtime import Session, native_float

SPECIALS = np.array([np.nan, -np.nan, 0.0, -0.0, np.inf, -np.inf, 1.0, -1.0, 2.5],
                    np.float32)


def _model(shape: list[int], index_shape: list[int], axis: int, reduction: str) -> bytes:
    node = helper.make_node("ScatterElements", ["x", "i", "u"], ["y"], axis=axis,
                            reduction=reduction)
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape),
         helper.make_tensor_value_info("i", TensorProto.INT64, index_shape),
         helper.make_tensor_value_info("u", TensorProto.FLOAT, index_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]
                             ).SerializeToString()


@st.composite
def _cases(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    rank = draw(st.integers(1, 3))
    shape = [draw(st.integers(1, 4)) for _ in range(rank)]
    axis = draw(st.integers(-rank, rank - 1))
    index_shape = [draw(st.integers(1, d)) for d in shape]
    index_shape[axis] = draw(st.integers(1, 6))       # duplicates along the axis
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    n = shape[axis]
    x = rng.choice(SPECIALS, size=shape).astype(np.float32)
    u = rng.choice(SPECIALS, size=index_shape).astype(np.float32)
    i = rng.integers(-n, n, size=index_shape).astype(np.int64)
    return x, i, u, axis


@pytest.mark.parametrize("reduction", ["max", "min"])
@given(case=_cases())
@settings(max_examples=60, deadline=None)
def test_max_min_equal_onnxruntime(reduction: str, case: tuple) -> None:  # type: ignore[type-arg]
    x, i, u, axis = case
    model = _model(list(x.shape), list(i.shape), axis, reduction)
    feeds = {"x": x, "i": i, "u": u}
    want = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    got = Session(model).run(feeds)["y"]
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_nan_data_takes_the_update() -> None:
    x = np.array([1, np.nan, -0.0, 0.0, 2, np.nan], np.float32)
    u = np.array([np.nan, 1, 0.0, -0.0, 2, np.nan], np.float32)
    i = np.arange(6, dtype=np.int64)
    for reduction in ("max", "min"):
        got = Session(_model([6], [6], 0, reduction)).run({"x": x, "i": i, "u": u})["y"]
        np.testing.assert_array_equal(got, [np.nan, 1, 0.0, -0.0, 2, np.nan])
        np.testing.assert_array_equal(np.signbit(got)[2:4], [False, True])


@pytest.mark.parametrize("reduction", ["max", "min"])
def test_graph_pooling_equal_onnxruntime(reduction: str) -> None:
    """minimol_v1's per-graph max pooling: every node's row scattered to its graph's row,
    hundreds of updates to each target (ordered in rounds of one update a target), with
    NaNs and signed zeros among them."""
    rng = np.random.default_rng(5)
    nodes, graphs, width = 300, 4, 64
    x = np.full((graphs, width), -np.inf, np.float32)
    x[1, :8] = np.nan
    u = rng.standard_normal((nodes, width)).astype(np.float32)
    u[rng.random(u.shape) < 0.02] = np.nan
    u[rng.random(u.shape) < 0.05] = 0.0
    u[rng.random(u.shape) < 0.05] = -0.0
    i = np.broadcast_to(rng.integers(0, graphs, (nodes, 1)), (nodes, width)).astype(np.int64)
    model = _model([graphs, width], [nodes, width], 0, reduction)
    feeds = {"x": x, "i": i, "u": u}
    want = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    got = Session(model).run(feeds)["y"]
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@st.composite
def _row_cases(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Axis 0, indices of full rows: one index a row (the native ScatterND path) or, for
    some, a row whose indices differ (the element path)."""
    rank = draw(st.integers(1, 3))
    shape = [draw(st.integers(1, 5)) for _ in range(rank)]
    rows = draw(st.integers(1, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    n = shape[0]
    index_shape = [rows, *shape[1:]]
    i = np.broadcast_to(rng.integers(-n, n, size=[rows] + [1] * (rank - 1)),
                        index_shape).astype(np.int64)
    if draw(st.booleans()):
        i = rng.integers(-n, n, size=index_shape).astype(np.int64)
    x = rng.standard_normal(shape).astype(np.float32)
    u = rng.choice(np.concatenate([SPECIALS, rng.standard_normal(16).astype(np.float32)]),
                   size=index_shape).astype(np.float32)
    return x, i, u


@pytest.mark.parametrize("reduction", ["add", "mul"])
@given(case=_row_cases())
@settings(max_examples=60, deadline=None)
def test_add_mul_of_rows_equal_onnxruntime(reduction: str, case: tuple) -> None:  # type: ignore[type-arg]
    """A graph network's messages: each update row added (multiplied) into its target row in
    the indices' order, as ONNX Runtime adds them element by element."""
    x, i, u = case
    model = _model(list(x.shape), list(i.shape), 0, reduction)
    feeds = {"x": x, "i": i, "u": u}
    want = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    for threads in (1, 2):
        got = Session(model, threads=threads).run(feeds)["y"]
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    with native_float.disabled():      # numpy's ufunc.at, element by element
        got = Session(model).run(feeds)["y"]
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_row_index_out_of_range_names_it() -> None:
    x = np.zeros((3, 4), np.float32)
    i = np.full((2, 4), 3, np.int64)
    with pytest.raises(Exception, match="out of range"):
        Session(_model([3, 4], [2, 4], 0, "add")).run(
            {"x": x, "i": i, "u": np.ones((2, 4), np.float32)})


@pytest.mark.parametrize("reduction", ["add", "mul"])
def test_add_mul_keep_the_data_nan(reduction: str) -> None:
    """(O172): ONNX Runtime's ScatterElements computes element op update, so a NaN update
    meeting a NaN element leaves the element's NaN (sign and payload, quieted); numpy's
    ufunc.at left the update's (as ONNX Runtime's ScatterND does)."""
    payload = np.array([0x7FC01234], np.uint32).view(np.float32)[0]
    x = np.array([[-np.nan, payload, 1.0]], np.float32)
    u = np.array([[np.nan, -np.nan, -np.nan], [2.0, np.nan, np.nan]], np.float32)
    for i in (np.zeros((2, 3), np.int64), np.array([[0, 0, 0], [-1, -1, -1]], np.int64)):
        model = _model([1, 3], [2, 3], 0, reduction)
        feeds = {"x": x, "i": i, "u": u}
        want = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(
            None, feeds)[0]
        np.testing.assert_array_equal(want.view(np.uint32), [[0xFFC00000, 0x7FC01234,
                                                              0xFFC00000]])
        for threads in (1, 2):
            got = Session(model, threads=threads).run(feeds)["y"]
            np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_row_scatter_replays() -> None:
    """Whole-row messages between float operators, run again and again (the first runs
    record the plan, later ones replay it): each run equal to ONNX Runtime's."""
    nodes = [helper.make_node("Relu", ["u"], ["r"]),
             helper.make_node("ScatterElements", ["x", "i", "r"], ["s"], axis=0,
                              reduction="add"),
             helper.make_node("Mul", ["s", "s"], ["y"])]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6, 32]),
         helper.make_tensor_value_info("i", TensorProto.INT64, [20, 32]),
         helper.make_tensor_value_info("u", TensorProto.FLOAT, [20, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [6, 32])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]
                              ).SerializeToString()
    ref = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(3)
    for threads in (1, 2):
        ours = Session(model, threads=threads)
        for _ in range(5):
            feeds = {"x": rng.standard_normal((6, 32)).astype(np.float32),
                     "i": np.broadcast_to(rng.integers(-6, 6, (20, 1)), (20, 32)).copy(),
                     "u": rng.standard_normal((20, 32)).astype(np.float32)}
            want = ref.run(None, feeds)[0]
            got = ours.run(feeds)["y"]
            np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
