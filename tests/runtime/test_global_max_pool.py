"""Float32 GlobalMaxPool as ONNX Runtime computes it (docs/operators.md (O140)): MLAS's
order over the spatial axes decides which NaN (payloads, signs, signalling ones) or zero
survives, NCHWc for 4-D input of whole channel blocks, on channels-first and channels-last
data, natively on every instruction-set path and in numpy alike, at 1 and 2 threads. lowp
took the maximum of the set ((O48): the default NaN when one was NaN, +0 over -0; repro item
114)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from lowp.runtime import Session, native_float
from lowp.runtime import native_backend as nb
from lowp.runtime.backends import native_available
from lowp.runtime.float_nn import GlobalMaxPool, global_max

from .ort_agreement import assert_bits_agree, onnxruntime_run

PATHS = ["numpy", *(nb.available_paths() if native_available() else [])]
SPECIALS = np.concatenate([
    np.array([0x7FC00111, 0x7FC00222, 0xFFC00333, 0x7FA00001, 0xFF800444], np.uint32).view(
        np.float32),
    np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-45, 3.4e38, -3.4e38], np.float32)])


def _bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).view(np.uint32).tobytes()


def _input(rng: np.random.Generator, shape: tuple[int, ...], kind: str) -> np.ndarray:
    x = rng.standard_normal(shape).astype(np.float32)
    if kind == "specials":
        idx = rng.integers(0, x.size, max(1, x.size // 6))
        x.flat[idx] = rng.choice(SPECIALS, idx.size)
    elif kind == "zeros":        # maxima that are zeros of either sign
        x = np.where(x > 0, -x, rng.choice(np.array([0.0, -0.0], np.float32), shape))
    return x.astype(np.float32)


def _model(shape: tuple[int, ...]) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("GlobalMaxPool", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 3), c=st.sampled_from([1, 2, 3, 5, 8, 16, 24, 32, 40]),
       spatial=st.lists(st.integers(1, 9), min_size=1, max_size=3),
       kind=st.sampled_from(["normal", "specials", "zeros"]), seed=st.integers(0, 2**32 - 1))
def test_global_max_pool_keeps_onnxruntimes_nan_and_zero(n: int, c: int, spatial: list[int],
                                                         kind: str, seed: int) -> None:
    # before: [NaN 0x7fc00111, 1, 2, 3, NaN 0xffc00333] gave 0x7fc00000, ONNX Runtime 3
    # (a NaN first in the vector lanes is replaced, one in the tail dropped)
    x = _input(np.random.default_rng(seed), (n, c, *spatial), kind)
    want = onnxruntime_run(_model(x.shape), {"x": x})[0]
    cl = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    for path in PATHS:
        with native_float.disabled() if path == "numpy" else nb.use_path(path):
            # (a graph input of static channels: ONNX Runtime's layout transformer takes
            # it where the NCHWc block divides them, (O152))
            got = GlobalMaxPool(x, nchwc_channels=c)
            got_cl = global_max(cl, tuple(range(1, cl.ndim - 1)), c)
        assert got.shape == want.shape and _bits(got) == _bits(want), path
        assert _bits(np.moveaxis(got_cl, -1, 1)) == _bits(want), path


@pytest.mark.parametrize("shape", [(2, 3, 5, 5), (1, 16, 3, 7), (2, 32, 5, 5), (1, 2, 17),
                                   (1, 3, 4, 4, 4), (1, 5, 100, 100)])
def test_global_max_pool_of_nans_at_threads(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(len(shape) * 100 + shape[1])
    x = rng.standard_normal(shape).astype(np.float32)
    x = np.where(rng.random(shape) < 0.3, rng.choice(SPECIALS, size=shape), x).astype(np.float32)
    for threads in (1, 2):
        assert_bits_agree(_model(shape), {"x": x}, threads)


def test_global_max_pool_of_integers_is_np_max() -> None:
    x = np.random.default_rng(0).integers(-128, 128, (2, 3, 4, 5)).astype(np.int8)
    np.testing.assert_array_equal(GlobalMaxPool(x), x.max(axis=(2, 3), keepdims=True))
    assert GlobalMaxPool(x).dtype == np.int8


@pytest.mark.parametrize("shape", [(2, 3, 5, 5), (1, 16, 3, 7)])
def test_a_replay_recorded_without_nans(shape: tuple[int, ...]) -> None:
    # (the channels whose order decides the bits are taken again inside the native call)
    rng = np.random.default_rng(12)
    session = Session(_model(shape), backend="native")
    for _ in range(3):
        session.run({"x": rng.standard_normal(shape).astype(np.float32)})
    for _ in range(3):
        x = rng.standard_normal(shape).astype(np.float32)
        x = np.where(rng.random(shape) < 0.3, rng.choice(SPECIALS, size=shape), x).astype(
            np.float32)
        want = onnxruntime_run(_model(shape), {"x": x})[0]
        assert _bits(session.run({"x": x})["y"]) == _bits(want)
