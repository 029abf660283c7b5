"""ReduceMax / ReduceMin of float32 and float64 give ONNX Runtime's bits over NaNs and
signed zeros (docs/operators.md (O127); evals/corpus/repro/README.md item 103): every step
of ONNX Runtime keeps its first operand on a NaN or a tie, in Eigen's maxCoeff order over
trailing axes, its packetwise order over middle ones, row by row over leading ones, where
lowp gave NaN whenever one was reduced and +0 over -0. Both backends, 1 and 2 threads, and
a native replay recorded on values without NaNs and then fed NaNs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import lowp

from .ort_agreement import onnxruntime_run

TYPES = {np.float32: TensorProto.FLOAT, np.float64: TensorProto.DOUBLE}
NAN = np.nan


def _model(op: str, shape: list[int], dtype: type, axes: list[int],
           keepdims: int = 1) -> onnx.ModelProto:
    node = helper.make_node(op, ["x", "axes"], ["y"], keepdims=keepdims)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TYPES[dtype], shape)],
        [helper.make_tensor_value_info("y", TYPES[dtype], None)],
        initializer=[helper.make_tensor("axes", TensorProto.INT64, [len(axes)], axes)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _values(rng: np.random.Generator, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    x = rng.standard_normal(shape).astype(dtype)
    x[rng.random(shape) < 0.12] = NAN
    zero = rng.random(shape) < 0.1
    x[zero] = np.where(rng.random(shape)[zero] < 0.5, 0.0, -0.0)
    return x


def _same_bits(got: np.ndarray, want: np.ndarray) -> bool:
    return got.shape == want.shape and got.dtype == want.dtype and (
        got.tobytes() == want.tobytes())


ROWS = np.array([[1, NAN, 3, 2, -1], [NAN, 5, 1, 5, 0], [2, 3, 1, 0, NAN]], np.float32)


@pytest.mark.parametrize(("op", "axes", "want"), [
    ("ReduceMax", [1], [3, NAN, 3]), ("ReduceMax", [0], [2, NAN, 3, 5, 0]),
    ("ReduceMax", [0, 1], [5]), ("ReduceMin", [1], [-1, NAN, 0]),
    ("ReduceMin", [0], [1, NAN, 1, 0, -1])])
@pytest.mark.parametrize("backend", ["reference", "native"])
def test_minimal_rows(op: str, axes: list[int], want: list[float], backend: str) -> None:
    model = _model(op, [3, 5], np.float32, axes, keepdims=0)
    ort = onnxruntime_run(model, {"x": ROWS})[0]
    np.testing.assert_array_equal(ort.ravel(), np.array(want, np.float32))
    got = lowp.Session(model, backend=backend).run({"x": ROWS})["y"]
    assert _same_bits(got, ort)


@pytest.mark.parametrize("backend", ["reference", "native"])
def test_the_first_zero_of_a_tie(backend: str) -> None:
    x = np.array([[-0.0, 0.0, -1, -2, -3], [0.0, -0.0, -1, -2, -3]], np.float32)
    model = _model("ReduceMax", [2, 5], np.float32, [1])
    want = onnxruntime_run(model, {"x": x})[0]
    assert np.signbit(want.ravel()).tolist() == [True, False]    # lowp gave +0, +0
    assert _same_bits(lowp.Session(model, backend=backend).run({"x": x})["y"], want)


CASES = [((3, 37), [1]), ((37, 3), [0]), ((2, 9, 3), [1]), ((2, 17, 8), [1]),
         ((3, 13, 7), [1]), ((1, 9, 5), [1]), ((2, 3, 21), [0, 1, 2]), ((9, 2, 5), [0, 2]),
         ((2, 6, 4, 3), [0, 2]), ((9, 1, 5), [0, 2]), ((3, 6, 1, 4), [1, 2]),
         ((5, 4, 6), [1, 2]), ((4, 66), [0, 1]), ((3, 70), [1])]


@pytest.mark.parametrize(("shape", "axes"), CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nans_and_zeros_give_onnxruntimes_bits(shape: tuple[int, ...], axes: list[int],
                                               dtype: type) -> None:
    rng = np.random.default_rng(sum(shape) * 7 + len(axes))
    for op in ("ReduceMax", "ReduceMin"):
        model = _model(op, list(shape), dtype, axes)
        for threads in (1, 2):
            sessions = [lowp.Session(model, backend=b, threads=threads)
                        for b in ("reference", "native")]
            for _ in range(4):
                x = _values(rng, shape, dtype)
                want = onnxruntime_run(model, {"x": x}, threads)[0]
                for session in sessions:
                    assert _same_bits(session.run({"x": x})["y"], want), (op, threads)


@pytest.mark.parametrize(("shape", "axes"), [((16, 9), [1]), ((3, 12, 8), [1]),
                                             ((7, 6, 5), [0, 2]), ((12, 5), [0])])
def test_a_replay_recorded_without_nans(shape: tuple[int, ...], axes: list[int]) -> None:
    model = _model("ReduceMax", list(shape), np.float32, axes)
    rng = np.random.default_rng(11)
    session = lowp.Session(model, backend="native")
    for _ in range(3):
        session.run({"x": rng.standard_normal(shape).astype(np.float32)})
    for _ in range(3):
        x = _values(rng, shape, np.float32)
        want = onnxruntime_run(model, {"x": x})[0]
        assert _same_bits(session.run({"x": x})["y"], want)
