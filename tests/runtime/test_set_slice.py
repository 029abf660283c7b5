"""paddle2onnx's slice assignment (`x[:, s:e] = v`: Shape, Slice, Range, Tile, Expand and
ScatterElements) as one step of a Loop body (lowp.runtime.set_slice): ONNX Runtime's values
wherever its conditions hold, the group's own steps (and errors) elsewhere."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.errors import LowpError
from lowp.runtime import Session
from lowp.runtime.control import SubPlan
from tests.runtime.ort_agreement import onnxruntime_run

F = TensorProto.FLOAT
I64 = TensorProto.INT64
vi = helper.make_tensor_value_info


def _constant(name: str, value: list[int] | int) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name],
                            value=numpy_helper.from_array(np.array(value, np.int64), name))


def _set_value_nodes(x: str, s: str, e: str, v: str, y: str, p: str, rank: int, axis: int,
                     reader: bool = False) -> list[onnx.NodeProto]:
    """paddle2onnx's nodes for `y = x; y[.., s:e, ..] = v` along `axis` (as slanet_table's
    decoder writes them); `reader`: one intermediate also read outside the group."""
    n = helper.make_node
    nodes = [
        _constant(p + "ax", [axis]), _constant(p + "one", [1]),
        _constant(p + "target", [-1 if k == axis else 1 for k in range(rank)]),
        _constant(p + "zero", [0]), _constant(p + "a", [axis]),
        _constant(p + "a1", [axis + 1]), _constant(p + "r", [rank]),
        n("Shape", [x], [p + "full"]),
        n("Gather", [p + "full", p + "ax"], [p + "d"], axis=0),
        n("Min", [p + "d", e], [p + "m"]),
        n("Slice", [x, s, p + "m", p + "ax", p + "one"], [p + "part"]),
        n("Shape", [p + "part"], [p + "shape"]),
        n("Unsqueeze", [v, p + "ax"], [p + "vu"]),
        n("Expand", [p + "vu", p + "shape"], [p + "u"]),
        n("Squeeze", [s], [p + "s0"]), n("Squeeze", [p + "m"], [p + "s1"]),
        n("Squeeze", [p + "one"], [p + "s2"]),
        n("Range", [p + "s0", p + "s1", p + "s2"], [p + "rng"]),
        n("Reshape", [p + "rng", p + "target"], [p + "col"]),
        n("Slice", [p + "shape", p + "zero", p + "a", p + "zero"], [p + "head"]),
        n("Slice", [p + "shape", p + "a1", p + "r", p + "zero"], [p + "tail"]),
        n("Concat", [p + "head", p + "one", p + "tail"], [p + "reps"], axis=0),
        n("Tile", [p + "col", p + "reps"], [p + "t"]),
        n("ScatterElements", [x, p + "t", p + "u"], [y], axis=axis)]
    if reader:
        nodes.append(n("Identity", [p + "m"], [p + "seen"]))
    return nodes


def _loop(shape: tuple[int, ...], axis: int, reader: bool = False) -> onnx.ModelProto:
    """A Loop of `n` iterations whose body assigns v * (i + 1) to x[.., s + i : e + i, ..]
    (`s`, `e` fed: int64 [1]) and hands x on."""
    rank = len(shape)
    vshape = list(shape[:axis] + shape[axis + 1:])
    n = helper.make_node
    body_nodes = [
        _constant("lone", [1]),
        n("Unsqueeze", ["i", "lzero"], ["iv"]),
        n("Add", ["iv", "s_out"], ["si"]), n("Add", ["iv", "e_out"], ["ei"]),
        n("Add", ["iv", "lone"], ["i1"]), n("Cast", ["i1"], ["i1f"], to=F),
        n("Mul", ["v_out", "i1f"], ["vi"]),
        *_set_value_nodes("x_in", "si", "ei", "vi", "x_out", "g.", rank, axis, reader),
        n("Identity", ["cond_in"], ["cond_out"]),
        _constant("lzero", [0])]
    if reader:
        body_nodes.append(n("Identity", ["g.seen"], ["seen_out"]))
    outputs = [vi("cond_out", TensorProto.BOOL, []), vi("x_out", F, list(shape))]
    if reader:
        outputs.append(vi("seen_out", I64, [1]))
    # (the body reads s, e and v from the enclosing graph, as paddle2onnx's does its
    # loop-invariant values)
    body_nodes = [n("Identity", ["s"], ["s_out"]), n("Identity", ["e"], ["e_out"]),
                  n("Identity", ["v"], ["v_out"]), *body_nodes]
    # (Constant nodes first: a graph's nodes are in topological order)
    body_nodes.sort(key=lambda node: node.op_type != "Constant")
    body = helper.make_graph(body_nodes, "body",
                             [vi("i", I64, []), vi("cond_in", TensorProto.BOOL, []),
                              vi("x_in", F, list(shape))], outputs)
    loop_out = ["xs"] + (["seen"] if reader else [])
    graph = helper.make_graph(
        [n("Loop", ["n", "", "x0"], loop_out, body=body)], "g",
        [vi("x0", F, list(shape)), vi("s", I64, [1]), vi("e", I64, [1]),
         vi("v", F, vshape), vi("n", I64, [])],
        [vi("xs", F, list(shape))] + ([vi("seen", I64, ["t", 1])] if reader else []))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _body(session: Session) -> SubPlan:
    (loop,) = [s for s in session.steps if s.op_type == "Loop"]
    (plan,) = [c.cell_contents for c in loop.fn.__closure__ or ()
               if isinstance(c.cell_contents, SubPlan)]
    return plan


def _agree(model: onnx.ModelProto, feeds: dict[str, np.ndarray], fused: bool) -> None:
    try:
        theirs: list[np.ndarray] | None = onnxruntime_run(model, feeds)
    except Exception:       # (an index out of range, shapes that differ: ONNX Runtime's error)
        theirs = None
    for replay in (True, False):
        session = Session(model, replay=replay)
        assert ("SetSlice" in [s.op_type for s in _body(session).steps]) == fused
        for _ in range(3):          # recorded twice, then replayed
            if theirs is None:
                with pytest.raises(LowpError):
                    session.run(feeds)
                continue
            ours = session.run(feeds)
            assert ours["xs"].dtype == theirs[0].dtype
            np.testing.assert_array_equal(ours["xs"], theirs[0])


@given(shape=st.sampled_from([(1, 7, 3), (2, 5, 4), (1, 3, 2, 2)]),
       axis=st.sampled_from([1, 2]),
       s=st.integers(-9, 9), width=st.integers(-3, 5), trips=st.integers(1, 7),
       seed=st.integers(0, 2**16))
@settings(max_examples=40, deadline=None)
def test_set_value_equals_onnxruntime(shape, axis, s, width, trips, seed):
    if axis >= len(shape) - 1:
        axis = 1
    rng = np.random.default_rng(seed)
    vshape = shape[:axis] + shape[axis + 1:]
    feeds = {"x0": rng.standard_normal(shape).astype(np.float32),
             "s": np.array([s], np.int64), "e": np.array([s + width], np.int64),
             "v": rng.standard_normal(vshape).astype(np.float32),
             "n": np.array(trips, np.int64)}
    _agree(_loop(shape, axis), feeds, fused=True)


def test_decoder_positions_equal_onnxruntime():
    # slanet_table's use: one position a step (s = i, e = i + 1), past the end at the last
    shape = (1, 6, 4)
    feeds = {"x0": np.zeros(shape, np.float32), "s": np.array([0], np.int64),
             "e": np.array([1], np.int64),
             "v": np.arange(4, dtype=np.float32).reshape(1, 4) - 1.5,
             "n": np.array(8, np.int64)}
    _agree(_loop(shape, 1), feeds, fused=True)


def test_intermediate_read_elsewhere_is_not_fused():
    shape = (1, 5, 3)
    feeds = {"x0": np.ones(shape, np.float32), "s": np.array([1], np.int64),
             "e": np.array([3], np.int64), "v": np.full((1, 3), 2.0, np.float32),
             "n": np.array(2, np.int64)}
    model = _loop(shape, 1, reader=True)
    theirs = onnxruntime_run(model, feeds)
    session = Session(model)
    assert "SetSlice" not in [s.op_type for s in _body(session).steps]
    for _ in range(3):
        ours = session.run(feeds)
        np.testing.assert_array_equal(ours["xs"], theirs[0])
        np.testing.assert_array_equal(ours["seen"], theirs[1])


def test_positions_past_the_end_after_replaying():
    # s = 1 + i, e = 2 + i on an axis of 3: the recorded iterations write one position,
    # the third none (s = m = 3), from the fourth s > m: the native call reports it and its
    # steps run the plain way (the group's own, which ONNX Runtime's values match)
    shape = (2, 3, 2)
    feeds = {"x0": np.zeros(shape, np.float32), "s": np.array([1], np.int64),
             "e": np.array([2], np.int64), "v": np.full((2, 2), 0.5, np.float32),
             "n": np.array(6, np.int64)}
    model = _loop(shape, 1)
    try:
        theirs: list[np.ndarray] | None = onnxruntime_run(model, feeds)
    except Exception:
        theirs = None
    session = Session(model)
    for _ in range(3):
        if theirs is None:
            with pytest.raises(LowpError):
                session.run(feeds)
        else:
            np.testing.assert_array_equal(session.run(feeds)["xs"], theirs[0])
    body = _body(session)
    (signature,) = list(body._replayer._ready)
    assert "SetSlice" not in [s.op_type for s in body._replayer.plain_steps(signature)]


@given(data_shape=st.sampled_from([(3, 4), (2, 3, 2)]), axis=st.integers(0, 2),
       grow=st.booleans(), low=st.integers(-6, 0), high=st.integers(1, 6),
       seed=st.integers(0, 2**16))
@settings(max_examples=40, deadline=None)
def test_scatter_elements_refuses_what_onnxruntime_refuses(data_shape, axis, grow, low, high,
                                                           seed):
    # numpy broadcast updates of another shape and read an index below -n from the end
    # once more; ONNX Runtime refuses both (an index outside [-n, n), shapes that differ)
    rng = np.random.default_rng(seed)
    axis %= len(data_shape)
    ishape = list(data_shape)
    ishape[axis] = 2
    ushape = list(ishape)
    if grow:
        ushape[axis] = 1
    model = helper.make_model(helper.make_graph(
        [helper.make_node("ScatterElements", ["x", "i", "u"], ["y"], axis=axis)], "g",
        [vi("x", F, list(data_shape)), vi("i", I64, ishape), vi("u", F, ushape)],
        [vi("y", F, list(data_shape))]), opset_imports=[helper.make_opsetid("", 13)])
    feeds = {"x": rng.standard_normal(data_shape).astype(np.float32),
             "i": rng.integers(low, high, ishape).astype(np.int64),
             "u": rng.standard_normal(ushape).astype(np.float32)}
    try:
        theirs: list[np.ndarray] | None = onnxruntime_run(model, feeds)
    except Exception:
        theirs = None
    for replay in (True, False):
        session = Session(model, replay=replay)
        if theirs is None:
            with pytest.raises(LowpError):
                session.run(feeds)
        else:
            np.testing.assert_array_equal(session.run(feeds)["y"], theirs[0])
