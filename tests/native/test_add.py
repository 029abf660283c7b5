"""Native element-wise Add against the numpy reference (lowp.ops.elementwise.add), tolerance 0,
over every pair of input values, on every instruction-set path."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowp.fixedpoint import requant_scale
from lowp.ops.elementwise import add as ref_add
from lowp.runtime import native_backend as nb
from lowp.runtime.fastops import make_add

from .helpers import PATHS

DTYPES = [np.dtype(np.uint8), np.dtype(np.int8)]


def _all_pairs(a_dtype: np.dtype, b_dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    ia, ib = np.iinfo(a_dtype), np.iinfo(b_dtype)
    va = np.arange(ia.min, ia.max + 1)
    vb = np.arange(ib.min, ib.max + 1)
    a, b = np.meshgrid(va, vb, indexing="ij")
    return a.astype(a_dtype), b.astype(b_dtype)


def _check(a: np.ndarray, b: np.ndarray, *, a_scale: float, a_zp: int, b_scale: float,
           b_zp: int, y_scale: float, y_zp: int, qmin: int, qmax: int,
           out_dtype: np.dtype) -> None:
    expected = ref_add(a, b, a_scale=a_scale, a_zero_point=a_zp, b_scale=b_scale,
                       b_zero_point=b_zp, y_scale=y_scale, y_zero_point=y_zp, qmin=qmin,
                       qmax=qmax, out_dtype=out_dtype)
    op = nb.NativeAdd(a_dtype=a.dtype, ma=requant_scale(a_scale, 1.0, y_scale),
                      a_zero_point=a_zp, b_dtype=b.dtype,
                      mb=requant_scale(b_scale, 1.0, y_scale), b_zero_point=b_zp,
                      y_zero_point=y_zp, qmin=qmin, qmax=qmax, out_dtype=out_dtype)
    for path in PATHS:
        with nb.use_path(path):
            got = op(a, b)
            assert got.dtype == expected.dtype and got.shape == expected.shape
            np.testing.assert_array_equal(got, expected, err_msg=path)


@pytest.mark.parametrize("a_dtype", DTYPES)
@pytest.mark.parametrize("b_dtype", DTYPES)
@pytest.mark.parametrize("out_dtype", DTYPES)
def test_add_all_input_pairs(a_dtype: np.dtype, b_dtype: np.dtype, out_dtype: np.dtype) -> None:
    a, b = _all_pairs(a_dtype, b_dtype)
    info = np.iinfo(out_dtype)
    rng = np.random.default_rng(7)
    for _ in range(6):
        a_scale, b_scale, y_scale = (float(v) for v in rng.uniform(0.01, 0.2, 3))
        a_zp = int(rng.integers(np.iinfo(a_dtype).min, np.iinfo(a_dtype).max + 1))
        b_zp = int(rng.integers(np.iinfo(b_dtype).min, np.iinfo(b_dtype).max + 1))
        y_zp = int(rng.integers(int(info.min), int(info.max) + 1))
        _check(a, b, a_scale=a_scale, a_zp=a_zp, b_scale=b_scale, b_zp=b_zp,
               y_scale=y_scale, y_zp=y_zp, qmin=int(info.min), qmax=int(info.max),
               out_dtype=out_dtype)
        # fused ReLU-like clamp
        _check(a, b, a_scale=a_scale, a_zp=a_zp, b_scale=b_scale, b_zp=b_zp,
               y_scale=y_scale, y_zp=y_zp, qmin=max(y_zp, int(info.min)),
               qmax=max(y_zp, int(info.max) - 5), out_dtype=out_dtype)


def test_add_ties_round_to_even() -> None:
    # scales of 0.5 put many sums exactly on .5: rint must round half to even
    a, b = _all_pairs(np.dtype(np.uint8), np.dtype(np.uint8))
    _check(a, b, a_scale=0.5, a_zp=0, b_scale=0.5, b_zp=1, y_scale=1.0, y_zp=3, qmin=0,
           qmax=255, out_dtype=np.dtype(np.uint8))
    _check(a, b, a_scale=0.25, a_zp=128, b_scale=0.75, b_zp=17, y_scale=1.0, y_zp=128,
           qmin=0, qmax=255, out_dtype=np.dtype(np.uint8))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 300), seed=st.integers(0, 2**32 - 1),
       a_dtype=st.sampled_from(DTYPES), b_dtype=st.sampled_from(DTYPES))
def test_add_lengths_and_shapes(n: int, seed: int, a_dtype: np.dtype, b_dtype: np.dtype) -> None:
    rng = np.random.default_rng(seed)
    shape = (1, 3, n) if n % 2 else (n,)
    ia, ib = np.iinfo(a_dtype), np.iinfo(b_dtype)
    a = rng.integers(ia.min, ia.max + 1, size=shape).astype(a_dtype)
    b = rng.integers(ib.min, ib.max + 1, size=shape).astype(b_dtype)
    _check(a, b, a_scale=float(rng.uniform(0.001, 1)), a_zp=int(ia.min) + 3,
           b_scale=float(rng.uniform(0.001, 1)), b_zp=int(ib.max) - 9,
           y_scale=float(rng.uniform(0.001, 1)), y_zp=100, qmin=0, qmax=255,
           out_dtype=np.dtype(np.uint8))


def test_add_non_contiguous_inputs() -> None:
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, size=(4, 9, 10)).astype(np.uint8)
    b = rng.integers(-128, 128, size=(10, 9, 4)).astype(np.int8).transpose(2, 1, 0)
    _check(a, b, a_scale=0.1, a_zp=5, b_scale=0.07, b_zp=-2, y_scale=0.15, y_zp=-4,
           qmin=-128, qmax=127, out_dtype=np.dtype(np.int8))


def test_add_rejects_what_it_does_not_cover() -> None:
    kw = dict(a_dtype=np.uint8, ma=0.5, a_zero_point=0, b_dtype=np.uint8, mb=0.5,
              b_zero_point=0, y_zero_point=0, qmin=0, qmax=255, out_dtype=np.uint8)
    with pytest.raises(ValueError):
        nb.NativeAdd(**{**kw, "a_dtype": np.int16})
    with pytest.raises(ValueError):
        nb.NativeAdd(**{**kw, "ma": float("inf")})
    with pytest.raises(ValueError):
        nb.NativeAdd(**{**kw, "y_zero_point": 1 << 23})
    op = nb.NativeAdd(**kw)
    with pytest.raises(ValueError):
        op(np.zeros(3, np.uint8), np.zeros(4, np.uint8))
    with pytest.raises(ValueError):
        op(np.zeros(3, np.int8), np.zeros(3, np.uint8))


def test_fastops_add_uses_native_and_matches() -> None:
    rng = np.random.default_rng(11)
    a = rng.integers(0, 256, size=(1, 56, 56, 64)).astype(np.uint8)
    b = rng.integers(0, 256, size=(1, 56, 56, 64)).astype(np.uint8)
    kw = dict(a_scale=0.031, a_zero_point=7, b_scale=0.044, b_zero_point=130, y_scale=0.05,
              y_zero_point=2, qmin=2, qmax=255)
    fast = make_add(np.dtype(np.uint8), kw["a_scale"], kw["a_zero_point"], np.dtype(np.uint8),
                    kw["b_scale"], kw["b_zero_point"], kw["y_scale"], kw["y_zero_point"],
                    kw["qmin"], kw["qmax"], np.dtype(np.uint8))
    expected = ref_add(a, b, out_dtype=np.uint8, **kw)  # type: ignore[arg-type]
    np.testing.assert_array_equal(fast(a, b), expected)
    # broadcasting still takes the numpy form
    np.testing.assert_array_equal(fast(a, b[:, :1]),
                                  ref_add(a, b[:, :1], out_dtype=np.uint8, **kw))  # type: ignore[arg-type]
