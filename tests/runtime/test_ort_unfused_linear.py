"""QDQ Conv / MatMul / Gemm groups that ONNX Runtime's x86 CPU selectors leave unfused
(int8 activations, 16-bit activations) run as it runs them: DequantizeLinear -> float op ->
QuantizeLinear, bit for bit; uint8 activations with int8 weights keep the integer kernels
(docs/operators.md (O5a))."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import lowp

ACT = {"uint8": (TensorProto.UINT8, np.uint8), "int8": (TensorProto.INT8, np.int8),
       "uint16": (TensorProto.UINT16, np.uint16), "int16": (TensorProto.INT16, np.int16)}


def _group(op: str, act: str, w: np.ndarray, w_scale: np.ndarray, *, x_shape: list,
           y_shape: list,
           x_scale: float = 0.02, x_zp: int = 0, y_scale: float = 0.05, y_zp: int = 0,
           bias: np.ndarray | None = None, attrs: dict | None = None,
           w_axis: int = 0) -> object:
    """x -> DQ -> op(DQ(w), DQ(bias)) -> Q -> y with a constant weight (int8, or the
    activation's type for 16-bit) at w_scale (per tensor when a scalar)."""
    onnx_t, np_t = ACT[act]
    w_zp = np.zeros(w_scale.shape, w.dtype)
    inits = [numpy_helper.from_array(np.array(x_scale, np.float32), "xs"),
             numpy_helper.from_array(np.array(x_zp, np_t), "xz"),
             numpy_helper.from_array(np.array(y_scale, np.float32), "ys"),
             numpy_helper.from_array(np.array(y_zp, np_t), "yz"),
             numpy_helper.from_array(w, "w"),
             numpy_helper.from_array(w_scale.astype(np.float32), "ws"),
             numpy_helper.from_array(w_zp, "wz")]
    dq_attrs = {"axis": w_axis} if w_scale.ndim else {}
    nodes = [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["xf"]),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wf"], **dq_attrs)]
    ins = ["xf", "wf"]
    if bias is not None:
        bias_scale = (np.float32(x_scale) * w_scale.astype(np.float32)).astype(np.float32)
        inits += [numpy_helper.from_array(bias, "b"),
                  numpy_helper.from_array(bias_scale, "bs"),
                  numpy_helper.from_array(np.zeros(bias_scale.shape, np.int32), "bz")]
        nodes.append(helper.make_node("DequantizeLinear", ["b", "bs", "bz"], ["bf"],
                                      **({"axis": 0} if bias_scale.ndim else {})))
        ins.append("bf")
    nodes += [helper.make_node(op, ins, ["yf"], name="op", **(attrs or {})),
              helper.make_node("QuantizeLinear", ["yf", "ys", "yz"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx_t, x_shape)],
                              [helper.make_tensor_value_info("y", onnx_t, y_shape)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


def _both(model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """lowp's and ONNX Runtime's (one thread: the order lowp's float kernels mirror)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    want = ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    return lowp.Session(model).run({"x": x})["y"], want


def _codes(act: str, shape: tuple, rng: np.random.Generator, *, small: bool = False) -> np.ndarray:
    np_t = ACT[act][1]
    info = np.iinfo(np_t)
    lo, hi = (max(int(info.min), -20), 21) if small else (int(info.min), int(info.max) + 1)
    return rng.integers(lo, hi, size=shape).astype(np_t)


def _weights(act: str, shape: tuple, rng: np.random.Generator, *,
             small: bool = False) -> np.ndarray:
    """int8 weights; 16-bit ones (of the activation's type) with 16-bit activations."""
    kind = act if act in ("int16", "uint16") else "int8"
    return _codes(kind, shape, rng, small=small)


def test_int8_conv_at_a_tie_rounds_as_onnxruntime():
    """A 1x1 Conv whose exact sum is half way between two codes: the integer kernel rounds
    the exact -115 * M = -57.5000x to -58, ONNX Runtime's float Conv the float32 sum to -57
    (ppocrv6_rec_small under ActivationSymmetric: 1252 * M = 4.5000005, 5 against 4)."""
    sx, sw = np.float32(0.038662), np.float32(0.007527645)
    w = np.array([2, -8, -3], np.int8).reshape(1, 3, 1, 1)
    model = _group("Conv", "int8", w, np.array(sw), x_shape=[1, 3, 1, 1],
                   y_shape=[1, 1, 1, 1], x_scale=float(sx), y_scale=float(np.float32(sx * sw * 2)))
    x = np.array([13, 12, 15], np.int8).reshape(1, 3, 1, 1)
    got, want = _both(model, x)
    assert int(want.reshape(())) == -57
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("act", ["int8", "uint16", "int16", "uint8"])
@pytest.mark.parametrize("per_channel", [False, True])
@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), with_bias=st.booleans(), near_ties=st.booleans())
def test_conv_equals_onnxruntime(act, per_channel, seed, with_bias, near_ties):
    """near_ties: small codes and an output scale of 2 * s_x * s_w, so that every odd exact
    sum lies one rounding error from half way."""
    rng = np.random.default_rng(seed)
    c_out = 8
    w = _weights(act, (c_out, 4, 3, 3), rng)
    w_scale = (rng.uniform(1e-3, 1e-2, c_out) if per_channel else
               np.array(rng.uniform(1e-3, 1e-2))).astype(np.float32)
    wide = ACT[act][1]().itemsize > 1
    y_scale = 0.05 * (257.0 if wide else 1.0) * (float(np.abs(w).max()) / 127 if wide else 1)
    if near_ties:
        w = _weights(act, w.shape, rng, small=True)
        y_scale = float(np.float32(0.02 * w_scale.max() * 2))
    bias = rng.integers(-2000, 2000, c_out).astype(np.int32) if with_bias else None
    model = _group("Conv", act, w, w_scale, x_shape=[1, 4, 6, 6], y_shape=[1, c_out, 6, 6],
                   bias=bias, y_scale=y_scale, attrs={"pads": [1, 1, 1, 1]})
    got, want = _both(model, _codes(act, (1, 4, 6, 6), rng, small=near_ties))
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("op", ["MatMul", "Gemm"])
@pytest.mark.parametrize("act", ["int8", "uint16", "int16", "uint8"])
@pytest.mark.parametrize("per_channel", [False, True])
@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), with_bias=st.booleans(), near_ties=st.booleans())
def test_matmul_gemm_equals_onnxruntime(op, act, per_channel, seed, with_bias, near_ties):
    rng = np.random.default_rng(seed)
    k, n = 24, 10
    w = _weights(act, (k, n), rng)
    w_scale = (rng.uniform(1e-3, 1e-2, n) if per_channel else
               np.array(rng.uniform(1e-3, 1e-2))).astype(np.float32)
    wide = ACT[act][1]().itemsize > 1
    y_scale = 0.05 * (257.0 * float(np.abs(w).max()) / 127 if wide else 1.0)
    if near_ties:
        w = _weights(act, w.shape, rng, small=True)
        y_scale = float(np.float32(0.02 * w_scale.max() * 2))
    bias = rng.integers(-2000, 2000, n).astype(np.int32) if (with_bias and op == "Gemm") \
        else None
    model = _group(op, act, w, w_scale, x_shape=[5, k], y_shape=[5, n], bias=bias,
                   y_scale=y_scale, w_axis=1)
    got, want = _both(model, _codes(act, (5, k), rng, small=near_ties))
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("channels", [16, 32])
def test_float_conv_of_dequantized_weights_sums_in_onnxruntime_order(channels):
    """ONNX Runtime's constant folding skips DequantizeLinear: a float Conv reading
    DequantizeLinear(weights) keeps a non-constant weight, no NCHWc kernel (whose order a
    folded weight of these channel counts would take), the plain Conv's sum order."""
    rng = np.random.default_rng(channels)
    w = rng.integers(-127, 128, (channels, channels, 3, 3)).astype(np.int8)
    inits = [numpy_helper.from_array(w, "w"),
             numpy_helper.from_array(rng.uniform(1e-3, 1e-2, channels).astype(np.float32),
                                     "ws"),
             numpy_helper.from_array(np.zeros(channels, np.int8), "wz")]
    nodes = [helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wf"], axis=0),
             helper.make_node("Conv", ["x", "wf"], ["y"], pads=[1, 1, 1, 1])]
    shape = [1, channels, 12, 12]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, shape)], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    x = rng.standard_normal(shape).astype(np.float32)
    got, want = _both(model, x)
    np.testing.assert_array_equal(got, want)
