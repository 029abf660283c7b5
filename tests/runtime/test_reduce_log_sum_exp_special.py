"""ReduceLogSumExp over NaNs (payloads, signs, signalling ones) and infinities, float32 and
float64, against ONNX Runtime bit for bit at 1 and 2 threads on both backends
(docs/operators.md (O142); repro item 115). ONNX Runtime's maximum skips infinities and
NaNs (every axis: Eigen's maxCoeff, and an infinite maximum is the result), its sum skips
-inf and keeps the first NaN it meets; lowp took numpy's maximum (inf - inf made NaNs) and
numpy's cumulative sum's NaN."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from .ort_agreement import assert_float_bits_agree

_SPECIAL = {
    np.float32: np.array([0x7FC00111, 0x7FC00222, 0xFFC00333, 0x7FA00001, 0xFF800444],
                         np.uint32).view(np.float32),
    np.float64: np.array([0x7FF8000000000111, 0x7FF8000000000222, 0xFFF8000000000333,
                          0x7FF4000000000001, 0xFFF0000000000444], np.uint64).view(np.float64),
}


def _model(shape: tuple[int, ...], axes: list[int], dtype: type) -> onnx.ModelProto:
    elem = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
    graph = helper.make_graph(
        [helper.make_node("ReduceLogSumExp", ["x", "axes"], ["y"], keepdims=1)], "g",
        [helper.make_tensor_value_info("x", elem, list(shape))],
        [helper.make_tensor_value_info("y", elem, None)],
        [helper.make_tensor("axes", TensorProto.INT64, [len(axes)], axes)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("shape", "axes"), [((7,), [0]), ((16,), [0]), ((4, 9), [1]),
                                             ((4, 9), [0]), ((3, 5, 7), [0, 2]),
                                             ((3, 5, 7), [1]), ((3, 5, 7), [0, 1, 2]),
                                             ((1000,), [0])])
@pytest.mark.parametrize("share", [0.05, 0.3])
def test_log_sum_exp_over_nans_and_infinities(dtype, shape, axes, share):
    # before: float64 [-1.1, -0.33, NaN 0xfff0...444, 1.45, inf, 2.43, 0.64] gave
    # 0xfff8...444, ONNX Runtime +inf
    rng = np.random.default_rng(sum(shape) + len(axes))
    pool = np.concatenate([_SPECIAL[dtype], np.array([np.inf, -np.inf], dtype)])
    for _ in range(4):
        x = rng.standard_normal(shape).astype(dtype)
        x = np.where(rng.random(shape) < share, rng.choice(pool, size=shape), x).astype(dtype)
        for threads in (1, 2):
            assert_float_bits_agree(_model(shape, axes, dtype), {"x": x}, threads)
