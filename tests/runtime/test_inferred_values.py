"""lowp.ir.graph.inferred_values: the inputs, outputs and value_info of onnx's shape
inference, read from its serialized result without parsing the nodes back, are those of
`infer_shapes` (which parses the whole inferred model: a second copy of a tree ensemble's
attributes). The rewrites that want types (ort_cast_elimination and its neighbours) and
Graph.inferred_shape read them."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import lowp.ir.graph
from lowp.ir.graph import _read_varint, _wire_fields, infer_shapes, inferred_values

from .test_fused_conv_shapes import _model


def _fields(graph: onnx.GraphProto) -> tuple[list[bytes], ...]:
    return tuple([v.SerializeToString() for v in vs]
                 for vs in (graph.input, graph.output, graph.value_info))


def _large_model() -> onnx.ModelProto:
    """A MatMul by a 256 x 256 weight (above the skeleton's inline size: a typed input
    there), an intermediate declared with its shape, an output declared with a shape and
    one without, and a Shape -> Gather chain that data propagation follows."""
    w = numpy_helper.from_array(np.ones((256, 256), np.float32), "w")
    index = numpy_helper.from_array(np.array(1, np.int64), "one")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]),
             helper.make_node("Relu", ["m"], ["r"]),
             helper.make_node("Shape", ["r"], ["s"]),
             helper.make_node("Gather", ["s", "one"], ["n"]),
             helper.make_node("Reshape", ["r", "s"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 256])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 256]),
         helper.make_tensor_value_info("n", TensorProto.INT64, None)], [w, index],
        value_info=[helper.make_tensor_value_info("m", TensorProto.FLOAT, ["b", 256])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_equal_to_infer_shapes() -> None:
    fused = _model()
    fused.graph.node[2].CopyFrom(helper.make_node(
        "FusedConv", ["x", "wb", "", "a"], ["s"], domain="com.microsoft", activation="Relu"))
    for model in (_model(), fused, _large_model()):
        got = inferred_values(model)
        assert _fields(got) == _fields(infer_shapes(model).graph)
        assert len(got.value_info) > 0


def test_large_initializers_are_not_inputs() -> None:
    got = inferred_values(_large_model())
    assert [v.name for v in got.input] == ["x"]
    assert {v.name for v in got.value_info} >= {"m", "r", "s"}


def test_a_node_inference_cannot_type() -> None:
    model = _large_model()
    model.graph.node[0].input[1] = "missing"     # a read of no value (not strict: skipped)
    assert _fields(inferred_values(model)) == _fields(infer_shapes(model).graph)


def test_declared_values_when_inference_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def fails(*args: object) -> bytes:
        raise onnx.shape_inference.InferenceError("no")

    monkeypatch.setattr(lowp.ir.graph.shape_inference.C, "infer_shapes", fails)
    model = _large_model()
    assert _fields(inferred_values(model)) == _fields(model.graph)
    assert _fields(infer_shapes(model).graph) == _fields(model.graph)


def test_wire_fields_walk_every_wire_type() -> None:
    tensor = onnx.TensorProto(dims=[2], data_type=TensorProto.FLOAT, float_data=[1.5, 2.5],
                              name="t", int64_data=[-1, 300])
    tensor.raw_data = b"\x01\x02"
    data = tensor.SerializeToString()
    fields = list(_wire_fields(data))
    assert b"".join(bytes(whole) for _, whole, _ in fields) == data
    assert {number for number, _, _ in fields} == {1, 2, 4, 7, 8, 9}
    assert _read_varint(memoryview(b"\xac\x02"), 0) == (300, 2)
    # a fixed32 (wire type 5) and a fixed64 (wire type 1) field
    raw = b"\x0d" + b"\x00\x00\xc0\x3f" + b"\x11" + b"\x00" * 8
    assert [(n, bytes(p)) for n, _, p in _wire_fields(raw)] == [(1, b"\x00\x00\xc0\x3f"),
                                                               (2, b"\x00" * 8)]
