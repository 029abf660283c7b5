"""A model's constant B (a frozen array) is packed into the SGEMM's panels once, as ONNX
Runtime packs constant weights when a session is made, and no later call checks it: the
products equal lowp.mlas_sgemm.gemm bit for bit on every instruction-set path, prepacked or
not, and panels made for another K block or kernel width are not used."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowp import mlas_sgemm
from lowp.runtime import native_backend, native_float
from lowp.runtime.prepacked import freeze

PATHS = native_backend.available_paths()
pytestmark = pytest.mark.skipif(native_float.kernels() == "none",
                                reason="the extension has no float kernels")
SIZES = st.one_of(st.integers(1, 40), st.sampled_from([127, 128, 129, 257, 300, 600]))


def _operands(m: int, k: int, n: int, ta: bool, tb: bool, seed: int
              ) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    return a, freeze(b)


@pytest.mark.parametrize("path", PATHS)
@given(m=SIZES, k=SIZES, n=SIZES, ta=st.booleans(), tb=st.booleans(), packed=st.booleans(),
       alpha=st.sampled_from([1.0, 0.5]), seed=st.integers(0, 2**16),
       threads=st.sampled_from([1, 2]))
@settings(max_examples=30, deadline=None)
def test_products_of_a_constant_b_equal_the_mlas_order(path, m, k, n, ta, tb, packed, alpha,
                                                       seed, threads):
    a, b = _operands(m, k, n, ta, tb, seed)
    want = mlas_sgemm.gemm(a, b, alpha=alpha, trans_a=ta, trans_b=tb, packed=packed,
                           threads=threads)      # MLAS's cut between threads included
    with native_backend.use_path(path), native_float.threads(threads):
        for _ in range(3):   # packed on the first call, the same panels after
            got = native_float.gemm(a, b, None, alpha=alpha, trans_a=ta, trans_b=tb,
                                    b_packed=packed)
            assert got is not None
            np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
        if not ta and alpha == 1.0:
            got = native_float.matmul(a, b, trans_b=tb, b_packed=packed)
            np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("threads", [1, 2])
def test_panels_are_made_once_per_constant_path_and_part(threads):
    # at 2 threads MLAS cuts this product's N in two (lowp.mlas_sgemm.thread_parts): each
    # part's panels are made once
    a, b = _operands(8, 300, 1200, False, False, 1)
    want = mlas_sgemm.gemm(a, b, packed=False, threads=threads)
    parts = len(mlas_sgemm.thread_parts(8, 1200, 300, threads))
    before = len(native_float._PANELS)
    with native_float.threads(threads):
        for path in PATHS:
            with native_backend.use_path(path):
                for _ in range(2):
                    got = native_float.matmul(a, b)
                    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
        kernels = set()
        for path in PATHS:
            with native_backend.use_path(path):
                kernels.add(native_float.kernels())
        assert len(native_float._PANELS) - before == len(kernels) * parts
        # a writeable B is not a constant: no panels kept for it
        native_float.matmul(a, np.array(b))
    assert len(native_float._PANELS) - before == len(kernels) * parts


def test_panels_of_another_block_or_size_are_not_used():
    ext = native_float._extension()
    a, b = _operands(8, 300, 200, False, False, 2)
    stride_k, width, floats = ext.float_sgemm_panels(8, b, False, False, False)
    assert stride_k > 0 and floats > 0
    want = mlas_sgemm.gemm(a, b)
    other = 64 if stride_k != 64 else 128
    panels = np.empty(floats, np.float32)
    ext.float_sgemm_pack(b, panels, other, width)
    got = np.empty((8, 200), np.float32)
    ext.float_sgemm_mlas(a, b, got, 1.0, False, False, False, 1, None, panels, other, width)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    with pytest.raises(ValueError, match="panels"):
        ext.float_sgemm_mlas(a, b, got, 1.0, False, False, False, 1, None, panels[1:],
                             stride_k, width)
    with pytest.raises(ValueError, match="size"):
        ext.float_sgemm_pack(b, panels[1:], stride_k, width)
    # one row of A: the M = 1 kernel reads B in place, no panels
    assert ext.float_sgemm_panels(1, b, False, False, False)[2] == 0
