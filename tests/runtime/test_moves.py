"""Data-movement float steps (Slice, Transpose, Pad, Gather, Expand, Tile, ...) replay as
native copies by index maps (lowp.runtime.moves): bit for bit the plain runs' results, in
one Program with the float steps around them; a map that would change (a data-dependent
index) keeps the step plain."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from lowp.runtime import Session, moves
from lowp.runtime.backends import native_available
from lowp.runtime.plan import CF, CL, Step
from lowp.runtime.session import execute
from tests.runtime.test_program import _exercise, _signature

pytestmark = pytest.mark.skipif(not native_available(), reason="the native extension is not built")


def _const(inits: list[onnx.TensorProto], name: str, value: object, dtype: object) -> str:
    inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
    return name


def _moves_chain(dtype: int = TensorProto.FLOAT) -> bytes:
    """x (N, 4, 6, 5) through every data movement of MOVES, with a float Add between some
    (so that the moves and the float steps share Programs)."""
    inits: list[onnx.TensorProto] = []
    i64 = np.int64
    nodes = [
        helper.make_node("Slice", ["x", _const(inits, "s0", [1, 5], i64),
                                   _const(inits, "e0", [-1, 0], i64),
                                   _const(inits, "a0", [2, 3], i64),
                                   _const(inits, "k0", [2, -2], i64)], ["t0"]),
        helper.make_node("Transpose", ["t0"], ["t1"], perm=[0, 3, 1, 2]),
        helper.make_node("Pad", ["t1", _const(inits, "p2", [0, 0, 1, 1, 0, 0, 2, 1], i64)],
                         ["t2"], mode="reflect"),
        helper.make_node("Pad", ["t2", _const(inits, "p3", [0, 1, 0, 1, 0, 0, 1, 0], i64),
                                 _const(inits, "v3", 2.5 if dtype == TensorProto.FLOAT
                                        else 3, np.float32 if dtype == TensorProto.FLOAT
                                        else np.int32)], ["t3"], mode="constant"),
        helper.make_node("Pad", ["t3", _const(inits, "p4", [0, 0, 0, 1, 0, 0, 0, 1], i64)],
                         ["t4"], mode="edge"),
        helper.make_node("Gather", ["t4", _const(inits, "g5", [[2, 0], [-1, 1]], i64)],
                         ["t5"], axis=2),
        helper.make_node("Unsqueeze", ["t5", _const(inits, "u6", [1], i64)], ["t6"]),
        helper.make_node("Expand", ["t6", _const(inits, "x7", [1, 2, 1, 1, 1, 1], i64)],
                         ["t7"]),
        helper.make_node("Tile", ["t7", _const(inits, "r8", [1, 1, 1, 2, 1, 1], i64)],
                         ["t8"]),
        helper.make_node("Flatten", ["t8"], ["y"], axis=2),
    ]
    if dtype == TensorProto.FLOAT:
        nodes.insert(2, helper.make_node("Add", ["t1", _const(inits, "c", 0.5, np.float32)],
                                         ["t1b"]))
        nodes[3].input[0] = "t1b"
    graph = helper.make_graph(
        nodes, "moves", [helper.make_tensor_value_info("x", dtype, ["N", 4, 6, 5])],
        [helper.make_tensor_value_info("y", dtype, ["A", "B"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [TensorProto.FLOAT, TensorProto.INT32])
def test_moves_replay_as_plain_runs_in_one_program(dtype, threads):
    model = _moves_chain(dtype)
    fast = Session(model, threads=threads)
    plain = Session(model, threads=threads, replay=False)

    def make(seed: int, batch: int | None) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((batch or 2, 4, 6, 5)) * 100
        if dtype == TensorProto.FLOAT:
            x = x.astype(np.float32)
            x.reshape(-1)[:3] = [np.nan, -0.0, np.inf]
            return {"x": x}
        return {"x": x.astype(np.int32)}

    _exercise(fast, plain, make)
    assert fast._replayer is not None
    sig = _signature(make(0, None))
    assert fast._replayer.replayed_steps(sig) == len(fast.steps)
    assert fast._replayer.programs(sig) == [len(fast.steps)]


def test_gather_of_data_dependent_indices_stays_plain():
    """Indices computed from the input are not fixed values: the Gather runs plain (and
    gives the plain result) even when two runs happened to read the same indices."""
    nodes = [helper.make_node("ArgMax", ["x"], ["i"], axis=1, keepdims=0),
             helper.make_node("Gather", ["x", "i"], ["y"], axis=0)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [6, 6])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    fast, plain = Session(model.SerializeToString()), Session(model.SerializeToString(),
                                                                replay=False)
    x = np.eye(6, dtype=np.float32)
    for k in range(5):
        feeds = {"x": np.roll(x, k if k >= 2 else 0, axis=1) * (k + 1)}
        np.testing.assert_array_equal(fast.run(feeds)["y"], plain.run(feeds)["y"])


def test_index_map_of_a_channels_last_input_includes_the_conversion():
    """A step shown a channels-last tensor sees it channels-first: the map includes that
    conversion, and copying by it gives the plain result."""
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)     # stored (N,H,W,C)
    step = Step("s", "Transpose", "float", ["x"], ["y"],
                lambda v, *, layout: (np.transpose(v, (0, 2, 3, 1)),))
    env, layout = {"x": x}, {"x": CL}
    assert moves.applies(step, env, frozenset())
    made = moves.index_map(step, env, layout, execute)
    assert made is not None
    mapped, fill, y, y_layout = made
    want = np.transpose(np.moveaxis(x, -1, 1), (0, 2, 3, 1))
    assert y_layout is CF and fill.size == 4     # no fill value: one placeholder element
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(x.reshape(-1)[mapped].reshape(want.shape), want)


@pytest.mark.parametrize("fill", [-np.inf, np.inf, np.nan])
def test_pad_with_a_non_finite_fill_maps_without_a_warning(fill):
    """The map is learnt by running the step on int64 element indices, where a Pad's float
    fill of -inf (SwiftF0's pitch-bin padding), inf or NaN is no integer: that run warned
    ("invalid value encountered in cast"), an internal error where warnings are errors. The
    map's fill element comes from the float run, so the result is the plain one."""
    inits: list[onnx.TensorProto] = []
    node = helper.make_node("Pad", ["x", _const(inits, "p", [0, 2, 0, 1], np.int64),
                                    _const(inits, "v", fill, np.float32)], ["y"])
    graph = helper.make_graph(
        [node], "pad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    x = np.arange(10, dtype=np.float32).reshape(2, 5)
    want = np.pad(x, [(0, 0), (2, 1)], constant_values=fill)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for threads in (1, 2):
            s = Session(model.SerializeToString(), threads=threads)
            for _ in range(2):      # the second run replays the map
                got = s.run({"x": x})["y"]
                assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("pads", [[0, 0, 0, 2], [0, 3, 0, 0], [0, 5, 0, 7]])
def test_reflect_pad_beyond_the_axis_is_the_onnx_reference(pads):
    """A reflect Pad of more than the axis length minus one: ONNX Runtime refuses it ("Pad
    reflect: post-pad (2) exceeds maximum allowed (1)"); lowp runs it as the ONNX
    reference evaluator does, reflecting again at each end (docs/operators.md (O359))."""
    inits: list[onnx.TensorProto] = []
    node = helper.make_node("Pad", ["x", _const(inits, "p", pads, np.int64)], ["y"],
                            mode="reflect")
    graph = helper.make_graph(
        [node], "pad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    want = ReferenceEvaluator(model).run(None, {"x": x})[0]
    for threads in (1, 2):
        s = Session(model.SerializeToString(), threads=threads)
        for _ in range(2):      # the second run replays the map
            assert s.run({"x": x})["y"].tobytes() == want.tobytes()


def test_steps_computing_values_are_not_maps():
    """A step whose result is not made of input elements gives no map."""
    step = Step("s", "Slice", "float", ["x"], ["y"], lambda v, *, layout: (v[:2] * 2,))
    env = {"x": np.arange(1, 6, dtype=np.float32)}
    assert moves.applies(step, env, frozenset())
    assert moves.index_map(step, env, {}, execute) is None


@pytest.mark.parametrize("to", [TensorProto.FLOAT, TensorProto.DOUBLE])
def test_cast_to_the_same_type_is_handed_on(to):
    """A Cast to the input's type is the input (replayed by handing it on); to another type
    it converts and runs the plain way; both give the plain results. Load removes a
    same-type Cast unless its output is a graph output (lowp.runtime.ort_cast_elimination),
    so `c` is one here: it stays, the Cast to float after it goes."""
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Cast", ["r"], ["c"], to=to),
             helper.make_node("Cast", ["c"], ["c2"], to=TensorProto.FLOAT),
             helper.make_node("Sigmoid", ["c2"], ["y"])]
    dtype = TensorProto.FLOAT if to == TensorProto.FLOAT else TensorProto.DOUBLE
    graph = helper.make_graph(
        nodes, "cast", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4]),
         helper.make_tensor_value_info("c", dtype, [3, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    fast = Session(model.SerializeToString())
    plain = Session(model.SerializeToString(), replay=False)
    steps = [n.op_type for n in fast.model.graph.node]
    assert steps == (["Relu", "Cast", "Sigmoid"] if to == TensorProto.FLOAT
                     else ["Relu", "Cast", "Cast", "Sigmoid"])
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.standard_normal((3, 4)).astype(np.float32)
        got, want = fast.run({"x": x}), plain.run({"x": x})
        for name in ("y", "c"):
            np.testing.assert_array_equal(got[name], want[name])
    assert fast._replayer is not None
    replayed = fast._replayer.replayed_steps((("x", (3, 4), "<f4"),))
    assert replayed == (3 if to == TensorProto.FLOAT else 2)
