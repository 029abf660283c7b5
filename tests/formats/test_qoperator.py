"""QOperator models (ONNX Runtime's quantize_static, QuantFormat.QOperator) on lowp's engine:
the same integers as ONNX Runtime running the same file, at every quantized tensor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import lowp
from lowp.formats import to_qdq
from lowp.formats.qoperator import TO_QDQ

from .models import batches, ort_quantized

VARIANTS = [(a, pc) for a in ("u8", "s8") for pc in (True, False)]
IDS = [f"{a}-{'per_channel' if pc else 'per_tensor'}" for a, pc in VARIANTS]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("qoperator")


def _ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray],
         names: list[str]) -> dict[str, np.ndarray]:
    """ONNX Runtime's values of `names`, each exposed as a graph output."""
    import onnxruntime as ort

    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    have = {o.name for o in exposed.graph.output}
    exposed.graph.output.extend(helper.make_empty_tensor_value_info(n) for n in names
                                if n not in have)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(exposed.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    return dict(zip(names, sess.run(names, feeds), strict=True))


@pytest.mark.parametrize(("activations", "per_channel"), VARIANTS, ids=IDS)
def test_session_equals_onnxruntime_on_qoperator_files(folder, activations, per_channel):
    path = ort_quantized(folder, "QOperator", activations, per_channel)
    model = onnx.load(path)
    ops = {n.op_type for n in model.graph.node}
    assert {"QLinearConv", "QLinearAdd", "QLinearMul", "QLinearSigmoid", "QLinearLeakyRelu",
            "QLinearAveragePool", "QLinearConcat", "QLinearGlobalAveragePool", "QGemm",
            "QLinearMatMul", "QLinearSoftmax", "MaxPool"} <= ops
    feeds = batches(seed=7, n=1, batch=32)[0]
    quantized = [n.output[0] for n in model.graph.node if n.op_type != "DequantizeLinear"]
    want = _ort(model, feeds, [*quantized, "y"])
    session = lowp.Session(path)
    got = session.run(feeds, capture=True)
    checked = 0
    for name in quantized:
        if name not in got:          # a lookup table fused into its reader
            continue
        same = np.mean(got[name] == want[name])
        assert got[name].dtype == want[name].dtype
        assert same >= 0.999, f"{name}: {same:.4%} identical"
        checked += 1
    assert checked >= len(quantized) - 2
    np.testing.assert_array_equal(session.run(feeds)["y"], want["y"])


@pytest.mark.parametrize(("activations", "per_channel"), [("u8", True), ("u8", False)],
                         ids=["u8-per_channel", "u8-per_tensor"])
def test_converted_qdq_file_equals_qoperator_file_in_onnxruntime(folder, activations,
                                                                 per_channel):
    """ONNX Runtime fuses the uint8 QDQ groups into the operators the QOperator file names
    (its int8 Add / Mul / AveragePool QDQ groups stay in float, so int8 is not compared)."""
    path = ort_quantized(folder, "QOperator", activations, per_channel)
    model = onnx.load(path)
    qdq = to_qdq(model)
    onnx.checker.check_model(qdq, full_check=True)
    assert all(n.domain in ("", "ai.onnx") for n in qdq.graph.node)
    assert [o.domain for o in qdq.opset_import] == [""]
    feeds = batches(seed=8, n=1, batch=32)[0]
    np.testing.assert_array_equal(_ort(qdq, feeds, ["y"])["y"], _ort(model, feeds, ["y"])["y"])


def test_opset_12_file_with_per_channel_weights(folder):
    """ONNX Runtime's quantizer keeps opset 12 for a QOperator file with per-channel
    QLinearConv; its QDQ form needs DequantizeLinear-13, so the model is upgraded first."""
    path = ort_quantized(folder, "QOperator", "u8", True, opset=12)
    model = onnx.load(path)
    assert [o.version for o in model.opset_import if o.domain == ""] == [12]
    qdq = lowp.convert(path, "qdq")
    assert [o.version for o in qdq.opset_import if o.domain == ""] == [13]
    feeds = batches(seed=10, n=1, batch=16)[0]
    np.testing.assert_array_equal(lowp.Session(path).run(feeds)["y"],
                                  _ort(model, feeds, ["y"])["y"])


@pytest.mark.parametrize("per_channel", [True, False], ids=["per_channel", "per_tensor"])
def test_contrib_quantize_and_dequantize_linear(folder, per_channel):
    """ONNX Runtime's QDQ files with com.microsoft QuantizeLinear / DequantizeLinear
    (UseQDQContribOps) are the standard nodes in another domain."""
    path = ort_quantized(folder, "QDQ", "u8", per_channel, contrib_qdq=True)
    model = onnx.load(path)
    assert {n.domain for n in model.graph.node if n.op_type.endswith("Linear")} == {
        "com.microsoft"}
    qdq = lowp.convert(path, "qdq")
    assert {n.domain for n in qdq.graph.node} == {""}
    feeds = batches(seed=12, n=1, batch=16)[0]
    session = lowp.Session(path)
    assert len(session.int_steps) >= 10
    np.testing.assert_array_equal(session.run(feeds)["y"], _ort(model, feeds, ["y"])["y"])


def _contrib_model(op_type: str, inputs: list[str], inits: list[onnx.TensorProto],
                   x_type: int = TensorProto.UINT8) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node(op_type, inputs, ["y"], domain="com.microsoft", name="the_node")],
        "g", [helper.make_tensor_value_info("x", x_type, ["N", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                   helper.make_opsetid("com.microsoft", 1)],
                             ir_version=8)


@pytest.mark.parametrize("op_type", ["DynamicQuantizeMatMul", "MatMulIntegerToFloat"])
def test_dynamic_contrib_matmuls_equal_onnxruntime(op_type):
    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array(rng.integers(-127, 128, (16, 8)).astype(np.int8), "w"),
             numpy_helper.from_array((rng.random(8) * 0.01 + 0.001).astype(np.float32), "sw"),
             numpy_helper.from_array(rng.integers(-3, 4, 8).astype(np.int8), "zw"),
             numpy_helper.from_array(rng.normal(0, 0.1, 8).astype(np.float32), "bias")]
    if op_type == "DynamicQuantizeMatMul":
        model = _contrib_model(op_type, ["x", "w", "sw", "zw", "bias"], inits,
                               TensorProto.FLOAT)
        x = rng.normal(0, 1, (32, 16)).astype(np.float32)
    else:
        inits += [numpy_helper.from_array(np.float32(0.02), "sx"),
                  numpy_helper.from_array(np.uint8(131), "zx")]
        model = _contrib_model(op_type, ["x", "w", "sx", "sw", "zx", "zw", "bias"], inits)
        x = rng.integers(0, 256, (32, 16)).astype(np.uint8)
    session = lowp.Session(model)
    # an integer product: a lowered one, or MatMulIntegerToFloat again (ONNX Runtime's
    # fusion of the converted MatMulInteger -> Cast -> Mul -> Add, native IntMatMul)
    assert any(s.kind == "int" or s.op_type == "MatMulIntegerToFloat" for s in session.steps)
    np.testing.assert_array_equal(session.run({"x": x})["y"], _ort(model, {"x": x}, ["y"])["y"])


def test_quantized_operator_without_converter_is_refused_by_name():
    inits = [numpy_helper.from_array(np.float32(0.1), "s"),
             numpy_helper.from_array(np.uint8(128), "z")]
    model = _contrib_model("QLinearReduceMean", ["x", "s", "z", "s", "z"], inits)
    assert ("com.microsoft", "QLinearReduceMean") not in TO_QDQ
    with pytest.raises(lowp.UnsupportedOpError, match=r"QLinearReduceMean \(node 'the_node'\)"):
        lowp.Session(model)
    model.graph.node[0].name = ""
    with pytest.raises(lowp.UnsupportedOpError, match="node 'output y'"):
        lowp.convert(model, "qdq")


def test_channels_last_pooling_has_no_qdq_form():
    inits = [numpy_helper.from_array(np.float32(0.1), "s"),
             numpy_helper.from_array(np.uint8(128), "z")]
    model = _contrib_model("QLinearGlobalAveragePool", ["x", "s", "z", "s", "z"], inits)
    model.graph.node[0].attribute.append(helper.make_attribute("channels_last", 1))
    with pytest.raises(lowp.UnsupportedOpError, match="channels_last"):
        to_qdq(model)


def _one_node_model(nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto], x_shape: list[int],
                    opset: int) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.UINT8, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, x_shape[:1] + [None] * (
            len(x_shape) - 1))], inits)
    return helper.make_model(graph, ir_version=8, opset_imports=[
        helper.make_opsetid("", opset), helper.make_opsetid("com.microsoft", 1)])


@pytest.mark.parametrize("axis", [1, 2, -1])
def test_softmax_of_an_older_opset(axis):
    """QLinearSoftmax with opset=11 normalizes over every axis from `axis` on; in an opset-13
    model its QDQ form flattens the integers there, runs Softmax on the last axis and
    reshapes back."""
    inits = [numpy_helper.from_array(np.float32(0.08), "sx"),
             numpy_helper.from_array(np.uint8(120), "zx"),
             numpy_helper.from_array(np.float32(1 / 256), "sy"),
             numpy_helper.from_array(np.uint8(0), "zy")]
    node = helper.make_node("QLinearSoftmax", ["x", "sx", "zx", "sy", "zy"], ["y"],
                            domain="com.microsoft", axis=axis, opset=11, name="sm")
    model = _one_node_model([node], inits, [2, 3, 4, 5], 13)
    x = np.random.default_rng(axis + 5).integers(0, 256, (2, 3, 4, 5)).astype(np.uint8)
    qdq = to_qdq(model)
    assert ("Flatten" in {n.op_type for n in qdq.graph.node}) == (axis != -1)
    np.testing.assert_array_equal(lowp.Session(model).run({"x": x})["y"],
                                  _ort(model, {"x": x}, ["y"])["y"])


def test_weights_quantized_by_a_quantize_linear_of_a_constant():
    """ONNX Runtime's quantizer writes QuantizeLinear(Constant) for weights held in Constant
    nodes (paddle2onnx exports); they are folded into integer initializers first."""
    rng = np.random.default_rng(11)
    w = rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Constant", [], ["w_float"], value=numpy_helper.from_array(w)),
             helper.make_node("QuantizeLinear", ["w_float", "sw", "zw"], ["w_q"], name="q_w"),
             helper.make_node("QLinearConv", ["x", "sx", "zx", "w_q", "sw", "zw", "sy", "zy"],
                              ["y"], name="conv", pads=[1, 1, 1, 1])]
    inits = [numpy_helper.from_array(np.float32(0.02), "sx"),
             numpy_helper.from_array(np.uint8(128), "zx"),
             numpy_helper.from_array(np.float32(np.abs(w).max() / 127), "sw"),
             numpy_helper.from_array(np.uint8(128), "zw"),
             numpy_helper.from_array(np.float32(0.05), "sy"),
             numpy_helper.from_array(np.uint8(128), "zy")]
    model = _one_node_model(nodes, inits, [1, 3, 8, 8], 17)
    qdq = to_qdq(model)
    assert "QuantizeLinear" not in {n.op_type for n in qdq.graph.node
                                    if n.output[0] != "y"}
    x = rng.integers(0, 256, (1, 3, 8, 8)).astype(np.uint8)
    session = lowp.Session(model)
    assert [s.op_type for s in session.int_steps] == ["Conv"]
    np.testing.assert_array_equal(session.run({"x": x})["y"], _ort(model, {"x": x}, ["y"])["y"])


def _net_with_constant_nodes() -> onnx.ModelProto:
    """Conv -> Reshape (shape from a Constant node) -> MatMul -> Mul by a Constant node's
    scalar: the Constant nodes stay in ONNX Runtime's QOperator file (the scalar's unread,
    as QLinearMul reads its quantized copy)."""
    rng = np.random.default_rng(3)
    w = numpy_helper.from_array(rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32), "w")
    m = numpy_helper.from_array(rng.normal(0, 0.3, (256, 6)).astype(np.float32), "m")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Constant", [], ["shape"], value=numpy_helper.from_array(
                 np.array([-1, 256], np.int64))),
             helper.make_node("Reshape", ["c", "shape"], ["r"]),
             helper.make_node("MatMul", ["r", "m"], ["mm"]),
             helper.make_node("Constant", [], ["k"], value_float=0.5),
             helper.make_node("Mul", ["mm", "k"], ["y"])]
    graph = helper.make_graph(
        nodes, "constants", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                           ["N", 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 6])], [w, m])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("activations", ["u8", "s8"])
def test_constant_nodes_become_initializers(folder, activations):
    """A Constant node of a QOperator file is an initializer of the QDQ form, as in lowp's
    own files, so no step runs it; the outputs stay ONNX Runtime's."""
    path = ort_quantized(folder, "QOperator", activations, True,
                         net=("constants", _net_with_constant_nodes()))
    model = onnx.load(path)
    assert sum(n.op_type == "Constant" for n in model.graph.node) == 2
    qdq = to_qdq(model)
    assert not [n for n in qdq.graph.node if n.op_type == "Constant"]
    assert "shape" in {t.name for t in qdq.graph.initializer}
    session = lowp.Session(path)
    assert not [s for s in session.steps if s.op_type == "Constant"]
    feeds = batches(seed=9, n=1, batch=8)[0]
    np.testing.assert_array_equal(session.run(feeds)["y"], _ort(model, feeds, ["y"])["y"])


def _resize_chain(chain: str, dtype: type, coordinate_mode: str, sizes: list[int]
                  ) -> onnx.ModelProto:
    """uint8/int8 data through QLinearConv (1x1) and a chain ending in a linear Resize."""
    rng = np.random.default_rng(5)
    elem = TensorProto.UINT8 if dtype == np.uint8 else TensorProto.INT8
    zp = 128 if dtype == np.uint8 else 0
    inits = [numpy_helper.from_array(rng.integers(-30, 30, (4, 4, 1, 1)).astype(np.int8), "w"),
             numpy_helper.from_array(np.array(0.05, np.float32), "xs"),
             numpy_helper.from_array(np.array(zp, dtype), "xz"),
             numpy_helper.from_array(np.array(0.02, np.float32), "ws"),
             numpy_helper.from_array(np.array(0, np.int8), "wz"),
             numpy_helper.from_array(np.array(0.07, np.float32), "ys"),
             numpy_helper.from_array(np.array(zp, dtype), "yz"),
             numpy_helper.from_array(np.array(sizes, np.int64), "sizes"),
             numpy_helper.from_array(np.array([1, 4, 12, 10], np.int64), "sizes2")]
    conv = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["c"])
    resize = helper.make_node("Resize", ["r_in", "", "", "sizes"], ["y"], mode="linear",
                              coordinate_transformation_mode=coordinate_mode)
    nodes = {"input": [helper.make_node("Identity", ["x"], ["r_in"])],
             "conv": [conv, helper.make_node("Identity", ["c"], ["r_in"])],
             "conv-maxpool": [conv, helper.make_node("MaxPool", ["c"], ["r_in"],
                                                     kernel_shape=[1, 1])],
             "conv-resize": [conv, helper.make_node("Resize", ["c", "", "", "sizes2"], ["r_in"],
                                                    mode="linear")]}[chain]
    graph = helper.make_graph(nodes + [resize], "g",
                              [helper.make_tensor_value_info("x", elem, [1, 4, 5, 7])],
                              [helper.make_tensor_value_info("y", elem, sizes)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("chain", ["input", "conv", "conv-maxpool", "conv-resize"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("coordinate_mode", ["half_pixel", "asymmetric", "align_corners",
                                             "pytorch_half_pixel"])
@pytest.mark.parametrize("sizes", [[1, 4, 9, 11], [1, 4, 3, 4], [1, 4, 5, 13]])
def test_linear_resize_of_8_bit_data_is_onnxruntime_bit_for_bit(chain, dtype, coordinate_mode,
                                                                sizes):
    """After a quantized convolution ONNX Runtime runs the Resize channels-last, in integer
    arithmetic (O41); on data that does not come from one, its NCHW float kernel."""
    model = _resize_chain(chain, dtype, coordinate_mode, sizes)
    rng = np.random.default_rng(len(chain) + sizes[2])
    info = np.iinfo(dtype)
    feeds = {"x": rng.integers(info.min, info.max + 1, (1, 4, 5, 7)).astype(dtype)}
    want = _ort(model, feeds, ["y"])["y"]
    for backend in ("reference", "native"):
        got = lowp.Session(model, backend=backend).run(feeds)["y"]
        np.testing.assert_array_equal(got, want, err_msg=backend)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_linear_resize_after_a_convolution_runs_on_its_channels_last_data(dtype):
    """The integer bilinear Resize after a QLinearConv takes the convolution's channels-last
    output as it is (one native call over (h, w, channels) rows, no transposes around it),
    with ONNX Runtime's values."""
    from lowp.runtime import tape

    model = _resize_chain("conv", dtype, "half_pixel", [1, 4, 9, 11])
    info = np.iinfo(dtype)
    feeds = {"x": np.random.default_rng(3).integers(info.min, info.max + 1, (1, 4, 5, 7))
             .astype(dtype)}
    session = lowp.Session(model, backend="native")
    with tape.recording() as recorded:
        got = session.run(feeds)["y"]
    # (bilinear_float: lowp.runtime.moves' probe of the step on element numbers, which
    # finds that a linear Resize is not a copy)
    calls = [(fn.__name__, args) for fn, args in recorded if fn.__name__ != "bilinear_float"]
    assert [name for name, _ in calls] == ["bilinear_integer"]
    assert list(calls[0][1][2]) == [1, 5, 7, 4, 9, 11]     # (outer, h, w, channels, out)
    np.testing.assert_array_equal(got, _ort(model, feeds, ["y"])["y"])


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_float_linear_resize_after_a_convolution_runs_on_its_channels_last_data(dtype):
    """A float32 linear Resize of a quantized convolution's dequantized output (a text
    detector's upsampling into a Concat) takes the channels-last data as it is: one native
    call over (h, w, channels) rows, no transposes around it, recorded in the replayed
    Program, with ONNX Runtime's values."""
    from lowp.runtime import replay, tape

    model = _resize_chain("conv", dtype, "half_pixel", [1, 4, 9, 11])
    graph = model.graph
    resize = graph.node[-1]
    graph.node.remove(resize)
    graph.node.extend([
        helper.make_node("DequantizeLinear", ["r_in", "ys", "yz"], ["f"]),
        helper.make_node("Resize", ["f", "", "", "sizes"], ["y"], mode="linear",
                         coordinate_transformation_mode="half_pixel")])
    graph.output[0].type.tensor_type.elem_type = TensorProto.FLOAT
    info = np.iinfo(dtype)
    feeds = {"x": np.random.default_rng(4).integers(info.min, info.max + 1, (1, 4, 5, 7))
             .astype(dtype)}
    want = _ort(model, feeds, ["y"])["y"]
    session = lowp.Session(model, backend="native", threads=1)
    with tape.recording() as recorded:
        got = session.run(feeds)["y"]
    np.testing.assert_array_equal(got, want)
    # (the calls on channels-first planes: lowp.runtime.moves' probe of the step on
    # element numbers, which finds that a linear Resize is not a copy)
    dims = [list(args[2]) for fn, args in recorded if fn.__name__ == "bilinear_float"]
    assert [1, 5, 7, 4, 9, 11] in dims           # (outer, h, w, channels, out)
    for _ in range(3):
        np.testing.assert_array_equal(session.run(feeds)["y"], want)
    runners = next(iter(session._replayer._ready.values()))
    assert [type(r) for r in runners] == [replay._Segment]


def _image_model(name: str, nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto]
                 ) -> onnx.ModelProto:
    """Opset 17 model of `nodes` from float_net's input "x" (N, 3, 16, 16) to "y"."""
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _detector_neck() -> onnx.ModelProto:
    """A YOLO-style neck and head on float_net's input: a strided Conv, a nearest Resize of
    it concatenated with the full-size Conv, a Conv on that, and a distribution-focal head
    (Reshape -> Softmax over the bins -> 1x1 Conv)."""
    rng = np.random.default_rng(4)
    inits = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, name))
        return name

    def w(name: str, shape: tuple[int, ...]) -> str:
        return const(name, rng.normal(0, 0.3, shape).astype(np.float32))

    nodes = [
        helper.make_node("Conv", ["x", w("w1", (8, 3, 3, 3))], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", w("w2", (8, 8, 3, 3))], ["c2"], pads=[1, 1, 1, 1],
                         strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Resize", ["r2", "", const("scales", np.array([1, 1, 2, 2],
                                                                        np.float32))],
                         ["up"], mode="nearest"),
        helper.make_node("Concat", ["up", "r1"], ["cat"], axis=1),
        helper.make_node("Conv", ["cat", w("w3", (16, 16, 1, 1))], ["c3"]),
        helper.make_node("Reshape", ["c3", const("shape", np.array([0, 4, 4, -1], np.int64))],
                         ["bins"]),
        helper.make_node("Transpose", ["bins"], ["t"], perm=[0, 2, 1, 3]),
        helper.make_node("Softmax", ["t"], ["p"], axis=1),
        helper.make_node("Conv", ["p", const("proj", np.arange(4, dtype=np.float32)
                                              .reshape(1, 4, 1, 1))], ["y"]),
    ]
    return _image_model("neck", nodes, inits)


@pytest.mark.parametrize("fmt", ["QOperator", "QDQ"])
def test_detector_neck_runs_as_one_native_program(folder, fmt):
    """A detector neck (QOperator and QDQ) equals ONNX Runtime's, and its replayed runs are
    one native Program: the nearest Resize keeps the channels-last layout of the Conv
    before it (so the Concat and the Conv after it need no conversion), a Reshape of a
    channels-last value is a native copy, and the Conv after the channels-first Softmax
    converts its input by a native copy into a buffer of its own."""
    from lowp.runtime import replay

    path = ort_quantized(folder, fmt, "u8", True, net=("neck", _detector_neck()))
    feeds = batches(seed=3, n=1, batch=1)[0]
    fast = lowp.Session(str(path), threads=1)
    plain = lowp.Session(str(path), threads=1, replay=False)
    want = _ort(onnx.load(path), feeds, ["y"])["y"]
    for _ in range(4):
        np.testing.assert_array_equal(fast.run(feeds)["y"], want)
        np.testing.assert_array_equal(plain.run(feeds)["y"], want)
    runners = next(iter(fast._replayer._ready.values()))
    assert [type(r) for r in runners] == [replay._Segment]


def _text_detector_head() -> onnx.ModelProto:
    """A DB-style text detector's neck and head on float_net's input: a strided Conv, its
    bilinear Resize (8-bit after a quantized Conv: ONNX Runtime's integer kernel) added to
    the full-size Conv, then ConvTranspose -> BatchNormalization -> Relu -> ConvTranspose
    -> Sigmoid (left float by ONNX Runtime's quantizer)."""
    rng = np.random.default_rng(5)
    inits = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, name))
        return name

    def w(name: str, shape: tuple[int, ...], std: float = 0.3) -> str:
        return const(name, rng.normal(0, std, shape).astype(np.float32))

    nodes = [
        helper.make_node("Conv", ["x", w("w1", (8, 3, 3, 3))], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", w("w2", (8, 8, 3, 3))], ["c2"], pads=[1, 1, 1, 1],
                         strides=[2, 2]),
        helper.make_node("Resize", ["c2", "", const("scales", np.array([1, 1, 2, 2],
                                                                        np.float32))],
                         ["up"], mode="linear"),
        helper.make_node("Add", ["up", "r1"], ["sum"]),
        helper.make_node("Conv", ["sum", w("w3", (8, 8, 3, 3))], ["c3"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c3"], ["r3"]),
        helper.make_node("ConvTranspose", ["r3", w("t1", (8, 4, 2, 2)), w("tb1", (4,))],
                         ["t"], strides=[2, 2]),
        helper.make_node("BatchNormalization",
                         ["t", w("g", (4,)), w("b", (4,)), w("m", (4,)),
                          const("v", rng.uniform(0.5, 2, 4).astype(np.float32))], ["bn"]),
        helper.make_node("Relu", ["bn"], ["r4"]),
        helper.make_node("ConvTranspose", ["r4", w("t2", (4, 1, 2, 2))], ["t2o"],
                         strides=[2, 2]),
        helper.make_node("Sigmoid", ["t2o"], ["y"]),
    ]
    return _image_model("text_head", nodes, inits)


def test_text_detector_head_runs_as_one_native_program(folder):
    """A QOperator text detector head equals ONNX Runtime's, and its replayed runs are one
    native Program: the integer bilinear Resize (`bilinear_integer`), the float
    ConvTranspose (MLAS-order GEMMs into a buffer the signature owns, then `float_col2im`)
    and the float BatchNormalization (`float_binary` Mul then Add) all run natively."""
    from lowp.runtime import replay

    path = ort_quantized(folder, "QOperator", "u8", True,
                         net=("text_head", _text_detector_head()))
    model = onnx.load(path)
    assert {"Resize", "ConvTranspose", "BatchNormalization"} <= {n.op_type
                                                                 for n in model.graph.node}
    fast = lowp.Session(str(path), threads=1)
    plain = lowp.Session(str(path), threads=1, replay=False)
    for seed in range(4):
        feeds = batches(seed=seed, n=1, batch=1)[0]
        want = _ort(model, feeds, ["y"])["y"]
        np.testing.assert_array_equal(plain.run(feeds)["y"], want)
        for _ in range(3):
            np.testing.assert_array_equal(fast.run(feeds)["y"], want)
    runners = next(iter(fast._replayer._ready.values()))
    assert [type(r) for r in runners] == [replay._Segment]
