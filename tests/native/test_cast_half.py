"""float16 <-> float32 Cast natively (F16C), bit for bit ONNX Runtime's Cast: every float16
pattern, float32 patterns around the float16 halfway points, subnormals, overflow and NaN
payloads (numpy's astype keeps a signalling NaN's payload; ONNX Runtime's comes out quiet)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from lowp import Session
from lowp.runtime import float_ops, native_float
from tests.runtime.ort_agreement import onnxruntime_run

F16, F32 = TensorProto.FLOAT16, TensorProto.FLOAT


def _cast_model(src: int, dst: int) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["y"], to=dst)], "g",
        [helper.make_tensor_value_info("x", src, [None])],
        [helper.make_tensor_value_info("y", dst, [None])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def _bits(a: np.ndarray) -> np.ndarray:
    return a.view(np.uint16 if a.dtype == np.float16 else np.uint32)


@pytest.mark.parametrize("threads", [1, 2])
def test_every_float16_pattern_to_float32_equals_onnxruntime(threads: int) -> None:
    x = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16)
    (want,) = onnxruntime_run(_cast_model(F16, F32), {"x": x})
    with native_float.threads(threads):
        got = float_ops.Cast(x, to=F32)
    np.testing.assert_array_equal(_bits(got), _bits(want))


def _float32_patterns(rng: np.random.Generator) -> np.ndarray:
    """float32 bit patterns: every float16 value and the points halfway between neighbours
    (and one ulp either side), the subnormal and overflow ranges, NaN payloads, random."""
    h = np.arange(0x7C01, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)
    below = h.view(np.uint32)
    above = np.nextafter(h[1:], np.float32(np.inf)).view(np.uint32)   # (not an exact half)
    halves = ((h[:-1].astype(np.float64) + h[1:]) / 2).astype(np.float32).view(np.uint32)
    parts = [below, above, halves, halves - 1, halves + 1,
             np.arange(0x33000000, 0x38800001, 61, dtype=np.uint32),       # subnormal halves
             np.arange(0x477FE000, 0x47800100, dtype=np.uint32),           # 65504 .. overflow
             np.arange(0x7F800000, 0x7F802001, dtype=np.uint32),           # inf, sNaN payloads
             np.arange(0x7FC00000, 0x7FFFFFFF, 4093, dtype=np.uint32),     # qNaN payloads
             rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32)]
    u = np.concatenate(parts)
    return np.concatenate([u, u | np.uint32(0x80000000)]).view(np.float32)


@pytest.mark.parametrize("threads", [1, 2])
def test_float32_patterns_to_float16_equal_onnxruntime(threads: int) -> None:
    x = _float32_patterns(np.random.default_rng(0))
    (want,) = onnxruntime_run(_cast_model(F32, F16), {"x": x})
    with native_float.threads(threads):
        got = float_ops.Cast(x, to=F16)
    np.testing.assert_array_equal(_bits(got), _bits(want))


@settings(max_examples=60, deadline=None)
@given(bits=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=40),
       start=st.integers(0, 7))
def test_float32_to_float16_and_back_equals_onnxruntime(bits: list[int], start: int) -> None:
    """Any float32 patterns at any alignment (the kernel's 8-wide body and its tail)."""
    x = np.array(bits, np.uint32).view(np.float32)[start % len(bits):]  # (not 64-aligned)
    # (the same values in both engines: which ones take the C++ tail depends on the length)
    (want16,) = onnxruntime_run(_cast_model(F32, F16), {"x": x})
    got16 = float_ops.Cast(x, to=F16)
    np.testing.assert_array_equal(_bits(got16), _bits(want16))
    (want32,) = onnxruntime_run(_cast_model(F16, F32), {"x": want16})
    np.testing.assert_array_equal(_bits(float_ops.Cast(want16, to=F32)), _bits(want32))


def test_float16_island_casts_replay_natively() -> None:
    """A float16 graph's Casts (float32 -> float16 -> float32 around an op ONNX Runtime runs
    in float32) replay as native steps, bit for bit ONNX Runtime."""
    graph = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["h"], to=F16),
         helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("Cast", ["r"], ["y"], to=F32)], "g",
        [helper.make_tensor_value_info("x", F32, [3, 1000])],
        [helper.make_tensor_value_info("y", F32, [3, 1000])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    rng = np.random.default_rng(3)
    fast = Session(model, threads=1)
    for _ in range(3):
        x = (rng.standard_normal((3, 1000)) * 4000).astype(np.float32)
        (want,) = onnxruntime_run(model, {"x": x})
        np.testing.assert_array_equal(_bits(fast.run({"x": x})["y"]), _bits(want))
    (signature,) = fast._replayer._ready
    assert fast._replayer.plain_steps(signature) == []


@pytest.mark.parametrize("n", [*range(1, 50), 100, 1000, 70_001])
def test_signalling_nans_keep_their_payload_only_in_the_last_n_mod_16(n: int) -> None:
    # ONNX Runtime (one thread) converts 16 float16 values at a time with vcvtph2ps, which
    # quiets a NaN, and the last n % 16 in C++, which keeps its payload; lowp had converted
    # 8 at a time while 16 were left, so 8 to 15 payloads came out kept where 8 or more
    # remained
    x = np.full(n, 0x7C01, np.uint16).view(np.float16)
    x[::3] = np.float16(1.5)
    (want,) = onnxruntime_run(_cast_model(F16, F32), {"x": x})
    got = float_ops.Cast(x, to=F32)
    np.testing.assert_array_equal(_bits(got), _bits(want))


@pytest.mark.parametrize("threads", [2, 3, 4])
@pytest.mark.parametrize("n", [17, 128_000, 128_001, 128_017, 200_003, 1_000_001])
def test_signalling_nans_at_threads_keep_their_payload_in_onnxruntime_blocks(
        n: int, threads: int) -> None:
    # above 128,000 values ONNX Runtime converts at 2+ threads in TryParallelFor's blocks
    # (200,003 at 2 threads: 8 blocks of 25,001), each 16 at a time from its own start and
    # its last length % 16 in C++, which keeps the payload; lowp cut at multiples of 32,768
    # and kept only the last n % 16 (1 of 3,000,017 random patterns apart at 2 threads)
    x = np.full(n, 0x7C01, np.uint16).view(np.float16)
    x[::5] = np.float16(-0.5)
    (want,) = onnxruntime_run(_cast_model(F16, F32), {"x": x}, threads)
    with native_float.threads(threads):
        got = float_ops.Cast(x, to=F32)
    np.testing.assert_array_equal(_bits(got), _bits(want))
