"""Initializers that only If/Loop branches read survive every pass of the quantizer."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import lowp


def _model() -> onnx.ModelProto:
    """`state` is read by a top-level Shape (folded away) and inside both If branches
    (Silero VAD's op15 export has this shape)."""
    state = numpy_helper.from_array(np.full((2, 1, 4), 0.5, np.float32), "state")
    w = numpy_helper.from_array(
        np.random.default_rng(0).standard_normal((4, 4)).astype(np.float32), "w")
    zero = numpy_helper.from_array(np.array(0, np.int64), "zero")
    out = helper.make_tensor_value_info("picked", TensorProto.FLOAT, [1, 4])
    branch = [helper.make_graph([helper.make_node("Gather", ["state", "zero"], ["picked"],
                                                  axis=0)], name, [], [out])
              for name in ("then", "else")]
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"]),
        helper.make_node("Shape", ["state"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["two"], axis=0),
        helper.make_node("Cast", ["two"], ["two_f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["h"], ["s"], keepdims=0),
        helper.make_node("Less", ["s", "two_f"], ["cond"]),
        helper.make_node("If", ["cond"], ["picked"], then_branch=branch[0],
                         else_branch=branch[1]),
        helper.make_node("Add", ["h", "picked"], ["y0"]),
        helper.make_node("MatMul", ["y0", "w"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "outer_scope", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])], [state, w, zero])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])


def test_initializer_read_only_by_branches_is_kept():
    x = np.random.default_rng(1).standard_normal((8, 4)).astype(np.float32)
    for mode in (lowp.QuantMode.STATIC, lowp.QuantMode.DYNAMIC):
        q = lowp.quantize_model(_model(), {"x": x}, lowp.Config(mode=mode))
        onnx.checker.check_model(q, full_check=True)
        assert "state" in {t.name for t in q.graph.initializer}
        want = ort.InferenceSession(q.SerializeToString(),
                                    providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        np.testing.assert_array_equal(lowp.Session(q).run({"x": x})["y"], want)
