"""The native product of two 8-bit activations (native_backend.ActivationMatMul, attention's
Q·Kᵀ and P·V in QOperator files) equals the reference (lowp.ops.linear.matmul with (R2)
float32 requantization) bit for bit: broadcast batch axes, both 8-bit types on each side,
any zero points, every path and thread count."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lowp.fixedpoint import Requant, RequantMode
from lowp.ops.linear import matmul as reference_matmul
from lowp.runtime import native_backend as nb
from lowp.runtime.native_backend import ActivationMatMul

from .helpers import INT8_DTYPES, PATHS, random_ints


@settings(max_examples=80, deadline=None)
@given(batch=st.lists(st.integers(1, 3), max_size=2), broadcast=st.booleans(),
       m=st.integers(1, 9), k=st.integers(1, 40), n=st.integers(1, 40), a_dtype=INT8_DTYPES,
       b_dtype=INT8_DTYPES, y_dtype=INT8_DTYPES, seed=st.integers(0, 2**32 - 1))
def test_activation_matmul_equals_reference(batch, broadcast, m, k, n, a_dtype, b_dtype,
                                            y_dtype, seed) -> None:
    rng = np.random.default_rng(seed)
    b_batch = [1 if broadcast else d for d in batch]
    a = random_ints(rng, (*batch, m, k), a_dtype)
    b = random_ints(rng, (*b_batch, k, n), b_dtype)
    za, zb = (int(rng.integers(np.iinfo(d).min, np.iinfo(d).max + 1)) for d in (a_dtype, b_dtype))
    info = np.iinfo(y_dtype)
    zy = int(rng.integers(info.min, info.max + 1))
    scale = np.float32(rng.uniform(1e-5, 1e-2))
    requant = Requant(scale, zy, int(info.min), int(info.max), RequantMode.FLOAT32,
                      np.dtype(y_dtype))
    want = reference_matmul(a, b, a_zero_point=za, b_zero_point=zb, requant=requant)
    native = ActivationMatMul(a_zero_point=za, b_zero_point=zb, scale=float(scale),
                              y_zero_point=zy, qmin=int(info.min), qmax=int(info.max),
                              out_dtype=y_dtype)
    assert native.applies(a, b)
    for path in PATHS:
        with nb.use_path(path):
            for threads in (1, 2):
                got = native(a, b, threads=threads)
                assert got.dtype == want.dtype and got.shape == want.shape
                np.testing.assert_array_equal(got, want, err_msg=f"{path} {threads}")


@settings(max_examples=12, deadline=None)
@given(shape=st.sampled_from([(6, 257, 64, 257), (6, 257, 257, 64), (2, 7, 33, 23),
                              (3, 4, 5, 17)]),
       seed=st.integers(0, 2**32 - 1))
def test_attention_sized_products_four_rows_at_a_time(shape, seed) -> None:
    """ViT attention sizes: the AVX-512 copy runs four rows of one batch entry at a time
    (rows that do not fill four at the end of an entry, and a thread's share, one by one)."""
    heads, m, k, n = shape
    rng = np.random.default_rng(seed)
    a = random_ints(rng, (1, heads, m, k), np.dtype(np.uint8))
    b = random_ints(rng, (1, heads, k, n), np.dtype(np.uint8))
    za, zb = (int(v) for v in rng.integers(96, 160, 2))   # sums of both signs
    acc = reference_matmul(a, b, a_zero_point=za, b_zero_point=zb)
    lo, hi = int(acc.min()), int(acc.max())
    scale = np.float32(rng.uniform(0.8, 1.2) * 255 / max(hi - lo, 1))
    zy = int(np.clip(round(128 - (lo + hi) / 2 * float(scale)), 0, 255))
    requant = Requant(scale, zy, 0, 255, RequantMode.FLOAT32, np.dtype(np.uint8))
    want = reference_matmul(a, b, a_zero_point=za, b_zero_point=zb, requant=requant)
    assert np.unique(want).size > 64        # outputs spread over the range
    native = ActivationMatMul(a_zero_point=za, b_zero_point=zb, scale=float(scale),
                              y_zero_point=zy, qmin=0, qmax=255, out_dtype=np.uint8)
    for path in PATHS:
        with nb.use_path(path):
            for threads in (1, 2):
                np.testing.assert_array_equal(native(a, b, threads=threads), want,
                                              err_msg=f"{path} {threads}")
