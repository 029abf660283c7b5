"""ONNX Runtime's rewrites inside Loop bodies and If branches (lowp.runtime.subgraph_rewrites)
and the order its transformers visit nodes in (lowp.runtime.ort_topology): the outputs equal
ONNX Runtime's bit for bit where a fused node rounds otherwise than the nodes it replaces."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session, ort_fusions
from tests.runtime.ort_agreement import onnxruntime_run

F = TensorProto.FLOAT


def _vi(name: str, elem: int, shape: list[object] | None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def _ops(graph: onnx.GraphProto) -> list[tuple[str, list[str]]]:
    return [(n.op_type, list(n.input)) for n in graph.node]


def _two_products(x: str, h: str, w: str, r: str, out: str) -> list[onnx.NodeProto]:
    """h · R written before x · W, their sum: ONNX Runtime's MatMulAddFusion makes
    Gemm(x, W, h · R), the product written later (lowp.runtime.ort_topology)."""
    return [helper.make_node("MatMul", [h, r], ["hr"]),
            helper.make_node("MatMul", [x, w], ["xw"]),
            helper.make_node("Add", ["xw", "hr"], [out])]


def _loop_model(m: int, k: int, n: int) -> onnx.ModelProto:
    """A Loop whose body adds x · W + h · R (W an outer-scope initializer, h carried): K past
    one 128-deep block, where the Gemm that starts from h · R rounds otherwise."""
    body = helper.make_graph(
        [*_two_products("x", "h_in", "W", "R", "s"),
         helper.make_node("Tanh", ["s"], ["h_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body", [_vi("i", TensorProto.INT64, []), _vi("cond_in", TensorProto.BOOL, []),
                 _vi("h_in", F, [m, n])],
        [_vi("cond_out", TensorProto.BOOL, []), _vi("h_out", F, [m, n])])
    rng = np.random.default_rng(5)
    graph = helper.make_graph(
        [helper.make_node("Loop", ["steps", "", "h0"], ["h_end"], body=body)], "g",
        [_vi("x", F, [m, k]), _vi("h0", F, [m, n])], [_vi("h_end", F, [m, n])],
        [numpy_helper.from_array((rng.standard_normal((k, n)) * 0.1).astype(np.float32), "W"),
         numpy_helper.from_array((rng.standard_normal((n, n)) * 0.3).astype(np.float32), "R"),
         numpy_helper.from_array(np.int64(3), "steps")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])


@given(m=st.integers(1, 4), k=st.sampled_from([130, 200, 300]), n=st.sampled_from([5, 16]),
       seed=st.integers(0, 2**16))
@settings(max_examples=8, deadline=None)
def test_loop_body_matmul_add_fuses_as_onnxruntime(m, k, n, seed):
    model = _loop_model(m, k, n)
    session = Session(model, replay=False)
    (loop,) = session.model.graph.node
    assert ("Gemm", ["x", "W", "hr"]) in _ops(loop.attribute[0].g)
    assert not loop.attribute[0].g.initializer      # the outer W, R stay outside
    rng = np.random.default_rng(seed)
    feeds = {"x": rng.standard_normal((m, k)).astype(np.float32),
             "h0": rng.standard_normal((m, n)).astype(np.float32)}
    np.testing.assert_array_equal(session.run(feeds)["h_end"],
                                  onnxruntime_run(model, feeds)[0])


def _if_model(scale_fed: bool, k: int = 150) -> onnx.ModelProto:
    """If(c) then MatMul(x, W) · s else b: ONNX Runtime's MatMulScaleFusion makes the
    branch's MatMul a FusedMatMul when s is an initializer of the enclosing graph, not when
    s is fed (a value from outside a subgraph is no constant of it)."""
    then = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]),
         helper.make_node("Mul", ["xw", "s"], ["t_out"])], "then", [], [_vi("t_out", F, [3, 8])])
    other = helper.make_graph([helper.make_node("Identity", ["b"], ["e_out"])], "else", [],
                              [_vi("e_out", F, [3, 8])])
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(rng.standard_normal((k, 8)).astype(np.float32), "W"),
             numpy_helper.from_array(np.zeros((3, 8), np.float32), "b")]
    inputs = [_vi("x", F, [3, k]), _vi("c", TensorProto.BOOL, [])]
    if scale_fed:
        inputs.append(_vi("s", F, []))
    else:
        inits.append(numpy_helper.from_array(np.float32(0.3), "s"))
    graph = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)], "g",
        inputs, [_vi("y", F, [3, 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])


def test_if_branch_scale_fuses_only_with_an_outer_initializer():
    for fed in (False, True):
        model = _if_model(fed)
        session = Session(model)
        then = next(a.g for a in session.model.graph.node[0].attribute
                    if a.name == "then_branch")
        assert [op for op, _ in _ops(then)] == (["MatMul", "Mul"] if fed else ["FusedMatMul"])
        assert "s" not in {t.name for t in then.initializer}
        rng = np.random.default_rng(2)
        feeds = {"x": rng.standard_normal((3, 150)).astype(np.float32), "c": np.array(True)}
        if fed:
            feeds["s"] = np.array(0.3, np.float32)
        np.testing.assert_array_equal(session.run(feeds)["y"], onnxruntime_run(model, feeds)[0])


def test_main_graph_fuses_the_product_written_later():
    """Add(x · W, h · R) with both products single-use: ONNX Runtime's node order fuses the
    one written later, whichever order the Add reads them in."""
    rng = np.random.default_rng(4)
    for first, _ in (("hr", "xw"), ("xw", "hr")):
        nodes = _two_products("x", "h", "W", "R", "y")
        if first == "xw":
            nodes[0], nodes[1] = nodes[1], nodes[0]
        graph = helper.make_graph(
            nodes, "g", [_vi("x", F, [2, 140]), _vi("h", F, [2, 6])], [_vi("y", F, [2, 6])],
            [numpy_helper.from_array(rng.standard_normal((140, 6)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.standard_normal((6, 6)).astype(np.float32), "R")])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
        fused = ort_fusions.apply(model)
        later = nodes[1]
        assert ("Gemm", [*later.input, first]) in _ops(fused.graph)
        feeds = {"x": rng.standard_normal((2, 140)).astype(np.float32),
                 "h": rng.standard_normal((2, 6)).astype(np.float32)}
        np.testing.assert_array_equal(Session(model).run(feeds)["y"],
                                      onnxruntime_run(model, feeds)[0])


@pytest.mark.parametrize("m, k", [(1, 130), (2, 300)])
def test_body_matmul_of_an_outer_constant_is_prepacked_as_in_onnxruntime(m, k):
    """A Loop body's MatMul(x, W), W a 2-D initializer of the enclosing graph: ONNX Runtime
    prepacks W as it does any constant B (control.SubPlan hands the body W's shape)."""
    n = 16
    body = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]),
         helper.make_node("Mul", ["xw", "h_in"], ["h_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body", [_vi("i", TensorProto.INT64, []), _vi("cond_in", TensorProto.BOOL, []),
                 _vi("h_in", F, [m, n])],
        [_vi("cond_out", TensorProto.BOOL, []), _vi("h_out", F, [m, n])])
    rng = np.random.default_rng(6)
    graph = helper.make_graph(
        [helper.make_node("Loop", ["steps", "", "h0"], ["h_end"], body=body)], "g",
        [_vi("x", F, [m, k]), _vi("h0", F, [m, n])], [_vi("h_end", F, [m, n])],
        [numpy_helper.from_array((rng.standard_normal((k, n)) * 0.1).astype(np.float32), "W"),
         numpy_helper.from_array(np.int64(2), "steps")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    feeds = {"x": rng.standard_normal((m, k)).astype(np.float32),
             "h0": rng.standard_normal((m, n)).astype(np.float32)}
    np.testing.assert_array_equal(Session(model, replay=False).run(feeds)["h_end"],
                                  onnxruntime_run(model, feeds)[0])
