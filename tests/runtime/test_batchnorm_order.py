"""Float BatchNormalization equals ONNX Runtime bit for bit (its evaluation order): a QDQ
model with a float BatchNormalization between DequantizeLinear and QuantizeLinear
quantizes ties the same way only then."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime.float_nn import BatchNormalization


@given(c=st.integers(1, 16), eps=st.sampled_from([1e-5, 1e-3, 0.0]), seed=st.integers(0, 2**16))
def test_batchnorm_equals_onnxruntime(c, eps, seed):
    rng = np.random.default_rng(seed)
    scale, bias, mean = (rng.standard_normal(c).astype(np.float32) for _ in range(3))
    var = rng.uniform(0.1, 2.0, c).astype(np.float32)
    x = (rng.standard_normal((2, c, 5, 7)) * 3).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in
             [(scale, "s"), (bias, "b"), (mean, "m"), (var, "v")]]
    graph = helper.make_graph(
        [helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"],
                          epsilon=eps)], "bn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, c, 5, 7])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, c, 5, 7])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    model.ir_version = 8
    want = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_array_equal(BatchNormalization(x, scale, bias, mean, var, epsilon=eps),
                                  want)
