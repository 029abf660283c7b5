"""A tensor that is zero by construction quantizes; one that is zero on the data is refused."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import lowp
from lowp.errors import DataError, QuantizationError


def _recurrence(h0_from_shape: bool) -> onnx.ModelProto:
    """One step of an exported recurrence: h1 = tanh(x W + h0 U); h0 is the zero initial
    state ConstantOfShape(Shape(x)), or (for the refusal) Relu(-x*x) of the data."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), "u"),
             numpy_helper.from_array(np.array([8], np.int64), "hidden")]
    if h0_from_shape:
        state = [helper.make_node("Shape", ["x"], ["xs"], start=0, end=1),
                 helper.make_node("Concat", ["xs", "hidden"], ["hs"], axis=0),
                 helper.make_node("ConstantOfShape", ["hs"], ["h0"],
                                  value=numpy_helper.from_array(np.zeros(1, np.float32)))]
    else:
        state = [helper.make_node("Mul", ["x", "x"], ["sq"]),
                 helper.make_node("Neg", ["sq"], ["neg"]),
                 helper.make_node("Relu", ["neg"], ["h0"])]
    nodes = state + [helper.make_node("MatMul", ["x", "w"], ["xw"]),
                     helper.make_node("MatMul", ["h0", "u"], ["hu"]),
                     helper.make_node("Add", ["xw", "hu"], ["pre"]),
                     helper.make_node("Tanh", ["pre"], ["h1"])]
    graph = helper.make_graph(
        nodes, "step", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8])],
        [helper.make_tensor_value_info("h1", TensorProto.FLOAT, ["n", 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_zero_initial_state_quantizes():
    x = np.random.default_rng(1).standard_normal((16, 8)).astype(np.float32)
    q = lowp.quantize_model(_recurrence(True), {"x": x})
    want = ort.InferenceSession(q.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    # the integer MatMuls agree exactly; the float Tanh after them within an ulp
    np.testing.assert_allclose(lowp.Session(q).run({"x": x})["h1"], want, rtol=0, atol=1e-6)


def test_zero_on_the_data_is_refused():
    x = np.random.default_rng(1).standard_normal((16, 8)).astype(np.float32)
    with pytest.raises(QuantizationError, match="'h0'.*zero on all calibration data"):
        lowp.quantize_model(_recurrence(False), {"x": x})


def _empty_pad() -> onnx.ModelProto:
    """y = Concat(x W, -1e9 * ConstantOfShape([n, 0])) along axis 1: an exported mask
    padding of zero width (eeg_spindles' head), empty on every feed."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), "w"),
             numpy_helper.from_array(np.array([0], np.int64), "zero"),
             numpy_helper.from_array(np.array(-1e9, np.float32), "big")]
    nodes = [helper.make_node("Shape", ["x"], ["xs"], start=0, end=1),
             helper.make_node("Concat", ["xs", "zero"], ["ps"], axis=0),
             helper.make_node("ConstantOfShape", ["ps"], ["ones"],
                              value=numpy_helper.from_array(np.ones(1, np.float32))),
             helper.make_node("Mul", ["ones", "big"], ["pad"]),
             helper.make_node("MatMul", ["x", "w"], ["xw"]),
             helper.make_node("Concat", ["xw", "pad"], ["y"], axis=1)]
    graph = helper.make_graph(
        nodes, "pad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_empty_padding_quantizes_under_connected():
    x = np.random.default_rng(1).standard_normal((16, 8)).astype(np.float32)
    q = lowp.quantize_model(_empty_pad(), {"x": x}, lowp.Config(method=lowp.CalibMethod.MINMAX))
    want = ort.InferenceSession(q.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_array_equal(lowp.Session(q).run({"x": x})["y"], want)


def test_empty_padding_under_policy_all_stays_float():
    """Policy ALL quantizes the padding's Mul and Concat; a tensor empty on every feed has
    no range, so it stays float with its producer and readers (a warning names it), and
    the file runs in ONNX Runtime with lowp's numbers."""
    x = np.random.default_rng(1).standard_normal((16, 8)).astype(np.float32)
    with pytest.warns(UserWarning, match="'ones'.*empty on all calibration data"):
        q = lowp.quantize_model(_empty_pad(), {"x": x}, lowp.Config(
            method=lowp.CalibMethod.MINMAX, policy=lowp.QuantPolicy.ALL))
    onnx.checker.check_model(q)
    want = ort.InferenceSession(q.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_array_equal(lowp.Session(q).run({"x": x})["y"], want)


def test_a_quantized_tensor_empty_on_every_feed_is_refused_by_name():
    """Where the tensor must be quantized (named in no exclusion, policy CONNECTED would
    quantize it), `choose` refuses it with the old message, naming it."""
    from lowp.calib import CalibrationTable, MinMaxObserver
    from lowp.passes.annotate import annotate
    from lowp.passes.choose import choose
    model = _empty_pad()
    config = lowp.Config(method=lowp.CalibMethod.MINMAX, policy=lowp.QuantPolicy.ALL)
    ann = annotate(model, config)
    table = CalibrationTable([MinMaxObserver(t) for t in ann.activations])
    table.choose_ranges(lowp.CalibMethod.MINMAX)
    with pytest.raises(DataError, match="no calibration data observed"):
        choose(model, ann, table, config)
