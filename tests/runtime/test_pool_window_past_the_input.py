"""A pooling window longer than the padded input by less than a stride: ONNX Runtime sizes
the output with a truncating division of the negative numerator, (in + pads - extent) /
stride + 1 = 1, and pools the in-bounds taps of that one window (PP-OCR's direction
classifier's last 2x2 MaxPool on a [1, 2] map, from a small image); lowp refused the node.
By a stride or more (within two) the division gives an empty output, which lowp had
refused too (O181). Float and QDQ pools, against ONNX Runtime (O80)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.errors import NodeError
from lowp.runtime import Session


def _model(op: str, shape: tuple[int, ...], qdq: bool, opset: int, **attrs: object):  # type: ignore[no-untyped-def]
    nodes, inits, src = [], [], "x"
    if qdq:
        inits = [numpy_helper.from_array(np.float32(0.02), "s"),
                 numpy_helper.from_array(np.uint8(128), "z")]
        nodes += [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
                  helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"])]
        src = "xd"
    nodes.append(helper.make_node(op, [src], ["p"], **attrs))
    out = "p"
    if qdq:
        nodes += [helper.make_node("QuantizeLinear", ["p", "s", "z"], ["pq"]),
                  helper.make_node("DequantizeLinear", ["pq", "s", "z"], ["y"])]
        out = "y"
    graph = helper.make_graph(nodes, op, [helper.make_tensor_value_info("x", 1, shape)],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT,
                                                            ["n", "c", "h", "w"])],
                              initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _run_both(model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    theirs = ort.InferenceSession(model.SerializeToString(), options,
                                  providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    ours = Session(model).run({"x": x})
    return next(iter(ours.values())), theirs


def test_paddle_classifier_tail_max_pool() -> None:
    x = np.random.default_rng(0).standard_normal((1, 200, 1, 2)).astype(np.float32)
    ours, theirs = _run_both(_model("MaxPool", x.shape, False, 11, kernel_shape=[2, 2],
                                    strides=[2, 2], pads=[0, 0, 0, 0]), x)
    assert theirs.shape == (1, 200, 1, 1)
    np.testing.assert_array_equal(ours, theirs)


@settings(max_examples=40, deadline=None)
@given(op=st.sampled_from(["MaxPool", "AveragePool"]), qdq=st.booleans(),
       c=st.sampled_from([3, 16]), size=st.integers(1, 4), stride=st.integers(2, 4),
       over=st.integers(1, 3), pad=st.integers(0, 1), other=st.integers(1, 5),
       opset=st.sampled_from([11, 17, 19, 22]),
       include_pad=st.integers(0, 1), ceil=st.integers(0, 1), seed=st.integers(0, 99))
def test_window_past_the_end_by_less_than_a_stride(op: str, qdq: bool, c: int, size: int,
                                                    stride: int, over: int, pad: int,
                                                    other: int, opset: int, include_pad: int,
                                                    ceil: int,
                                                    seed: int) -> None:
    # QLinearAveragePool divides a ceil-mode window past the end by the whole kernel, lowp
    # by the taps inside the padded input (docs/operators.md, (O8); a decision)
    assume(not (qdq and op == "AveragePool" and ceil and include_pad))
    over = min(over, stride - 1)                  # the window passes the end by `over`
    kernel = size + 2 * pad + over
    pad = min(pad, kernel - 1)
    attrs: dict[str, object] = {"kernel_shape": [kernel, 1], "strides": [stride, 1],
                                "pads": [pad, 0, pad, 0], "ceil_mode": ceil}
    if op == "AveragePool":
        attrs["count_include_pad"] = include_pad
    x = np.random.default_rng(seed).standard_normal((1, c, size, other)).astype(np.float32)
    ours, theirs = _run_both(_model(op, x.shape, qdq, opset, **attrs), x)
    assert theirs.shape[2] == 1
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("backend", ["auto", "reference"])
# (the quantized MaxPool only: ONNX Runtime refuses the QDQ AveragePool's file and has no
# QDQ LpPool)
@pytest.mark.parametrize("op,qdq", [("MaxPool", False), ("AveragePool", False),
                                    ("LpPool", False), ("MaxPool", True)])
@pytest.mark.parametrize("kernel,stride,ceil", [(3, 2, 0), (4, 2, 0), (3, 2, 1), (5, 3, 1)])
def test_a_window_past_the_end_by_a_stride_gives_an_empty_output(
        backend: str, op: str, qdq: bool, kernel: int, stride: int, ceil: int) -> None:
    # (in + pads - extent) / stride rounds toward zero to -1: ONNX Runtime's output has
    # 0 rows (O181); lowp refused the node (3 channels: ONNX Runtime's NCHWc pools stop
    # the process on an empty output, "Not lowp bugs")
    x = np.random.default_rng(1).standard_normal((2, 3, 1, 4)).astype(np.float32)
    attrs: dict[str, object] = {"kernel_shape": [kernel, 1], "strides": [stride, 1],
                                "ceil_mode": ceil}
    model = _model(op, x.shape, qdq, 18, **attrs)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    theirs = ort.InferenceSession(model.SerializeToString(), options,
                                  providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert theirs.shape == (2, 3, 0, 4)
    for replay in (False, True):
        session = Session(model, backend=backend, replay=replay)
        for _ in range(2):
            ours = next(iter(session.run({"x": x}).values()))
            assert ours.shape == theirs.shape and ours.dtype == theirs.dtype


def test_a_window_past_the_end_by_two_strides_is_refused() -> None:
    # a negative output size: ONNX Runtime refuses the node too
    x = np.zeros((1, 3, 1, 4), np.float32)
    with pytest.raises(NodeError):
        Session(_model("MaxPool", x.shape, False, 17, kernel_shape=[5, 1],
                       strides=[2, 1])).run({"x": x})


@pytest.mark.parametrize("backend", ["auto", "reference"])
@pytest.mark.parametrize("opset,dilation", [(17, 1), (19, 1), (19, 2), (22, 1), (22, 2)])
@pytest.mark.parametrize("c", [3, 16])
def test_nchwc_average_pool_counts_the_overhang_from_opset_19(backend: str, opset: int, c: int,
                                                             dilation: int) -> None:
    # From opset 19 on ONNX Runtime's generic loop leaves the overhang out of the divisor,
    # but a pool whose channels fill the NCHWc blocks runs MLAS's NCHWc kernel, which counts
    # it as padding with count_include_pad (without ceil_mode); lowp had divided such a
    # 16-channel pool by the taps inside the input (2x the value)
    x = np.random.default_rng(3).standard_normal((1, c, 2 * dilation, 3)).astype(np.float32)
    dilated = {"dilations": [dilation, 1]} if dilation > 1 else {}   # an attribute from 19
    model = _model("AveragePool", x.shape, False, opset, kernel_shape=[3, 1], strides=[3, 1],
                   pads=[0, 0, 0, 0], count_include_pad=1, **dilated)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    theirs = ort.InferenceSession(model.SerializeToString(), options,
                                  providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    ours = Session(model, backend=backend).run({"x": x})["p"]
    np.testing.assert_array_equal(ours, theirs)
