"""Float Conv, ConvTranspose, Einsum, LSTM, GRU and RNN against ONNX Runtime bit for bit at 1,
2 and 4 intra-op threads (docs/operators.md (O78)): how MlasConv cuts an im2col product
between threads (`lowp.mlas_sgemm.conv_parts`: segments of output positions, each with its
own K block, or MlasGemm's `thread_parts`), how every other MlasGemm call of these operators
is cut (`thread_parts`: N parts choose their K block, a one-row part takes the M = 1
kernel), and how the DeepCPU LSTM splits its recurrent product by batch rows
(`float_nn.lstm_batch_chunks`). Both the numpy reference (native float kernels off) and
the native kernels, the operands drawn so that MLAS cuts the products (M N K above 64 Ki
multiply-adds, N below K)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
import onnxruntime as ort
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session, native_float, native_rnn

F = TensorProto.FLOAT


def _ort(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], threads: int
         ) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return list(session.run(None, dict(feeds)))


def _model(node: onnx.NodeProto, inputs: Mapping[str, np.ndarray],
           constants: Mapping[str, np.ndarray], ranks: Mapping[str, int]) -> onnx.ModelProto:
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info(n, F, list(v.shape))
                      for n, v in inputs.items()],
        [helper.make_tensor_value_info(n, F, [None] * r) for n, r in ranks.items()],
        [numpy_helper.from_array(v, n) for n, v in constants.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


def _assert_bits(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], threads: int
                 ) -> None:
    """Both backends (and the numpy reference) give ONNX Runtime's outputs, bit for bit."""
    theirs = _ort(model, feeds, threads)
    names = [o.name for o in model.graph.output]
    for way in ("numpy", "native"):
        if way == "numpy":
            with native_float.disabled(), native_rnn.disabled():
                ours = Session(model, backend="reference", threads=threads).run(dict(feeds))
        else:
            session = Session(model, backend="native", threads=threads)
            for _ in range(3):          # recorded, then replayed
                ours = session.run(dict(feeds))
        for name, want in zip(names, theirs, strict=True):
            apart = int((ours[name].view(np.uint32) != want.view(np.uint32)).sum())
            assert apart == 0, f"{way}, {threads} threads, {name}: {apart} of {want.size} apart"


@given(dims=st.sampled_from([1, 2, 3]), batch=st.sampled_from([1, 2]),
       group=st.sampled_from([1, 2]), filters=st.sampled_from([4, 8, 16, 40]),
       channels=st.sampled_from([16, 64, 300]), size=st.sampled_from([9, 36, 41]),
       kernel=st.sampled_from([1, 3]), pad=st.booleans(), threads=st.sampled_from([1, 2, 4]),
       seed=st.integers(0, 2**16))
@settings(max_examples=60, deadline=None)
def test_conv_equals_onnxruntime_at_1_2_and_4_threads(dims, batch, group, filters, channels,
                                                     size, kernel, pad, threads, seed):
    # before: every product one MLAS operation; ONNX Runtime at 2 threads cut a single
    # image's product into column segments (own K block each) or by MlasGemm's parts:
    # x [1, 64, 40] by w [8, 64, 5] 238 of 288 apart
    rng = np.random.default_rng(seed)
    spatial = [size] + [3] * (dims - 1)
    x = rng.standard_normal([batch, channels * group, *spatial]).astype(np.float32)
    w = rng.standard_normal([filters * group, channels] + [kernel] * dims).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w"], ["y"], group=group,
                            pads=[kernel // 2 if pad else 0] * (2 * dims))
    _assert_bits(_model(node, {"x": x}, {"w": w}, {"y": dims + 2}), {"x": x}, threads)


@given(channels=st.sampled_from([8, 600]), filters=st.sampled_from([1, 2, 6]),
       group=st.sampled_from([1, 2]), hw=st.sampled_from([(5, 8), (3, 3), (6, 11)]),
       constant_w=st.booleans(), threads=st.sampled_from([1, 2, 4]),
       seed=st.integers(0, 2**16))
@settings(max_examples=40, deadline=None)
def test_conv_transpose_equals_onnxruntime_at_1_2_and_4_threads(channels, filters, group, hw,
                                                              constant_w, threads, seed):
    # before: one MLAS product per image and group; at 2 threads ONNX Runtime's MlasGemm
    # cut N (a part's K block from its width): x [1, 600, 5, 8] by a constant w
    # [600, 2, 2, 2] 94 of 108 apart
    rng = np.random.default_rng(seed)
    x = rng.standard_normal([1, channels * group, *hw]).astype(np.float32)
    w = rng.standard_normal([channels * group, filters, 2, 2]).astype(np.float32)
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], group=group)
    inputs = {"x": x} if constant_w else {"x": x, "w": w}
    model = _model(node, inputs, {"w": w} if constant_w else {}, {"y": 4})
    _assert_bits(model, inputs, threads)


@st.composite
def _blocked_conv_transposes(draw: st.DrawFn) -> tuple[dict[str, object], list[int], list[int]]:
    """ConvTranspose attributes, input shape and weight shape of rank 1 or 2 whose products
    run in several blocks of output channels (lowp.runtime.native_float.conv_transpose):
    input positions beyond one panel of 512 columns (the filter rows copied) or within it,
    kernel, strides, dilations, pads, output_padding, groups."""
    nd = draw(st.integers(1, 2))
    group = draw(st.sampled_from([1, 2]))
    k = [draw(st.integers(1, 4)) for _ in range(nd)]
    s = [draw(st.integers(1, 3)) for _ in range(nd)]
    d = [draw(st.integers(1, 2)) for _ in range(nd)]
    sp = [draw(st.integers(300, 700))] if nd == 1 else [draw(st.integers(8, 24)),
                                                        draw(st.integers(20, 40))]
    attrs: dict[str, object] = {
        "group": group, "kernel_shape": k, "strides": s, "dilations": d,
        "pads": [draw(st.integers(0, (k[i] - 1) * d[i])) for i in range(nd)] * 2,
        "output_padding": [draw(st.integers(0, s[i] - 1)) for i in range(nd)]}
    c_in = group * draw(st.sampled_from([3, 40, 300]))
    return attrs, [1, c_in, *sp], [c_in, draw(st.sampled_from([1, 2, 5])), *k]


@given(case=_blocked_conv_transposes(), constant_w=st.booleans(), bias=st.booleans(),
       nan=st.booleans(), threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**16))
@settings(max_examples=30, deadline=None)
def test_conv_transpose_in_blocks_of_channels_equals_onnxruntime(case, constant_w, bias, nan,
                                                                 threads, seed):
    """The native ConvTranspose makes the column entries a block of output channels at a
    time (each block's rows of every MLAS operation, which threads cut by rows or by
    columns), adding each block into its planes: ONNX Runtime's values bit for bit."""
    attrs, x_shape, w_shape = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    if nan:
        x.reshape(-1)[rng.integers(0, x.size, 3)] = [np.nan, np.inf, -np.inf]
    constants = {"w": w} if constant_w else {}
    inputs = {"x": x} if constant_w else {"x": x, "w": w}
    names = ["x", "w"]
    if bias:
        constants["b"] = rng.standard_normal(w_shape[1] * int(attrs["group"])).astype(
            np.float32)
        names.append("b")
    node = helper.make_node("ConvTranspose", names, ["y"], **attrs)
    _assert_bits(_model(node, inputs, constants, {"y": len(x_shape)}), inputs, threads)


@given(case=st.sampled_from([("ik,jk->ij", (8, 600), (17, 600)),
                             ("bij,bjk->bik", (3, 2, 600), (3, 600, 70)),
                             ("ij,jk->ik", (130, 40), (40, 70)),
                             ("bhqd,bhkd->bhqk", (1, 2, 9, 600), (1, 2, 33, 600))]),
       threads=st.sampled_from([1, 2, 4]), seed=st.integers(0, 2**16))
@settings(max_examples=16, deadline=None)
def test_einsum_equals_onnxruntime_at_1_2_and_4_threads(case, threads, seed):
    # before: one MLAS product per batch entry; ONNX Runtime's math::MatMul is a threaded
    # MlasGemm: ik,jk->ij of [8, 600] and [17, 600] 114 of 136 apart at 2 threads
    equation, sa, sb = case
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(sa).astype(np.float32)
    b = rng.standard_normal(sb).astype(np.float32)
    node = helper.make_node("Einsum", ["a", "b"], ["y"], equation=equation)
    model = _model(node, {"a": a, "b": b}, {}, {"y": len(equation.split("->")[1])})
    _assert_bits(model, {"a": a, "b": b}, threads)


@given(op=st.sampled_from(["LSTM", "GRU", "RNN"]), hidden=st.sampled_from([8, 32, 40]),
       inp=st.sampled_from([16, 600]), seq=st.sampled_from([1, 3]),
       batch=st.sampled_from([1, 2, 3, 5]), constant=st.booleans(),
       bidirectional=st.booleans(), threads=st.sampled_from([1, 2, 4]),
       seed=st.integers(0, 2**16))
@settings(max_examples=60, deadline=None)
def test_recurrences_equal_onnxruntime_at_1_2_and_4_threads(op, hidden, inp, seq, batch,
                                                           constant, bidirectional, threads,
                                                           seed):
    # before: X W^T and every step's H R^T one MLAS operation; ONNX Runtime cuts both by
    # MlasGemm's parts, and its LSTM splits a step by batch rows (a one-row chunk takes
    # the M = 1 kernel): 82-429 of 320-480 values apart with W and R as inputs
    rng = np.random.default_rng(seed)
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
    dirs = 2 if bidirectional else 1
    x = rng.standard_normal((seq, batch, inp)).astype(np.float32)
    w = (rng.standard_normal((dirs, gates * hidden, inp)) * 0.1).astype(np.float32)
    r = (rng.standard_normal((dirs, gates * hidden, hidden)) * 0.3).astype(np.float32)
    b = (rng.standard_normal((dirs, 2 * gates * hidden)) * 0.1).astype(np.float32)
    h0 = rng.standard_normal((dirs, batch, hidden)).astype(np.float32)
    node = helper.make_node(op, ["x", "w", "r", "b", "", "h0"], ["y", "y_h"],
                            hidden_size=hidden,
                            direction="bidirectional" if bidirectional else "forward")
    weights = {"w": w, "r": r, "b": b}
    inputs = {"x": x, "h0": h0} | ({} if constant else weights)
    model = _model(node, inputs, weights if constant else {}, {"y": 4, "y_h": 3})
    _assert_bits(model, inputs, threads)
