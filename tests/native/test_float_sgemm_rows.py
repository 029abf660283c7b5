"""The native MLAS-order SGEMM's one-column and transposed one-row products (MLAS's
MlasSgemmKernelM1TransposeBAvx: eight lanes of rounded products, padded with +0) equal
lowp.mlas_sgemm.gemm bit for bit, with operands of unit strides (read as vectors) and of any
other strides (transposed views), for every depth around the eight-lane blocks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowp import mlas_sgemm
from lowp.runtime import native_float

pytestmark = pytest.mark.skipif(native_float.kernels() == "none",
                                reason="the native extension is not built")


def _operand(rng: np.random.Generator, shape: tuple[int, int], transposed: bool,
             zeros: float) -> np.ndarray:
    """A float32 matrix with some -0 and +0 entries, contiguous or a transposed view."""
    v = rng.standard_normal(shape[::-1] if transposed else shape).astype(np.float32)
    v[rng.random(v.shape) < zeros] = -0.0
    v[rng.random(v.shape) < zeros / 2] = 0.0
    return v.T if transposed else v


@settings(max_examples=150, deadline=None)
@given(m=st.integers(1, 40), k=st.integers(1, 70), a_view=st.booleans(), b_view=st.booleans(),
       zeros=st.sampled_from([0.0, 0.3, 1.0]), seed=st.integers(0, 2**16))
def test_one_column_products_equal_the_reference(m, k, a_view, b_view, zeros, seed):
    """N = 1 (a Conv of one output position, a matrix-vector product): each row of A
    against B's column."""
    rng = np.random.default_rng(seed)
    a, b = _operand(rng, (m, k), a_view, zeros), _operand(rng, (k, 1), b_view, zeros)
    got = np.empty((m, 1), np.float32)
    assert native_float.sgemm(a, b, got)
    want = mlas_sgemm.gemm(a, b)
    np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32))


@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 40), k=st.integers(1, 70), a_view=st.booleans(), b_view=st.booleans(),
       zeros=st.sampled_from([0.0, 0.3, 1.0]), seed=st.integers(0, 2**16))
def test_one_row_products_of_a_transposed_b_equal_the_reference(n, k, a_view, b_view, zeros,
                                                               seed):
    """M = 1 with B read transposed (Gemm's transB): x against each row of B's storage."""
    rng = np.random.default_rng(seed)
    a, stored = _operand(rng, (1, k), a_view, zeros), _operand(rng, (n, k), b_view, zeros)
    got = np.empty((1, n), np.float32)
    assert native_float.sgemm(a, stored.T, got, trans_b=True)
    want = mlas_sgemm.gemm(a, stored, trans_b=True)
    np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32))


@pytest.mark.parametrize("k", [7, 8, 9, 16, 17])
def test_all_negative_zero_products_end_as_the_reference(k):
    """-0 products in every lane: lanes start at +0, so a lane stays +0; the padding of a
    partial last block adds +0 too. The sign of each result is the reference's."""
    a = np.full((3, k), -0.0, np.float32)
    b = np.ones((k, 1), np.float32)
    got = np.empty((3, 1), np.float32)
    assert native_float.sgemm(a, b, got)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(mlas_sgemm.gemm(a, b)))


@settings(max_examples=100, deadline=None)
@given(m=st.integers(1, 40), k=st.integers(1, 70), one_column=st.booleans(),
       zeros=st.sampled_from([0.0, 0.3, 1.0]), seed=st.integers(0, 2**16))
def test_one_column_and_one_row_products_onto_an_init_equal_the_reference(m, k, one_column,
                                                                         zeros, seed):
    """beta = 1 (a Conv of one output position accumulated onto FusedConv's Sum): each
    row's sum, then + C; -0 entries of C keep a -0 sum's sign."""
    rng = np.random.default_rng(seed)
    a = _operand(rng, (m, k) if one_column else (1, k), False, zeros)
    b = _operand(rng, (k, 1) if one_column else (m, k), False, zeros)
    c = _operand(rng, (m, 1) if one_column else (1, m), False, zeros)
    _assert_row_product_equals_reference(a, b, c, one_column)


@settings(max_examples=40, deadline=None)
@given(m=st.integers(60, 200), k=st.integers(1, 40), one_column=st.booleans(),
       accumulate=st.booleans(), seed=st.integers(0, 2**16))
def test_products_of_more_rows_than_one_block_of_folds_equal_the_reference(m, k, one_column,
                                                                           accumulate, seed):
    """The AVX2 paths fold the rows' sums in blocks of 64 (native/float_driver.cpp,
    sgemm_m1_transposed): rows on either side of a block's end, and the last group of four,
    two or one rows in the last block, sum as in the whole product."""
    rng = np.random.default_rng(seed)
    a = _operand(rng, (m, k) if one_column else (1, k), False, 0.3)
    b = _operand(rng, (k, 1) if one_column else (m, k), False, 0.3)
    c = _operand(rng, (m, 1) if one_column else (1, m), False, 0.3) if accumulate else None
    _assert_row_product_equals_reference(a, b, c, one_column)


def _assert_row_product_equals_reference(a: np.ndarray, b: np.ndarray, c: np.ndarray | None,
                                         one_column: bool) -> None:
    """a b (+ c) natively equals lowp.mlas_sgemm bit for bit: one column (a m x k, b k x 1)
    or one row (b read transposed)."""
    got = np.empty((a.shape[0], 1) if one_column else (1, b.shape[0]), np.float32)
    if one_column:
        assert native_float.sgemm(a, b, got, init=c)
        want = mlas_sgemm.gemm(a, b, c=c)
    else:
        assert native_float.sgemm(a, b.T, got, trans_b=True, init=c)
        want = mlas_sgemm.gemm(a, b, trans_b=True, c=c)
    np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32))
