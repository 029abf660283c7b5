"""ONNX Runtime's EliminateIdentity and NoopElimination (lowp.runtime.ort_noop_elimination):
lowp removes the nodes ONNX Runtime removes, so that the fusions after them match where
ONNX Runtime's do, and gives its values bit for bit."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from lowp import Session
from lowp.runtime import ort_fusions, ort_noop_elimination

from .ort_agreement import onnxruntime_run

F32 = TensorProto.FLOAT


def _model(nodes: list[onnx.NodeProto], inputs: dict[str, tuple[int, ...]],
           inits: dict[str, np.ndarray], outputs: list[str], opset: int = 13
           ) -> onnx.ModelProto:
    g = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, F32, s) for n, s in inputs.items()],
        [], [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    typed = {v.name: v for v in onnx.shape_inference.infer_shapes(m).graph.value_info}
    m.graph.output.extend(typed[o] for o in outputs)
    return m


def _ort_ops(model: onnx.ModelProto, level: ort.GraphOptimizationLevel) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.graph_optimization_level = level
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(model.SerializeToString(), options,
                             providers=["CPUExecutionProvider"])
        return [n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node]


def _same_as_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> None:
    want = onnxruntime_run(model, feeds)
    session = Session(model, threads=1)
    for _ in range(3):                       # plain, recorded and replayed runs
        got = session.run(feeds)
        for o, w in zip(model.graph.output, want, strict=True):
            np.testing.assert_array_equal(got[o.name], w, err_msg=o.name)


@pytest.mark.parametrize(("op", "const_first", "value", "shape", "removed"), [
    ("Add", False, 0.0, (), True), ("Add", True, 0.0, (1,), True),
    ("Sub", False, 0.0, (1, 1), True), ("Sub", True, 0.0, (), False),
    ("Mul", False, 1.0, (), True), ("Mul", True, 1.0, (1, 1, 1), True),
    ("Div", False, 1.0, (1,), True), ("Div", True, 1.0, (), False),
    ("Add", False, 1.0, (), False), ("Mul", False, 0.5, (), False),
    ("Add", False, 0.0, (1, 1, 1, 1), False),      # a higher rank broadcasts: stays
    ("Mul", False, 1.0, (3,), False)])
def test_noop_arithmetic_goes_where_ort_removes_it(op: str, const_first: bool, value: float,
                                                   shape: tuple[int, ...],
                                                   removed: bool) -> None:
    c = np.full(shape, value, np.float32)
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node(op, ["c", "r"] if const_first else ["r", "c"], ["n"]),
             helper.make_node("Tanh", ["n"], ["y"])]
    model = _model(nodes, {"x": (2, 5, 3)}, {"c": c}, ["y"])
    theirs = _ort_ops(model, ort.GraphOptimizationLevel.ORT_ENABLE_BASIC)
    ours = [n.op_type for n in ort_noop_elimination.apply(model).graph.node]
    assert (op not in theirs) == removed
    assert ours == theirs
    rng = np.random.default_rng(3)
    _same_as_ort(model, {"x": rng.standard_normal((2, 5, 3)).astype(np.float32)})


def test_noop_of_a_graph_input_or_into_an_output_stays() -> None:
    # ONNX Runtime's CanRemoveNode: one input edge (or a lone input), no graph output
    nodes = [helper.make_node("Add", ["x", "zero"], ["a"]),
             helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("Mul", ["r", "one"], ["y"])]
    model = _model(nodes, {"x": (4, 3)}, {"zero": np.float32(0), "one": np.float32(1)}, ["y"])
    assert _ort_ops(model, ort.GraphOptimizationLevel.ORT_ENABLE_BASIC) == ["Add", "Relu", "Mul"]
    assert ort_noop_elimination.apply(model) is model


@pytest.mark.parametrize("shared", [False, True])
def test_identity_into_a_graph_output_hands_it_to_its_maker(shared: bool) -> None:
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Identity", ["r"], ["i"]),
             helper.make_node("Identity", ["i"], ["y"])]
    outputs = ["y"]
    if shared:                    # r read twice: the Identity before the output stays
        nodes.append(helper.make_node("Tanh", ["r"], ["t"]))
        outputs.append("t")
    model = _model(nodes, {"x": (4, 3)}, {}, outputs)
    theirs = _ort_ops(model, ort.GraphOptimizationLevel.ORT_ENABLE_BASIC)
    rewritten = ort_noop_elimination.apply(model)
    assert sorted(n.op_type for n in rewritten.graph.node) == sorted(theirs)
    assert theirs.count("Identity") == int(shared)
    _same_as_ort(model, {"x": np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)})


def test_identity_and_add_zero_no_longer_hide_a_scaled_attention() -> None:
    # PP-OCRv6's recogniser (paddle2onnx): Q · s + 0 -> Identity -> MatMul(., Kᵀ), and a
    # residual Add -> Identity -> LayerNorm. ONNX Runtime removes the Add and the Identity
    # nodes first, then fuses the scale into the MatMul (FusedMatMul alpha) and the
    # residual Add into a SkipLayerNormalization; lowp matched neither
    nodes = [helper.make_node("Relu", ["q"], ["qr"]),
             helper.make_node("Mul", ["qr", "s"], ["qs"]),
             helper.make_node("Add", ["qs", "zero"], ["qa"]),
             helper.make_node("Identity", ["qa"], ["qi"]),
             helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["qi", "kt"], ["p"]),
             helper.make_node("Softmax", ["p"], ["sm"], axis=-1),
             helper.make_node("MatMul", ["sm", "k"], ["o"]),
             helper.make_node("Add", ["o", "q"], ["res"]),
             helper.make_node("Identity", ["res"], ["resi"]),
             helper.make_node("LayerNormalization", ["resi", "gamma", "beta"], ["y"],
                              axis=-1, epsilon=1e-6)]
    rng = np.random.default_rng(11)
    model = _model(nodes, {"q": (2, 7, 16), "k": (2, 7, 16)}, {
        "s": np.array([0.25819889], np.float32), "zero": np.float32(0),
        "gamma": rng.standard_normal(16).astype(np.float32),
        "beta": rng.standard_normal(16).astype(np.float32)}, ["y"], opset=17)
    theirs = _ort_ops(model, ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED)
    ours = [n.op_type for n in
            ort_fusions.apply(ort_noop_elimination.apply(model)).graph.node]
    for op in ("FusedMatMul", "SkipLayerNormalization", "Identity", "Add", "Mul"):
        assert ours.count(op) == theirs.count(op), op
    assert "SkipLayerNormalization" in ours and "Mul" not in ours
    _same_as_ort(model, {n: (rng.standard_normal((2, 7, 16)) * 3).astype(np.float32)
                         for n in "qk"})
