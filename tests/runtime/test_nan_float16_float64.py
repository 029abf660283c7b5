"""Which NaN float64 Add, Mul, Max and Min and float16 arithmetic give, against ONNX Runtime
bit for bit at 1 and 2 threads on both backends (docs/operators.md (O141), (O142); repro item
115). float64: Eigen's 2-double packets, the rules of (O116) and (O105) (lowp gave numpy's
operand: input 0's of two NaNs, Max / Min's E1 always input 0). float16: ONNX Runtime
computes in float32 between Casts, whose float -> half conversion makes each NaN of the
last n % 8 values 0x7e00 with its sign (the numpy reference kept the payload)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from .ort_agreement import assert_float_bits_agree

_TYPES = {np.float16: (TensorProto.FLOAT16, np.uint16), np.float64: (TensorProto.DOUBLE, np.uint64),
          np.float32: (TensorProto.FLOAT, np.uint32)}
_NANS = {
    np.float16: np.array([0x7E11, 0x7E22, 0xFE33, 0x7D01, 0xFC44], np.uint16),
    np.float64: np.array([0x7FF8000000000111, 0x7FF8000000000222, 0xFFF8000000000333,
                          0x7FF4000000000001, 0xFFF0000000000444], np.uint64),
    np.float32: np.array([0x7FC00111, 0x7FC00222, 0xFFC00333, 0x7FA00001, 0xFF800444], np.uint32),
}
_SHAPES = ([((n,), (n,)) for n in (1, 2, 3, 5, 8, 11, 17, 33)]
           + [((n,), (1,)) for n in (1, 3, 11, 17)] + [((n,), ()) for n in (5, 16)]
           + [((3, n), (1, n)) for n in (1, 5, 7)] + [((3, n), (3, 1)) for n in (2, 5, 7)]
           + [((2, 3, n), (3, n)) for n in (3, 4)])


def _pool(dtype: type) -> np.ndarray:
    nans = _NANS[dtype].view(dtype)
    return np.concatenate([nans, np.array([0.0, -0.0, 1.0, -2.5, np.inf, 3.0], dtype)])


def _model(op: str, shapes: Sequence[tuple[int, ...]], dtype: type,
           out: int | None = None, **attrs: int) -> onnx.ModelProto:
    names = [f"x{i}" for i in range(len(shapes))]
    graph = helper.make_graph(
        [helper.make_node(op, names, ["y"], **attrs)], "g",
        [helper.make_tensor_value_info(n, _TYPES[dtype][0], list(s))
         for n, s in zip(names, shapes, strict=True)],
        [helper.make_tensor_value_info("y", out or _TYPES[dtype][0], None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@settings(max_examples=150, deadline=None)
@given(case=st.sampled_from([(np.float64, op) for op in ("Add", "Sub", "Mul", "Div", "Max",
                                                          "Min")]
                            # (float16 Max / Min of a one-value NaN: not modelled, (O141))
                            + [(np.float16, op) for op in ("Add", "Sub", "Mul", "Div")]),
       shapes=st.sampled_from(_SHAPES), swap=st.booleans(), threads=st.sampled_from([1, 2]),
       seed=st.integers(0, 2**31 - 1))
def test_two_nans_equal_onnxruntime(case, shapes, swap, threads, seed):
    # before: float64 Mul of [NaN 0x..222] by [NaN 0x..111] gave input 0's, ONNX Runtime
    # input 1's; Max of one NaN by a vector, input 0's where ONNX Runtime keeps E1 (input 1)
    dtype, op = case
    rng = np.random.default_rng(seed)
    pair = list(shapes[::-1] if swap else shapes)
    feeds = {f"x{i}": rng.choice(_pool(dtype), size=s).astype(dtype) for i, s in enumerate(pair)}
    assert_float_bits_agree(_model(op, pair, dtype), feeds, threads)


@pytest.mark.parametrize("op", ["Add", "Mul", "Max", "Min"])
@pytest.mark.parametrize("scalar", [False, True])
def test_float64_runs_cut_into_thread_blocks(op, scalar):
    rng = np.random.default_rng(7)
    shapes = [(100003,), () if scalar else (100003,)]
    feeds = {f"x{i}": rng.choice(_pool(np.float64), size=s) for i, s in enumerate(shapes)}
    for threads in (1, 2):
        assert_float_bits_agree(_model(op, shapes, np.float64), feeds, threads)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 17, 200003])
@pytest.mark.parametrize("to_half", [True, False])
def test_cast_between_float32_and_float16_keeps_onnxruntimes_nans(n, to_half):
    # before (numpy reference): float32 -> float16 of NaN 0x7fc00111 in the last n % 8 gave
    # 0x7e00 | 0x08 ..., ONNX Runtime 0x7e00; float16 -> float32 kept a signalling NaN
    # that vcvtph2ps quiets
    src = np.float32 if to_half else np.float16
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n).astype(src)
    x = np.where(rng.random(n) < 0.4, rng.choice(_NANS[src].view(src), size=n), x).astype(src)
    model = _model("Cast", [(n,)], src, out=_TYPES[np.float16 if to_half else np.float32][0],
                   to=_TYPES[np.float16 if to_half else np.float32][0])
    for threads in (1, 2):
        assert_float_bits_agree(model, {"x0": x}, threads)


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("shape", [(5,), (8,), (17,), (33,), (3, 17)])
def test_float16_arg_max_over_nans_is_float32s(op, shape):
    # before: ArgMax of a 17-value float16 vector with a NaN at 4 gave 12 (the scalar
    # rule), ONNX Runtime 4 (float32's whole-vector packets after its Cast)
    rng = np.random.default_rng(sum(shape))
    for _ in range(6):
        x = rng.standard_normal(shape).astype(np.float16)
        x = np.where(rng.random(shape) < 0.2, rng.choice(_pool(np.float16), size=shape),
                     x).astype(np.float16)
        model = _model(op, [shape], np.float16, out=TensorProto.INT64, axis=-1, keepdims=0)
        for threads in (1, 2):
            assert_float_bits_agree(model, {"x0": x}, threads)


# float32 NaNs whose top payload bits survive in a float16 (vcvtps2ph keeps them, the C++
# tail makes 0x7e00): the low ones above cannot tell the two apart
_WIDE_NANS = np.array([0x7FC22000, 0xFFA44000, 0x7F811000, 0xFFFFE000], np.uint32)


@pytest.mark.parametrize("n", [128001, 130001, 200003, 300007])
@pytest.mark.parametrize("threads", [2, 3, 4])
def test_float16_results_of_more_than_128000_values_at_threads(n, threads):
    # before: Add of 200,003 float16 values by one value at 2 threads kept the payload of
    # the NaN at 175,006, the last of a TryParallelFor block of 25,001 (25,001 % 8 = 1),
    # where ONNX Runtime's float -> half Cast makes it 0x7e00 in that block's C++ tail
    rng = np.random.default_rng(n + threads)
    x = rng.standard_normal(n).astype(np.float32)
    nan = rng.random(n) < 0.4
    x.view(np.uint32)[nan] = rng.choice(_WIDE_NANS, size=int(nan.sum()))
    cast = _model("Cast", [(n,)], np.float32, out=TensorProto.FLOAT16, to=TensorProto.FLOAT16)
    assert_float_bits_agree(cast, {"x0": x}, threads)
    half = x.astype(np.float16)
    half.view(np.uint16)[nan] = rng.choice(_NANS[np.float16], size=int(nan.sum()))
    add = _model("Add", [(n,), (1,)], np.float16)
    assert_float_bits_agree(add, {"x0": half, "x1": np.array([0.5], np.float16)}, threads)
