"""The native RoiAlign (float32: docs/operators.md (O244), (O245), (O314)) equals its numpy
reference, lowp.runtime.float_detection.RoiAlign with the native kernels off, bit for bit
at 1 and 2 threads (NaNs of every payload, infinities and -0 in the input, rois partly or
wholly outside, on pixel halves, of negative extent; avg and max, half_pixel and
output_half_pixel, fixed and adaptive sampling), declines the rois the reference refuses,
and a feature-map sized node equals ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowp.errors import NodeError
from lowp.runtime import native_float
from lowp.runtime.float_registry import FLOAT_OPS
from tests.native.helpers import random_nans
from tests.runtime.node_agreement import assert_node_agrees

pytestmark = pytest.mark.skipif(native_float.kernels() == "none",
                                reason="the extension has no float kernels")
ROI_ALIGN = FLOAT_OPS["RoiAlign"]


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 2), c=st.integers(1, 4),
       h=st.integers(1, 9), w=st.integers(1, 9), r=st.integers(1, 6),
       out=st.tuples(st.integers(1, 4), st.integers(1, 4)), sampling=st.integers(0, 3),
       scale=st.sampled_from([1.0, 0.5, 0.25, 0.3]), mode=st.sampled_from(["avg", "max"]),
       half_pixel=st.booleans(), opset=st.sampled_from([10, 16]), snap=st.booleans(),
       specials=st.booleans(), threads=st.sampled_from([1, 2]))
def test_native_roi_align_equals_its_numpy_form(seed, n, c, h, w, r, out, sampling, scale,
                                                mode, half_pixel, opset, snap, specials,
                                                threads):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    if specials:
        pick = rng.random(x.shape)
        x[pick < 0.1] = random_nans(rng, int((pick < 0.1).sum()))
        x[(pick >= 0.1) & (pick < 0.15)] = np.inf
        x[(pick >= 0.15) & (pick < 0.2)] = -np.inf
        x[(pick >= 0.2) & (pick < 0.25)] = np.float32(-0.0)
    rois = rng.uniform(-3, 14, (r, 4)).astype(np.float32)
    if snap:
        rois = (np.round(rois * 2) / 2).astype(np.float32)
    batch = rng.integers(0, n, r)
    attrs = {"mode": mode, "output_height": out[0], "output_width": out[1],
             "sampling_ratio": sampling, "spatial_scale": scale,
             "coordinate_transformation_mode": "half_pixel" if half_pixel
             else "output_half_pixel"}
    try:
        with native_float.disabled():
            want = ROI_ALIGN(x, rois, batch, **attrs, opset=opset)
    except NodeError:
        with pytest.raises(NodeError), native_float.threads(threads):
            ROI_ALIGN(x, rois, batch, **attrs, opset=opset)
        return
    with native_float.threads(threads):
        got = ROI_ALIGN(x, rois, batch, **attrs, opset=opset)
        direct = native_float.roi_align(x, rois, batch, out[0], out[1], sampling, scale,
                                        half_pixel and opset >= 16, mode == "max")
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    assert direct is not None
    np.testing.assert_array_equal(direct.view(np.uint32), want.view(np.uint32))


def test_negative_extent_on_one_axis_declined() -> None:
    # a grid of -1 samples on y and 2 on x: the native call declines, the reference raises
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    rois = np.array([[0.0, 0.0, 1.0, 1.0], [0.0, 3.0, 2.0, 1.5]], np.float32)
    assert native_float.roi_align(x, rois, np.zeros(2, np.int64), 1, 1, 0, 1.0, True,
                                  False) is None
    with pytest.raises(NodeError, match="negative extent"):
        ROI_ALIGN(x, rois, np.zeros(2, np.int64), opset=16)


@pytest.mark.parametrize(("mode", "half_pixel", "sampling"), [
    ("avg", False, 2), ("avg", True, 0), ("max", True, 1), ("max", False, 2)])
def test_feature_map_equals_onnxruntime(mode: str, half_pixel: bool, sampling: int) -> None:
    # Mask R-CNN's pooling on a small stride-4 map: 40 proposals over a 160 x 128 image
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 16, 40, 32)).astype(np.float32)
    x[1, 3, 10:14, 5] = np.nan
    lo = rng.uniform(0, 0.8, (40, 2)) * (128, 160)
    size = rng.uniform(0.05, 0.5, (40, 2)) * (128, 160)
    rois = np.concatenate([lo, lo + size], 1).astype(np.float32)
    attrs = {"mode": mode, "output_height": 7, "output_width": 7, "sampling_ratio": sampling,
             "spatial_scale": 0.25,
             "coordinate_transformation_mode": "half_pixel" if half_pixel
             else "output_half_pixel"}
    assert_node_agrees("RoiAlign", [x, rois, rng.integers(0, 2, 40)], attrs, 16)
