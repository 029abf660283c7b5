"""Which NaN ReduceSum, ReduceMean, ReduceL1 and ReduceLogSum give over NaNs (payloads, signs,
signalling NaNs, infinities), float32 and float64, against ONNX Runtime bit for bit at 1 and
2 threads on both backends (docs/operators.md (O153); repro item 131). Each add of ONNX
Runtime's orders keeps one operand's NaN (Eigen's packet sums, MLAS's M = 1 kernel, its
DGEMM, the generic loop); lowp took numpy's, ReduceL1's |NaN| with the sign cleared where
ONNX Runtime's v > 0 ? v : -v flips it, and float32 ReduceLogSum as numpy's log of numpy's
sum."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from .ort_agreement import assert_float_bits_agree

_ELEM = {np.float32: TensorProto.FLOAT, np.float64: TensorProto.DOUBLE}
_NANS = {
    np.float32: np.array([0x7FC00111, 0x7FC00222, 0xFFC00333, 0x7FA00001, 0xFF800444],
                         np.uint32).view(np.float32),
    np.float64: np.array([0x7FF8000000000111, 0x7FF8000000000222, 0xFFF8000000000333,
                          0x7FF4000000000001, 0xFFF0000000000444], np.uint64).view(np.float64),
}
# (shape, axes): trailing (KR), all (R), middle (KRK) under one and several outer rows,
# leading (RK), separated (RKR and others); float64 KRK over more than 512 rows (its DGEMM's
# blocks)
_CASES = [((7,), [0]), ((16,), [0]), ((37,), [0]), ((1000,), [0]), ((4, 9), [1]),
          ((4, 9), [0]), ((5, 12, 3), [1]), ((1, 12, 3), [1]), ((3, 5, 7), [0, 2]),
          ((3, 5, 7), [1]), ((3, 5, 7), [0, 1, 2]), ((2, 3, 4, 5), [1, 3]), ((6, 33), [1]),
          ((33, 6), [0]), ((2, 1100, 3), [1])]


def _model(op: str, shape: tuple[int, ...], axes: list[int] | None, dtype: type,
           keepdims: int = 1, noop: int = 0) -> onnx.ModelProto:
    inputs = ["x", "axes"] if axes is not None else ["x"]
    inits = [] if axes is None else [helper.make_tensor("axes", TensorProto.INT64,
                                                        [len(axes)], axes)]
    graph = helper.make_graph(
        [helper.make_node(op, inputs, ["y"], keepdims=keepdims, noop_with_empty_axes=noop)],
        "g", [helper.make_tensor_value_info("x", _ELEM[dtype], list(shape))],
        [helper.make_tensor_value_info("y", _ELEM[dtype], None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _data(rng: np.random.Generator, shape: tuple[int, ...], dtype: type, share: float,
          infinities: bool) -> np.ndarray:
    pool = _NANS[dtype]
    if infinities:
        pool = np.concatenate([pool, np.array([np.inf, -np.inf], dtype)])
    x = rng.standard_normal(shape).astype(dtype)
    return np.where(rng.random(shape) < share, rng.choice(pool, size=shape), x).astype(dtype)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceL1", "ReduceLogSum"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("shape", "axes"), _CASES)
def test_sums_over_nans_keep_onnxruntimes_nan(op, dtype, shape, axes):
    # before: ReduceSum of float32 (16,) with NaN 0x7fc00111 at 5 and 0x7fa00001 at 4 gave
    # 0x7fc00111, ONNX Runtime 0x7fe00001; ReduceL1 over axis 1 of (4, 9) 0x7fc00222 where
    # ONNX Runtime gives 0xffc00222
    rng = np.random.default_rng(sum(shape) + 7 * len(axes))
    for share, infinities in ((0.2, False), (0.05, True)):
        x = _data(rng, shape, dtype, share, infinities)
        for threads in (1, 2):
            assert_float_bits_agree(_model(op, shape, axes, dtype), {"x": x}, threads)


@settings(max_examples=40, deadline=None)
@given(op=st.sampled_from(["ReduceSum", "ReduceMean", "ReduceL1", "ReduceLogSum"]),
       dtype=st.sampled_from([np.float32, np.float64]),
       shape=st.lists(st.integers(1, 9), min_size=1, max_size=4).map(tuple),
       data=st.data(), keepdims=st.sampled_from([0, 1]), share=st.sampled_from([0.02, 0.3]),
       infinities=st.booleans(), threads=st.sampled_from([1, 2]),
       seed=st.integers(0, 2**31 - 1))
def test_random_sums_over_nans_keep_onnxruntimes_nan(op, dtype, shape, data, keepdims, share,
                                                     infinities, threads, seed):
    axes = data.draw(st.lists(st.integers(0, len(shape) - 1), unique=True, max_size=len(shape)))
    noop = data.draw(st.sampled_from([0, 1])) if not axes else 0
    x = _data(np.random.default_rng(seed), shape, dtype, share, infinities)
    model = _model(op, shape, sorted(axes) if axes else None, dtype, keepdims, noop)
    assert_float_bits_agree(model, {"x": x}, threads)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceL1", "ReduceL2",
                                "ReduceSumSquare", "ReduceLogSum", "ReduceMax", "ReduceProd",
                                "ReduceLogSumExp"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_no_axes_with_noop_runs_each_element_through_the_update(op, dtype):
    # (O153) before: every reduction returned x as it is; ONNX Runtime's ReduceL1 of
    # [-2, 3, 0.5] over no axes is [2, 3, 0.5], ReduceSumSquare [4, 9, 0.25]; (O186)
    # ReduceLogSumExp gave -0 and a signalling NaN as they are, ONNX Runtime +0 and the NaN
    # quieted
    x = np.array([-2.0, 3.0, 0.5, -0.0, 0.0, np.inf, -np.inf, 1e-30, 0.0], dtype)
    x[-1:] = _NANS[dtype][3:4]
    for keepdims in (0, 1):
        for threads in (1, 2):
            assert_float_bits_agree(_model(op, x.shape, None, dtype, keepdims, noop=1),
                                    {"x": x}, threads)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("shape", "axes"), [((1, 3), [0]), ((2, 3), [0]), ((5, 3), [0]),
                                             ((2, 1, 3), [1]), ((3, 5, 3), [1]),
                                             ((1, 4, 3), [1]), ((1, 2, 3), [0, 1]),
                                             ((2, 1, 1, 3), [1, 2]), ((3, 1), [1])])
@pytest.mark.parametrize("threads", [1, 2])
def test_leading_and_middle_sums_start_from_positive_zero(op, dtype, shape, axes, threads):
    # (O224) before: ReduceSum of -0 over axis 0 of (2, 3) gave -0 where ONNX Runtime gives
    # +0, and over the unit axis of (2, 1, 3) the signalling NaN 0x7fa00001 as it is where
    # ONNX Runtime gives 0x7fe00001 (repro item 186)
    zeros = np.full(shape, -0.0, dtype)
    assert_float_bits_agree(_model(op, shape, axes, dtype), {"x": zeros}, threads)
    for nan in _NANS[dtype][3:]:
        lone = zeros.copy()
        lone.reshape(-1)[-1] = nan
        assert_float_bits_agree(_model(op, shape, axes, dtype), {"x": lone}, threads)
