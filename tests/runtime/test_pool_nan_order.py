"""Which NaN a float32 GlobalAveragePool gives over NaNs and infinities, as ONNX Runtime
computes it ((O201)): MLAS's global kernel (pooling.cpp MlasPoolGlobalKernel) sums four
lanes, each running sum the first operand, and ONNX Runtime's build combines them as
(l3 + l1) + (l2 + l0); lowp combined (l0 + l2) + (l1 + l3), so a window with NaNs in two
lanes kept the other one (90 of 150 random pools apart before)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from lowp.runtime import native_backend as nb
from lowp.runtime import native_float
from lowp.runtime.backends import native_available
from lowp.runtime.float_nn import GlobalAveragePool, global_average_pool_channels_last

from .ort_agreement import (
    assert_float_bits_agree,
    assert_outputs_equal_onnxruntime_on_every_path,
    onnxruntime_run,
)

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


def test_numpy_global_average_pool_keeps_onnxruntimes_nan() -> None:
    # the numpy form (native kernels off) in the same order
    for seed in range(4):
        x = _input((1, 7, 5, 3), 0.3, seed)
        want = onnxruntime_run(_global_average_pool(x.shape), {"x": x})[0]
        with native_float.disabled():
            got = GlobalAveragePool(x)
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def _lp_pool(op: str, shape: tuple[int, ...], opset: int, **attrs: object) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node(op, ["x"], ["y"], **attrs)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    return model


@pytest.mark.parametrize(("op", "opset", "kept"), [
    ("LpPool", 11, 0x7FC00111), ("LpPool", 18, 0x7FC00222), ("LpPool", 22, 0x7FC00222),
    ("GlobalLpPool", 11, 0x7FC00111), ("GlobalLpPool", 18, 0x7FC00111)])
@pytest.mark.parametrize("threads", [1, 2])
def test_lp_pool_of_two_nans(op: str, opset: int, kept: int, threads: int) -> None:
    # Pool<float, LpPool> adds the term to the running sum, LpPoolV18 the running sum to
    # the term: the first NaN, or the last
    x = np.array([0x7FC00111, 0xFFC00222], np.uint32).view(np.float32).reshape(1, 1, 2)
    attrs: dict[str, object] = {"p": 2}
    if op == "LpPool":
        attrs["kernel_shape"] = [2]
    model = _lp_pool(op, x.shape, opset, **attrs)
    assert onnxruntime_run(model, {"x": x})[0].view(np.uint32).item() == kept
    assert_float_bits_agree(model, {"x": x}, threads)


@settings(max_examples=30, deadline=None)
@given(op=st.sampled_from(["LpPool", "GlobalLpPool"]), channels=st.integers(1, 40),
       spatial=st.lists(st.integers(1, 12), min_size=1, max_size=2), data=st.data(),
       p=st.integers(1, 3), opset=st.sampled_from([11, 18, 22]),
       density=st.sampled_from([0.05, 0.3]), threads=st.sampled_from([1, 2]),
       seed=st.integers(0, 999))
def test_lp_pools_keep_onnxruntimes_values_and_nan(op: str, channels: int, spatial: list[int],
                                                   data: st.DataObject, p: int, opset: int,
                                                   density: float, threads: int,
                                                   seed: int) -> None:
    attrs: dict[str, object] = {"p": p}
    if op == "GlobalLpPool":
        opset = min(opset, 18)          # ONNX Runtime has no GlobalLpPool-22
    else:
        kernel = [data.draw(st.integers(1, min(n, 4))) for n in spatial]
        attrs.update(kernel_shape=kernel,
                     strides=[data.draw(st.integers(1, 3)) for _ in spatial],
                     pads=[data.draw(st.integers(0, k - 1)) for k in kernel] * 2)
        if opset >= 18:             # LpPool-18 added ceil_mode
            attrs["ceil_mode"] = data.draw(st.integers(0, 1))
    shape = (1, channels, *spatial)
    assert_float_bits_agree(_lp_pool(op, shape, opset, **attrs),
                            {"x": _input(shape, density, seed)}, threads)


def _average_pool(shape: tuple[int, ...], opset: int, channels: int | str,
                  **attrs: object) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("AveragePool", ["x"], ["y"], **attrs)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                       [shape[0], channels, *shape[2:]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    return model


@pytest.mark.parametrize(("opset", "kept"), [(11, 0x7FC00222), (19, 0x7FC00111)])
def test_average_pool_window_of_two_nans(opset: int, kept: int) -> None:
    # a 2 x 2 window, NaN a at (0, 1) and NaN b at (1, 0): MLAS's vector kernel (opset 11)
    # sums each column first, so column 0 (b) comes first; the generic loop of
    # AveragePool-19 goes row-major, a first
    x = np.zeros((1, 1, 3, 5), np.float32)
    x[0, 0, 0, 1], x[0, 0, 1, 0] = np.array([0x7FC00111, 0x7FC00222], np.uint32).view(
        np.float32)
    model = _average_pool(x.shape, opset, "c", kernel_shape=[2, 2])
    assert onnxruntime_run(model, {"x": x})[0][0, 0, 0, 0].view(np.uint32) == kept
    for threads in (1, 2):
        assert_float_bits_agree(model, {"x": x}, threads)
        assert_outputs_equal_onnxruntime_on_every_path(model, {"x": x}, threads)


def _draw_pool_attrs(data: st.DataObject, spatial: list[int], largest: int
                     ) -> dict[str, object]:
    """An AveragePool's attributes over `spatial`: windows of 1 to `largest` (at most the
    axis), strides 1-3, pads below the window, either ceil_mode and count_include_pad."""
    kernel = [data.draw(st.integers(1, min(n, largest))) for n in spatial]
    return {"kernel_shape": kernel, "strides": [data.draw(st.integers(1, 3)) for _ in spatial],
            "pads": [data.draw(st.integers(0, k - 1)) for k in kernel] * 2,
            "ceil_mode": data.draw(st.integers(0, 1)),
            "count_include_pad": data.draw(st.integers(0, 1))}


@settings(max_examples=30, deadline=None)
@given(channels=st.sampled_from([1, 3, 16, 17, 40]), known=st.booleans(),
       spatial=st.lists(st.integers(1, 14), min_size=1, max_size=3).filter(
           lambda s: int(np.prod(s)) <= 600),
       data=st.data(), opset=st.sampled_from([11, 19]), density=st.sampled_from([0.05, 0.3]),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 999))
def test_average_pools_keep_onnxruntimes_nan(channels: int, known: bool, spatial: list[int],
                                             data: st.DataObject, opset: int, density: float,
                                             threads: int, seed: int) -> None:
    # every kernel ONNX Runtime picks: MLAS's vector and generic ones, the NCHWc one (a
    # known channel count of whole blocks), AveragePool-19's loop
    attrs = _draw_pool_attrs(data, spatial, 5)
    shape = (1, channels, *spatial)
    model = _average_pool(shape, opset, channels if known else "c", **attrs)
    feeds = {"x": _input(shape, density, seed)}
    assert_float_bits_agree(model, feeds, threads)
    assert_outputs_equal_onnxruntime_on_every_path(model, feeds, threads)


@pytest.mark.parametrize(("opset", "attrs"), [
    (11, {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),     # MLAS's vector kernel
    (19, {"kernel_shape": [2, 3], "strides": [2, 2]}),         # AveragePool-19's loop
])
@pytest.mark.parametrize("threads", [1, 2])
def test_average_pool_nans_as_onnxruntime(opset: int, attrs: dict[str, object],
                                          threads: int) -> None:
    # the native kernels had another NaN at opset 11 (2-51 of 162 values per input), the
    # numpy form at opset 19 (numpy's in-place addition keeps the second NaN)
    model = _average_pool((1, 3, 6, 9), opset, "c", **attrs)
    for seed in range(6):
        feeds = {"x": _input((1, 3, 6, 9), 0.3, seed)}
        assert_float_bits_agree(model, feeds, threads)
        assert_outputs_equal_onnxruntime_on_every_path(model, feeds, threads)


def _signed_zeros(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Mostly -0, some +0, a few other values (a HardSwish's or a Mul's -0 below -3)."""
    rng = np.random.default_rng(seed)
    pick = rng.random(shape)
    return np.where(pick < 0.8, np.float32(-0.0), np.where(
        pick < 0.9, np.float32(0.0), rng.standard_normal(shape).astype(np.float32))).astype(
        np.float32)


@pytest.mark.parametrize("opset", [11, 19])
@pytest.mark.parametrize("attrs", [
    {"kernel_shape": [1, 1], "ceil_mode": 1},                  # the graph fuzzer's pool
    {"kernel_shape": [2, 2]},
    {"kernel_shape": [3, 2], "strides": [2, 2], "pads": [1, 0, 1, 1]},
    {"kernel_shape": [2, 3], "pads": [1, 1, 0, 1], "count_include_pad": 1},
])
def test_average_pool_of_negative_zeros_as_onnxruntime(opset: int,
                                                       attrs: dict[str, object]) -> None:
    # MLAS's 2-D vector kernel (before opset 19) sums each window column from its first
    # row and the columns from the first, so a window of -0 taps only gives -0; a tap in a
    # pad column is +0 (O350). lowp summed from +0 and gave +0 (graph fuzzer seed 51,
    # exporter_padding, repro item 283)
    model = _average_pool((1, 3, 5, 7), opset, "c", **attrs)
    for seed in range(4):
        feeds = {"x": _signed_zeros((1, 3, 5, 7), seed)}
        for threads in (1, 2):
            assert_float_bits_agree(model, feeds, threads)
            assert_outputs_equal_onnxruntime_on_every_path(model, feeds, threads)


@settings(max_examples=30, deadline=None)
@given(channels=st.sampled_from([1, 3, 16, 17]), known=st.booleans(),
       spatial=st.lists(st.integers(1, 12), min_size=1, max_size=3).filter(
           lambda s: int(np.prod(s)) <= 500),
       data=st.data(), opset=st.sampled_from([11, 19]), seed=st.integers(0, 999))
def test_average_pools_keep_onnxruntimes_signed_zeros(channels: int, known: bool,
                                                      spatial: list[int],
                                                      data: st.DataObject, opset: int,
                                                      seed: int) -> None:
    # every kernel ONNX Runtime picks, as test_average_pools_keep_onnxruntimes_nan, over -0s
    attrs = _draw_pool_attrs(data, spatial, 4)
    shape = (1, channels, *spatial)
    model = _average_pool(shape, opset, channels if known else "c", **attrs)
    assert_float_bits_agree(model, {"x": _signed_zeros(shape, seed)}, 1)
