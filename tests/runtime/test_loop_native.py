"""A Loop whose body replays as native Programs runs its iterations in one native call
(lowp.runtime.control._NativeLoop, lowp._native.run_loop): iteration number, condition and
carried values written into the body's input buffers, scan outputs stacked, carried outputs
copied back, with no Python between iterations. Its results equal a plain Session's
(`replay=False`), a numpy loop's and ONNX Runtime's bit for bit: random trip counts
(0 included), conditions that stop the loop early, carried values that swap places, scan
outputs of several types, and an index out of range raising as the plain run does."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.errors import NodeError
from lowp.runtime import Session, control, native_float, program
from tests.runtime.ort_agreement import onnxruntime_run
from tests.runtime.test_loop_replay import _lstm_loop_model

F = TensorProto.FLOAT
I64 = TensorProto.INT64

needs_native = pytest.mark.skipif(native_float.kernels() == "none",
                                  reason="no native float kernels")


def _vi(name: str, elem: int, shape: list[object]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def _body(session: Session) -> control.SubPlan:
    (loop,) = [s for s in session.steps if s.op_type == "Loop"]
    cells = [c.cell_contents for c in loop.fn.__closure__ or ()]
    (body,) = [c for c in cells if isinstance(c, control.SubPlan)]
    return body


def _ran_natively(session: Session) -> bool:
    return any(loop is not None for loop in _body(session)._loops.values())


def _stopping_loop_model(rows: int, cols: int) -> onnx.ModelProto:
    """x -> x * w + b carried, with a counter t (int64, carried) and an accumulator a that
    swaps places with x each iteration; the condition t + 1 < stop (`stop` a feed) ends
    the loop early; scans: x_out (float), t_out (int64) and the condition (bool)."""
    body = helper.make_graph(
        [helper.make_node("Mul", ["x_in", "w"], ["xw"]),
         helper.make_node("Add", ["xw", "b"], ["x_out"]),
         helper.make_node("Add", ["a_in", "x_in"], ["a_next"]),
         helper.make_node("Add", ["t_in", "one"], ["t_out"]),
         helper.make_node("Less", ["t_out", "stop"], ["below"]),
         helper.make_node("And", ["below", "cond_in"], ["cond_out"]),
         helper.make_node("Identity", ["cond_out"], ["cond_scan"]),
         helper.make_node("Identity", ["x_out"], ["x_scan"]),
         helper.make_node("Identity", ["t_out"], ["t_scan"])],
        "body",
        [_vi("i", I64, []), _vi("cond_in", TensorProto.BOOL, []), _vi("x_in", F, [rows, cols]),
         _vi("t_in", I64, []), _vi("a_in", F, [rows, cols]), _vi("y_in", F, [rows, cols])],
        [_vi("cond_out", TensorProto.BOOL, []), _vi("x_out", F, [rows, cols]),
         _vi("t_out", I64, []), _vi("y_in", F, [rows, cols]), _vi("a_next", F, [rows, cols]),
         _vi("x_scan", F, [rows, cols]), _vi("t_scan", I64, []),
         _vi("cond_scan", TensorProto.BOOL, [])],
        [numpy_helper.from_array(np.int64(1), "one")])
    # (a_in and y_in swap places: the body's outputs are the other's inputs)
    graph = helper.make_graph(
        [helper.make_node("Loop", ["n", "go", "x0", "t0", "a0", "y0"],
                          ["x_end", "t_end", "a_end", "y_end", "xs", "ts", "cs"], body=body)],
        "g",
        [_vi("n", I64, []), _vi("go", TensorProto.BOOL, []), _vi("stop", I64, []),
         _vi("x0", F, [rows, cols]), _vi("t0", I64, []), _vi("a0", F, [rows, cols]),
         _vi("y0", F, [rows, cols]), _vi("w", F, [cols]), _vi("b", F, [rows, cols])],
        [_vi("x_end", F, [rows, cols]), _vi("t_end", I64, []), _vi("a_end", F, [rows, cols]),
         _vi("y_end", F, [rows, cols]), _vi("xs", F, ["k", rows, cols]), _vi("ts", I64, ["k"]),
         _vi("cs", TensorProto.BOOL, ["k"])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _numpy_loop(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The stopping loop's outputs by a plain numpy loop (ONNX Loop semantics)."""
    x, t, a, y = (feeds[k].copy() for k in ("x0", "t0", "a0", "y0"))
    go, i, xs, ts, cs = bool(feeds["go"]), 0, [], [], []
    rows, cols = x.shape
    while go and i < int(feeds["n"]):
        x_out = x * feeds["w"] + feeds["b"]
        a_next = a + x
        t = t + np.int64(1)
        go = bool(t < feeds["stop"]) and go
        x, a, y = x_out, y, a_next
        xs.append(x_out)
        ts.append(t)
        cs.append(np.array(go))
        i += 1
    stacked = [np.stack(v) if v else np.empty((0, *shape), dtype)
               for v, shape, dtype in ((xs, (rows, cols), np.float32), (ts, (), np.int64),
                                       (cs, (), np.bool_))]
    return [x, np.asarray(t), a, y, *stacked]


_STOPPING_OUTPUTS = ("x_end", "t_end", "a_end", "y_end", "xs", "ts", "cs")


@needs_native
@pytest.mark.parametrize("threads", [1, 2])
@given(rows=st.integers(1, 5), cols=st.integers(1, 40),
       trips=st.lists(st.integers(0, 9), min_size=4, max_size=6),
       stops=st.lists(st.integers(-1, 12), min_size=6, max_size=6),
       seed=st.integers(0, 2**16))
@settings(max_examples=15, deadline=None)
def test_native_loop_equals_numpy_plain_and_onnxruntime(threads, rows, cols, trips, stops,
                                                        seed):
    model = _stopping_loop_model(rows, cols)
    native = Session(model, threads=threads)
    plain = Session(model, threads=threads, replay=False)
    rng = np.random.default_rng(seed)
    # (a run of 6 iterations first: recorded on two of them, the rest in one native call)
    for n, stop in zip([6, *trips], [100, *stops], strict=False):
        feeds = {"n": np.array(n, np.int64), "go": np.array(True),
                 "stop": np.array(stop, np.int64),
                 "x0": rng.standard_normal((rows, cols)).astype(np.float32),
                 "t0": np.array(rng.integers(-3, 3), np.int64),
                 "a0": rng.standard_normal((rows, cols)).astype(np.float32),
                 "y0": rng.standard_normal((rows, cols)).astype(np.float32),
                 "w": rng.standard_normal(cols).astype(np.float32),
                 "b": rng.standard_normal((rows, cols)).astype(np.float32)}
        ours, reference = native.run(feeds), plain.run(feeds)
        theirs, by_numpy = onnxruntime_run(model, feeds), _numpy_loop(feeds)
        for name, want, loop in zip(_STOPPING_OUTPUTS, theirs, by_numpy, strict=True):
            assert ours[name].dtype == want.dtype and ours[name].shape == want.shape, name
            np.testing.assert_array_equal(ours[name], want, err_msg=name)
            np.testing.assert_array_equal(reference[name], want, err_msg=name)
            np.testing.assert_array_equal(loop, want, err_msg=name)
    assert _ran_natively(native)
    assert not _body(plain)._loops


@needs_native
@pytest.mark.parametrize("threads", [1, 2])
@given(batch=st.sampled_from([2, 3, 8]), steps=st.integers(0, 7),
       k=st.sampled_from([5, 59]), h=st.sampled_from([4, 33, 75]), seed=st.integers(0, 2**16))
@settings(max_examples=10, deadline=None)
def test_lstm_loop_runs_natively_and_equals_onnxruntime(threads, batch, steps, k, h, seed):
    """tf2onnx's LSTM as a Loop (chars2vec_en300's form): after two recorded iterations the
    rest, and every iteration of later runs, in one native call."""
    model = _lstm_loop_model(batch, steps, k, h)
    native = Session(model, threads=threads)
    plain = Session(model, threads=threads, replay=False)
    rng = np.random.default_rng(seed)
    for _ in range(3):
        x = rng.standard_normal((batch, steps, k)).astype(np.float32)
        ours, reference = native.run({"x": x}), plain.run({"x": x})
        theirs = onnxruntime_run(model, {"x": x})
        for name, want in zip(("y", "hs", "w_end"), theirs, strict=True):
            np.testing.assert_array_equal(ours[name].view(np.uint32), want.view(np.uint32))
            np.testing.assert_array_equal(reference[name], want)
    assert _ran_natively(native) == (steps >= 1)


@needs_native
def test_index_out_of_range_in_a_native_loop_raises_as_the_plain_run():
    """A Gather by the iteration number past the rows: the kernel's status stops the native
    iterations and the Loop runs again the plain way, which raises the error."""
    body = helper.make_graph(
        [helper.make_node("Gather", ["table", "i"], ["row"]),
         helper.make_node("Add", ["acc_in", "row"], ["acc_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body",
        [_vi("i", I64, []), _vi("cond_in", TensorProto.BOOL, []), _vi("acc_in", F, [4])],
        [_vi("cond_out", TensorProto.BOOL, []), _vi("acc_out", F, [4])])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["n", "", "acc0"], ["acc_end"], body=body)], "g",
        [_vi("n", I64, []), _vi("table", F, [6, 4]), _vi("acc0", F, [4])],
        [_vi("acc_end", F, [4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = Session(model)
    rng = np.random.default_rng(5)
    table = rng.standard_normal((6, 4)).astype(np.float32)
    for n in (6, 6, 5):
        feeds = {"n": np.array(n, np.int64), "table": table,
                 "acc0": rng.standard_normal(4).astype(np.float32)}
        np.testing.assert_array_equal(session.run(feeds)["acc_end"],
                                      onnxruntime_run(model, feeds)[0])
    assert _ran_natively(session)
    feeds["n"] = np.array(8, np.int64)
    with pytest.raises(NodeError, match="out of range"):
        session.run(feeds)
    feeds["n"] = np.array(4, np.int64)
    np.testing.assert_array_equal(session.run(feeds)["acc_end"],
                                  onnxruntime_run(model, feeds)[0])


_INT_OPS = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply}
_BOOL_OPS = {"And": np.logical_and, "Or": np.logical_or, "Xor": np.logical_xor}


@needs_native
@given(op=st.sampled_from(sorted(_INT_OPS) + sorted(_BOOL_OPS)),
       dtype=st.sampled_from([np.int64, np.int32]),
       shapes=st.sampled_from([((), ()), ((5,), ()), ((), (3, 1)), ((2, 3, 4), (3, 1)),
                               ((4, 1, 3), (1, 5, 3)), ((1, 2, 1, 3, 2), (2, 1, 3, 1))]),
       seed=st.integers(0, 2**16), threads=st.sampled_from([1, 2]))
@settings(max_examples=60, deadline=None)
def test_integer_binary_is_numpys(op, dtype, shapes, seed, threads):
    """Add, Sub and Mul of int64 or int32 (wrapping at the type's ends) and the logic of
    bools, broadcast: numpy's values, bit for bit."""
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    if op in _BOOL_OPS:
        a, b = (rng.integers(0, 2, s).astype(np.bool_) for s in shapes)
        want = _BOOL_OPS[op](a, b)
    else:
        a, b = (rng.integers(info.min, info.max, s, dtype=dtype, endpoint=True)
                for s in shapes)
        with np.errstate(over="ignore"):
            want = _INT_OPS[op](a, b)
    out = np.empty(want.shape, want.dtype)
    made = program.integer_call(op, a, b, out, threads)
    assert made is not None
    (fn, args), y = made
    fn(*args)
    assert y is out
    np.testing.assert_array_equal(out, want)


def test_integer_call_refuses_mixed_or_other_types():
    a64, a32 = np.arange(3, dtype=np.int64), np.arange(3, dtype=np.int32)
    assert program.integer_call("Add", a64, a32, np.empty(3, np.int64), 1) is None
    assert program.integer_call("And", a64, a64, np.empty(3, np.int64), 1) is None
    flags = np.ones(3, np.bool_)
    assert program.integer_call("Add", flags, flags, np.empty(3, np.bool_), 1) is None


@needs_native
@pytest.mark.parametrize("block_bytes", [1, 100, control.BLOCK_BYTES])
def test_huge_trip_count_ended_by_the_condition_runs_in_blocks(monkeypatch, block_bytes):
    """A trip count of 2^63 - 1 (exporters' `while`) that the condition ends: the native
    calls fill blocks of stacked scan outputs of at most BLOCK_BYTES (one iteration at
    least), never an allocation for the trip count; the results are ONNX Runtime's."""
    monkeypatch.setattr(control, "BLOCK_BYTES", block_bytes)
    model = _stopping_loop_model(2, 3)
    session = Session(model)
    rng = np.random.default_rng(9)
    for n, stop in ((9, 100), (2**63 - 1, 7), (2**63 - 1, 12), (5, 100), (2**63 - 1, -4)):
        feeds = {"n": np.array(n, np.int64), "go": np.array(True),
                 "stop": np.array(stop, np.int64),
                 "x0": rng.standard_normal((2, 3)).astype(np.float32),
                 "t0": np.array(0, np.int64),
                 "a0": rng.standard_normal((2, 3)).astype(np.float32),
                 "y0": rng.standard_normal((2, 3)).astype(np.float32),
                 "w": rng.standard_normal(3).astype(np.float32),
                 "b": rng.standard_normal((2, 3)).astype(np.float32)}
        ours = session.run(feeds)
        for name, want, loop in zip(_STOPPING_OUTPUTS, onnxruntime_run(model, feeds),
                                    _numpy_loop(feeds), strict=True):
            assert ours[name].dtype == want.dtype and ours[name].shape == want.shape, name
            np.testing.assert_array_equal(ours[name], want, err_msg=name)
            np.testing.assert_array_equal(loop, want, err_msg=name)
    assert _ran_natively(session)
