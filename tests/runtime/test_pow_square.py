"""Pow of a float tensor by one exponent of 2 or 3 is ONNX Runtime's x * x or (x * x) * x,
bit for bit; by 2 it replays as a native multiply (the plain run's values)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session, fuse_float
from lowp.runtime.backends import native_available


def _model(exponent: np.ndarray, then_relu: bool = False, rank: int = 2) -> bytes:
    nodes = [helper.make_node("Pow", ["x", "e"], ["p" if then_relu else "y"])]
    if then_relu:
        nodes.append(helper.make_node("Relu", ["p"], ["y"]))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1] * (rank - 2) + ["N", 5])],
        [numpy_helper.from_array(exponent, "e")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)]
                             ).SerializeToString()


@pytest.mark.parametrize("exponent", [np.float32(2), np.float32(3), np.int64(2),
                                      np.array([3.0], np.float32)])
def test_pow_equals_onnx_runtime(exponent):
    model = _model(np.asarray(exponent))
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((4000, 5)) * np.exp(rng.uniform(-30, 30, (4000, 5)))).astype(
        np.float32)
    x[0] = [0.0, -0.0, np.inf, -np.inf, np.nan]
    want = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = Session(model, backend="reference").run({"x": x})["y"]
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.skipif(not native_available(), reason="the native extension is not built")
def test_square_replays_natively():
    model = _model(np.float32(2), then_relu=True)
    with fuse_float.disabled():         # (fused, Pow and Relu are one float_fused call)
        fast = Session(model)
    fused, plain = Session(model), Session(model, replay=False)
    rng = np.random.default_rng(1)
    for _ in range(5):
        x = (rng.standard_normal((3, 5)) * 1e19).astype(np.float32)
        want = plain.run({"x": x})["y"]
        np.testing.assert_array_equal(fast.run({"x": x})["y"], want)
        np.testing.assert_array_equal(fused.run({"x": x})["y"], want)
    assert fast._replayer is not None and fused._replayer is not None
    sig = (("x", (3, 5), "<f4"),)
    assert fast._replayer.programs(sig) == [2]
    assert fused._replayer.programs(sig) == [1]


@pytest.mark.skipif(not native_available(), reason="the native extension is not built")
def test_square_by_an_exponent_of_higher_rank_keeps_its_shape():
    """Pow(x (N, 5), e (1, 1, 1)) is (1, N, 5): that step runs the plain way."""
    model = _model(np.full((1, 1, 1), 2, np.float32), rank=3)
    fast, plain = Session(model), Session(model, replay=False)
    x = np.arange(10, dtype=np.float32).reshape(2, 5)
    for _ in range(4):
        got, want = fast.run({"x": x})["y"], plain.run({"x": x})["y"]
        assert got.shape == want.shape == (1, 2, 5)
        np.testing.assert_array_equal(got, want)
