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


def _pow_model(x_type: int, base: float | None = None,
               exponent: np.ndarray | None = None) -> bytes:
    """Pow over a vector `x` by a constant exponent, or of a constant base to the power x."""
    constant = np.array(base, np.float32) if exponent is None else exponent
    inputs = ["c", "x"] if exponent is None else ["x", "c"]
    graph = helper.make_graph(
        [helper.make_node("Pow", inputs, ["y"])], "pow",
        [helper.make_tensor_value_info("x", x_type, ["n"])],
        [helper.make_tensor_value_info("y", x_type, ["n"])],
        initializer=[numpy_helper.from_array(constant, "c")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    return model.SerializeToString()


def _assert_pow_bits(model: bytes, x: np.ndarray) -> None:
    """lowp's two backends give ONNX Runtime's (one thread) bits, NaN signs and payloads."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    theirs = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]
    bits = np.uint64 if x.dtype == np.float64 else np.uint32
    for backend in ("reference", "native"):
        ours = Session(model, backend=backend).run({"x": x})["y"]
        np.testing.assert_array_equal(ours.view(bits), theirs.view(bits), err_msg=backend)


# NaNs of both signs, signalling and quiet, with payloads; zeros, infinities, one, subnormals
_NAN_AND_SPECIAL = np.array([0xFFC00000, 0x7FC00000, 0xFFBFFFFF, 0x7F800001, 0xFF800F09,
                             0x7FC01389, 0x80000000, 0x00000000, 0x7F800000, 0xFF800000,
                             0x3F800000, 0xBF800000, 0x00000001, 0x80000001], np.uint32)


@given(st.lists(st.integers(0, 2**32 - 1), max_size=40),
       st.sampled_from([-1.0, 1.0, 0.0, 5.0, -3.0, -2.0, 0.5, 1.5, 2.0, 3.0]))
def test_float32_pow_by_a_constant_keeps_onnxruntime_nan_bits(patterns: list[int],
                                                              exponent: float) -> None:
    """glibc's powf of a negative NaN by an odd integer exponent is a positive NaN (it
    negates x * x), and powf(signalling NaN, 0) a quiet NaN, not 1: numpy's power and a
    ctypes call (which quiets the argument) gave the NaN's sign and 1 (every float32
    pattern, fourth sweep)."""
    x = np.concatenate([_NAN_AND_SPECIAL, np.array(patterns, np.uint32)]).view(np.float32)
    _assert_pow_bits(_pow_model(TensorProto.FLOAT, exponent=np.array(exponent, np.float32)), x)


@given(st.lists(st.integers(0, 2**32 - 1), max_size=40), st.sampled_from([1.0, -1.0, 2.0]))
def test_float32_pow_of_a_constant_base_keeps_onnxruntime_nan_bits(patterns: list[int],
                                                                   base: float) -> None:
    """powf(1, signalling NaN) is a quiet NaN in glibc, powf(1, quiet NaN) is 1."""
    x = np.concatenate([_NAN_AND_SPECIAL, np.array(patterns, np.uint32)]).view(np.float32)
    _assert_pow_bits(_pow_model(TensorProto.FLOAT, base=base), x)


@given(st.lists(st.floats(2.0**-300, 2.0**300), min_size=1, max_size=60),
       st.sampled_from([np.float64(-0.75), np.float64(1.5), np.float64(1 / 3),
                        np.float64(3.0), np.float64(-1.0), np.float32(0.5), np.int64(3)]))
def test_float64_pow_is_the_c_library_pow(xs: list[float], exponent: np.generic) -> None:
    """A double Pow is glibc's pow (and x * x * x by 3): numpy's float64 power, a SIMD
    routine of its own, was one ulp apart on about 5% of values."""
    x = np.array(xs + [float("nan"), -float("nan"), 0.0, -0.0, float("inf"), -2.5])
    _assert_pow_bits(_pow_model(TensorProto.DOUBLE, exponent=np.array(exponent)), x)


@needs_libm
def test_pow_float64_equals_the_c_library() -> None:
    rng = np.random.default_rng(5)
    x = np.exp(rng.uniform(-40, 40, 20000))
    y = rng.uniform(-4, 4, 20000)
    fn = ctypes.CDLL(LIBM).pow
    fn.restype, fn.argtypes = ctypes.c_double, [ctypes.c_double] * 2
    expected = np.array([fn(float(a), float(b)) for a, b in zip(x, y, strict=True)])
    np.testing.assert_array_equal(libm.pow_float64(x, y).view(np.uint64),
                                  expected.view(np.uint64))


@needs_libm
def test_midpoints_just_under_a_power_of_two_go_to_the_c_library() -> None:
    """Under a power of two the ulp is half the one above it: sqrt(2^60 - 2^8) lies half an
    ulp under 2^30 (a quarter of 2^30's own ulp), where glibc's pow rounds down and the long
    double power rounded up (found by test_float64_pow_is_the_c_library_pow)."""
    fn = ctypes.CDLL(LIBM).pow
    fn.restype, fn.argtypes = ctypes.c_double, [ctypes.c_double] * 2
    k = np.arange(40, 62, dtype=np.float64)
    x = np.concatenate([np.nextafter(2.0 ** (2 * k), 0), 2.0 ** (2 * k) - 2.0 ** (k - 22)])
    expected = np.array([fn(float(v), 0.5) for v in x])
    np.testing.assert_array_equal(libm.pow_float64(x, 0.5).view(np.uint64),
                                  expected.view(np.uint64))
    xf = np.nextafter(np.float32(2.0) ** np.arange(2, 60, 2, dtype=np.float32), np.float32(0))
    expected_f = np.array([_c("powf", float(v), 0.5) for v in xf], np.float32)
    np.testing.assert_array_equal(libm.powf(xf, np.float32(0.5)).view(np.uint32),
                                  expected_f.view(np.uint32))
