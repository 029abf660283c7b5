"""Which NaN float32 Softmax and LogSoftmax give of rows holding several NaNs (payloads, signs,
signalling ones) and infinities, against ONNX Runtime bit for bit (docs/operators.md (O139)):
MLAS's sum of exponentials keeps each lane's first NaN and, in its fold, the first
operand's; the exponential of +inf (a row whose maximum a NaN hid) is +inf, not a NaN.
Before, the numpy reference gave numpy's operand of two NaNs and the native kernel its
compiler's, and both took exp(+inf) for the default NaN (repro item 113)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from lowp import ort_math
from lowp.runtime import native_backend

from .ort_agreement import assert_bits_agree

pytestmark = pytest.mark.skipif(not ort_math.mlas_has_avx512f(),
                                reason="ONNX Runtime's AVX2 softmax order is not modelled")

# NaNs of other payloads and signs, signalling ones, infinities, zeros, a denormal, numbers
_POOL = np.concatenate([
    np.array([0x7FC00111, 0x7FC00222, 0xFFC00333, 0x7FA00001, 0xFF800444, 0x7F800005,
              0x00000003], np.uint32).view(np.float32),
    np.array([np.inf, -np.inf, 0.0, -0.0, 1.0, -2.5, 3.0, 88.0, -104.0], np.float32)])


def _model(op: str, shape: tuple[int, ...], axis: int) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node(op, ["x"], ["y"], axis=axis)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@settings(max_examples=120, deadline=None)
@given(op=st.sampled_from(["Softmax", "LogSoftmax"]),
       shape=st.sampled_from([(4, 2), (6, 3), (8, 5), (9, 16), (7, 17), (5, 33), (4, 48),
                              (3, 64), (3, 65), (2, 130), (3, 5, 18), (2, 40, 3)]),
       axis=st.integers(-1, 1), threads=st.sampled_from([1, 2]),
       share=st.sampled_from([0.1, 0.3, 0.8]),
       path=st.sampled_from(native_backend.available_paths()), seed=st.integers(0, 2**31 - 1))
def test_rows_with_several_nans_equal_onnxruntime(op, shape, axis, threads, share, path, seed):
    # before: [inf, NaN 0x7f9e0846, 1.8] gave 0xffc00000 (exp(inf) as the default NaN,
    # first in the fold) where ONNX Runtime gives 0x7fde0846 throughout
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    x = np.where(rng.random(shape) < share, rng.choice(_POOL, size=shape), x).astype(np.float32)
    with native_backend.use_path(path):
        assert_bits_agree(_model(op, shape, axis), {"x": x}, threads)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("n", [2, 5, 16, 17, 33, 64, 80])
@pytest.mark.parametrize("axis", [0, 1])
def test_every_pair_of_nan_positions(op, n, axis):
    """Two quiet NaNs of other payloads at every ordered pair of positions of a row of n."""
    a, b = np.array([0x7FC00011, 0xFFC00022], np.uint32).view(np.float32)
    base = (np.arange(n, dtype=np.float32) % 5) / 4
    rows = []
    for i in range(n):
        for j in range(n):
            if i != j:
                r = base.copy()
                r[i], r[j] = a, b
                rows.append(r)
    x = np.array(rows, np.float32)
    x = x if axis == 1 else np.ascontiguousarray(x.T)
    for threads in (1, 2):
        assert_bits_agree(_model(op, x.shape, axis), {"x": x}, threads)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_rows_of_infinities(op):
    """-inf throughout (the maximum stays the lowest float: 0 / 0 in the scale), +inf
    throughout, +inf hidden from the maximum by a later NaN, zeros of both signs."""
    inf, nan = np.float32(np.inf), np.uint32(0x7F9E0846).view(np.float32)
    x = np.array([[-inf] * 5, [inf] * 5, [inf, nan, 1.8, 0, 0], [0, inf, nan, -inf, 2],
                  [-0.0, 0.0, -0.0, 0.0, -0.0], [inf, -inf, nan, nan, 1]], np.float32)
    for threads in (1, 2):
        assert_bits_agree(_model(op, x.shape, 1), {"x": x}, threads)
        assert_bits_agree(_model(op, x.T.shape, 0), {"x": np.ascontiguousarray(x.T)}, threads)
