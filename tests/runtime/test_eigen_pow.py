"""lowp.eigen_pow: Eigen's packet pow is within one float32 ulp of the exact power, takes
IEEE pow's special cases, and leaves the elements after the last packet to powf."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from lowp.eigen_pow import eigen_pow, packet_pow, scalar_pow

F32 = st.floats(min_value=2.0**-100, max_value=2.0**100, width=32)
EXPONENTS = st.floats(min_value=-4, max_value=4, width=32)


def _ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.view(np.int32).astype(np.int64) - b.view(np.int32))


@given(st.lists(F32, min_size=1, max_size=40), EXPONENTS)
def test_packet_pow_is_within_one_ulp(xs: list[float], y: float) -> None:
    x = np.array(xs, np.float32)
    exact = np.power(x.astype(np.float64), float(np.float32(y)))
    ok = np.isfinite(exact) & (np.abs(exact) > 1e-37) & (np.abs(exact) < 1e37)
    ours = packet_pow(x, y)
    assert _ulps(ours[ok], exact[ok].astype(np.float32)).max(initial=0) <= 1


def test_special_cases_follow_ieee_pow() -> None:
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, -2.0, -2.0, 2.0], np.float32)
    for y in (-2.0, -0.75, 0.0, 0.5, 1.0, 3.0):
        with np.errstate(all="ignore"):
            expected = np.power(x.astype(np.float64), y).astype(np.float32)
        np.testing.assert_array_equal(packet_pow(x, y), expected, err_msg=f"y={y}")


def test_tail_after_the_last_packet_is_powf() -> None:
    x = np.linspace(0.5, 40, 7, dtype=np.float32)
    out = eigen_pow(x, -0.75)
    np.testing.assert_array_equal(out[:4], packet_pow(x[:4], -0.75))
    np.testing.assert_array_equal(out[4:], scalar_pow(x[4:], -0.75))
    assert eigen_pow(np.zeros((0, 3), np.float32), 0.5).shape == (0, 3)
