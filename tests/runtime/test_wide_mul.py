"""A 16-bit QDQ Mul runs as ONNX Runtime runs it (DequantizeLinear -> float Mul ->
QuantizeLinear): the int32 product of two 16-bit codes would wrap (magika under ONNX
Runtime's quantizer with uint16 activations: 0% of its outputs identical before)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import lowp

TYPES = {"uint16": (TensorProto.UINT16, np.uint16), "int16": (TensorProto.INT16, np.int16)}


def _mul_model(kind: str, const_code: int, a_zp: int, y_zp: int, *, constant: bool = True):
    onnx_t, np_t = TYPES[kind]

    def qp(name: str, scale: float, zp: int) -> list:
        return [numpy_helper.from_array(np.array(scale, np.float32), f"{name}_s"),
                numpy_helper.from_array(np.array(zp, np_t), f"{name}_z")]

    inits = qp("a", 2.8056535e-05, a_zp) + qp("b", 6.8230713e-07, 0) + qp("y", 1.2545479e-06,
                                                                            y_zp)
    nodes = [helper.make_node("DequantizeLinear", ["a", "a_s", "a_z"], ["af"]),
             helper.make_node("DequantizeLinear", ["b", "b_s", "b_z"], ["bf"]),
             helper.make_node("Mul", ["af", "bf"], ["m"], name="mul"),
             helper.make_node("QuantizeLinear", ["m", "y_s", "y_z"], ["y"])]
    inputs = [helper.make_tensor_value_info("a", onnx_t, ["n", 64])]
    if constant:
        inits.append(numpy_helper.from_array(np.array(const_code, np_t), "b"))
    else:
        inputs.append(helper.make_tensor_value_info("b", onnx_t, ["n", 64]))
    graph = helper.make_graph(nodes, "g", inputs,
                              [helper.make_tensor_value_info("y", onnx_t, ["n", 64])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


def _both(model, feeds):
    want = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    return lowp.Session(model).run(feeds)["y"], want


def test_magika_mul_equals_onnxruntime():
    """The minimized group: a uint16 Mul by the constant code 65535 (zero point 0)."""
    model = _mul_model("uint16", 65535, 29139, 29139)
    a = np.linspace(0, 65535, 8 * 64).astype(np.uint16).reshape(8, 64)
    got, want = _both(model, {"a": a})
    assert want.max() == 65535           # the top codes overflow int32 once multiplied
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("kind", sorted(TYPES))
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), constant=st.booleans())
def test_sixteen_bit_mul_equals_onnxruntime(kind, seed, constant):
    np_t = TYPES[kind][1]
    info = np.iinfo(np_t)
    rng = np.random.default_rng(seed)
    zp = lambda: int(rng.integers(info.min, info.max + 1))  # noqa: E731
    model = _mul_model(kind, zp(), zp(), zp(), constant=constant)
    feeds = {"a": rng.integers(info.min, info.max + 1, (4, 64)).astype(np_t)}
    if not constant:
        feeds["b"] = rng.integers(info.min, info.max + 1, (4, 64)).astype(np_t)
    got, want = _both(model, feeds)
    np.testing.assert_array_equal(got, want)


def test_sixteen_bit_add_equals_onnxruntime():
    """A uint16 Add group runs unfused as in ONNX Runtime (it fuses no 16-bit group on x86):
    the scales of ddddocr_det's 'Add_59' under ONNX Runtime's quantizer with uint16
    activations, where the integer Add was one unit apart on 0.03% of the elements."""
    onnx_t, np_t = TYPES["uint16"]

    def qp(name: str, scale: float, zp: int) -> list:
        return [numpy_helper.from_array(np.array(scale, np.float32), f"{name}_s"),
                numpy_helper.from_array(np.array(zp, np_t), f"{name}_z")]

    inits = qp("a", 0.00014798, 1882) + qp("b", 0.00015902, 1751) + qp("y", 0.00019255, 2892)
    nodes = [helper.make_node("DequantizeLinear", ["a", "a_s", "a_z"], ["af"]),
             helper.make_node("DequantizeLinear", ["b", "b_s", "b_z"], ["bf"]),
             helper.make_node("Add", ["af", "bf"], ["m"], name="add"),
             helper.make_node("QuantizeLinear", ["m", "y_s", "y_z"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(k, onnx_t, ["n", 64]) for k in "ab"],
        [helper.make_tensor_value_info("y", onnx_t, ["n", 64])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    rng = np.random.default_rng(0)
    feeds = {k: rng.integers(0, 8000, (512, 64)).astype(np_t) for k in "ab"}
    want = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    np.testing.assert_array_equal(lowp.Session(model).run(feeds)["y"], want)
