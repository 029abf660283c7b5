"""A Loop body's Constant nodes, computed once when the body is lowered, and the scan outputs
of a Loop that runs no iteration (lowp.runtime.control): both as ONNX Runtime gives them."""

from __future__ import annotations

import numpy as np
import onnx
from hypothesis import given, settings
from hypothesis import strategies as st
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


def _zero_trip_loop(shape: list[int | str] | None, elem: int) -> onnx.ModelProto:
    """A Loop whose scan output is Cast(h + x) (`shape` declared in the body, or none); run
    with 0 iterations."""
    body = helper.make_graph(
        [helper.make_node("Add", ["x", "h_in"], ["h_out"]),
         helper.make_node("Cast", ["h_out"], ["s"], to=elem),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body", [vi("i", TensorProto.INT64, []), vi("cond_in", TensorProto.BOOL, []),
                 vi("h_in", F, [2, 5])],
        [vi("cond_out", TensorProto.BOOL, []), vi("h_out", F, [2, 5]), vi("s", elem, shape)])
    out = vi("ss", elem, None)
    out.type.tensor_type.shape.SetInParent()
    graph = helper.make_graph(
        [helper.make_node("Loop", ["n", "", "h0"], ["h", "ss"], body=body)], "g",
        [vi("x", F, [2, 5]), vi("h0", F, [2, 5]), vi("n", TensorProto.INT64, [])],
        [vi("h", F, [2, 5]), out])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@given(shape=st.sampled_from([None, [2, 5], ["a", 5], [2, "b"]]),
       elem=st.sampled_from([TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32,
                             TensorProto.BOOL, TensorProto.DOUBLE]),
       trips=st.sampled_from([0, 2]))
@settings(max_examples=20, deadline=None)
def test_scan_outputs_of_no_iteration_keep_their_rank_and_type(shape, elem, trips):
    # lowp stacked nothing into a float32 (0,); ONNX Runtime gives (0, 2, 5) of the body
    # output's type (the shape shape inference gives it)
    model = _zero_trip_loop(shape, elem)
    feeds = {"x": np.ones((2, 5), np.float32), "h0": np.full((2, 5), 0.5, np.float32),
             "n": np.array(trips, np.int64)}
    theirs = onnxruntime_run(model, feeds)
    for replay in (True, False):
        ours = Session(model, replay=replay).run(feeds)
        for name, value in zip(("h", "ss"), theirs, strict=True):
            assert (ours[name].shape, ours[name].dtype) == (value.shape, value.dtype), name
            np.testing.assert_array_equal(ours[name], value)
