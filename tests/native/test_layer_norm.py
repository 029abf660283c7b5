"""The native LayerNormalization (ONNX Runtime's order) equals its numpy form,
lowp.ort_math.layer_norm_rows, bit for bit on every instruction-set path: Y, Mean and
InvStdDev; that form equals ONNX Runtime (tests/runtime/test_ort_fusions.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lowp import ort_math
from lowp.runtime import native_backend, native_float
from lowp.runtime.float_nn import LayerNormalization

PATHS = native_backend.available_paths()
pytestmark = pytest.mark.skipif(native_float.kernels() == "none",
                                reason="the extension has no float kernels")


def _native(x: np.ndarray, scale: np.ndarray, bias: np.ndarray | None, eps: float
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    got = native_float.layer_norm(x, x.shape[-1], scale, bias, eps, (x.shape[0], 1))
    assert got is not None
    return got


def _same(got: tuple[np.ndarray, ...], x: np.ndarray, scale: np.ndarray,
          bias: np.ndarray | None, eps: float) -> None:
    y, mean, inv = ort_math.layer_norm_rows(x, scale, bias, eps)
    for g, r in zip(got, (y, mean.reshape(-1, 1), inv.reshape(-1, 1)), strict=True):
        assert g.dtype == np.float32 and g.shape == r.shape
        np.testing.assert_array_equal(g.view(np.uint32), r.view(np.uint32))


@pytest.mark.parametrize("path", PATHS)
@given(rows=st.integers(1, 20), n=st.integers(1, 300), seed=st.integers(0, 2**16),
       spread=st.sampled_from([1e-3, 1.0, 60.0, 3e4]), offset=st.sampled_from([0.0, 5.0, -1e3]),
       bias=st.booleans(), eps=st.sampled_from([1e-5, 1e-12, 0.1]),
       threads=st.sampled_from([1, 2]))
def test_native_layer_norm_equals_its_numpy_form(path, rows, n, seed, spread, offset, bias,
                                                 eps, threads):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, n)) * spread + offset).astype(np.float32)
    scale = rng.standard_normal(n).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32) if bias else None
    eps = float(np.float32(eps))
    with native_backend.use_path(path), native_float.threads(threads):
        got = _native(x, scale, b, eps)
    _same(got, x, scale, b, eps)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("n", [127, 128, 129, 1000, 9000])
def test_native_layer_norm_long_rows(path, n):
    """Rows past one pairwise block (128) and past numpy's buffer size (8192)."""
    rng = np.random.default_rng(n)
    x = (rng.standard_normal((3, n)) * 3 + 1e3).astype(np.float32)
    scale, bias = rng.standard_normal((2, n)).astype(np.float32)
    with native_backend.use_path(path):
        got = _native(x, scale, bias, 1e-5)
    _same(got, x, scale, bias, float(np.float32(1e-5)))


@pytest.mark.parametrize("path", PATHS)
def test_native_layer_norm_special_values(path):
    x = np.array([[1, 2, np.inf, 0, 1, 2, 3, 4, 5], [1, np.nan, 2, 3, 0, 0, 0, 0, 0],
                  [0] * 9, [-0.0] * 9, [3e38, -3e38, 0, 1, 2, 3, 4, 5, 6],
                  [1e-40, -1e-40, 0, 0, 0, 0, 0, 0, 1e-45]], np.float32)
    scale = np.linspace(-2, 2, 9).astype(np.float32)
    bias = np.linspace(1, -1, 9).astype(np.float32)
    for b in (bias, None):
        with native_backend.use_path(path), np.errstate(all="ignore"):
            got = _native(x, scale, b, 1e-5)
            _same(got, x, scale, b, float(np.float32(1e-5)))


@pytest.mark.parametrize("axis", [-1, -2, 1])
def test_layer_normalization_operator_uses_the_kernel_with_the_same_results(axis):
    """The float operator runs the kernel for float32 (any axis, statistics shaped as
    ONNX says) and gives the numpy form's values."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 24)).astype(np.float32)
    n = int(np.prod(x.shape[axis:]))
    scale, bias = rng.standard_normal((2, n)).astype(np.float32)
    shape = x.shape[axis:]
    got = LayerNormalization(x, scale.reshape(shape), bias.reshape(shape), axis=axis)
    with native_float.disabled():
        ref = LayerNormalization(x, scale.reshape(shape), bias.reshape(shape), axis=axis)
    for g, r in zip(got, ref, strict=True):
        assert g.shape == r.shape
        np.testing.assert_array_equal(g.view(np.uint32), r.view(np.uint32))


@pytest.mark.parametrize("path", PATHS)
@given(rows=st.integers(1, 40), n=st.integers(1, 300), seed=st.integers(0, 2**16),
       spread=st.sampled_from([1e-3, 1.0, 60.0, 3e4]), offset=st.sampled_from([0.0, 5.0, -1e3]),
       bias=st.booleans(), eps=st.sampled_from([1e-5, 1e-12, 0.1]),
       threads=st.sampled_from([1, 2]))
def test_native_welford_rows_equal_their_numpy_form(path, rows, n, seed, spread, offset, bias,
                                                    eps, threads):
    """SkipLayerNormalization's order (ort_math.skip_layer_norm_rows), rows in interleaved
    groups of eight and the remainder one by one."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, n)) * spread + offset).astype(np.float32)
    x[rng.random((rows, n)) < 0.05] = np.float32(2.0 ** 25)     # catastrophic running means
    scale = rng.standard_normal(n).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32) if bias else None
    eps = float(np.float32(eps))
    with native_backend.use_path(path), native_float.threads(threads):
        got = native_float.layer_norm(x, n, scale, b, eps, (rows, 1), welford=True)
    assert got is not None
    want = ort_math.skip_layer_norm_rows(x, scale, b, eps)
    for g, r in zip(got, (want[0], want[1].reshape(-1, 1), want[2].reshape(-1, 1)), strict=True):
        np.testing.assert_array_equal(g.view(np.uint32), r.view(np.uint32))
