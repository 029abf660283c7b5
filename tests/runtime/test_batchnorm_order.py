"""Float BatchNormalization equals ONNX Runtime bit for bit (its evaluation order): a QDQ
model with a float BatchNormalization between DequantizeLinear and QuantizeLinear
quantizes ties the same way only then."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session
from lowp.runtime.backends import native_available
from lowp.runtime.float_nn import BatchNormalization
from tests.runtime.ort_agreement import onnxruntime_run


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


# ONNX Runtime's NCHWc transformer runs a BatchNormalization of an NCHWc value (here a 2-D
# MaxPool of a block multiple of channels) as a 1x1 depthwise NCHWc Conv whose constants it
# folds as scale / sqrt(var + eps), beta - mean * that (vietcombank_captcha: three of them
# after MaxPools); lowp.runtime.ort_context.batch_norm_context decides when
def _pooled_bn(c: int, *, epsilon: bool = True, pool: bool = True, relu: bool = False,
               seed: int = 0) -> tuple[object, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    f = np.float32
    params = {"s": rng.uniform(0.2, 3, c), "b": rng.standard_normal(c),
              "m": rng.standard_normal(c), "v": rng.uniform(0.01, 2, c)}
    nodes = []
    src = "x"
    if pool:
        nodes.append(helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[2, 2],
                                      strides=[2, 2]))
        src = "p"
    if relu:
        nodes.append(helper.make_node("Relu", [src], ["r"]))
        src = "r"
    nodes.append(helper.make_node("BatchNormalization", [src, "s", "b", "m", "v"], ["y"],
                                  **({"epsilon": 1e-3} if epsilon else {})))
    hw = 5 if pool else 10
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 10, 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, hw, hw])],
        [numpy_helper.from_array(v.astype(f), k) for k, v in params.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model, {"x": (rng.standard_normal((1, c, 10, 10)) * 3).astype(f)}


@pytest.mark.parametrize("backend", ["reference"] + (["native"] if native_available() else []))
@pytest.mark.parametrize("case", ["pooled", "pooled_relu", "no_epsilon", "graph_input",
                                  "channels_20"])
def test_batchnorm_of_an_nchwc_value_equals_onnxruntime(backend: str, case: str) -> None:
    kw = {"pooled": {}, "pooled_relu": {"relu": True}, "no_epsilon": {"epsilon": False},
          "graph_input": {"pool": False}, "channels_20": {}}[case]
    model, feeds = _pooled_bn(20 if case == "channels_20" else 32, **kw)  # type: ignore[arg-type]
    theirs = onnxruntime_run(model, feeds)[0]  # type: ignore[arg-type]
    ours = Session(model, backend=backend).run(feeds)["y"]  # type: ignore[arg-type]
    np.testing.assert_array_equal(ours, theirs)
