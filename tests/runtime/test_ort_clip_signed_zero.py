"""Clip and the Relu / Clip that ONNX Runtime fuses after a float Conv, Gemm or MatMul on
signed zeros, NaNs and infinities, against ONNX Runtime bit for bit (docs/operators.md
(O77)): y = x < lo ? lo : x, then hi < y ? hi : y, absent bounds the type's lowest and
largest finite values (np.maximum / np.minimum gave +0 for -0 under a bound of 0, and
left infinities without bounds)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session, native_float

F = TensorProto.FLOAT

_SPECIALS = np.array(
    [0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7F800001,
     0xFF800001, 0x7FC00001, 0x00000001, 0x80000001, 0x007FFFFF, 0x807FFFFF, 0x00800000,
     0x80800000, 0x7F7FFFFF, 0xFF7FFFFF, 0x3F800000, 0xBF800000, 0x40C00000, 0x40C00001,
     0x40BFFFFF, 0x40A00000, 0x40E00000], np.uint32).view(np.float32)


def _ort(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return session.run(None, dict(feeds))[0]


def _assert_bits(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> None:
    """The numpy reference and the native kernels (recorded, then replayed) give ONNX
    Runtime's first output bit for bit."""
    theirs = _ort(model, feeds).view(np.uint32)
    with native_float.disabled():
        ours = Session(model, backend="reference").run(dict(feeds))["y"]
    np.testing.assert_array_equal(ours.view(np.uint32), theirs, err_msg="numpy")
    session = Session(model, backend="native")
    for run in range(3):
        ours = session.run(dict(feeds))["y"]
        np.testing.assert_array_equal(ours.view(np.uint32), theirs, err_msg=f"native {run}")


def _clip_model(opset: int, lo: float | None, hi: float | None, computed: bool,
                size: int) -> onnx.ModelProto:
    inputs = [helper.make_tensor_value_info("x", F, [size])]
    inits = []
    attrs: dict[str, float] = {}
    names = ["x"]
    if opset < 11:
        attrs = {k: v for k, v in (("min", lo), ("max", hi)) if v is not None}
    else:
        for name, value in (("lo", lo), ("hi", hi)):
            if value is None:
                names.append("")
            elif computed:
                names.append(name)
                inputs.append(helper.make_tensor_value_info(name, F, []))
            else:
                names.append(name)
                inits.append(numpy_helper.from_array(np.array(value, np.float32), name))
    graph = helper.make_graph([helper.make_node("Clip", names, ["y"], **attrs)], "g", inputs,
                              [helper.make_tensor_value_info("y", F, [size])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("opset", [6, 11, 13])
@pytest.mark.parametrize("bounds", [(0.0, 6.0), (None, 6.0), (0.0, None), (None, None),
                                    (-0.0, 0.0), (0.0, -0.0), (float("nan"), 6.0),
                                    (-1.0, float("nan")), (6.0, 0.0)])
@pytest.mark.parametrize("computed", [False, True])
def test_clip_specials_equal_onnxruntime(opset, bounds, computed):
    # before: Clip(-0, 0, 6) gave +0 (np.maximum), ONNX Runtime -0; without bounds +-inf
    # stayed, ONNX Runtime gives +-FLT_MAX; a NaN bound made every value NaN
    lo, hi = bounds
    if computed and opset < 11:
        pytest.skip("bounds are attributes before opset 11")
    if opset < 11 and not (np.float32(-np.inf if lo is None else lo) <=
                           np.float32(np.inf if hi is None else hi)):
        pytest.skip("ONNX Runtime refuses a Clip-6 whose min <= max fails")
    x = np.tile(_SPECIALS, 40)             # long enough for the vector loops and threads
    model = _clip_model(opset, lo, hi, computed, x.size)
    feeds = {"x": x}
    if computed:
        feeds |= {n: np.array(v, np.float32) for n, v in (("lo", lo), ("hi", hi))
                  if v is not None}
    _assert_bits(model, feeds)


def _tiny_products(shape: tuple[int, ...]) -> np.ndarray:
    """An input whose products with the weights below underflow to -0 (sums of -0 stay
    -0), with one NaN and a few normal values among them."""
    x = np.full(shape, 1e-30, np.float32)
    flat = x.reshape(-1)
    flat[0], flat[5], flat[-3] = np.nan, 2.0, -3.0
    return x


def _activation(kind: str, src: str) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    if kind == "Relu":
        return [helper.make_node("Relu", [src], ["y"])], []
    return ([helper.make_node("Clip", [src, "lo", "hi"], ["y"])],
            [numpy_helper.from_array(np.array(0, np.float32), "lo"),
             numpy_helper.from_array(np.array(6, np.float32), "hi")])


def _fused_model(nodes: list[onnx.NodeProto], x_shape: tuple[int, ...],
                 inits: list[onnx.TensorProto]) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F, list(x_shape))],
                              [helper.make_tensor_value_info("y", F, [None] * len(x_shape))],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("kind", ["Relu", "Clip"])
@pytest.mark.parametrize("shapes", [((1, 16, 8, 8), (16, 16, 3, 3)),    # NCHWc
                                    ((1, 3, 9, 9), (5, 3, 3, 3)),       # im2col
                                    ((1, 16, 8), (4, 16, 3)),           # 1-D
                                    ((2, 16, 6, 6), (16, 1, 3, 3))])    # depthwise
def test_fused_conv_activation_keeps_signed_zero_and_nan(kind, shapes):
    # ONNX Runtime fuses the activation into the Conv (MLAS's maxps(lo, v), minps(hi, v)):
    # -0 and NaN stay
    x_shape, w_shape = shapes
    w = np.full(w_shape, -1e-30, np.float32)
    w.reshape(-1)[1] = 1.0
    group = x_shape[1] if w_shape[1] == 1 else 1
    nodes, inits = _activation(kind, "c")
    conv = helper.make_node("Conv", ["x", "w"], ["c"], group=group,
                            pads=[1] * (2 * (len(x_shape) - 2)))
    model = _fused_model([conv, *nodes], x_shape, [numpy_helper.from_array(w, "w"), *inits])
    x = _tiny_products(x_shape)
    assert (_ort(model, {"x": x}).view(np.uint32) == 0x80000000).any()
    _assert_bits(model, {"x": x})


@pytest.mark.parametrize("kind", ["Relu", "Clip"])
@pytest.mark.parametrize("form", ["Gemm", "MatMul+Add", "MatMul"])
def test_fused_product_activation_keeps_signed_zero_and_nan(kind, form):
    # FusedGemm (Gemm or MatMul + Add, then the activation) and MatMul then the activation
    w = np.full((32, 16), -1e-30, np.float32)
    w[1, 3] = 1.0
    bias = np.full(16, -0.0, np.float32)
    consts = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "b")]
    product = {"Gemm": [helper.make_node("Gemm", ["x", "w", "b"], ["c"])],
               "MatMul+Add": [helper.make_node("MatMul", ["x", "w"], ["m"]),
                              helper.make_node("Add", ["m", "b"], ["c"])],
               "MatMul": [helper.make_node("MatMul", ["x", "w"], ["c"])]}[form]
    nodes, inits = _activation(kind, "c")
    model = _fused_model([*product, *nodes], (6, 32), consts + inits)
    x = _tiny_products((6, 32))
    assert (_ort(model, {"x": x}).view(np.uint32) == 0x80000000).any()
    _assert_bits(model, {"x": x})
