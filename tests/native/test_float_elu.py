"""The native float32 Elu (ONNX Runtime's: an Eigen expression, Eigen's packet exp on packets
of four from the start, expf on the last n % 4 values) equals its numpy form
(float_ops._elu32, lowp.eigen_math.evaluate) bit for bit, on every path and thread count, for
any input bits and alpha; the operator uses it and falls back to numpy when disabled; an Elu
model replays inside a native Program with ONNX Runtime's values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from onnx import helper

from lowp import Session
from lowp.runtime import float_ops, native_backend, native_float
from lowp.runtime.backends import native_available
from tests.runtime.ort_agreement import onnxruntime_run

pytestmark = pytest.mark.skipif(not native_available(), reason="the native extension is not built")
PATHS = native_backend.available_paths()
SPECIALS = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1e-45, -1e-45, -1e-38, -2.0,
                     -0.34657359, -0.3465736, -87.3, -88.8, -103.9, -104.0, -104.1, -150.0,
                     88.723, 88.8, -1e-8, -20.5, -3.4e38, 0.5], np.float32)
ALPHAS = st.sampled_from([1.0, 0.5, 1.6732632, -2.0, 0.0, 1e-30, 3e38])


def _native_elu(x: np.ndarray, alpha: float, threads: int = 1) -> np.ndarray:
    y = np.empty_like(x)
    native_backend._native.float_elu(x.reshape(-1), y.reshape(-1), float(np.float32(alpha)),
                                     [], threads)
    return y


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, np.float32).view(np.uint32)


@pytest.mark.parametrize("path", PATHS)
@given(bits=hnp.arrays(np.uint32, st.integers(0, 300)), threads=st.sampled_from([1, 2]),
       specials_first=st.booleans(), alpha=ALPHAS)
def test_elu_equals_eigen_form_on_any_bits(path, bits, threads, specials_first, alpha):
    """Any float32 (NaN payloads, subnormals, infinities), every length modulo 4 (the last
    n % 4 values go through expf)."""
    parts = [SPECIALS, bits.view(np.float32)]
    x = np.concatenate(parts if specials_first else parts[::-1])
    with native_backend.use_path(path):
        got = _native_elu(x, alpha, threads)
    np.testing.assert_array_equal(_bits(got), _bits(float_ops._elu32(x, alpha)))


@pytest.mark.parametrize("path", PATHS)
@given(x=hnp.arrays(np.float32, st.integers(0, 200),
                    elements=st.floats(-110, 1, width=32, allow_subnormal=True)),
       alpha=ALPHAS)
def test_elu_equals_eigen_form_on_the_exp_range(path, x, alpha):
    """Values where exp is neither 0 nor the input: the polynomial and 2^m (subnormal
    results near -104)."""
    with native_backend.use_path(path):
        got = _native_elu(x, alpha)
    np.testing.assert_array_equal(_bits(got), _bits(float_ops._elu32(x, alpha)))


def test_elu_sweep_of_negative_bit_patterns_on_two_threads():
    """Every 1021st negative bit pattern down to -inf (and NaNs), in thread chunks, with a
    ragged tail."""
    x = (np.arange(2**31, 2**32, 1021, dtype=np.uint64).astype(np.uint32)[:-1]).view(np.float32)
    assert x.size % 4 != 0
    np.testing.assert_array_equal(_bits(_native_elu(x, 1.0, 2)),
                                  _bits(float_ops._elu32(x, 1.0)))


@pytest.mark.parametrize("path", PATHS)
@given(x=hnp.arrays(np.float32, st.integers(1, 120),
                    elements=st.floats(-110, 1, width=32, allow_subnormal=True)),
       cuts=st.lists(st.integers(0, 120)), threads=st.sampled_from([1, 2]), alpha=ALPHAS)
def test_elu_runs_each_as_its_own_assignment(path, x, cuts, threads, alpha):
    """Consecutive runs given by their ends (ONNX Runtime's parallel blocks and their heads):
    each run's last length % 4 values go through expf, the rest through the packets."""
    ends = sorted({c for c in cuts if 0 < c < x.size} | {x.size})
    y = np.empty_like(x)
    with native_backend.use_path(path):
        native_backend._native.float_elu(x, y, float(np.float32(alpha)), ends, threads)
    starts = [0, *ends[:-1]]
    want = np.concatenate([float_ops._elu32(x[a:b], alpha)
                           for a, b in zip(starts, ends, strict=True)])
    np.testing.assert_array_equal(_bits(y), _bits(want))


def test_run_ends_are_checked():
    x = np.ones(10, np.float32)
    for ends in ([5], [5, 5, 10], [0, 10], [11]):
        with pytest.raises(ValueError):
            native_backend._native.float_elu(x, np.empty_like(x), 1.0, ends, 1)


def test_elu_operator_runs_natively_and_falls_back():
    x = np.random.default_rng(0).normal(0, 3, (3, 7, 5)).astype(np.float32)
    native = native_float.elu(x, 0.7)
    assert native is not None
    with native_float.disabled():
        assert native_float.elu(x, 0.7) is None
        reference = float_ops.Elu(x, alpha=0.7)
    np.testing.assert_array_equal(_bits(native), _bits(reference))
    np.testing.assert_array_equal(_bits(float_ops.Elu(x, alpha=0.7)), _bits(reference))


@pytest.mark.parametrize("alpha", [1.0, 0.3])
def test_elu_model_replays_natively_with_onnxruntime_outputs(alpha):
    """3 x 101 values: the last 3 through expf (madmom_key_cnn's Elu after each Conv)."""
    node = helper.make_node("Elu", ["x"], ["y"], alpha=alpha)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", 1, [3, 101])],
                              [helper.make_tensor_value_info("y", 1, [3, 101])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    session = Session(model, threads=1)
    rng = np.random.default_rng(5)
    for run in range(4):
        x = (rng.standard_normal((3, 101)) * 4).astype(np.float32)
        x[0, :6] = [np.nan, -0.0, np.inf, -np.inf, -103.99, -105.0]
        x[2, -3:] = [-0.5, -2.0, 1.0]
        got = session.run({"x": x})["y"]
        want = onnxruntime_run(model, {"x": x})[0]
        nan = np.isnan(want)
        np.testing.assert_array_equal(np.isnan(got), nan)
        np.testing.assert_array_equal(_bits(got[~nan]), _bits(want[~nan]), err_msg=f"run {run}")
    replayer = session._replayer
    assert replayer is not None
    signature = (("x", (3, 101), "<f4"),)
    assert replayer.plain_steps(signature) == []
    assert replayer.native_only(signature)
