"""A 16-bit tensor takes its observed [min, max] whatever the range method: clipping is sized
for 8 bits, and at 16 bits it would remain the tensor's main error."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import lowp
from lowp.config import CalibMethod


def _matmul() -> onnx.ModelProto:
    w = np.random.default_rng(0).uniform(-1, 1, (16, 8)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 8])],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _scale(model: onnx.ModelProto, tensor: str) -> tuple[float, int]:
    """Scale and storage type of the activation `tensor` in a QDQ model."""
    inits = {i.name: i for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "QuantizeLinear" and n.input[0].startswith(tensor):
            return (float(numpy_helper.to_array(inits[n.input[1]])),
                    inits[n.input[2]].data_type)
    raise AssertionError(f"no QuantizeLinear of {tensor}")


@pytest.mark.parametrize("method", [CalibMethod.PERCENTILE, CalibMethod.MSE,
                                    CalibMethod.ENTROPY])
def test_sixteen_bit_tensor_keeps_the_observed_range(method):
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (4096, 16)).astype(np.float32)
    x[3, 5] = 40.0                                    # one outlier a clipping method cuts
    model = _matmul()
    eight = lowp.quantize_model(model, {"x": x}, lowp.Config(method=method))
    wide = lowp.quantize_model(model, {"x": x}, lowp.Config(method=method,
                                                             sixteen_bit_nodes=("mm",)))
    s8, t8 = _scale(eight, "x")
    s16, t16 = _scale(wide, "x")
    assert t8 == TensorProto.UINT8 and t16 == TensorProto.UINT16
    assert s8 * 255 < 0.9 * (40.0 - x.min())          # the 8-bit range clips the outlier
    assert s16 * 65535 == pytest.approx(40.0 - x.min(), rel=1e-3)   # the 16-bit one does not
    got = lowp.Session(wide).run({"x": x})["y"]
    want = x.astype(np.float64) @ numpy_helper.to_array(model.graph.initializer[0])
    assert np.abs(got[3] - want[3]).max() < 1e-2 * np.abs(want[3]).max()
