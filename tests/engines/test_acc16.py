"""Saturating 16-bit accumulation: exact saturating results, outlier split, native == reference."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lowp.engines import (
    Engine,
    EngineOptions,
    acc16_matmul,
    acc16_outlier_matmul,
    analyze_saturation,
    conv,
    native,
    outlier_mask,
    pack_conv_weight,
    split_outliers,
)
from lowp.engines.acc16 import zero_point_terms
from lowp.ops.linear import exact_matmul

PATHS = native.available_paths()


def test_pair_saturation_is_exact() -> None:
    a = np.array([[255, 255]], np.uint8)
    w = np.array([[127], [127]], np.int8)                 # 64770 -> 32767 (S1)
    assert acc16_matmul(a, w)[0].tolist() == [[32767]]
    w = np.array([[-128], [-128]], np.int8)               # -65280 -> -32768
    assert acc16_matmul(a, w)[0].tolist() == [[-32768]]


def test_running_sum_saturates_then_recovers() -> None:
    # pairs: +32385, +32385 (sum saturates at 32767), -32385 -> 382 (exact would be 32385)
    a = np.array([[255, 0, 255, 0, 255, 0]], np.uint8)
    w = np.array([[127], [0], [127], [0], [-127], [0]], np.int8)
    acc, tr = acc16_matmul(a, w, trace=True)
    assert acc.tolist() == [[32767 - 32385]]
    assert tr is not None and tr.sum_events.tolist() == [[1]] and tr.pair_events.sum() == 0
    # one pair per block: every block result fits int16, so the result is exact (S2)-(S4)
    assert acc16_matmul(a, w, block_pairs=1)[0].tolist() == [[32385]]


def test_odd_k_and_block_boundaries() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 8, size=(3, 257)).astype(np.uint8)
    w = rng.integers(-8, 8, size=(257, 5)).astype(np.int8)
    for bp in (1, 2, 128, 1000):
        np.testing.assert_array_equal(acc16_matmul(a, w, bp)[0], exact_matmul(a, w))


def test_outlier_split() -> None:
    w = np.arange(-128, 128, dtype=np.int8).reshape(16, 16)
    assert split_outliers(w, 8).count == 0
    assert split_outliers(w, 0).count == w.size
    s = split_outliers(w, 5)
    assert s.count == int(outlier_mask(w, 5).sum()) == 256 - 32
    np.testing.assert_array_equal(s.dense.astype(int) + s.outliers, w)
    assert np.abs(s.dense.astype(int)).max() <= 16 and s.dense.min() >= -16
    dense_from_csc = np.zeros(w.shape, np.int64)
    for n in range(w.shape[1]):
        for z in range(s.col_ptr[n], s.col_ptr[n + 1]):
            dense_from_csc[s.row_idx[z], n] = s.values[z]
    np.testing.assert_array_equal(dense_from_csc, s.outliers)


def test_all_outliers_equals_int32_accumulation() -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, size=(9, 70)).astype(np.uint8)
    w = rng.integers(-128, 128, size=(70, 11)).astype(np.int8)
    np.testing.assert_array_equal(acc16_outlier_matmul(a, split_outliers(w, 0)),
                                  exact_matmul(a, w))


@pytest.mark.skipif(not PATHS, reason="lowp._acc16 is not built")
@given(m=st.integers(0, 13), k=st.integers(1, 300), n=st.integers(1, 70),
       nbits=st.integers(0, 8), block_pairs=st.sampled_from([1, 3, 64, 128, 500]),
       hi=st.sampled_from([8, 64, 255]), seed=st.integers(0, 2**32 - 1))
def test_native_equals_reference_on_every_path(m: int, k: int, n: int, nbits: int,
                                               block_pairs: int, hi: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, hi + 1, size=(m, k)).astype(np.uint8)
    a.reshape(-1)[: max(0, min(a.size, 3))] = 255
    w = rng.integers(-128, 128, size=(k, n)).astype(np.int8)
    split = split_outliers(w, nbits)
    expected = acc16_outlier_matmul(a, split, block_pairs)
    gemm = native.NativeAcc16Gemm(split, block_pairs)
    for path in PATHS:
        with native.use_path(path):
            np.testing.assert_array_equal(gemm(a), expected, err_msg=path)


@pytest.mark.skipif(not PATHS, reason="lowp._acc16 is not built")
def test_saturating_conv_native_equals_reference() -> None:
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, size=(2, 16, 9, 9)).astype(np.float32)
    w = rng.integers(-128, 128, size=(8, 16, 3, 3)).astype(np.float32)
    w[0, 0, 0, 0], w[0, 0, 0, 1] = -128, 127
    for nbits in (8, 6, 0):
        opts = EngineOptions(engine=Engine.DNNLOWP_ACC16, nbits_in_non_outlier=nbits,
                             preserve_weight_sparsity=True)
        ref = conv(x, w, pads=(1, 1, 1, 1), options=opts, dequantize_output=True,
                   impl="reference")
        for path in PATHS:
            with native.use_path(path):
                got = conv(x, w, pads=(1, 1, 1, 1), options=opts, dequantize_output=True,
                           impl="native")
            np.testing.assert_array_equal(got, ref)
        exact = conv(x, w, pads=(1, 1, 1, 1), options=EngineOptions(
            preserve_weight_sparsity=True), dequantize_output=True)
        packed = pack_conv_weight(w, options=opts, pads=(1, 1, 1, 1))
        report = analyze_saturation(packed, x)
        if nbits == 8:
            assert report.saturated_fraction > 0.5       # u8 up to 255 x s8: saturates
        if nbits == 0:
            assert report.saturated_fraction == 0
            np.testing.assert_array_equal(ref, exact)
        np.testing.assert_array_equal(ref[~report.mask], exact[~report.mask])
        assert (ref[report.mask] != exact[report.mask]).mean() > 0.9 if report.mask.any() \
            else True
        assert report.summary().startswith(f"{report.saturated_fraction:.4%}")


def test_zero_point_terms_match_a1() -> None:
    rng = np.random.default_rng(4)
    a = rng.integers(0, 256, size=(5, 12)).astype(np.uint8)
    w = rng.integers(-128, 128, size=(12, 3)).astype(np.int8)
    zx, zw = 17, np.array([3, -5, 0])
    got = exact_matmul(a, w) + zero_point_terms(a, w, zx, zw)
    want = exact_matmul(a.astype(np.int64) - zx, w.astype(np.int64) - zw)
    np.testing.assert_array_equal(got, want)


@pytest.mark.skipif("avx2" not in PATHS, reason="needs AVX2")
@pytest.mark.parametrize("path", ["scalar", "avx2"])
def test_env_var_forces_path(path: str) -> None:
    env = dict(os.environ, LOWP_ACC16_ISA=path)
    out = subprocess.run([sys.executable, "-c", "from lowp.engines import native; "
                          "print(native.active_path())"], env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == path


@pytest.mark.skipif(not PATHS, reason="lowp._acc16 is not built")
def test_unknown_path_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown acc16 path"):
        native.set_path("avx9")
