"""A QDQ Add or Mul group whose inputs and output are all int8 runs ONNX Runtime's
QLinearAdd / QLinearMul arithmetic ((O10a) / (O11a)), as ONNX Runtime fuses it on x86;
groups that mix 8-bit types run DequantizeLinear -> float op -> QuantizeLinear, as there
(ppocrv6_rec_small under ONNX Runtime's quantizer with int8 symmetric activations: its
'Add.120' landed one unit apart at a half-way point while lowp ran the float path)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import lowp

TYPES = {"int8": (TensorProto.INT8, np.int8), "uint8": (TensorProto.UINT8, np.uint8)}


def _binary_model(op: str, kinds: tuple[str, str, str], scales: tuple[float, float, float],
                  zero_points: tuple[int, int, int], b_shape: tuple[int, ...],
                  b_const: np.ndarray | None):
    """DequantizeLinear(a), DequantizeLinear(b) -> op -> QuantizeLinear, a of shape
    (1, 4, 3, 5); b a graph input, or the constant `b_const`."""
    inits = []
    for name, kind, s, z in zip("aby", kinds, scales, zero_points, strict=True):
        inits += [numpy_helper.from_array(np.array(s, np.float32), f"{name}_s"),
                  numpy_helper.from_array(np.array(z, TYPES[kind][1]), f"{name}_z")]
    nodes = [helper.make_node("DequantizeLinear", ["a", "a_s", "a_z"], ["af"]),
             helper.make_node("DequantizeLinear", ["b", "b_s", "b_z"], ["bf"]),
             helper.make_node(op, ["af", "bf"], ["f"], name=op.lower()),
             helper.make_node("QuantizeLinear", ["f", "y_s", "y_z"], ["y"])]
    inputs = [helper.make_tensor_value_info("a", TYPES[kinds[0]][0], [1, 4, 3, 5])]
    if b_const is None:
        inputs.append(helper.make_tensor_value_info("b", TYPES[kinds[1]][0], list(b_shape)))
    else:
        inits.append(numpy_helper.from_array(b_const, "b"))
    out = helper.make_tensor_value_info("y", TYPES[kinds[2]][0], [1, 4, 3, 5])
    graph = helper.make_graph(nodes, "g", inputs, [out], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _both(model, feeds):
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    want = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    return lowp.Session(model).run(feeds)["y"], want


def test_ppocrv6_rec_add_tie_equals_onnxruntime():
    """The minimized group: x = 31 plus the per-channel constant code 2 is exactly
    45.5 output units in float32; QLinearAdd gives 46, the float path 45."""
    s_a, s_b, s_y = (float.fromhex(h) for h in ("0x1.df40a4p-5", "0x1.90e5ccp-5",
                                               "0x1.582544p-5"))
    const = np.full((1, 4, 1, 1), 2, np.int8)
    model = _binary_model("Add", ("int8",) * 3, (s_a, s_b, s_y), (0, 0, 0), const.shape, const)
    a = np.full((1, 4, 3, 5), 31, np.int8)
    got, want = _both(model, {"a": a})
    assert (want == 46).all()
    np.testing.assert_array_equal(got, want)


B_SHAPES = [(1, 4, 3, 5), (1, 4, 1, 1), (1, 1, 1, 5), (1,), (5,), (1, 4, 3, 1)]


@pytest.mark.parametrize("op", ["Add", "Mul"])
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), b_shape=st.sampled_from(B_SHAPES),
       constant=st.booleans(),
       kinds=st.sampled_from([("int8",) * 3, ("uint8",) * 3, ("int8", "uint8", "int8"),
                              ("uint8", "uint8", "int8"), ("int8", "int8", "uint8")]))
def test_eight_bit_binary_equals_onnxruntime(op, seed, b_shape, constant, kinds):
    """Random scales, zero points and codes over every code range; both same-type
    groups (fused by ONNX Runtime) and mixed ones (unfused there) agree bit for bit."""
    rng = np.random.default_rng(seed)

    def codes(kind: str, shape: tuple[int, ...]) -> np.ndarray:
        info = np.iinfo(TYPES[kind][1])
        return rng.integers(info.min, info.max + 1, shape).astype(TYPES[kind][1])

    scales = tuple(float(np.float32(10.0 ** rng.uniform(-3, 0))) for _ in range(3))
    zero_points = tuple(int(codes(k, ())) for k in kinds)
    b = codes(kinds[1], b_shape)
    model = _binary_model(op, kinds, scales, zero_points, b_shape, b if constant else None)
    feeds = {"a": codes(kinds[0], (1, 4, 3, 5))}
    if not constant:
        feeds["b"] = b
    got, want = _both(model, feeds)
    np.testing.assert_array_equal(got, want)
