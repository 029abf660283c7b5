"""Native float32 Neg and Abs (float_unary's kNeg, kAbs): np.negative and np.abs bit for bit,
NaN's sign bit included (flipped, cleared), on every path; alone and inside fused chains they
replay with no step from Python and ONNX Runtime's values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from onnx import helper

from lowp import Session
from lowp.runtime import native_backend, native_float, program
from tests.runtime.ort_agreement import onnxruntime_run

pytestmark = pytest.mark.skipif(native_float.kernels() == "none",
                                reason="the extension has no float kernels")
PATHS = native_backend.available_paths()
NUMPY = {"Neg": np.negative, "Abs": np.abs}


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, np.float32).view(np.uint32)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("op", list(NUMPY))
@given(bits=hnp.arrays(np.uint32, st.integers(1, 70)))
def test_equals_numpy_on_any_bits(path, op, bits):
    """Any bit pattern, NaNs of both signs with payloads among them; every vector tail."""
    x = bits.view(np.float32)
    y = np.empty_like(x)
    with native_backend.use_path(path):
        native_backend._native.float_unary(native_float.UNARY_CODES[op], x, y, 0.0, 0.0, 1)
    np.testing.assert_array_equal(_bits(y), _bits(NUMPY[op](x)))


def _model(nodes: list, shape: list[int]) -> object:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, shape)],
                              [helper.make_tensor_value_info("y", 1, shape)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


@pytest.mark.parametrize("nodes", [
    [helper.make_node("Neg", ["x"], ["y"])],
    [helper.make_node("Abs", ["x"], ["y"])],
    # a chain (fused): -|x| * x + x
    [helper.make_node("Abs", ["x"], ["a"]), helper.make_node("Neg", ["a"], ["n"]),
     helper.make_node("Mul", ["n", "x"], ["m"]), helper.make_node("Add", ["m", "x"], ["y"])],
], ids=["neg", "abs", "chain"])
def test_replays_natively_with_onnxruntime_outputs(nodes):
    model = _model(nodes, [3, 101])
    session = Session(model, threads=1)
    rng = np.random.default_rng(4)
    for run in range(4):
        x = rng.standard_normal((3, 101)).astype(np.float32)
        x[0, :4] = [np.nan, -np.nan, -0.0, np.inf]
        got = session.run({"x": x})["y"]
        want = onnxruntime_run(model, {"x": x})[0]
        nan = np.isnan(want)
        np.testing.assert_array_equal(np.isnan(got), nan)
        np.testing.assert_array_equal(_bits(got[~nan]), _bits(want[~nan]), err_msg=f"run {run}")
    replayer = session._replayer
    assert replayer is not None
    signature = (("x", (3, 101), "<f4"),)
    assert replayer.plain_steps(signature) == []
    assert replayer.native_only(signature)


def test_integer_inputs_stay_numpy():
    x = np.array([-3, 0, 5], np.int64)
    assert program.FLOAT_KERNELS["Neg"]([x], np.empty(3, np.float32), 1) is None
    assert program.FLOAT_KERNELS["Abs"]([x], np.empty(3, np.float32), 1) is None
