"""Optional, OptionalHasElement and OptionalGetElement inside a graph give ONNX Runtime's
outputs on both backends at 1 and 2 threads (docs/operators.md (O265)): optionals with and
without an element, of tensors and sequences, through If branches; getting the element of
an empty optional is the model's error."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import lowp
from lowp.errors import NodeError

from .one_node import assert_backends_give_onnxruntimes_bits

FLOAT = helper.make_tensor_type_proto(TensorProto.FLOAT, None)
X = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])


def _model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto]) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_empty_tensor_value_info("y")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    return model


def _empty() -> onnx.NodeProto:
    return helper.make_node("Optional", [], ["o"], type=FLOAT)


CASES = {
    "empty has no element": ([_empty(), helper.make_node("OptionalHasElement", ["o"], ["y"])],
                             False),
    "a tensor's has one": ([helper.make_node("Optional", ["x"], ["o"]),
                            helper.make_node("OptionalHasElement", ["o"], ["y"])], True),
    "a tensor's element": ([helper.make_node("Optional", ["x"], ["o"]),
                            helper.make_node("OptionalGetElement", ["o"], ["g"]),
                            helper.make_node("Neg", ["g"], ["y"])], True),
    "a sequence's element": ([helper.make_node("SequenceConstruct", ["x", "x"], ["s"]),
                              helper.make_node("Optional", ["s"], ["o"]),
                              helper.make_node("OptionalGetElement", ["o"], ["g"]),
                              helper.make_node("ConcatFromSequence", ["g"], ["y"], axis=1)],
                             True),
    "a tensor as its own optional": ([helper.make_node("OptionalGetElement", ["x"], ["y"])],
                                     True),
}


@pytest.mark.parametrize("name", list(CASES))
def test_optionals_in_a_graph(name: str) -> None:
    nodes, reads_x = CASES[name]
    x = np.array([[1, -0.0, np.nan], [2, 3, -4]], np.float32)
    assert_backends_give_onnxruntimes_bits(_model(nodes, [X] if reads_x else []),
                                           {"x": x} if reads_x else {})


@pytest.mark.parametrize("condition", [True, False])
def test_an_if_choosing_an_optional(condition: bool) -> None:
    optional = helper.make_optional_type_proto(FLOAT)
    then_graph = helper.make_graph([helper.make_node("Optional", ["x"], ["t"])], "then", [],
                                   [helper.make_value_info("t", optional)])
    else_graph = helper.make_graph([helper.make_node("Optional", [], ["e"], type=FLOAT)],
                                   "else", [], [helper.make_value_info("e", optional)])
    nodes = [helper.make_node("If", ["c"], ["o"], then_branch=then_graph,
                              else_branch=else_graph),
             helper.make_node("OptionalHasElement", ["o"], ["y"])]
    model = _model(nodes, [X, helper.make_tensor_value_info("c", TensorProto.BOOL, [])])
    feeds = {"x": np.ones((2, 3), np.float32), "c": np.array(condition)}
    (y,) = assert_backends_give_onnxruntimes_bits(model, feeds)
    assert bool(y) is condition


def test_the_element_of_an_empty_optional_is_the_models_error() -> None:
    model = _model([_empty(), helper.make_node("OptionalGetElement", ["o"], ["y"])], [])
    for backend in ("reference", "native"):
        with pytest.raises(NodeError, match="no element"):
            lowp.Session(model, backend=backend).run({})
