"""Which NaN an Add, Mul or two-input Sum of two NaNs gives when ONNX Runtime's layout
transformer runs it on its NCHWc layout (docs/operators.md (O196)): the operands are two
float Convs' outputs (each also a graph output, so the Add is not fused into a Conv), and
the run of (O116) whose places decide input 0's or input 1's is the blocked tensor's
(N, C / block, H, W, block), channels padded to whole blocks, cut into TryParallelFor's
blocks at 2 threads. lowp took the places of the channels-first output (repro item 169)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import nchwc_conv
from lowp.runtime.float_ops import nchwc_positions

from .ort_agreement import (
    assert_bits_agree,
    assert_outputs_equal_onnxruntime_on_every_path,
    onnxruntime_optimized_ops,
)

F = TensorProto.FLOAT

# quiet and signalling NaNs of both signs with payloads
_NANS = np.array([0x7FC00111, 0x7FC00222, 0xFFC00333, 0x7FA00001, 0xFF800444, 0xFFA00555,
                  0x7F812345, 0xFFFFFFFF], np.uint32).view(np.float32)


def _model(op: str, channels: int) -> onnx.ModelProto:
    """x0, x1 (N, 1, H, W) -> two 1x1 Convs to `channels` -> op -> y; the Convs' outputs
    are graph outputs too."""
    rng = np.random.default_rng(channels)
    inits, nodes = [], []
    for j in (0, 1):
        inits += [numpy_helper.from_array(rng.normal(0, 1, (channels, 1, 1, 1)).astype(
                      np.float32), f"w{j}"),
                  numpy_helper.from_array(rng.normal(0, 1, channels).astype(np.float32),
                                          f"b{j}")]
        nodes.append(helper.make_node("Conv", [f"x{j}", f"w{j}", f"b{j}"], [f"c{j}"]))
    nodes.append(helper.make_node(op, ["c0", "c1"], ["y"]))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(f"x{j}", F, ["n", 1, "h", "w"])
                     for j in (0, 1)],
        [helper.make_tensor_value_info(name, F, None) for name in ("y", "c0", "c1")], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _feeds(shape: tuple[int, ...], seed: int) -> dict[str, np.ndarray]:
    """Inputs NaN (a random payload each) at 80% of the places, numbers elsewhere: each
    Conv output is NaN at its input's NaNs, with that NaN's payload, quieted."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for j in (0, 1):
        x = rng.normal(0, 1, shape).astype(np.float32)
        nan = rng.random(shape) < 0.8
        x[nan] = rng.choice(_NANS, int(nan.sum()))
        feeds[f"x{j}"] = x
    return feeds


@pytest.mark.skipif(not nchwc_conv.block_size(), reason="MLAS has no NCHWc kernels here")
def test_onnxruntime_runs_the_add_on_nchwc():
    ops = onnxruntime_optimized_ops(_model("Add", 48))
    assert ops.count("ReorderOutput") == 3 and "Add" in ops


@pytest.mark.parametrize("op", ["Add", "Mul", "Sum"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape,channels", [((1, 1, 45, 45), 48), ((1, 1, 55, 57), 20),
                                            ((2, 1, 23, 31), 36), ((1, 1, 3, 5), 4),
                                            ((1, 1, 3, 5), 6), ((1, 1, 7, 9), 10)])
def test_nchwc_two_nans_equal_onnxruntime(op, threads, shape, channels):
    # before: at 2 threads (1, 48, 45, 45)'s blocks of 16,842 cut ONNX Runtime's blocked
    # tensor (input 0's NaN at its places 16,840-16,843, channels 8-11 of (23, 17)) where
    # lowp cut the channels-first one; 6 channels of 3 x 5 (90 values, a tail of two, input
    # 0's there in lowp) are 240 blocked ones, input 1's throughout in ONNX Runtime (Add
    # and Sum). Mul stays channels-first in ONNX Runtime here (a ReorderOutput before it).
    assert_bits_agree(_model(op, channels), _feeds(shape, channels + threads), threads)


@settings(max_examples=30, deadline=None)
@given(op=st.sampled_from(["Add", "Sum"]), channels=st.sampled_from([2, 4, 6, 10, 12, 16, 20, 36]),
       n=st.integers(1, 2), h=st.integers(1, 9), w=st.integers(1, 9),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**31 - 1))
def test_nchwc_two_nans_hypothesis(op, channels, n, h, w, threads, seed):
    # channel counts that are and are not multiples of 4 and of the block, every tail
    assert_bits_agree(_model(op, channels), _feeds((n, 1, h, w), seed), threads)


@pytest.mark.parametrize("threads", [1, 2])
def test_nchwc_two_nans_on_every_path(threads):
    assert_outputs_equal_onnxruntime_on_every_path(
        _model("Add", 20), _feeds((1, 1, 55, 57), threads), threads)


def test_nchwc_positions_are_the_blocked_layout():
    shape, block = (2, 5, 3, 2), 4
    x = np.arange(np.prod(shape)).reshape(shape)
    padded = np.full((2, 8, 3, 2), -1)
    padded[:, :5] = x
    blocked = padded.reshape(2, 2, 4, 3, 2).transpose(0, 1, 3, 4, 2).reshape(-1)
    places, size = nchwc_positions(shape, block, np.arange(x.size))
    assert size == blocked.size
    np.testing.assert_array_equal(blocked[places], np.arange(x.size))


def _silu_model(channels: int) -> onnx.ModelProto:
    """_model's Convs, each followed by x * Sigmoid(x), then Add: ONNX Runtime's
    QuickGeluFusion makes each a com.microsoft QuickGelu, which its layout transformer
    keeps on the NCHWc layout (as lowp's ort_nchwc carries it through Sigmoid and Mul), so
    the Add runs on the blocked tensors."""
    model = _model("Add", channels)
    nodes = list(model.graph.node[:2])
    for j in (0, 1):
        nodes += [helper.make_node("Sigmoid", [f"c{j}"], [f"g{j}"]),
                  helper.make_node("Mul", [f"c{j}", f"g{j}"], [f"s{j}"])]
    nodes.append(helper.make_node("Add", ["s0", "s1"], ["y"]))
    graph = helper.make_graph(nodes, "g", list(model.graph.input),
                              [helper.make_tensor_value_info("y", F, None)],
                              list(model.graph.initializer))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape,channels", [((1, 1, 45, 45), 48), ((1, 1, 3, 5), 6)])
def test_add_of_quick_gelu_outputs_runs_on_nchwc(threads, shape, channels):
    # an Add of two SiLUs of NCHWc Convs (isbn_yolo26n's 11 bottleneck Adds): blocked
    # places too (3 of 4 fail before: the channels-first places' input 0's NaN at 16,842
    # and in the tail of two)
    ops = onnxruntime_optimized_ops(_silu_model(channels))
    assert ops.count("QuickGelu") == 2
    assert_bits_agree(_silu_model(channels), _feeds(shape, channels + threads), threads)
