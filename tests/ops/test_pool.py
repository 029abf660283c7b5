"""Quantized pooling against brute-force loops, ONNX Runtime (MaxPool) and torch (float)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.fixedpoint import RequantMode, requantize
from lowp.ops import Layout, average_pool, global_average_pool, max_pool, pool_output_shape
from lowp.qparams import QParams, QType, dequantize, quantize
from tests.ops._reference import brute_pool
from tests.strategies import ACTIVATION_QTYPES, WindowGeometry, window_geometries

POOL_GEOMETRY = window_geometries(pad_below_kernel=True)


def _input(seed: int, qt: QType, geom: WindowGeometry, n: int = 2, c: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(qt.qmin, qt.qmax + 1, (n, c, *geom.spatial)).astype(qt.numpy_dtype)


def _ort_max_pool(x: np.ndarray, geom: WindowGeometry, ceil_mode: bool) -> np.ndarray:
    elem = TensorProto.UINT8 if x.dtype == np.uint8 else TensorProto.INT8
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=list(geom.kernel),
                            strides=list(geom.strides), pads=list(geom.pads),
                            dilations=list(geom.dilations), ceil_mode=int(ceil_mode))
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", elem, None)],
                              [helper.make_tensor_value_info("y", elem, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


@given(geom=POOL_GEOMETRY, qt=ACTIVATION_QTYPES, ceil_mode=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_max_pool_matches_brute_force_and_onnxruntime(geom: WindowGeometry, qt: QType,
                                                      ceil_mode: bool, seed: int) -> None:
    x = _input(seed, qt, geom)
    y = max_pool(x, kernel_shape=geom.kernel, strides=geom.strides, pads=geom.pads,
                 dilations=geom.dilations, ceil_mode=ceil_mode)
    out = pool_output_shape(geom.spatial, geom.kernel, geom.strides, geom.pads,
                            geom.dilations, ceil_mode)
    taps, _ = brute_pool(x, geom, out, include_pad=False)
    lowest = np.full(x.shape[:2], np.iinfo(x.dtype).min, x.dtype)   # window wholly in padding
    ref = np.stack([np.max(t, axis=0) if t else lowest for t in taps],
                   axis=-1).reshape(y.shape)
    assert y.dtype == x.dtype
    np.testing.assert_array_equal(y, ref)
    np.testing.assert_array_equal(y, _ort_max_pool(x, geom, ceil_mode))
    y_cl = max_pool(np.moveaxis(x, 1, -1), kernel_shape=geom.kernel, strides=geom.strides,
                    pads=geom.pads, dilations=geom.dilations, ceil_mode=ceil_mode,
                    layout=Layout.CHANNELS_LAST)
    np.testing.assert_array_equal(y_cl, np.moveaxis(y, 1, -1))


@given(geom=POOL_GEOMETRY, qt=ACTIVATION_QTYPES, ceil_mode=st.booleans(),
       include_pad=st.booleans(), mode=st.sampled_from(list(RequantMode)),
       layout=st.sampled_from(list(Layout)), seed=st.integers(0, 2**32 - 1))
def test_average_pool_matches_brute_force(geom: WindowGeometry, qt: QType, ceil_mode: bool,
                                          include_pad: bool, mode: RequantMode,
                                          layout: Layout, seed: int) -> None:
    x = _input(seed, qt, geom)
    rng = np.random.default_rng(seed + 1)
    zx, zy = (int(v) for v in rng.integers(qt.qmin, qt.qmax + 1, 2))
    sx, sy = np.float32(rng.uniform(0.01, 0.1)), np.float32(rng.uniform(0.01, 0.1))
    xin = x if layout is Layout.CHANNELS_FIRST else np.moveaxis(x, 1, -1)
    y = average_pool(xin, x_zero_point=zx, x_scale=sx, y_scale=sy, y_zero_point=zy,
                     qmin=qt.qmin, qmax=qt.qmax, kernel_shape=geom.kernel,
                     strides=geom.strides, pads=geom.pads, dilations=geom.dilations,
                     count_include_pad=include_pad, ceil_mode=ceil_mode, layout=layout,
                     mode=mode)
    if layout is Layout.CHANNELS_LAST:
        y = np.moveaxis(y, -1, 1)
    out = pool_output_shape(geom.spatial, geom.kernel, geom.strides, geom.pads,
                            geom.dilations, ceil_mode)
    assert y.dtype == x.dtype
    if mode is RequantMode.FLOAT32:
        # (O8a) restated: float32 taps added one after another, divided, zy added, rounded
        xf = (x.astype(np.int32) - zx).astype(np.float32) * sx
        taps, counts = brute_pool(xf, geom, out, include_pad=include_pad)
        means = []
        for t, c in zip(taps, counts.ravel(), strict=True):
            acc = np.zeros(x.shape[:2], np.float32)
            for v in t:
                acc = (acc + v).astype(np.float32)
            means.append(acc / np.float32(max(c, 1)))
        mean = np.stack(means, axis=-1).reshape(y.shape)
        ref = np.clip(np.rint(mean / sy + np.float32(zy)), qt.qmin, qt.qmax).astype(x.dtype)
        np.testing.assert_array_equal(y, ref)
        return
    taps, counts = brute_pool(x.astype(np.int64) - zx, geom, out, include_pad=include_pad)
    sums = np.stack([np.sum(t, axis=0) if t else np.zeros(x.shape[:2], np.int64)
                     for t in taps], axis=-1).reshape(y.shape)
    # (O9) restated: M = float32(float32(sx / sy) / float32(count))
    m = np.array([np.float32(np.float32(sx / sy) / np.float32(max(c, 1)))
                  for c in counts.ravel()], np.float32).reshape(counts.shape)
    ref = requantize(sums.astype(np.int32), m, zy, qt.qmin, qt.qmax, mode)
    np.testing.assert_array_equal(y, ref)


@given(k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 1), n=st.integers(4, 9),
       ceil_mode=st.booleans(), include_pad=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_average_pool_within_one_unit_of_torch(k: int, s: int, p: int, n: int,
                                               ceil_mode: bool, include_pad: bool,
                                               seed: int) -> None:
    """Symmetric 2-d geometry where torch's float avg_pool2d shares the ONNX semantics."""
    p = min(p, k // 2)
    rng = np.random.default_rng(seed)
    qx = QParams(np.float32(0.05), np.int32(3), QType.INT8, -128, 127)
    qy = QParams(np.float32(0.04), np.int32(-5), QType.INT8, -128, 127)
    x = rng.integers(-128, 128, (1, 2, n, n + 1)).astype(np.int8)
    y = average_pool(x, x_zero_point=3, x_scale=0.05, y_scale=0.04, y_zero_point=-5,
                     qmin=-128, qmax=127, kernel_shape=[k, k], strides=[s, s],
                     pads=[p, p, p, p], count_include_pad=include_pad, ceil_mode=ceil_mode)
    ref = F.avg_pool2d(torch.from_numpy(dequantize(x, qx).astype(np.float64)), k, s, p,
                       ceil_mode=ceil_mode, count_include_pad=include_pad).numpy()
    expected = quantize(ref.astype(np.float32), qy)
    assert y.shape == expected.shape
    assert np.abs(y.astype(np.int64) - expected).max(initial=0) <= 1


@given(qt=ACTIVATION_QTYPES, rank=st.integers(1, 3), layout=st.sampled_from(list(Layout)),
       seed=st.integers(0, 2**32 - 1))
def test_global_average_pool(qt: QType, rank: int, layout: Layout, seed: int) -> None:
    rng = np.random.default_rng(seed)
    spatial = tuple(int(v) for v in rng.integers(1, 6, rank))
    x = rng.integers(qt.qmin, qt.qmax + 1, (2, 3, *spatial)).astype(qt.numpy_dtype)
    xin = x if layout is Layout.CHANNELS_FIRST else np.moveaxis(x, 1, -1)
    y = global_average_pool(xin, x_zero_point=1, x_scale=0.02, y_scale=0.03, y_zero_point=2,
                            qmin=qt.qmin, qmax=qt.qmax, layout=layout)
    if layout is Layout.CHANNELS_LAST:
        y = np.moveaxis(y, -1, 1)
    axes = tuple(range(2, x.ndim))
    sums = (x.astype(np.int64) - 1).sum(axis=axes, keepdims=True).astype(np.int32)
    count = int(np.prod(spatial))
    # (O59b): MLAS's multiplier of QLinearGlobalAveragePool
    m = np.float32(np.float32(0.02) / np.float32(np.float32(0.03) * np.float32(count)))
    np.testing.assert_array_equal(y, requantize(sums, m, 2, qt.qmin, qt.qmax))
    assert y.shape == (2, 3) + (1,) * rank


def test_ceil_mode_drops_window_starting_in_end_padding() -> None:
    # in=4, k=2, s=2, pads (0, 1): ceil((4+1-2)/2)+1 = 3, last window starts at 4 == in + 0
    assert pool_output_shape((4,), (2,), (2,), (0, 1), (1,), True) == (2,)
    assert pool_output_shape((5,), (2,), (2,), (0, 0), (1,), True) == (3,)


def test_pool_errors() -> None:
    # past the input by two strides: a negative size, refused as ONNX Runtime does; by one,
    # an empty output (docs/operators.md (O181))
    with pytest.raises(ValueError):
        max_pool(np.zeros((1, 1, 2), np.uint8), kernel_shape=[4])
    assert max_pool(np.zeros((1, 1, 2), np.uint8), kernel_shape=[3]).shape == (1, 1, 0)


def test_onnx_model_helper_is_valid() -> None:
    geom = WindowGeometry((4,), (2,), (1,), (0, 0), (1,))
    x = np.arange(8, dtype=np.uint8).reshape(1, 2, 4)
    assert _ort_max_pool(x, geom, False).shape == (1, 2, 3)
    assert onnx.__version__


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_max_pool_window_without_input_taps_gives_lowest_value(dtype: type) -> None:
    geom = WindowGeometry((2,), (2,), (1,), (1, 1), (3,))     # taps at -1 and 2: all padding
    x = np.array([[[5, 6]]], dtype)
    y = max_pool(x, kernel_shape=[2], pads=[1, 1], dilations=[3])
    assert y.tolist() == [[[np.iinfo(dtype).min]]]
    np.testing.assert_array_equal(y, _ort_max_pool(x, geom, False))


def _ort_qlinear_average_pool(x: np.ndarray, geom: WindowGeometry, include_pad: bool,
                              sx: np.float32, zx: int, sy: np.float32, zy: int) -> np.ndarray:
    """ONNX Runtime's channels-last QLinearAveragePool (what its layout pass makes of a QDQ
    AveragePool between quantized convolutions), on channels-first x and y."""
    elem = TensorProto.UINT8 if x.dtype == np.uint8 else TensorProto.INT8
    node = helper.make_node("QLinearAveragePool", ["x", "sx", "zx", "sy", "zy"], ["y"],
                            domain="com.microsoft", kernel_shape=list(geom.kernel),
                            strides=list(geom.strides), pads=list(geom.pads),
                            count_include_pad=int(include_pad), channels_last=1)
    inits = [numpy_helper.from_array(np.array(sx, np.float32), "sx"),
             numpy_helper.from_array(np.array(zx, x.dtype), "zx"),
             numpy_helper.from_array(np.array(sy, np.float32), "sy"),
             numpy_helper.from_array(np.array(zy, x.dtype), "zy")]
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", elem, None)],
                              [helper.make_tensor_value_info("y", elem, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 9
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    return np.moveaxis(sess.run(None, {"x": np.ascontiguousarray(np.moveaxis(x, 1, -1))})[0],
                       -1, 1)


@given(geom=window_geometries(pad_below_kernel=True, max_dilation=1), qt=ACTIVATION_QTYPES,
       include_pad=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_average_pool_equals_onnxruntime_qlinear_average_pool(geom: WindowGeometry, qt: QType,
                                                              include_pad: bool,
                                                              seed: int) -> None:
    """Outside ceil mode (see docs/operators.md) lowp equals ONNX Runtime exactly."""
    x = _input(seed, qt, geom)
    rng = np.random.default_rng(seed + 2)
    zx, zy = (int(v) for v in rng.integers(qt.qmin, qt.qmax + 1, 2))
    sx, sy = np.float32(rng.uniform(0.01, 0.1)), np.float32(rng.uniform(0.01, 0.1))
    y = average_pool(x, x_zero_point=zx, x_scale=sx, y_scale=sy, y_zero_point=zy,
                     qmin=qt.qmin, qmax=qt.qmax, kernel_shape=geom.kernel,
                     strides=geom.strides, pads=geom.pads, count_include_pad=include_pad)
    ref = _ort_qlinear_average_pool(x, geom, include_pad, sx, zx, sy, zy)
    np.testing.assert_array_equal(y, ref)


def test_ceil_mode_overhang_is_not_counted() -> None:
    """The divisor of ONNX AveragePool / PyTorch; QLinearAveragePool would give 80 last."""
    x = np.array([[[36, 101, 178, 240]]], np.uint8)
    y = average_pool(x, x_zero_point=0, x_scale=1.0, y_scale=1.0, y_zero_point=0, qmin=0,
                     qmax=255, kernel_shape=[3], strides=[2], pads=[1, 1],
                     count_include_pad=True, ceil_mode=True)
    assert y.tolist() == [[[46, 173, 120]]]
