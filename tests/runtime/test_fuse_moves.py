"""Two consecutive quantized data-movement steps run as one step (lowp.runtime.fuse_moves):
an STFT front end's Unsqueeze then Transpose after its 1-D convolution (oww_melspectrogram)
hands on the convolution's channels-last memory as it is, instead of a conversion to
channels-first and two copies. Outputs equal ONNX Runtime's and the unfused run's, in plain
and replayed runs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session

from .ort_agreement import onnxruntime_run

# (first move, its parameters, second move, its parameters, output rank) on the
# convolution's (N, C, T)
PAIRS = {
    "stft: unsqueeze 1, swap the last two": ("Unsqueeze", [1], "Transpose", [0, 1, 3, 2], 4),
    "unsqueeze 3, swap channels and time": ("Unsqueeze", [3], "Transpose", [0, 2, 1, 3], 4),
    "transpose, then unsqueeze": ("Transpose", [0, 2, 1], "Unsqueeze", [1], 4),
    "transpose, then flatten": ("Transpose", [0, 2, 1], "Flatten", 1, 2),
    "unsqueeze, then squeeze": ("Unsqueeze", [2], "Squeeze", [2], 3),
    "reshape, then transpose": ("Reshape", [0, -1, 1], "Transpose", [0, 2, 1], 3),
}


def _move(op: str, param: object, src: str, dst: str, inits: list) -> object:
    if op == "Transpose":
        return helper.make_node(op, [src], [dst], perm=param)
    if op == "Flatten":
        return helper.make_node(op, [src], [dst], axis=param)
    inits.append(numpy_helper.from_array(np.array(param, np.int64), f"{dst}_p"))
    return helper.make_node(op, [src, f"{dst}_p"], [dst])


def _model(pair: str, channels: int, stride: int) -> bytes:
    op1, p1, op2, p2, rank = PAIRS[pair]
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(np.float32(0.02), "xs"),
        numpy_helper.from_array(np.uint8(128), "xz"),
        numpy_helper.from_array(rng.integers(-127, 128, (channels, 2, 5)).astype(np.int8),
                                "wq"),
        numpy_helper.from_array(np.float32(0.01), "ws"),
        numpy_helper.from_array(np.int8(0), "wz"),
        numpy_helper.from_array(np.float32(0.03), "ys"),
        numpy_helper.from_array(np.uint8(100), "yz"),
        numpy_helper.from_array(np.float32(2.0), "two"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"]),
        helper.make_node("Conv", ["xd", "wd"], ["c"], strides=[stride]),
        helper.make_node("QuantizeLinear", ["c", "ys", "yz"], ["cq"]),
        helper.make_node("DequantizeLinear", ["cq", "ys", "yz"], ["cd"]),
        _move(op1, p1, "cd", "m1", inits),
        helper.make_node("QuantizeLinear", ["m1", "ys", "yz"], ["m1q"]),
        helper.make_node("DequantizeLinear", ["m1q", "ys", "yz"], ["m1d"]),
        _move(op2, p2, "m1d", "m2", inits),
        helper.make_node("QuantizeLinear", ["m2", "ys", "yz"], ["m2q"]),
        helper.make_node("DequantizeLinear", ["m2q", "ys", "yz"], ["m2d"]),
        helper.make_node("Pow", ["m2d", "two"], ["y"]),     # float glue after, as in an STFT
    ]
    graph = helper.make_graph(
        nodes, "conv_moves",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2, None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * rank)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def _onnxruntime(model: bytes, x: np.ndarray) -> np.ndarray:
    return onnxruntime_run(model, {"x": x})[0]


@settings(max_examples=30, deadline=None)
@given(pair=st.sampled_from(sorted(PAIRS)), channels=st.sampled_from([1, 3, 16, 257]),
       stride=st.sampled_from([1, 3]), batch=st.sampled_from([1, 2]),
       length=st.integers(5, 60), seed=st.integers(0, 2**16))
def test_fused_moves_equal_onnxruntime(pair, channels, stride, batch, length, seed):
    model = _model(pair, channels, stride)
    session = Session(model, threads=1)
    assert any("+" in s.name and s.kind == "int" for s in session.steps), "not fused"
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, 2, length)).astype(np.float32)
    want = _onnxruntime(model, x)
    for _ in range(4):          # plain, two recordings, replayed
        np.testing.assert_array_equal(session.run({"x": x})["y"], want)
    x2 = rng.standard_normal((batch, 2, length)).astype(np.float32)
    np.testing.assert_array_equal(session.run({"x": x2})["y"], _onnxruntime(model, x2))


@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_fused_moves_equal_unfused_reference(pair):
    """The reference backend runs the same fused step on channels-first data."""
    model = _model(pair, 16, 2)
    x = np.random.default_rng(3).standard_normal((2, 2, 41)).astype(np.float32)
    native = Session(model, threads=1)
    reference = Session(model, backend="reference", replay=False)
    want = _onnxruntime(model, x)
    for _ in range(3):
        np.testing.assert_array_equal(native.run({"x": x})["y"], want)
    np.testing.assert_array_equal(reference.run({"x": x})["y"], want)


def test_stft_moves_hand_on_the_convolution_output():
    """Unsqueeze(1) then Transpose(0, 1, 3, 2) of a channels-last (N, T, C) convolution
    output is that memory as it is: the replayed run copies nothing for them."""
    model = _model("stft: unsqueeze 1, swap the last two", 257, 3)
    session = Session(model, threads=1)
    x = np.random.default_rng(4).standard_normal((1, 2, 300)).astype(np.float32)
    for _ in range(4):
        session.run({"x": x}, profile=True)
    assert not any(k.startswith(("Transpose", "Unsqueeze")) for k in session.last_profile), \
        session.last_profile
    np.testing.assert_array_equal(session.run({"x": x})["y"], _onnxruntime(model, x))


def test_capture_returns_the_tensor_between_fused_moves():
    """A run that captures every tensor runs the two moves one by one: the quantized tensor
    between them is there, equal to ONNX Runtime's, as before the fusion."""
    model = _model("stft: unsqueeze 1, swap the last two", 16, 2)
    x = np.random.default_rng(5).standard_normal((1, 2, 40)).astype(np.float32)
    session = Session(model, threads=1)
    captured = session.run({"x": x}, capture=True)
    exposed = onnx.load_from_string(model)
    exposed.graph.output.extend([helper.make_tensor_value_info("m1q", TensorProto.UINT8,
                                                               None)])
    want = dict(zip([o.name for o in exposed.graph.output],
                    onnxruntime_run(exposed, {"x": x}), strict=True))
    between = [k for k in captured if k.startswith("m1") and captured[k].dtype == np.uint8]
    assert between, sorted(captured)
    np.testing.assert_array_equal(captured[between[0]], want["m1q"])
    np.testing.assert_array_equal(captured["y"], want["y"])
