"""A 1-D convolution written as a 2-D one (tf2onnx's Keras Conv1D) keeps its channels-last
output through the Slice and Squeeze of the unit width that follow it.

tf2onnx writes ``Unsqueeze -> Conv(k x 1) -> Slice(every axis, the width [0:1]) -> Squeeze``
(magika's first layer); the Slice takes every other axis whole (start 0, end 2^31 - 1).
Between an integer convolution and float element-wise steps and a GlobalMaxPool, the
quantized Slice and Squeeze run on the channels-last codes as they are: converting them to
channels-first cost a transposing byte copy from Python (6 ms a run on magika). The values
equal ONNX Runtime's bit for bit.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import lowp.runtime.session as session_module
from lowp.runtime import Session
from lowp.runtime.backends import native_available
from lowp.runtime.plan import CF, CL

from .ort_agreement import onnxruntime_run

BACKENDS = ["reference", *(["native"] if native_available() else [])]
_WHOLE = 2**31 - 1


def column_model(c: int, k: int, ends: list[int], axes: list[int], seed: int
                 ) -> onnx.ModelProto:
    """x (n, 2, t) -> Unsqueeze(3) -> Q/DQ -> integer Conv (k x 1, c channels) -> Q/DQ ->
    Slice(starts 0, `ends` over `axes`) -> Squeeze(3) -> + per-channel bias ->
    tanh GELU written out -> GlobalMaxPool."""
    rng = np.random.default_rng(seed)
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, name))
        return name

    def node(op: str, inputs: list[str], out: str, **attrs: object) -> str:
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def qdq(x: str, tag: str, scale: float) -> str:
        s, z = const(f"s_{tag}", np.array(scale, np.float32)), const(f"z_{tag}",
                                                                     np.array(128, np.uint8))
        return node("DequantizeLinear", [node("QuantizeLinear", [x, s, z], f"q_{tag}"), s, z],
                    f"dq_{tag}")

    u = node("Unsqueeze", ["x", const("ax3", np.array([3], np.int64))], "u")
    w = rng.integers(-40, 40, (c, 2, k, 1), dtype=np.int8)
    wd = node("DequantizeLinear", [const("w", w), const("ws", np.array(0.01, np.float32)),
                                   const("wz", np.array(0, np.int8))], "wd")
    conv = qdq(node("Conv", [qdq(u, "x", 0.04), wd], "conv", kernel_shape=[k, 1]), "c", 0.02)
    cut = node("Slice", [conv, const("starts", np.zeros(len(axes), np.int64)),
                         const("ends", np.array(ends, np.int64)),
                         const("axes", np.array(axes, np.int64))], "cut")
    sq = node("Squeeze", [cut, const("ax", np.array([3], np.int64))], "sq")
    kept = 1 if 1 in axes and ends[axes.index(1)] == 1 else c
    h = node("Add", [sq, const("bias", rng.standard_normal((1, kept, 1)).astype(np.float32))], "h")
    cube = node("Mul", [h, node("Mul", [h, node("Mul", [const("c3", np.array(0.044715, np.float32)),
                                                        h], "g0")], "g1")], "g2")
    inner = node("Mul", [const("cb", np.array(0.7978846, np.float32)),
                         node("Add", [h, cube], "g3")], "g4")
    half = node("Mul", [const("half", np.array(0.5, np.float32)),
                        node("Add", [const("one", np.array(1.0, np.float32)),
                                     node("Tanh", [inner], "g5")], "g6")], "g7")
    gelu = node("Mul", [h, half], "g8")
    node("GlobalMaxPool", [gelu], "y")
    graph = helper.make_graph(
        nodes, "column", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2, None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, None, 1])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


# (ends, axes): tf2onnx's slice of every axis; the width alone; the width and the time (a
# spatial slice); the first channel too (stays channels-first)
CASES = [([_WHOLE, _WHOLE, _WHOLE, 1], [0, 1, 2, 3]),
         ([1], [3]),
         ([_WHOLE, 1], [2, 3]),
         ([_WHOLE, 1, _WHOLE, 1], [0, 1, 2, 3])]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", range(len(CASES)))
@settings(max_examples=10, deadline=None)
@given(n=st.integers(0, 2), c=st.integers(1, 9), t=st.integers(3, 30),
       seed=st.integers(0, 2**16))
def test_column_convolution_equals_onnx_runtime(backend, case, n, c, t, seed):
    ends, axes = CASES[case]
    model = column_model(c, 3, ends, axes, seed)
    x = np.random.default_rng(seed).standard_normal((n, 2, t)).astype(np.float32)
    want = onnxruntime_run(model, {"x": x})[0]
    session = Session(model, backend=backend)
    for _ in range(3):          # plain, recorded twice, replayed
        np.testing.assert_array_equal(session.run({"x": x})["y"], want)


@pytest.mark.skipif(not native_available(), reason="needs the native extension")
@pytest.mark.parametrize(("case", "want"), [(0, CL), (1, CL), (2, CL), (3, CF)])
def test_slice_and_squeeze_of_the_width_stay_channels_last(monkeypatch, case, want):
    """Regression: tf2onnx's Slice of every axis (all but the width whole) ran
    channels-first, so the convolution's channels-last codes were transposed from Python
    on every run (magika: 6.2 of 32 ms); a Slice of the channels still converts."""
    layouts: dict[str, object] = {}
    execute = session_module.execute

    def recording(step, env, layout):
        execute(step, env, layout)
        if step.op_type in ("Slice", "Squeeze"):
            layouts[step.op_type] = layout[step.outputs[0]]

    monkeypatch.setattr(session_module, "execute", recording)
    ends, axes = CASES[case]
    model = column_model(5, 3, ends, axes, seed=1)
    x = np.random.default_rng(0).standard_normal((2, 2, 12)).astype(np.float32)
    got = Session(model, backend="native", replay=False).run({"x": x})["y"]
    np.testing.assert_array_equal(got, onnxruntime_run(model, {"x": x})[0])
    assert layouts == {"Slice": want, "Squeeze": want}
