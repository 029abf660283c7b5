"""A float Conv that ONNX Runtime runs as im2col + MLAS SGEMM (1-D, 2-D with weights it does
not take to NCHWc, 3-D) or with its NCHWc kernels (2-D), between float Relus as lowp's QDQ
file leaves silero_vad's encoder Conv, is replayed inside a native Program from the third run
on, with ONNX Runtime's outputs bit for bit on every run."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session, native_float
from lowp.runtime.backends import native_available
from tests.runtime.ort_agreement import onnxruntime_run

pytestmark = pytest.mark.skipif(
    not native_available() or not hasattr(native_float._extension(), "float_conv_im2col"),
    reason="the native extension is not built")


def _qdq_conv(x_shape: list[int], w: np.ndarray, b: np.ndarray | None,
              **attrs: object) -> onnx.ModelProto:
    """x -> Q -> DQ -> Relu -> float Conv (constant float weights) -> Relu -> Q -> DQ -> y."""
    inits = [numpy_helper.from_array(w, "w"),
             numpy_helper.from_array(np.float32(0.05), "xs"),
             numpy_helper.from_array(np.uint8(128), "xz"),
             numpy_helper.from_array(np.float32(0.1), "ys"),
             numpy_helper.from_array(np.uint8(120), "yz")]
    conv_inputs = ["xr", "w"]
    if b is not None:
        inits.append(numpy_helper.from_array(b, "b"))
        conv_inputs.append("b")
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("Relu", ["xd"], ["xr"]),
             helper.make_node("Conv", conv_inputs, ["c"], **attrs),
             helper.make_node("Relu", ["c"], ["cr"]),
             helper.make_node("QuantizeLinear", ["cr", "ys", "yz"], ["cq"]),
             helper.make_node("DequantizeLinear", ["cq", "ys", "yz"], ["y"])]
    graph = helper.make_graph(
        nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * len(x_shape))],
        inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


CASES = {
    "1-D, padded, like silero_vad's encoder": (
        [1, 64, 33], (128, 64, 3), True, {"pads": [1, 1]}),
    "1-D, strided, dilated, grouped": (
        [2, 6, 40], (4, 3, 3), False, {"strides": [2], "dilations": [2], "group": 2}),
    "1-D pointwise": ([1, 16, 20], (8, 16, 1), True, {}),
    # (18 input channels: more than an NCHWc block, not a multiple of 4)
    "2-D that ONNX Runtime keeps in NCHW": (
        [1, 18, 6, 5], (8, 18, 3, 3), True, {"pads": [1, 1, 1, 1], "strides": [1, 2]}),
    "3-D": ([1, 3, 5, 6, 7], (4, 3, 2, 3, 2), True, {"pads": [0, 1, 1, 1, 0, 0]}),
    # 2-D ones ONNX Runtime takes to its NCHWc kernels (lowp.runtime.nchwc_conv)
    "2-D in the NCHWc order": (
        [2, 32, 9, 20], (48, 32, 3, 3), True, {"pads": [1, 1, 1, 1]}),
    "2-D depthwise in the NCHWc order": (
        [1, 32, 7, 21], (32, 1, 3, 3), False, {"pads": [1, 1, 1, 1], "strides": [1, 2],
                                                "group": 32}),
    "2-D image stem in the NCHWc order": (
        [1, 3, 12, 12], (16, 3, 3, 3), True, {"pads": [1, 1, 1, 1], "strides": [2, 2]}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_float_conv_replays_in_a_program_with_onnxruntime_outputs(name):
    x_shape, w_shape, bias, attrs = CASES[name]
    rng = np.random.default_rng(7)
    w = (rng.standard_normal(w_shape) * 0.2).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32) if bias else None
    model = _qdq_conv(x_shape, w, b, **attrs)
    session = Session(model.SerializeToString())
    for run in range(4):
        feeds = {"x": (rng.standard_normal(x_shape) * 2).astype(np.float32)}
        ours = session.run(feeds)["y"]
        np.testing.assert_array_equal(ours, onnxruntime_run(model, feeds)[0],
                                      err_msg=f"run {run}")
    replayer = session._replayer
    assert replayer is not None
    signature = (("x", tuple(x_shape), "<f4"),)
    assert ("Conv", "float") in [(s.op_type, s.kind) for s in replayer.steps]
    assert replayer.plain_steps(signature) == []
    assert replayer.native_only(signature)


def test_without_the_native_conv_the_step_runs_from_python():
    """The same model with the kernel disabled: still ONNX Runtime's outputs, but the Conv
    is a plain step (what the native kernel removes)."""
    x_shape, w_shape, bias, attrs = CASES["1-D, padded, like silero_vad's encoder"]
    rng = np.random.default_rng(8)
    w = (rng.standard_normal(w_shape) * 0.2).astype(np.float32)
    model = _qdq_conv(x_shape, w, rng.standard_normal(w_shape[0]).astype(np.float32), **attrs)
    session = Session(model.SerializeToString())
    with native_float.disabled():
        for _ in range(3):
            feeds = {"x": (rng.standard_normal(x_shape) * 2).astype(np.float32)}
            np.testing.assert_array_equal(session.run(feeds)["y"],
                                          onnxruntime_run(model, feeds)[0])
    signature = (("x", tuple(x_shape), "<f4"),)
    assert "Conv" in [s.op_type for s in session._replayer.plain_steps(signature)]
