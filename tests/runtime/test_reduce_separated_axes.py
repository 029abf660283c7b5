"""ReduceSum / ReduceMean of float32 and float64 over two or more runs of reduced axes
(ONNX Runtime's FastReduceRKR and its generic loop) and of float64 over middle axes
(MLAS's DGEMM blocks), (O120), give ONNX Runtime's bits on both backends at 1 and 2 threads
(evals/corpus/repro/README.md item 96)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

import lowp
from lowp import ort_math

from .ort_agreement import onnxruntime_run

BACKENDS = ("reference", "native")
TYPES = {np.float32: TensorProto.FLOAT, np.float64: TensorProto.DOUBLE}


def _assert_reduction_bits(op: str, x: np.ndarray, axes: list[int], threads: int) -> None:
    init = helper.make_tensor("axes", TensorProto.INT64, [len(axes)], axes)
    node = helper.make_node(op, ["x", "axes"], ["y"], keepdims=1)
    elem = TYPES[x.dtype.type]
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", elem, list(x.shape))],
        [helper.make_tensor_value_info("y", elem, None)], [init])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    want = onnxruntime_run(model, {"x": x}, threads)[0]
    for backend in BACKENDS:
        got = lowp.Session(model, backend=backend, threads=threads).run({"x": x})["y"]
        apart = int(np.sum(got != want))
        assert got.shape == want.shape and apart == 0, (op, backend, threads, apart)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("shape", "axes"), [
    ((5, 17, 6), [0, 2]), ((3, 40, 7), [0, 2]), ((9, 8, 3, 5), [1, 3]),
    ((9, 8, 3, 5), [0, 2, 3]), ((16, 2, 2, 40), [0, 1, 3]), ((1, 50, 3), [0, 2]),
    ((3, 1, 33), [0, 2]), ((9, 5, 1), [0, 1])])
def test_separated_axes(op: str, dtype: type, shape: tuple[int, ...], axes: list[int]) -> None:
    """Cases that numpy's sum gave other bits on (1-28 of 2-40 outputs each). A kept run
    of length 1 between two reduced ones is ONNX Runtime's generic loop, not its
    FastReduceRKR; float64 over leading axes adds in order even onto one column."""
    x = (np.random.default_rng(7).standard_normal(shape) * 4).astype(dtype)
    _assert_reduction_bits(op, x, axes, 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=8, deadline=None)
@given(shape=st.lists(st.integers(1, 9), min_size=3, max_size=5), data=st.data(),
       threads=st.sampled_from([1, 2]), mean=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_any_axes_give_onnxruntimes_bits(dtype: type, shape: list[int], data: st.DataObject,
                                         threads: int, mean: bool, seed: int) -> None:
    axes = sorted(data.draw(st.lists(st.integers(0, len(shape) - 1), min_size=1,
                                     max_size=len(shape), unique=True)))
    x = (np.random.default_rng(seed).standard_normal(shape) * 4).astype(dtype)
    _assert_reduction_bits("ReduceMean" if mean else "ReduceSum", x, axes, threads)


@pytest.mark.parametrize(("shape", "stride_k"), [
    ((4, 1000, 8), 512), ((3, 257, 33), 128), ((2, 257, 4), 512), ((2, 300, 70), 128)])
def test_double_middle_axes_sum_in_dgemm_blocks(shape: tuple[int, int, int],
                                                stride_k: int) -> None:
    """ones(1, k) @ x[d] by MLAS's DGEMM: in order within blocks of stride_k rows, the
    blocks' sums added (numpy's order gave 83-86 of 99 outputs other bits on (3, 257, 33))."""
    assert ort_math.dgemm_stride_k(shape[2], shape[1]) == stride_k
    x = np.random.default_rng(3).standard_normal(shape) * 4
    for op in ("ReduceSum", "ReduceMean"):
        _assert_reduction_bits(op, x, [1], 2)


@pytest.mark.parametrize("op", ["ReduceProd", "ReduceL1", "ReduceLogSumExp"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=5, deadline=None)
@given(shape=st.lists(st.integers(1, 40), min_size=1, max_size=3),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**32 - 1))
def test_every_axis_gives_onnxruntimes_bits(op: str, dtype: type, shape: list[int],
                                            threads: int, seed: int) -> None:
    """Over every axis ReduceProd is Eigen's redux of the buffer (multiplying), float32
    ReduceL1 ReduceSum's order of |x|, float32 ReduceLogSumExp its generic loop (numpy's
    product, sum and exp gave other bits on 6-10 of 11 shapes)."""
    x = (np.random.default_rng(seed).standard_normal(shape) * 0.05 + 1).astype(dtype)
    _assert_reduction_bits(op, x, list(range(len(shape))), threads)


def _one_at_a_time(rows: np.ndarray) -> np.ndarray:
    acc = rows[0].copy()
    for j in range(1, rows.shape[0]):
        for c in range(rows.shape[1]):
            acc[c] = acc[c] + rows[j, c]
    return acc


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=40, deadline=None)
@given(k=st.integers(1, 40), m=st.sampled_from([1, 3, 255, 256, 257]), data=st.data())
def test_in_order_sums_add_each_row_in_turn(dtype: type, k: int, m: int,
                                            data: st.DataObject) -> None:
    """The rows of a generic loop's sums, added by np.add.accumulate where the columns are
    few: each column's values one at a time in order, in the array's type (infinities
    included, NaN-free: NaNs keep the running sum's payload by a loop of their own)."""
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    rows = (rng.standard_normal((k, m)) * 10.0 ** rng.integers(-3, 30, (k, m))).astype(dtype)
    if data.draw(st.booleans()):
        rows[rng.integers(0, k), rng.integers(0, m)] = np.inf
    got = ort_math.in_order_sums(rows)
    want = _one_at_a_time(rows)
    assert got.dtype == rows.dtype
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean"])
def test_a_unit_axis_between_reduced_axes(op: str, threads: int) -> None:
    """gtcrn_stream's layer norm means: (1, 33, 1, 16) over axes 1 and 3, one output summed
    by ONNX Runtime's generic loop."""
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((1, 33, 1, 16)) * 100).astype(np.float32)
    _assert_reduction_bits(op, x, [1, 3], threads)
