"""If nodes on a constant condition are inlined (lowp.runtime.inline_if): the same results
as ONNX Runtime's If, nested Ifs inlined with them, and their steps replayed."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session
from lowp.runtime.backends import native_available
from lowp.runtime.inline_if import inline_constant_ifs


def _ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, feeds)


def _branch(name: str, nodes: list[onnx.NodeProto], out: str,
            inits: list[onnx.TensorProto] | None = None) -> onnx.GraphProto:
    return helper.make_graph(nodes, name, [],
                             [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
                             inits or [])


def _model(cond: bool, inner_cond: bool) -> onnx.ModelProto:
    """y = If(cond, then: If(inner, x * 3 + 1, -x) + 2, else: Relu(x)) * x; the conditions
    are initializers, the branches read outer values and have initializers of their own."""
    inner = helper.make_node(
        "If", ["inner_c"], ["t_in"],
        then_branch=_branch("inner_then", [helper.make_node("Mul", ["x", "three"], ["t3"]),
                                           helper.make_node("Add", ["t3", "one"], ["t4"])],
                            "t4", [numpy_helper.from_array(np.float32(3), "three")]),
        else_branch=_branch("inner_else", [helper.make_node("Neg", ["x"], ["tn"])], "tn"))
    then_g = _branch("then", [inner, helper.make_node("Add", ["t_in", "two"], ["t"])], "t",
                     [numpy_helper.from_array(np.float32(2), "two")])
    else_g = _branch("else", [helper.make_node("Relu", ["x"], ["e"])], "e")
    graph = helper.make_graph(
        [helper.make_node("If", ["c"], ["z"], then_branch=then_g, else_branch=else_g),
         helper.make_node("Mul", ["z", "x"], ["y"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [numpy_helper.from_array(np.array(cond), "c"),
         numpy_helper.from_array(np.array([inner_cond]), "inner_c"),
         numpy_helper.from_array(np.float32(1), "one")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.mark.parametrize("cond", [True, False])
@pytest.mark.parametrize("inner_cond", [True, False])
def test_constant_ifs_are_inlined_with_ort_results(cond, inner_cond):
    model = _model(cond, inner_cond)
    inlined = inline_constant_ifs(model)
    assert not any(n.op_type == "If" for n in inlined.graph.node)
    onnx.checker.check_model(inlined, full_check=True)
    assert any(n.op_type == "If" for n in model.graph.node)      # the input is unchanged
    x = np.array([[1, -2, 3], [-0.5, 0, 7]], np.float32)
    want = _ort(model, {"x": x})[0]
    np.testing.assert_array_equal(_ort(inlined, {"x": x})[0], want)
    s = Session(model, backend="reference")
    assert not any(step.op_type == "If" for step in s.steps)
    for _ in range(4):
        np.testing.assert_array_equal(s.run({"x": x})["y"], want)


def test_if_on_a_computed_condition_stays():
    model = _model(True, True)
    graph = model.graph
    graph.node.insert(0, helper.make_node("Identity", ["c0"], ["c"]))
    graph.initializer[0].name = "c0"
    assert inline_constant_ifs(model).graph.node[1].op_type == "If"


def test_a_branch_name_clashing_with_the_graph_stays_an_if():
    model = _model(False, True)
    model.graph.node.append(helper.make_node("Identity", ["x"], ["e"]))   # "e": the branch's
    assert any(n.op_type == "If" for n in inline_constant_ifs(model).graph.node)


@pytest.mark.skipif(not native_available(), reason="the native extension is not built")
def test_inlined_branch_replays():
    model = _model(True, True)
    s = Session(model)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    for k in range(4):
        np.testing.assert_array_equal(s.run({"x": x + k})["y"], ((x + k) * 3 + 1 + 2) * (x + k))
    assert s._replayer is not None
    sig = (("x", (2, 3), "<f4"),)
    assert s._replayer.replayed_steps(sig) == len(s.steps)


@pytest.mark.skipif(not native_available(), reason="the native extension is not built")
def test_ifs_on_shapes_replay_per_signature():
    """If(shape test) as exporters write it: with the condition fixed by the feed shapes,
    an If handing on its input replays, one of constants only is folded, and the shape
    arithmetic around them is folded too; each signature takes its own branch."""
    def branch(name: str, node: onnx.NodeProto, out: str) -> onnx.GraphProto:
        return _branch(name, [node], out)

    if_a = helper.make_node(
        "If", ["c"], ["a"], then_branch=branch("a_then", helper.make_node("Identity", ["x"],
                                                                         ["ta"]), "ta"),
        else_branch=branch("a_else", helper.make_node("Neg", ["x"], ["ea"]), "ea"))
    if_b = helper.make_node(
        "If", ["c"], ["b"], then_branch=branch("b_then", helper.make_node("Identity", ["k1"],
                                                                         ["tb"]), "tb"),
        else_branch=branch("b_else", helper.make_node("Identity", ["k2"], ["eb"]), "eb"))
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "zero"], ["d0"], axis=0),
             helper.make_node("Equal", ["d0", "one"], ["c"]), if_a, if_b,
             helper.make_node("Mul", ["a", "b"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(np.array(0, np.int64), "zero"),
         numpy_helper.from_array(np.array(1, np.int64), "one"),
         numpy_helper.from_array(np.full(3, 2, np.float32), "k1"),
         numpy_helper.from_array(np.full(3, 3, np.float32), "k2")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    s = Session(model)
    rng = np.random.default_rng(0)
    for n in (1, 2, 1, 2, 1, 2, 1, 2):
        x = rng.standard_normal((n, 3)).astype(np.float32)
        want = x * 2 if n == 1 else -x * 3
        np.testing.assert_array_equal(s.run({"x": x})["y"], want)
    assert s._replayer is not None
    for n in (1, 2):
        assert s._replayer.replayed_steps((("x", (n, 3), "<f4"),)) == (
            len(s.steps) if n == 1 else len(s.steps) - 1)     # (Neg: a new array, plain)
