"""The native loop over the C library's float functions (`float_libm`) gives the bits of
lowp.libm's ctypes calls (the reference: the same functions called one element at a time)
on sweeps with IEEE's special values, random bit patterns, every path and thread count;
the float operators built on it (Tan, Sinh, Cosh, Asinh, Acosh, Atanh) give the same
values with and without it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import helper

from lowp import Session, libm
from lowp.runtime import native_backend, native_float
from lowp.runtime.float_ops import FLOAT_OPS
from tests.runtime.ort_agreement import onnxruntime_run

PATHS = native_backend.available_paths()
NAMES = list(native_float.LIBM_CODES)
pytestmark = pytest.mark.skipif(native_float.kernels() == "none",
                                reason="the extension has no float kernels")
SPECIAL = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1.0, -1.0, 0.5, -0.5, 2.0,
                    -2.0, 1e-45, -1e-45, 1.1754942e-38, 3.4028235e38, -3.4028235e38,
                    np.pi / 2, 88.72284, 89.5, -103.97, 1e-4, 0.9999999, 1.0000001],
                   np.float32)


def _sweep() -> np.ndarray:
    """Special values, the domains' edges, and random values over 60 binades of both signs
    (of odd length: no multiple of any block)."""
    rng = np.random.default_rng(0)
    x = np.concatenate([SPECIAL, rng.standard_normal(4000) * 4, rng.uniform(-1, 1, 2000),
                        np.exp(rng.uniform(-30, 30, 2000)), -np.exp(rng.uniform(-30, 30, 2000)),
                        rng.uniform(1, 1.001, 500), rng.uniform(-1e8, 1e8, 500)])
    return x.astype(np.float32)[:11003]


def _same(got: np.ndarray | None, want: np.ndarray) -> None:
    assert got is not None and got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("threads", [1, 2])
def test_native_loop_equals_the_ctypes_calls_on_a_sweep(path, name, threads):
    x = _sweep().reshape(1, -1)
    with native_backend.use_path(path), native_float.threads(threads):
        got = native_float.libm(name, x)
    _same(got, getattr(libm, name)(x))


@pytest.mark.parametrize("name", NAMES)
@given(bits=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=40))
def test_native_loop_equals_the_ctypes_calls_on_any_bits(name, bits):
    """Any float32 bit pattern: subnormals, NaNs with payloads, both signs."""
    x = np.array(bits, np.uint32).view(np.float32)
    x = np.where(np.isnan(x), np.float32(np.nan), x)  # ctypes passes a signalling NaN quieted
    _same(native_float.libm(name, x), getattr(libm, name)(x))


def test_empty_input_and_unknown_code():
    assert native_float.libm("tanf", np.zeros((3, 0), np.float32)) is None
    ext = native_float._extension()
    with pytest.raises(ValueError, match="unknown function code 12"):
        ext.float_libm(12, np.zeros(2, np.float32), np.zeros(2, np.float32))


@pytest.mark.parametrize("op", ["Tan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh"])
@pytest.mark.parametrize("shape", [(0, 4), (3, 5), (2, 17, 33)])
def test_operators_give_the_same_values_natively(op, shape):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    if op == "Acosh":
        x = np.abs(x) + np.float32(1)
    if op == "Atanh":
        x = np.tanh(x)
    got = FLOAT_OPS[op](x)
    with native_float.disabled():
        want = FLOAT_OPS[op](x)
    _same(got, want)


@pytest.mark.parametrize("op", ["Tan", "Atanh"])
def test_operator_replays_in_a_program_with_onnxruntime_outputs(op):
    """A one-node model: ONNX Runtime's values on every run, and no step from Python once
    recorded."""
    node = helper.make_node(op, ["x"], ["y"])
    graph = helper.make_graph([node], op, [helper.make_tensor_value_info("x", 1, [3, 700])],
                              [helper.make_tensor_value_info("y", 1, [3, 700])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    session = Session(model, threads=1)
    rng = np.random.default_rng(5)
    for run in range(4):
        x = np.tanh(rng.standard_normal((3, 700))).astype(np.float32)
        np.testing.assert_array_equal(session.run({"x": x})["y"],
                                      onnxruntime_run(model, {"x": x})[0], err_msg=f"run {run}")
    replayer = session._replayer
    assert replayer is not None
    signature = (("x", (3, 700), "<f4"),)
    assert replayer.plain_steps(signature) == []
    assert replayer.native_only(signature)
