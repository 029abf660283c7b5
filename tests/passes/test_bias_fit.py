"""An int32 bias that would saturate at s_x * s_w (16-bit activations make s_x tiny) gets a
coarser weight scale instead: the bias fits and the output stays close to float."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import lowp


def _conv(bias: float) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = rng.uniform(-1, 1, (4, 3, 3, 3)).astype(np.float32)
    b = np.array([bias, -bias, 0.5, bias / 3], np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1])], "c",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4, 6, 6])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_sixteen_bit_conv_keeps_a_large_bias():
    model = _conv(10.0)
    rng = np.random.default_rng(1)
    x = rng.uniform(-0.01, 0.01, (8, 3, 6, 6)).astype(np.float32)   # s_x about 3e-7 at 16 bits
    q = lowp.quantize_model(model, {"x": x}, lowp.Config(sixteen_bit_op_types=("Conv",),
                                                         batch_size=4))
    biases = {i.name: numpy_helper.to_array(i) for i in q.graph.initializer
              if i.data_type == TensorProto.INT32}
    assert biases and all(np.abs(v).max() < np.iinfo(np.int32).max for v in biases.values())
    want = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = lowp.Session(q).run({"x": x})["y"]
    assert np.abs(got - want).max() < 1e-3 * np.abs(want).max()
