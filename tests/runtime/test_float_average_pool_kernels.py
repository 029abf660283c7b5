"""Float AveragePool in ONNX Runtime's order for each MLAS kernel it reaches: the vector
kernel (window columns first) for a last stride of 1 or 2, the generic kernel (row-major
from +0) for larger strides; both bit for bit with ONNX Runtime."""

from __future__ import annotations

import itertools

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from lowp.runtime import Session

CASES = [(k, s, n, pads) for k, s, n, pads in itertools.product(
    [2, 3, 5], [1, 2, 3, 4], [7, 9], ["SAME_UPPER", "SAME_LOWER", "explicit"])]


@pytest.mark.parametrize("k,s,n,pads", CASES)
def test_average_pool_2d_equals_onnxruntime(k: int, s: int, n: int, pads: str) -> None:
    attrs: dict = {"kernel_shape": [k, k], "strides": [s, s]}
    if pads == "explicit":
        attrs["pads"] = [0, k // 2, k - 1, 0]
    else:
        attrs["auto_pad"] = pads
    node = helper.make_node("AveragePool", ["x"], ["y"], **attrs)
    graph = helper.make_graph(
        [node], "pool", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, n, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * 4)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    x = np.random.default_rng(k * 100 + s * 10 + n).standard_normal((2, 3, n, n)
                                                                      ).astype(np.float32)
    try:
        want = ort.InferenceSession(model.SerializeToString(),
                                    providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    except Exception:
        pytest.skip("ONNX Runtime refuses this geometry (negative SAME pads)")
    np.testing.assert_array_equal(Session(model).run({"x": x})["y"], want)
