"""A Loop body replays its native calls from the third iteration on (lowp.runtime.control),
with the values it hands from one iteration to the next copied out of the body's buffers:
the results equal a plain Session's (`replay=False`) and ONNX Runtime's bit for bit, run
after run, including carried values that swap places, scan outputs of every iteration, and
carried weights the body hands on unchanged (read as outer-scope values, packed once)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session, control, native_float
from lowp.runtime.fastops import Arena, subgraph_buffers_reused
from tests.runtime.ort_agreement import onnxruntime_run

F = TensorProto.FLOAT


def _vi(name: str, elem: int, shape: list[object]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def _lstm_loop_model(batch: int, steps: int, k: int, h: int) -> onnx.ModelProto:
    """tf2onnx's Keras LSTM as a Loop (chars2vec_en300's form): the weights W (k x 4h), R
    (h x 4h) and the bias loop-carried and handed on unchanged, the step's input gathered
    from an outer-scope tensor by the iteration number, h and c carried, h stacked."""
    body = helper.make_graph(
        [helper.make_node("MatMul", ["h_in", "r_in"], ["hr"]),
         helper.make_node("Add", ["t_in", "one"], ["t_out"]),
         helper.make_node("Gather", ["xs", "t_in"], ["x_t"]),
         helper.make_node("MatMul", ["x_t", "w_in"], ["xw"]),
         helper.make_node("Add", ["xw", "hr"], ["s0"]),
         helper.make_node("Add", ["s0", "bias_in"], ["s1"]),
         helper.make_node("Split", ["s1"], ["gi", "gf", "gc", "go"], axis=1),
         helper.make_node("Sigmoid", ["gi"], ["i"]),
         helper.make_node("Sigmoid", ["gf"], ["f"]),
         helper.make_node("Tanh", ["gc"], ["g"]),
         helper.make_node("Sigmoid", ["go"], ["o"]),
         helper.make_node("Mul", ["f", "c_in"], ["fc"]),
         helper.make_node("Mul", ["i", "g"], ["ig"]),
         helper.make_node("Add", ["fc", "ig"], ["c_out"]),
         helper.make_node("Tanh", ["c_out"], ["tc"]),
         helper.make_node("Mul", ["o", "tc"], ["h_out"]),
         helper.make_node("Identity", ["h_out"], ["h_scan"]),
         helper.make_node("Less", ["t_out", "n_in"], ["cond_out"])],
        "body",
        [_vi("iter", TensorProto.INT64, []), _vi("cond_in", TensorProto.BOOL, []),
         _vi("t_in", TensorProto.INT64, []), _vi("h_in", F, [batch, h]),
         _vi("c_in", F, [batch, h]), _vi("n_in", TensorProto.INT64, []),
         _vi("w_in", F, [k, 4 * h]), _vi("r_in", F, [h, 4 * h]), _vi("bias_in", F, [4 * h])],
        [_vi("cond_out", TensorProto.BOOL, []), _vi("t_out", TensorProto.INT64, []),
         _vi("h_out", F, [batch, h]), _vi("c_out", F, [batch, h]),
         _vi("n_in", TensorProto.INT64, []), _vi("w_in", F, [k, 4 * h]),
         _vi("r_in", F, [h, 4 * h]), _vi("bias_in", F, [4 * h]), _vi("h_scan", F, [batch, h])],
        [numpy_helper.from_array(np.int64(1), "one")])
    rng = np.random.default_rng(7)
    consts = [numpy_helper.from_array((rng.standard_normal(s) * 0.3).astype(np.float32), n)
              for n, s in (("W", (k, 4 * h)), ("R", (h, 4 * h)), ("B", (4 * h,)))]
    consts += [numpy_helper.from_array(np.int64(steps), "n"),
               numpy_helper.from_array(np.int64(0), "t0"),
               numpy_helper.from_array(np.array(True), "go_on"),
               numpy_helper.from_array(np.zeros((batch, h), np.float32), "zeros")]
    graph = helper.make_graph(
        [helper.make_node("Transpose", ["x"], ["xs"], perm=[1, 0, 2]),
         helper.make_node("Loop", ["n", "go_on", "t0", "zeros", "zeros", "n", "W", "R", "B"],
                          ["t_end", "h_end", "c_end", "n_end", "w_end", "r_end", "b_end",
                           "hs"], body=body),
         helper.make_node("Add", ["h_end", "c_end"], ["y"])],
        "g", [_vi("x", F, [batch, steps, k])],
        [_vi("y", F, [batch, h]), _vi("hs", F, [steps, batch, h]),
         _vi("w_end", F, [k, 4 * h])], consts)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])


def _body_replayer(session: Session) -> object:
    (loop,) = [s for s in session.steps if s.op_type == "Loop"]
    cells = [c.cell_contents for c in loop.fn.__closure__ or ()]
    (body,) = [c for c in cells if isinstance(c, control.SubPlan)]
    return body._replayer


@pytest.mark.parametrize("threads", [1, 2])
@given(batch=st.sampled_from([2, 3, 8]), steps=st.integers(1, 6),
       k=st.sampled_from([5, 59, 100]), h=st.sampled_from([4, 33, 75]),
       seed=st.integers(0, 2**16))
@settings(max_examples=12, deadline=None)
def test_replayed_lstm_loop_equals_plain_and_onnxruntime(threads, batch, steps, k, h, seed):
    model = _lstm_loop_model(batch, steps, k, h)
    replayed = Session(model, threads=threads)
    plain = Session(model, threads=threads, replay=False)
    rng = np.random.default_rng(seed)
    for _ in range(4):
        x = rng.standard_normal((batch, steps, k)).astype(np.float32)
        ours, reference = replayed.run({"x": x}), plain.run({"x": x})
        theirs = onnxruntime_run(model, {"x": x})
        for name, want in zip(("y", "hs", "w_end"), theirs, strict=True):
            np.testing.assert_array_equal(ours[name].view(np.uint32), want.view(np.uint32))
            np.testing.assert_array_equal(reference[name], want)
    assert _body_replayer(plain) is None
    if steps >= 3 and native_float.kernels() != "none":
        replayer = _body_replayer(replayed)
        assert any(replayer.replayed_steps(sig) >= 10 for sig in replayer._ready)


@pytest.mark.parametrize("batch, k, h", [(1, 5, 4), (2, 130, 33)])
def test_lstm_loop_one_row_or_deep_input_equals_onnxruntime(batch, k, h):
    model = _lstm_loop_model(batch, 2, k, h)
    x = np.random.default_rng(0).standard_normal((batch, 2, k)).astype(np.float32)
    ours = Session(model, replay=False).run({"x": x})
    np.testing.assert_array_equal(ours["y"], onnxruntime_run(model, {"x": x})[0])


def test_carried_values_that_swap_places_and_scan_every_iteration():
    """(a, b) -> (b + 1, a) each iteration, both stacked: each iteration's values are its
    own arrays, never a buffer the next iteration writes into."""
    body = helper.make_graph(
        [helper.make_node("Add", ["b_in", "one"], ["a_out"]),
         helper.make_node("Identity", ["a_in"], ["b_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Mul", ["a_out", "two"], ["scan_a"]),
         helper.make_node("Identity", ["b_out"], ["scan_b"])],
        "body",
        [_vi("i", TensorProto.INT64, []), _vi("cond_in", TensorProto.BOOL, []),
         _vi("a_in", F, [2, 3]), _vi("b_in", F, [2, 3])],
        [_vi("cond_out", TensorProto.BOOL, []), _vi("a_out", F, [2, 3]),
         _vi("b_out", F, [2, 3]), _vi("scan_a", F, [2, 3]), _vi("scan_b", F, [2, 3])],
        [numpy_helper.from_array(np.float32(1), "one"),
         numpy_helper.from_array(np.float32(2), "two")])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["n", "", "a", "b"], ["a_end", "b_end", "sa", "sb"],
                          body=body)], "g",
        [_vi("n", TensorProto.INT64, []), _vi("a", F, [2, 3]), _vi("b", F, [2, 3])],
        [_vi("a_end", F, [2, 3]), _vi("b_end", F, [2, 3]), _vi("sa", F, ["n", 2, 3]),
         _vi("sb", F, ["n", 2, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = Session(model)
    rng = np.random.default_rng(3)
    for n in (6, 6, 7, 1, 6):
        feeds = {"n": np.array(n, np.int64),
                 "a": rng.standard_normal((2, 3)).astype(np.float32),
                 "b": rng.standard_normal((2, 3)).astype(np.float32)}
        ours = session.run(feeds)
        theirs = onnxruntime_run(model, feeds)
        for name, want in zip(("a_end", "b_end", "sa", "sb"), theirs, strict=True):
            np.testing.assert_array_equal(ours[name], want)


def test_arenas_of_subgraphs_reuse_only_inside_the_block():
    arena = Arena(reuse=False)
    first, second = arena.get((2, 2), np.dtype(np.float32)), arena.get((2, 2),
                                                                         np.dtype(np.float32))
    assert first is not second
    with subgraph_buffers_reused():
        inside = arena.get((2, 2), np.dtype(np.float32))
        assert arena.get((2, 2), np.dtype(np.float32)) is inside
        assert arena.get((3,), np.dtype(np.float32)) is not inside
    assert arena.get((3,), np.dtype(np.float32)) is not arena.get((3,), np.dtype(np.float32))


def test_nested_loops_with_a_sequence_carried_inside_equal_onnxruntime():
    """An outer Loop (replayed) whose body runs an inner Loop carrying a sequence, so run
    the plain way: its arenas must not reuse buffers, as the sequence holds the first
    Split part of h R of every inner iteration (h = tanh of the second part)."""
    inner = helper.make_graph(
        [helper.make_node("MatMul", ["h_in", "R"], ["hr"]),
         helper.make_node("Split", ["hr"], ["part", "rest"], axis=1),
         helper.make_node("Tanh", ["rest"], ["h_out"]),
         helper.make_node("SequenceInsert", ["seq_in", "part"], ["seq_out"]),
         helper.make_node("Identity", ["c_in"], ["c_out"])],
        "inner",
        [_vi("j", TensorProto.INT64, []), _vi("c_in", TensorProto.BOOL, []),
         _vi("h_in", F, [3, 5]),
         helper.make_tensor_sequence_value_info("seq_in", F, [3, 5])],
        [_vi("c_out", TensorProto.BOOL, []), _vi("h_out", F, [3, 5]),
         helper.make_tensor_sequence_value_info("seq_out", F, [3, 5])])
    outer = helper.make_graph(
        [helper.make_node("SequenceEmpty", [], ["empty"], dtype=TensorProto.FLOAT),
         helper.make_node("Loop", ["three", "", "h_o", "empty"], ["h_next", "seq"],
                          body=inner),
         helper.make_node("ConcatFromSequence", ["seq"], ["stacked"], axis=0),
         helper.make_node("ReduceSum", ["stacked"], ["total"], keepdims=0),
         helper.make_node("Identity", ["c_o"], ["c_o_out"])],
        "outer",
        [_vi("i", TensorProto.INT64, []), _vi("c_o", TensorProto.BOOL, []),
         _vi("h_o", F, [3, 5])],
        [_vi("c_o_out", TensorProto.BOOL, []), _vi("h_next", F, [3, 5]),
         _vi("total", F, [])])
    rng = np.random.default_rng(11)
    graph = helper.make_graph(
        [helper.make_node("Loop", ["n", "", "h0"], ["h_end", "totals"], body=outer)], "g",
        [_vi("n", TensorProto.INT64, []), _vi("h0", F, [3, 5])],
        [_vi("h_end", F, [3, 5]), _vi("totals", F, ["n"])],
        [numpy_helper.from_array((rng.standard_normal((5, 10)) * 0.7).astype(np.float32), "R"),
         numpy_helper.from_array(np.int64(3), "three")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = Session(model)
    for n in (5, 5, 6):
        feeds = {"n": np.array(n, np.int64),
                 "h0": rng.standard_normal((3, 5)).astype(np.float32)}
        ours = session.run(feeds)
        theirs = onnxruntime_run(model, feeds)
        np.testing.assert_array_equal(ours["h_end"], theirs[0])
        np.testing.assert_array_equal(ours["totals"], theirs[1])
