"""Integer matrix products of lowp's engine against the reference operators (tolerance 0)."""

from __future__ import annotations

import numpy as np
import onnx
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.fixedpoint import Requant, requant_scale
from lowp.ops.linear import matmul
from lowp.runtime import Session
from lowp.runtime.lowering import QOPERATOR_KEY


def _two_activation_model(a: np.ndarray, b: np.ndarray, za: int, zb: int, zy: int,
                          scales: tuple[float, float, float]):
    t = TensorProto.UINT8 if a.dtype == np.uint8 else TensorProto.INT8
    init = [numpy_helper.from_array(v, n) for n, v in (
        ("sa", np.float32(scales[0])), ("sb", np.float32(scales[1])),
        ("sy", np.float32(scales[2])), ("za", np.array(za, a.dtype)),
        ("zb", np.array(zb, b.dtype)), ("zy", np.array(zy, np.uint8)))]
    nodes = [helper.make_node("DequantizeLinear", ["a", "sa", "za"], ["af"]),
             helper.make_node("DequantizeLinear", ["b", "sb", "zb"], ["bf"]),
             helper.make_node("MatMul", ["af", "bf"], ["yf"]),
             helper.make_node("QuantizeLinear", ["yf", "sy", "zy"], ["y"])]
    if a.dtype == np.int8:
        # as a QOperator file's QLinearMatMul: ONNX Runtime, and so lowp, leave an untagged
        # int8 QDQ MatMul unfused (docs/operators.md (O5a))
        tag = nodes[2].metadata_props.add()
        tag.key, tag.value = QOPERATOR_KEY, "QLinearMatMul"
    out_shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1])
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("a", t, a.shape),
                                           helper.make_tensor_value_info("b", t, b.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8,
                                                             out_shape)], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@settings(max_examples=60)
@given(st.sampled_from([np.uint8, np.int8]), st.sampled_from([1, 7, 16, 64, 257, 300, 700]),
       st.integers(1, 5), st.floats(0.2, 3.0), st.integers(0, 2**32 - 1))
def test_matmul_of_two_activations_equals_reference(dtype, k, m, spread, seed):
    """Both exact float paths (float32 below 2^24, float64 above) equal the reference,
    with outputs spread over the whole range and beyond it (saturation)."""
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    a = rng.integers(info.min, info.max + 1, (2, 3, m, k)).astype(dtype)
    b = rng.integers(info.min, info.max + 1, (3, k, 5)).astype(dtype)
    za = int(rng.integers(info.min, info.max + 1))
    zb = int(rng.integers(info.min, info.max + 1))
    zy = int(rng.integers(0, 256))
    sa, sb = 0.02, 0.03
    sy = float(sa * sb * 128 * 128 * np.sqrt(k) / (60 * spread))
    session = Session(_two_activation_model(a, b, za, zb, zy, (sa, sb, sy)),
                      backend="reference")
    assert [s.kind for s in session.steps] == ["int"]
    want = matmul(a, b, a_zero_point=za, b_zero_point=zb,
                  requant=Requant(requant_scale(sa, sb, sy), zy, 0, 255))
    got = session.run({"a": a, "b": b})["y"]
    np.testing.assert_array_equal(got, want)


def _dynamic_linear(rng: np.random.Generator, gemm: bool) -> onnx.ModelProto:
    """A float MatMul (or Gemm with transB and a bias) of 40 x 96 weights, for lowp's own
    dynamic modes."""
    w = rng.normal(0, 0.2, (40, 96)).astype(np.float32)
    if gemm:
        init = [numpy_helper.from_array(np.ascontiguousarray(w.T), "w"),
                numpy_helper.from_array(rng.normal(0, 1, 96).astype(np.float32), "b")]
        node = helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)
        shape: list[int | str] = ["m", 40]
    else:
        init = [numpy_helper.from_array(w, "w")]
        node = helper.make_node("MatMul", ["x", "w"], ["y"])
        shape = ["b", "s", 40]
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, shape)], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [*shape[:-1], 96])], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_dynamic_modes_use_the_native_integer_gemm(monkeypatch) -> None:
    """lowp's own dynamic modes (per tensor: DynamicQuantizeLinear -> DequantizeLinear ->
    MatMul / Gemm with its bias; per token: MatMulInteger) multiply by the native integer
    GEMM, with the same bits as the numpy operators (native kernels disabled)."""
    import pytest

    import lowp
    from lowp.config import ActivationGranularity, QuantMode
    from lowp.runtime import native_float, native_integer
    if native_integer._extension() is None:
        pytest.skip("the extension has no integer matmul")
    rng = np.random.default_rng(2)
    calls: list[str] = []
    for name in ("matmul_integer", "matmul_integer_scaled", "per_token_matmul"):
        real = getattr(native_integer, name)

        def counted(*args, _real=real, _name=name, **kwargs):  # type: ignore[no-untyped-def]
            out = _real(*args, **kwargs)
            if out is not None:
                calls.append(_name)
            return out
        monkeypatch.setattr(native_integer, name, counted)
    for granularity, gemm in ((ActivationGranularity.PER_TENSOR, False),
                              (ActivationGranularity.PER_TENSOR, True),
                              (ActivationGranularity.PER_TOKEN, False),
                              (ActivationGranularity.PER_TOKEN, True)):
        model = _dynamic_linear(rng, gemm)
        x = rng.normal(0, 2, (3, 7, 40) if not gemm else (5, 40)).astype(np.float32)
        config = lowp.Config(mode=QuantMode.DYNAMIC, activation_granularity=granularity)
        q = lowp.quantize_model(model, None, config)
        calls.clear()
        got = Session(q, threads=1).run({"x": x})["y"]
        assert calls, (granularity, gemm)
        with native_float.disabled():
            want = Session(q, threads=1).run({"x": x})["y"]
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
