"""Which NaN float32 Add, Sub, Mul, Div, Sum, Mean and Mod (fmod=1) give of two NaN operands,
against ONNX Runtime bit for bit (docs/operators.md (O116)): x86 gives its first source
operand's, quieted; Sub and Div input 0's, Mod input 1's, Add and Mul (Eigen's sum and
product) by the position in ONNX Runtime's broadcast run (scalar head, 4-float packets,
tail of one, two or three), its runs cut into TryParallelFor's blocks at 2 threads. lowp
gave numpy's operand (Sum input 0's everywhere, Mod input 0's) and, natively, the AVX-512
row kernel's (Mul input 0's on the last element of 11; repro items 76 and 92)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from .ort_agreement import assert_bits_agree

F = TensorProto.FLOAT

# NaNs of other payloads and signs, signalling ones, and ordinary values
_NANS = np.array([0x7FC00111, 0x7FC00222, 0xFFC00333, 0x7FA00001, 0xFF800444, 0x7F800005],
                 np.uint32).view(np.float32)
_POOL = np.concatenate([_NANS, np.array([0.0, -0.0, 1.0, -2.5, np.inf, 3.0], np.float32)])
_SHAPES = ([((n,), (n,)) for n in range(0, 50)] + [((n,), (1,)) for n in range(0, 50)]
           + [((n,), ()) for n in (1, 5, 16, 17, 23)]
           + [((3, n), (1, n)) for n in range(1, 14)] + [((3, n), (3, 1)) for n in range(1, 14)]
           + [((3, 1), (1, n)) for n in range(1, 14)] + [((2, 3, n), (3, n)) for n in range(1, 10)]
           + [((2, 3, n), (2, 1, n)) for n in range(1, 10)] + [((1, 1), (1,)), ((4, 1), (1, 1))])
_OPS = ["Add", "Sub", "Mul", "Div", "Mod", "Sum", "Mean"]


def _model(op: str, shapes: Sequence[tuple[int, ...]]) -> onnx.ModelProto:
    names = [f"x{i}" for i in range(len(shapes))]
    attrs = {"fmod": 1} if op == "Mod" else {}
    graph = helper.make_graph(
        [helper.make_node(op, names, ["y"], **attrs)], "g",
        [helper.make_tensor_value_info(n, F, list(s)) for n, s in zip(names, shapes, strict=True)],
        [helper.make_tensor_value_info("y", F, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _feeds(rng: np.random.Generator, shapes: Sequence[tuple[int, ...]], pool: np.ndarray
           ) -> dict[str, np.ndarray]:
    return {f"x{i}": rng.choice(pool, size=s).astype(np.float32) for i, s in enumerate(shapes)}


@settings(max_examples=250, deadline=None)
@given(op=st.sampled_from(_OPS), shapes=st.sampled_from(_SHAPES), swap=st.booleans(),
       threads=st.sampled_from([1, 2]), nans_only=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_two_nans_equal_onnxruntime(op, shapes, swap, threads, nans_only, seed):
    # before: Add / Mul / Sum of two 11-element NaN vectors, ONNX Runtime input 1's NaN on
    # elements 0-7 and input 0's on 8-10; lowp's Sum input 0's everywhere, its native Mul
    # input 0's on element 10; Mod input 0's where ONNX Runtime gives input 1's
    rng = np.random.default_rng(seed)
    pair = list(shapes[::-1] if swap else shapes)
    assert_bits_agree(_model(op, pair), _feeds(rng, pair, _NANS if nans_only else _POOL), threads)


@pytest.mark.parametrize("op", ["Add", "Mul", "Sub", "Div", "Mod"])
@pytest.mark.parametrize("n", [1, 2, 3, 11])
@pytest.mark.parametrize("form", ["both", "first one value", "second one value"])
def test_item_76_vectors(op, n, form):
    # a (0x7fc00111) and b (0x7fc00222) NaNs throughout, item 76's minimal repro
    a = np.full(1 if form == "first one value" else n, 0x7FC00111, np.uint32).view(np.float32)
    b = np.full(1 if form == "second one value" else n, 0x7FC00222, np.uint32).view(np.float32)
    assert_bits_agree(_model(op, [a.shape, b.shape]), {"x0": a, "x1": b}, 1)


@settings(max_examples=80, deadline=None)
@given(op=st.sampled_from(["Sum", "Mean"]), n=st.integers(1, 40), count=st.integers(3, 5),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**31 - 1))
def test_variadic_sum_mean_equal_onnxruntime(op, n, count, threads, seed):
    # ONNX Runtime adds the inputs in order, each pair by the rule of two operands
    rng = np.random.default_rng(seed)
    shapes = [(n,) if rng.random() < 0.7 else (1,) for _ in range(count)]
    assert_bits_agree(_model(op, shapes), _feeds(rng, shapes, _NANS), threads)


@pytest.mark.parametrize("op", ["Add", "Mul", "Sum", "Sub"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("form", ["both", "first one value", "second one value"])
def test_long_two_nans_in_onnxruntime_blocks(op, threads, form):
    # at 2 threads ONNX Runtime cuts 100,003 elements into blocks of 16,842 (cost 1, (O91)),
    # each with its own scalar head and tails
    n = 100_003
    rng = np.random.default_rng(threads)
    shapes = [(1,) if form == "first one value" else (n,),
              (1,) if form == "second one value" else (n,)]
    assert_bits_agree(_model(op, shapes), _feeds(rng, shapes, _NANS), threads)


def _chain() -> onnx.ModelProto:
    """((x0 + x1) * x2 - x3) / x4 -> Relu: one fused element-wise chain in lowp, with
    operands whole, one value per row and one value."""
    nodes = [helper.make_node("Add", ["x0", "x1"], ["s"]),
             helper.make_node("Mul", ["s", "x2"], ["p"]),
             helper.make_node("Sub", ["p", "x3"], ["d"]),
             helper.make_node("Div", ["d", "x4"], ["q"]),
             helper.make_node("Relu", ["q"], ["y"])]
    shapes = {"x0": ["r", "n"], "x1": ["r", "n"], "x2": ["r", 1], "x3": [1, "n"], "x4": [1]}
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(k, F, v) for k, v in shapes.items()],
        [helper.make_tensor_value_info("y", F, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 5), n=st.sampled_from([1, 3, 7, 11, 17, 600, 2049]),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**31 - 1))
def test_fused_chain_two_nans_equal_onnxruntime(rows, n, threads, seed):
    # each step's NaN by its own broadcast run, inside lowp's fused chain too
    rng = np.random.default_rng(seed)
    shapes = [(rows, n), (rows, n), (rows, 1), (1, n), (1,)]
    assert_bits_agree(_chain(), _feeds(rng, shapes, _POOL), threads)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("rows", [1, 3])
def test_long_fused_chain_in_onnxruntime_blocks(rows, threads):
    # one run of the whole output (rows 1) cut into ONNX Runtime's blocks at 2 threads,
    # inside lowp's fused chain's blocks of 512
    rng = np.random.default_rng(rows + threads)
    n = 100_003
    shapes = [(rows, n), (rows, n), (rows, 1), (1, n), (1,)]
    assert_bits_agree(_chain(), _feeds(rng, shapes, _NANS), threads)
