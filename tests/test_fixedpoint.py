"""Requantization: both modes against independent restatements and ideal math."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from lowp.fixedpoint import RequantMode, fma32, quantize_multiplier, requantize

acc_values = st.integers(-(2 ** 31), 2 ** 31 - 1)
scales = st.floats(2.0 ** -31, 255.0, width=32, exclude_min=False)


def _gemmlowp(acc: int, scale: float) -> int:
    """gemmlowp's MultiplyByQuantizedMultiplier on Python ints (TFLite's definition)."""
    m, e = (int(v) for v in quantize_multiplier(np.float32(scale)))
    left, right = max(e, 0), max(-e, 0)
    x = max(-(2 ** 31), min(2 ** 31 - 1, acc * (1 << left)))
    if x == m == -(2 ** 31):
        high = 2 ** 31 - 1
    else:
        ab = x * m
        nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
        num = ab + nudge
        high = abs(num) // (1 << 31) * (1 if num >= 0 else -1)        # truncating division
    mask = (1 << right) - 1
    remainder = high & mask
    threshold = (mask >> 1) + (1 if high < 0 else 0)
    return (high >> right) + (1 if remainder > threshold else 0)


@given(st.lists(acc_values, min_size=1, max_size=20), scales, st.integers(-128, 127))
def test_fixedpoint_matches_gemmlowp_definition(accs, scale, zp):
    acc = np.array(accs, np.int32)
    got = requantize(acc, np.float32(scale), zp, -(2 ** 31), 2 ** 31 - 1,
                     RequantMode.FIXEDPOINT)
    want = [max(-(2 ** 31), min(2 ** 31 - 1, _gemmlowp(a, scale) + zp)) for a in accs]
    assert got.tolist() == want


@given(st.lists(st.integers(-(2 ** 20), 2 ** 20), min_size=1, max_size=20),
       st.floats(2.0 ** -20, 0.5, width=32))
def test_error_against_ideal_math(accs, scale):
    """float32 mode: half a unit (plus float32 rounding); fixed point rounds twice: one unit."""
    acc = np.array(accs, np.int32)
    ideal = np.array(accs, np.float64) * float(np.float32(scale))
    bound = {RequantMode.FLOAT32: 0.5, RequantMode.FIXEDPOINT: 1.0}
    for mode in RequantMode:
        got = requantize(acc, np.float32(scale), 0, -(2 ** 31), 2 ** 31 - 1, mode)
        assert np.all(np.abs(got - ideal) <= bound[mode] + 1e-6 * np.abs(ideal) + 1e-9)


@given(st.floats(2.0 ** -40, 2.0 ** 20, width=32))
def test_multiplier_is_exact(scale):
    m, e = quantize_multiplier(np.float32(scale))
    assert 2 ** 30 <= int(m) < 2 ** 31
    assert float(m) * 2.0 ** (int(e) - 31) == float(np.float32(scale))


def test_tie_rounding_of_each_mode():
    """float32: half to even; gemmlowp's high multiply: half toward +infinity."""
    acc = np.array([1, 3, 5, -1, -3], np.int32)
    assert requantize(acc, np.float32(0.5), 0, -128, 127).tolist() == [0, 2, 2, 0, -2]
    assert requantize(acc, np.float32(0.5), 0, -128, 127,
                      RequantMode.FIXEDPOINT).tolist() == [1, 2, 3, 0, -1]


def _exact_fma32(a: np.float32, b: np.float32, c: np.float32) -> np.float32:
    """a * b + c in exact rational arithmetic, rounded once to float32 (ties to even)."""
    from fractions import Fraction

    exact = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
    r = np.float32(float(exact))
    best = r
    for cand in (np.nextafter(r, np.float32(-np.inf)), np.nextafter(r, np.float32(np.inf))):
        d_best, d_cand = abs(Fraction(float(best)) - exact), abs(Fraction(float(cand)) - exact)
        if d_cand < d_best or (d_cand == d_best and int(cand.view(np.int32)) % 2 == 0):
            best = cand
    return best


def test_fma32_rounds_once_on_constructed_half_way_cases() -> None:
    # p = a * b lies just below half a float32 ulp of c: the float64 sum lands exactly half
    # way and rounding it again to float32 is wrong half of the time
    rng = np.random.default_rng(1)
    n = 400
    e = rng.integers(-100, 100, n)
    c = (rng.integers(1 << 23, 1 << 24, n) * 2.0 ** (e - 23) * rng.choice([-1, 1], n))
    a = 2.0 ** (e - 24) * (1 + 2.0 ** -18) * rng.choice([-1, 1], n)
    b = np.where(rng.random(n) < 0.5, 1 - 2.0 ** -18, 1 + 2.0 ** -18)
    a, b, c = a.astype(np.float32), b.astype(np.float32), c.astype(np.float32)
    got = fma32(a, b, c)
    want = np.array([_exact_fma32(x, y, z) for x, y, z in zip(a, b, c, strict=True)])
    assert (got.view(np.int32) == want.view(np.int32)).all()
    naive = (a.astype(np.float64) * b + c).astype(np.float32)
    assert (naive != want).sum() > n // 10          # the cases do test something
