"""Per-token dynamic quantization: the ONNX graph, lowp's engine, ONNX Runtime and the
numpy reference (lowp.ops.linear.quantize_rows / per_token_matmul) agree exactly."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import lowp
from lowp.config import ActivationGranularity, QuantMode
from lowp.errors import QuantizationError
from lowp.ops.linear import per_token_matmul, quantize_rows
from lowp.passes.choose import quantize_weight
from lowp.runtime import Session, per_token_fusion
from tests.passes.test_smooth import _encoder_block

PER_TOKEN = lowp.Config(mode=QuantMode.DYNAMIC,
                        activation_granularity=ActivationGranularity.PER_TOKEN)


def _linear(w: np.ndarray, opset: int, gemm: bool = False) -> onnx.ModelProto:
    k, n = w.shape
    if gemm:
        init = [numpy_helper.from_array(np.ascontiguousarray(w.T), "w"),
                numpy_helper.from_array(np.linspace(-1, 1, n).astype(np.float32), "b")]
        node = helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)
        shape: list[int | str] = ["m", k]
    else:
        init = [numpy_helper.from_array(w, "w")]
        node = helper.make_node("MatMul", ["x", "w"], ["y"])
        shape = ["b", "s", k]
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, shape)], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [*shape[:-1], n])], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _ort(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, {"x": x})[0]


def _activations(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Rows of very different magnitude, some all-zero, some one-signed."""
    x = rng.normal(0, 1, shape).astype(np.float32)
    x *= np.exp(rng.normal(0, 2, (*shape[:-1], 1))).astype(np.float32)
    flat = x.reshape(-1, shape[-1])
    flat[:: 5] = 0.0
    flat[1:: 7] = np.abs(flat[1:: 7])
    return x


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3), st.integers(1, 9), st.integers(1, 300), st.integers(1, 12),
       st.sampled_from([13, 17, 18]), st.integers(0, 2**32 - 1))
def test_per_token_matmul_equals_reference_and_onnxruntime(batch, seq, k, n, opset, seed):
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.3, (k, n)).astype(np.float32)
    x = _activations(rng, (batch, seq, k))
    q = lowp.quantize_model(_linear(w, opset), None, PER_TOKEN)
    session = Session(q, backend="reference")
    assert "PerTokenMatMul" in [s.op_type for s in session.steps]     # one fused step
    ours = session.run({"x": x})["y"]
    with per_token_fusion.disabled():
        unfused = Session(q, backend="reference")
    assert "MatMulInteger" in [s.op_type for s in unfused.int_steps]
    np.testing.assert_array_equal(ours, unfused.run({"x": x})["y"])
    w_q, w_qp = quantize_weight(w, 1, lowp.Config().resolved_target(), "w")
    np.testing.assert_array_equal(ours, per_token_matmul(x, w_q, w_qp.scale,
                                                         w_qp.zero_point))
    np.testing.assert_array_equal(ours, _ort(q, x))


def test_gemm_with_transposed_weight_and_bias():
    rng = np.random.default_rng(3)
    w = rng.normal(0, 0.3, (24, 6)).astype(np.float32)
    x = _activations(rng, (10, 24))
    q = lowp.quantize_model(_linear(w, 17, gemm=True), None, PER_TOKEN)
    ours = Session(q).run({"x": x})["y"]
    np.testing.assert_array_equal(ours, _ort(q, x))
    want = x @ w + np.linspace(-1, 1, 6).astype(np.float32)
    assert np.abs(ours - want).max() < 0.02 * np.abs(want).max()


def test_rows_are_quantized_as_dynamic_quantize_linear_per_row():
    """Each row of quantize_rows equals ONNX DynamicQuantizeLinear run on that row alone
    (an all-zero row gets scale 1 there and `tiny` / 255 here: q and the product are 0
    either way)."""
    rng = np.random.default_rng(4)
    x = _activations(rng, (12, 16))
    graph = helper.make_graph(
        [helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [16])],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in (
            ("q", TensorProto.UINT8, [16]), ("s", TensorProto.FLOAT, []),
            ("z", TensorProto.UINT8, []))])
    s = ort.InferenceSession(helper.make_model(graph, opset_imports=[
        helper.make_opsetid("", 17)]).SerializeToString(), providers=["CPUExecutionProvider"])
    q, scale, zp = quantize_rows(x)
    for row in range(len(x)):
        rq, rs, rz = s.run(None, {"x": x[row]})
        np.testing.assert_array_equal(q[row], rq)
        assert zp[row, 0] == rz and (scale[row, 0] == rs or not x[row].any())


def test_static_mode_refuses_per_token():
    with pytest.raises(QuantizationError, match="DYNAMIC"):
        lowp.Config(activation_granularity=ActivationGranularity.PER_TOKEN)


def test_per_token_error_on_encoder_block_with_outliers(capsys):
    """The block of test_smooth (two LayerNorm channels x40): prints per-tensor vs per-token
    RMS errors (pytest -s); per-token must be lower."""
    rng = np.random.default_rng(1)
    model = _encoder_block(rng, False)
    x = rng.normal(0, 1, (32, 8, 32)).astype(np.float32)
    ref = _ort(model, x)
    errors = {}
    for granularity in ActivationGranularity:
        config = lowp.Config(mode=QuantMode.DYNAMIC, activation_granularity=granularity)
        got = Session(lowp.quantize_model(model, None, config)).run({"x": x})["y"]
        errors[granularity] = float(np.sqrt(np.mean((got - ref) ** 2)))
        print(f"{granularity.value}: RMS error {errors[granularity]:.4f}")
    assert errors[ActivationGranularity.PER_TOKEN] < 0.7 * errors[
        ActivationGranularity.PER_TENSOR]
