"""Float32 Gemm equals ONNX Runtime bit for bit: beta * C broadcast into the output, then
MLAS's SGEMM accumulating alpha * A B onto it, B prepacked when constant."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper, numpy_helper

from .ort_agreement import assert_engines_agree


@pytest.mark.parametrize("m,k,n,trans_b,alpha,beta,const_b,c_shape", [
    (4, 256, 100, 1, 1.0, 1.0, True, (100,)),
    (4, 256, 100, 0, 1.0, 1.0, True, (1, 100)),
    (1, 512, 10, 1, 1.0, 1.0, True, (10,)),
    (8, 300, 64, 1, 0.5, 2.0, True, (8, 64)),
    (4, 256, 100, 1, 1.0, 1.0, False, (100,)),
    (30, 700, 50, 1, 1.0, 0.0, True, (50,)),
    (3, 40, 7, 0, 1.0, 1.0, True, None),
])
def test_gemm_equals_onnxruntime(m: int, k: int, n: int, trans_b: int, alpha: float,
                                 beta: float, const_b: bool, c_shape: tuple[int, ...] | None
                                 ) -> None:
    rng = np.random.default_rng(m + k + n)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = (rng.standard_normal((n, k) if trans_b else (k, n)) * 0.1).astype(np.float32)
    inits = [numpy_helper.from_array(b, "b")] if const_b else []
    inputs = [helper.make_tensor_value_info("a", 1, a.shape)]
    if not const_b:
        inputs.append(helper.make_tensor_value_info("b", 1, b.shape))
    names = ["a", "b"]
    if c_shape is not None:
        inits.append(numpy_helper.from_array(rng.standard_normal(c_shape).astype(np.float32),
                                             "c"))
        names.append("c")
    node = helper.make_node("Gemm", names, ["y"], transB=trans_b, alpha=alpha, beta=beta)
    graph = helper.make_graph([node], "gemm", inputs,
                              [helper.make_tensor_value_info("y", 1, (m, n))], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert_engines_agree(model, {"a": a} if const_b else {"a": a, "b": b})
