"""A quantized Transpose read by a convolution writes the convolution's channels-last input
itself, whatever its permutation (lower_elementwise._data_movement): one permutation, a view
when the channels-last result is the input's memory (magika's (0, 2, 1, 3) of (N, 512, 256,
1) before its Conv1D written as a 2-D Conv), with ONNX Runtime's outputs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session
from lowp.runtime.backends import native_available
from lowp.runtime.plan import CL
from tests.runtime.ort_agreement import onnxruntime_run

BACKENDS = ["reference", *(["native"] if native_available() else [])]


def _model(shape: tuple[int, int, int, int], perm: list[int], c_out: int,
           seed: int) -> onnx.ModelProto:
    """x -> Q -> DQ -> Transpose(perm) -> Q -> DQ -> Conv (int8 weights, 3 x 1) -> Q -> DQ."""
    rng = np.random.default_rng(seed)
    t_shape = [shape[p] for p in perm]
    w = rng.integers(-60, 60, (c_out, t_shape[1], 3, 1), dtype=np.int8)
    inits = [numpy_helper.from_array(np.array(0.05, np.float32), "s"),
             numpy_helper.from_array(np.array(128, np.uint8), "z"),
             numpy_helper.from_array(w, "wq"),
             numpy_helper.from_array(np.array(0.02, np.float32), "ws"),
             numpy_helper.from_array(np.array(0, np.int8), "wz"),
             numpy_helper.from_array(np.array(0.3, np.float32), "cs"),
             numpy_helper.from_array(np.array(120, np.uint8), "cz")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
             helper.make_node("Transpose", ["xd"], ["t"], perm=perm),
             helper.make_node("QuantizeLinear", ["t", "s", "z"], ["tq"]),
             helper.make_node("DequantizeLinear", ["tq", "s", "z"], ["td"]),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"]),
             helper.make_node("Conv", ["td", "w"], ["c"], pads=[1, 0, 1, 0]),
             helper.make_node("QuantizeLinear", ["c", "cs", "cz"], ["cq"]),
             helper.make_node("DequantizeLinear", ["cq", "cs", "cz"], ["y"])]
    graph = helper.make_graph(
        nodes, "transpose_conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * 4)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=12, deadline=None)
@given(n=st.integers(1, 2), a=st.integers(1, 9), b=st.integers(1, 9), w=st.integers(1, 3),
       perm=st.sampled_from([[0, 2, 1, 3], [0, 1, 3, 2], [0, 3, 2, 1], [0, 2, 3, 1],
                             [1, 0, 2, 3]]), seed=st.integers(0, 2**16))
def test_transpose_before_a_convolution_matches_onnxruntime(backend: str, n: int, a: int,
                                                            b: int, w: int, perm: list[int],
                                                            seed: int) -> None:
    shape = (n, a, b, w)
    t_shape = [shape[p] for p in perm]
    if t_shape[2] < 1:
        return
    model = _model(shape, perm, 4, seed)
    x = (np.random.default_rng(seed).standard_normal(shape) * 2).astype(np.float32)
    want = onnxruntime_run(model, {"x": x})[0]
    session = Session(model, backend=backend)
    for _ in range(3):      # plain, recorded and replayed runs
        np.testing.assert_array_equal(session.run({"x": x})["y"], want)


def test_magika_transpose_writes_the_convolutions_channels_last_input() -> None:
    model = _model((2, 16, 8, 1), [0, 2, 1, 3], 4, 0)
    session = Session(model)
    (step,) = [s for s in session.steps if s.op_type == "Transpose"]
    assert step.kind == "int" and step.output_layout is CL
    x = np.random.default_rng(1).standard_normal((2, 16, 8, 1)).astype(np.float32)
    np.testing.assert_array_equal(session.run({"x": x})["y"],
                                  onnxruntime_run(model, {"x": x})[0])
