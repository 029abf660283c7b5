"""Which NaN MLAS's one-row and one-column SGEMM kernels hand on where NaNs of different
payloads meet (MlasSgemmKernelM1Avx, MlasSgemmKernelM1TransposeBAvx: a float MatMul with a
fed B of one column or an A of one row, ConvTranspose over an input of one value), against
ONNX Runtime bit for bit (docs/operators.md (O223)): each operation's first operand's, in
the assembly's operand order. Before, numpy's and the compiler's choice gave other payloads
(repro item 215)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import native_backend as nb

from .ort_agreement import assert_bits_agree


def _nans(rng: np.random.Generator, shape: tuple[int, ...], share: float,
          values: np.ndarray) -> np.ndarray:
    """`values` with a `share` of them NaNs of random payloads, signs, quiet or signalling."""
    hit = rng.random(shape) < share
    n = int(hit.sum())
    bits = (rng.integers(1, 1 << 22, n).astype(np.uint32) | np.uint32(0x7F800000)
            | (rng.integers(0, 2, n).astype(np.uint32) << 31)
            | (rng.integers(0, 2, n).astype(np.uint32) << 22))
    out = values.astype(np.float32).copy()
    out[hit] = bits.view(np.float32)
    return out


def _matmul(a_shape: tuple[int, int], b_shape: tuple[int, int]) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["y"])], "g",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, list(a_shape)),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, list(b_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 9), k=st.integers(1, 20), one_column=st.booleans(),
       share=st.sampled_from([0.1, 0.4]), threads=st.sampled_from([1, 2]),
       seed=st.integers(0, 2**31 - 1))
def test_one_row_and_one_column_products_hand_on_onnxruntimes_nan(m, k, one_column, share,
                                                                   threads, seed):
    rng = np.random.default_rng(seed)
    a_shape, b_shape = ((m, k), (k, 1)) if one_column else ((1, k), (k, m))
    a = _nans(rng, a_shape, share, rng.standard_normal(a_shape))
    b = _nans(rng, b_shape, share, rng.standard_normal(b_shape))
    assert_bits_agree(_matmul(a_shape, b_shape), {"a": a, "b": b}, threads)


@pytest.mark.parametrize("constant_filter", [True, False])
@pytest.mark.parametrize("channels", [2, 3, 4, 5, 9, 17])
@pytest.mark.parametrize("outputs", [1, 2, 3])
def test_conv_transpose_of_one_value_per_channel(constant_filter, channels, outputs):
    # every input channel a NaN of its own payload: before, lowp handed on channel 1's where
    # ONNX Runtime hands on channel 0's (2 channels, one output)
    x = (np.uint32(0x7FC00000) | (np.arange(channels, dtype=np.uint32) + 1)).view(
        np.float32).reshape(1, channels, 1, 1)
    w = np.ones((channels, outputs, 1, 1), np.float32)
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))]
    if not constant_filter:
        inputs.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, list(w.shape)))
    graph = helper.make_graph(
        [helper.make_node("ConvTranspose", ["x", "w"], ["y"])], "g", inputs,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w")] if constant_filter else [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    feeds = {"x": x} if constant_filter else {"x": x, "w": w}
    for threads in (1, 2):
        assert_bits_agree(model, feeds, threads)


@settings(max_examples=25, deadline=None)
@given(channels=st.integers(1, 6), side=st.integers(3, 19), kernel=st.sampled_from([3, 5]),
       share=st.sampled_from([0.0, 0.002, 0.05]), threads=st.sampled_from([1, 2]),
       seed=st.integers(0, 2**31 - 1))
def test_depthwise_conv_columns_hand_on_onnxruntimes_nan(channels, side, kernel, share,
                                                         threads, seed):
    # a depthwise Conv of a fed filter runs as MlasConv's im2col and one M = 1 product per
    # channel over contiguous columns (whole blocks of four and a tail, a NaN anywhere or
    # none); every instruction-set path
    rng = np.random.default_rng(seed)
    x_shape, w_shape = (1, channels, side, side + 2), (channels, 1, kernel, kernel)
    x = _nans(rng, x_shape, share, rng.standard_normal(x_shape))
    w = _nans(rng, w_shape, share, rng.standard_normal(w_shape))
    pad = kernel // 2
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], group=channels, pads=[pad] * 4)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape)),
         helper.make_tensor_value_info("w", TensorProto.FLOAT, list(w_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    for path in nb.available_paths():
        with nb.use_path(path):
            assert_bits_agree(model, {"x": x, "w": w}, threads)
