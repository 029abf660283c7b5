"""The native LSTM/GRU recurrence (lowp.runtime.native_rnn) against the numpy reference loop
of lowp.runtime.float_nn and against ONNX Runtime, on every instruction-set path."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowp.runtime import native_backend as nb
from lowp.runtime import native_rnn
from lowp.runtime.float_nn import deepcpu_activations
from lowp.runtime.float_ops import FLOAT_OPS
from tests.runtime.float_cases import all_cases, run_ort
from tests.runtime.test_float_ops import run_lowp

PATHS = nb.available_paths()
KERNELS = {"scalar": "scalar", "avx2": "avx2", "avxvnni": "avx2", "avxvnni_evex": "avx2",
           "avx512vnni": "avx512", "amx": "avx512"}


@dataclass(frozen=True)
class RnnCase:
    """Inputs and attributes of one LSTM or GRU node."""

    op: str
    inputs: list[np.ndarray | None]
    attrs: dict[str, object]


@st.composite
def rnn_cases(draw: st.DrawFn, op: str) -> RnnCase:
    """Random LSTM/GRU nodes: batch and time 0.., hidden sizes around the 16-float vector,
    every direction and layout, lengths with zeros and full lengths, optional bias, initial
    states, peepholes, clip, input_forget / linear_before_reset."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    seq, batch = draw(st.integers(0, 7)), draw(st.integers(0, 9))
    inp = draw(st.integers(1, 6))
    hidden = draw(st.sampled_from([1, 3, 8, 15, 16, 17, 33]))
    direction = draw(st.sampled_from(["forward", "reverse", "bidirectional"]))
    layout = draw(st.integers(0, 1))
    nd, gates = (2 if direction == "bidirectional" else 1), (4 if op == "LSTM" else 3)

    def f32(*shape: int, scale: float = 1.0) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    x = f32(batch, seq, inp) if layout else f32(seq, batch, inp)
    w, r = f32(nd, gates * hidden, inp, scale=0.5), f32(nd, gates * hidden, hidden, scale=0.5)
    b = f32(nd, 2 * gates * hidden) if draw(st.booleans()) else None
    lens = None
    if draw(st.booleans()):
        lens = rng.integers(0, seq + 1, batch).astype(np.int32)
        if batch:
            lens[0] = seq   # one full length, and a zero where there is room
            lens[-1] = 0 if batch > 1 else lens[-1]
    state_shape = (batch, nd, hidden) if layout else (nd, batch, hidden)
    h0 = f32(*state_shape) if draw(st.booleans()) else None
    inputs: list[np.ndarray | None] = [x, w, r, b, lens, h0]
    attrs: dict[str, object] = {"hidden_size": hidden, "direction": direction, "layout": layout}
    if draw(st.booleans()):
        attrs["clip"] = draw(st.sampled_from([0.25, 1.0, 3.0]))
    if op == "LSTM":
        inputs.append(f32(*state_shape) if draw(st.booleans()) else None)
        inputs.append(f32(nd, 3 * hidden) if draw(st.booleans()) else None)
        attrs["input_forget"] = draw(st.integers(0, 1))
    else:
        attrs["linear_before_reset"] = draw(st.integers(0, 1))
    return RnnCase(op, inputs, attrs)


def _run(c: RnnCase) -> list[np.ndarray]:
    # the weights as the constants ONNX Runtime prepacks: the native recurrence
    out = FLOAT_OPS[c.op](*c.inputs, **c.attrs, w_packed=True, r_packed=True, opset=17)
    return list(out)


def _check_against_numpy(c: RnnCase) -> None:
    with native_rnn.disabled():
        expected = _run(c)
    x = c.inputs[0]
    assert x is not None
    for path in PATHS:
        with nb.use_path(path):
            assert native_rnn.kernels() == KERNELS[path]
            got = _run(c)
        assert len(got) == len(expected)
        for g, e in zip(got, expected, strict=True):   # both in ONNX Runtime's order
            assert g.shape == e.shape and g.dtype == e.dtype == np.float32, path
            np.testing.assert_array_equal(g, e, err_msg=path)


@settings(max_examples=150, deadline=None)
@given(c=rnn_cases("LSTM"))
def test_lstm_matches_numpy_reference(c: RnnCase) -> None:
    _check_against_numpy(c)


@settings(max_examples=150, deadline=None)
@given(c=rnn_cases("GRU"))
def test_gru_matches_numpy_reference(c: RnnCase) -> None:
    _check_against_numpy(c)


RNN_CASES = [c for c in all_cases() if c.op in ("LSTM", "GRU")]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", RNN_CASES, ids=[c.id for c in RNN_CASES])
def test_conformance_on_every_path(case: object, path: str) -> None:
    from tests.runtime.float_cases import Case
    assert isinstance(case, Case)
    expected = run_ort(case)
    with nb.use_path(path):
        got = run_lowp(case)
    for g, e in zip(got, expected, strict=True):
        assert g.shape == e.shape and g.dtype == e.dtype
        np.testing.assert_allclose(g, e, rtol=case.tol, atol=case.tol)


def test_cases_take_the_native_path() -> None:
    # every float32 conformance case, whatever its activations (O62), reaches the extension
    assert native_rnn.kernels() == KERNELS[nb.active_path()]
    for case in RNN_CASES:
        attrs = case.attrs
        x = case.inputs[0]
        assert x is not None
        seq = x.shape[1] if attrs.get("layout") else x.shape[0]
        lens = case.inputs[4] if len(case.inputs) > 4 else None
        params = deepcpu_activations(
            case.op, attrs.get("activations"), attrs.get("activation_alpha"),  # type: ignore
            attrs.get("activation_beta"), 2 if attrs.get("direction") == "bidirectional"
            else 1)  # type: ignore[arg-type]
        take = native_rnn.supported(
            x.dtype, params, np.full(x.shape[1], seq) if lens is None else lens, seq,
            int(attrs["hidden_size"]), attrs.get("clip"))  # type: ignore[arg-type]
        assert take, case.id


def test_fallbacks_keep_the_numpy_loop() -> None:
    lens = np.array([3, 3])
    lstm = [[("sigmoid", 0.0, 0.0), ("tanh", 0.0, 0.0), ("tanh", 0.0, 0.0)]]
    gru = [[("sigmoid", 0.0, 0.0), ("relu", 0.0, 0.0)]] * 2
    assert not native_rnn.supported(np.dtype(np.float64), lstm, lens, 3, 4, None)
    assert not native_rnn.supported(np.dtype(np.float32), lstm, np.array([4, 3]), 3, 4,
                                    None)   # length past T
    assert not native_rnn.supported(np.dtype(np.float32), lstm, lens, 3, 4, -1.0)
    assert native_rnn.supported(np.dtype(np.float32), gru, lens, 3, 4, 2.0)
    # float64 runs (and stays) float64 through the numpy loop
    rng = np.random.default_rng(1)
    x, w, r = (rng.standard_normal(s) for s in [(4, 2, 3), (1, 12, 3), (1, 12, 4)])
    y, yh = FLOAT_OPS["GRU"](x, w, r, hidden_size=4, opset=17)
    assert y.dtype == yh.dtype == np.float64


@pytest.mark.parametrize(("op", "linear_before_reset"),
                         [("LSTM", False), ("GRU", False), ("GRU", True)])
@pytest.mark.parametrize(("reverse", "hidden", "lengths"),
                         [([False, True], 37, [9, 0, 4, 9, 1]), ([True], 130, [9, 0, 4, 9, 1]),
                          ([False], 420, [7])])
def test_results_do_not_depend_on_threads(op: str, linear_before_reset: bool,
                                          reverse: list[bool], hidden: int,
                                          lengths: list[int]) -> None:
    # two directions run as two tasks; one direction cuts its projection and each step's
    # products by columns between up to 3 threads, more than the pool has
    rng = np.random.default_rng(2)
    gates, seq, batch, inp, dirs = (4 if op == "LSTM" else 3), 9, len(lengths), 40, len(reverse)
    x = rng.standard_normal((seq, batch, inp)).astype(np.float32)
    w = (rng.standard_normal((dirs, gates * hidden, inp)) * 0.5).astype(np.float32)
    r = (rng.standard_normal((dirs, gates * hidden, hidden)) * 0.5).astype(np.float32)
    lens = np.array(lengths, np.int64)
    for path in PATHS:
        with nb.use_path(path):
            if op == "LSTM":
                runs = [native_rnn.lstm(x, w, r, None, lens, None, None, None, reverse, 0,
                                        None, False, threads=t) for t in (1, 2, 3, 0)]
            else:
                runs = [native_rnn.gru(x, w, r, None, lens, None, reverse, 0, None,
                                       linear_before_reset, threads=t) for t in (1, 2, 3, 0)]
        for other in runs[1:]:
            for a, b in zip(runs[0], other, strict=True):
                np.testing.assert_array_equal(a, b, err_msg=path)


@pytest.mark.parametrize(("op", "extra"), [("LSTM", {}), ("GRU", {}),
                                           ("GRU", {"linear_before_reset": 1})])
@pytest.mark.parametrize("bias", [False, True])
def test_wide_hidden_sizes_match_numpy(op: str, extra: dict[str, int], bias: bool) -> None:
    # H = 300: two K blocks of ONNX Runtime's packed GEMM (256 + 44), gate blocks over
    # several 64-column panels with a partial last one; the batch spans a row remainder
    rng = np.random.default_rng(3)
    gates, hidden = (4 if op == "LSTM" else 3), 300
    x = rng.standard_normal((3, 7, 5)).astype(np.float32)
    w = (rng.standard_normal((2, gates * hidden, 5)) * 0.3).astype(np.float32)
    r = (rng.standard_normal((2, gates * hidden, hidden)) * 0.1).astype(np.float32)
    b = (rng.standard_normal((2, 2 * gates * hidden)) * 0.3).astype(np.float32) if bias \
        else None
    inputs: list[np.ndarray | None] = [x, w, r, b]
    _check_against_numpy(RnnCase(op, inputs, {"hidden_size": hidden,
                                              "direction": "bidirectional", **extra}))


def test_packed_weights_layout_and_reuse() -> None:
    rng = np.random.default_rng(4)
    hidden, hp = 37, 48
    for blocks, k in (((4,), hidden), ((2, 1), hidden), ((3,), 5), ((4,), 70)):
        gates = sum(blocks)
        m = rng.standard_normal((2, gates * hidden, k)).astype(np.float32)
        packed = native_rnn.packed_weights(m, blocks)
        assert native_rnn.packed_weights(m, blocks) is packed      # packed once per array
        assert native_rnn.packed_weights(m.copy(), blocks) is not packed
        for d in range(2):
            start, first_gate = 0, 0
            for count in blocks:
                width = count * hp
                panels = -(-width // 64)
                block = packed[d, start:start + panels * 64 * k].reshape(
                    panels, k, 64).transpose(1, 0, 2).reshape(k, -1)
                for col in range(panels * 64):
                    g, j = first_gate + col // hp, col % hp
                    expect = m[d, g * hidden + j] if j < hidden and col < width else 0.0
                    np.testing.assert_array_equal(block[:, col], expect)
                start += panels * 64 * k
                first_gate += count
            assert start == packed.shape[1]


def test_packed_weights_start_on_a_cache_line() -> None:
    # every panel row then is whole 64-byte lines: a packing 16 bytes off a line (numpy's
    # alignment) made the GRU kernel's vector loads straddle two lines, 11-14% of its time
    rng = np.random.default_rng(5)
    shapes = ((600, 600, (2, 1)), (400, 400, (2, 1)), (37, 5, (4,)), (64, 513, (3,)))
    for hidden, k, blocks in shapes:
        for _ in range(4):   # numpy's allocations land on various 16-byte offsets
            m = rng.standard_normal((2, sum(blocks) * hidden, k)).astype(np.float32)
            packed = native_rnn.pack(m, blocks)
            assert packed.flags.c_contiguous
            assert packed.ctypes.data % 64 == 0
            assert packed.shape[1] % 16 == 0      # so each direction's start is too
            np.testing.assert_array_equal(packed, native_rnn.pack(m.copy(), blocks))


def test_default_threads_are_the_float_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    # without a thread count the recurrence takes native_float's (a Session's own)
    from lowp.runtime import native_float
    seen: list[int] = []
    ext = native_rnn._extension()

    class Spy:
        def rnn(self, *args: object) -> None:
            # ..., threads, bias, acts, alphas, betas
            seen.append(int(args[-5]))  # type: ignore[call-overload]
            ext.rnn(*args)

    monkeypatch.setattr(native_rnn, "_extension", lambda: Spy())
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 2, 4)).astype(np.float32)
    w, r = (rng.standard_normal((2, 4 * 5, k)).astype(np.float32) for k in (4, 5))
    lens = np.array([3, 3])
    with native_float.threads(2):
        two = native_rnn.lstm(x, w, r, None, lens, None, None, None, [False, True], 0, None,
                              False)
    one = native_rnn.lstm(x, w, r, None, lens, None, None, None, [False, True], 0, None, False,
                          threads=1)
    assert seen == [2, 1]
    for a, b in zip(two, one, strict=True):
        np.testing.assert_array_equal(a, b)


def _ort_recurrent(c: RnnCase) -> list[np.ndarray]:
    """ONNX Runtime on one node whose weights are initializers (prepacked, as in a file)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    x, w, r, b = c.inputs[:4]
    assert x is not None and w is not None and r is not None and b is not None
    outs = ["y", "y_h", "y_c"][:3 if c.op == "LSTM" else 2]
    node = helper.make_node(c.op, ["x", "w", "r", "b"], outs, **c.attrs)
    graph = helper.make_graph(
        [node], "rnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
        [helper.make_empty_tensor_value_info(o) for o in outs],
        initializer=[numpy_helper.from_array(v, n) for n, v in (("w", w), ("r", r), ("b", b))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), opts,
                                   providers=["CPUExecutionProvider"])
    return list(session.run(None, {"x": x}))


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
@pytest.mark.parametrize("batch", [7, 8])
def test_batches_of_seven_and_eight_rows_match_numpy_and_onnxruntime(op: str,
                                                                     batch: int) -> None:
    # the recurrence's GEMM of 7 or 8 rows runs 8-row tiles (each weight panel read once
    # a step); H = 300: two K blocks and a partial last panel, the sums as ONNX Runtime's
    rng = np.random.default_rng(batch)
    gates, hidden = (4 if op == "LSTM" else 3), 300
    x = rng.standard_normal((5, batch, 28)).astype(np.float32)
    w = (rng.standard_normal((1, gates * hidden, 28)) * 0.3).astype(np.float32)
    r = (rng.standard_normal((1, gates * hidden, hidden)) * 0.1).astype(np.float32)
    b = (rng.standard_normal((1, 2 * gates * hidden)) * 0.3).astype(np.float32)
    case = RnnCase(op, [x, w, r, b], {"hidden_size": hidden})
    _check_against_numpy(case)
    for g, e in zip(_run(case), _ort_recurrent(case), strict=True):
        np.testing.assert_array_equal(g, e)
