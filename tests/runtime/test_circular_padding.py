"""Circular padding written as Slice + Concat along time between 1-D integer convolutions.

torch.onnx writes a circularly padded dilated Conv1d as ``Concat(x[..., -d:], x,
x[..., :d])`` (a sleep-spindle detector's residual blocks). Between integer convolutions,
whose outputs are channels-last, the Slices and the Concat run on the channels-last data as
it is: in float (lowp's QDQ files quantize the Concat's output) and on the quantized values
(ONNX Runtime's files put DequantizeLinear -> Slice -> QuantizeLinear around each Slice).
The outputs equal ONNX Runtime's bit for bit.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import lowp.runtime.session as session_module
from lowp.runtime import Session, quantize_first
from lowp.runtime.backends import native_available
from lowp.runtime.plan import CF, CL

from .ort_agreement import onnxruntime_run

BACKENDS = ["reference", *(["native"] if native_available() else [])]


class _Graph:
    """Nodes and initializers of a small QDQ graph, with names made from one counter."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def const(self, value: np.ndarray) -> str:
        self.count += 1
        name = f"c{self.count}"
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], **attrs: object) -> str:
        self.count += 1
        out = f"t{self.count}"
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def quantize(self, x: str, scale: float, zero_point: int) -> str:
        return self.node("QuantizeLinear", [x, self.const(np.array(scale, np.float32)),
                                            self.const(np.array(zero_point, np.uint8))])

    def dequantize(self, q: str, scale: float, zero_point: int) -> str:
        return self.node("DequantizeLinear", [q, self.const(np.array(scale, np.float32)),
                                              self.const(np.array(zero_point, np.uint8))])

    def conv(self, x: str, cin: int, cout: int, kernel: int, dilation: int) -> str:
        """A Conv of a dequantized int8 weight, its output quantized (scale 0.05, zp 128)."""
        w = self.rng.integers(-40, 40, (cout, cin, kernel), dtype=np.int8)
        wd = self.node("DequantizeLinear", [self.const(w), self.const(np.array(0.01, np.float32)),
                                            self.const(np.array(0, np.int8))])
        y = self.node("Conv", [x, wd], kernel_shape=[kernel], dilations=[dilation])
        return self.node("QuantizeLinear", [y, self.const(np.array(0.05, np.float32)),
                                            self.const(np.array(128, np.uint8))])

    def slice_time(self, x: str, start: int, end: int) -> str:
        return self.node("Slice", [x, self.const(np.array([start], np.int64)),
                                   self.const(np.array([end], np.int64)),
                                   self.const(np.array([2], np.int64))])


def circular_model(c: int, t: int, d: int, quantized_slices: bool, seed: int
                   ) -> onnx.ModelProto:
    """x -> integer 1x1 Conv (c channels) -> circular padding of d on both ends of time ->
    integer Conv(kernel 3, dilation d). `quantized_slices`: each Slice between a
    DequantizeLinear and a QuantizeLinear of the same qparams and the Concat of dequantized
    parts (ONNX Runtime's quantizer); else float Slices and Concat of one dequantized value,
    the Concat's output quantized (lowp's)."""
    g = _Graph(seed)
    xq = g.quantize("x", 0.04, 128)
    h = g.conv(g.dequantize(xq, 0.04, 128), 2, c, 1, 1)
    hd = g.dequantize(h, 0.05, 128)
    if quantized_slices:
        ends = [g.dequantize(g.quantize(g.slice_time(hd, a, b), 0.05, 128), 0.05, 128)
                for a, b in ((-d, 2**62), (0, d))]
        cat = g.node("Concat", [ends[0], hd, ends[1]], axis=2)
    else:
        cat = g.node("Concat", [g.slice_time(hd, -d, 2**62), hd, g.slice_time(hd, 0, d)],
                     axis=2)
    padded = g.dequantize(g.quantize(cat, 0.05, 128), 0.05, 128)
    y = g.conv(padded, c, c, 3, d)
    out = g.dequantize(y, 0.05, 128)
    g.nodes.append(helper.make_node("Identity", [out], ["y"]))
    graph = helper.make_graph(
        g.nodes, "circular", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2, t])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, c, t])], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    return onnxruntime_run(model, feeds)[0]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("quantized_slices", [False, True])
@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 2), c=st.integers(1, 9), t=st.integers(1, 24),
       dilation=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_circular_padding_equals_onnx_runtime(backend, quantized_slices, n, c, t, dilation,
                                              seed):
    d = min(dilation, t)
    model = circular_model(c, t, d, quantized_slices, seed)
    x = np.random.default_rng(seed).standard_normal((n, 2, t)).astype(np.float32)
    want = _ort(model, {"x": x})
    session = Session(model, backend=backend)
    for _ in range(3):          # plain, recorded twice, replayed
        got = session.run({"x": x})["y"]
        np.testing.assert_array_equal(got, want)


@pytest.mark.skipif(not native_available(), reason="needs the native extension")
@pytest.mark.parametrize("quantized_slices", [False, True])
def test_circular_padding_stays_channels_last(monkeypatch, quantized_slices):
    """Regression: the Concat (float, or of quantized Slices) ran channels-first, so every
    block converted its channels-last input to channels-first and back (eeg_spindles: a
    third of its run)."""
    layouts: dict[str, object] = {}
    execute = session_module.execute

    def recording(step, env, layout):
        execute(step, env, layout)
        if step.op_type in ("Concat", "Slice"):
            layouts[step.name or step.outputs[0]] = layout[step.outputs[0]]

    monkeypatch.setattr(session_module, "execute", recording)
    model = circular_model(8, 40, 4, quantized_slices, seed=1)
    x = np.random.default_rng(0).standard_normal((2, 2, 40)).astype(np.float32)
    got = Session(model, backend="native", replay=False).run({"x": x})["y"]
    np.testing.assert_array_equal(got, _ort(model, {"x": x}))
    assert len(layouts) == 3
    assert all(v is CL for v in layouts.values()), layouts


def _ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


@settings(max_examples=20, deadline=None)
@given(n=st.integers(0, 2), c=st.integers(1, 6), t=st.integers(1, 20),
       dilation=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_quantize_first_gives_onnx_runtime_the_same_values(n, c, t, dilation, seed):
    """Q(Concat(Slice(x), x, Slice(x))) == Concat(Slice(Q(x)), Q(x), Slice(Q(x))): the
    rewritten model gives ONNX Runtime's outputs of the file, bit for bit."""
    model = circular_model(c, t, min(dilation, t), False, seed)
    moved = quantize_first.apply(model)
    assert moved is not model
    ops = _ops(moved)
    assert ops.index("QuantizeLinear", ops.index("Conv")) < ops.index("Slice")
    assert ops[ops.index("Concat") + 1] == "DequantizeLinear"
    onnx.checker.check_model(moved)
    x = np.random.default_rng(seed).standard_normal((n, 2, t)).astype(np.float32)
    np.testing.assert_array_equal(_ort(moved, {"x": x}), _ort(model, {"x": x}))


def test_quantize_first_leaves_other_concats():
    """A Slice read elsewhere too, parts of two values, an already quantized padding (ONNX
    Runtime's file) and a Concat with a second reader stay as they are."""
    ort_file = circular_model(4, 10, 2, True, 0)
    assert _ops(quantize_first.apply(ort_file)) == _ops(ort_file)

    shared = circular_model(4, 10, 2, False, 0)
    first_slice = next(n for n in shared.graph.node if n.op_type == "Slice")
    shared.graph.node.append(helper.make_node("Identity", [first_slice.output[0]], ["s"]))
    shared.graph.output.append(helper.make_tensor_value_info("s", TensorProto.FLOAT, None))
    assert quantize_first.apply(shared) is shared

    two = circular_model(4, 10, 2, False, 0)
    concat = next(n for n in two.graph.node if n.op_type == "Concat")
    concat.input[1] = "x_other"
    two.graph.node.insert(0, helper.make_node("Identity", ["x"], ["x_other"]))
    assert quantize_first.apply(two) is two

    read_twice = circular_model(4, 10, 2, False, 0)
    concat = next(n for n in read_twice.graph.node if n.op_type == "Concat")
    read_twice.graph.node.append(helper.make_node("Identity", [concat.output[0]], ["c"]))
    read_twice.graph.output.append(helper.make_tensor_value_info("c", TensorProto.FLOAT, None))
    assert quantize_first.apply(read_twice) is read_twice


@pytest.mark.skipif(not native_available(), reason="needs the native extension")
def test_quantized_slice_of_channels_stays_channels_first(monkeypatch):
    """Regression: a quantized Slice of the channels (an STFT's real half, read by float
    arithmetic) kept the convolution's channels-last layout, so its float reader converted
    it on every run from Python (Silero VAD 2x slower); only Slices of spatial axes keep
    it."""
    layouts: dict[str, object] = {}
    execute = session_module.execute

    def recording(step, env, layout):
        execute(step, env, layout)
        if step.op_type == "Slice":
            layouts[step.outputs[0]] = layout[step.outputs[0]]

    monkeypatch.setattr(session_module, "execute", recording)
    g = _Graph(0)
    h = g.conv(g.dequantize(g.quantize("x", 0.04, 128), 0.04, 128), 2, 6, 1, 1)
    hd = g.dequantize(h, 0.05, 128)
    cut = g.node("Slice", [hd, g.const(np.array([0], np.int64)),
                           g.const(np.array([3], np.int64)), g.const(np.array([1], np.int64))])
    half = g.dequantize(g.quantize(cut, 0.05, 128), 0.05, 128)
    g.nodes.append(helper.make_node("Cast", [half], ["y"], to=TensorProto.FLOAT))
    graph = helper.make_graph(
        g.nodes, "channels", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 9])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 9])], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    x = np.random.default_rng(0).standard_normal((1, 2, 9)).astype(np.float32)
    got = Session(model, backend="native", replay=False).run({"x": x})["y"]
    np.testing.assert_array_equal(got, _ort(model, {"x": x}))
    assert list(layouts.values()) == [CF]
