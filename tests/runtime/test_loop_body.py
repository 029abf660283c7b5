"""A Loop body's Constant nodes, computed once when the body is lowered
(lowp.runtime.control): the outputs as ONNX Runtime gives them."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session
from lowp.runtime.control import SubPlan
from tests.runtime.ort_agreement import onnxruntime_run

F = TensorProto.FLOAT
vi = helper.make_tensor_value_info


def _constant(name: str, value: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name))


def _counter_loop(steps: int) -> onnx.ModelProto:
    """paddle2onnx's decoder bookkeeping: a carried int64 counter and a float state, each
    updated with Constant nodes written inside the body; the state also as a scan output."""
    body = helper.make_graph(
        [_constant("one", np.array([1], np.int64)),
         _constant("scale", np.array(0.75, np.float32)),
         _constant("axes", np.array([0], np.int64)),
         helper.make_node("Add", ["n_in", "one"], ["n_out"]),
         helper.make_node("Cast", ["n_in"], ["nf"], to=F),
         helper.make_node("Mul", ["h_in", "scale"], ["hs"]),
         helper.make_node("Add", ["hs", "nf"], ["h_out"]),
         helper.make_node("Unsqueeze", ["h_out", "axes"], ["h_row"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body", [vi("i", TensorProto.INT64, []), vi("cond_in", TensorProto.BOOL, []),
                 vi("n_in", TensorProto.INT64, [1]), vi("h_in", F, [3])],
        [vi("cond_out", TensorProto.BOOL, []), vi("n_out", TensorProto.INT64, [1]),
         vi("h_out", F, [3]), vi("h_row", F, [1, 3])])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["steps", "", "n0", "h0"], ["n", "h", "rows"], body=body)],
        "g", [vi("h0", F, [3])],
        [vi("n", TensorProto.INT64, [1]), vi("h", F, [3]), vi("rows", F, [steps, 1, 3])],
        [numpy_helper.from_array(np.int64(steps), "steps"),
         numpy_helper.from_array(np.array([2], np.int64), "n0")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_body_constants_are_computed_once() -> None:
    model = _counter_loop(steps=6)
    feeds = {"h0": np.array([0.5, -1.25, 3.0], np.float32)}
    theirs = onnxruntime_run(model, feeds)
    for replay in (True, False):
        session = Session(model, replay=replay)
        (loop,) = [s for s in session.steps if s.op_type == "Loop"]
        (plan,) = [c.cell_contents for c in loop.fn.__closure__ or ()    # the body's plan
                   if isinstance(c.cell_contents, SubPlan)]
        assert "Constant" not in [s.op_type for s in plan.steps]
        assert {"one", "scale", "axes"} <= set(plan.constants)
        for _ in range(3):          # recorded twice, then replayed
            ours = session.run(feeds)
            for name, value in zip(("n", "h", "rows"), theirs, strict=True):
                np.testing.assert_array_equal(ours[name], value, err_msg=name)
                assert ours[name].dtype == value.dtype
