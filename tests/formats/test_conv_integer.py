"""ONNX Runtime's dynamically quantized convolutions (DynamicQuantizeLinear -> ConvInteger
-> Cast -> Mul) run on lowp's engine with ONNX Runtime's outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic

import lowp


@pytest.mark.parametrize("group", [1, 2])
def test_dynamic_conv_equals_onnxruntime(tmp_path: Path, group: int) -> None:
    rng = np.random.default_rng(group)
    w = (rng.standard_normal((8, 4 // group, 3, 3)) * 0.3).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1],
                              strides=[2, 1], group=group),
             helper.make_node("Relu", ["c"], ["y"])]
    g = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 4, 15, 12])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 8, 8, 12])],
        [numpy_helper.from_array(w, "w"),
         numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.save(model, tmp_path / "f.onnx")
    quantize_dynamic(tmp_path / "f.onnx", tmp_path / "q.onnx", weight_type=QuantType.QUInt8,
                     op_types_to_quantize=["Conv"])
    q = onnx.load(tmp_path / "q.onnx")
    assert "ConvInteger" in {n.op_type for n in q.graph.node}
    x = rng.standard_normal((2, 4, 15, 12)).astype(np.float32)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    (want,) = ort.InferenceSession(q.SerializeToString(), opts,
                                   providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_array_equal(lowp.Session(q, threads=1).run({"x": x})["y"], want)
