"""float64 Exp, Log, Tanh, Sigmoid, Sin and Cos give ONNX Runtime's bits: Eigen's double
packets (two lanes, no fused multiply-add), the C library on each run's head and tail, and
ONNX Runtime's TryParallelFor blocks at several threads (lowp.eigen_double; docs/operators.md
(O104); evals/corpus/repro/README.md item 77)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

import lowp
from lowp import eigen_double, libm

from .ort_agreement import onnxruntime_run, unary_model

OPS = ("Exp", "Log", "Tanh", "Sigmoid", "Sin", "Cos")
BACKENDS = ("reference", "native")
EDGES = np.array(
    [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, -2.2e-308, np.inf, -np.inf, 1e300,
     -1e300, 709.78, 709.79, -709.79, -745.2, -745.1, 710.0, -710.0, 1e-300, 0.5, 1.0, -1.0,
     17.7, -17.8, 15.0, -15.0, 14.99, 1e14, 1.0000001e14, -1e15, 1e16, 2.0**63, 1e22, 3.0])
NANS = np.array([0x7FF0000000000001, 0xFFF4000000000123, 0x7FF8000000000ABC,
                 0xFFF8000000000000], np.uint64).view(np.float64)


def _assert_node_bits(node: onnx.NodeProto, x: np.ndarray, x_shape: list[object],
                      y_shape: list[object], opset: int,
                      initializer: Sequence[onnx.TensorProto] = ()) -> None:
    """`node` from double x to double y gives ONNX Runtime's bits on both backends."""
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, y_shape)],
        initializer=list(initializer))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    expected = onnxruntime_run(model, {"x": x})[0]
    for backend in BACKENDS:
        got = lowp.Session(model, backend=backend).run({"x": x})["y"]
        assert np.array_equal(got.view(np.uint64), expected.view(np.uint64)), backend


def _assert_bits(op: str, x: np.ndarray, threads: int) -> None:
    model = unary_model(op, TensorProto.DOUBLE)
    expected = onnxruntime_run(model, {"x": x}, threads)[0]
    for backend in BACKENDS:
        got = lowp.Session(model, backend=backend, threads=threads).run({"x": x})["y"]
        apart = np.flatnonzero(got.view(np.uint64) != expected.view(np.uint64))
        assert apart.size == 0, (op, backend, threads, apart.size, x[apart[:3]])


@pytest.mark.parametrize("op", OPS)
@settings(max_examples=5, deadline=None)
@given(n=st.one_of(st.integers(1, 9), st.integers(10_000, 300_000)),
       threads=st.sampled_from([1, 2, 4]), scale=st.sampled_from([1.0, 4.0, 30.0, 1e3]),
       seed=st.integers(0, 2**32 - 1))
def test_random_values_give_onnxruntimes_bits(op: str, n: int, threads: int, scale: float,
                                              seed: int) -> None:
    x = np.random.default_rng(seed).standard_normal(n) * scale
    if op == "Log":
        x = np.abs(x)
    _assert_bits(op, x, threads)


@pytest.mark.parametrize("op", OPS)
@settings(max_examples=4, deadline=None)
@given(threads=st.sampled_from([1, 2, 4]), seed=st.integers(0, 2**32 - 1))
def test_bit_patterns_give_onnxruntimes_bits(op: str, threads: int, seed: int) -> None:
    """Every class of double: subnormals, huge values, infinities, NaNs of any payload."""
    bits = np.random.default_rng(seed).integers(0, 2**64, 100_001, dtype=np.uint64)
    _assert_bits(op, bits.view(np.float64), threads)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("n", [1, 2, 3, 5, 80])
def test_edge_values_give_onnxruntimes_bits(op: str, n: int) -> None:
    """+-0, subnormals, +-inf, signalling and quiet NaNs, the clamps and the reduction's
    thresholds, on both packet lanes and in the odd tail."""
    values = np.concatenate([EDGES, NANS, -EDGES[::-1]])
    for shift in range(3):
        x = np.ascontiguousarray(np.roll(values, shift)[:n] if n < len(values) else
                                 np.resize(np.roll(values, shift), n))
        _assert_bits(op, x, 1)


def test_c_library_tails_are_onnxruntimes_symbols() -> None:
    """ONNX Runtime's wheel calls glibc's log@GLIBC_2.2.5, whose log of a negative number is a
    positive NaN (the GLIBC_2.29 one gives a negative NaN)."""
    out = libm.log_float64(np.array([-1.0, -np.inf, 0.0, 1.0]))
    assert out.view(np.uint64)[0] == 0x7FF8000000000000
    assert out.view(np.uint64)[1] == 0x7FF8000000000000
    assert out[2] == -np.inf and out[3] == 0.0


def test_packets_are_not_the_correctly_rounded_values() -> None:
    """The packet functions are Eigen's approximations: numpy's float64 routines differ."""
    x = np.random.default_rng(76).standard_normal(100_003) * 4
    assert np.count_nonzero(eigen_double.sin(x) != np.sin(x)) > 10_000
    assert np.count_nonzero(eigen_double.exp(x) != np.exp(x)) > 1_000


@pytest.mark.parametrize(("op", "attrs"), [("Sign", {}), ("Shrink", {}),
                                           ("Shrink", {"bias": 0.1, "lambd": 0.3})])
@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_double_sign_and_shrink_give_onnxruntimes_bits(op: str, attrs: dict[str, float],
                                                       seed: int) -> None:
    """Sign of a NaN clears its sign bit; Shrink of doubles runs in float32 (O104)."""
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2**64, 20_001, dtype=np.uint64).view(np.float64)
    x = np.concatenate([rng.standard_normal(20_001) * 2, bits, EDGES, NANS])
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    _assert_node_bits(node, x, ["n"], ["n"], 18)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@settings(max_examples=6, deadline=None)
@given(rows=st.one_of(st.just(1), st.integers(2, 300)), cols=st.integers(1, 3000),
       axis=st.sampled_from([-1, 0]), seed=st.integers(0, 2**32 - 1))
def test_double_softmax_gives_onnxruntimes_bits(op: str, rows: int, cols: int, axis: int,
                                                seed: int) -> None:
    """SoftmaxCPU<double>: x - max, Eigen's exp over the buffer, each row summed by Eigen's
    matrix-vector product, a single row by its inner product (O104). Finite inputs."""
    x = np.random.default_rng(seed).standard_normal((rows, cols)) * 4
    if axis == 0 and cols < 2:
        return
    node = helper.make_node(op, ["x"], ["y"], axis=axis)
    _assert_node_bits(node, x, [rows, cols], [rows, cols], 13)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean"])
@settings(max_examples=6, deadline=None)
@given(rows=st.integers(1, 200), cols=st.integers(1, 300), seed=st.integers(0, 2**32 - 1))
def test_double_row_sums_give_onnxruntimes_bits(op: str, rows: int, cols: int,
                                                seed: int) -> None:
    """A double sum over the trailing axis is Eigen's redux of each row: two packet
    accumulators of two lanes from the row's first 16-byte boundary, the lanes added, then
    the peeled head and the tail (O104)."""
    x = np.random.default_rng(seed).standard_normal((rows, cols)) * 4
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    node = helper.make_node(op, ["x", "axes"], ["y"], keepdims=1)
    _assert_node_bits(node, x, [rows, cols], [rows, 1], 18, initializer=[axes])


@pytest.mark.parametrize("op", ["ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSum",
                                "ReduceLogSumExp"])
@settings(max_examples=6, deadline=None)
@given(shape=st.lists(st.integers(1, 40), min_size=2, max_size=3),
       data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_double_reductions_over_some_axes_give_onnxruntimes_bits(
        op: str, shape: list[int], data: st.DataObject, seed: int) -> None:
    """Over some axes ONNX Runtime's generic loop adds each output's terms in row-major
    order from +0 (|x|, x², x, exp(x - max) by the C library's exp), then the C library's
    log where there is one; over every axis L1, L2, SumSquare and LogSum sum in ReduceSum's
    order (O104). Finite values."""
    axes = data.draw(st.lists(st.integers(0, len(shape) - 1), min_size=1,
                              max_size=len(shape), unique=True))
    x = np.random.default_rng(seed).standard_normal(shape) * 4
    if op == "ReduceLogSum":
        x = np.abs(x)
    axes_init = helper.make_tensor("axes", TensorProto.INT64, [len(axes)], axes)
    node = helper.make_node(op, ["x", "axes"], ["y"], keepdims=0)
    out = [d for a, d in enumerate(shape) if a not in axes]
    _assert_node_bits(node, x, shape, out, 18, initializer=[axes_init])


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("special", [np.nan, np.inf])
@settings(max_examples=4, deadline=None)
@given(rows=st.integers(1, 60), cols=st.integers(1, 40), seed=st.integers(0, 2**32 - 1))
def test_double_softmax_rows_with_nans_or_infinities(op: str, special: float, rows: int,
                                                     cols: int, seed: int) -> None:
    """A row's maximum is Eigen's maxCoeff: a NaN in its first packet stays, one met later
    is dropped (then LogSoftmax's fmax drops the NaN sum) (O104)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, cols)) * 4
    x[rng.random((rows, cols)) < 0.15] = special
    node = helper.make_node(op, ["x"], ["y"], axis=-1)
    _assert_node_bits(node, x, [rows, cols], [rows, cols], 13)


def _payload_nans(*payloads: int) -> np.ndarray:
    return np.array(payloads, np.uint64).view(np.float64)


@pytest.mark.parametrize("x", [
    [[-0.5, *_payload_nans(0x7FF8000000000001, 0xFFF8000000000002, 0x7FF8000000000003)]],
    [[1.0, 2.0, *_payload_nans(0x7FF8000000000001, 0xFFF8000000000002)],
     [1.0, 2.0, *_payload_nans(0x7FF8000000000001, 0xFFF8000000000002)]],
    [[np.inf, *_payload_nans(0x7FF8000000000001), 0.1]],
    [[*_payload_nans(0x7FF8000000000001, 0xFFF8000000000002)]],
], ids=["one-row", "two-rows", "inf-minus-inf", "nan-maximum"])
def test_double_softmax_keeps_onnxruntimes_nan(x: list[list[float]]) -> None:
    """Which NaN a row of several comes out as: ONNX Runtime's Gemm adds a NaN maximum's
    own NaN to every element, and its row sums keep the NaN their compiled adds keep (one
    accumulator, lane 1 first, over several rows; Eigen's inner product for one row)
    (O121)."""
    a = np.array(x)
    node = helper.make_node("Softmax", ["x"], ["y"], axis=-1)
    _assert_node_bits(node, a, list(a.shape), list(a.shape), 13)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@settings(max_examples=8, deadline=None)
@given(rows=st.integers(1, 4), cols=st.integers(1, 40), share=st.floats(0.05, 0.5),
       seed=st.integers(0, 2**32 - 1))
def test_double_softmax_rows_with_nans_and_infinities(op: str, rows: int, cols: int,
                                                      share: float, seed: int) -> None:
    """Rows holding NaNs of several payloads and signs (signalling ones too) with +-inf
    and large values: the NaN each element comes out as is ONNX Runtime's (O121)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, cols)) * 4
    pick = rng.random((rows, cols)) < share
    specials = np.concatenate([NANS, [np.inf, -np.inf, 1e308, -1e308]])
    x[pick] = rng.choice(specials, int(pick.sum()))
    node = helper.make_node(op, ["x"], ["y"], axis=-1)
    _assert_node_bits(node, x, [rows, cols], [rows, cols], 13)
