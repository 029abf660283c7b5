"""Relu, exact Gelu and Round bit for bit with ONNX Runtime on any float32 pattern, NaN
payloads and the sign of zero included (tools/every_float32.py's second sweep, repro 47):

* Relu is Eigen's cwiseMax(0) there: x < 0 ? 0 : x, so -0 stays -0 and a NaN stays itself
  (np.maximum gave +0 for -0), natively (float_unary's kRelu, alone and in fused chains);
* the exact Gelu on a CPU with AVX-512F is MLAS's MlasGeluErfKernelAvx512F, which puts a NaN
  input back as it is, a signalling one too (the arithmetic quiets it: 0x7f800001 ->
  0x7fc00001), natively float_unary's kGeluKeepNaN;
* Round is the C library's rint, which returns a signalling NaN as it is (numpy's rint
  quiets it).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from onnx import helper

from lowp import Session, ort_math
from lowp.runtime import native_backend, native_float
from lowp.runtime.float_ops import Gelu, Relu, Round
from tests.runtime.ort_agreement import onnxruntime_run

# signalling and quiet NaNs of both signs with payloads, zeros, infinities, subnormals,
# halves (Round's ties), the largest finite values
SPECIAL = np.array([0x7F800001, 0x7FA00000, 0xFFBFFFFF, 0x7FC00001, 0xFFC00000, 0x7FFFFFFF,
                    0x80000000, 0x00000000, 0x7F800000, 0xFF800000, 0x00000001, 0x80000001,
                    0x3F000000, 0xBF000000, 0x3FC00000, 0x40200000, 0xC0200000, 0x4B400001,
                    0x7F7FFFFF, 0xFF7FFFFF, 0x3F800000, 0xBF800000], np.uint32)
LENGTH = 37      # a vector loop and a tail on every path
OPS = {"Relu": ({}, 17), "Gelu": ({}, 20), "Round": ({}, 17)}
FLOAT_OPS = {"Relu": Relu, "Gelu": Gelu, "Round": Round}


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, np.float32).view(np.uint32)


@functools.cache
def _model(op: str) -> bytes:
    attributes, opset = OPS[op]
    graph = helper.make_graph(
        [helper.make_node(op, ["x"], ["y"], **attributes)], op.lower(),
        [helper.make_tensor_value_info("x", 1, [LENGTH])],
        [helper.make_tensor_value_info("y", 1, [LENGTH])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return model.SerializeToString()


@functools.cache
def _session(op: str, backend: str) -> Session:
    return Session(_model(op), backend=backend, threads=1)


def _assert_onnxruntime_bits(op: str, bits: np.ndarray) -> None:
    x = bits.view(np.float32)
    want = _bits(onnxruntime_run(_model(op), {"x": x})[0])
    for backend in ("reference", "native"):
        got = _bits(_session(op, backend).run({"x": x})["y"])
        np.testing.assert_array_equal(got, want, err_msg=f"{op} {backend}")


def _padded(bits: np.ndarray) -> np.ndarray:
    return np.resize(bits, LENGTH).astype(np.uint32)


@pytest.mark.parametrize("op", list(OPS))
def test_special_patterns_as_onnxruntime(op):
    _assert_onnxruntime_bits(op, _padded(SPECIAL))
    _assert_onnxruntime_bits(op, _padded(SPECIAL[::-1]))


@pytest.mark.parametrize("op", list(OPS))
@settings(max_examples=40, deadline=None)
@given(bits=hnp.arrays(np.uint32, LENGTH))
def test_any_bits_as_onnxruntime(op, bits):
    _assert_onnxruntime_bits(op, bits)


def test_relu_keeps_negative_zero_and_nan():
    x = _padded(SPECIAL[:8]).view(np.float32)
    with native_float.disabled():
        y = Relu(x)
    np.testing.assert_array_equal(_bits(y), _bits(np.where(x < 0, np.float32(0), x)))
    assert _bits(Relu(np.array([-0.0], np.float32)))[0] == 0x80000000
    assert _bits(Relu(np.array([-0.0])).astype(np.float32))[0] == 0x80000000


def test_round_keeps_signalling_nan_float64():
    x = np.array([0x7FF0000000000001, 0xFFF4000000000000], np.uint64).view(np.float64)
    np.testing.assert_array_equal(Round(x).view(np.uint64), x.view(np.uint64))


@pytest.mark.parametrize("path", native_backend.available_paths())
@given(bits=hnp.arrays(np.uint32, st.integers(1, 70)))
def test_native_kernels_equal_numpy_forms(path, bits):
    """kRelu and kGeluKeepNaN on any bits, every vector tail, every instruction-set path."""
    if native_float.kernels() == "none":
        pytest.skip("the extension has no float kernels")
    x = bits.view(np.float32)
    forms = {"Relu": np.where(x < 0, np.float32(0), x), "GeluKeepNaN": ort_math.gelu_keep_nan(x)}
    for op, want in forms.items():
        y = np.empty_like(x)
        with native_backend.use_path(path):
            native_backend._native.float_unary(native_float.UNARY_CODES[op], x, y, 0.0, 0.0, 1)
        np.testing.assert_array_equal(_bits(y), _bits(want), err_msg=op)


def test_gelu_keep_nan_only_changes_nans():
    bits = np.arange(0x7F7FF000, 0x7F801000, dtype=np.uint32)
    bits = np.concatenate([bits, bits | np.uint32(1 << 31)])
    x = bits.view(np.float32)
    kept, plain = ort_math.gelu_keep_nan(x), ort_math.gelu(x)
    nan = np.isnan(x)
    np.testing.assert_array_equal(_bits(kept[~nan]), _bits(plain[~nan]))
    np.testing.assert_array_equal(_bits(kept[nan]), bits[nan])


def test_relu_in_a_fused_chain_keeps_negative_zero():
    """Relu(-x) * x, one fused native pass: at x = +0 Relu's -0 gives -0 (+0 gave +0)."""
    nodes = [helper.make_node("Neg", ["x"], ["n"]), helper.make_node("Relu", ["n"], ["r"]),
             helper.make_node("Mul", ["r", "x"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [LENGTH])],
                              [helper.make_tensor_value_info("y", 1, [LENGTH])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = _padded(SPECIAL).view(np.float32)
    want = _bits(onnxruntime_run(model, {"x": x})[0])
    for backend in ("reference", "native"):
        got = _bits(Session(model, backend=backend, threads=1).run({"x": x})["y"])
        np.testing.assert_array_equal(got, want, err_msg=backend)
