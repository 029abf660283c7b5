"""RoiAlign gives ONNX Runtime's bytes (docs/operators.md (O244), (O245)): its sample
positions and bilinear weights, the average summed sample by sample from +0 and divided by
the count, max mode's largest weighted corner (not the interpolated value), half_pixel and
output_half_pixel, sampling_ratio 0 and > 0, float32 and float64; drawn rois and geometry,
both backends at 1 and 2 threads."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnxruntime.capi.onnxruntime_pybind11_state import Fail

from lowp.errors import NodeError, UnsupportedOpError
from lowp.runtime.float_ops import FLOAT_OPS

from .node_agreement import assert_node_agrees, assert_node_agrees_or_both_refuse


def test_max_mode_takes_the_largest_weighted_corner() -> None:
    # one sample between four values: the interpolated value is 2.5, ONNX Runtime's max
    # mode gives the largest of the four weighted corners, 0.25 * 4
    x = np.array([[[[1, 2], [3, 4]]]], np.float32)
    rois = np.array([[0.0, 0.0, 1.0, 1.0]], np.float32)
    want = assert_node_agrees("RoiAlign", [x, rois, np.zeros(1, np.int64)],
                              {"mode": "max", "sampling_ratio": 1,
                               "coordinate_transformation_mode": "output_half_pixel"}, 16)
    assert want.reshape(-1).tolist() == [1.0]


def test_empty_bins_are_zero() -> None:
    # half_pixel keeps a roi of negative height: no sample in its bins, +0 (not 0 / 0)
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    rois = np.array([[1.0, 3.0, 2.0, 2.5]], np.float32)
    want = assert_node_agrees("RoiAlign", [x, rois, np.zeros(1, np.int64)],
                              {"output_height": 2, "output_width": 2}, 16)
    assert not np.isnan(want).any()


def test_negative_extent_on_one_axis_is_refused_as_onnxruntime_does() -> None:
    # a grid of -1 samples on y and 2 on x: ONNX Runtime's integer overflow error
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    rois = np.array([[0.0, 3.0, 2.0, 1.5]], np.float32)
    with pytest.raises(Fail):
        assert_node_agrees("RoiAlign", [x, rois, np.zeros(1, np.int64)], {}, 16)
    assert_node_agrees_or_both_refuse("RoiAlign", [x, rois, np.zeros(1, np.int64)], {}, 16)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("half_pixel", [True, False])
def test_meeting_nans_as_onnxruntime(dtype: type, half_pixel: bool) -> None:
    # NaNs of other payloads and signs among infinities (an infinity times a zero weight is
    # x86's default NaN): where two meet in avg mode's sums, the first operand's is handed
    # on ((O245): numpy's add may keep the second's)
    rng = np.random.default_rng(3 + half_pixel)
    x = rng.choice(np.array([np.inf, -np.inf, 1.0, -0.0, 2.5, -3.0]), (1, 3, 6, 7))
    pick = rng.random(x.shape) < 0.3
    nan = np.uint64(0x7FF0000000000000) | rng.integers(1, 1 << 51, int(pick.sum()),
                                                       dtype=np.uint64)
    nan |= rng.integers(0, 2, nan.size, dtype=np.uint64) << np.uint64(63)
    x[pick] = nan.view(np.float64)
    x = x.astype(dtype)                 # (float32: the payload's high bits, kept)
    rois = (np.round(rng.uniform(-2, 9, (6, 4)) * 2) / 2).astype(dtype)
    rois[:, 2:] = np.maximum(rois[:, 2:], rois[:, :2])
    for sampling_ratio in (0, 2):
        assert_node_agrees(
            "RoiAlign", [x, rois, np.zeros(6, np.int64)],
            {"output_height": 2, "output_width": 3, "sampling_ratio": sampling_ratio,
             "coordinate_transformation_mode": "half_pixel" if half_pixel
             else "output_half_pixel"}, 16)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_drawn_rois_equal_onnxruntime(data: st.DataObject) -> None:
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    n, c = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3))
    h, w = data.draw(st.integers(1, 8)), data.draw(st.integers(1, 8))
    r = data.draw(st.integers(0, 4))
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    if data.draw(st.booleans()):
        x[rng.random(x.shape) < 0.1] = np.nan
    rois = rng.uniform(-3, 12, (r, 4)).astype(dtype)
    if data.draw(st.booleans()):
        rois = np.round(rois * 2) / 2
    attrs = {"mode": data.draw(st.sampled_from(["avg", "max"])),
             "output_height": data.draw(st.integers(1, 4)),
             "output_width": data.draw(st.integers(1, 4)),
             "sampling_ratio": data.draw(st.integers(0, 3)),
             "spatial_scale": data.draw(st.sampled_from([1.0, 0.5, 0.25, 0.3]))}
    opset = data.draw(st.sampled_from([10, 16]))
    if opset == 16 and data.draw(st.booleans()):
        attrs["coordinate_transformation_mode"] = data.draw(
            st.sampled_from(["half_pixel", "output_half_pixel"]))
    # (a roi of negative extent on one axis only is ONNX Runtime's overflow error)
    assert_node_agrees_or_both_refuse(
        "RoiAlign", [x, rois, rng.integers(0, n, r).astype(np.int64)], attrs, opset)


@pytest.mark.parametrize(("rois", "indices", "match"), [
    (np.zeros((1, 3), np.float32), np.zeros(1, np.int64), "must be"),
    (np.zeros((2, 4), np.float32), np.zeros(1, np.int64), "must be"),
    (np.zeros((1, 4), np.float32), np.array([3], np.int64), "out of range"),
    (np.array([[0, 0, np.nan, 1]], np.float32), np.zeros(1, np.int64), "NaN"),
])
def test_bad_inputs_raise(rois: np.ndarray, indices: np.ndarray, match: str) -> None:
    with pytest.raises(NodeError, match=match):
        FLOAT_OPS["RoiAlign"](np.zeros((1, 1, 2, 2), np.float32), rois, indices, opset=16)


def test_float16_is_refused_as_onnxruntime_does() -> None:
    with pytest.raises(UnsupportedOpError, match="float32 and float64"):
        FLOAT_OPS["RoiAlign"](np.zeros((1, 1, 2, 2), np.float16),
                              np.zeros((1, 4), np.float16), np.zeros(1, np.int64), opset=16)
