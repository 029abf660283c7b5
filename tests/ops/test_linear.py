"""Quantized MatMul / Gemm against an independent int64 einsum."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from lowp.fixedpoint import Requant, RequantMode, requantize
from lowp.ops import exact_matmul, gemm, matmul
from lowp.qparams import QType
from tests.strategies import ACTIVATION_QTYPES


@given(xq=ACTIVATION_QTYPES, batch=st.lists(st.integers(0, 3), max_size=2),
       m=st.integers(1, 5), k=st.integers(1, 40), n=st.integers(1, 6),
       per_column=st.booleans(), with_bias=st.booleans(), batched_b=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_matmul_accumulators(xq: QType, batch: list[int], m: int, k: int, n: int,
                             per_column: bool, with_bias: bool, batched_b: bool,
                             seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(xq.qmin, xq.qmax + 1, (*batch, m, k)).astype(xq.numpy_dtype)
    bshape = (*batch, k, n) if batched_b else (k, n)
    b = rng.integers(-128, 128, bshape).astype(np.int8)
    za = int(rng.integers(xq.qmin, xq.qmax + 1))
    zb = rng.integers(-128, 128, n) if per_column else int(rng.integers(-128, 128))
    bias = rng.integers(-10000, 10000, n).astype(np.int32) if with_bias else None
    acc = matmul(a, b, a_zero_point=za, b_zero_point=zb, bias=bias)
    ref = np.einsum("...mk,...kn->...mn", a.astype(np.int64) - za,
                    b.astype(np.int64) - np.asarray(zb, np.int64))
    if bias is not None:
        ref = ref + bias
    assert acc.dtype == np.int32
    np.testing.assert_array_equal(acc, ref)


@given(mode=st.sampled_from(list(RequantMode)), per_column=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_matmul_requant_per_column(mode: RequantMode, per_column: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (3, 4, 17)).astype(np.uint8)
    b = rng.integers(-128, 128, (17, 5)).astype(np.int8)
    acc = matmul(a, b, a_zero_point=100, b_zero_point=3)
    amax = np.abs(acc).max(axis=(0, 1)) if per_column else np.abs(acc).max()
    scale = (np.float32(255) / (2 * np.maximum(amax, 1)).astype(np.float32)).astype(np.float32)
    rq = Requant(scale, 128, 0, 255, mode, np.uint8)
    y = matmul(a, b, a_zero_point=100, b_zero_point=3, requant=rq)
    np.testing.assert_array_equal(y, requantize(acc, scale, 128, 0, 255, mode))
    assert int(y.max()) - int(y.min()) > 120        # outputs span much of the range


def test_gemm_transposes() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(-128, 128, (4, 9)).astype(np.int8)
    w = rng.integers(-128, 128, (6, 9)).astype(np.int8)      # (N, K) storage
    zb = np.arange(6) - 3
    y = gemm(a.T.copy(), w, a_zero_point=1, b_zero_point=zb, trans_a=True, trans_b=True)
    ref = (a.astype(np.int64) - 1) @ (w.astype(np.int64) - zb[:, None]).T
    np.testing.assert_array_equal(y, ref)


def test_exact_matmul_large_values_use_int64() -> None:
    a = np.full((1, 3), 2**26, np.int64)
    b = np.full((3, 1), 2**26, np.int64)
    assert exact_matmul(a, b)[0, 0] == 3 * 2**52 and exact_matmul(a[:, :0], b[:0]).shape == (1, 1)
