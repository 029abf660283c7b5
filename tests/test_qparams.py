"""Properties of choose_qparams / quantize / dequantize (docs/quantization.md (Q1)-(Q9))."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lowp import QParams, QType, QuantizationError, choose_qparams, dequantize, quantize
from lowp.qparams import PerAxis, PerGroup, quant_range, quantize_bias

finite = st.floats(-1e6, 1e6, allow_nan=False, width=32)
QTYPES = st.sampled_from([QType.UINT8, QType.INT8, QType.UINT16, QType.INT16, QType.INT4,
                          QType.UINT4])


@given(finite, finite, QTYPES, st.booleans(), st.booleans(), st.booleans())
def test_zero_is_exact_and_range_is_covered(a, b, qtype, symmetric, reduce_range, narrow):
    lo, hi = min(a, b), max(a, b)
    qp = choose_qparams(lo, hi, qtype, symmetric=symmetric, reduce_range=reduce_range,
                        narrow_range=narrow)
    assert qp.qmin <= int(qp.zero_point) <= qp.qmax
    assert dequantize(quantize(np.float32(0.0), qp), qp) == 0.0          # (Q2)
    scale = float(qp.scale)
    # the representable range covers [min(lo, 0), max(hi, 0)] up to half a step
    r_lo = scale * (qp.qmin - int(qp.zero_point))
    r_hi = scale * (qp.qmax - int(qp.zero_point))
    assert r_lo <= min(lo, 0.0) + scale and r_hi >= max(hi, 0.0) - scale
    if symmetric:
        assert int(qp.zero_point) == (0 if qtype.signed else (qp.qmin + qp.qmax + 1) // 2)


@given(finite, finite)
def test_min_scale_is_obeyed(a, b):
    qp = choose_qparams(min(a, b), max(a, b), QType.INT8, symmetric=True, narrow_range=True,
                        min_scale=2.0 ** -12)
    assert float(qp.scale) >= 2.0 ** -12
    assert (qp.qmin, qp.qmax) == (-127, 127)


def test_reduce_and_narrow_ranges():
    assert quant_range(QType.UINT8, reduce_range=True) == (0, 127)
    assert quant_range(QType.INT8, reduce_range=True) == (-64, 63)
    assert quant_range(QType.INT8, narrow_range=True) == (-127, 127)


def test_zero_range_and_non_finite():
    qp = choose_qparams(0.0, 0.0, QType.UINT8)
    assert float(qp.scale) == 1.0 and int(qp.zero_point) == 0
    with pytest.raises(QuantizationError, match="act: observed range .* not finite"):
        choose_qparams(float("nan"), 1.0, QType.UINT8, name="act")
    with pytest.raises(QuantizationError, match="not finite"):
        choose_qparams(0.0, float("inf"), QType.UINT8)


def test_quantize_rounds_half_to_even_and_saturates():
    qp = QParams(np.float32(1.0), np.int32(0), QType.INT8, -128, 127)
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 300.0, -300.0], np.float32)
    assert quantize(x, qp).tolist() == [0, 2, 2, 0, -2, 127, -128]


@given(st.integers(0, 255), st.floats(2.0 ** -13, 10.0, width=32), st.integers(0, 255))
def test_round_trip_of_representable_values(q, scale, zp):
    qp = QParams(np.float32(scale), np.int32(zp), QType.UINT8, 0, 255)
    x = dequantize(np.array([q], np.uint8), qp)
    assert quantize(x, qp)[0] == q


def test_per_axis_and_per_group():
    w = np.array([[1.0, -2.0], [0.5, 0.25], [-4.0, 4.0], [8.0, 1.0]], np.float32)
    qp = choose_qparams(w.min(axis=1), w.max(axis=1), QType.INT8, symmetric=True,
                        narrow_range=True, granularity=PerAxis(0))
    q = quantize(w, qp)
    assert q.dtype == np.int8 and np.abs(q).max(axis=1).tolist() == [127, 127, 127, 127]
    grouped = QParams(np.array([1.0, 2.0], np.float32), np.zeros(2, np.int32), QType.INT8,
                      -128, 127, PerGroup(axis=0, group_size=2))
    assert quantize(w, grouped)[:, 0].tolist() == [1, 0, -2, 4]


def test_bias_at_product_scale():
    bq, scale = quantize_bias(np.array([1.0, -1.0], np.float32), np.float32(0.5),
                              np.array([0.25, 0.125], np.float32))
    assert bq.tolist() == [8, -16] and scale.tolist() == [0.125, 0.0625]
