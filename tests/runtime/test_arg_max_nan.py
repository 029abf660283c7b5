"""ArgMax / ArgMin over values with NaNs give ONNX Runtime's indices: from the first
value, each later one taken when it is larger (smaller; select_last_index: or equal), so a
NaN is never taken and a NaN first value is kept, where numpy's argmax takes the first NaN
(docs/operators.md (O121); evals/corpus/repro/README.md item 97). Both backends, and a
native replay recorded on values without NaNs and then fed NaNs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

import lowp

from .ort_agreement import onnxruntime_run

TYPES = {np.float32: TensorProto.FLOAT, np.float64: TensorProto.DOUBLE}


def _model(op: str, shape: list[int], dtype: type, axis: int, keepdims: int,
           last: int) -> onnx.ModelProto:
    node = helper.make_node(op, ["x"], ["y"], axis=axis, keepdims=keepdims,
                            select_last_index=last)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TYPES[dtype], shape)],
        [helper.make_tensor_value_info("y", TensorProto.INT64, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _values(rng: np.random.Generator, shape: list[int], dtype: type) -> np.ndarray:
    x = rng.integers(-3, 3, shape).astype(dtype)
    x[rng.random(shape) < 0.15] = np.nan
    x[rng.random(shape) < 0.05] = -0.0
    x[rng.random(shape) < 0.05] = np.inf
    return x


def test_minimal_rows() -> None:
    x = np.array([[1.0, np.nan, 3.0, 2.0], [np.nan, 5.0, 1.0, 5.0]], np.float32)
    model = _model("ArgMax", [2, 4], np.float32, 1, 0, 0)
    want = onnxruntime_run(model, {"x": x})[0]
    assert want.tolist() == [2, 0]                  # numpy's argmax: [1, 0]
    for backend in ("reference", "native"):
        assert lowp.Session(model, backend=backend).run({"x": x})["y"].tolist() == [2, 0]


def test_a_vector_reduced_whole() -> None:
    """A 1-D input without select_last_index is ONNX Runtime's one Eigen path
    (ReduceAggregatorArgMin::aggall, Eigen's minCoeff(&index), four-lane packets whose
    kept value is std::min(std::min(p0, p2), std::min(p1, p3))): here the second packet's
    NaN index 4; the scalar rule gave 7."""
    x = np.array([-1, -1, np.inf, -0.0, np.nan, 1, 1, -2], np.float32)
    model = _model("ArgMin", [8], np.float32, 0, 0, 0)
    assert int(onnxruntime_run(model, {"x": x})[0]) == 4
    for backend in ("reference", "native"):
        assert int(lowp.Session(model, backend=backend).run({"x": x})["y"]) == 4, backend


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 31, 70])
def test_vectors_over_nans(op: str, dtype: type, n: int) -> None:
    """1-D inputs across the packet boundaries (2 float64, 4 float32 lanes), 8 draws each,
    both backends."""
    model = _model(op, [n], dtype, 0, 0, 0)
    rng = np.random.default_rng(n)
    sessions = [lowp.Session(model, backend=b) for b in ("reference", "native")]
    for _ in range(8):
        x = _values(rng, [n], dtype)
        x[rng.random(n) < 0.1] = -np.inf
        want = onnxruntime_run(model, {"x": x})[0]
        for session in sessions:
            assert int(session.run({"x": x})["y"]) == int(want), x.tolist()


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=20, deadline=None)
@given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=3), data=st.data(),
       keepdims=st.integers(0, 1), last=st.integers(0, 1), seed=st.integers(0, 2**32 - 1))
def test_nans_give_onnxruntimes_indices(op: str, dtype: type, shape: list[int],
                                        data: st.DataObject, keepdims: int, last: int,
                                        seed: int) -> None:
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    model = _model(op, shape, dtype, axis, keepdims, last)
    x = _values(np.random.default_rng(seed), shape, dtype)
    want = onnxruntime_run(model, {"x": x})[0]
    for backend in ("reference", "native"):
        got = lowp.Session(model, backend=backend).run({"x": x})["y"]
        assert got.shape == want.shape and np.array_equal(got, want), backend


@pytest.mark.parametrize(("shape", "axis"), [([16, 9], 1), ([27], 0)])
@pytest.mark.parametrize("last", [0, 1])
def test_a_replay_recorded_without_nans(last: int, shape: list[int], axis: int) -> None:
    model = _model("ArgMax", shape, np.float32, axis, 1, last)
    rng = np.random.default_rng(5)
    session = lowp.Session(model, backend="native")
    for _ in range(3):
        clean = rng.standard_normal(shape).astype(np.float32)
        session.run({"x": clean})
    x = _values(rng, shape, np.float32)
    want = onnxruntime_run(model, {"x": x})[0]
    assert np.array_equal(session.run({"x": x})["y"], want)


@pytest.mark.parametrize(("shape", "axis", "opset"), [
    ([50, 7], -1, 13), ([50, 7], 0, 13), ([6, 5, 9], 1, 13), ([6, 5, 33], 2, 13),
    ([6, 5, 9], 1, 11), ([3, 100], 1, 13), ([40, 16], 1, 13)])
def test_hardmax_over_nans(shape: list[int], axis: int, opset: int) -> None:
    """Hardmax: the row's Eigen maxCoeff (four-lane packets of the aligned buffer, a NaN
    kept only from the first packet's accumulators), then the first value equal to it, no
    1 at all when that maximum is NaN; numpy's argmax took the first NaN."""
    node = helper.make_node("Hardmax", ["x"], ["y"], axis=axis)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    rng = np.random.default_rng(sum(shape) + axis)
    x = rng.integers(-4, 4, shape).astype(np.float32)
    x[rng.random(shape) < 0.1] = np.nan
    want = onnxruntime_run(model, {"x": x})[0]
    for backend in ("reference", "native"):
        assert np.array_equal(lowp.Session(model, backend=backend).run({"x": x})["y"], want)


@pytest.mark.parametrize("largest", [0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_topk_ranks_nan_above_every_number(largest: int, dtype: type) -> None:
    """TopK (sorted): NaN ranks above +inf both ways (first when largest, last when
    smallest), equal values and NaNs by lower index; numpy's sort put NaN last when
    largest."""
    k = helper.make_tensor("k", TensorProto.INT64, [1], [3])
    node = helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=1, largest=largest)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TYPES[dtype], [30, 9])],
        [helper.make_tensor_value_info("v", TYPES[dtype], None),
         helper.make_tensor_value_info("i", TensorProto.INT64, None)], [k])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    x = _values(np.random.default_rng(11), [30, 9], dtype)
    want = onnxruntime_run(model, {"x": x})
    for backend in ("reference", "native"):
        got = lowp.Session(model, backend=backend).run({"x": x})
        assert np.array_equal(got["i"], want[1]), backend
        assert np.array_equal(got["v"], want[0], equal_nan=True), backend
