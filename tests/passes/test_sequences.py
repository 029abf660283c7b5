"""Float models with sequence operators quantize: the sequences stay float, calibration
observes tensors only, and the QDQ model runs alike in ONNX Runtime and on lowp's engine."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import lowp
from lowp.cli import main
from lowp.config import CalibMethod, Config
from lowp.inputs import model_inputs
from lowp.ir.graph import Graph
from lowp.passes.calibrate import calibrate
from lowp.passes.canonicalize import canonicalize
from lowp.runtime import Session
from lowp.runtime.backends import native_available

BACKENDS = ["reference"] + (["native"] if native_available() else [])
SEQUENCE_OPS = {"SplitToSequence", "SequenceConstruct", "SequenceAt", "SequenceInsert",
                "ConcatFromSequence"}
rng = np.random.default_rng(11)


def _model() -> onnx.ModelProto:
    """Conv -> Relu -> SplitToSequence(axis=1) -> (a constant sequence's last tensor
    inserted) -> ConcatFromSequence -> Conv."""
    f = TensorProto.FLOAT
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("SplitToSequence", ["r1"], ["pieces"], axis=1),
        # all-constant: constant folding must leave a sequence alone
        helper.make_node("SequenceConstruct", ["k1", "k2"], ["constant_pieces"]),
        helper.make_node("SequenceAt", ["constant_pieces", "last"], ["k"]),
        helper.make_node("SequenceInsert", ["pieces", "k", "last"], ["more"]),
        helper.make_node("ConcatFromSequence", ["more"], ["cat"], axis=1),
        helper.make_node("Conv", ["cat", "w2"], ["y"]),
    ]
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
                                     "w1"),
             numpy_helper.from_array(rng.standard_normal((2, 5, 1, 1)).astype(np.float32),
                                     "w2"),
             numpy_helper.from_array(rng.standard_normal((1, 1, 6, 6)).astype(np.float32),
                                     "k1"),
             numpy_helper.from_array(rng.uniform(0, 1, (1, 1, 6, 6)).astype(np.float32),
                                     "k2"),
             numpy_helper.from_array(np.array(-1, np.int64), "last")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", f, [1, 3, 6, 6])],
                              [helper.make_tensor_value_info("y", f, [1, 2, 6, 6])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model


def _calib() -> dict[str, np.ndarray]:
    return {"x": rng.standard_normal((8, 3, 6, 6)).astype(np.float32)}


def _ort(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(["y"], {"x": x})[0]


def _check_qdq(qdq: onnx.ModelProto) -> None:
    onnx.checker.check_model(qdq, full_check=True)
    ops = [n.op_type for n in qdq.graph.node]
    assert ops.count("Conv") == 2 and SEQUENCE_OPS <= set(ops)
    graph = Graph(qdq)
    for n in qdq.graph.node:
        if n.op_type in SEQUENCE_OPS:           # float: nothing quantizes into them
            assert all(graph.producer[i].op_type != "QuantizeLinear" for i in n.input
                       if i in graph.producer)
    x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
    expected = _ort(qdq, x)
    for backend in BACKENDS:
        session = Session(qdq, backend=backend)
        assert any(s.kind == "int" and s.op_type == "Conv" for s in session.steps)
        for _ in range(3):
            np.testing.assert_array_equal(session.run({"x": x})["y"], expected)


@pytest.mark.parametrize("policy", [lowp.QuantPolicy.CONNECTED, lowp.QuantPolicy.ALL])
def test_model_with_sequences_quantizes_and_engines_agree(policy: lowp.QuantPolicy) -> None:
    _check_qdq(lowp.quantize_model(_model(), _calib(), Config(policy=policy)))


def test_lowp_quantize_command(tmp_path) -> None:
    src, out = tmp_path / "seq.onnx", tmp_path / "seq.int8.onnx"
    onnx.save(_model(), str(src))
    np.savez(tmp_path / "calib.npz", **_calib())
    assert main(["quantize", str(src), "--calib", str(tmp_path / "calib.npz"), "-o", str(out),
                 "--quiet"]) == 0
    _check_qdq(onnx.load(str(out)))


def test_constant_folding_leaves_sequences_alone() -> None:
    model = canonicalize(_model())
    assert "SequenceConstruct" in [n.op_type for n in model.graph.node]
    assert "constant_pieces" not in {t.name for t in model.graph.initializer}


def test_calibration_observes_tensors_only() -> None:
    model = canonicalize(_model())
    graph = Graph(model)
    assert not graph.is_tensor("pieces") and not graph.is_tensor("more")
    assert graph.is_tensor("r1") and graph.is_tensor("k")
    feeds = [{"x": x[None]} for x in _calib()["x"]]
    table = calibrate(model, ["r1", "pieces", "more", "cat"], feeds,
                      model_inputs(model), Config(method=CalibMethod.MINMAX), progress=False)
    assert "r1" in table and "cat" in table
    assert "pieces" not in table and "more" not in table
