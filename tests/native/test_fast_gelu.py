"""The tanh GELU (ONNX Gelu approximate='tanh', com.microsoft FastGelu with and without bias)
as one native pass (the unary kernel's FastGelu without a bias, a float_fused chain with one
or on a strided input) equals lowp.ort_math.gelu_tanh bit for bit on every instruction-set
path and thread count, and a one-node FastGelu session equals ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowp import ort_math
from lowp.runtime import float_ops, native_backend, native_float

PATHS = native_backend.available_paths()
pytestmark = pytest.mark.skipif(native_float.kernels() == "none",
                                reason="the extension has no float kernels")
SPECIALS = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1e-45, 3e38, -3e38, 10.0, -10.0,
                     5.5, -5.5], np.float32)


def _reference(x: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    with np.errstate(all="ignore"):
        s = x if bias is None else (x + bias).astype(np.float32)
        return ort_math.gelu_tanh(s)


@settings(max_examples=80, deadline=None)
@given(shape=st.lists(st.integers(0, 40), min_size=1, max_size=3),
       spread=st.sampled_from([1e-3, 1.0, 4.0, 30.0, 1e20]), with_bias=st.booleans(),
       specials=st.integers(0, 4), transposed=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_gelu_tanh_equals_reference(shape, spread, with_bias, specials, transposed,
                                    seed) -> None:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * spread).astype(np.float32)
    if x.size:
        x.reshape(-1)[rng.integers(0, x.size, specials)] = rng.choice(SPECIALS, specials)
    if transposed:
        x = x.T
    bias = (rng.standard_normal(x.shape[-1:]) * spread).astype(np.float32) if with_bias else None
    want = _reference(x, bias)
    for path in PATHS:
        with native_backend.use_path(path):
            for threads in (1, 2):
                with native_float.threads(threads), np.errstate(all="ignore"):
                    got = native_float.gelu_tanh(x, bias)
                    via_op = float_ops.FastGelu(x, bias)
                if x.size == 0:
                    assert got is None
                    continue
                assert got is not None and got.shape == want.shape
                np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32),
                                              err_msg=f"{path} {threads}")
                np.testing.assert_array_equal(via_op.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("with_bias", [True, False])
def test_fast_gelu_session_equals_onnxruntime(with_bias: bool) -> None:
    from onnx import TensorProto, helper, numpy_helper

    from lowp import Session
    from tests.runtime.ort_agreement import onnxruntime_run

    rng = np.random.default_rng(1)
    bias = rng.standard_normal(64).astype(np.float32)
    node = helper.make_node("FastGelu", ["x", "bias"] if with_bias else ["x"], ["y"],
                            domain="com.microsoft")
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 64])],
        [numpy_helper.from_array(bias, "bias")] if with_bias else [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)])
    session = Session(model, threads=1)
    for run in range(4):
        x = (rng.standard_normal((3, 64)) * (run + 1)).astype(np.float32)
        np.testing.assert_array_equal(session.run({"x": x})["y"],
                                      onnxruntime_run(model, {"x": x})[0])
