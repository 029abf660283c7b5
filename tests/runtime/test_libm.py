"""lowp.libm equals the C library's powf and logf, and float32 Pow equals ONNX Runtime's
kernel (x*x, x*x*x, powf, or pow in double by the exponent's type)."""

from __future__ import annotations

import ctypes
import ctypes.util

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp import libm
from lowp.runtime import Session

LIBM = ctypes.util.find_library("m")
needs_libm = pytest.mark.skipif(LIBM is None, reason="no C math library found")


def _c(name: str, *args: float) -> float:
    fn = getattr(ctypes.CDLL(LIBM), name)
    fn.restype, fn.argtypes = ctypes.c_float, [ctypes.c_float] * len(args)
    return float(fn(*args))


@needs_libm
@given(st.lists(st.floats(2.0**-60, 2.0**60, width=32), min_size=1, max_size=64),
       st.floats(-3, 3, width=32))
def test_powf_equals_the_c_library(xs: list[float], y: float) -> None:
    x = np.array(xs, np.float32)
    expected = np.array([_c("powf", v, y) for v in xs], np.float32)
    np.testing.assert_array_equal(libm.powf(x, np.float32(y)), expected)


@needs_libm
def test_powf_on_midpoint_cases_and_logf() -> None:
    x = np.exp(np.random.default_rng(3).uniform(-15, 15, 60000)).astype(np.float32)
    for y in (0.5, 1.7, -0.6):
        expected = np.array([_c("powf", float(v), y) for v in x], np.float32)
        np.testing.assert_array_equal(libm.powf(x, np.float32(y)), expected)
    expected = np.array([_c("logf", float(v)) for v in x[:2000]], np.float32)
    np.testing.assert_array_equal(libm.logf(x[:2000]), expected)
    assert libm.powf(np.ones((2, 0), np.float32), 2.0).shape == (2, 0)


@pytest.mark.parametrize("exponent", [
    np.array(2, np.float32), np.array(3, np.float32), np.array(0.5, np.float32),
    np.array([1.5], np.float32), np.array(-0.75, np.float64), np.array(3, np.int64),
    np.linspace(-2, 2, 7, dtype=np.float32)])
def test_float_pow_equals_onnxruntime(exponent: np.ndarray) -> None:
    x = (np.abs(np.random.default_rng(0).standard_normal((5, 7))) * 3 + 0.01).astype(np.float32)
    node = helper.make_node("Pow", ["x", "e"], ["y"])
    graph = helper.make_graph(
        [node], "pow", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, x.shape)],
        initializer=[numpy_helper.from_array(exponent, "e")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    theirs = ort.InferenceSession(model.SerializeToString(),
                                  providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    for backend in ("reference", "native"):
        np.testing.assert_array_equal(Session(model, backend=backend).run({"x": x})["y"], theirs)
