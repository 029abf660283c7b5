"""Float pools with auto_pad SAME_UPPER / SAME_LOWER and dilations: ONNX Runtime's
PoolAttributes pads with the kernel left undilated, then sizes the output from those pads
as explicit pads do, in ceil mode too ((O180)); lowp had followed the spec (dilation in
the pads, out = ceil(in / stride)) and gave a larger output. A dilated AveragePool window
whose every tap is padding gives 0, not 0 / 0 ((O182)), except in MLAS's NCHWc kernel, which
divides by 0 ((O219))."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from .ort_agreement import assert_outputs_equal_onnxruntime_on_every_path


def _pool(op: str, shape: tuple[int, ...], opset: int, **attrs: object):  # type: ignore[no-untyped-def]
    graph = helper.make_graph(
        [helper.make_node(op, ["x"], ["y"], **attrs)], op,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    return model


def _assert_as_onnxruntime(model, x: np.ndarray, backend: str, threads: int) -> None:  # type: ignore[no-untyped-def]
    from lowp.runtime import Session

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    theirs = ort.InferenceSession(model.SerializeToString(), options,
                                  providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    ours = Session(model, backend=backend, threads=threads).run({"x": x})["y"]
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("backend", ["auto", "reference"])
@pytest.mark.parametrize("threads", [1, 2])
def test_dilated_same_max_pool_has_onnxruntime_size(backend: str, threads: int) -> None:
    # 7 x 9, kernel 3, dilation 2, stride 1: ONNX Runtime pads 2 (not 4) per axis and
    # gives 5 x 7, where the spec's SAME gives 7 x 9
    x = np.random.default_rng(0).standard_normal((1, 4, 7, 9)).astype(np.float32)
    model = _pool("MaxPool", x.shape, 13, kernel_shape=[3, 3], dilations=[2, 2],
                  auto_pad="SAME_UPPER")
    _assert_as_onnxruntime(model, x, backend, threads)


@settings(max_examples=30, deadline=None)
@given(op=st.sampled_from(["MaxPool", "AveragePool"]), c=st.sampled_from([3, 16]),
       h=st.integers(1, 7), w=st.integers(1, 7), k=st.integers(2, 3), stride=st.integers(1, 2),
       dilation=st.integers(1, 3), auto_pad=st.sampled_from(["SAME_UPPER", "SAME_LOWER"]),
       ceil=st.integers(0, 1), include_pad=st.integers(0, 1), threads=st.sampled_from([1, 2]),
       backend=st.sampled_from(["auto", "reference"]), seed=st.integers(0, 99))
def test_same_pools_as_onnxruntime(op: str, c: int, h: int, w: int, k: int, stride: int,
                                   dilation: int, auto_pad: str, ceil: int, include_pad: int,
                                   threads: int, backend: str, seed: int) -> None:
    attrs: dict[str, object] = {"kernel_shape": [k, k], "strides": [stride, stride],
                                "dilations": [dilation, dilation], "auto_pad": auto_pad,
                                "ceil_mode": ceil}
    if op == "AveragePool":
        attrs["count_include_pad"] = include_pad
    x = np.random.default_rng(seed).standard_normal((1, c, h, w)).astype(np.float32)
    # ONNX Runtime refuses a negative output size, and its NCHWc pools stop the process
    # (SIGFPE) on an empty output (evals/corpus/repro/README.md, "Not lowp bugs")
    sizes = [_ort_same_size(n, k, stride, dilation, ceil) for n in (h, w)]
    assume(min(sizes) >= (1 if c == 16 else 0))
    _assert_as_onnxruntime(_pool(op, x.shape, 19, **attrs), x, backend, threads)


def _ort_same_size(n: int, k: int, stride: int, dilation: int, ceil: int) -> int:
    """PoolAttributes' output size of a SAME pool: pads from the undilated kernel, the
    numerator divided toward zero (ceil mode: up)."""
    num = (-(-n // stride) - 1) * stride + k - n + n - (k - 1) * dilation - 1
    return int(num / stride) + 1 if not ceil or num < 0 else -(-num // stride) + 1


@pytest.mark.parametrize("backend", ["auto", "reference"])
def test_dilated_average_pool_window_all_padding_is_zero(backend: str) -> None:
    # a 1 x 2 map, kernel 2 dilated by 2, pads 1: the first window's taps are -1 and 1 on
    # the height, both padding; ONNX Runtime writes 0 there (lowp had 0 / 0, NaN)
    x = np.arange(1, 5, dtype=np.float32).reshape(1, 2, 1, 2)
    model = _pool("AveragePool", x.shape, 19, kernel_shape=[2, 2], strides=[1, 1],
                  dilations=[2, 2], pads=[1, 1, 1, 1])
    _assert_as_onnxruntime(model, x, backend, 1)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("ceil", "include_pad"), [(0, 0), (1, 0), (0, 1)])
def test_nchwc_average_pool_window_all_padding_is_the_default_nan(
        ceil: int, include_pad: int, threads: int) -> None:
    # 16 channels (MLAS's NCHWc kernel, (O219)): a 1 x 1 map, kernel 2 dilated by 2,
    # stride 2, SAME_LOWER pads 1 and 0: the one window's taps are -1 and 1, both padding;
    # ONNX Runtime divides +0 by a count of 0 (0xffc00000, lowp gave 0) unless
    # count_include_pad counts the pad
    x = np.arange(1, 17, dtype=np.float32).reshape(1, 16, 1, 1)
    model = _pool("AveragePool", x.shape, 19, kernel_shape=[2, 2], strides=[2, 2],
                  dilations=[2, 2], auto_pad="SAME_LOWER", ceil_mode=ceil,
                  count_include_pad=include_pad)
    assert_outputs_equal_onnxruntime_on_every_path(model, {"x": x}, threads)
