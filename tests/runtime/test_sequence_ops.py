"""The sequence operators: each against onnx's reference evaluator, and sequences inside
graphs on lowp's engine (both backends, replayed runs, channels-last neighbours, Loop)
against ONNX Runtime."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from lowp.errors import LowpError, NodeError, UnsupportedOpError
from lowp.runtime import Session
from lowp.runtime.backends import native_available
from lowp.runtime.float_registry import FLOAT_OPS, TensorSequence
from lowp.runtime.sequence_ops import SEQUENCE_OPS

BACKENDS = ["reference"] + (["native"] if native_available() else [])
rng = np.random.default_rng(5)


def f32(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def i64(v: int | list[int]) -> np.ndarray:
    return np.array(v, np.int64)


def seq(*tensors: np.ndarray, dtype: Any = np.float32) -> TensorSequence:
    return TensorSequence(np.dtype(dtype), tuple(tensors))


Value = np.ndarray | TensorSequence | None


def reference(op: str, inputs: list[Value], **attrs: Any) -> Any:
    """The node run by onnx.reference (sequences as lists)."""
    names = ["" if v is None else f"in{k}" for k, v in enumerate(inputs)]
    while names and not names[-1]:
        names.pop()
    infos, feeds = [], {}
    for name, v in zip(names, inputs, strict=False):
        if not name:
            continue
        if isinstance(v, TensorSequence):
            elem = helper.np_dtype_to_tensor_dtype(v.dtype)
            infos.append(helper.make_tensor_sequence_value_info(name, elem, None))
            feeds[name] = list(v.tensors)
        else:
            assert v is not None
            infos.append(helper.make_tensor_value_info(
                name, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape))
            feeds[name] = v
    node = helper.make_node(op, names, ["out"], **attrs)
    graph = helper.make_graph([node], "g", infos, [helper.make_empty_tensor_value_info("out")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    return ReferenceEvaluator(model).run(None, feeds)[0]


def lowp_op(op: str, inputs: list[Value], **attrs: Any) -> Any:
    """The node run by lowp's registered operator, called as the engine calls it."""
    while inputs and inputs[-1] is None:
        inputs = inputs[:-1]
    return FLOAT_OPS[op](*inputs, **attrs, opset=18, num_outputs=1)


def assert_same(got: Any, expected: Any) -> None:
    if isinstance(expected, list):
        assert isinstance(got, TensorSequence)
        assert len(got) == len(expected)
        for g, e in zip(got, expected, strict=True):
            assert g.dtype == e.dtype
            np.testing.assert_array_equal(g, e)
        return
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def check(op: str, inputs: list[Value], **attrs: Any) -> None:
    assert_same(lowp_op(op, inputs, **attrs), reference(op, inputs, **attrs))


THREE = seq(f32(2, 3), f32(1, 3), f32(4, 3))


def test_every_sequence_op_is_registered() -> None:
    assert SEQUENCE_OPS <= set(FLOAT_OPS)
    assert len(SEQUENCE_OPS) == 8


def test_sequence_empty() -> None:
    empty = lowp_op("SequenceEmpty", [])
    assert isinstance(empty, TensorSequence) and len(empty) == 0
    assert empty.dtype == np.float32                    # the spec's default
    assert lowp_op("SequenceEmpty", [], dtype=TensorProto.INT64).dtype == np.int64
    assert_same(empty, reference("SequenceEmpty", []))


def test_sequence_construct() -> None:
    check("SequenceConstruct", [f32(2, 3), f32(5), f32()])
    check("SequenceConstruct", [i64([1, 2])])
    with pytest.raises(NodeError, match="int64 tensor cannot join a sequence of float32"):
        lowp_op("SequenceConstruct", [f32(2), i64([1])])


@pytest.mark.parametrize("position", [None, -3, -2, -1, 0, 1, 2])
def test_sequence_insert(position: int | None) -> None:
    check("SequenceInsert", [THREE, f32(3, 3), None if position is None else i64(position)])


def test_sequence_insert_at_n_appends_and_into_an_empty_sequence() -> None:
    # position n appends (the spec's accepted range is [-n, n]); onnx's reference computes
    # (position + n) % n, which puts it in front, and fails on an empty sequence
    t = f32(3, 3)
    got = lowp_op("SequenceInsert", [THREE, t, i64(3)])
    assert [x is y for x, y in zip(got, (*THREE.tensors, t), strict=True)] == [True] * 4
    empty = seq()
    for position in (None, i64(0)):
        assert lowp_op("SequenceInsert", [empty, t, position]).tensors == (t,)
    assert_same(lowp_op("SequenceInsert", [empty, t]), reference("SequenceInsert", [empty, t]))


@pytest.mark.parametrize("position", [4, -4])
def test_sequence_insert_out_of_range(position: int) -> None:
    with pytest.raises(NodeError, match=rf"position {position} is out of range \[-3, 3\]"):
        lowp_op("SequenceInsert", [THREE, f32(3), i64(position)])
    with pytest.raises(NodeError, match=r"out of range \[0, 0\]"):
        lowp_op("SequenceInsert", [seq(), f32(3), i64(1 if position > 0 else -1)])


def test_sequence_insert_refuses_another_element_type() -> None:
    with pytest.raises(NodeError, match="int64 tensor cannot join"):
        lowp_op("SequenceInsert", [THREE, i64([1, 2, 3])])


def test_position_is_one_integer() -> None:
    with pytest.raises(NodeError, match="position must be one integer"):
        lowp_op("SequenceAt", [THREE, i64([0, 1])])
    with pytest.raises(NodeError, match="position must be one integer"):
        lowp_op("SequenceAt", [THREE, np.float32(0.0)[None]])


@pytest.mark.parametrize("position", [-3, -2, -1, 0, 1, 2])
def test_sequence_at(position: int) -> None:
    check("SequenceAt", [THREE, i64(position)])
    check("SequenceAt", [THREE, np.array(position, np.int32)])


@pytest.mark.parametrize(("s", "position", "span"), [
    (THREE, 3, "[-3, 2]"), (THREE, -4, "[-3, 2]"), (seq(), 0, "[0, -1]")])
def test_sequence_at_out_of_range(s: TensorSequence, position: int, span: str) -> None:
    with pytest.raises(NodeError, match=rf"position {position} is out of range \{span[:-1]}\]"):
        lowp_op("SequenceAt", [s, i64(position)])


@pytest.mark.parametrize("position", [None, -3, -2, -1, 0, 1, 2])
def test_sequence_erase(position: int | None) -> None:
    check("SequenceErase", [THREE, None if position is None else i64(position)])


def test_sequence_erase_errors() -> None:
    with pytest.raises(NodeError, match="empty sequence"):
        lowp_op("SequenceErase", [seq()])
    with pytest.raises(NodeError, match="out of range"):
        lowp_op("SequenceErase", [THREE, i64(3)])
    one = lowp_op("SequenceErase", [seq(f32(2))])
    assert len(one) == 0 and one.dtype == np.float32


@pytest.mark.parametrize("s", [seq(), THREE, seq(i64(1), dtype=np.int64)])
def test_sequence_length(s: TensorSequence) -> None:
    check("SequenceLength", [s])


def test_sequence_ops_refuse_a_tensor_for_a_sequence() -> None:
    with pytest.raises(NodeError, match="not a sequence"):
        lowp_op("SequenceLength", [f32(2)])


STACKABLE = seq(f32(2, 3), f32(2, 3), f32(2, 3))


@pytest.mark.parametrize("axis", [-2, -1, 0, 1])
def test_concat_from_sequence(axis: int) -> None:
    check("ConcatFromSequence", [THREE if axis in (0, -2) else seq(f32(3, 1), f32(3, 4))],
          axis=axis)


@pytest.mark.parametrize("axis", [-3, -2, -1, 0, 1, 2])
def test_concat_from_sequence_new_axis(axis: int) -> None:
    check("ConcatFromSequence", [STACKABLE], axis=axis, new_axis=1)


def test_concat_from_sequence_errors() -> None:
    with pytest.raises(NodeError, match="empty sequence"):
        lowp_op("ConcatFromSequence", [seq()], axis=0)
    with pytest.raises(NodeError, match="axis 2 is out of range"):
        lowp_op("ConcatFromSequence", [STACKABLE], axis=2)
    with pytest.raises(NodeError, match="axis -4 is out of range for stacking"):
        lowp_op("ConcatFromSequence", [STACKABLE], axis=-4, new_axis=1)
    with pytest.raises(NodeError, match="differ outside axis 1"):
        lowp_op("ConcatFromSequence", [THREE], axis=1)
    with pytest.raises(NodeError, match="cannot stack"):
        lowp_op("ConcatFromSequence", [THREE], axis=0, new_axis=1)
    with pytest.raises(NodeError, match="different ranks"):
        lowp_op("ConcatFromSequence", [seq(f32(2, 3), f32(2, 3, 1))], axis=0)


@pytest.mark.parametrize(("axis", "keepdims"), [(0, 1), (1, 1), (-1, 1), (0, 0), (-2, 0),
                                                (2, 0)])
def test_split_to_sequence_in_pieces_of_one(axis: int, keepdims: int) -> None:
    check("SplitToSequence", [f32(3, 4, 2)], axis=axis, keepdims=keepdims)


@pytest.mark.parametrize("split", [1, 2, 3, 5, 7])
def test_split_to_sequence_scalar_split(split: int) -> None:
    # chunks of `split`, the last one smaller; keepdims is ignored with a split
    check("SplitToSequence", [f32(2, 5), i64(split)], axis=1, keepdims=0)
    check("SplitToSequence", [f32(5, 2), np.array(split, np.int32)])


@pytest.mark.parametrize("split", [[5], [1, 4], [2, 0, 3], [1, 1, 1, 1, 1]])
def test_split_to_sequence_lengths(split: list[int]) -> None:
    check("SplitToSequence", [f32(5, 2), i64(split)], keepdims=0)
    check("SplitToSequence", [f32(2, 5), i64(split)], axis=-1)


def test_split_to_sequence_of_an_empty_axis() -> None:
    got = lowp_op("SplitToSequence", [np.zeros((0, 3), np.float16)])
    assert len(got) == 0 and got.dtype == np.float16


def test_split_to_sequence_errors() -> None:
    x = f32(5, 2)
    with pytest.raises(NodeError, match="summing to the length 5"):
        lowp_op("SplitToSequence", [x, i64([2, 2])])
    with pytest.raises(NodeError, match="non-negative"):
        lowp_op("SplitToSequence", [x, i64([6, -1])])
    with pytest.raises(NodeError, match="must be positive"):
        lowp_op("SplitToSequence", [x, i64(0)])
    with pytest.raises(NodeError, match="scalar or 1-D"):
        lowp_op("SplitToSequence", [x, i64([[5]])])
    with pytest.raises(NodeError, match="axis 2 is out of range"):
        lowp_op("SplitToSequence", [x], axis=2)


# --- sequences inside graphs on lowp's engine -------------------------------------------


def _model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto],
           outputs: list[onnx.ValueInfoProto], inits: list[onnx.TensorProto] = (),
           opset: int = 17) -> onnx.ModelProto:
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, list(inits)),
                              opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model, full_check=True)
    return model


def _ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds), strict=True))


def _conv_sequence_conv() -> onnx.ModelProto:
    """Conv -> SplitToSequence(axis=1) -> erase, insert, at, length -> ConcatFromSequence
    -> Conv: the sequence sits between two convolutions (channels-last on lowp's engine
    when quantized)."""
    t = TensorProto.FLOAT
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("SplitToSequence", ["r1"], ["s1"], axis=1),
        helper.make_node("SequenceErase", ["s1", "minus_two"], ["s2"]),
        helper.make_node("SequenceAt", ["s1", "minus_two"], ["picked"]),
        helper.make_node("SequenceInsert", ["s2", "picked", "zero"], ["s3"]),
        helper.make_node("SequenceLength", ["s3"], ["n"]),
        helper.make_node("ConcatFromSequence", ["s3"], ["cat"], axis=1),
        helper.make_node("Conv", ["cat", "w2"], ["y"]),
    ]
    inits = [numpy_helper.from_array(f32(4, 3, 3, 3), "w1"),
             numpy_helper.from_array(f32(2, 4, 1, 1), "w2"),
             numpy_helper.from_array(i64(-2), "minus_two"),
             numpy_helper.from_array(i64(0), "zero")]
    return _model(nodes, [helper.make_tensor_value_info("x", t, [1, 3, 6, 6])],
                  [helper.make_tensor_value_info("y", t, [1, 2, 6, 6]),
                   helper.make_tensor_value_info("n", TensorProto.INT64, []),
                   helper.make_tensor_value_info("picked", t, [1, 1, 6, 6])], inits)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float_graph_with_sequences_equals_onnxruntime(backend: str) -> None:
    model = _conv_sequence_conv()
    session = Session(model, backend=backend)
    for _ in range(4):                  # the third run on is replayed
        x = f32(1, 3, 6, 6)
        got, expected = session.run({"x": x}), _ort(model, {"x": x})
        assert int(got["n"]) == 4 and got["n"].dtype == np.int64
        np.testing.assert_array_equal(got["picked"], expected["picked"])
        np.testing.assert_allclose(got["y"], expected["y"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_quantized_graph_with_sequences_equals_onnxruntime(backend: str) -> None:
    """Quantized convolutions run channels-last on lowp's engine: what goes into the
    sequence is converted to ONNX's layout first."""
    import lowp

    model = _conv_sequence_conv()
    qdq = lowp.quantize_model(model, {"x": f32(8, 3, 6, 6)})
    session = Session(qdq, backend=backend)
    assert any(s.kind == "int" and s.op_type == "Conv" for s in session.steps)
    for _ in range(4):
        x = f32(1, 3, 6, 6)
        got, expected = session.run({"x": x}), _ort(qdq, {"x": x})
        for name in ("y", "n", "picked"):
            np.testing.assert_array_equal(got[name], expected[name])


@pytest.mark.parametrize("backend", BACKENDS)
def test_positions_and_splits_from_the_feeds_are_read_on_every_run(backend: str) -> None:
    """Which tensor a position picks (and how a split cuts) sets shapes: nothing after them
    is taken as fixed by the feed shapes when a replayed run repeats a signature."""
    t = TensorProto.INT64
    model = _model(
        [helper.make_node("SplitToSequence", ["x", "split"], ["s"]),
         helper.make_node("SequenceAt", ["s", "pos"], ["piece"]),
         helper.make_node("Shape", ["piece"], ["shape"]),
         helper.make_node("Cast", ["shape"], ["y"], to=TensorProto.FLOAT)],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6, 2]),
         helper.make_tensor_value_info("split", t, [2]),
         helper.make_tensor_value_info("pos", t, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    session = Session(model, backend=backend)
    x = f32(6, 2)
    for first, position in ((1, 0), (1, 0), (2, 0), (3, -1), (5, 1), (4, 0)):
        feeds = {"x": x, "split": i64([first, 6 - first]), "pos": i64(position)}
        expected = [first if position == 0 else 6 - first, 2]
        np.testing.assert_array_equal(session.run(feeds)["y"], expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_loop_carries_a_sequence(backend: str) -> None:
    f = TensorProto.FLOAT
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Cast", ["i"], ["fi"], to=f),
         helper.make_node("Mul", ["x", "fi"], ["scaled"]),
         helper.make_node("SequenceInsert", ["acc_in", "scaled"], ["acc_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_sequence_value_info("acc_in", f, None)],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_sequence_value_info("acc_out", f, None)])
    model = _model(
        [helper.make_node("SequenceEmpty", [], ["empty"]),
         helper.make_node("Loop", ["n", "", "empty"], ["all"], body=body),
         helper.make_node("ConcatFromSequence", ["all"], ["y"], axis=0, new_axis=1)],
        [helper.make_tensor_value_info("n", TensorProto.INT64, []),
         helper.make_tensor_value_info("x", f, [2, 3])],
        [helper.make_tensor_value_info("y", f, [None, 2, 3])])
    feeds = {"n": i64(3), "x": f32(2, 3)}
    got = Session(model, backend=backend).run(feeds)["y"]
    np.testing.assert_array_equal(got, _ort(model, feeds)["y"])
    assert got.shape == (3, 2, 3)


def test_a_sequence_graph_output_is_refused_naming_its_producer() -> None:
    model = _model([helper.make_node("SplitToSequence", ["x"], ["s"], name="splitter")],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                   [helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, None)])
    with pytest.raises(UnsupportedOpError, match="splitter.*output 's' is a sequence") as e:
        Session(model, backend="reference")
    assert e.value.op_type == "SplitToSequence"


def test_a_position_out_of_range_names_the_node() -> None:
    model = _model(
        [helper.make_node("SplitToSequence", ["x"], ["s"], name="split"),
         helper.make_node("SequenceAt", ["s", "pos"], ["y"], name="pick")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("pos", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    session = Session(model, backend="reference")
    np.testing.assert_array_equal(session.run({"x": np.eye(2, 3, dtype=np.float32),
                                               "pos": i64(-1)})["y"], [[0, 1, 0]])
    with pytest.raises(NodeError, match=r"node 'pick' \(SequenceAt\): position 2 is out of "
                                        r"range \[-2, 1\]"):
        session.run({"x": np.eye(2, 3, dtype=np.float32), "pos": i64(2)})


def test_capture_leaves_sequences_out() -> None:
    session = Session(_conv_sequence_conv(), backend="reference")
    x = f32(1, 3, 6, 6)
    captured = session.run({"x": x}, capture=True)
    assert "r1" in captured and "cat" in captured
    assert not {"s1", "s2", "s3"} & set(captured)
    assert all(isinstance(v, np.ndarray) for v in captured.values())
    with pytest.raises(LowpError, match="'s1' is a sequence, not a tensor"):
        session.run({"x": x}, ["s1"])
