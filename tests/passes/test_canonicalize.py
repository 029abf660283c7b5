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
