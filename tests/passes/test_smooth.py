"""SmoothQuant-style migration keeps the float function and helps outlier channels."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import lowp
from lowp.inputs import model_inputs
from lowp.passes.smooth import smooth


def _encoder_block(rng: np.random.Generator, decomposed: bool) -> onnx.ModelProto:
    d, h = 32, 64
    gamma = np.ones(d, np.float32)
    gamma[[3, 17]] = 40.0                          # outlier channels, as in LLM-style LNs
    beta = rng.normal(0, 0.1, d).astype(np.float32)
    w1 = rng.normal(0, 0.2, (d, h)).astype(np.float32)
    w2 = rng.normal(0, 0.2, (h, d)).astype(np.float32)
    if decomposed:
        norm = [helper.make_node("ReduceMean", ["x"], ["mu"], axes=[-1]),
                helper.make_node("Sub", ["x", "mu"], ["xc"]),
                helper.make_node("Mul", ["xc", "xc"], ["sq"]),
                helper.make_node("ReduceMean", ["sq"], ["var"], axes=[-1]),
                helper.make_node("Add", ["var", "eps"], ["ve"]),
                helper.make_node("Sqrt", ["ve"], ["sd"]),
                helper.make_node("Div", ["xc", "sd"], ["xn"]),
                helper.make_node("Mul", ["xn", "gamma"], ["xg"]),
                helper.make_node("Add", ["xg", "beta"], ["ln"])]
        extra = [numpy_helper.from_array(np.float32(1e-5), "eps")]
    else:
        norm = [helper.make_node("LayerNormalization", ["x", "gamma", "beta"], ["ln"])]
        extra = []
    nodes = norm + [helper.make_node("MatMul", ["ln", "w1"], ["h1"]),
                    helper.make_node("Relu", ["h1"], ["r"]),
                    helper.make_node("MatMul", ["r", "w2"], ["y"])]
    graph = helper.make_graph(
        nodes, "block", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8, d])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 8, d])],
        [numpy_helper.from_array(a, k) for k, a in
         (("gamma", gamma), ("beta", beta), ("w1", w1), ("w2", w2))] + extra)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, {"x": x})[0]


def test_smoothing_keeps_function_and_reduces_error():
    rng = np.random.default_rng(0)
    for decomposed in (False, True):
        model = _encoder_block(rng, decomposed)
        x = rng.normal(0, 1, (32, 8, 32)).astype(np.float32)
        smoothed = smooth(model, {"x": x}, model_inputs(model), 0.5, 16)
        np.testing.assert_allclose(_run(smoothed, x), _run(model, x), rtol=1e-3, atol=1e-3)
        ref = _run(model, x)
        errors = {}
        for alpha in (None, 0.5):
            q = lowp.quantize_model(model, {"x": x}, lowp.Config(smooth_alpha=alpha))
            got = lowp.Session(q).run({"x": x})["y"]
            errors[alpha] = float(np.sqrt(np.mean((got - ref) ** 2)))
        assert errors[0.5] < 0.7 * errors[None], (decomposed, errors)


def test_error_figures(capsys):
    """Prints the measured effect (pytest -s shows it)."""
    rng = np.random.default_rng(1)
    model = _encoder_block(rng, False)
    x = rng.normal(0, 1, (32, 8, 32)).astype(np.float32)
    ref = _run(model, x)
    for alpha in (None, 0.5, 0.8):
        q = lowp.quantize_model(model, {"x": x}, lowp.Config(smooth_alpha=alpha))
        got = lowp.Session(q).run({"x": x})["y"]
        print(f"smooth_alpha={alpha}: RMS error {np.sqrt(np.mean((got - ref) ** 2)):.4f}")
