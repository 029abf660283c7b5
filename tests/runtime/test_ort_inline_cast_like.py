"""ONNX Runtime inlines CastLike into a Cast before its other rewrites (PreInliner,
lowp.runtime.ort_inline_cast_like): a float16 chain entered or left through CastLike is
computed in float32 as one entered and left through Cast is (O53), (O211). Found by the
graph fuzzer (its other_types block), where lowp rounded the chain to float16 first."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session, ort_inline_cast_like

from .ort_agreement import assert_float_bits_agree, assert_outputs_equal_onnxruntime_on_every_path

F16 = TensorProto.FLOAT16


def _model(into: str, out_of: str, opset: int = 19) -> onnx.ModelProto:
    """x (float32) into float16 by `into` (Cast | CastLike), Mul and Add by float16
    constants, Sigmoid, back to float32 by `out_of`."""
    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array(rng.uniform(0.5, 1.5, (4, 1, 1)).astype(np.float16), "k"),
             numpy_helper.from_array(rng.normal(0, 0.3, (4, 1, 1)).astype(np.float16), "b"),
             numpy_helper.from_array(np.float16(0), "half_like"),
             numpy_helper.from_array(np.float32(0), "float_like")]
    nodes = [helper.make_node("Cast", ["x"], ["h"], to=F16) if into == "Cast"
             else helper.make_node("CastLike", ["x", "half_like"], ["h"]),
             helper.make_node("Mul", ["h", "k"], ["m"]),
             helper.make_node("Add", ["m", "b"], ["a"]),
             helper.make_node("Sigmoid", ["a"], ["s"]),
             helper.make_node("Cast", ["s"], ["y"], to=TensorProto.FLOAT) if out_of == "Cast"
             else helper.make_node("CastLike", ["s", "float_like"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4, 5, 5])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                             ir_version=9)


FORMS = [("CastLike", "CastLike"), ("Cast", "CastLike"), ("CastLike", "Cast")]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("into", "out_of"), FORMS)
def test_float16_chain_through_castlike_matches_onnxruntime(into: str, out_of: str,
                                                            threads: int) -> None:
    model = _model(into, out_of)
    x = np.random.default_rng(0).standard_normal((2, 4, 5, 5)).astype(np.float32) * 3
    assert_float_bits_agree(model, {"x": x}, threads)
    assert_outputs_equal_onnxruntime_on_every_path(model, {"x": x}, threads)


@pytest.mark.parametrize(("into", "out_of"), FORMS)
def test_castlike_chain_computes_as_the_cast_chain(into: str, out_of: str) -> None:
    """The same values as the chain written with Casts, which ONNX Runtime computes in
    float32 (not the float16 rounding of each node)."""
    x = np.random.default_rng(1).standard_normal((2, 4, 5, 5)).astype(np.float32)
    want = Session(_model("Cast", "Cast"), backend="reference").run({"x": x})["y"]
    got = Session(_model(into, out_of), backend="reference").run({"x": x})["y"]
    np.testing.assert_array_equal(got, want)


def test_castlike_is_written_as_its_cast_with_saturate() -> None:
    node = helper.make_node("CastLike", ["x", "like"], ["y"], saturate=0)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT8E4M3FN, [3])],
        [numpy_helper.from_array(np.zeros(1, np.float32), "like")])
    graph.initializer[0].data_type = TensorProto.FLOAT8E4M3FN
    graph.initializer[0].ClearField("raw_data")
    graph.initializer[0].raw_data = b"\x00"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    [cast] = ort_inline_cast_like.apply(model).graph.node
    assert cast.op_type == "Cast"
    assert {a.name: a.i for a in cast.attribute} == {"to": TensorProto.FLOAT8E4M3FN,
                                                     "saturate": 0}


def test_a_model_without_castlike_is_left_as_it_is() -> None:
    model = _model("Cast", "Cast")
    assert ort_inline_cast_like.apply(model) is model


def test_a_castlike_of_a_constant_stays_as_written() -> None:
    """ONNX Runtime's ConstantFolding meets a CastLike of a constant as a CastLike; lowp
    leaves it so ((O211): inlining it moved a float16 attention graph away from ONNX
    Runtime's results), and inlines the one of a computed value beside it."""
    inits = [numpy_helper.from_array(np.float32(-np.inf), "neg_inf")]
    nodes = [helper.make_node("Cast", ["x"], ["h"], to=F16),
             helper.make_node("CastLike", ["neg_inf", "h"], ["bias"]),
             helper.make_node("Add", ["h", "bias"], ["s"]),
             helper.make_node("CastLike", ["s", "x"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    out = ort_inline_cast_like.apply(model)
    assert [(n.op_type, n.output[0]) for n in out.graph.node] == [
        ("Cast", "h"), ("CastLike", "bias"), ("Add", "s"), ("Cast", "y")]
