"""DequantizeLinear -> element-wise float region -> QuantizeLinear as lookup tables: the
table step computes bit for bit what the float steps compute."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.qparams import QParams, QType, quantize
from lowp.runtime import Session, fuse_float

_Q_SCALE, _Q_ZERO_POINT = 0.02, 3


def _gelu_model(shape: tuple[int, ...], dtype: type, bias: np.ndarray | None,
                closed: bool = True, extra: list[onnx.NodeProto] | None = None
                ) -> onnx.ModelProto:
    """x (integers) -> DQ -> [+ bias] -> GELU written out (Div, Erf, Add, Mul, Mul) -> Q."""
    t = TensorProto.UINT8 if dtype == np.uint8 else TensorProto.INT8
    zx = 120 if dtype == np.uint8 else -5
    init = [numpy_helper.from_array(np.float32(0.05), "sx"),
            numpy_helper.from_array(np.array(zx, dtype), "zx"),
            numpy_helper.from_array(np.float32(math.sqrt(2.0)), "sqrt2"),
            numpy_helper.from_array(np.float32(1.0), "one"),
            numpy_helper.from_array(np.float32(0.5), "half"),
            numpy_helper.from_array(np.float32(_Q_SCALE), "sy"),
            numpy_helper.from_array(np.array(_Q_ZERO_POINT, np.uint8), "zy")]
    nodes = [helper.make_node("DequantizeLinear", ["x", "sx", "zx"], ["xf"])]
    h = "xf"
    if bias is not None:
        init.append(numpy_helper.from_array(bias, "bias"))
        nodes.append(helper.make_node("Add", ["bias", "xf"], ["h"]))
        h = "h"
    nodes += [helper.make_node("Div", [h, "sqrt2"], ["d"]),
              helper.make_node("Erf", ["d"], ["e"]),
              helper.make_node("Add", ["e", "one"], ["e1"]),
              helper.make_node("Mul", [h, "e1"], ["m"]),
              helper.make_node("Mul", ["m", "half"], ["yf"])]
    nodes += extra or []
    last = nodes[-1].output[0]
    out_type = TensorProto.FLOAT
    if closed:
        nodes.append(helper.make_node("QuantizeLinear", [last, "sy", "zy"], ["y"]))
        out_type = TensorProto.UINT8
    else:
        nodes.append(helper.make_node("Identity", [last], ["y"]))
    out_shape = np.broadcast_shapes(shape, np.shape(bias)) if bias is not None else shape
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", t, shape)],
                              [helper.make_tensor_value_info("y", out_type, out_shape)], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _unfused(model_open: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """The float steps' result, quantized as the QuantizeLinear step does."""
    yf = Session(model_open, backend="reference").run({"x": x})["y"]
    qp = QParams(np.float32(_Q_SCALE), np.int32(_Q_ZERO_POINT), QType.UINT8, 0, 255)
    return quantize(yf, qp)


@settings(max_examples=40)
@given(st.sampled_from([np.uint8, np.int8]),
       st.lists(st.integers(1, 5), min_size=1, max_size=3), st.integers(1, 40),
       st.sampled_from(["none", "scalar", "channel", "channel3d"]), st.integers(0, 2**32 - 1))
def test_region_table_equals_float_steps(dtype, lead, channels, bias_kind, seed):
    rng = np.random.default_rng(seed)
    shape = (*lead, channels)
    bias = {"none": None, "scalar": np.float32(rng.normal()),
            "channel": rng.normal(size=channels).astype(np.float32),
            "channel3d": rng.normal(size=(1, 1, channels)).astype(np.float32)}[bias_kind]
    if bias_kind == "channel3d" and len(shape) < 3:
        shape = (1,) * (3 - len(shape)) + shape
    info = np.iinfo(dtype)
    x = rng.integers(info.min, info.max + 1, shape).astype(dtype)
    session = Session(_gelu_model(shape, dtype, bias), backend="reference")
    assert [s.kind for s in session.steps] == ["int"]
    # the GELU written out is ONNX Runtime's fused Gelu (lowp.runtime.ort_fusions), with a
    # 1-D bias Add folded in as its BiasGelu; not when Div and Mul read the dequantized
    # input itself (ONNX Runtime gives each its own DequantizeLinear)
    assert session.steps[0].op_type == {"none": "Div+Erf+Add+Mul+Mul", "scalar": "Add+Gelu",
                                        "channel": "BiasGelu",
                                        "channel3d": "Add+Gelu"}[bias_kind]
    want = _unfused(_gelu_model(shape, dtype, bias, closed=False), x)
    np.testing.assert_array_equal(session.run({"x": x})["y"], want)


def test_every_input_code_and_channel():
    """All 256 codes in every channel, including the saturated ends of the output range."""
    channels = 7
    x = np.broadcast_to(np.arange(256, dtype=np.uint8)[:, None], (256, channels)).copy()
    bias = np.linspace(-8, 8, channels).astype(np.float32)
    session = Session(_gelu_model(x.shape, np.uint8, bias), backend="reference")
    got = session.run({"x": x})["y"]
    want = _unfused(_gelu_model(x.shape, np.uint8, bias, closed=False), x)
    np.testing.assert_array_equal(got, want)
    assert got.min() == 0 and got.max() == 255


def test_broadcasting_input_falls_back_to_the_float_steps():
    """A per-channel constant that widens the input (last axis 1) is evaluated directly."""
    bias = np.arange(5, dtype=np.float32)
    x = np.arange(12, dtype=np.uint8).reshape(12, 1) * 20
    session = Session(_gelu_model((12, 1), np.uint8, bias), backend="reference")
    got = session.run({"x": x})["y"]
    assert got.shape == (12, 5)
    want = _unfused(_gelu_model((12, 1), np.uint8, bias, closed=False), x)
    np.testing.assert_array_equal(got, want)


def test_per_tensor_region_runs_channels_last():
    session = Session(_gelu_model((2, 3, 4, 4), np.uint8, None), backend="reference")
    (step,) = session.steps
    assert step.elementwise and step.table_dtype == np.uint8


def test_regions_that_are_not_element_wise_stay_float():
    softmax = [helper.make_node("Softmax", ["yf"], ["s"], axis=-1)]
    session = Session(_gelu_model((2, 8), np.uint8, None, extra=softmax), backend="reference")
    assert "Softmax" in [s.op_type for s in session.steps]
    assert "dequantize" in [s.kind for s in session.steps]


def test_a_value_read_outside_the_region_keeps_the_float_steps():
    model = _gelu_model((2, 8), np.uint8, None)
    model.graph.output.append(helper.make_tensor_value_info("e", TensorProto.FLOAT, (2, 8)))
    session = Session(model, backend="reference")
    # (float steps, fused into chains of element-wise steps: lowp.runtime.fuse_float)
    assert "Erf" in [s.op_type for s in fuse_float.unfused(session.steps)]


def test_single_operator_with_its_own_integer_lowering_is_left_to_it():
    init = [numpy_helper.from_array(np.float32(0.05), "s"),
            numpy_helper.from_array(np.array(128, np.uint8), "z"),
            numpy_helper.from_array(np.float32(1 / 256), "sy"),
            numpy_helper.from_array(np.array(0, np.uint8), "zy")]
    nodes = [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["xf"]),
             helper.make_node("Sigmoid", ["xf"], ["yf"]),
             helper.make_node("QuantizeLinear", ["yf", "sy", "zy"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.UINT8, (4,))], [helper.make_tensor_value_info(
            "y", TensorProto.UINT8, (4,))], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    (step,) = Session(model, backend="reference").steps
    assert step.op_type == "Sigmoid"


def _leaky_max_model(x_shape: tuple[int, ...], closed: bool = True) -> onnx.ModelProto:
    """x -> Identity -> DQ -> LeakyRelu -> Max(a (1, 1, 1, 1) constant) -> [Q], as Keras
    exports write a clipped leaky relu; the DQ's input has no shape information."""
    init = [numpy_helper.from_array(np.float32(0.05), "sx"),
            numpy_helper.from_array(np.array(120, np.uint8), "zx"),
            numpy_helper.from_array(np.full((1, 1, 1, 1), -0.4, np.float32), "floor"),
            numpy_helper.from_array(np.float32(_Q_SCALE), "sy"),
            numpy_helper.from_array(np.array(_Q_ZERO_POINT, np.uint8), "zy")]
    nodes = [helper.make_node("Identity", ["x"], ["xi"]),
             helper.make_node("DequantizeLinear", ["xi", "sx", "zx"], ["xf"]),
             helper.make_node("LeakyRelu", ["xf"], ["l"], alpha=0.3),
             helper.make_node("Max", ["l", "floor"], ["yf"])]
    if closed:
        nodes.append(helper.make_node("QuantizeLinear", ["yf", "sy", "zy"], ["y"]))
    else:
        nodes.append(helper.make_node("Identity", ["yf"], ["y"]))
    out_type = TensorProto.UINT8 if closed else TensorProto.FLOAT
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.UINT8, x_shape)],
        [helper.make_tensor_value_info("y", out_type, ("a", "b", "c", "d"))], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (3, 7), (9,)])
def test_rank_four_constants_on_an_input_of_unknown_shape(shape):
    """One-value constants of rank 4 make a table even when the input's shape is unknown;
    an input of lower rank gets the leading unit axes that broadcasting adds."""
    x = np.random.default_rng(3).integers(0, 256, shape).astype(np.uint8)
    session = Session(_leaky_max_model(shape), backend="reference")
    assert ("int", "LeakyRelu+Max") in [(s.kind, s.op_type) for s in session.steps]
    got = session.run({"x": x})["y"]
    want = _unfused(_leaky_max_model(shape, closed=False), x)
    assert got.shape == want.shape == (1,) * (4 - len(shape)) + shape
    np.testing.assert_array_equal(got, want)


def test_rank_four_constant_tables_next_to_other_tables():
    """Two regions in a row (a LeakyRelu table, then the Max table with its rank-4 constant,
    as another quantizer writes them): the second, which may add axes, is not fused, and the
    result is the float steps'."""
    model = _leaky_max_model((2, 3, 5, 4))
    g = model.graph
    mid = [numpy_helper.from_array(np.float32(0.04), "sm"),
           numpy_helper.from_array(np.array(100, np.uint8), "zm")]
    g.initializer.extend(mid)
    nodes = list(g.node)
    leaky = next(n for n in nodes if n.op_type == "LeakyRelu")
    k = nodes.index(leaky)
    nodes[k + 1:k + 1] = [helper.make_node("QuantizeLinear", ["l", "sm", "zm"], ["lq"]),
                          helper.make_node("DequantizeLinear", ["lq", "sm", "zm"], ["ld"])]
    nodes[k + 3].input[0] = "ld"                 # Max reads the re-dequantized value
    del g.node[:]
    g.node.extend(nodes)
    x = np.random.default_rng(4).integers(0, 256, (2, 3, 5, 4)).astype(np.uint8)
    session = Session(model, backend="reference")
    assert [s.kind for s in session.steps].count("int") == 2
    got = session.run({"x": x})["y"]
    xf = (x.astype(np.float32) - np.float32(120)) * np.float32(0.05)
    lf = np.where(xf >= 0, xf, xf * np.float32(0.3))
    lq = np.clip(np.rint(lf / np.float32(0.04)) + 100, 0, 255)
    yf = np.maximum((lq - np.float32(100)) * np.float32(0.04), np.float32(-0.4))
    want = np.clip(np.rint(yf / np.float32(_Q_SCALE)) + _Q_ZERO_POINT, 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(got, want)


def _norm_model(shape: tuple[int, ...], dtype: type, conv_first: bool,
                closed: bool = True) -> onnx.ModelProto:
    """x -> DQ -> BatchNormalization -> HardSwish -> Q (a QOperator file's unfolded BN), the
    input straight from the graph or from a quantized 1x1 Conv (channels-last there)."""
    rng = np.random.default_rng(3)
    c = shape[1]
    t = TensorProto.UINT8 if dtype == np.uint8 else TensorProto.INT8
    zx = 120 if dtype == np.uint8 else -5
    init = [numpy_helper.from_array(np.float32(0.05), "sx"),
            numpy_helper.from_array(np.array(zx, dtype), "zx"),
            numpy_helper.from_array(np.float32(_Q_SCALE), "sy"),
            numpy_helper.from_array(np.array(_Q_ZERO_POINT, np.uint8), "zy")]
    for name, v in (("g", rng.uniform(0.5, 2, c)), ("b", rng.normal(0, 1, c)),
                    ("m", rng.normal(0, 1, c)), ("v", rng.uniform(0.2, 3, c))):
        init.append(numpy_helper.from_array(v.astype(np.float32), name))
    nodes, src = [], "x"
    if conv_first:
        init += [numpy_helper.from_array(rng.integers(-20, 20, (c, c, 1, 1)).astype(np.int8),
                                         "w"),
                 numpy_helper.from_array(np.float32(0.01), "sw"),
                 numpy_helper.from_array(np.array(0, np.int8), "zw")]
        nodes += [helper.make_node("DequantizeLinear", ["x", "sx", "zx"], ["x0"]),
                  helper.make_node("DequantizeLinear", ["w", "sw", "zw"], ["wf"]),
                  helper.make_node("Conv", ["x0", "wf"], ["cf"]),
                  helper.make_node("QuantizeLinear", ["cf", "sx", "zx"], ["cq"])]
        src = "cq"
    nodes += [helper.make_node("DequantizeLinear", [src, "sx", "zx"], ["xf"]),
              helper.make_node("BatchNormalization", ["xf", "g", "b", "m", "v"], ["n"],
                               epsilon=1e-3),
              helper.make_node("HardSwish", ["n"], ["h"]),
              helper.make_node("QuantizeLinear", ["h", "sy", "zy"], ["y"]) if closed else
              helper.make_node("Identity", ["h"], ["y"])]
    out = TensorProto.UINT8 if closed else TensorProto.FLOAT
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", t, shape)],
                              [helper.make_tensor_value_info("y", out, shape)], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("shape", [(2, 5), (2, 5, 7), (1, 6, 4, 3), (2, 3, 4, 3)])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("conv_first", [False, True])
def test_batch_norm_region_is_a_table_per_channel(shape, dtype, conv_first):
    """A BatchNormalization region (per channel along axis 1) becomes one table per
    channel on channels-last data, equal to the float steps (a shape whose last axis has
    the channel count included: channels-first data is never mistaken for it)."""
    if conv_first and len(shape) != 4:
        pytest.skip("the 1x1 Conv takes images")
    model = _norm_model(shape, dtype, conv_first)
    session = Session(model, backend="reference")
    assert "BatchNormalization" not in [s.op_type for s in session.steps]
    info = np.iinfo(dtype)
    x = np.random.default_rng(4).integers(info.min, info.max + 1, shape).astype(dtype)
    want = _unfused(_norm_model(shape, dtype, conv_first, closed=False), x)
    np.testing.assert_array_equal(session.run({"x": x})["y"], want)


@pytest.mark.parametrize("shape", [(2, 5, 3, 4), (1, 6, 4, 6), (2, 5, 7)])
@pytest.mark.parametrize("bias_rank", ["1C11", "C11"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("backend", ["reference", "native"])
def test_axis_one_constant_region_is_a_table_per_channel(shape, bias_rank, dtype, backend):
    """A region whose constant varies along axis 1 (a convolution's bias (1, C, 1, 1) or
    (C, 1, 1), then a GELU) becomes one table per channel on channels-last data, equal to the
    float steps (a shape whose last axis has the channel count included)."""
    c = shape[1]
    rng = np.random.default_rng(len(shape) * 10 + c)
    spatial = len(shape) - 2
    bias = rng.normal(0, 2, (1, c) + (1,) * spatial if bias_rank == "1C11"
                      else (c,) + (1,) * spatial).astype(np.float32)
    session = Session(_gelu_model(shape, dtype, bias), backend=backend)
    (step,) = [s for s in session.steps if s.kind == "int"]
    assert step.op_type == "Add+Gelu" and step.channel_table is not None
    info = np.iinfo(dtype)
    x = rng.integers(info.min, info.max + 1, shape).astype(dtype)
    want = _unfused(_gelu_model(shape, dtype, bias, closed=False), x)
    np.testing.assert_array_equal(session.run({"x": x})["y"], want)


def test_axis_one_constant_on_an_input_of_another_rank_runs_the_float_steps():
    """A (1, C, 1, 1) constant on a rank-3 input broadcasts it to rank 4: the step evaluates
    the region instead of looking a table up."""
    bias = np.arange(4, dtype=np.float32).reshape(1, 4, 1, 1)
    x = (np.arange(4 * 3 * 2, dtype=np.uint8).reshape(4, 3, 2) * 9).astype(np.uint8)
    session = Session(_gelu_model((4, 3, 2), np.uint8, bias))
    got = session.run({"x": x})["y"]
    assert got.shape == (1, 4, 3, 2)
    want = _unfused(_gelu_model((4, 3, 2), np.uint8, bias, closed=False), x)
    np.testing.assert_array_equal(got, want)


def _shared_source_model(dtype: type, quantized_mul: bool) -> onnx.ModelProto:
    """x -> DQ -> {Div -> Erf -> Q -> DQ -> + 1 -> Q -> DQ, and the DQ's value itself} ->
    Mul -> (Q): a GELU written out in a QDQ file whose Add (and Mul, or not) is quantized."""
    t = TensorProto.UINT8 if dtype == np.uint8 else TensorProto.INT8
    zx = 120 if dtype == np.uint8 else -5
    init = [numpy_helper.from_array(np.float32(0.05), "sx"),
            numpy_helper.from_array(np.array(zx, dtype), "zx"),
            numpy_helper.from_array(np.float32(math.sqrt(2.0)), "sqrt2"),
            numpy_helper.from_array(np.float32(1 / 127), "se"),
            numpy_helper.from_array(np.array(128, np.uint8), "ze"),
            numpy_helper.from_array(np.array(255, np.uint8), "one"),
            numpy_helper.from_array(np.float32(2 / 127), "sa"),
            numpy_helper.from_array(np.float32(_Q_SCALE), "sy"),
            numpy_helper.from_array(np.array(_Q_ZERO_POINT, np.uint8), "zy")]
    nodes = [helper.make_node("DequantizeLinear", ["x", "sx", "zx"], ["xf"]),
             helper.make_node("Div", ["xf", "sqrt2"], ["d"]),
             helper.make_node("Erf", ["d"], ["e"]),
             helper.make_node("QuantizeLinear", ["e", "se", "ze"], ["eq"]),
             helper.make_node("DequantizeLinear", ["eq", "se", "ze"], ["ef"]),
             helper.make_node("DequantizeLinear", ["one", "se", "ze"], ["onef"]),
             helper.make_node("Add", ["ef", "onef"], ["af"]),
             helper.make_node("QuantizeLinear", ["af", "sa", "ze"], ["aq"]),
             helper.make_node("DequantizeLinear", ["aq", "sa", "ze"], ["a"]),
             helper.make_node("Mul", ["xf", "a"], ["mf"])]
    if quantized_mul:
        nodes.append(helper.make_node("QuantizeLinear", ["mf", "sy", "zy"], ["y"]))
    else:
        nodes.append(helper.make_node("Identity", ["mf"], ["y"]))
    out = TensorProto.UINT8 if quantized_mul else TensorProto.FLOAT
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", t, (2, 3, 5))],
                              [helper.make_tensor_value_info("y", out, (2, 3, 5))], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("quantized_mul", [True, False])
@pytest.mark.parametrize("backend", ["reference", "native"])
def test_region_whose_source_is_read_outside_is_a_table(dtype, quantized_mul, backend):
    """A region whose dequantized source another operator reads too is a table step from
    the source's integers; the DequantizeLinear stays for that reader when it runs in float
    (and is dropped when it runs on integers). Equal to ONNX Runtime on the file."""
    import onnxruntime as ort

    model = _shared_source_model(dtype, quantized_mul)
    session = Session(model, backend=backend)
    # (with the Mul quantized, lowp.runtime.fuse composes the region's table, the + 1 and
    # the Mul of x and table(x) into one table)
    (table,) = [s for s in session.steps if s.op_type.startswith("Div+Erf")]
    assert table.kind == "int" and table.inputs == ["x"]
    # (an int8 Mul of a QDQ file runs DequantizeLinear -> float Mul, as in ONNX Runtime)
    integer_mul = quantized_mul and dtype == np.uint8
    assert all(s.kind == "int" for s in session.steps) is integer_mul
    assert ("DequantizeLinear" in [s.op_type for s in session.steps]) is not integer_mul
    info = np.iinfo(dtype)
    x = np.random.default_rng(1).permutation(np.arange(info.min, info.max + 1))[:30]
    x = x.reshape(2, 3, 5).astype(dtype)
    want = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_array_equal(session.run({"x": x})["y"], want)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("backend", ["reference", "native"])
def test_region_constant_may_be_a_dequantized_constant(dtype, backend):
    """A BatchNormalization whose scale is DequantizeLinear of int8 constants (ONNX
    Runtime's quantizer quantizes it) is still a table per channel: the constant's value is
    what the DequantizeLinear step computes. Equal to ONNX Runtime on the file."""
    import onnxruntime as ort

    shape = (2, 6, 4, 3)
    model = _norm_model(shape, dtype, conv_first=True)
    g = next(t for t in model.graph.initializer if t.name == "g")
    scale = numpy_helper.to_array(g)
    s = np.float32(np.abs(scale).max() / 127)
    model.graph.initializer.extend([
        numpy_helper.from_array(np.round(scale / s).astype(np.int8), "gq"),
        numpy_helper.from_array(s, "gs"), numpy_helper.from_array(np.array(0, np.int8), "gz")])
    bn = next(n for n in model.graph.node if n.op_type == "BatchNormalization")
    bn.input[1] = "gf"
    model.graph.node.insert(0, helper.make_node("DequantizeLinear", ["gq", "gs", "gz"], ["gf"]))
    session = Session(model, backend=backend)
    assert "BatchNormalization" not in [s.op_type for s in session.steps]
    info = np.iinfo(dtype)
    x = np.random.default_rng(5).integers(info.min, info.max + 1, shape).astype(dtype)
    want = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_array_equal(session.run({"x": x})["y"], want)
