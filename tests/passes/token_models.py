"""Small token models the mode and method choice tests share."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def token_model(seed: int = 0, spread: float = 1.5, samples: int = 64
                    ) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """x @ w1 -> Relu -> @ w2 on (n, 8, 32) tokens whose rows differ in scale by
    exp(N(0, spread)): one static range cannot serve small and large tokens alike."""
    rng = np.random.default_rng(seed)
    d, h = 32, 64
    w1 = rng.normal(0, 0.2, (d, h)).astype(np.float32)
    w2 = rng.normal(0, 0.2, (h, d)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h1"], name="mm1"),
         helper.make_node("Relu", ["h1"], ["r"], name="relu"),
         helper.make_node("MatMul", ["r", "w2"], ["y"], name="mm2")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8, d])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 8, d])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = rng.normal(0, 1, (samples, 8, d)).astype(np.float32)
    x *= np.exp(rng.normal(0, spread, (samples, 8, 1))).astype(np.float32)
    return model, {"x": x}
