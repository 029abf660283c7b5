"""If and Loop run their subgraphs with outer-scope values, as ONNX Runtime does."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session


def _ort(model, feeds):
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, feeds)


def test_if_reads_outer_scope():
    then_g = helper.make_graph([helper.make_node("Add", ["x", "one"], ["t"])], "then", [],
                               [helper.make_tensor_value_info("t", TensorProto.FLOAT, [3])],
                               [numpy_helper.from_array(np.float32(1), "one")])
    else_g = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [],
                               [helper.make_tensor_value_info("e", TensorProto.FLOAT, [3])])
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
         helper.make_node("Greater", ["s", "zero"], ["c"]),
         helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
        [numpy_helper.from_array(np.float32(0), "zero")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for x in (np.array([1, 2, 3], np.float32), np.array([-1, -2, 0], np.float32)):
        np.testing.assert_array_equal(Session(model, backend="reference").run({"x": x})["y"],
                                      _ort(model, {"x": x})[0])


def test_loop_carries_values_and_stacks_scan_outputs():
    body = helper.make_graph(
        [helper.make_node("Add", ["acc_in", "x"], ["acc_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Mul", ["acc_out", "two"], ["scan"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [2]),
         helper.make_tensor_value_info("scan", TensorProto.FLOAT, [2])],
        [numpy_helper.from_array(np.float32(2), "two")])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["n", "", "init"], ["final", "scans"], body=body)], "g",
        [helper.make_tensor_value_info("n", TensorProto.INT64, []),
         helper.make_tensor_value_info("init", TensorProto.FLOAT, [2]),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("final", TensorProto.FLOAT, [2]),
         helper.make_tensor_value_info("scans", TensorProto.FLOAT, ["n", 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    feeds = {"n": np.array(4, np.int64), "init": np.zeros(2, np.float32),
             "x": np.array([1.0, 0.5], np.float32)}
    ours = Session(model, backend="reference").run(feeds)
    theirs = _ort(model, feeds)
    np.testing.assert_array_equal(ours["final"], theirs[0])
    np.testing.assert_array_equal(ours["scans"], theirs[1])


def test_if_listed_before_the_producer_of_what_its_branches_read():
    """ONNX Runtime's quantizer can write an If before the node producing a value its
    branches read (Silero VAD's QDQ file); ONNX Runtime sorts the graph, and so does lowp."""
    out = helper.make_tensor_value_info("picked", TensorProto.FLOAT, [1, 4])
    then_g = helper.make_graph([helper.make_node("Relu", ["late"], ["picked"])], "then", [],
                               [out])
    else_g = helper.make_graph([helper.make_node("Neg", ["late"], ["picked"])], "else", [],
                               [out])
    graph = helper.make_graph(
        [helper.make_node("If", ["cond"], ["picked"], then_branch=then_g, else_branch=else_g),
         helper.make_node("Abs", ["x"], ["late"]),
         helper.make_node("Add", ["picked", "x"], ["y"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
              helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    model.ir_version = 8
    before = model.SerializeToString()
    x = np.array([[-1, 2, -3, 4]], np.float32)
    for cond in (True, False):
        feeds = {"x": x, "cond": np.array(cond)}
        np.testing.assert_array_equal(Session(model).run(feeds)["y"], _ort(model, feeds)[0])
    assert model.SerializeToString() == before       # the caller's model is not reordered


def test_branch_reading_a_value_a_fusion_would_absorb():
    """An If branch reads the float Relu output of an integer Conv group; the Relu may not be
    fused into the Conv's output quantization (Silero VAD's QDQ file from ONNX Runtime)."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.integers(-50, 50, (4, 3, 1, 1), dtype=np.int8), "wq"),
             numpy_helper.from_array(np.array(0.02, np.float32), "ws"),
             numpy_helper.from_array(np.array(0, np.int8), "wz"),
             numpy_helper.from_array(np.array(0.05, np.float32), "s"),
             numpy_helper.from_array(np.array(128, np.uint8), "z"),
             numpy_helper.from_array(np.array(0.03, np.float32), "ys"),
             numpy_helper.from_array(np.array(0, np.uint8), "yz")]
    out = helper.make_tensor_value_info("picked", TensorProto.FLOAT, [1, 4, 2, 2])
    then_g = helper.make_graph([helper.make_node("Neg", ["r"], ["picked"])], "then", [], [out])
    else_g = helper.make_graph([helper.make_node("Abs", ["r"], ["picked"])], "else", [], [out])
    graph = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
         helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
         helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"]),
         helper.make_node("Conv", ["xd", "w"], ["c"]),
         helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("QuantizeLinear", ["r", "ys", "yz"], ["rq"]),
         helper.make_node("DequantizeLinear", ["rq", "ys", "yz"], ["rd"]),
         helper.make_node("If", ["cond"], ["picked"], then_branch=then_g, else_branch=else_g),
         helper.make_node("Add", ["rd", "picked"], ["y"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 2, 2]),
              helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 2, 2])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    model.ir_version = 8
    x = rng.standard_normal((1, 3, 2, 2)).astype(np.float32)
    for cond in (True, False):
        feeds = {"x": x, "cond": np.array(cond)}
        np.testing.assert_allclose(Session(model).run(feeds)["y"], _ort(model, feeds)[0],
                                   rtol=0, atol=1e-6)
