"""The native float32 RNN operator (lowp.runtime.native_rnn.simple_rnn, native/float_rnn.cpp)
against its reference lowp.runtime.float_nn._rnn_ort, bit for bit, on every instruction-set
path and thread count: every direction, activation (ONNX Runtime's names, an unknown name
as its default Tanh), alpha and beta, clip (none, negative, 0, NaN), sequence lengths of any
value, initial_h, bias, and values up to overflow, NaN and signed zeros; and replayed inside
a Program like the other recurrent nodes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session, native_float, native_rnn
from lowp.runtime import native_backend as nb
from lowp.runtime.float_nn import _rnn_ort, _rnn_ort_directions

PATHS = nb.available_paths()
pytestmark = pytest.mark.skipif(native_rnn.kernels() == "none", reason="no extension")
NAMES = [*native_rnn.RNN_ACTIVATIONS, "tanh", "relu", "Gelu"]


def _same(got: np.ndarray, want: np.ndarray) -> None:
    """Equal bits, NaN for NaN (whatever its payload)."""
    assert got.shape == want.shape and got.dtype == want.dtype == np.float32
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(got.view(np.uint32)[~nan], want.view(np.uint32)[~nan])


def _values(rng: np.random.Generator, shape: tuple[int, ...], scale: float, special: bool
            ) -> np.ndarray:
    v = (rng.standard_normal(shape) * scale).astype(np.float32)
    if special and v.size:
        flat = v.reshape(-1)
        picks = rng.integers(0, flat.size, max(1, flat.size // 8))
        flat[picks] = rng.choice(np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 90.0, -90.0,
                                           1e-40], np.float32), picks.size)
    return v


def _check(x, w, r, b, lens, h0, activations, alphas, betas, clip, direction) -> None:
    want = _rnn_ort(x, w, r, b, lens, h0, alphas, betas, activations, clip, direction)
    params = _rnn_ort_directions(activations, alphas, betas, direction)
    for path in PATHS:
        for threads in (1, 2):
            with nb.use_path(path):
                got = native_rnn.simple_rnn(x, w, r, b, lens, h0, params, clip, direction,
                                            threads=threads)
            assert got is not None
            for g, e in zip(got, want, strict=True):
                _same(g, e)


@settings(max_examples=60, deadline=None)
@given(seq=st.integers(1, 6), batch=st.integers(1, 4), inp=st.integers(1, 9),
       hidden=st.sampled_from([1, 3, 6, 16, 17, 30, 40, 88]),
       direction=st.sampled_from(["forward", "reverse", "bidirectional"]),
       names=st.lists(st.sampled_from(NAMES), min_size=2, max_size=2) | st.none(),
       alphas=st.lists(st.floats(-2, 2, width=32), max_size=3),
       betas=st.lists(st.floats(-2, 2, width=32), max_size=3),
       clip=st.none() | st.sampled_from([-1.0, 0.0, 0.5, 3.0, float("nan")]),
       bias=st.booleans(), initial=st.booleans(), with_lens=st.booleans(),
       scale=st.sampled_from([0.3, 1.0, 30.0]), special=st.booleans(),
       seed=st.integers(0, 2**16))
def test_native_rnn_equals_the_reference(seq, batch, inp, hidden, direction, names, alphas,
                                         betas, clip, bias, initial, with_lens, scale,
                                         special, seed):
    rng = np.random.default_rng(seed)
    dirs = 2 if direction == "bidirectional" else 1
    x = _values(rng, (seq, batch, inp), scale, special)
    w = _values(rng, (dirs, hidden, inp), 1.0, False)
    r = _values(rng, (dirs, hidden, hidden), 1.0 / np.sqrt(hidden), special)
    b = _values(rng, (dirs, 2 * hidden), 1.0, False) if bias else None
    h0 = _values(rng, (dirs, batch, hidden), 1.0, special) if initial else None
    lens = rng.integers(-1, seq + 2, batch).astype(np.int32) if with_lens else None
    acts = None if names is None else names[:dirs]
    _check(x, w, r, b, lens, h0, acts, alphas, betas, clip, direction)


@pytest.mark.parametrize("name", NAMES)
def test_each_activation_over_a_sweep(name):
    """Pre-activations over the whole float range (expf's overflow and underflow, NaN, the
    signed zeros of a first step without initial_h) for each activation and both defaults
    of alpha and beta."""
    rng = np.random.default_rng(1)
    x = np.concatenate([np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 88.8, -104.0, 1e-30],
                                 np.float32), rng.standard_normal(40).astype(np.float32) * 40])
    x = x.reshape(48, 1, 1)
    w = np.ones((2, 1, 1), np.float32)
    r = np.full((2, 1, 1), 0.5, np.float32)
    for alphas, betas in ((None, None), ([0.7, -1.3], [0.25, 2.0])):
        _check(x, w, r, None, None, None, [name, name], alphas, betas, None, "bidirectional")


@pytest.mark.parametrize("hidden", [*range(1, 42), 88, 129])
def test_one_row_products_of_every_shape(hidden):
    """B = 1: the per-step product is the one-row transposed kernel's (its 256-bit form on
    the paths with AVX2): every row count modulo 4 (the fold of a group of four, a pair, a
    single row) and every K modulo 8 (the padded last block), with signed zeros and NaN."""
    rng = np.random.default_rng(hidden)
    x = _values(rng, (5, 1, 3), 1.0, True)
    w = _values(rng, (2, hidden, 3), 1.0, False)
    r = _values(rng, (2, hidden, hidden), 1.0 / np.sqrt(hidden), True)
    r[0, :, : hidden // 2] = -0.0
    h0 = _values(rng, (2, 1, hidden), 1.0, True)
    _check(x, w, r, None, None, h0, ["LeakyRelu", "Tanh"], None, None, None, "bidirectional")


def _model(lens_input: bool) -> bytes:
    rng = np.random.default_rng(3)
    consts = [numpy_helper.from_array(rng.standard_normal((2, 5, 7)).astype(np.float32), "w"),
              numpy_helper.from_array(rng.standard_normal((2, 5, 5)).astype(np.float32), "r"),
              numpy_helper.from_array(rng.standard_normal((2, 10)).astype(np.float32), "b")]
    inputs = ["x", "w", "r", "b", "lens" if lens_input else "", "h0"]
    feeds = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 2, 7]),
             helper.make_tensor_value_info("h0", TensorProto.FLOAT, [2, 2, 5])]
    if lens_input:
        feeds.append(helper.make_tensor_value_info("lens", TensorProto.INT32, [2]))
    graph = helper.make_graph(
        [helper.make_node("RNN", inputs, ["y", "yh"], hidden_size=5, direction="bidirectional",
                          activations=["Relu", "Tanh"]),
         helper.make_node("Relu", ["y"], ["z"])], "g", feeds,
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [3, 2, 2, 5]),
         helper.make_tensor_value_info("yh", TensorProto.FLOAT, [2, 2, 5])], consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    return model.SerializeToString()


@pytest.mark.parametrize("lens_input", [False, True])
def test_rnn_replays_inside_programs(lens_input):
    """The native RNN call is recorded and repeated by a Program (the lengths from a feed
    too: the kernel reads them when it runs, any values), every run equal to the plain
    run's and to the numpy reference's."""
    model = _model(lens_input)
    fast, plain = Session(model, threads=1), Session(model, threads=1, replay=False)
    for seed in range(5):
        rng = np.random.default_rng(seed)
        feeds = {"x": rng.standard_normal((3, 2, 7)).astype(np.float32),
                 "h0": rng.standard_normal((2, 2, 5)).astype(np.float32)}
        if lens_input:
            feeds["lens"] = np.array([3, seed % 4], np.int32)
        got, want = fast.run(feeds), plain.run(feeds)
        with native_rnn.disabled(), native_float.disabled():
            ref = Session(model, threads=1, replay=False).run(feeds)
        for name in ("z", "yh"):
            _same(got[name], want[name])
            _same(got[name], ref[name])
    (signature,) = fast._replayer._ready
    plain_ops = [s.op_type for s in fast._replayer.plain_steps(signature)]
    assert "RNN" not in plain_ops or lens_input, plain_ops


@pytest.mark.parametrize(("seq", "batch", "inp", "hidden"), [
    (64, 1, 88, 88),     # madmom_notes_brnn: X W^T cut by columns at 2 threads
    (4, 2, 600, 17),     # a one-column part (computed with the column before it)
    (3, 5, 40, 120),     # every step's product cut by columns (B = 5)
    (5, 1, 16, 256),     # the one-row step product cut by columns
    (70, 1, 8, 40),      # X W^T cut by rows
])
def test_products_cut_between_threads_run_natively(seq, batch, inp, hidden) -> None:
    # before: when ONNX Runtime's MlasGemm cuts a product between its threads, the native
    # kernel declined the node and the numpy reference ran it (madmom_notes_brnn at 2
    # threads: ~40x ONNX Runtime's CPU time); now each cut is one operation of the kernel
    rng = np.random.default_rng(seq * hidden)
    x = _values(rng, (seq, batch, inp), 1.0, False)
    w = _values(rng, (2, hidden, inp), 1.0 / np.sqrt(inp), False)
    r = _values(rng, (2, hidden, hidden), 1.0 / np.sqrt(hidden), False)
    b = _values(rng, (2, 2 * hidden), 0.3, False)
    h0 = _values(rng, (2, batch, hidden), 1.0, False)
    lens = rng.integers(0, seq + 1, batch)
    params = _rnn_ort_directions(None, None, None, "bidirectional")
    for threads in (1, 2):
        with native_float.threads(threads):
            want = _rnn_ort(x, w, r, b, lens, h0, None, None, None, None, "bidirectional")
        for path in PATHS:
            with nb.use_path(path):
                got = native_rnn.simple_rnn(x, w, r, b, lens, h0, params, None,
                                            "bidirectional", threads=threads)
            assert got is not None, (path, threads)
            for g, e in zip(got, want, strict=True):
                _same(g, e)
