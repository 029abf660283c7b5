"""A float Conv whose kernel spans a whole axis of its input, one input channel per group,
unit strides and dilations, no padding: MLAS runs it as MlasGemm on the input in place, not
through im2col (MlasConvPrepare's GemmDirect), and a kernel as wide as the input reads the
input as B transposed, summed by another kernel (docs/operators.md (O129)). Found on fsmn_vad
quantized with uint16 activations: its depthwise 20 x 1 Convs over (T, 1) maps, which ONNX
Runtime leaves float between 16-bit pairs, were an ulp apart on half the outputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from lowp.runtime import Session

from .ort_agreement import onnxruntime_run


def _model(x_shape: tuple[int, ...], w_shape: tuple[int, ...], group: int,
           bias: bool) -> bytes:
    """Conv(x, w[, b]) with every operand a graph input (not a constant: no NCHWc kernel)."""
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape)),
              helper.make_tensor_value_info("w", TensorProto.FLOAT, list(w_shape))]
    if bias:
        inputs.append(helper.make_tensor_value_info("b", TensorProto.FLOAT, [w_shape[0]]))
    node = helper.make_node("Conv", [i.name for i in inputs], ["y"], group=group)
    graph = helper.make_graph([node], "conv", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def _check(x_shape: tuple[int, ...], kernel: tuple[int, ...], group: int, per_group: int,
           bias: bool, seed: int, backend: str = "native", threads: int = 1) -> None:
    rng = np.random.default_rng(seed)
    w_shape = (group * per_group, 1, *kernel)
    feeds = {"x": rng.standard_normal(x_shape).astype(np.float32),
             "w": rng.standard_normal(w_shape).astype(np.float32)}
    if bias:
        feeds["b"] = rng.standard_normal(w_shape[0]).astype(np.float32)
    model = _model(x_shape, w_shape, group, bias)
    got = Session(model, backend=backend, threads=threads).run(feeds)["y"]
    (want,) = onnxruntime_run(model, feeds, threads)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("backend", ["reference", "native"])
def test_depthwise_kernel_as_wide_as_the_input_regression(backend, threads):
    """fsmn_vad's shape: 128 channels of a (117, 1) map, a 20 x 1 depthwise kernel."""
    _check((1, 128, 117, 1), (20, 1), 128, 1, False, 0, backend, threads)


@settings(max_examples=40, deadline=None)
@given(axis=st.sampled_from(["width", "height", "1d"]), batch=st.sampled_from([1, 2]),
       group=st.sampled_from([1, 3, 16]), per_group=st.sampled_from([1, 2, 5]),
       length=st.integers(1, 70), other=st.integers(1, 9), bias=st.booleans(),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**16))
def test_kernel_over_a_whole_axis_equals_onnxruntime(axis, batch, group, per_group, length,
                                                     other, bias, threads, seed):
    if axis == "width":         # (length, other) input, (k, other) kernel: B transposed
        x_shape, kernel = (batch, group, length, other), (min(length, 1 + seed % 24), other)
    elif axis == "height":      # (other, length) input, (other, 1) kernel: B the input
        x_shape, kernel = (batch, group, other, length), (other, 1)
    else:                       # 1-D, the kernel the whole input: one output position
        x_shape, kernel = (batch, group, length), (length,)
    _check(x_shape, kernel, group, per_group, bias, seed, threads=threads)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("x_shape", "kernel", "per_group"), [
    ((1, 1, 9, 2000), (9, 1), 8),       # as high as the input: MlasGemm's own thread cut
    ((1, 1, 3000, 4), (20, 4), 4)])     # as wide as the input, several filters
def test_whole_axis_products_cut_between_threads(x_shape, kernel, per_group, threads):
    _check(x_shape, kernel, 1, per_group, True, 3, threads=threads)
