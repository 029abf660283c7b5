"""Which NaN a float ConvTranspose's col2im and bias add hand on where NaNs of different
payloads meet, against ONNX Runtime bit for bit (docs/operators.md (O270)): its 2-D Col2im
adds a stride-1 run of column entries four at a time image first, then a pair column entry
first, then one image first; strided runs, the 1-D col2im and the bias add keep the image's
NaN. Before, numpy's and the compiler's operand order gave other payloads (repro item 215).

The input's NaNs sit in the first input channel of each group only, so that every column
entry holds at most one NaN product (the GEMM's own order where NaN products meet is not
this test's subject)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from lowp.runtime import native_backend

from .ort_agreement import assert_bits_agree


def _nan_payloads(rng: np.random.Generator, n: int) -> np.ndarray:
    bits = (rng.integers(1, 1 << 22, n).astype(np.uint32) | np.uint32(0x7F800000)
            | (rng.integers(0, 2, n).astype(np.uint32) << 31)
            | (rng.integers(0, 2, n).astype(np.uint32) << 22))
    return bits.view(np.float32)


def _conv_transpose(x_shape: list[int], w_shape: list[int], bias: bool,
                    attrs: dict[str, object]) -> onnx.ModelProto:
    names = ["x", "w", "b"] if bias else ["x", "w"]
    shapes = {"x": x_shape, "w": w_shape, "b": [w_shape[1] * int(attrs["group"])]}
    graph = helper.make_graph(
        [helper.make_node("ConvTranspose", names, ["y"], **attrs)], "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shapes[n]) for n in names],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@settings(max_examples=40, deadline=None)
@given(nd=st.integers(1, 2), group=st.integers(1, 2), per_group=st.integers(1, 2),
       outputs=st.integers(1, 3), kernel=st.integers(1, 3), stride=st.integers(1, 2),
       dilation=st.sampled_from([1, 1, 2]), pad=st.integers(0, 1), width=st.integers(1, 11),
       height=st.integers(1, 4), bias=st.booleans(), threads=st.sampled_from([1, 2]),
       seed=st.integers(0, 2**31 - 1))
def test_col2im_and_bias_hand_on_onnxruntimes_nan(nd, group, per_group, outputs, kernel,
                                                  stride, dilation, pad, width, height, bias,
                                                  threads, seed):
    rng = np.random.default_rng(seed)
    spatial = [width] if nd == 1 else [height, width]
    x = rng.standard_normal([1, group * per_group, *spatial]).astype(np.float32)
    first = x[:, ::per_group]                       # each group's first input channel
    hit = rng.random(first.shape) < 0.6
    first[hit] = _nan_payloads(rng, int(hit.sum()))
    x[:, ::per_group] = first
    w = rng.standard_normal([group * per_group, outputs, *[kernel] * nd]).astype(np.float32)
    feeds = {"x": x, "w": w}
    if bias:
        b = rng.standard_normal(group * outputs).astype(np.float32)
        hit_b = rng.random(b.shape) < 0.5
        b[hit_b] = _nan_payloads(rng, int(hit_b.sum()))
        feeds["b"] = b
    # the pads crop less than the full output (a pad of one needs a kernel reach above 1)
    reach = (kernel - 1) * dilation
    pads = [min(pad, reach // 2)] * (2 * nd)
    attrs: dict[str, object] = {"group": group, "strides": [stride] * nd,
                                "dilations": [dilation] * nd, "pads": pads}
    model = _conv_transpose(list(x.shape), list(w.shape), bias, attrs)
    for path in native_backend.available_paths():
        with native_backend.use_path(path):
            assert_bits_agree(model, feeds, threads)


@pytest.mark.parametrize("width", range(1, 13))
@pytest.mark.parametrize("pads", [[0, 0, 0, 0], [0, 1, 0, 1], [0, 1, 0, 0]])
def test_a_row_of_nans_keeps_onnxruntimes_payloads(width, pads):
    # one channel, a 1 x 3 kernel of ones, a row of NaNs of payloads 1, 2, ...: before, with
    # 4 or more input columns lowp handed on the later tap's NaN where ONNX Runtime keeps
    # the image's (and the earlier tap's where it takes the column entry's)
    x = (np.uint32(0x7FC00000) | (np.arange(width, dtype=np.uint32) + 1)).view(
        np.float32).reshape(1, 1, 1, width)
    w = np.ones((1, 1, 1, 3), np.float32)
    model = _conv_transpose([1, 1, 1, width], [1, 1, 1, 3], False,
                            {"group": 1, "pads": pads})
    for threads in (1, 2):
        assert_bits_agree(model, {"x": x, "w": w}, threads)
