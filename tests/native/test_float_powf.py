"""Pow of float32 by one float32 exponent natively (`float_powf`, docs/operators.md (O163)):
the C library's powf per element, as ONNX Runtime's Pow calls it (powf(x, 0.5) is not
sqrtf(x): +0 for -0, +inf for -inf, and glibc's powf is not correctly rounded). The loop
gives the bits of lowp.libm.powf (the reference) on every path and thread count, the
operator gives the same values with and without it, and a model's Pow by 0.5 replays inside
the Program with ONNX Runtime's outputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import helper, numpy_helper

from lowp import Session, libm
from lowp.runtime import native_backend, native_float
from lowp.runtime.float_ops import FLOAT_OPS
from tests.runtime.ort_agreement import onnxruntime_run

PATHS = native_backend.available_paths()
EXPONENTS = [0.5, -0.5, 1 / 3, 2.5, -1.5, 0.0, -0.0, 1.0, -1.0, 2.0, 3.0, 7.0, 1e-3, 40.0,
             np.inf, -np.inf]
pytestmark = pytest.mark.skipif(native_float.kernels() == "none",
                                reason="the extension has no float kernels")
SPECIAL = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1.0, -1.0, 0.5, -0.5, 2.0,
                    -2.0, 1e-45, -1e-45, 1.1754942e-38, 3.4028235e38, -3.4028235e38, 1e-4,
                    0.9999999, 1.0000001, 4.0, 0.25], np.float32)


def _sweep() -> np.ndarray:
    """Special values and random values over 60 binades of both signs (odd length)."""
    rng = np.random.default_rng(0)
    x = np.concatenate([SPECIAL, rng.standard_normal(3000) * 4, rng.uniform(0, 1, 2000),
                        np.exp(rng.uniform(-30, 30, 3000)), -np.exp(rng.uniform(-30, 30, 1000)),
                        rng.uniform(1, 1.001, 500)])
    return x.astype(np.float32)[:9001]


def _same(got: np.ndarray | None, want: np.ndarray) -> None:
    assert got is not None and got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("threads", [1, 2])
def test_native_loop_equals_the_c_library_on_a_sweep(path, threads):
    x = _sweep().reshape(1, -1)
    for e in EXPONENTS:
        exponent = np.array(e, np.float32)
        with native_backend.use_path(path), native_float.threads(threads):
            got = native_float.powf(x, exponent)
        _same(got, libm.powf(x, exponent))


@given(bits=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=40),
       e=st.sampled_from(EXPONENTS) | st.floats(-50, 50, width=32))
def test_native_loop_equals_the_c_library_on_any_bits(bits, e):
    """Any float32 bit pattern (subnormals, NaNs with payloads, both signs)."""
    x = np.array(bits, np.uint32).view(np.float32)
    x = np.where(np.isnan(x), np.float32(np.nan), x)  # ctypes passes a signalling NaN quieted
    exponent = np.array(e, np.float32)
    _same(native_float.powf(x, exponent), libm.powf(x, exponent))


def test_not_sqrt_and_no_nan_exponent():
    x = np.array([-0.0, -np.inf, 2.0], np.float32)
    y = native_float.powf(x, np.array(0.5, np.float32))
    assert y is not None
    assert y.view(np.uint32).tolist() == np.array([0.0, np.inf, np.sqrt(np.float32(2))],
                                                  np.float32).view(np.uint32).tolist()
    assert native_float.powf(x, np.array(np.nan, np.float32)) is None
    assert native_float.powf(np.zeros((2, 0), np.float32), np.array(0.5, np.float32)) is None


@pytest.mark.parametrize("e", [0.5, -1.5, 2.0])
@pytest.mark.parametrize("shape", [(0, 4), (3, 5), (2, 17, 33)])
def test_operator_gives_the_same_values_natively(e, shape):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    exponent = np.array([e], np.float32)
    got = FLOAT_OPS["Pow"](x, exponent)
    with native_float.disabled():
        want = FLOAT_OPS["Pow"](x, exponent)
    _same(got, want)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("e", [0.5, -1.5])
def test_pow_by_a_constant_replays_in_the_program(threads, e):
    """effword_resnet50_int8's L2 normalisation takes a Pow by 0.5 of a sum of squares: it
    ran from Python (lowp.libm.powf) between two Programs on every replayed run."""
    nodes = [helper.make_node("Mul", ["x", "x"], ["sq"]),
             helper.make_node("ReduceSum", ["sq", "axes"], ["s"], keepdims=1),
             helper.make_node("Pow", ["s", "e"], ["norm"]),
             helper.make_node("Pow", ["x", "e"], ["px"]),
             helper.make_node("Div", ["px", "norm"], ["y"])]
    inits = [numpy_helper.from_array(np.array(e, np.float32), "e"),
             numpy_helper.from_array(np.array([1], np.int64), "axes")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", 1, [4, 300])],
        [helper.make_tensor_value_info("y", 1, [4, 300])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    session = Session(model, threads=threads)
    rng = np.random.default_rng(5)
    for run in range(4):
        x = (rng.standard_normal((4, 300)) * 2).astype(np.float32)
        x[0, :4] = [-0.0, -np.inf, np.nan, 0.0]
        np.testing.assert_array_equal(session.run({"x": x})["y"],
                                      onnxruntime_run(model, {"x": x}, threads=threads)[0],
                                      err_msg=f"run {run}")
    replayer = session._replayer
    assert replayer is not None
    signature = (("x", (4, 300), "<f4"),)
    assert [s.op_type for s in replayer.plain_steps(signature)] == []
    assert replayer.native_only(signature)
