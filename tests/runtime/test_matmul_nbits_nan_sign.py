"""com.microsoft MatMulNBits (accuracy level 4) with NaNs in the activation or the scales:
which NaN an output carries ((O220)). ONNX Runtime's last addition is the zero-point term
plus the product lanes, and the term's fused multiply-adds keep, of several NaNs, the
negated scale's (-s_b * z_b), then the activation block's, then the running term's; lowp
added the lanes first and took its own fused multiply-add's NaN, so a NaN scale came out
with the other sign (0x7fc00001 where ONNX Runtime gives 0xffc00001)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lowp
from lowp.ops.matmul_nbits import PackedNBits
from lowp.runtime import native_backend as nb
from lowp.runtime import native_float
from tests.runtime.test_ort_matmul_nbits_blocks import _contrib_model, _ort

#: two quiet NaNs of each sign and a signalling one, distinct payloads
_NANS = np.array([0x7FC00001, 0xFFC00002, 0x7F800003], np.uint32).view(np.float32)


def _case(block: int, bits: int, m: int, k: int, n: int, x_nans: float, s_nans: float,
          seed: int) -> tuple[object, np.ndarray]:
    rng = np.random.default_rng(seed)
    blocks = -(-k // block)
    w = rng.integers(0, 1 << bits, (n, blocks, block)).astype(np.uint8)
    s = rng.uniform(0.001, 0.02, (n, blocks)).astype(np.float32)
    s = np.where(rng.random(s.shape) < s_nans, rng.choice(_NANS, s.shape), s)
    x = rng.normal(0, 1, (m, k)).astype(np.float32)
    x = np.where(rng.random(x.shape) < x_nans, rng.choice(_NANS, x.shape), x)
    return _contrib_model(k, n, m, w, s.astype(np.float32), None, None, bits, block), x


def _assert_kernels_equal_onnxruntime(block: int, bits: int, m: int, k: int, n: int,
                                      x_nans: float, s_nans: float, seed: int,
                                      threads: int) -> None:
    """The numpy reference and the native kernel on every path (a Session refuses NaN
    scales, so the kernels are called as lowering calls them) give ONNX Runtime's bits."""
    rng = np.random.default_rng(seed)
    blocks = -(-k // block)
    w = rng.integers(0, 1 << bits, (n, blocks, block)).astype(np.uint8)
    s = rng.uniform(0.001, 0.02, (n, blocks)).astype(np.float32)
    s = np.where(rng.random(s.shape) < s_nans, rng.choice(_NANS, s.shape), s).astype(np.float32)
    x = rng.normal(0, 1, (m, k)).astype(np.float32)
    x = np.where(rng.random(x.shape) < x_nans, rng.choice(_NANS, x.shape), x)
    want = _ort(_contrib_model(k, n, m, w, s, None, None, bits, block), x, threads)
    packed = PackedNBits(w, s, np.full((n, blocks), 1 << (bits - 1), np.uint8), bits=bits)
    np.testing.assert_array_equal(packed.run(x, None).view(np.uint32), want.view(np.uint32),
                                  err_msg="numpy")
    for path in nb.available_paths():
        with nb.use_path(path), native_float.threads(threads):
            got = native_float.matmul_nbits(x, packed, None)
        assert got is not None
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32),
                                      err_msg=path)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("block", [16, 32, 64, 128])
def test_nan_scale_gives_the_negated_scales_nan(block: int, threads: int) -> None:
    # NaN scales, finite activations: ONNX Runtime's NaN is -s_b's (0xffc00001 for a
    # scale 0x7fc00001); before, lowp gave the scale's own sign
    _assert_kernels_equal_onnxruntime(block, 8, 3, 2 * block + 5, 5, 0.0, 0.4, block, threads)


@settings(max_examples=25, deadline=None)
@given(block=st.sampled_from([16, 32, 64, 128]), bits=st.sampled_from([4, 8]),
       m=st.integers(1, 4), k=st.integers(1, 300), n=st.sampled_from([1, 3, 4, 5, 8]),
       x_nans=st.sampled_from([0.0, 0.05]), s_nans=st.sampled_from([0.1, 0.3]),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**31 - 1))
def test_nans_in_scales_and_activation_as_onnxruntime(block: int, bits: int, m: int, k: int,
                                                      n: int, x_nans: float, s_nans: float,
                                                      threads: int, seed: int) -> None:
    _assert_kernels_equal_onnxruntime(block, bits, m, k, n, x_nans, s_nans, seed, threads)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("block", "seed"), [(16, 8), (32, 61), (16, 72), (64, 114)])
def test_activation_nans_in_a_session_as_onnxruntime(block: int, seed: int,
                                                     threads: int) -> None:
    # finite scales, NaN activations in several blocks of a row: the later block's NaN in
    # the zero-point term (the activation's before the running term's); before, lowp's
    # reference kept another on these inputs
    model, x = _case(block, 8, 3, 150, 5, 0.08, 0.0, seed)
    want = _ort(model, x, threads).view(np.uint32)   # type: ignore[arg-type]
    for path in nb.available_paths():
        with nb.use_path(path):
            for backend in ("auto", "reference"):
                got = lowp.Session(model, backend=backend, threads=threads).run({"x": x})["y"]
                np.testing.assert_array_equal(got.view(np.uint32), want,
                                              err_msg=f"{path} {backend}")
