"""Which NaN float32 ReduceSumSquare and ReduceL2 give over some axes (docs/operators.md
(O184)): ONNX Runtime's generic loop adds the squares of a contiguous run of reduced axes
four at a time, the second and third of each four before the running sum, so its NaN is
neither each output's first nor its last; lowp kept the first. And which NaN ReduceProd
over every axis gives (O185): Eigen's redux in ReduceSum's NaN order, where lowp took
numpy's multiply. Against ONNX Runtime bit for bit at 1 and 2 threads on both backends;
float64 (the first NaN) and every axis (Eigen's squared norm) as controls."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .ort_agreement import assert_float_bits_agree
from .test_reduce_sum_nan import _data, _model

# trailing runs of 1 to 13 (the unrolled fours and their tails), strided runs (a kept last
# axis), runs merged over neighbouring axes, split by a kept unit axis, or ended by one
_CASES = [((3, 2), [1]), ((4, 5), [1]), ((3, 8), [1]), ((2, 13), [1]), ((2, 5, 6), [0, 2]),
          ((3, 4, 5, 6), [2, 3]), ((2, 6, 1), [0, 1]), ((3, 1, 5), [0, 2]), ((8, 1, 9), [0, 2]),
          ((5, 6), [0]), ((3, 9, 2), [1]), ((3, 4, 5, 6), [1, 2]), ((4, 9), [0, 1])]


@pytest.mark.parametrize("op", ["ReduceSumSquare", "ReduceL2"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("shape", "axes"), _CASES)
def test_square_sums_over_nans_keep_onnxruntimes_nan(op, dtype, shape, axes):
    # before: ReduceSumSquare over axis 1 of (3, 8) with NaN 0x7fc00111 at 0 and 0x7fc00222
    # at 1 gave 0x7fc00111, ONNX Runtime 0x7fc00222
    rng = np.random.default_rng(sum(shape) + 7 * len(axes))
    for share, infinities in ((0.3, False), (0.05, True)):
        x = _data(rng, shape, dtype, share, infinities)
        for threads in (1, 2):
            assert_float_bits_agree(_model(op, shape, axes, dtype), {"x": x}, threads)


@settings(max_examples=40, deadline=None)
@given(op=st.sampled_from(["ReduceSumSquare", "ReduceL2"]),
       shape=st.lists(st.integers(1, 11), min_size=1, max_size=4).map(tuple),
       data=st.data(), keepdims=st.sampled_from([0, 1]), share=st.sampled_from([0.1, 0.4]),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**31 - 1))
def test_random_square_sums_over_nans_keep_onnxruntimes_nan(op, shape, data, keepdims, share,
                                                            threads, seed):
    axes = data.draw(st.lists(st.integers(0, len(shape) - 1), unique=True, min_size=1,
                              max_size=len(shape)))
    x = _data(np.random.default_rng(seed), shape, np.float32, share, False)
    assert_float_bits_agree(_model(op, shape, sorted(axes), np.float32, keepdims), {"x": x},
                            threads)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [1, 3, 4, 7, 8, 13, 16, 37, 100])
def test_product_of_every_element_over_nans_keeps_onnxruntimes_nan(dtype, size):
    # before: float32 ReduceProd of [NaN 0x7fc00111, NaN 0x7fc00222, 1, 1] gave 0x7fc00222,
    # ONNX Runtime 0x7fc00111 (613 of 820 random vectors apart, float64 0)
    rng = np.random.default_rng(size)
    for share in (0.1, 0.5):
        x = _data(rng, (size,), dtype, share, True)
        x = np.where(np.abs(x) < 4, np.sign(x), x).astype(dtype)   # no overflow to inf
        for threads in (1, 2):
            assert_float_bits_agree(_model("ReduceProd", (size,), None, dtype, 0), {"x": x},
                                    threads)
            assert_float_bits_agree(_model("ReduceProd", (2, size), [0, 1], dtype),
                                    {"x": np.stack([x, x[::-1]])}, threads)
