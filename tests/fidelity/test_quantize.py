"""QuantizeLinear: ONNX Runtime divides by the scale, PyTorch multiplies by its reciprocal."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from lowp.fidelity import run_as

from .onnx_models import run_ort

F32 = np.float32


def _quantize_model(scale: np.float32, n: int):
    g = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], name="q")], "q",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, n])],
        [numpy_helper.from_array(np.asarray(scale, F32), "s"),
         numpy_helper.from_array(np.array(0, np.uint8), "z")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
    m.ir_version = 10
    return m


def test_quantize_division_vs_reciprocal() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    differ = 0
    for scale in rng.uniform(1e-3, 1.0, 40).astype(F32):
        x = ((np.arange(255, dtype=F32) + F32(0.5)) * scale).astype(F32).reshape(1, -1)
        model = _quantize_model(scale, x.shape[1])
        ort_model = run_as(model, {"x": x}, "onnxruntime")["y"]
        torch_model = run_as(model, {"x": x}, "x86")["y"]
        np.testing.assert_array_equal(ort_model, run_ort(model, x))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")       # quantized tensors are deprecated in torch
            want = torch.quantize_per_tensor(torch.from_numpy(x), float(scale), 0,
                                             torch.quint8)
        np.testing.assert_array_equal(torch_model, want.int_repr().numpy())
        differ += int(np.count_nonzero(ort_model != torch_model))
    assert differ > 0
