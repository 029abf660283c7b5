"""The native float32 Gemm (C broadcast into the output, then MLAS's SGEMM accumulating onto
it: ONNX Runtime's order, (O33)) equals lowp.mlas_sgemm.gemm bit for bit on every
instruction-set path and thread count, a one-node model equals ONNX Runtime, and a Gemm
between other steps replays inside a native Program."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp import Session, mlas_sgemm
from lowp.runtime import native_backend, native_float
from lowp.runtime.float_ops import Gemm
from tests.runtime.ort_agreement import onnxruntime_run

PATHS = native_backend.available_paths()
pytestmark = pytest.mark.skipif(native_float.kernels() == "none",
                                reason="the extension has no float kernels")
# the shapes of C that broadcast to (m, n): none, scalar, a row, a column, full
C_SHAPES = ["none", "scalar", "1", "n", "1n", "m1", "mn"]
SIZES = st.one_of(st.integers(0, 40), st.sampled_from([127, 128, 129, 255, 257, 600]))


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint32)


def _c(kind: str, m: int, n: int, rng: np.random.Generator) -> np.ndarray | None:
    shapes = {"scalar": (), "1": (1,), "n": (n,), "1n": (1, n), "m1": (m, 1), "mn": (m, n)}
    return None if kind == "none" else rng.standard_normal(shapes[kind]).astype(np.float32)


def _operands(m: int, k: int, n: int, ta: bool, tb: bool, seed: int
              ) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    return a, b


@pytest.mark.parametrize("path", PATHS)
@given(m=SIZES, k=SIZES, n=SIZES, ta=st.booleans(), tb=st.booleans(), packed=st.booleans(),
       c_kind=st.sampled_from(C_SHAPES), alpha=st.sampled_from([1.0, 0.5, -3.0]),
       seed=st.integers(0, 2**16), threads=st.sampled_from([1, 2]))
@settings(max_examples=40)
def test_native_gemm_equals_the_mlas_order(path, m, k, n, ta, tb, packed, c_kind, alpha, seed,
                                           threads):
    a, b = _operands(m, k, n, ta, tb, seed)
    c = _c(c_kind, m, n, np.random.default_rng(seed + 1))
    with native_backend.use_path(path), native_float.threads(threads):
        got = native_float.gemm(a, b, c, alpha=alpha, trans_a=ta, trans_b=tb, b_packed=packed)
    c0 = None if c is None else np.broadcast_to(c, (m, n)).copy()
    # MLAS's cut between threads (lowp.mlas_sgemm.thread_parts) is part of the order
    want = mlas_sgemm.gemm(a, b, alpha=alpha, trans_a=ta, trans_b=tb, packed=packed, c=c0,
                           threads=threads)
    if m * k == 0:                       # below the native kernels' smallest input
        assert got is None
        return
    assert got is not None and got.shape == want.shape
    np.testing.assert_array_equal(_bits(got), _bits(want))


@pytest.mark.parametrize("beta", [1.0, 0.0, 0.5])
def test_operator_takes_the_kernel_only_where_c_is_added_as_it_is(beta):
    """beta 1 (or no C, or beta 0) runs natively; another beta scales C in numpy first and
    keeps the numpy path, with the same values either way."""
    a, b = _operands(5, 33, 7, False, True, 1)
    c = np.random.default_rng(2).standard_normal(7).astype(np.float32)
    got = Gemm(a, b, c, beta=beta, transB=1)
    with native_float.disabled():
        ref = Gemm(a, b, c, beta=beta, transB=1)
    np.testing.assert_array_equal(_bits(got), _bits(ref))


def _one_node(m: int, k: int, n: int, ta: bool, tb: bool, c: np.ndarray | None,
              alpha: float, b: np.ndarray) -> onnx.ModelProto:
    inputs = ["a", "b"] + ([] if c is None else ["c"])
    node = helper.make_node("Gemm", inputs, ["y"], alpha=alpha, transA=int(ta),
                            transB=int(tb))
    inits = [numpy_helper.from_array(b, "b")] + \
        ([] if c is None else [numpy_helper.from_array(c, "c")])
    graph = helper.make_graph(
        [node], "gemm", [helper.make_tensor_value_info("a", TensorProto.FLOAT,
                                                       [k, m] if ta else [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@settings(max_examples=25)
@given(m=st.integers(1, 24), k=SIZES.filter(bool), n=st.integers(1, 40), ta=st.booleans(),
       tb=st.booleans(), c_kind=st.sampled_from(C_SHAPES), alpha=st.sampled_from([1.0, 0.25]),
       seed=st.integers(0, 2**16))
def test_one_node_model_equals_onnx_runtime(m, k, n, ta, tb, c_kind, alpha, seed):
    """A Gemm with constant B (and C) in lowp's Session equals ONNX Runtime's one-node
    model, which packs the constant B as lowp's Session does."""
    a, b = _operands(m, k, n, ta, tb, seed)
    c = _c(c_kind, m, n, np.random.default_rng(seed + 1))
    model = _one_node(m, k, n, ta, tb, c, alpha, b)
    want = onnxruntime_run(model, {"a": a})[0]
    got = Session(model, threads=1).run({"a": a})["y"]
    np.testing.assert_array_equal(_bits(got), _bits(want))


def test_gemm_head_replays_in_a_program_with_onnxruntime_outputs():
    """Flatten -> Gemm -> Relu (a classifier head left in float) runs inside a native
    Program from the recorded run on, with ONNX Runtime's outputs on every run."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((10, 48)).astype(np.float32)
    bias = rng.standard_normal(10).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["f"]),
         helper.make_node("Gemm", ["f", "w", "bias"], ["g"], transB=1),
         helper.make_node("Relu", ["g"], ["y"])], "head",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 10])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "bias")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    session = Session(model, threads=1)
    for run in range(4):
        feeds = {"x": rng.standard_normal((3, 3, 4, 4)).astype(np.float32)}
        np.testing.assert_array_equal(session.run(feeds)["y"], onnxruntime_run(model, feeds)[0],
                                      err_msg=f"run {run}")
    replayer = session._replayer
    assert replayer is not None
    signature = (("x", (3, 3, 4, 4), "<f4"),)
    assert replayer.plain_steps(signature) == []
    assert replayer.native_only(signature)


@pytest.mark.parametrize("path", PATHS)
@given(m=st.integers(1, 8), k=st.sampled_from([300, 257, 520]), n=st.sampled_from([1200, 1025]),
       tb=st.booleans(), seed=st.integers(0, 2**16))
@settings(max_examples=6, deadline=None)
def test_kept_panels_of_a_large_constant_b_give_the_same_bits(path, m, k, n, tb, seed):
    """A prepacked B of more than 2^17 values keeps its panels between calls: the first call
    (packed), the second (kept panels) and one after B changed in place (packed again) equal
    mlas_sgemm.gemm bit for bit, at the few rows of A where packing was most of the call."""
    a, b = _operands(m, k, n, False, tb, seed)
    with native_backend.use_path(path), native_float.threads(1):
        for i in range(3):
            got = native_float.gemm(a, b, None, alpha=1.0, trans_a=False, trans_b=tb,
                                     b_packed=True)
            want = mlas_sgemm.gemm(a, b, trans_b=tb, packed=True)
            assert got is not None
            np.testing.assert_array_equal(_bits(got), _bits(want))
            if i == 1:   # the same array, other values
                b[k // 2 if not tb else n // 2, ::7] *= -2.0


@pytest.mark.parametrize("m", [1, 3, 8])
def test_large_constant_b_one_node_model_equals_onnx_runtime(m):
    """MatMul with a 300 x 1200 initializer (K x N > 2^17: panels kept between runs) equals
    ONNX Runtime on every run."""
    rng = np.random.default_rng(m)
    k, n = 300, 1200
    b = rng.standard_normal((k, n)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["y"])], "matmul",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
        [numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    session = Session(model, threads=1)
    for _ in range(3):
        a = rng.standard_normal((m, k)).astype(np.float32)
        want = onnxruntime_run(model, {"a": a})[0]
        np.testing.assert_array_equal(_bits(session.run({"a": a})["y"]), _bits(want))


# attention's products: M query rows and N keys 16..256, K the head size 64 (Q·Kᵀ, B a
# transposed view of K: columns of B contiguous) and the transposed sizes (P·V)
HEAD_SIZES = st.sampled_from([1, 2, 3, 5, 16, 17, 31, 33, 64, 100, 128, 256])


def _on_a_line(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """N(0, 1) float32 values of `shape` starting on a 64-byte boundary."""
    size = shape[0] * shape[1]
    buf = np.empty(size + 16, np.float32)
    start = -buf.ctypes.data % 64 // 4
    out = buf[start:start + size].reshape(shape)
    out[...] = rng.standard_normal(shape)
    return out


@pytest.mark.parametrize("path", PATHS)
@given(m=HEAD_SIZES, k=st.sampled_from([1, 3, 4, 5, 7, 63, 64, 65, 256]), n=HEAD_SIZES,
       tb=st.booleans(), pad=st.sampled_from([0, 0, 3, 16]), alpha=st.sampled_from([1.0, 0.125]),
       line=st.booleans(), seed=st.integers(0, 2**16), threads=st.sampled_from([1, 2]))
@settings(max_examples=60, deadline=None)
def test_attention_sized_products_equal_the_mlas_order(path, m, k, n, tb, pad, alpha, line,
                                                       seed, threads):
    """B read through a view: with `tb` K's rows (n x k, `pad` more values a row, B inside
    a larger array) transposed, so that B's columns lie along K (packed by 4 x 4
    transposes, the rest value by value); else B's rows padded the same way, and with
    `line` on 64-byte boundaries (read in place where the row stride keeps them there)."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k)).astype(np.float32)
    shape = (n, k + pad) if tb else (k, n + pad)
    store = _on_a_line(shape, rng) if line else rng.standard_normal(shape).astype(np.float32)
    bm = store[:, :k].T if tb else store[:, :n]
    out = np.empty((m, n), np.float32)
    with native_backend.use_path(path), native_float.threads(threads):
        assert native_float.single_sgemm(a, bm, out, alpha=alpha, trans_b=tb, init=None,
                                         unit_ldb=pad == 0)
        both = np.empty((m, n), np.float32)
        assert native_float.sgemm(a, bm, both, trans_b=tb)
    b = np.ascontiguousarray(store[:, :k] if tb else store[:, :n])
    want = mlas_sgemm.gemm(a, b, alpha=alpha, trans_b=tb, ldb=k + pad if tb else n + pad)
    np.testing.assert_array_equal(_bits(out), _bits(want))
    want = mlas_sgemm.gemm(a, b, trans_b=tb, threads=threads)
    np.testing.assert_array_equal(_bits(both), _bits(want))
