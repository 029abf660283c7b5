"""An If whose branches only hand a value on (an exporter's shape test choosing Squeeze or
Identity, as silero_vad_op15 has three) runs its branch the plain way inside a replayed
Session: replaying such a branch (a signature, copied feeds and results per run) cost more
than the branch (silero_vad_op15 went from 0.71x to 1.3x ONNX Runtime's time)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session
from tests.runtime.ort_agreement import onnxruntime_run


def _model(then_op: str) -> onnx.ModelProto:
    """y = If(Size(Shape(x)) == 3, then: `then_op`(Relu(x) * 2), else: Identity) + 1."""
    f = TensorProto.FLOAT
    then_nodes = [helper.make_node("Constant", [], ["ax"],
                                   value=numpy_helper.from_array(np.array([0], np.int64)))]
    if then_op == "Squeeze":
        then_nodes.append(helper.make_node("Squeeze", ["m", "ax"], ["t"]))
    else:       # a branch that computes: an Exp
        then_nodes.append(helper.make_node("Exp", ["m"], ["t"]))
    then_g = helper.make_graph(then_nodes, "then", [], [helper.make_tensor_value_info(
        "t", f, [4, 5] if then_op == "Squeeze" else [1, 4, 5])])
    else_g = helper.make_graph([helper.make_node("Identity", ["m"], ["e"])], "else", [],
                               [helper.make_tensor_value_info("e", f, [1, 4, 5])])
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Mul", ["r", "two"], ["m"]),
             helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Size", ["s"], ["n"]),
             helper.make_node("Equal", ["n", "three"], ["c"]),
             helper.make_node("If", ["c"], ["i"], then_branch=then_g, else_branch=else_g),
             helper.make_node("Add", ["i", "one"], ["y"])]
    inits = [numpy_helper.from_array(np.array(2.0, np.float32), "two"),
             numpy_helper.from_array(np.array(1.0, np.float32), "one"),
             numpy_helper.from_array(np.array(3, np.int64), "three")]
    graph = helper.make_graph(nodes, "if_hand_on",
                              [helper.make_tensor_value_info("x", f, [1, 4, 5])],
                              [helper.make_tensor_value_info("y", f, [None, None])
                               if then_op == "Squeeze" else
                               helper.make_tensor_value_info("y", f, [1, 4, 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _branches(session: Session) -> list:
    return [sub for s in session.steps for sub in s.subplans]


def test_a_branch_that_hands_on_runs_plain_with_onnxruntime_outputs() -> None:
    model = _model("Squeeze")
    session = Session(model)
    rng = np.random.default_rng(0)
    for _ in range(4):
        x = rng.standard_normal((1, 4, 5)).astype(np.float32)
        np.testing.assert_array_equal(session.run({"x": x})["y"],
                                      onnxruntime_run(model, {"x": x})[0])
    branches = _branches(session)
    assert branches and not any(b.computes for b in branches)
    assert all(b._replayer is None for b in branches)


def test_a_branch_that_computes_still_replays() -> None:
    model = _model("Exp")
    session = Session(model)
    rng = np.random.default_rng(1)
    for _ in range(4):
        x = rng.standard_normal((1, 4, 5)).astype(np.float32)
        np.testing.assert_array_equal(session.run({"x": x})["y"],
                                      onnxruntime_run(model, {"x": x})[0])
    (then_plan,) = [b for b in _branches(session) if b.computes]
    assert then_plan._replayer is not None
