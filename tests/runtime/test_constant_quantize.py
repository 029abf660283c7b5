"""QuantizeLinear of a float weight in the file is folded, so the Conv runs as an integer
operator, as ONNX Runtime folds and fuses it."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session


def test_conv_whose_weight_is_quantized_in_the_file():
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 4, 1, 1)).astype(np.float32), "w"),
             numpy_helper.from_array(np.array(0.01, np.float32), "ws"),
             numpy_helper.from_array(np.array(131, np.uint8), "wz"),
             numpy_helper.from_array(np.array(0.05, np.float32), "xs"),
             numpy_helper.from_array(np.array(130, np.uint8), "xz"),
             numpy_helper.from_array(np.array(0.07, np.float32), "ys"),
             numpy_helper.from_array(np.array(122, np.uint8), "yz")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("QuantizeLinear", ["w", "ws", "wz"], ["wq"]),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"]),
             helper.make_node("Conv", ["xd", "wd"], ["c"]),
             helper.make_node("QuantizeLinear", ["c", "ys", "yz"], ["cq"]),
             helper.make_node("DequantizeLinear", ["cq", "ys", "yz"], ["y"])]
    graph = helper.make_graph(nodes, "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                             [4, 4, 9, 9])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 8, 9, 9])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    x = rng.standard_normal((4, 4, 9, 9)).astype(np.float32)
    session = Session(model)
    assert [s.kind for s in session.steps if s.op_type == "Conv"] == ["int"]
    want = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_array_equal(session.run({"x": x})["y"], want)


def test_conv_with_a_float_bias_quantizes_it_as_onnxruntime_does():
    """A QDQ Conv whose bias has no DequantizeLinear: ONNX Runtime's fused kernel takes
    rint(b / (s_x * s_w)) as the int32 bias (Silero VAD's QDQ file); so does lowp."""
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(rng.integers(0, 255, (16, 8, 3), dtype=np.uint8), "wq"),
             numpy_helper.from_array(np.array(0.1, np.float32), "ws"),
             numpy_helper.from_array(np.array(32, np.uint8), "wz"),
             numpy_helper.from_array(rng.standard_normal(16).astype(np.float32), "b"),
             numpy_helper.from_array(np.array(0.28, np.float32), "xs"),
             numpy_helper.from_array(np.array(0, np.uint8), "xz"),
             numpy_helper.from_array(np.array(0.145, np.float32), "ys"),
             numpy_helper.from_array(np.array(0, np.uint8), "yz")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"]),
             helper.make_node("Conv", ["xd", "wd", "b"], ["c"], pads=[1, 1], strides=[2]),
             helper.make_node("QuantizeLinear", ["c", "ys", "yz"], ["cq"]),
             helper.make_node("DequantizeLinear", ["cq", "ys", "yz"], ["y"])]
    graph = helper.make_graph(nodes, "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                             [2, 8, 40])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                             [2, 16, 20])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    x = np.abs(rng.standard_normal((2, 8, 40))).astype(np.float32) * 5
    session = Session(model)
    assert [s.kind for s in session.steps if s.op_type == "Conv"] == ["int"]
    want = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_array_equal(session.run({"x": x})["y"], want)
