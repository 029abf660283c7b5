"""Which NaN a float32 GlobalAveragePool gives over NaNs and infinities, as ONNX Runtime
computes it ((O201)): MLAS's global kernel (pooling.cpp MlasPoolGlobalKernel) sums four
lanes, each running sum the first operand, and ONNX Runtime's build combines them as
(l3 + l1) + (l2 + l0); lowp combined (l0 + l2) + (l1 + l3), so a window with NaNs in two
lanes kept the other one (90 of 150 random pools apart before)."""

from __future__ import annotations

import numpy as np
import onnx
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from lowp.runtime import native_backend as nb
from lowp.runtime import native_float
from lowp.runtime.backends import native_available
from lowp.runtime.float_nn import global_average_pool_channels_last

from .ort_agreement import assert_outputs_equal_onnxruntime_on_every_path, onnxruntime_run

#: quiet and signalling NaNs of both signs, both infinities
SPECIALS = np.array([0x7FC00111, 0xFFC00222, 0x7FA00001, 0xFF900003, 0x7F800000, 0xFF800000],
                    np.uint32).view(np.float32)
PATHS = ["numpy", *(nb.available_paths() if native_available() else [])]


def _global_average_pool(shape: tuple[int, ...]) -> onnx.ModelProto:
    # the channel count left symbolic: ONNX Runtime's NCHWc transformer leaves it alone
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [shape[0], "c", *shape[2:]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 9
    return model


def _input(shape: tuple[int, ...], density: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    return np.where(rng.random(shape) < density, rng.choice(SPECIALS, size=shape), x).astype(
        np.float32)


@settings(max_examples=25, deadline=None)
@given(channels=st.integers(1, 40),
       spatial=st.lists(st.integers(1, 20), min_size=1, max_size=3).filter(
           lambda s: int(np.prod(s)) <= 400),
       density=st.sampled_from([0.05, 0.3]), threads=st.sampled_from([1, 2]),
       seed=st.integers(0, 999))
def test_global_average_pool_keeps_onnxruntimes_nan(channels: int, spatial: list[int],
                                                    density: float, threads: int,
                                                    seed: int) -> None:
    shape = (1, channels, *spatial)
    assert_outputs_equal_onnxruntime_on_every_path(
        _global_average_pool(shape), {"x": _input(shape, density, seed)}, threads)


def test_global_average_pool_of_two_nan_lanes() -> None:
    # a row of 4: lanes l0..l3 hold one value each; NaNs in l0 and l1 (quiet, positive) and
    # in l2 and l3 (negative): ONNX Runtime gives (l3 + l1) + ..., l3's NaN
    x = np.array([0x7FC00001, 0x7FC00002, 0xFFC00003, 0xFFC00004], np.uint32).view(
        np.float32).reshape(1, 1, 4)
    want = onnxruntime_run(_global_average_pool(x.shape), {"x": x})[0]
    assert want.view(np.uint32).item() == 0xFFC00004
    assert_outputs_equal_onnxruntime_on_every_path(_global_average_pool(x.shape), {"x": x}, 1)


@settings(max_examples=15, deadline=None)
@given(channels=st.integers(1, 40), h=st.integers(1, 12), w=st.integers(1, 12),
       seed=st.integers(0, 999))
def test_channels_last_global_average_pool_keeps_onnxruntimes_nan(channels: int, h: int,
                                                                  w: int, seed: int) -> None:
    x = _input((1, channels, h, w), 0.3, seed)
    want = onnxruntime_run(_global_average_pool(x.shape), {"x": x})[0]
    cl = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    for path in PATHS:
        with native_float.disabled() if path == "numpy" else nb.use_path(path):
            got = global_average_pool_channels_last(cl)
        if got is None:         # numpy converts and pools channels-first
            continue
        np.testing.assert_array_equal(np.moveaxis(got, -1, 1).view(np.uint32),
                                      want.view(np.uint32), err_msg=path)
