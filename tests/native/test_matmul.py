"""NativeMatMul against lowp.ops.linear.matmul on every path: GEMM edge sweeps, tolerance 0."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lowp.fixedpoint import Requant, RequantMode
from lowp.ops.linear import exact_matmul, matmul
from lowp.runtime.native_backend import NativeMatMul

from .helpers import (
    INT8_DTYPES,
    MODES,
    assert_all_paths,
    assert_spans,
    centering_bias,
    random_ints,
    spanning_requant,
)

# k around the 4-byte k-block and its multiples; n around the 16-lane vector and the 64-wide
# panel; m up to the 6-row tile and past the 96-row chunk.
K_VALUES = st.one_of(st.integers(1, 9), st.sampled_from([12, 15, 16, 17, 31, 32, 33, 64, 100]))
N_VALUES = st.one_of(st.integers(1, 17), st.sampled_from([31, 32, 33, 48, 63, 64, 65, 80, 130]))
M_VALUES = st.one_of(st.integers(1, 13), st.sampled_from([0, 24, 97]))


@given(m=M_VALUES, k=K_VALUES, n=N_VALUES, a_dtype=INT8_DTYPES, b_dtype=INT8_DTYPES,
       mode=MODES, per_channel=st.booleans(), zp_per_column=st.booleans(),
       with_bias=st.booleans(), strided=st.booleans(),
       stretch=st.floats(0.6, 1.4), clamp=st.sampled_from([(0.0, 1.0), (0.5, 1.0),
                                                           (0.2, 0.7)]),
       seed=st.integers(0, 2**32 - 1))
def test_matmul_matches_reference(m: int, k: int, n: int, a_dtype: np.dtype,
                                  b_dtype: np.dtype, mode, per_channel: bool,
                                  zp_per_column: bool, with_bias: bool, strided: bool,
                                  stretch: float, clamp: tuple[float, float],
                                  seed: int) -> None:
    rng = np.random.default_rng(seed)
    if strided:  # non-contiguous views: the wrapper must make them contiguous
        a = random_ints(rng, (m, 2 * k), a_dtype)[:, ::2]
        b = random_ints(rng, (k, 2 * n), b_dtype)[:, 1::2]
    else:
        a = random_ints(rng, (m, k), a_dtype)
        b = random_ints(rng, (k, n), b_dtype)
    info_a, info_b = np.iinfo(a_dtype), np.iinfo(b_dtype)
    a_zp = int(rng.integers(info_a.min, info_a.max + 1))
    if zp_per_column:
        b_zp: int | np.ndarray = rng.integers(info_b.min, info_b.max + 1, size=n)
    else:
        b_zp = int(rng.integers(info_b.min, info_b.max + 1)) if rng.random() < 0.5 else (
            128 if b_dtype == np.uint8 else 0)
    bias = None
    if with_bias:
        bias = centering_bias(matmul(a, b, a_zero_point=a_zp, b_zero_point=b_zp), rng)
    acc = matmul(a, b, a_zero_point=a_zp, b_zero_point=b_zp, bias=bias)
    out_dtype = np.dtype(np.uint8) if rng.random() < 0.5 else np.dtype(np.int8)
    rq = spanning_requant(acc, out_dtype=out_dtype, mode=mode, per_channel=per_channel,
                          stretch=stretch, clamp=clamp)
    ref = rq.apply(acc)
    assert_spans(ref, rq, acc)

    def make() -> NativeMatMul:
        return NativeMatMul(b, bias, a_zero_point=a_zp, a_dtype=a_dtype, b_zero_point=b_zp,
                            requant=rq, threads=1)

    assert_all_paths(make, a, ref)


@given(lead=st.sampled_from([(), (0,), (3,), (2, 3), (1, 0, 4)]), seed=st.integers(0, 2**16))
def test_matmul_leading_dims(lead: tuple[int, ...], seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = random_ints(rng, (*lead, 20), np.dtype(np.int8))
    b = random_ints(rng, (20, 24), np.dtype(np.int8))
    acc = matmul(a, b, a_zero_point=-3, b_zero_point=0)
    rq = spanning_requant(acc.reshape(-1, 24), out_dtype=np.dtype(np.int8),
                          mode=RequantMode.FLOAT32,
                          per_channel=False, stretch=1.0, clamp=(0.0, 1.0))
    ref = rq.apply(acc)

    def make() -> NativeMatMul:
        return NativeMatMul(b, None, a_zero_point=-3, a_dtype=np.int8, b_zero_point=0,
                            requant=rq)

    assert_all_paths(make, a, ref)


@pytest.mark.parametrize("a_dtype", [np.dtype(np.uint8), np.dtype(np.int8)])
def test_int32_wraparound(a_dtype: np.dtype) -> None:
    """K large enough that the int32 accumulators wrap: the folded algebra stays exact."""
    rng = np.random.default_rng(11)
    k = 70_000
    a = rng.integers(200, 256, size=(3, k)).astype(np.uint8)
    a = a if a_dtype == np.uint8 else (a.astype(np.int16) - 129).astype(np.int8)
    b = rng.integers(230, 256, size=(k, 5)).astype(np.uint8)
    a_zp = 0 if a_dtype == np.uint8 else -128
    exact = exact_matmul(a.astype(np.int64) - a_zp, b.astype(np.int64) - 3)
    assert exact.max() > np.iinfo(np.int32).max  # the int32 accumulators really wrap
    acc = matmul(a, b, a_zero_point=a_zp, b_zero_point=3)
    rq = spanning_requant(acc, out_dtype=np.dtype(np.uint8), mode=RequantMode.FIXEDPOINT,
                          per_channel=False, stretch=1.0, clamp=(0.0, 1.0))
    ref = rq.apply(acc)

    def make() -> NativeMatMul:
        return NativeMatMul(b, None, a_zero_point=a_zp, a_dtype=a_dtype, b_zero_point=3,
                            requant=rq)

    assert_all_paths(make, a, ref)


@pytest.mark.parametrize("mode", [RequantMode.FLOAT32, RequantMode.FIXEDPOINT])
@pytest.mark.parametrize("scale", [2.0**-40, 1e-6, 3e-4, 0.7, 1.0, 3.0, 2.0**20])
def test_extreme_requant_scales(mode: RequantMode, scale: float) -> None:
    """Shift edge cases of (R4) (right shifts up to 40, left shifts up to 21) and saturation."""
    rng = np.random.default_rng(5)
    a = random_ints(rng, (9, 37), np.dtype(np.int8))
    b = random_ints(rng, (37, 21), np.dtype(np.int8))
    bias = rng.integers(-(2**30), 2**30, size=21).astype(np.int32)
    acc = matmul(a, b, a_zero_point=1, b_zero_point=0, bias=bias)
    rq = Requant(np.float32(scale), -7, -128, 127, mode, np.dtype(np.int8))
    ref = rq.apply(acc)

    def make() -> NativeMatMul:
        return NativeMatMul(b, bias, a_zero_point=1, a_dtype=np.int8, b_zero_point=0,
                            requant=rq)

    assert_all_paths(make, a, ref)


@given(m=st.sampled_from([1, 5, 6, 7, 13, 49]), k=st.sampled_from([3, 16, 24, 64]),
       n=st.sampled_from([8, 16, 24, 32, 40, 48, 64, 96]), a_dtype=INT8_DTYPES,
       out_dtype=INT8_DTYPES, per_channel=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_matmul_full_range_saturation(m: int, k: int, n: int, a_dtype: np.dtype,
                                      out_dtype: np.dtype, per_channel: bool,
                                      seed: int) -> None:
    """FLOAT32 over the whole output range with a large stretch: most outputs saturate at
    both ends, which the AVX-512 epilogue leaves to saturating packs (no float clamp)."""
    rng = np.random.default_rng(seed)
    a = random_ints(rng, (m, k), a_dtype)
    b = random_ints(rng, (k, n), np.dtype(np.int8))
    a_zp = int(rng.integers(np.iinfo(a_dtype).min, np.iinfo(a_dtype).max + 1))
    bias = centering_bias(matmul(a, b, a_zero_point=a_zp, b_zero_point=0), rng)
    acc = matmul(a, b, a_zero_point=a_zp, b_zero_point=0, bias=bias)
    rq = spanning_requant(acc, out_dtype=out_dtype, mode=RequantMode.FLOAT32,
                          per_channel=per_channel, stretch=4.0, clamp=(0.0, 1.0))
    ref = rq.apply(acc)
    assert_all_paths(lambda: NativeMatMul(b, bias, a_zero_point=a_zp, a_dtype=a_dtype,
                                          b_zero_point=0, requant=rq, threads=1), a, ref)
