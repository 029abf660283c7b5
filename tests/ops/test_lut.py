"""Lookup-table activations, exhaustively over every 8-bit input value."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from lowp.ops import ACTIVATIONS, QOPS, activation, apply_lut, build_lut
from lowp.qparams import QParams, QType, choose_qparams, dequantize, quantize
from tests.strategies import ACTIVATION_QTYPES

# op type, ONNX attributes, an independent float64 torch oracle
ORACLES = {
    "Relu": ({}, F.relu),
    "Sigmoid": ({}, torch.sigmoid),
    "Tanh": ({}, torch.tanh),
    "HardSigmoid": ({"alpha": 0.25, "beta": 0.4},
                    lambda t: torch.clamp(0.25 * t + 0.4, 0.0, 1.0)),
    "HardSwish": ({}, F.hardswish),
    "Silu": ({}, F.silu),
    "LeakyRelu": ({"alpha": 0.1}, lambda t: F.leaky_relu(t, 0.1)),
    "Elu": ({"alpha": 0.5}, lambda t: F.elu(t, 0.5)),
    "Selu": ({}, F.selu),
    "Softplus": ({}, F.softplus),
    "Softsign": ({}, F.softsign),
    "Exp": ({}, torch.exp),
    "Gelu": ({}, F.gelu),
    "GeluTanh": ({"approximate": "tanh"}, lambda t: F.gelu(t, approximate="tanh")),
}


@given(op=st.sampled_from(sorted(ORACLES)), qt=ACTIVATION_QTYPES,
       lo=st.floats(-8.0, -0.1), hi=st.floats(0.1, 8.0))
def test_every_input_value(op: str, qt: QType, lo: float, hi: float) -> None:
    attrs, oracle = ORACLES[op]
    op_type = "Gelu" if op == "GeluTanh" else op
    qx = choose_qparams(lo, hi, qt)
    q_all = np.arange(qt.qmin, qt.qmax + 1).astype(qt.numpy_dtype)        # all 256 values
    real = oracle(torch.from_numpy(dequantize(q_all, qx).astype(np.float64))).numpy()
    qy = choose_qparams(float(real.min()), float(real.max()), qt)
    y = activation(op_type, q_all, x_qparams=qx, y_qparams=qy, **attrs)
    assert y.dtype == qt.numpy_dtype and y.shape == (256,)
    # exactly the table definition (O13) with the registered float32 function
    fn = ACTIVATIONS[op_type](**attrs)
    np.testing.assert_array_equal(y, quantize(fn(dequantize(q_all, qx)), qy))
    # within one unit of an independent float64 evaluation
    assert np.abs(y.astype(np.int64) - quantize(real.astype(np.float32), qy)).max() <= 1
    # the registered op is the same thing, and the LUT maps any array shape
    np.testing.assert_array_equal(QOPS[op_type](q_all.reshape(16, 16), x_qparams=qx,
                                                y_qparams=qy, **attrs), y.reshape(16, 16))


def test_relu_table_is_exact_identity_above_zero() -> None:
    qx = QParams(np.float32(0.1), np.int32(-20), QType.INT8, -128, 127)
    table = build_lut(ACTIVATIONS["Relu"](), qx, qx)
    q = np.arange(-128, 128)
    np.testing.assert_array_equal(table, np.maximum(q, -20))


def test_int16_table_has_65536_entries() -> None:
    qx = QParams(np.float32(2**-10), np.int32(0), QType.INT16, -32768, 32767)
    qy = QParams(np.float32(2**-15), np.int32(0), QType.INT16, -32768, 32767)
    table = build_lut(ACTIVATIONS["Tanh"](), qx, qy)
    assert table.shape == (65536,) and table.dtype == np.int16
    x = np.random.default_rng(0).integers(-32768, 32768, 1000).astype(np.int16)
    expected = quantize(np.tanh(dequantize(x, qx)), qy)
    np.testing.assert_array_equal(apply_lut(x, table, QType.INT16), expected)


def test_gelu_erf_matches_math() -> None:
    fn = ACTIVATIONS["Gelu"]()
    x = np.linspace(-4, 4, 33, dtype=np.float32)
    ref = [0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(np.float64)]
    np.testing.assert_allclose(fn(x), ref, rtol=1e-6, atol=1e-7)


def test_errors() -> None:
    q = QParams(np.float32(1.0), np.int32(0), QType.UINT8, 0, 255)
    with pytest.raises(ValueError, match="no lookup-table"):
        activation("Conv", np.zeros(2, np.uint8), x_qparams=q, y_qparams=q)
    with pytest.raises(ValueError, match="does not fit"):
        apply_lut(np.zeros(2, np.uint8), np.zeros(10, np.uint8), QType.UINT8)


@pytest.mark.parametrize("alpha", [1.0, 0.75])
def test_swish_table_takes_alpha_as_onnxruntime_runs_it(alpha: float) -> None:
    """Swish-24's alpha (the graph fuzzer's opset-24 blocks): the table function took no
    attribute, an internal error; it is ONNX Runtime's function body x * Sigmoid(alpha x)."""
    from lowp.runtime.float_normalize import Swish
    x = np.linspace(-8, 8, 257, dtype=np.float32)
    np.testing.assert_array_equal(ACTIVATIONS["Swish"](alpha=alpha)(x), Swish(x, alpha=alpha))
