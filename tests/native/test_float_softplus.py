"""The native float32 Softplus (ONNX Runtime's: an Eigen expression, x > 0 ? x + log1p(exp(-x))
: log1p(exp(x)) with Eigen's packet exp and log1p on packets of four from the start of each
run, expf and log1pf on its last length % 4 values) equals its numpy form
(float_ops._softplus32 with the native kernels off, lowp.eigen_math.evaluate) bit for bit, on
every path and thread count, for any input bits and any runs; the operator uses it and falls
back to numpy when disabled; a Softplus model replays inside a native Program with ONNX
Runtime's values at 1 and 2 threads."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from onnx import helper

from lowp import Session, eigen_math
from lowp.runtime import float_ops, native_backend, native_float
from lowp.runtime.backends import native_available

pytestmark = pytest.mark.skipif(not native_available(), reason="the native extension is not built")
PATHS = native_backend.available_paths()
SPECIALS = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1e-45, -1e-45, -1e-38, -2.0,
                     2.0, 1e-8, -1e-8, 15.9, 16.7, 88.7, 88.8, 89.0, -87.3, -88.8, -103.9,
                     -104.0, -104.1, -150.0, 3.4e38, -3.4e38, 0.5, 1e30], np.float32)


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, np.float32).view(np.uint32)


def _reference(x: np.ndarray) -> np.ndarray:
    """One Eigen assignment of the numpy form."""
    with native_float.disabled():
        return eigen_math.evaluate(x, lambda t, p: np.where(
            t > 0, t + p.log1p(p.exp(-t)), p.log1p(p.exp(t))))


def _native(x: np.ndarray, ends: list[int], threads: int) -> np.ndarray:
    y = np.empty_like(x)
    native_backend._native.float_softplus(x.reshape(-1), y.reshape(-1), ends, threads)
    return y


@pytest.mark.parametrize("path", PATHS)
@given(bits=hnp.arrays(np.uint32, st.integers(0, 300)), threads=st.sampled_from([1, 2]),
       specials_first=st.booleans())
def test_softplus_equals_eigen_form_on_any_bits(path, bits, threads, specials_first):
    """Any float32 (NaN payloads, subnormals, infinities), every length modulo 4."""
    parts = [SPECIALS, bits.view(np.float32)]
    x = np.concatenate(parts if specials_first else parts[::-1])
    with native_backend.use_path(path):
        got = _native(x, [], threads)
    np.testing.assert_array_equal(_bits(got), _bits(_reference(x)))


@pytest.mark.parametrize("path", PATHS)
@given(x=hnp.arrays(np.float32, st.integers(1, 200),
                    elements=st.floats(-110, 95, width=32, allow_subnormal=True)),
       cuts=st.lists(st.integers(0, 200)), threads=st.sampled_from([1, 2]))
def test_softplus_runs_each_as_its_own_assignment(path, x, cuts, threads):
    """Values where exp and log1p are neither 0 nor their input, cut into runs by their ends:
    each run's last length % 4 values through expf and log1pf."""
    ends = sorted({c for c in cuts if 0 < c < x.size} | {x.size})
    with native_backend.use_path(path):
        got = _native(x, ends, threads)
    starts = [0, *ends[:-1]]
    want = np.concatenate([_reference(x[a:b]) for a, b in zip(starts, ends, strict=True)])
    np.testing.assert_array_equal(_bits(got), _bits(want))


def test_softplus_sweep_of_bit_patterns_on_two_threads():
    """Every 4099th bit pattern (1M values), in thread chunks, with a ragged tail."""
    x = (np.arange(0, 2**32, 4099, dtype=np.uint64).astype(np.uint32)[:-3]).view(np.float32)
    assert x.size % 4 != 0
    np.testing.assert_array_equal(_bits(_native(x, [], 2)), _bits(_reference(x)))


def test_softplus_operator_runs_natively_and_falls_back():
    x = np.random.default_rng(0).normal(0, 9, (3, 7, 5)).astype(np.float32)
    native = native_float.softplus(x)
    assert native is not None
    with native_float.disabled():
        assert native_float.softplus(x) is None
        reference = float_ops.Softplus(x)
        mish = float_ops.Mish(x)
    np.testing.assert_array_equal(_bits(native), _bits(reference))
    np.testing.assert_array_equal(_bits(float_ops.Softplus(x)), _bits(reference))
    np.testing.assert_array_equal(_bits(float_ops.Mish(x)), _bits(mish))


@pytest.mark.parametrize("threads", [1, 2])
def test_softplus_model_replays_natively_with_onnxruntime_outputs(threads):
    """4 x 30001 values (8 blocks at 2 threads, the unaligned ones with heads of their own)."""
    node = helper.make_node("Softplus", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", 1, [4, 30001])],
                              [helper.make_tensor_value_info("y", 1, [4, 30001])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    session = Session(model, threads=threads)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    runtime = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(5)
    for run in range(4):
        x = (rng.standard_normal((4, 30001)) * 9).astype(np.float32)
        x[0, :6] = [np.nan, -0.0, np.inf, -np.inf, -103.99, -105.0]
        x[3, -3:] = [-0.5, 20.0, 1.0]
        got = session.run({"x": x})["y"]
        want = runtime.run(None, {"x": x})[0]
        np.testing.assert_array_equal(_bits(got), _bits(want), err_msg=f"run {run}")
    replayer = session._replayer
    assert replayer is not None
    signature = (("x", (4, 30001), "<f4"),)
    assert replayer.plain_steps(signature) == []
    assert replayer.native_only(signature)
