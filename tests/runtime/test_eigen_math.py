"""lowp.eigen_math: Eigen's packet functions are within an ulp or two of the exact value,
take IEEE's special cases, leave the elements after the last packet to the C library, and
the float32 operators built on them equal ONNX Runtime's kernels bit for bit."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import helper

from lowp import eigen_math
from lowp.runtime import float_ops

from .ort_agreement import assert_engines_agree, onnxruntime_run

F32 = st.floats(min_value=2.0**-100, max_value=2.0**100, width=32)
EXPONENTS = st.floats(min_value=-4, max_value=4, width=32)
SPECIAL = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, -2.0, 2.0, 1e-45],
                   np.float32)


def _ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.view(np.int32).astype(np.int64) - b.view(np.int32))


@given(st.lists(F32, min_size=1, max_size=40), EXPONENTS)
def test_packet_pow_is_within_one_ulp(xs: list[float], y: float) -> None:
    x = np.array(xs, np.float32)
    exact = np.power(x.astype(np.float64), float(np.float32(y)))
    ok = np.isfinite(exact) & (np.abs(exact) > 1e-37) & (np.abs(exact) < 1e37)
    ours = eigen_math.packet_pow(x, y)
    assert _ulps(ours[ok], exact[ok].astype(np.float32)).max(initial=0) <= 1


@given(st.lists(st.floats(min_value=2.0**-149, max_value=2.0**127, width=32), min_size=1,
                max_size=40))
def test_log_is_within_one_ulp(xs: list[float]) -> None:
    x = np.array(xs, np.float32)
    exact = np.log(x.astype(np.float64)).astype(np.float32)
    big = np.abs(exact) > 1e-3                  # near log(1) = 0 the error is absolute
    assert _ulps(eigen_math.log(x)[big], exact[big]).max(initial=0) <= 2


def test_special_cases_follow_ieee() -> None:
    with np.errstate(all="ignore"):
        for y in (-2.0, -0.75, 0.0, 0.5, 1.0, 3.0):
            expected = np.power(SPECIAL[:-1].astype(np.float64), y).astype(np.float32)
            np.testing.assert_array_equal(eigen_math.packet_pow(SPECIAL[:-1], y), expected,
                                          err_msg=f"y={y}")
        logs = eigen_math.log(SPECIAL[:8])
        np.testing.assert_array_equal(logs[:4], [-np.inf, -np.inf, np.inf, np.nan])
        assert np.isnan(logs[4]) and logs[5] == 0 and np.isnan(logs[6]) and np.isnan(logs[7])


def test_tail_after_the_last_packet_is_the_c_library() -> None:
    x = np.linspace(0.5, 40, 7, dtype=np.float32)
    out = eigen_math.power(x, -0.75)
    np.testing.assert_array_equal(out[:4], eigen_math.packet_pow(x[:4], -0.75))
    exact = np.power(x[4:].astype(np.float64), -0.75).astype(np.float32)
    assert _ulps(out[4:], exact).max() <= 1
    assert eigen_math.power(np.zeros((0, 3), np.float32), 0.5).shape == (0, 3)
    assert eigen_math.log(np.ones((2, 0), np.float32)).shape == (2, 0)


def _inputs() -> np.ndarray:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(8000) * 4, np.exp(rng.uniform(-30, 30, 2000)),
                        rng.uniform(-1e8, 1e8, 500), -np.exp(rng.uniform(-30, 5, 500))])
    x[:10] = SPECIAL
    return x.astype(np.float32)[:11003]                     # a tail of three after the packets


@pytest.mark.parametrize("op,attrs", [
    ("Log", {}), ("Sin", {}), ("Cos", {}), ("Elu", {"alpha": 0.7}), ("Selu", {}),
    ("Selu", {"alpha": 1.3, "gamma": 0.9}), ("Celu", {"alpha": 1.3}), ("Softplus", {}),
    ("Softsign", {}), ("Mish", {}), ("Asin", {}), ("Acos", {}), ("Atan", {}), ("Tan", {}),
    ("Sinh", {}), ("Cosh", {}), ("Asinh", {}), ("Acosh", {}), ("Atanh", {})])
def test_unary_ops_equal_onnxruntime(op: str, attrs: dict[str, float]) -> None:
    """Every value, NaN's and infinities' included, at one intra-op thread."""
    x = _inputs()
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    graph = helper.make_graph([node], op, [helper.make_tensor_value_info("x", 1, x.shape)],
                              [helper.make_tensor_value_info("y", 1, x.shape)])
    assert_engines_agree(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]),
                         {"x": x})


def _onnxruntime_unary(op: str, x: np.ndarray) -> np.ndarray:
    graph = helper.make_graph([helper.make_node(op, ["x"], ["y"])], op,
                              [helper.make_tensor_value_info("x", 1, x.shape)],
                              [helper.make_tensor_value_info("y", 1, x.shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    return onnxruntime_run(model, {"x": x})[0]


@pytest.mark.parametrize("op,fn", [("Atan", eigen_math.atan), ("Asin", eigen_math.asin),
                                   ("Acos", eigen_math.acos), ("Log", eigen_math.log),
                                   ("Softplus", float_ops._softplus32)])
def test_bit_pattern_sweep_equals_onnxruntime(op: str, fn: Callable[[np.ndarray], np.ndarray]
                                              ) -> None:
    """Every 4099th float32 bit pattern (both signs, zeros, denormals, tiny and huge values,
    infinities and NaNs) plus the edges around 1, bit for bit, NaNs' bits included (asin's
    0xffffffff for |x| > 1, log's and Softplus's 0xffffffff for a NaN (or, log, negative)
    input in a packet, a NaN input's own quieted bits in the tail); odd
    lengths put the tail's values through the C library."""
    bits = np.arange(0, 2**32, 4099, dtype=np.uint64).astype(np.uint32)
    edges = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 0.5, -0.5, 2.0**-149,
                      -(2.0**-149), 2.0**-126, 2.0**127, 3.4028235e38, 2.0**-64],
                     np.float32)
    ones = np.nextafter(np.float32([1, 1, -1, -1]), np.float32([2, 0, -2, 0]))
    x = np.concatenate([bits.view(np.float32), edges, ones, edges[::-1]])
    for n in (len(x), len(x) - 1, len(x) - 3):
        np.testing.assert_array_equal(fn(x[:n]).view(np.uint32),
                                      _onnxruntime_unary(op, x[:n]).view(np.uint32))


@given(st.lists(st.floats(width=32), min_size=1, max_size=64))
def test_atan_equals_onnxruntime(xs: list[float]) -> None:
    x = np.array(xs, np.float32)
    np.testing.assert_array_equal(eigen_math.atan(x).view(np.uint32),
                                  _onnxruntime_unary("Atan", x).view(np.uint32))


def test_atan_is_within_four_ulps_and_odd() -> None:
    """The packet's rational function is not correctly rounded: up to 4 ulps off on [-3, 3]
    (what ONNX Runtime returns), exactly odd, pi/2 at the infinities."""
    x = np.random.default_rng(1).uniform(-3, 3, 40000).astype(np.float32)
    ours = eigen_math.atan(x)
    assert _ulps(ours, np.arctan(x.astype(np.float64)).astype(np.float32)).max() <= 4
    np.testing.assert_array_equal(eigen_math.atan(-x), -ours)
    ends = eigen_math.atan(np.float32([np.inf, -np.inf, 0, -0.0]))
    np.testing.assert_array_equal(ends, np.float32([np.pi / 2, -np.pi / 2, 0, -0.0]))
    assert np.signbit(ends[3])


@pytest.mark.parametrize("n", [4, 8, 12, 64, 4096])
def test_softplus_of_nan_packets_equals_onnxruntime(n: int) -> None:
    """NaN inputs in packets of every length give log's 0xffffffff, as ONNX Runtime: numpy's
    multiply keeps one operand's NaN in its short loops and the other's in its long ones."""
    x = (np.arange(n, dtype=np.uint32) * 997 % 2**22 + np.uint32(0x7F800001)).view(np.float32)
    x[1::2] = -x[1::2]
    np.testing.assert_array_equal(float_ops._softplus32(x).view(np.uint32),
                                  _onnxruntime_unary("Softplus", x).view(np.uint32))
