"""The per-tensor quantizer forms x / scale as x * (1 / scale) where that gives the same
integer, and divides where a value lies near a half-integer (native/common.h,
quant_reciprocal_ok): against the division (lowp.qparams.quantize) bit for bit on every
instruction-set path, at the ties k + 0.5 of many scales and the values a few ulps around
them (where the product and the quotient round to different integers), one such value in a
vector of ordinary ones, scales at the edges of the reciprocal's range, specials and the
saturation bounds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowp.qparams import QParams, QType
from lowp.qparams import quantize as ref_quantize
from lowp.runtime import native_backend as nb

from .helpers import PATHS

QTYPES = {np.dtype(np.uint8): QType.UINT8, np.dtype(np.int8): QType.INT8}


def _check(x: np.ndarray, scale: np.float32, zp: int, dtype: np.dtype) -> None:
    qt = QTYPES[np.dtype(dtype)]
    qp = QParams(np.float32(scale), np.int32(zp), qt, qt.qmin, qt.qmax)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        want = ref_quantize(x, qp)
    for path in PATHS:
        with nb.use_path(path):
            got = nb.quantize(x, scale=float(scale), zero_point=zp, qmin=qt.qmin, qmax=qt.qmax,
                              dtype=qt.numpy_dtype, threads=1)
        np.testing.assert_array_equal(got, want, err_msg=f"{path} scale {scale!r} zp {zp}")


def _near_ties(scale: np.float32, ulps: int = 4) -> np.ndarray:
    """(k + 0.5) * scale for k in [-300, 300) and the floats `ulps` either side of each."""
    k = np.arange(-300, 300, dtype=np.float32)
    centre = ((k + np.float32(0.5)) * scale).astype(np.float32)
    out = [centre]
    up, down = centre.copy(), centre.copy()
    for _ in range(ulps):
        up = np.nextafter(up, np.float32(np.inf))
        down = np.nextafter(down, np.float32(-np.inf))
        out += [up, down]
    return np.concatenate(out)


def _product_differs(x: np.ndarray, scale: np.float32) -> int:
    """Values whose product by the reciprocal rounds to another integer than the quotient."""
    with np.errstate(over="ignore", invalid="ignore"):
        by_product = np.rint((x * (np.float32(1) / scale)).astype(np.float32))
        by_quotient = np.rint((x / scale).astype(np.float32))
    return int(np.count_nonzero(by_product != by_quotient))


SCALES = [np.float32(v) for v in (0.1, 0.3, 0.7, 1 / 3, 0.0123, 3.0, 7.0, 1e-3, 0.02,
                                  2.0 ** -100, 2.0 ** 100, 2.0 ** -101, 2.0 ** 101)]


@pytest.mark.parametrize("dtype", [np.dtype(np.uint8), np.dtype(np.int8)])
def test_ties_and_their_neighbours_take_the_division(dtype: np.dtype) -> None:
    differs = 0
    for scale in SCALES:
        x = _near_ties(scale)
        differs += _product_differs(x, scale)
        for zp in (0, int(np.iinfo(dtype).max) // 2, int(np.iinfo(dtype).min)):
            _check(x, scale, zp, dtype)
    assert differs > 0  # the product alone would be wrong on these values


@pytest.mark.parametrize("scale", SCALES)
def test_one_value_near_a_tie_among_ordinary_ones(scale: np.float32) -> None:
    rng = np.random.default_rng(3)
    near = _near_ties(scale, ulps=2)
    wrong = near[[_product_differs(near[i:i + 1], scale) > 0 for i in range(near.size)]]
    x = (rng.standard_normal(64 * 4 + 13) * 40 * scale).astype(np.float32)
    for value in wrong[:40]:
        for at in (0, 15, 16, 63, 64 * 4 + 12):
            y = x.copy()
            y[at] = value
            _check(y, scale, 0, np.dtype(np.int8))


@pytest.mark.parametrize("dtype", [np.dtype(np.uint8), np.dtype(np.int8)])
def test_specials_and_saturation_bounds(dtype: np.dtype) -> None:
    info = np.iinfo(dtype)
    for scale in SCALES + [np.float32(v) for v in (1e-45, 1e-40, 3e38)]:
        with np.errstate(over="ignore"):
            bounds = np.array([info.min, info.max, 255, -255, 256, -256, 510, -510],
                              np.float32)
            edges = np.concatenate([(bounds + d) * scale for d in (-0.5, 0.0, 0.5)])
        x = np.concatenate([np.array([0.0, -0.0, np.nan, -np.nan, np.inf, -np.inf, 3.4e38,
                                      -3.4e38, 1e-45, -1e-45, 1e-38, -1e-38], np.float32),
                            edges.astype(np.float32)])
        x = np.concatenate([x, np.nextafter(x, np.float32(np.inf)),
                            np.nextafter(x, np.float32(-np.inf))])
        for zp in (int(info.min), 0, int(info.max)):
            _check(x, scale, zp, dtype)


@settings(max_examples=150, deadline=None)
@given(scale=st.floats(float(np.float32(2.0 ** -110)), float(np.float32(2.0 ** 110)),
                       width=32),
       center=st.integers(-300, 300), ulps=st.integers(-40, 40),
       zp=st.integers(-128, 127), seed=st.integers(0, 2**32 - 1))
def test_random_scales_near_ties(scale: float, center: int, ulps: int, zp: int,
                                 seed: int) -> None:
    s = np.float32(scale)
    x = np.float32((center + 0.5) * s)
    for _ in range(abs(ulps)):
        x = np.nextafter(x, np.float32(np.inf if ulps > 0 else -np.inf))
    rng = np.random.default_rng(seed)
    with np.errstate(over="ignore"):
        v = (rng.standard_normal(37) * 100 * s).astype(np.float32)
    v[rng.integers(0, v.size)] = x
    _check(v, s, zp, np.dtype(np.int8))
    _check(v, s, zp + 128, np.dtype(np.uint8))
