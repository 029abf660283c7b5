"""The native float32 square root equals numpy's bit for bit (one correctly rounded IEEE
operation: NaN payloads, signed zeros, subnormals, infinities, negative arguments), on every
path, and float Sqrt steps replay with it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from onnx import TensorProto, helper

from lowp.runtime import Session, fuse_float, native_backend
from lowp.runtime.backends import native_available

pytestmark = pytest.mark.skipif(not native_available(), reason="the native extension is not built")
PATHS = native_backend.available_paths()
SPECIALS = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1e-45, -1e-45, 1e-38, 2.0,
                     -2.0, 3.4e38, 0.25], np.float32)


def _native_sqrt(x: np.ndarray, threads: int = 1) -> np.ndarray:
    y = np.empty_like(x)
    native_backend._native.float_sqrt(x.reshape(-1), y.reshape(-1), threads)
    return y


@pytest.mark.parametrize("path", PATHS)
@given(bits=hnp.arrays(np.uint32, st.integers(0, 300)), threads=st.sampled_from([1, 2]))
def test_sqrt_equals_numpy_on_any_bits(path, bits, threads):
    x = np.concatenate([bits.view(np.float32), SPECIALS])
    with native_backend.use_path(path), np.errstate(invalid="ignore"):
        got, want = _native_sqrt(x, threads), np.sqrt(x)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_large_arrays_on_two_threads():
    x = np.random.default_rng(0).standard_normal(300_000).astype(np.float32)
    with np.errstate(invalid="ignore"):
        want = np.sqrt(x)
    np.testing.assert_array_equal(_native_sqrt(x, 2).view(np.uint32), want.view(np.uint32))


def test_sqrt_steps_replay_with_the_plain_results():
    graph = helper.make_graph(
        [helper.make_node("Sqrt", ["x"], ["s"]), helper.make_node("Relu", ["s"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 7])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 7])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with fuse_float.disabled():         # (fused, Sqrt and Relu are one float_fused call)
        fast = Session(model)
    fused, plain = Session(model), Session(model, replay=False)
    rng = np.random.default_rng(1)
    for _ in range(5):
        x = rng.standard_normal((2, 7)).astype(np.float32)
        x[0, :3] = [-0.0, np.nan, -np.inf]
        with np.errstate(invalid="ignore"):
            got, want = fast.run({"x": x})["y"], plain.run({"x": x})["y"]
            got_fused = fused.run({"x": x})["y"]
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
        np.testing.assert_array_equal(got_fused.view(np.uint32), want.view(np.uint32))
    assert fast._replayer is not None and fused._replayer is not None
    assert fast._replayer.programs((("x", (2, 7), "<f4"),)) == [2]
    assert fused._replayer.programs((("x", (2, 7), "<f4"),)) == [1]
