"""A Relu or Clip between a QDQ operator and its QuantizeLinear: ONNX Runtime removes it only
where the QuantizeLinear's range makes it redundant (ReluQuantFusion, ClipQuantFusion);
otherwise its selectors do not match the group and it runs the operator in float, which lowp
mirrors (docs/operators.md (O102)). And a Clip of opset 6-10 whose attribute bounds fail
min <= max is refused as ONNX Runtime refuses it, unless ONNX Runtime has fused it into the
float Conv before it (docs/operators.md (O101))."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.errors import NodeError
from lowp.runtime import Session
from lowp.runtime.lowering import _q_domain

from .ort_agreement import assert_engines_agree, onnxruntime_optimized_ops

SX, SW = np.float32(0.05), np.float32(0.01)


def _model(op: str, act: str, y_scale: float, y_zero_point: int, bounds: tuple[float, float],
           opset: int = 13, ydtype: type = np.uint8) -> onnx.ModelProto:
    """DQ(x) -> op -> act -> Q -> DQ; a 1x1 Conv over two channels or a MatMul of two input
    columns (sums of two products: half-way points of the float sums are common), or x + x."""
    weights = np.array([[100, -50], [30, 70]], np.int8)
    inits: dict[str, np.ndarray] = {
        "s": SX, "z": np.uint8(128), "ws": SW, "wz": np.int8(0),
        "ys": np.float32(y_scale), "yz": np.asarray(y_zero_point).astype(ydtype),
        "mn": np.float32(bounds[0]), "mx": np.float32(bounds[1])}
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"])]
    if op == "Add":
        nodes.append(helper.make_node("Add", ["xd", "xd"], ["c"]))
    else:
        inits["wq"] = weights.reshape(2, 2, 1, 1) if op == "Conv" else weights.T.copy()
        nodes += [helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"]),
                  helper.make_node(op, ["xd", "wd"], ["c"])]
    if act == "Relu":
        nodes.append(helper.make_node("Relu", ["c"], ["a"]))
    elif opset < 11:
        nodes.append(helper.make_node("Clip", ["c"], ["a"], min=bounds[0], max=bounds[1]))
    else:
        nodes.append(helper.make_node("Clip", ["c", "mn", "mx"], ["a"]))
    nodes += [helper.make_node("QuantizeLinear", ["a", "ys", "yz"], ["yq"]),
              helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"])]
    shape = [1, 2, 4, 4] if op == "Conv" else [16, 2]
    graph = helper.make_graph(
        nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
        [numpy_helper.from_array(np.asarray(v), n) for n, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    return model


def _feeds(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    return {"x": np.random.default_rng(seed).uniform(-3, 3, shape).astype(np.float32)}


def _onnxruntime_fuses(model: onnx.ModelProto) -> bool:
    """Whether ONNX Runtime's optimized graph runs the group in an integer kernel."""
    return any(op.startswith("QLinear") or op == "QGemm"
               for op in onnxruntime_optimized_ops(model))


def _lowp_fuses(model: onnx.ModelProto) -> bool:
    return any(s.kind == "int" for s in Session(model).steps)


@pytest.mark.parametrize("opset", [10, 13])
def test_clip_onnxruntime_keeps_runs_the_conv_in_float(opset: int) -> None:
    """Clip(-2.5, 2.5) before a QuantizeLinear whose range is [-6.4, 6.35]: ONNX Runtime's
    Conv + Clip stay a float FusedConv. lowp ran an integer Conv with the clip in its
    output range: 5 of 32 outputs one unit apart (the float sums at half-way points, such as
    -1.525 / 0.05 = -30.5 rounding to -30 where the integer product gave -31)."""
    model = _model("Conv", "Clip", 0.05, 128, (-2.5, 2.5), opset)
    assert not _onnxruntime_fuses(model)
    assert not _lowp_fuses(model)
    assert_engines_agree(model, _feeds(model))


CASES = [  # (act, y zero point, bounds): ONNX Runtime 1.32 removes the activation or not
    ("Relu", 0, (0.0, 0.0)), ("Relu", 1, (0.0, 0.0)), ("Relu", 128, (0.0, 0.0)),
    ("Clip", 0, (0.0, 6.0)), ("Clip", 0, (0.0, 12.75)), ("Clip", 0, (0.0, 12.7)),
    ("Clip", 0, (0.025, 20.0)), ("Clip", 0, (0.0251, 20.0)), ("Clip", 128, (-6.4, 6.35)),
    ("Clip", 128, (-6.4, 6.3)), ("Clip", 128, (-6.38, 6.33)), ("Clip", 128, (-6.37, 6.33))]


@pytest.mark.parametrize("op", ["Conv", "MatMul", "Add"])
@pytest.mark.parametrize(("act", "zero_point", "bounds"), CASES)
def test_activation_is_removed_where_onnxruntime_removes_it(
        op: str, act: str, zero_point: int, bounds: tuple[float, float]) -> None:
    model = _model(op, act, 0.05, zero_point, bounds)
    if op != "Add":     # x + x of one 8-bit input is a table of its codes either way
        assert _lowp_fuses(model) is _onnxruntime_fuses(model)
    assert_engines_agree(model, _feeds(model, 1))


@settings(max_examples=30, deadline=None)
@example(scale=1.0, zero_point=1, lo_step=0, hi_step=0, int8=False)
@example(scale=0.375, zero_point=1, lo_step=1, hi_step=0, int8=False)
@example(scale=0.3172817826271057, zero_point=0, lo_step=0, hi_step=0, int8=False)
@example(scale=0.3, zero_point=0, lo_step=0, hi_step=0, int8=False)
@given(scale=st.floats(0.0009765625, 1.0, width=32), zero_point=st.integers(0, 255),
       lo_step=st.integers(-2, 2), hi_step=st.integers(-2, 2), int8=st.booleans())
def test_clip_removal_bound_is_onnxruntimes(scale: float, zero_point: int, lo_step: int,
                                            hi_step: int, int8: bool) -> None:
    """Bounds a few float32 steps around QuantizeDomain's MinUpper and MaxLower."""
    dtype = np.int8 if int8 else np.uint8
    zp = zero_point - 128 if int8 else zero_point
    info = np.iinfo(dtype)
    lower, upper = _q_domain(np.float32(scale), zp, int(info.min), int(info.max))
    lo, hi = lower, upper
    for _ in range(abs(lo_step)):
        lo = np.nextafter(lo, np.float32(np.sign(lo_step) * np.inf))
    for _ in range(abs(hi_step)):
        hi = np.nextafter(hi, np.float32(np.sign(hi_step) * np.inf))
    model = _model("MatMul", "Clip", scale, zp, (float(lo), float(hi)), ydtype=dtype)
    assert _lowp_fuses(model) is _onnxruntime_fuses(model) is (lo_step <= 0 <= hi_step)


def _clip6_model(bounds: tuple[float, float], *, conv: bool, readers: int = 1) -> onnx.ModelProto:
    nodes = []
    x = "x"
    if conv:
        nodes.append(helper.make_node("Conv", ["x", "w"], ["c"]))
        x = "c"
    nodes.append(helper.make_node("Clip", [x], ["y" if readers == 1 else "d"], name="bounded",
                                  min=bounds[0], max=bounds[1]))
    if readers > 1:
        nodes.append(helper.make_node("Add", [x, "d"], ["y"]))
    graph = helper.make_graph(
        nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])],
        [numpy_helper.from_array(np.ones((2, 2, 1, 1), np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 10)])
    model.ir_version = 7
    return model


BAD_BOUNDS = [(1.0, -1.0), (float("nan"), 1.0), (0.0, float("nan"))]
CLIP6_FEEDS = {"x": np.linspace(-3, 3, 32, dtype=np.float32).reshape(1, 2, 4, 4)}


@pytest.mark.parametrize("bounds", BAD_BOUNDS)
@pytest.mark.parametrize(("conv", "readers"), [(False, 1), (True, 2)])
def test_clip6_bounds_out_of_order_are_refused_as_in_onnxruntime(
        bounds: tuple[float, float], conv: bool, readers: int) -> None:
    model = _clip6_model(bounds, conv=conv, readers=readers)
    with pytest.raises(Exception, match="min_ <= max_"):
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    with pytest.raises(NodeError, match="'bounded'.*min must be at most max"):
        Session(model)


@pytest.mark.parametrize("bounds", BAD_BOUNDS)
def test_clip6_fused_into_a_conv_runs_as_in_onnxruntime(bounds: tuple[float, float]) -> None:
    """ONNX Runtime's ConvActivationFusion takes the Clip before its kernel would check it."""
    assert_engines_agree(_clip6_model(bounds, conv=True), CLIP6_FEEDS)


def test_qdq_conv_with_clip6_out_of_order_runs_as_in_onnxruntime() -> None:
    """Clip(1, -1): every output -1 in ONNX Runtime's float FusedConv; lowp stopped with
    'empty output range [148, 108]' when it put the clip into the integer Conv's range."""
    assert_engines_agree(_model("Conv", "Clip", 0.05, 128, (1.0, -1.0), 10),
                         CLIP6_FEEDS)
