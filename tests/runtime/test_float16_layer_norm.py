"""float16 LayerNormalization as ONNX Runtime's float16 kernel computes it: float32 rows
(the generic loop's order below 16 values, the float32 kernel's from 16 on), rounded to
float16 once (O213). Found by the graph fuzzer (other_types block, seed 20261506): one
value in about a thousand a float16 unit off."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import native_backend as nb

from .ort_agreement import assert_float_bits_agree


def _model(n: int, bias: bool) -> onnx.ModelProto:
    rng = np.random.default_rng(n)
    inits = [numpy_helper.from_array(rng.uniform(0.5, 1.5, n).astype(np.float16), "g")]
    if bias:
        inits.append(numpy_helper.from_array(rng.normal(0, 0.1, n).astype(np.float16), "b"))
    node = helper.make_node("LayerNormalization", ["x", "g"] + (["b"] if bias else []), ["y"],
                            axis=-1, epsilon=1e-3)
    shape = [4, 6, 30, n]
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT16, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, shape)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("n", [3, 8, 10, 15, 16, 24, 64])
def test_float16_layer_norm_matches_onnxruntime(n: int, bias: bool, threads: int) -> None:
    rng = np.random.default_rng(100 + n)
    x = (rng.standard_normal((4, 6, 30, n)) * 2 + rng.normal(0, 3)).astype(np.float16)
    for path in nb.available_paths():
        with nb.use_path(path):
            assert_float_bits_agree(_model(n, bias), {"x": x}, threads)
