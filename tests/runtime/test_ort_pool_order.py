"""Float32 average pooling sums in MLAS's order, so it equals ONNX Runtime bit for bit: the
NCHWc kernels (channels filling the block) add the window row-major, the NCHW kernels add
each window column and then the columns; global pooling adds one value after another
(NCHWc) or in four lanes (NCHW)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper

from lowp.runtime import Session, nchwc_conv


def _run_both(op: str, x: np.ndarray, opset: int = 17,
              **attrs: object) -> tuple[np.ndarray, np.ndarray]:
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    graph = helper.make_graph([node], op, [helper.make_tensor_value_info("x", 1, x.shape)],
                              [helper.make_tensor_value_info("y", 1, ["n", "c", "h", "w"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    theirs = ort.InferenceSession(model.SerializeToString(), options,
                                  providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    return Session(model).run({"x": x})["y"], theirs


@pytest.mark.parametrize("c", [20, 32, 48, 8])
@pytest.mark.parametrize("spatial", [(1, 1), (1, 5), (4, 4), (17, 1), (33, 31)])
def test_global_average_pool_equals_onnxruntime(c: int, spatial: tuple[int, int]) -> None:
    x = np.random.default_rng(c + spatial[0]).standard_normal((2, c) + spatial)
    ours, theirs = _run_both("GlobalAveragePool", x.astype(np.float32))
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("c", [20, 32])
@pytest.mark.parametrize("include_pad", [0, 1])
@pytest.mark.parametrize("kernel,strides,pads,ceil", [
    ([3, 3], [2, 2], [1, 1, 1, 1], 0), ([2, 3], [1, 2], [0, 1, 0, 1], 0),
    ([3, 3], [2, 2], [0, 0, 0, 0], 1), ([3, 3], [2, 2], [1, 1, 1, 1], 1)])
def test_average_pool_equals_onnxruntime(c: int, include_pad: int, kernel: list[int],
                                         strides: list[int], pads: list[int],
                                         ceil: int) -> None:
    x = np.random.default_rng(c).standard_normal((1, c, 10, 9)).astype(np.float32)
    ours, theirs = _run_both("AveragePool", x, kernel_shape=kernel, strides=strides,
                             pads=pads, count_include_pad=include_pad, ceil_mode=ceil)
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("c", [20, 32])
def test_dilated_average_pool_equals_onnxruntime(c: int) -> None:
    x = np.random.default_rng(c).standard_normal((1, c, 10, 9)).astype(np.float32)
    ours, theirs = _run_both("AveragePool", x, opset=19, kernel_shape=[3, 3], strides=[1, 1],
                             pads=[1, 1, 1, 1], dilations=[2, 2])
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.skipif(nchwc_conv._native_isa() is None, reason="native module not built")
@settings(max_examples=80, deadline=None)
@given(rows=st.integers(1, 20), n=st.integers(1, 70), lanes=st.sampled_from([1, 4]),
       seed=st.integers(0, 2**16), zeros=st.booleans())
def test_native_pool_sums_equal_their_numpy_form(rows: int, n: int, lanes: int, seed: int,
                                                 zeros: bool) -> None:
    x = (np.random.default_rng(seed).standard_normal((rows, n)) * 100).astype(np.float32)
    if zeros:
        x[0] = -0.0
    got = nchwc_conv.pool_sums(x, lanes)
    want = nchwc_conv.pool_sums_reference(x, lanes)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("op", ["GlobalAveragePool", "AveragePool"])
def test_pool_of_a_conv_without_listed_shapes_is_nchwc(op: str) -> None:
    # ONNX Runtime's shape inference knows a Conv's output channels from its weights, so its
    # NCHWc transformer takes the pool after it even when the file lists no shapes
    # (vietcombank_captcha, tf2onnx: its GlobalAveragePool differed by an ulp)
    from onnx import numpy_helper

    rng = np.random.default_rng(5)
    w = (rng.standard_normal((32, 16, 3, 3)) * 0.2).astype(np.float32)
    attrs = {"kernel_shape": [3, 3]} if op == "AveragePool" else {}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]), helper.make_node(op, ["r"], ["y"], **attrs)]
    graph = helper.make_graph(nodes, "g",
                              [helper.make_tensor_value_info("x", 1, [1, 16, 23, 23])],
                              [helper.make_tensor_value_info("y", 1, ["n", "c", "h", "w"])],
                              [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    x = (rng.standard_normal((1, 16, 23, 23)) * 3).astype(np.float32)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    theirs = ort.InferenceSession(model.SerializeToString(), options,
                                  providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_array_equal(Session(model).run({"x": x})["y"], theirs)
