"""Identical QuantizeLinear / DequantizeLinear nodes (ONNX Runtime's quantizer writes them with
DedicatedQDQPair) are one node in ONNX Runtime (ConstantSharing of float32 scalars, then
CommonSubexpressionElimination), so the operator before them has one QuantizeLinear reader
and its QDQ group fuses: lowp merges them the same way and equals ONNX Runtime bit for bit
(docs/operators.md (O177); evals/corpus/repro/README.md 160)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import ModelProto, TensorProto, helper, numpy_helper

from lowp.runtime import ort_qdq_cse
from tests.runtime.ort_agreement import assert_outputs_equal_onnxruntime_on_every_path


def _dedicated_pairs(op: str, readers: int, *, scale_name: str, zero_name: str,
                     graph_outputs: bool) -> ModelProto:
    """x -> Q/DQ -> op, its output quantized by `readers` QuantizeLinear nodes (the first
    with 'sy' / 'zy', the others with `scale_name` / `zero_name`: equal values), each
    dequantized and read by a Relu (or, with graph_outputs, a graph output itself)."""
    inits = [numpy_helper.from_array(np.float32(0.05), "sx"),
             numpy_helper.from_array(np.uint8(128), "zx"),
             numpy_helper.from_array(np.float32(1 / 255), "sy"),
             numpy_helper.from_array(np.uint8(0), "zy"),
             numpy_helper.from_array(np.float32(1 / 255), "sy_copy"),
             numpy_helper.from_array(np.uint8(0), "zy_copy")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xf"]),
             helper.make_node(op, ["xf"], ["y"])]
    if op == "Softmax":
        nodes[-1].attribute.append(helper.make_attribute("axis", -1))
    outputs = []
    for i in range(readers):
        s, z = ("sy", "zy") if i == 0 else (scale_name, zero_name)
        nodes += [helper.make_node("QuantizeLinear", ["y", s, z], [f"q{i}"]),
                  helper.make_node("DequantizeLinear", [f"q{i}", s, z], [f"d{i}"])]
        out = f"d{i}"
        if not graph_outputs:
            nodes.append(helper.make_node("Relu", [f"d{i}"], [f"o{i}"]))
            out = f"o{i}"
        outputs.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [4, 6])], outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


CASES = [("Softmax", 2, "sy", "zy", False), ("Softmax", 3, "sy", "zy", True),
         ("Softmax", 2, "sy_copy", "zy", False), ("Softmax", 2, "sy", "zy_copy", False),
         ("Sigmoid", 2, "sy", "zy", False)]


@pytest.mark.parametrize("op,readers,scale_name,zero_name,graph_outputs", CASES)
@pytest.mark.parametrize("threads", [1, 2])
def test_dedicated_pairs_equal_onnxruntime(op: str, readers: int, scale_name: str,
                                           zero_name: str, graph_outputs: bool,
                                           threads: int) -> None:
    """Before, a Softmax read by two identical QuantizeLinear nodes ran in float in lowp and
    as QLinearSoftmax in ONNX Runtime: up to one unit apart on a fifth of the outputs."""
    model = _dedicated_pairs(op, readers, scale_name=scale_name, zero_name=zero_name,
                             graph_outputs=graph_outputs)
    x = np.random.default_rng(readers).normal(0, 3, (4, 6)).astype(np.float32)
    assert_outputs_equal_onnxruntime_on_every_path(model, {"x": x}, threads)


def test_what_is_merged() -> None:
    """Equal float32 scales under two names merge (ConstantSharing); uint8 zero points under
    two names do not; nodes with a graph output stay."""
    merged = ort_qdq_cse.apply(_dedicated_pairs("Softmax", 2, scale_name="sy_copy",
                                                zero_name="zy", graph_outputs=False))
    assert [n.op_type for n in merged.graph.node].count("QuantizeLinear") == 2   # x's, y's
    assert [n.op_type for n in merged.graph.node].count("DequantizeLinear") == 2
    model = _dedicated_pairs("Softmax", 2, scale_name="sy", zero_name="zy_copy",
                             graph_outputs=False)
    assert ort_qdq_cse.apply(model) is model
    kept = ort_qdq_cse.apply(_dedicated_pairs("Softmax", 2, scale_name="sy", zero_name="zy",
                                              graph_outputs=True))
    assert [n.op_type for n in kept.graph.node].count("DequantizeLinear") == 3
