"""The layout invariant: every step computes ONNX semantics whatever layouts its inputs carry.

Integer convolutions on the native backend leave their outputs channels-last; the values
below mix such outputs with channels-first float values at every input position of
multi-input float operators, and compare lowp with ONNX Runtime on the same QDQ file.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session
from lowp.runtime.backends import native_available

BACKENDS = ["reference", *(["native"] if native_available() else [])]


def _qdq_conv(x: str, out: str, cin: int, cout: int, rng: np.random.Generator,
              inits: list[onnx.TensorProto], nodes: list[onnx.NodeProto]) -> None:
    """x -> Q -> DQ -> Conv(DQ(int8 w)) -> Q -> DQ -> out: an integer convolution."""
    tag = out
    w = rng.integers(-60, 60, (cout, cin, 1, 1), dtype=np.int8)
    inits += [numpy_helper.from_array(w, f"{tag}_wq"),
              numpy_helper.from_array(np.array(0.02, np.float32), f"{tag}_ws"),
              numpy_helper.from_array(np.array(0, np.int8), f"{tag}_wz"),
              numpy_helper.from_array(np.array(0.05, np.float32), f"{tag}_xs"),
              numpy_helper.from_array(np.array(128, np.uint8), f"{tag}_xz"),
              numpy_helper.from_array(np.array(0.04, np.float32), f"{tag}_ys"),
              numpy_helper.from_array(np.array(120, np.uint8), f"{tag}_yz")]
    nodes += [
        helper.make_node("QuantizeLinear", [x, f"{tag}_xs", f"{tag}_xz"], [f"{tag}_xq"]),
        helper.make_node("DequantizeLinear", [f"{tag}_xq", f"{tag}_xs", f"{tag}_xz"],
                         [f"{tag}_xd"]),
        helper.make_node("DequantizeLinear", [f"{tag}_wq", f"{tag}_ws", f"{tag}_wz"],
                         [f"{tag}_w"]),
        helper.make_node("Conv", [f"{tag}_xd", f"{tag}_w"], [f"{tag}_y"]),
        helper.make_node("QuantizeLinear", [f"{tag}_y", f"{tag}_ys", f"{tag}_yz"],
                         [f"{tag}_yq"]),
        helper.make_node("DequantizeLinear", [f"{tag}_yq", f"{tag}_ys", f"{tag}_yz"], [out]),
    ]


# op -> (number of value inputs, attributes); every input gets the same shape
MULTI_INPUT = {
    "Concat": (2, {"axis": 1}),
    "Concat:-1": (3, {"axis": -1}),
    "Concat:2": (2, {"axis": 2}),
    "Add": (2, {}),
    "Mul": (2, {}),
    "Sub": (2, {}),
    "Max": (3, {}),
    "Min": (2, {}),
    "Sum": (3, {}),
    "Mean": (2, {}),
}


def _mixed_layout_model(op: str, position: int, n: int, c: int, h: int, w: int,
                        seed: int) -> onnx.ModelProto:
    """Input position `position` of `op` is an integer convolution's output; the other
    inputs are float (a Sigmoid of another, float, convolution)."""
    rng = np.random.default_rng(seed)
    op_type = op.split(":")[0]
    arity, attrs = MULTI_INPUT[op]
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    _qdq_conv("x", "int_out", 3, c, rng, inits, nodes)
    inits.append(numpy_helper.from_array(
        rng.standard_normal((c, 3, 1, 1)).astype(np.float32), "fw"))
    nodes += [helper.make_node("Conv", ["x", "fw"], ["fc"]),
              helper.make_node("Sigmoid", ["fc"], ["float_out"])]
    inputs = ["float_out"] * arity
    inputs[position % arity] = "int_out"
    nodes.append(helper.make_node(op_type, inputs, ["y"], **attrs))
    graph = helper.make_graph(
        nodes, "mixed", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, 3, h, w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * 4)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


@pytest.mark.parametrize("backend", BACKENDS)
@given(op=st.sampled_from(sorted(MULTI_INPUT)), position=st.integers(0, 2),
       n=st.integers(1, 2), c=st.integers(1, 6), h=st.integers(1, 5), w=st.integers(1, 5),
       seed=st.integers(0, 2**16))
def test_multi_input_float_ops_see_onnx_layouts(backend, op, position, n, c, h, w, seed):
    model = _mixed_layout_model(op, position, n, c, h, w, seed)
    x = np.random.default_rng(seed).standard_normal((n, 3, h, w)).astype(np.float32)
    want = _ort(model, {"x": x})
    got = Session(model, backend=backend).run({"x": x})["y"]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_concat_of_float_then_integer_output(backend):
    """Regression: Concat(axis=1) of a float value and an integer convolution's output (a
    detector head) read the channels-last input as if it were channels-first."""
    model = _mixed_layout_model("Concat", 1, 1, 5, 8, 8, seed=3)
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(Session(model, backend=backend).run({"x": x})["y"],
                               _ort(model, {"x": x}), rtol=1e-6, atol=1e-6)


def _moves_model(n: int, c: int, h: int, w: int, moves: list[tuple[str, dict]],
                 rank: int, pool: bool, seed: int) -> onnx.ModelProto:
    """An integer convolution's (channels-last) output through Slice, Squeeze, Unsqueeze
    and Transpose nodes (run on a channels-first view of it), a Relu, and a
    GlobalMaxPool."""
    rng = np.random.default_rng(seed)
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    _qdq_conv("x", "h0", 3, c, rng, inits, nodes)
    for k, (op, params) in enumerate(moves):
        names = []
        attrs = {}
        for key, values in params.items():
            if key == "perm":
                attrs[key] = values
                continue
            inits.append(numpy_helper.from_array(np.array(values, np.int64), f"m{k}_{key}"))
            names.append(f"m{k}_{key}")
        nodes.append(helper.make_node(op, [f"h{k}", *names], [f"h{k + 1}"], **attrs))
    nodes.append(helper.make_node("Relu", [f"h{len(moves)}"], ["r"]))
    nodes.append(helper.make_node("GlobalMaxPool" if pool else "Identity", ["r"], ["y"]))
    graph = helper.make_graph(
        nodes, "moves", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, 3, h, w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * rank)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


@st.composite
def _moves(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[list[tuple[str, dict]], tuple]:
    """Up to three random moves valid on `shape`; the shape they leave."""
    out, value = [], np.empty(shape)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["Slice", "Squeeze", "Unsqueeze", "Transpose"]))
        ones = [a for a, d in enumerate(value.shape) if d == 1]
        if op == "Squeeze" and ones:
            axes = sorted(draw(st.sets(st.sampled_from(ones), min_size=1)))
            out.append(("Squeeze", {"axes": axes}))
            value = value.squeeze(tuple(axes))
        elif op == "Unsqueeze" and value.ndim < 6:
            axis = draw(st.integers(0, value.ndim))
            out.append(("Unsqueeze", {"axes": [axis]}))
            value = np.expand_dims(value, axis)
        elif op == "Transpose" and value.ndim:
            perm = draw(st.permutations(range(value.ndim)))
            out.append(("Transpose", {"perm": list(perm)}))
            value = value.transpose(perm)
        elif value.ndim:
            axis = draw(st.integers(0, value.ndim - 1))
            step = draw(st.sampled_from([1, 1, 2, -1]))
            start = draw(st.integers(-5, 5))
            end = draw(st.sampled_from([-1, 3, 2**31 - 1, -(2**31)]))
            out.append(("Slice", {"starts": [start], "ends": [end], "axes": [axis],
                                  "steps": [step]}))
            cut = [slice(None)] * value.ndim
            cut[axis] = slice(start, end, step)     # (ONNX clamps the ends as Python does)
            value = value[tuple(cut)]
    return out, value.shape


@pytest.mark.parametrize("backend", BACKENDS)
@given(n=st.integers(1, 2), c=st.integers(1, 5), h=st.integers(1, 4), w=st.integers(1, 4),
       data=st.data(), seed=st.integers(0, 2**16))
def test_data_movement_of_channels_last_values(backend, n, c, h, w, data, seed):
    """Slice, Squeeze, Unsqueeze and Transpose of an integer convolution's channels-last
    output (including the channel axis, down to rank 1, and to empty slices) give ONNX
    Runtime's values, as do a GlobalMaxPool of channels-last data after them."""
    moves, shape = data.draw(_moves((n, c, h, w)))
    pool = 3 <= len(shape) <= 5 and 0 not in shape[1:]       # (what ONNX Runtime pools)
    model = _moves_model(n, c, h, w, moves, len(shape), pool=pool, seed=seed)
    x = np.random.default_rng(seed).standard_normal((n, 3, h, w)).astype(np.float32)
    want = _ort(model, {"x": x})
    session = Session(model, backend=backend)
    for _ in range(3):                  # recorded twice, then replayed
        got = session.run({"x": x})["y"]
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("backend", BACKENDS)
@given(perm=st.permutations(range(4)), seed=st.integers(0, 2**16))
def test_transpose_before_a_quantized_convolution(backend, perm, seed):
    """A float Transpose whose reader quantizes for a convolution writes channels-last
    itself (one permutation, none when it undoes the layout change): ONNX Runtime's
    values, recorded and replayed."""
    rng = np.random.default_rng(seed)
    shape = (2, 3, 4, 5)
    x_shape = tuple(shape[perm.index(k)] for k in range(4))   # transposed by perm: shape
    inits: list[onnx.TensorProto] = []
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=list(perm))]
    _qdq_conv("t", "y", shape[1], 4, rng, inits, nodes)
    graph = helper.make_graph(
        nodes, "transpose", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * 4)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    x = rng.standard_normal(x_shape).astype(np.float32)
    want = _ort(model, {"x": x})
    session = Session(model, backend=backend)
    for _ in range(3):
        np.testing.assert_array_equal(session.run({"x": x})["y"], want)


@pytest.mark.parametrize("backend", BACKENDS)
@given(auto_pad=st.sampled_from(["SAME_UPPER", "SAME_LOWER"]), k=st.integers(1, 3),
       stride=st.integers(1, 3), h=st.integers(1, 7), w=st.integers(1, 7),
       seed=st.integers(0, 2**16))
def test_quantized_max_pool_with_auto_pad(backend, auto_pad, k, stride, h, w, seed):
    """DequantizeLinear -> MaxPool(auto_pad SAME_*) -> QuantizeLinear of one scale runs on
    the integers, the pads computed for each input's shape (the odd pad at the end for
    SAME_UPPER, at the start for SAME_LOWER): ONNX Runtime's values."""
    rng = np.random.default_rng(seed)
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    _qdq_conv("x", "c", 3, 4, rng, inits, nodes)
    nodes += [helper.make_node("MaxPool", ["c"], ["p"], kernel_shape=[k, k],
                               strides=[stride, stride], auto_pad=auto_pad),
              helper.make_node("QuantizeLinear", ["p", "c_ys", "c_yz"], ["pq"]),
              helper.make_node("DequantizeLinear", ["pq", "c_ys", "c_yz"], ["y"])]
    graph = helper.make_graph(
        nodes, "pool", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, h, w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * 4)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    session = Session(model, backend=backend)
    assert "MaxPool" in [s.op_type for s in session.steps if s.kind == "int"]
    x = rng.standard_normal((1, 3, h, w)).astype(np.float32)
    want = _ort(model, {"x": x})
    for _ in range(3):
        np.testing.assert_array_equal(session.run({"x": x})["y"], want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_quantized_max_pool_between_tensorflow_transposes_runs_channels_last(backend,
                                                                           monkeypatch):
    """madmom's converter between two convolutions: Transpose to NHWC, Squeeze the batch,
    Unsqueeze it, Transpose to NCHW, MaxPool, and the same moves back, all quantized. The
    Transpose before the pool writes channels-last (a view of the convolution's output)
    and the pool runs natively on it, since the moves after it start by moving the
    channels last (madmom_chords_cnn: numpy's strided maxima on channels-first data
    before); ONNX Runtime's values."""
    from lowp.runtime import lower_elementwise
    rng = np.random.default_rng(11)
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    _qdq_conv("x", "c", 3, 8, rng, inits, nodes)
    inits.append(numpy_helper.from_array(np.array([0], np.int64), "axis0"))
    last = "c"

    def quantized(op: str, **attrs: object) -> None:
        nonlocal last
        extra = ["axis0"] if op in ("Squeeze", "Unsqueeze") else []
        out = f"{op.lower()}{len(nodes)}"
        nodes.extend([helper.make_node(op, [last, *extra], [out + "_f"], **attrs),
                      helper.make_node("QuantizeLinear", [out + "_f", "c_ys", "c_yz"],
                                       [out + "_q"]),
                      helper.make_node("DequantizeLinear", [out + "_q", "c_ys", "c_yz"],
                                       [out])])
        last = out

    for _ in range(2):
        quantized("Transpose", perm=[0, 2, 3, 1])
        quantized("Squeeze")
        quantized("Unsqueeze")
        quantized("Transpose", perm=[0, 3, 1, 2])
        quantized("MaxPool", kernel_shape=[1, 2], strides=[1, 2])
    _qdq_conv(last, "y", 8, 4, rng, inits, nodes)
    graph = helper.make_graph(
        nodes, "pool", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 9, 12])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * 4)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    layouts: list[object] = []
    pool = lower_elementwise.fast_max_pool

    def seen(x: np.ndarray, **kw: object) -> np.ndarray:
        layouts.append(kw["layout"])
        return pool(x, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(lower_elementwise, "fast_max_pool", seen)
    session = Session(model, backend=backend)
    assert "MaxPool" in [s.op_type for s in session.steps if s.kind == "int"]
    x = rng.standard_normal((1, 3, 9, 12)).astype(np.float32)
    want = _ort(model, {"x": x})
    for _ in range(3):
        np.testing.assert_array_equal(session.run({"x": x})["y"], want)
    if backend == "native":
        from lowp.ops.layout import Layout
        assert layouts and all(lay is Layout.CHANNELS_LAST for lay in layouts)


def _tf_style_model(rank: int, c: int, seed: int) -> onnx.ModelProto:
    """A TensorFlow-converted block on channels-last (ONNX) data x, as yahoo-open-nsfw's
    export writes it: Transpose to channels-first, an integer convolution, Transpose back
    (a quantized one, between a DequantizeLinear and a QuantizeLinear of one scale), a
    per-channel bias Add and Relu, Transpose to channels-first, Shape, Pad and MaxPool,
    Transpose back; then two convolutions read it, one through a float Transpose to
    channels-first, one through a quantized one."""
    rng = np.random.default_rng(seed)
    r = rank
    to_first, to_last = [0, r - 1, *range(1, r - 1)], [0, *range(2, r), 1]
    inits: list[onnx.TensorProto] = [
        numpy_helper.from_array(rng.standard_normal(c).astype(np.float32), "bias"),
        numpy_helper.from_array(np.array([0] * r + [0, 0, *[1] * (r - 2)], np.int64),
                                "pads"),
        numpy_helper.from_array(np.array(-1.0, np.float32), "pad_value")]
    nodes = [helper.make_node("Transpose", ["x"], ["t1"], perm=to_first)]
    _qdq_conv_nd("t1", "c1", 3, c, r, rng, inits, nodes)
    nodes += [
        helper.make_node("Transpose", ["c1"], ["t2"], perm=to_last),
        helper.make_node("QuantizeLinear", ["t2", "c1_ys", "c1_yz"], ["t2q"]),
        helper.make_node("DequantizeLinear", ["t2q", "c1_ys", "c1_yz"], ["t2d"]),
        helper.make_node("Add", ["t2d", "bias"], ["a"]),
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("Transpose", ["r"], ["t3"], perm=to_first),
        helper.make_node("Shape", ["t3"], ["shape"]),
        helper.make_node("Pad", ["t3", "pads", "pad_value"], ["p"]),
        helper.make_node("MaxPool", ["p"], ["m"], kernel_shape=[2] * (r - 2),
                         strides=[2] * (r - 2)),
        helper.make_node("Transpose", ["m"], ["t4"], perm=to_last),
        helper.make_node("Transpose", ["t4"], ["t5"], perm=to_first),
        helper.make_node("QuantizeLinear", ["t4", "y2_xs", "y2_xz"], ["t4q"]),
        helper.make_node("DequantizeLinear", ["t4q", "y2_xs", "y2_xz"], ["t4d"]),
        helper.make_node("Transpose", ["t4d"], ["t6"], perm=to_first)]
    _qdq_conv_nd("t5", "y1", c, 4, r, rng, inits, nodes)
    _qdq_conv_nd("t6", "y2", c, 4, r, rng, inits, nodes)
    graph = helper.make_graph(
        nodes, "tf_style",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None] * r)],
        [helper.make_tensor_value_info("y1", TensorProto.FLOAT, [None] * r),
         helper.make_tensor_value_info("y2", TensorProto.FLOAT, [None] * r),
         helper.make_tensor_value_info("shape", TensorProto.INT64, [r])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def _qdq_conv_nd(x: str, out: str, cin: int, cout: int, rank: int,
                 rng: np.random.Generator, inits: list[onnx.TensorProto],
                 nodes: list[onnx.NodeProto]) -> None:
    """`_qdq_conv` with a 1x...x1 kernel of `rank` - 2 spatial axes."""
    _qdq_conv(x, out, cin, cout, rng, inits, nodes)
    w = next(t for t in inits if t.name == f"{out}_wq")
    w.CopyFrom(numpy_helper.from_array(
        numpy_helper.to_array(w).reshape(cout, cin, *[1] * (rank - 2)), w.name))


@pytest.mark.parametrize("backend", BACKENDS)
@given(rank=st.integers(3, 5), n=st.integers(1, 2), c=st.integers(1, 6),
       size=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_tensorflow_style_transposes_are_views(backend, rank, n, c, size, seed):
    """The Transposes of a TensorFlow-converted graph around its convolutions (channels
    moved last after each, first before the next, with a Pad and a MaxPool between) run
    as views of the convolutions' channels-last memory: no copy in a plain run, ONNX
    Runtime's values recorded and replayed, and the Shape of channels-last data in ONNX
    terms."""
    from lowp.runtime.session import execute
    model = _tf_style_model(rank, c, seed)
    x = np.random.default_rng(seed).standard_normal(
        (n, *[size + 1] * (rank - 2), 3)).astype(np.float32)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = ["y1", "y2", "shape"]
    want = dict(zip(names, sess.run(None, {"x": x}), strict=True))
    session = Session(model, backend=backend)
    for _ in range(3):
        got = session.run({"x": x})
        for name in names:
            np.testing.assert_array_equal(got[name], want[name])
    if backend != "native":
        return
    env: dict[str, np.ndarray] = {**session._constants, "x": x}
    layout: dict[str, object] = {}
    transposes = [s for s in session.steps if s.op_type == "Transpose"]
    assert len(transposes) == 6
    for step in session.steps:
        execute(step, env, layout)
        if step in transposes:
            assert np.shares_memory(env[step.outputs[0]], env[step.inputs[0]]), step.name
