"""Linear Resize of the last two axes equals ONNX Runtime bit for bit (its evaluation order).

A QDQ Resize runs in float between DequantizeLinear and QuantizeLinear; values that land
near a rounding half-way point quantize differently unless the float32 sums are formed in
the same order as ONNX Runtime's bilinear kernel, and ONNX Runtime's integer Resize
truncates the same sums.
"""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import native_backend, native_float
from lowp.runtime.float_nn import Resize, resize_channels_last

MODES = ["half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel"]
DTYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.uint8): TensorProto.UINT8,
          np.dtype(np.int8): TensorProto.INT8}


def _ort_resize(x: np.ndarray, scales: np.ndarray, mode: str) -> np.ndarray:
    elem = DTYPES[x.dtype]
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear",
                            coordinate_transformation_mode=mode)
    graph = helper.make_graph([node], "resize",
                              [helper.make_tensor_value_info("x", elem, [None] * 4)],
                              [helper.make_tensor_value_info("y", elem, [None] * 4)],
                              [numpy_helper.from_array(scales, "scales")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


@given(dtype=st.sampled_from(sorted(DTYPES, key=str)), mode=st.sampled_from(MODES),
       h=st.integers(1, 6), w=st.integers(1, 6),
       sy=st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0]), sx=st.sampled_from([0.5, 2.0, 2.5]),
       seed=st.integers(0, 2**16))
def test_bilinear_resize_equals_onnxruntime(dtype, mode, h, w, sy, sx, seed):
    rng = np.random.default_rng(seed)
    if dtype.kind == "f":
        # dequantized values: multiples of a scale, where half-way points are common
        x = (rng.integers(-128, 128, (2, 3, h, w)) * np.float32(0.0123)).astype(np.float32)
    else:
        info = np.iinfo(dtype)
        x = rng.integers(info.min, info.max + 1, (2, 3, h, w)).astype(dtype)
    scales = np.array([1, 1, sy, sx], np.float32)
    if int(h * sy) == 0 or int(w * sx) == 0:
        return
    got = Resize(x, None, scales, mode="linear", coordinate_transformation_mode=mode,
                 opset=13)
    want = _ort_resize(x, scales, mode)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def _ort_cubic_resize(x: np.ndarray, sizes: np.ndarray, mode: str, exclude_outside: int
                      ) -> np.ndarray:
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="cubic",
                            coordinate_transformation_mode=mode, cubic_coeff_a=-0.75,
                            exclude_outside=exclude_outside)
    graph = helper.make_graph([node], "resize",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                             [None] * x.ndim)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                             [None] * x.ndim)],
                              [numpy_helper.from_array(sizes, "sizes")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


@given(mode=st.sampled_from(MODES), exclude_outside=st.sampled_from([0, 1]),
       rank=st.sampled_from([2, 4]), h=st.integers(1, 9), w=st.integers(1, 9),
       oh=st.integers(1, 17), ow=st.integers(1, 17), seed=st.integers(0, 2**16))
def test_bicubic_resize_equals_onnxruntime(mode, exclude_outside, rank, h, w, oh, ow, seed):
    # ONNX Runtime's ResizeBiCubic interpolates each source row along x first, then those
    # along y; lowp went axis by axis, y first (vit_s_focus's position embeddings, 37 x 37
    # to 16 x 16 given `sizes`: 1 ulp apart on part of the values, identical after)
    rng = np.random.default_rng(seed)
    shape = (h, w) if rank == 2 else (2, 3, h, w)
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    sizes = np.array(shape[:-2] + (oh, ow), np.int64)
    got = Resize(x, None, None, sizes, mode="cubic", coordinate_transformation_mode=mode,
                 cubic_coeff_a=-0.75, exclude_outside=exclude_outside, opset=13)
    np.testing.assert_array_equal(got, _ort_cubic_resize(x, sizes, mode, exclude_outside))


# NaNs of distinct payloads (signalling and quiet, both signs) for the four places an output
# reads, and an infinity (times a zero weight, x86's default NaN)
_NANS = np.array([0x7F811111, 0xFFC22222, 0x7FC33333, 0xFF844444], np.uint32).view(np.float32)


@pytest.mark.parametrize("places", [p for r in (2, 3, 4)
                                    for p in itertools.combinations(range(4), r)])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("path", native_backend.available_paths())
def test_bilinear_resize_keeps_onnxruntimes_nan(places, channels_last, path):
    """Of the NaNs an output's sum meets, ONNX Runtime's UpsampleBilinear keeps the running
    sum's (docs/operators.md (O355)): lowp's numpy form, and its native kernels on
    channels-first planes and on channels-last data, on every path, give its bits; here
    2 x 2 -> 3 x 3, whose centre reads the four places with weight 1/4 each, the other
    outputs some of them with zero weights next to an infinity."""
    x = np.zeros((1, 3, 2, 2), np.float32)
    x[0, 2] = np.inf
    for k in places:
        x[0, :, k // 2, k % 2] = _NANS[k]
    x[0, 2, 0, 0] = -np.inf
    scales = np.array([1, 1, 1.5, 1.5], np.float32)
    want = _ort_resize(x, scales, "half_pixel").view(np.uint32)

    def resize() -> np.ndarray:
        if not channels_last:
            return Resize(x, None, scales, mode="linear", opset=13)
        y = resize_channels_last(np.ascontiguousarray(np.moveaxis(x, 1, -1)), None, scales,
                                 mode="linear", opset=13)
        assert y is not None
        return np.moveaxis(y, -1, 1)

    with native_backend.use_path(path):
        got = resize()
    with native_float.disabled():
        numpy_form = resize()
    np.testing.assert_array_equal(numpy_form.view(np.uint32), want)
    np.testing.assert_array_equal(got.view(np.uint32), want)
