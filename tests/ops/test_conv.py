"""Quantized convolution against torch (float64, exact), across geometry, groups and layouts."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.fixedpoint import Requant, RequantMode, requant_scale, requantize
from lowp.ops import Layout, conv
from lowp.ops.conv import conv_output_shape
from lowp.qparams import QType
from tests.ops._reference import torch_conv_acc
from tests.strategies import ACTIVATION_QTYPES, ConvCase, WindowGeometry, conv_cases

WEIGHT_QTYPES = st.sampled_from([QType.INT8, QType.UINT8])


def _draw_problem(data: st.DataObject | _Seeded, case: ConvCase, xq: QType, wq: QType,
                  per_channel: bool, with_bias: bool) -> dict:
    g = case.geometry
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    c = case.group * case.in_per_group
    m = case.group * case.out_per_group
    x = rng.integers(xq.qmin, xq.qmax + 1, size=(case.batch, c, *g.spatial)).astype(
        xq.numpy_dtype)
    w = rng.integers(wq.qmin, wq.qmax + 1, size=(m, case.in_per_group, *g.kernel)).astype(
        wq.numpy_dtype)
    zx = int(rng.integers(xq.qmin, xq.qmax + 1))
    zw = (rng.integers(wq.qmin, wq.qmax + 1, size=m) if per_channel
          else np.int64(rng.integers(wq.qmin, wq.qmax + 1)))
    bias = rng.integers(-5000, 5001, size=m).astype(np.int32) if with_bias else None
    return dict(x=x, w=w, zx=zx, zw=zw, bias=bias, m=m)


def _run(p: dict, case: ConvCase, layout: Layout, requant: Requant | None) -> np.ndarray:
    g = case.geometry
    x = p["x"] if layout is Layout.CHANNELS_FIRST else np.moveaxis(p["x"], 1, -1).copy()
    return conv(x, p["w"], p["bias"], x_zero_point=p["zx"], w_zero_point=p["zw"],
                requant=requant, strides=g.strides, pads=g.pads, dilations=g.dilations,
                group=case.group, layout=layout)


@given(case=conv_cases(), xq=ACTIVATION_QTYPES, wq=WEIGHT_QTYPES, per_channel=st.booleans(),
       with_bias=st.booleans(), data=st.data())
def test_accumulators_equal_torch(case: ConvCase, xq: QType, wq: QType, per_channel: bool,
                                  with_bias: bool, data: st.DataObject) -> None:
    p = _draw_problem(data, case, xq, wq, per_channel, with_bias)
    expected = torch_conv_acc(p["x"], p["w"], p["bias"], p["zx"], p["zw"], case.geometry,
                              case.group)
    acc = _run(p, case, Layout.CHANNELS_FIRST, None)
    assert acc.dtype == np.int32
    np.testing.assert_array_equal(acc, expected)
    # channels last is the transposed channels-first result
    acc_cl = _run(p, case, Layout.CHANNELS_LAST, None)
    np.testing.assert_array_equal(acc_cl, np.moveaxis(expected, 1, -1))


@given(case=conv_cases(), xq=ACTIVATION_QTYPES, per_channel_scale=st.booleans(),
       layout=st.sampled_from(list(Layout)), mode=st.sampled_from(list(RequantMode)),
       relu=st.booleans(), data=st.data())
def test_requantized_equals_requantize_of_reference(case: ConvCase, xq: QType,
                                                   per_channel_scale: bool, layout: Layout,
                                                   mode: RequantMode, relu: bool,
                                                   data: st.DataObject) -> None:
    p = _draw_problem(data, case, xq, QType.INT8, per_channel_scale, True)
    expected_acc = torch_conv_acc(p["x"], p["w"], p["bias"], p["zx"], p["zw"],
                                  case.geometry, case.group)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    # Output scale from the accumulator range so the outputs span the whole type.
    amax = np.abs(expected_acc).max(axis=tuple(i for i in range(expected_acc.ndim) if i != 1),
                                    initial=1) if per_channel_scale else \
        max(int(np.abs(expected_acc).max(initial=1)), 1)
    scale = (np.float32(xq.qmax - xq.qmin) / (2 * np.maximum(amax, 1)).astype(np.float32)
             * np.float32(rng.uniform(0.5, 2.0))).astype(np.float32)
    zy = int(rng.integers(xq.qmin, xq.qmax + 1))
    qmin = zy if relu else xq.qmin
    rq = Requant(scale, zy, qmin, xq.qmax, mode, xq.numpy_dtype)
    y = _run(p, case, layout, rq)
    s = scale.reshape((1, -1) + (1,) * case.geometry.rank) if scale.ndim else scale
    expected = requantize(expected_acc.astype(np.int32), s, zy, qmin, xq.qmax, mode)
    if layout is Layout.CHANNELS_LAST:
        expected = np.moveaxis(expected, 1, -1)
    assert y.dtype == xq.numpy_dtype
    np.testing.assert_array_equal(y, expected.astype(xq.numpy_dtype))


@given(case=conv_cases(rank=2), data=st.data())
def test_unit_scale_integer_inputs_are_exact(case: ConvCase, data: st.DataObject) -> None:
    """With s_x = s_w = s_y = 1 and an int32 output range, y == real result + zy exactly."""
    p = _draw_problem(data, case, QType.INT8, QType.INT8, False, False)
    rq = Requant(np.float32(1.0), 7, -(1 << 31), (1 << 31) - 1, RequantMode.FLOAT32, np.int32)
    y = _run(p, case, Layout.CHANNELS_FIRST, rq)
    # the real-valued convolution of the dequantized operands (scale 1), in float64
    xr = p["x"].astype(np.float64) - p["zx"]
    wr = p["w"].astype(np.float64) - float(p["zw"])
    real = torch_conv_acc(xr, wr, None, 0, np.int64(0), case.geometry, case.group)
    np.testing.assert_array_equal(y.astype(np.int64), real + 7)


def test_accumulators_wrap_modulo_2_32() -> None:
    """8-bit products summed over K = 70000 overflow int32 and wrap like hardware (O1)."""
    x = np.full((1, 70000, 1), 255, np.uint8)
    w = np.full((1, 70000, 1), 127, np.int8)
    acc = conv(x, w, np.array([5], np.int32), x_zero_point=0, w_zero_point=0, requant=None)
    exact = 70000 * 255 * 127 + 5
    assert acc.dtype == np.int32 and acc[0, 0, 0] == (exact + 2**31) % 2**32 - 2**31


def test_sixteen_bit_operands_accumulate_in_int64() -> None:
    """int16 x uint16 products would overflow int32: 16-bit layers accumulate in int64 (S8)."""
    x = np.full((1, 4, 3), 65535, np.uint16)
    w = np.full((2, 4, 2), 32767, np.int16)
    acc = conv(x, w, np.array([5, -5], np.int32), x_zero_point=0, w_zero_point=0,
               requant=None)
    assert acc.dtype == np.int64 and acc[0, 0, 0] == 8 * 65535 * 32767 + 5
    assert acc.shape == (1, 2, 2)


def test_depthwise_on_56x56_channels_last_is_fast_and_exact() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (1, 56, 56, 32)).astype(np.uint8)
    w = rng.integers(-128, 128, (32, 1, 3, 3)).astype(np.int8)
    acc = conv(x, w, None, x_zero_point=128, w_zero_point=np.arange(32) - 16, requant=None,
               pads=[1, 1, 1, 1], group=32, layout=Layout.CHANNELS_LAST)
    ref = torch_conv_acc(np.moveaxis(x, -1, 1), w, None, 128, np.arange(32) - 16,
                         _geom((56, 56), (3, 3), (1, 1), (1, 1, 1, 1)), 32)
    np.testing.assert_array_equal(acc, np.moveaxis(ref, 1, -1))


def test_dense_56x56_stride2_asymmetric_pads() -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, (2, 16, 56, 56)).astype(np.int8)
    w = rng.integers(-128, 128, (24, 16, 3, 3)).astype(np.int8)
    bias = rng.integers(-1000, 1000, 24).astype(np.int32)
    acc = conv(x, w, bias, x_zero_point=-3, w_zero_point=0, requant=None, strides=[2, 2],
               pads=[0, 0, 1, 1])
    ref = torch_conv_acc(x, w, bias, -3, np.int64(0),
                         _geom((56, 56), (3, 3), (2, 2), (0, 0, 1, 1)), 1)
    np.testing.assert_array_equal(acc, ref)


def _geom(spatial: tuple[int, ...], kernel: tuple[int, ...], strides: tuple[int, ...],
          pads: tuple[int, ...]) -> WindowGeometry:
    return WindowGeometry(spatial, kernel, strides, pads, (1,) * len(spatial))


def test_output_shape_and_errors() -> None:
    assert conv_output_shape((5, 7), (3, 3), (2, 1), (1, 0, 1, 2), (1, 2)) == (3, 5)
    x = np.zeros((1, 4, 5), np.uint8)
    with pytest.raises(ValueError, match="group"):
        conv(x, np.zeros((2, 3, 1), np.int8), None, x_zero_point=0, w_zero_point=0,
             requant=None, group=2)
    with pytest.raises(ValueError, match="kernel extent"):
        conv(x, np.zeros((2, 4, 9), np.int8), None, x_zero_point=0, w_zero_point=0,
             requant=None)


FIXED_CASES = [
    # rank-3, dilated, grouped, asymmetric pads
    ConvCase(WindowGeometry((5, 4, 6), (3, 2, 2), (2, 1, 3), (1, 0, 2, 0, 1, 1), (2, 1, 2)),
             2, 2, 3, 2),
    # batch 0, depthwise rank 1
    ConvCase(WindowGeometry((9,), (3,), (2,), (2, 1), (3,)), 0, 4, 1, 2),
    # pointwise 2-d, many channels
    ConvCase(WindowGeometry((7, 5), (1, 1), (1, 2), (0, 0, 0, 0), (1, 1)), 1, 1, 40, 24),
]


@pytest.mark.parametrize("case", FIXED_CASES)
@pytest.mark.parametrize("per_channel", [False, True])
def test_fixed_geometries(case: ConvCase, per_channel: bool) -> None:
    p = _draw_problem(_Seeded(7), case, QType.UINT8, QType.INT8, per_channel, True)
    expected = torch_conv_acc(p["x"], p["w"], p["bias"], p["zx"], p["zw"], case.geometry,
                              case.group)
    np.testing.assert_array_equal(_run(p, case, Layout.CHANNELS_FIRST, None), expected)
    np.testing.assert_array_equal(_run(p, case, Layout.CHANNELS_LAST, None),
                                  np.moveaxis(expected, 1, -1))


class _Seeded:
    """Stands in for hypothesis' `data` object outside @given: draws return a fixed seed."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def draw(self, strategy: object) -> int:
        return self.seed


def _ort_qlinear_conv(x: np.ndarray, w: np.ndarray, bias: np.ndarray, sx: np.float32, zx: int,
                      sw: np.ndarray, sy: np.float32, zy: int, case: ConvCase) -> np.ndarray:
    g = case.geometry
    node = helper.make_node("QLinearConv", ["x", "sx", "zx", "w", "sw", "zw", "sy", "zy", "b"],
                            ["y"], kernel_shape=list(g.kernel), strides=list(g.strides),
                            pads=list(g.pads), dilations=list(g.dilations), group=case.group)
    consts = {"sx": np.array(sx, np.float32), "zx": np.array(zx, np.uint8), "w": w, "sw": sw,
              "zw": np.zeros(w.shape[0], np.int8), "sy": np.array(sy, np.float32),
              "zy": np.array(zy, np.uint8), "b": bias}
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.UINT8, None)],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, None)],
        [numpy_helper.from_array(v, k) for k, v in consts.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


@given(case=conv_cases(rank=2).filter(lambda c: c.batch > 0), data=st.data())
def test_equals_onnxruntime_qlinear_conv(case: ConvCase, data: st.DataObject) -> None:
    """Float32 requantization (R2) with per-channel weight scales equals ONNX Runtime."""
    p = _draw_problem(data, case, QType.UINT8, QType.INT8, False, True)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    sx, sy = np.float32(rng.uniform(0.01, 0.05)), np.float32(rng.uniform(0.05, 0.5))
    sw = rng.uniform(0.001, 0.01, p["m"]).astype(np.float32)
    zy = int(rng.integers(0, 256))
    w = np.clip(p["w"], -127, 127).astype(np.int8)
    rq = Requant(requant_scale(sx, sw, sy), zy, 0, 255, RequantMode.FLOAT32, np.uint8)
    g = case.geometry
    y = conv(p["x"], w, p["bias"], x_zero_point=p["zx"], w_zero_point=0, requant=rq,
             strides=g.strides, pads=g.pads, dilations=g.dilations, group=case.group)
    ref = _ort_qlinear_conv(p["x"], w, p["bias"], sx, p["zx"], sw, sy, zy, case)
    np.testing.assert_array_equal(y, ref)
