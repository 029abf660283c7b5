"""From opset 21 on, ONNX Runtime cannot load a QDQ file in which an int8 DequantizeLinear
feeds MaxPool / Reshape / Transpose / Squeeze / Unsqueeze / Slice with no QuantizeLinear
after it (its own QDQ propagation makes an invalid QuantizeLinear). lowp closes such chains
with a value-preserving QuantizeLinear -> DequantizeLinear pair (found by the graph fuzzer:
Conv -> Relu -> ConvTranspose -> MaxPool quantized for xnnpack at opset 21)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import lowp
from lowp.passes.close_propagation import close_propagation


def _dq_chain(opset: int, zero_type: int, ops: list[str]) -> onnx.ModelProto:
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["t0"])]
    inits = [numpy_helper.from_array(np.array(0.1, np.float32), "s"),
             helper.make_tensor("z", zero_type, [], [0]),
             numpy_helper.from_array(np.array([1, 4, 16], np.int64), "shape")]
    for k, op in enumerate(ops):
        extra = {"kernel_shape": [2, 2]} if op == "MaxPool" else {}
        ins = [f"t{k}", "shape"] if op == "Reshape" else [f"t{k}"]
        nodes.append(helper.make_node(op, ins, [f"t{k + 1}"], **extra))
    graph = helper.make_graph(
        nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 4, 4])],
        [helper.make_tensor_value_info(f"t{len(ops)}", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    del model.graph.output[:]               # the output's declared type, inferred
    probe = onnx.shape_inference.infer_shapes(model)
    model.graph.output.extend(v for v in probe.graph.value_info if v.name == f"t{len(ops)}")
    return model


def _loads(model: onnx.ModelProto) -> bool:
    try:
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as exc:                         # noqa: BLE001 (ONNX Runtime's error)
        assert "output_dtype" in str(exc)
        return False
    return True


@pytest.mark.parametrize("ops", [["MaxPool"], ["Reshape", "Transpose"], ["Transpose"]])
def test_int8_chain_is_closed_and_loads(ops):
    model = _dq_chain(21, TensorProto.INT8, ops)
    assert not _loads(model)                         # the ONNX Runtime defect
    closed = close_propagation(model)
    onnx.checker.check_model(closed)
    assert _loads(closed)
    x = np.random.default_rng(0).standard_normal((1, 4, 4, 4)).astype(np.float32)
    want = lowp.Session(_dq_chain(21, TensorProto.INT8, ops), backend="reference").run(
        {"x": x})
    got = lowp.Session(closed).run({"x": x})
    for name, value in want.items():
        np.testing.assert_array_equal(got[name], value)    # the pair changes no value
    assert [n.op_type for n in closed.graph.node].count("QuantizeLinear") == 1 + len(ops)


@pytest.mark.parametrize(("opset", "zero_type"), [(20, TensorProto.INT8),
                                                  (21, TensorProto.UINT8)])
def test_unaffected_models_are_unchanged(opset, zero_type):
    model = _dq_chain(opset, zero_type, ["MaxPool"])
    before = model.SerializeToString()
    assert close_propagation(model).SerializeToString() == before


def test_quantizer_output_for_int8_targets_loads_at_opset_21():
    rng = np.random.default_rng(0)
    w1 = rng.normal(size=(3, 2, 1, 1)).astype(np.float32)
    wt = rng.normal(size=(3, 4, 2, 2)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c"]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("ConvTranspose", ["r", "wt"], ["t"], strides=[2, 2]),
             helper.make_node("MaxPool", ["t"], ["y"], kernel_shape=[2, 2])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2, 1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4, 1, 1])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(wt, "wt")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    data = {"x": rng.normal(size=(6, 2, 1, 1)).astype(np.float32)}
    q = lowp.quantize_model(model, data, lowp.Config(target="xnnpack", batch_size=2))
    x = data["x"][:2]
    want = ort.InferenceSession(q.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_array_equal(lowp.Session(q).run({"x": x})["y"], want)
