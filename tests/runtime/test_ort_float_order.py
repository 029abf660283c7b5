"""Float operators whose ONNX Runtime evaluation lowp reproduces bit for bit (lowp.ort_math):
ReduceSum / ReduceMean over any one run of consecutive axes (trailing, middle, leading or
all), Exp and Softmax. A decomposed LayerNorm or softmax between
DequantizeLinear and QuantizeLinear then quantizes ties as ONNX Runtime does."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import TensorProto, helper

from lowp import ort_math
from lowp.runtime import native_backend
from lowp.runtime.float_ops import FLOAT_OPS


def _onnxruntime(op: str, x: np.ndarray, axes: list[int] | None = None,
                 keepdims: int = 1) -> np.ndarray:
    inits = [] if axes is None else [
        helper.make_tensor("axes", TensorProto.INT64, [len(axes)], axes)]
    node = (helper.make_node(op, ["x"], ["y"]) if axes is None else
            helper.make_node(op, ["x", "axes"], ["y"], keepdims=keepdims))
    graph = helper.make_graph(
        [node], "r", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@st.composite
def _cases(draw: st.DrawFn) -> tuple[np.ndarray, list[int], int]:
    rank = draw(st.integers(1, 4))
    shape = draw(st.lists(st.sampled_from([1, 2, 3, 5, 8, 13, 40, 130]), min_size=rank,
                          max_size=rank))
    lo = draw(st.integers(0, rank - 1))
    axes = list(range(lo, draw(st.integers(lo + 1, rank))))
    seed = draw(st.integers(0, 2**16))
    x = (np.random.default_rng(seed).standard_normal(shape)
         * draw(st.sampled_from([1e-3, 1.0, 300.0]))).astype(np.float32)
    return x, [a - rank if draw(st.booleans()) else a for a in axes], draw(st.integers(0, 1))


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean"])
@given(case=_cases())
def test_sum_and_mean_equal_onnxruntime(op, case):
    x, axes, keepdims = case
    got = FLOAT_OPS[op](x, np.array(axes, np.int64), keepdims=keepdims, opset=18)
    np.testing.assert_array_equal(got, _onnxruntime(op, x, axes, keepdims))


@pytest.mark.parametrize("n", [1, 3, 4, 7, 8, 9, 12, 16, 17, 31, 64, 257, 384])
def test_row_sums_equal_onnxruntime_for_every_boundary(n):
    # 9 rows: every row start modulo the 4-float packet occurs
    x = (np.random.default_rng(n).standard_normal((9, n)) * 50).astype(np.float32)
    want = _onnxruntime("ReduceSum", x, [-1], 0)
    np.testing.assert_array_equal(ort_math.eigen_row_sums(x), want)
    if n >= 8:
        assert not np.array_equal(x.sum(axis=1), want) or n < 16   # numpy's order differs


def test_unmodelled_orders_are_left_to_numpy():
    x = np.ones((3, 4, 5), np.float32)
    assert ort_math.reduce_sum(x.astype(np.float16), (1,), True) is None
    assert ort_math.reduce_sum(np.ones((0, 4), np.float32), (1,), True) is None
    # two runs of reduced axes and float64 middle axes are modelled since (O120)
    assert ort_math.reduce_sum(x, (0, 2), True) is not None
    assert ort_math.reduce_sum(x.astype(np.float64), (1,), True) is not None


@given(seed=st.integers(0, 2**16), spread=st.sampled_from([1.0, 10.0, 60.0, 120.0]),
       size=st.integers(1, 3000))
def test_exp_equals_onnxruntime(seed, spread, size):
    x = (np.random.default_rng(seed).standard_normal(size) * spread).astype(np.float32)
    np.testing.assert_array_equal(FLOAT_OPS["Exp"](x), _onnxruntime("Exp", x))


def test_exp_of_special_values_equals_onnxruntime():
    x = np.array([np.inf, -np.inf, np.nan, 88.72, 88.8, -87.0, -103.97, -104.0, 0.0, -0.0,
                  1e-30, 3.4e38, -3.4e38], np.float32)
    np.testing.assert_array_equal(FLOAT_OPS["Exp"](x), _onnxruntime("Exp", x))


def _softmax_onnxruntime(x: np.ndarray, axis: int, opset: int,
                         op: str = "Softmax") -> np.ndarray:
    graph = helper.make_graph(
        [helper.make_node(op, ["x"], ["y"], axis=axis)], "s",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


@pytest.mark.skipif(not ort_math.mlas_has_avx512f(),
                    reason="ONNX Runtime's AVX2 softmax order is not modelled")
@given(seed=st.integers(0, 2**16), shape=st.lists(st.integers(1, 70), min_size=1, max_size=3),
       spread=st.sampled_from([0.1, 4.0, 40.0]), opset=st.sampled_from([11, 13]),
       data=st.data())
def test_softmax_equals_onnxruntime(seed, shape, spread, opset, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = (np.random.default_rng(seed).standard_normal(shape) * spread).astype(np.float32)
    got = FLOAT_OPS["Softmax"](x, axis=axis, opset=opset)
    np.testing.assert_array_equal(got, _softmax_onnxruntime(x, axis, opset))


@pytest.mark.skipif(not ort_math.mlas_has_avx512f(),
                    reason="ONNX Runtime's AVX2 softmax order is not modelled")
@given(seed=st.integers(0, 2**16), shape=st.lists(st.integers(1, 70), min_size=1, max_size=3),
       spread=st.sampled_from([0.1, 4.0, 40.0]), opset=st.sampled_from([11, 13]),
       data=st.data())
def test_log_softmax_equals_onnxruntime(seed, shape, spread, opset, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = (np.random.default_rng(seed).standard_normal(shape) * spread).astype(np.float32)
    got = FLOAT_OPS["LogSoftmax"](x, axis=axis, opset=opset)
    np.testing.assert_array_equal(got, _softmax_onnxruntime(x, axis, opset, "LogSoftmax"))


@pytest.mark.parametrize("op", ["ReduceSumSquare", "ReduceL2"])
@pytest.mark.parametrize("axes", [[3], [2, 3], [1], [0, 2], [0], [0, 1, 2, 3]])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_sum_of_squares_equals_onnxruntime(op, axes, keepdims):
    """(O38): the generic loop's sequential sums, or the whole tensor's squared norm."""
    x = np.random.default_rng(len(axes)).standard_normal((2, 32, 7, 9)).astype(np.float32)
    got = FLOAT_OPS[op](x, np.array(axes), keepdims=keepdims, opset=18)
    np.testing.assert_array_equal(got, _onnxruntime(op, x, axes, keepdims))


@pytest.mark.parametrize("op", ["ReduceL1", "ReduceLogSumExp"])
@pytest.mark.parametrize("axes", [[3], [2, 3], [1], [0, 2]])
def test_generic_reductions_equal_onnxruntime(op, axes):
    """(O38): ReduceL1 and ReduceLogSumExp over some axes, in ONNX Runtime's generic loop."""
    x = (np.random.default_rng(len(axes)).standard_normal((2, 32, 7, 9)) * 3).astype(np.float32)
    got = FLOAT_OPS[op](x, np.array(axes), keepdims=1, opset=18)
    np.testing.assert_array_equal(got, _onnxruntime(op, x, axes, 1))


@pytest.mark.skipif(not ort_math.mlas_has_avx512f(),
                    reason="ONNX Runtime's AVX2 softmax order is not modelled")
@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@given(seed=st.integers(0, 2**16), shape=st.lists(st.integers(1, 40), min_size=2, max_size=4),
       spread=st.sampled_from([0.1, 4.0, 40.0, 400.0]), share=st.sampled_from([0.0, 0.05, 0.5]),
       path=st.sampled_from(native_backend.available_paths()), data=st.data())
def test_softmax_over_any_axis_with_special_values_equals_onnxruntime(op, seed, shape, spread,
                                                                       share, path, data):
    """Softmax and LogSoftmax at opset 13 over every axis (the native kernel reads a non-last
    axis in place), with -inf, +-3e38, +inf and NaN among the values, on every path."""
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * spread).astype(np.float32)
    special = np.array([-np.inf, np.inf, 3e38, -3e38, 88.0, -104.0, np.nan], np.float32)
    x = np.where(rng.random(shape) < share, rng.choice(special, size=shape), x).astype(np.float32)
    with native_backend.use_path(path):
        got = FLOAT_OPS[op](x, axis=axis, opset=13)
    np.testing.assert_array_equal(got, _softmax_onnxruntime(x, axis, 13, op))
