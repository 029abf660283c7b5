"""com.microsoft BiasGelu by two native calls (the float32 addition, then ONNX Runtime's
exact GELU) equals the numpy operator bit for bit on every instruction-set path, and a
Session replays it inside a native Program with ONNX Runtime's values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp import Session, ort_math
from lowp.runtime import native_backend, native_float
from lowp.runtime.float_ops import BiasGelu
from tests.runtime.ort_agreement import onnxruntime_run

PATHS = native_backend.available_paths()
pytestmark = pytest.mark.skipif(native_float.kernels() == "none",
                                reason="the extension has no float kernels")
SPECIALS = [0.0, -0.0, np.nan, np.inf, -np.inf, 1e-45, 3e38, -3e38, 5.5, -5.5]


@pytest.mark.parametrize("path", PATHS)
@given(rows=st.integers(1, 9), n=st.integers(1, 70), scale=st.sampled_from([0.1, 2.0, 40.0]),
       specials=st.integers(0, 4), seed=st.integers(0, 2**16))
@settings(max_examples=40, deadline=None)
def test_native_bias_gelu_equals_the_reference(path, rows, n, scale, specials, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, n)) * scale).astype(np.float32)
    bias = (rng.standard_normal(n) * scale).astype(np.float32)
    for _ in range(specials):
        x.reshape(-1)[rng.integers(0, x.size)] = SPECIALS[rng.integers(len(SPECIALS))]
    with np.errstate(all="ignore"):
        want = ort_math.gelu((x + bias).astype(np.float32))
        with native_backend.use_path(path):
            got = BiasGelu(x, bias)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_bias_gelu_replays_with_onnxruntime_values():
    rng = np.random.default_rng(1)
    bias = numpy_helper.from_array(rng.standard_normal(48).astype(np.float32), "bias")
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]),
         helper.make_node("BiasGelu", ["r", "bias"], ["g"], domain="com.microsoft"),
         helper.make_node("Neg", ["g"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 48])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 48])], [bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)])
    session = Session(model)
    for seed in range(5):
        x = (np.random.default_rng(seed).standard_normal((4, 48)) * 3).astype(np.float32)
        np.testing.assert_array_equal(session.run({"x": x})["y"],
                                      onnxruntime_run(model, {"x": x})[0])
    replayer = session._replayer
    (signature,) = list(replayer._ready)
    assert not any(s.op_type == "BiasGelu" for s in replayer.plain_steps(signature))
