"""Canonicalization keeps the float function: BN folding, constant folding, opset upgrade."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from lowp.data import demo_model_path, load_demo_test
from lowp.ir.graph import opset_of
from lowp.passes.canonicalize import canonicalize


def _run(model: onnx.ModelProto, feeds):
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, feeds)[0]


def test_batch_norm_folds_and_function_is_kept():
    model = onnx.load(str(demo_model_path()))
    canon = canonicalize(model)
    assert "BatchNormalization" not in {n.op_type for n in canon.graph.node}
    feeds, _ = load_demo_test()
    np.testing.assert_allclose(_run(canon, feeds), _run(model, feeds), rtol=1e-4, atol=1e-4)


def test_old_opset_is_upgraded_and_constants_fold():
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    graph = helper.make_graph(
        [helper.make_node("Transpose", ["w"], ["wt"], perm=[1, 0]),
         helper.make_node("MatMul", ["x", "wt"], ["y"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    canon = canonicalize(model)
    assert opset_of(canon) == 13
    assert [n.op_type for n in canon.graph.node] == ["MatMul"]
    x = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(_run(canon, {"x": x}), x @ w.T)


def test_batch_norm_after_grouped_conv_transpose_folds():
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.ConvTranspose2d(4, 6, 2, stride=2, groups=2),
                              torch.nn.BatchNorm2d(6))
    net.train()
    with torch.no_grad():
        net(torch.randn(8, 4, 5, 5))
    net.eval()
    import io
    buf = io.BytesIO()
    torch.onnx.export(net, (torch.randn(1, 4, 5, 5),), buf, input_names=["x"],
                      opset_version=17, dynamo=False, do_constant_folding=False)
    model = onnx.load_from_string(buf.getvalue())
    canon = canonicalize(model)
    assert [n.op_type for n in canon.graph.node] == ["ConvTranspose"]
    x = np.random.default_rng(0).standard_normal((1, 4, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(_run(canon, {"x": x}), _run(model, {"x": x}), rtol=1e-4,
                               atol=1e-5)


def _ir3_model_with_built_weight() -> onnx.ModelProto:
    """IR 3 style: every initializer is also a graph input; the MatMul weight is built by
    ConstantOfShape from a shape initializer, as in the onnx zoo's old 'light' models."""
    shape = numpy_helper.from_array(np.array([4, 3], np.int64), "w_shape")
    bias = numpy_helper.from_array(np.array([1, -1, 2], np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("ConstantOfShape", ["w_shape"], ["w"],
                          value=numpy_helper.from_array(np.array([0.5], np.float32))),
         helper.make_node("MatMul", ["x", "w"], ["xw"]),
         helper.make_node("Add", ["xw", "b"], ["y"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4]),
              helper.make_tensor_value_info("w_shape", TensorProto.INT64, [2]),
              helper.make_tensor_value_info("b", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])], [shape, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)])
    model.ir_version = 3
    return model


def test_ir3_initializer_inputs_are_dropped_with_their_folded_initializers():
    model = _ir3_model_with_built_weight()
    canon = canonicalize(model)
    assert [i.name for i in canon.graph.input] == ["x"]
    assert canon.ir_version >= 7
    onnx.checker.check_model(canon, full_check=True)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_allclose(_run(canon, {"x": x}), x @ np.full((4, 3), 0.5) + [1, -1, 2])


def test_ir3_model_with_a_contrib_domain_is_raised_to_the_ir_of_its_onnx_opset():
    """A com.microsoft opset import next to the onnx one (as ONNX Runtime's tools leave
    old files) is no version onnx knows; the IR comes from the onnx opset (item 193)."""
    model = _ir3_model_with_built_weight()
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    canon = canonicalize(model)
    assert [i.name for i in canon.graph.input] == ["x"] and canon.ir_version >= 4
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_allclose(_run(canon, {"x": x}), x @ np.full((4, 3), 0.5) + [1, -1, 2])


def test_ir3_model_quantizes():
    import lowp

    x = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    q = lowp.quantize_model(_ir3_model_with_built_weight(), {"x": x})
    assert [i.name for i in q.graph.input] == ["x"]
    assert "QuantizeLinear" in {n.op_type for n in q.graph.node}


def test_an_output_declared_with_the_wrong_rank_still_quantizes():
    """madmom's converter declares every output rank 1 (an RNN's is rank 2): ONNX Runtime
    only warns, onnx's strict shape inference refuses it, and the quantized copy failed the
    checker. Canonicalization drops the contradicted declaration; the others stay."""
    import lowp

    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 5)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Relu", ["y"], ["z"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["m"]),
         helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 5])],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    x = rng.standard_normal((8, 3)).astype(np.float32)
    _run(model, {"x": x})                       # ONNX Runtime runs it
    canon = canonicalize(model)
    onnx.checker.check_model(canon, full_check=True)
    outs = {o.name: [d.dim_value or d.dim_param for d in o.type.tensor_type.shape.dim]
            for o in canon.graph.output}
    assert len(outs["z"]) == 2 and outs["y"] == ["n", 5]
    q = lowp.quantize_model(model, {"x": x})
    onnx.checker.check_model(q, full_check=True)
