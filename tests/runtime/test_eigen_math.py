"""lowp.eigen_math: Eigen's packet log and pow are within one float32 ulp of the exact
value, take IEEE's special cases, leave the elements after the last packet to the C
library, and equal ONNX Runtime's Log kernel bit for bit."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from hypothesis import given
from hypothesis import strategies as st
from onnx import helper

from lowp import eigen_math

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


def test_log_equals_onnxruntime() -> None:
    rng = np.random.default_rng(0)
    x = np.exp(rng.uniform(-30, 30, 20003)).astype(np.float32)   # a tail of three
    x[:10] = SPECIAL
    node = helper.make_node("Log", ["x"], ["y"])
    graph = helper.make_graph([node], "log", [helper.make_tensor_value_info("x", 1, x.shape)],
                              [helper.make_tensor_value_info("y", 1, x.shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    theirs = ort.InferenceSession(model.SerializeToString(), options,
                                  providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_array_equal(eigen_math.log(x), theirs)
