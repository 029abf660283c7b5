"""Float MaxPool over NaNs and infinities as ONNX Runtime computes it (docs/operators.md
(O150), (O151)): the kernel it runs (MLAS's vector, generic and global kernels, the NCHWc
kernel, MaxPoolV8's loop) decides which NaN, zero or lowest float a window gives, and the
Indices output; on both backends, at 1 and 2 threads, on every native instruction-set path,
channels-first and channels-last. lowp took the window's maximum with NaN propagated (the
first NaN; 177 of 512 outputs apart on a 2x2 stride-2 pool, repro item 128). GlobalMaxPool
runs NCHWc only where ONNX Runtime's layout transformer takes it ((O152), repro item 129)."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from lowp.runtime import Session, native_float
from lowp.runtime import native_backend as nb
from lowp.runtime.backends import native_available
from lowp.runtime.float_nn import GlobalMaxPool, MaxPool, max_pool_channels_last

from .ort_agreement import assert_bits_agree, assert_float_bits_agree, onnxruntime_run

PATHS = ["numpy", *(nb.available_paths() if native_available() else [])]
SPECIALS = np.concatenate([
    np.array([0x7FC00111, 0x7FC00222, 0xFFC00333, 0x7FA00001, 0xFF800444], np.uint32).view(
        np.float32),
    np.array([np.inf, -np.inf, -np.inf, -0.0, 0.0, 3.4e38, -3.4e38], np.float32)])


def _input(rng: np.random.Generator, shape: tuple[int, ...], density: float) -> np.ndarray:
    x = rng.standard_normal(shape).astype(np.float32)
    return np.where(rng.random(shape) < density, rng.choice(SPECIALS, size=shape), x).astype(
        np.float32)


def _model(shape: tuple[int, ...], attrs: dict[str, Any], outputs: int = 1,
           channels: int | str | None = None, op: str = "MaxPool",
           elem: int = TensorProto.FLOAT) -> onnx.ModelProto:
    dims: list[int | str] = list(shape)
    if channels is not None:
        dims[1] = channels
    names = ["y", "indices"][:outputs]
    graph = helper.make_graph(
        [helper.make_node(op, ["x"], names, **attrs)], "g",
        [helper.make_tensor_value_info("x", elem, dims)],
        [helper.make_tensor_value_info("y", elem, None),
         helper.make_tensor_value_info("indices", TensorProto.INT64, None)][:outputs])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).view(np.uint32).tobytes()


def _assert_agree(model: onnx.ModelProto, x: np.ndarray, threads: int) -> None:
    """Both backends give ONNX Runtime's y bit for bit (and its Indices)."""
    assert_bits_agree(model, {"x": x}, threads)
    if len(model.graph.output) > 1:
        want = onnxruntime_run(model, {"x": x}, threads)[1]
        for backend in ("reference", "native"):
            got = Session(model, backend=backend, threads=threads).run({"x": x})["indices"]
            np.testing.assert_array_equal(got, want, err_msg=backend)


@st.composite
def _pools(draw: st.DrawFn) -> tuple[tuple[int, ...], dict[str, Any], int, bool]:
    nd = draw(st.integers(1, 3))
    c = draw(st.sampled_from([1, 3, 16, 32]))
    spatial = [draw(st.integers(1, 9)) for _ in range(nd)]
    global_window = draw(st.booleans()) and draw(st.booleans())
    k = list(spatial) if global_window else [draw(st.integers(1, 4)) for _ in range(nd)]
    attrs: dict[str, Any] = {"kernel_shape": k}
    if not global_window:
        attrs["strides"] = [draw(st.integers(1, 3)) for _ in range(nd)]
        if draw(st.booleans()):
            attrs["dilations"] = [draw(st.integers(1, 2)) for _ in range(nd)]
        auto_pad = draw(st.sampled_from(["NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER",
                                         "VALID"]))
        if auto_pad == "NOTSET":
            attrs["pads"] = [draw(st.integers(0, v - 1)) for v in k] * 2
            attrs["pads"][nd:] = [draw(st.integers(0, v - 1)) for v in k]
            attrs["ceil_mode"] = draw(st.integers(0, 1))
        elif auto_pad == "VALID" or "dilations" not in attrs:
            # (dilated SAME pooling is sized otherwise by ONNX Runtime: not this test's)
            attrs["auto_pad"] = auto_pad
        if nd > 1 and draw(st.booleans()) and draw(st.booleans()):
            attrs["storage_order"] = 1
    outputs = draw(st.sampled_from([1, 1, 2]))
    symbolic = draw(st.booleans()) and draw(st.booleans())
    return (draw(st.integers(1, 2)), c, *spatial), attrs, outputs, symbolic


@settings(max_examples=60, deadline=None)
@given(pool=_pools(), density=st.sampled_from([0.05, 0.3, 0.9]),
       threads=st.integers(1, 2), seed=st.integers(0, 2**32 - 1))
def test_max_pool_keeps_onnxruntimes_bits(pool: tuple[tuple[int, ...], dict[str, Any], int,
                                                       bool],
                                          density: float, threads: int, seed: int) -> None:
    # before: a 2x2 stride-2 pool over NaNs gave the window's first NaN where MLAS's vector
    # kernel gives the last one read (or none, in the last w % 4 columns)
    shape, attrs, outputs, symbolic = pool
    model = _model(shape, attrs, outputs, "c" if symbolic else None)
    x = _input(np.random.default_rng(seed), shape, density)
    dilations = attrs.get("dilations", [1] * len(attrs["kernel_shape"]))
    # (windows that fit the input: the degenerate geometries are not this test's)
    assume(all((k - 1) * d + 1 <= v for k, d, v in zip(attrs["kernel_shape"], dilations,
                                                       shape[2:], strict=True)))
    try:
        theirs = onnxruntime_run(model, {"x": x})[0]
    except Exception:  # noqa: BLE001 (a geometry ONNX Runtime refuses)
        assume(False)
    assume(theirs.size > 0)
    _assert_agree(model, x, threads)


# (shape, attributes, the static channel count ONNX Runtime's layout transformer sees or 0)
KERNELS = [
    ((2, 3, 8, 8), {"kernel_shape": [2, 2], "strides": [2, 2]}, 0),           # MLAS vector
    ((1, 3, 7, 9), {"kernel_shape": [3, 3], "pads": [1, 0, 1, 2], "strides": [2, 2],
                    "ceil_mode": 1}, 0),
    ((1, 3, 9, 9), {"kernel_shape": [3, 3], "strides": [1, 3], "pads": [1, 1, 1, 1]}, 0),
    ((1, 3, 6, 7), {"kernel_shape": [6, 7]}, 0),                              # MLAS global
    ((1, 16, 9, 9), {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, 16),      # NCHWc
    ((1, 16, 9, 9), {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, 0),       # C unknown
    ((1, 16, 9, 9), {"kernel_shape": [2, 2], "dilations": [2, 2], "pads": [1, 1, 1, 1]},
     16),
    ((1, 3, 9, 9), {"kernel_shape": [2, 2], "dilations": [2, 2], "pads": [1, 1, 1, 1]}, 0),
    ((1, 3, 9, 9), {"kernel_shape": [3, 3], "storage_order": 1}, 0),          # the loop
]


@pytest.mark.parametrize(("shape", "attrs", "channels"), KERNELS)
def test_max_pool_kernels_on_every_path(shape: tuple[int, ...], attrs: dict[str, Any],
                                        channels: int) -> None:
    # channels-first and channels-last, numpy and every native instruction-set path
    rng = np.random.default_rng(shape[1] * 7 + len(attrs))
    for density in (0.2, 0.9):
        x = _input(rng, shape, density)
        model = _model(shape, attrs, channels=channels if channels else "c")
        want = onnxruntime_run(model, {"x": x})[0]
        cl = np.ascontiguousarray(np.moveaxis(x, 1, -1))
        for path in PATHS:
            with native_float.disabled() if path == "numpy" else nb.use_path(path):
                with native_float.threads(1):
                    got = MaxPool(x, **attrs, nchwc_channels=channels)
                    got_cl = max_pool_channels_last(cl, **attrs, nchwc_channels=channels)
            assert isinstance(got, np.ndarray)
            assert _bits(got) == _bits(want), path
            assert _bits(np.moveaxis(got_cl, -1, 1)) == _bits(want), path


HALF_SPECIALS = np.array([0x7E11, 0xFE33, 0x7D01, 0xFD02, 0x7C00, 0xFC00, 0xFC00, 0x8000,
                          0x0000, 0x7BFF, 0xFBFF], np.uint16).view(np.float16)


@settings(max_examples=40, deadline=None)
@given(pool=_pools(), density=st.sampled_from([0.05, 0.3, 0.9]),
       threads=st.integers(1, 2), seed=st.integers(0, 2**32 - 1))
def test_float16_max_pool_is_float32s_between_casts(pool: tuple[tuple[int, ...],
                                                                dict[str, Any], int, bool],
                                                    density: float, threads: int,
                                                    seed: int) -> None:
    # (O187) before: lowp took numpy's maximum of the float16 window (the first NaN); ONNX
    # Runtime casts to float32, pools in float32's order without NCHWc and casts back: a
    # window of one NaN gives -inf (the lowest float32, cast) without Indices, its NaN
    # quieted with them, or 0x7e00 with its sign in the Cast's C++ tail
    shape, attrs, outputs, symbolic = pool
    dilations = attrs.get("dilations", [1] * len(attrs["kernel_shape"]))
    assume(all((k - 1) * d + 1 <= v for k, d, v in zip(attrs["kernel_shape"], dilations,
                                                       shape[2:], strict=True)))
    model = _model(shape, attrs, outputs, "c" if symbolic else None, elem=TensorProto.FLOAT16)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float16)
    x = np.where(rng.random(shape) < density, rng.choice(HALF_SPECIALS, size=shape), x)
    try:
        theirs = onnxruntime_run(model, {"x": x})[0]
    except Exception:  # noqa: BLE001 (a geometry ONNX Runtime refuses)
        assume(False)
    assume(theirs.size > 0)
    assert_float_bits_agree(model, {"x": x}, threads)
    if outputs > 1:
        want = onnxruntime_run(model, {"x": x}, threads)[1]
        for backend in ("reference", "native"):
            got = Session(model, backend=backend, threads=threads).run({"x": x})["indices"]
            np.testing.assert_array_equal(got, want, err_msg=backend)


@pytest.mark.parametrize("path", PATHS)
def test_float16_max_pool_windows_of_one_nan(path: str) -> None:
    # MLAS's kernels from the lowest float32 (-inf once cast) without Indices; MaxPoolV8's
    # loop with them, its NaN through the Casts: quieted in vcvtps2ph's groups of 8, 0x7e00
    # with its sign in the tail
    x = np.array([0x7E11, 0xFE33, 0x7D01, 0xFD02, 0x7C00, 0xFC00, 0x8000, 0x0000, 0x7D03],
                 np.uint16).view(np.float16).reshape(1, 1, 9)
    for outputs in (1, 2):
        model = _model(x.shape, {"kernel_shape": [1]}, outputs, elem=TensorProto.FLOAT16)
        want = onnxruntime_run(model, {"x": x})[0]
        with native_float.disabled() if path == "numpy" else nb.use_path(path):
            got = Session(model, backend="reference" if path == "numpy" else "native",
                          threads=1).run({"x": x})["y"]
        assert got.view(np.uint16).tolist() == want.view(np.uint16).tolist()


def test_a_nan_first_in_a_window_and_its_index() -> None:
    # MaxPoolV8's loop (an Indices output) takes the first tap inside as it is, a later one
    # only where it is greater: a NaN first stays, a later NaN is never taken (lowp gave
    # the first NaN and its index: np.argmax)
    x = np.array([[[[1.0, np.nan], [2.0, 0.5]], [[np.nan, 3.0], [4.0, np.nan]]]], np.float32)
    model = _model(x.shape, {"kernel_shape": [2, 2]}, outputs=2)
    theirs = onnxruntime_run(model, {"x": x})
    assert theirs[0].ravel()[0] == 2.0 and np.isnan(theirs[0].ravel()[1])
    assert theirs[1].ravel().tolist() == [2, 4]
    for threads in (1, 2):
        _assert_agree(model, x, threads)


@pytest.mark.parametrize("producer", [None, "Neg"])
@pytest.mark.parametrize("channels", [16, "c"])
def test_global_max_pool_is_nchwc_only_where_onnxruntime_moves_it(
        producer: str | None, channels: int | str) -> None:
    # ONNX Runtime's layout transformer takes a GlobalMaxPool of a graph input with a
    # static channel count only; lowp decided by the run's channel count (57 of 64 outputs
    # apart with a symbolic one, repro item 129)
    nodes = [helper.make_node("GlobalMaxPool", ["p" if producer else "x"], ["y"])]
    if producer:
        nodes.insert(0, helper.make_node(producer, ["x"], ["p"]))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, channels, 5, 7])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    x = _input(np.random.default_rng(3), (4, 16, 5, 7), 0.4)
    for threads in (1, 2):
        assert_bits_agree(model, {"x": x}, threads)


def test_global_max_pool_takes_the_channel_count_it_is_given() -> None:
    x = _input(np.random.default_rng(4), (1, 16, 5, 7), 0.4)
    with native_float.disabled():
        nchwc, mlas = GlobalMaxPool(x, nchwc_channels=16), GlobalMaxPool(x)
    assert _bits(nchwc) != _bits(mlas)


@pytest.mark.parametrize("elem", [TensorProto.UINT8, TensorProto.INT8])
def test_a_quantized_max_pool_agrees(elem: int) -> None:
    # QuantizeLinear -> DequantizeLinear -> MaxPool -> QuantizeLinear -> DequantizeLinear:
    # ONNX Runtime pools the codes (8-bit MaxPool), untouched by the float orders
    zp = helper.make_tensor("zp", elem, [], [3])
    scale = helper.make_tensor("scale", TensorProto.FLOAT, [], [0.05])
    nodes = [helper.make_node("QuantizeLinear", ["x", "scale", "zp"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "scale", "zp"], ["d"]),
             helper.make_node("MaxPool", ["d"], ["p"], kernel_shape=[3, 3], strides=[2, 2],
                              pads=[1, 1, 1, 1]),
             helper.make_node("QuantizeLinear", ["p", "scale", "zp"], ["q2"]),
             helper.make_node("DequantizeLinear", ["q2", "scale", "zp"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 16, 9, 9])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [zp, scale])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    x = np.random.default_rng(6).standard_normal((2, 16, 9, 9)).astype(np.float32) * 4
    for threads in (1, 2):
        assert_bits_agree(model, {"x": x}, threads)


@pytest.mark.parametrize("pool", ["MaxPool", "AveragePool"])
def test_a_global_max_pool_after_a_dilated_pool_stays_nchwc(pool: str) -> None:
    # ONNX Runtime moves a dilated MaxPool (AveragePool-19) of static whole channel blocks
    # to NCHWc, so the GlobalMaxPool after it pools NCHWc data in that order; lowp's layout
    # rule had left dilated pools out (repro item 130)
    nodes = [helper.make_node(pool, ["x"], ["p"], kernel_shape=[2, 2], dilations=[2, 2]),
             helper.make_node("GlobalMaxPool", ["p"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 16, 9, 9])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    x = _input(np.random.default_rng(7), (2, 16, 9, 9), 0.5)
    for threads in (1, 2):
        assert_bits_agree(model, {"x": x}, threads)
