"""QDQ files with an infinite scale (docs/operators.md (O69), repro 44): ONNX Runtime's
quantize_static writes scale +inf for a tensor whose calibrated range is infinite (scores
plus a -inf attention mask). What ONNX Runtime computes with it is pinned here; lowp refuses
such a file at load, naming the node and the scale, and its own quantizer never writes one."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import lowp
from lowp.errors import NodeError
from lowp.runtime import Session

F, U8, S8 = TensorProto.FLOAT, TensorProto.UINT8, TensorProto.INT8


def _ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray],
         level: ort.GraphOptimizationLevel = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
         ) -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.graph_optimization_level = level
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"]).run(None, feeds)[0]


def _one_node(op: str, x_type: int, y_type: int, n: int, zp: np.ndarray) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node(op, ["x", "s", "z"], ["y"])], "g",
        [helper.make_tensor_value_info("x", x_type, [n])],
        [helper.make_tensor_value_info("y", y_type, [n])],
        [numpy_helper.from_array(np.array(np.inf, np.float32), "s"),
         numpy_helper.from_array(zp, "z")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize(("qtype", "zp"), [(U8, 0), (U8, 128), (U8, 255), (S8, -128), (S8, 0),
                                           (S8, 127)])
def test_onnxruntime_with_an_infinite_scale(qtype, zp):
    # QuantizeLinear: x / inf is +-0 for finite x (the zero point), NaN for +-inf and NaN,
    # which MLAS's clamp (max then min, NaN taking the bound) sends to the type's minimum;
    # DequantizeLinear: (q - zp) * inf is NaN at the zero point, +-inf elsewhere
    dtype = np.uint8 if qtype == U8 else np.int8
    info = np.iinfo(dtype)
    x = np.array([-np.inf, np.inf, np.nan, 0.0, -0.0, 1.0, -1.0, 3e38, -3e38, 1e-45],
                 np.float32)
    q = _ort(_one_node("QuantizeLinear", F, qtype, x.size, np.array(zp, dtype)), {"x": x})
    np.testing.assert_array_equal(q, [info.min] * 3 + [zp] * 7)
    levels = np.arange(info.min, info.max + 1).astype(dtype)
    y = _ort(_one_node("DequantizeLinear", qtype, F, levels.size, np.array(zp, dtype)),
             {"x": levels})
    diff = levels.astype(np.int32) - zp
    np.testing.assert_array_equal(np.isnan(y), diff == 0)
    np.testing.assert_array_equal(y[diff != 0], np.where(diff[diff != 0] > 0, np.inf, -np.inf))


def _masked_softmax(length: int) -> onnx.ModelProto:
    """g2p_id_tiny_pron's attention scores as ONNX Runtime's quantize_static writes them:
    Add(scores, mask) -> Q (scale inf) -> DQ -> Softmax -> Q (1 / 255); the mask quantized
    at scale inf too (every value the zero point)."""
    nodes = [helper.make_node("DequantizeLinear", ["x", "sx", "zx"], ["xf"]),
             helper.make_node("DequantizeLinear", ["mask", "inf", "z0"], ["mf"], name="mask_dq"),
             helper.make_node("Add", ["xf", "mf"], ["scores"]),
             helper.make_node("QuantizeLinear", ["scores", "inf", "z0"], ["sq"], name="scores_q"),
             helper.make_node("DequantizeLinear", ["sq", "inf", "z0"], ["sd"]),
             helper.make_node("Softmax", ["sd"], ["p"], axis=-1),
             helper.make_node("QuantizeLinear", ["p", "sp", "z0"], ["y"])]
    inits = {"sx": np.array(0.08383803, np.float32), "zx": np.array(122, np.uint8),
             "inf": np.array(np.inf, np.float32), "z0": np.array(0, np.uint8),
             "sp": np.array(1 / 255, np.float32),
             "mask": np.zeros((length, length), np.uint8)}
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", U8, [2, length, length])],
        [helper.make_tensor_value_info("y", U8, [2, length, length])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("length", [1, 5, 33])
def test_onnxruntime_runs_the_masked_scores_and_loses_them(length):
    # fused (QLinearAdd, QLinearSoftmax) or not, the attention probabilities are all 0
    x = np.random.default_rng(length).integers(0, 256, (2, length, length)).astype(np.uint8)
    model = _masked_softmax(length)
    for level in (ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
                  ort.GraphOptimizationLevel.ORT_DISABLE_ALL):
        np.testing.assert_array_equal(_ort(model, {"x": x}, level), 0)


@pytest.mark.parametrize("backend", ["reference", "native"])
def test_lowp_refuses_an_infinite_scale_naming_node_and_scale(backend):
    with pytest.raises(NodeError, match=r"node 'mask_dq' \(DequantizeLinear\): scale 'inf' "
                                        r"is inf: scales must be finite and positive \(ONNX "
                                        r"Runtime's quantize_static"):
        Session(_masked_softmax(5), backend=backend)


def test_lowp_refuses_a_zero_scale_naming_node_and_scale():
    model = _masked_softmax(3)
    for init in model.graph.initializer:
        if init.name in ("sp", "inf"):
            value = 0.0 if init.name == "sp" else 1.0
            init.CopyFrom(numpy_helper.from_array(np.array(value, np.float32), init.name))
    with pytest.raises(NodeError, match=r"\(QuantizeLinear\): scale 'sp' is 0.0"):
        Session(model)


def test_lowp_quantizer_writes_finite_scales_around_a_minus_inf_mask():
    # the same attention in float: lowp leaves the masked scores in float (no observer sees
    # an infinite range), so every scale it writes is finite and positive
    length = 6
    rng = np.random.default_rng(0)
    inits = {"w": rng.standard_normal((8, length)).astype(np.float32),
             "mask": np.triu(np.full((length, length), -np.inf, np.float32), 1),
             "v": rng.standard_normal((length, 8)).astype(np.float32)}
    nodes = [helper.make_node("MatMul", ["x", "w"], ["s"]),
             helper.make_node("Add", ["s", "mask"], ["sm"]),
             helper.make_node("Softmax", ["sm"], ["p"], axis=-1),
             helper.make_node("MatMul", ["p", "v"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F, [length, 8])],
                              [helper.make_tensor_value_info("y", F, [length, 8])],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    qmodel = lowp.quantize_model(model, {"x": rng.standard_normal((24, 8)).astype(np.float32)},
                                 lowp.Config(method=lowp.CalibMethod.MINMAX))
    values = {i.name: numpy_helper.to_array(i) for i in qmodel.graph.initializer}
    scales = [values[n.input[1]] for n in qmodel.graph.node
              if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert scales and all(np.all(np.isfinite(s) & (s > 0)) for s in scales)
    Session(qmodel).run({"x": rng.standard_normal((length, 8)).astype(np.float32)})
