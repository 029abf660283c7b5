"""float32 Max and Min of +0 and -0 and of two NaNs against ONNX Runtime bit for bit
(docs/operators.md (O105)): Eigen's E1.max(E2) (E1 input 0, or input 1 when input 0 is one
value in the broadcast run), in 4-float packets at 16-byte-aligned output positions giving
E2 of two equal values, its scalar head and tail giving E1; of two NaNs E1's everywhere.
np.maximum / np.minimum gave input 1 of equal values throughout, and of two NaNs input 0's
in the tail of a reversed pair (repro item 88)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from .ort_agreement import assert_bits_agree

F = TensorProto.FLOAT

_POOL = np.array([0x00000000, 0x80000000, 0x7FC00111, 0x7FC00222, 0xFFC00333, 0x7FA00001,
                  0x3F800000, 0xBF800000], np.uint32).view(np.float32)
_SHAPES = ([((n,), (n,)) for n in range(1, 41)] + [((n,), (1,)) for n in range(1, 41)]
           + [((3, n), (1, n)) for n in range(1, 12)] + [((3, n), (3, 1)) for n in range(1, 12)]
           + [((3, 1), (1, n)) for n in range(1, 12)] + [((2, 3, n), (3, n)) for n in range(1, 9)]
           + [((2, 3, n), (2, 1, n)) for n in range(1, 9)] + [((n,), ()) for n in (5, 16, 17)])


def _model(op: str, shapes: list[tuple[int, ...]], consts: Mapping[str, np.ndarray] | None = None
           ) -> onnx.ModelProto:
    consts = consts or {}
    names = [f"x{i}" for i in range(len(shapes))]
    inputs = [helper.make_tensor_value_info(n, F, list(s))
              for n, s in zip(names, shapes, strict=True) if n not in consts]
    graph = helper.make_graph(
        [helper.make_node(op, names, ["y"])], "g", inputs,
        [helper.make_tensor_value_info("y", F, None)],
        [numpy_helper.from_array(v, k) for k, v in consts.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@settings(max_examples=150, deadline=None)
@given(op=st.sampled_from(["Max", "Min"]), shapes=st.sampled_from(_SHAPES),
       swap=st.booleans(), threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**31 - 1))
def test_max_min_pairs_equal_onnxruntime(op, shapes, swap, threads, seed):
    # before: Max(-0, +0) of 7 elements gave +0 x 7, ONNX Runtime +0 +0 +0 +0 -0 -0 -0
    rng = np.random.default_rng(seed)
    pair = list(shapes[::-1] if swap else shapes)
    feeds = {f"x{i}": rng.choice(_POOL, size=s).astype(np.float32) for i, s in enumerate(pair)}
    assert_bits_agree(_model(op, pair), feeds, threads)


@settings(max_examples=60, deadline=None)
@given(op=st.sampled_from(["Max", "Min"]), n=st.integers(1, 40), count=st.integers(3, 5),
       seed=st.integers(0, 2**31 - 1))
def test_variadic_max_min_equal_onnxruntime(op, n, count, seed):
    # ONNX Runtime folds the inputs in order, each pair by the rule of two operands
    rng = np.random.default_rng(seed)
    shapes = [(n,) if rng.random() < 0.7 else (1,) for _ in range(count)]
    feeds = {f"x{i}": rng.choice(_POOL, size=s).astype(np.float32) for i, s in enumerate(shapes)}
    assert_bits_agree(_model(op, shapes), feeds, 1)


@pytest.mark.parametrize("op", ["Max", "Min"])
@pytest.mark.parametrize("n", [1, 3, 16, 17, 1031])
@pytest.mark.parametrize("const_first", [False, True])
def test_max_by_constant_zero_equal_onnxruntime(op, n, const_first):
    # Max(x, 0) of -0 (a Relu written out): ONNX Runtime +0 in the packets, -0 in the tail
    x = np.full(n, -0.0, np.float32)
    zero = {"x0" if const_first else "x1": np.zeros(1, np.float32)}
    shapes = [(1,), (n,)] if const_first else [(n,), (1,)]
    model = _model(op, shapes, zero)
    assert_bits_agree(model, {("x1" if const_first else "x0"): x}, 1)


@pytest.mark.parametrize("op", ["Max", "Min"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("one_value", [False, True])
def test_long_max_min_in_onnxruntime_blocks(op, threads, one_value):
    # at 2 threads ONNX Runtime cuts 100,003 elements into blocks of 16,842 (cost 1, (O91)),
    # each with its own scalar head and tail: -0 x 15 among +0 of Max(-0, +0)
    n = 100_003
    rng = np.random.default_rng(threads)
    a = rng.choice(_POOL, size=n).astype(np.float32)
    b = rng.choice(_POOL, size=1 if one_value else n).astype(np.float32)
    assert_bits_agree(_model(op, [a.shape, b.shape]), {"x0": a, "x1": b}, threads)
