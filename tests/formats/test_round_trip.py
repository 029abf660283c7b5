"""QDQ -> QOperator -> QDQ and QOperator -> QDQ -> QOperator give back the same graph (same
nodes and attributes, same initializer values; tensor names aside) on ONNX Runtime's own
quantized files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from lowp.formats import to_qdq, to_qoperator

from .models import fingerprint, ort_quantized

VARIANTS = [(a, pc) for a in ("u8", "s8") for pc in (True, False)]
IDS = [f"{a}-{'per_channel' if pc else 'per_tensor'}" for a, pc in VARIANTS]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("round_trip")


@pytest.mark.parametrize(("activations", "per_channel"), VARIANTS, ids=IDS)
def test_qdq_qoperator_qdq(folder, activations, per_channel):
    model = onnx.load(ort_quantized(folder, "QDQ", activations, per_channel))
    qop = to_qoperator(model)
    onnx.checker.check_model(qop)
    # every group of this net has a quantized operator: only the graph's own input
    # QuantizeLinear and output DequantizeLinear remain
    assert [n.op_type for n in qop.graph.node if n.op_type.endswith("Linear")] == [
        "QuantizeLinear", "DequantizeLinear"]
    back = to_qdq(qop)
    onnx.checker.check_model(back)
    assert fingerprint(back) == fingerprint(model)


@pytest.mark.parametrize(("activations", "per_channel"), VARIANTS, ids=IDS)
def test_qoperator_qdq_qoperator(folder, activations, per_channel):
    model = onnx.load(ort_quantized(folder, "QOperator", activations, per_channel))
    back = to_qoperator(to_qdq(model))
    onnx.checker.check_model(back)
    assert fingerprint(back) == fingerprint(model)


def test_fingerprint_sees_a_changed_weight_and_a_changed_attribute(folder):
    model = onnx.load(ort_quantized(folder, "QOperator", "u8", True))
    weight = next(t for t in model.graph.initializer if t.name.endswith("_w_quantized"))
    changed = onnx.ModelProto()
    changed.CopyFrom(model)
    w = numpy_helper.to_array(weight).copy()
    w.flat[0] ^= 1
    target = next(t for t in changed.graph.initializer if t.name == weight.name)
    target.CopyFrom(numpy_helper.from_array(w, weight.name))
    assert fingerprint(changed) != fingerprint(model)
    renamed = onnx.ModelProto()
    renamed.CopyFrom(model)
    for a in next(n for n in renamed.graph.node if n.op_type == "QLinearLeakyRelu").attribute:
        a.f = 0.2
    assert fingerprint(renamed) != fingerprint(model)


def test_groups_without_a_quantized_operator_stay(folder):
    """A float bias (not int32 at s_x * s_w) has no QLinearConv form: the group is kept."""
    model = onnx.load(ort_quantized(folder, "QDQ", "u8", False))
    bias_dq = next(n for n in model.graph.node if n.op_type == "DequantizeLinear"
                   and n.input[0] == "c2_b_quantized")
    scale = next(t for t in model.graph.initializer if t.name == bias_dq.input[1])
    scale.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(scale) * np.float32(2),
                                           scale.name))
    qop = to_qoperator(model)
    assert [n.op_type for n in qop.graph.node].count("QLinearConv") == 3
    assert "Conv" in [n.op_type for n in qop.graph.node]
    assert fingerprint(to_qdq(qop)) == fingerprint(model)


def test_lowp_quantized_model_as_qoperator_in_onnxruntime():
    """lowp's own QDQ output (per-channel, uint8): every group has a quantized operator,
    the round trip gives the same graph, and ONNX Runtime running the QOperator file equals
    lowp's engine on the QDQ file."""
    import onnxruntime as ort

    import lowp
    from lowp.data import demo_model_path, load_demo_calibration, load_demo_test

    calib = {k: v[:32] for k, v in load_demo_calibration().items()}
    qdq = lowp.quantize_model(str(demo_model_path()), calib, lowp.Config())
    qop = to_qoperator(qdq)
    onnx.checker.check_model(qop)
    assert {n.op_type for n in qop.graph.node} >= {"QLinearConv", "QLinearAdd", "QGemm",
                                                   "QLinearGlobalAveragePool"}
    assert not {"Conv", "Gemm", "Add"} & {n.op_type for n in qop.graph.node}
    assert fingerprint(to_qdq(qop)) == fingerprint(qdq)
    feeds = {"input": load_demo_test()[0]["input"][:64]}
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    want = ort.InferenceSession(qop.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    np.testing.assert_array_equal(lowp.Session(qdq).run(feeds)["logits"], want)
