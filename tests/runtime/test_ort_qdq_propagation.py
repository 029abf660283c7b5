"""ONNX Runtime's QDQ propagation mirrored at load (lowp.runtime.ort_qdq_propagation): the
pairs it inserts, where it stops, and the integer groups they make, which run as ONNX
Runtime runs them (a regression the graph fuzzer found: a float AveragePool reaching a
QuantizeLinear through Reshape and Transpose is ONNX Runtime's QLinearAveragePool, whose
sums run in another order)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session, ort_qdq_propagation

from .ort_agreement import onnxruntime_run


def _model(nodes: list[onnx.NodeProto], shape: list[int], rank: int,
           opset: int = 13) -> onnx.ModelProto:
    inits = [numpy_helper.from_array(np.array(0.05, np.float32), "s"),
             numpy_helper.from_array(np.array(128, np.uint8), "z"),
             numpy_helper.from_array(np.array([0, 4, -1], np.int64), "shape3"),
             numpy_helper.from_array(np.array(0.03, np.float32), "s2"),
             numpy_helper.from_array(np.array(120, np.uint8), "z2")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * rank)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _pool_chain(opset: int = 13) -> onnx.ModelProto:
    """x -> Q/DQ -> AveragePool (float) -> Reshape -> Transpose -> Q/DQ -> y."""
    return _model([
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
        helper.make_node("AveragePool", ["xd"], ["p"], kernel_shape=[2, 2]),
        helper.make_node("Reshape", ["p", "shape3"], ["r"]),
        helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1]),
        helper.make_node("QuantizeLinear", ["t", "s2", "z2"], ["tq"]),
        helper.make_node("DequantizeLinear", ["tq", "s2", "z2"], ["y"])], [1, 4, 9, 9], 3,
        opset)


def test_a_quantize_propagates_up_to_the_average_pool():
    ops = [n.op_type for n in ort_qdq_propagation.apply(_pool_chain()).graph.node]
    assert ops == ["QuantizeLinear", "DequantizeLinear", "AveragePool", "QuantizeLinear",
                   "DequantizeLinear", "Reshape", "QuantizeLinear", "DequantizeLinear",
                   "Transpose", "QuantizeLinear", "DequantizeLinear"]


def test_reshape_of_opset_21_does_not_propagate():
    # (CanNodePropagate lists Reshape up to version 19, Transpose up to 13)
    model = _pool_chain(opset=21)
    assert ort_qdq_propagation.apply(model) is model


def test_a_dequantize_propagates_down_to_every_reader():
    model = _model([
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
        helper.make_node("Transpose", ["xd"], ["t"], perm=[0, 1, 3, 2]),
        helper.make_node("Relu", ["t"], ["a"]),
        helper.make_node("Sigmoid", ["t"], ["b"]),
        helper.make_node("Add", ["a", "b"], ["y"])], [1, 4, 3, 5], 4)
    out = ort_qdq_propagation.apply(model)
    ops = [n.op_type for n in out.graph.node]
    assert ops.count("QuantizeLinear") == 2 and ops.count("DequantizeLinear") == 3
    onnx.checker.check_model(out)


@pytest.mark.parametrize("seed", range(4))
def test_average_pool_reaching_a_quantize_through_data_movement_equals_onnxruntime(seed):
    model = _pool_chain()
    x = np.random.default_rng(seed).standard_normal((1, 4, 9, 9)).astype(np.float32) * 3
    theirs = onnxruntime_run(model, {"x": x})[0]
    for backend in ("reference", "native"):
        session = Session(model, backend=backend)
        assert "AveragePool" in [s.op_type for s in session.steps if s.kind == "int"]
        for _ in range(3):
            np.testing.assert_array_equal(session.run({"x": x})["y"], theirs, err_msg=backend)
