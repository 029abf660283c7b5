"""Float MatMul, FusedMatMul and Gemm against ONNX Runtime bit for bit at 1, 2 and 4 intra-op
threads (lowp.mlas_sgemm.batched and thread_parts, docs/operators.md (O68)): how ONNX
Runtime's MatMulComputeHelper cuts a batched product into MLAS calls (A's batch axes folded
into M when B is [1, ..., 1, K, N], one 1 x K product per row for a 1-D B, transBatch read
in place) and how MLAS cuts each call between threads (M or N parts, a lone column of a
wider B through the general kernel) decide which kernel sums each element."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session, native_float

F = TensorProto.FLOAT
_MS = "com.microsoft"


def _ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray], threads: int) -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def _product_model(op: str, a: np.ndarray, b: np.ndarray, y_rank: int, const_b: bool,
                   attrs: dict[str, object]) -> onnx.ModelProto:
    inputs = [helper.make_tensor_value_info("a", F, list(a.shape))]
    inits = [numpy_helper.from_array(b, "b")] if const_b else []
    if not const_b:
        inputs.append(helper.make_tensor_value_info("b", F, list(b.shape)))
    node = helper.make_node(op, ["a", "b"], ["y"], domain=_MS if op == "FusedMatMul" else "",
                            **attrs)
    graph = helper.make_graph([node], "g", inputs,
                              [helper.make_tensor_value_info("y", F, [None] * y_rank)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                   helper.make_opsetid(_MS, 1)])


def _assert_agree(model: onnx.ModelProto, feeds: dict[str, np.ndarray], threads: int) -> None:
    theirs = _ort(model, feeds, threads)
    for backend in ("reference", "native"):
        ours = Session(model, backend=backend, threads=threads).run(feeds)["y"]
        np.testing.assert_array_equal(ours, theirs, err_msg=f"{backend}, {threads} threads")


_K = st.sampled_from([1, 2, 7, 16, 129, 257, 600])
_N = st.sampled_from([1, 2, 17, 33, 70, 130])
_M = st.sampled_from([1, 2, 3, 5, 8, 130])


@st.composite
def _batch_shapes(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Broadcastable batch axes for A and B (ranks 2-5 in all), 1s included."""
    rank_a = draw(st.integers(0, 3))
    rank_b = draw(st.integers(0, 3))
    out = draw(st.lists(st.sampled_from([1, 2, 3]), min_size=max(rank_a, rank_b),
                        max_size=max(rank_a, rank_b)))
    a = tuple(d if draw(st.booleans()) else 1 for d in out[len(out) - rank_a:])
    b = tuple(d if draw(st.booleans()) else 1 for d in out[len(out) - rank_b:])
    return a, b


@given(batch=_batch_shapes(), m=_M, k=_K, n=_N, vector_b=st.booleans(),
       op=st.sampled_from(["MatMul", "FusedMatMul"]), trans=st.tuples(st.booleans(),
                                                                      st.booleans()),
       alpha=st.sampled_from([1.0, 0.125]), const_b=st.booleans(),
       threads=st.sampled_from([1, 2, 4]), seed=st.integers(0, 2**16))
@settings(max_examples=120, deadline=None)
def test_matmul_equals_onnxruntime_at_1_2_and_4_threads(batch, m, k, n, vector_b, op, trans,
                                                      alpha, const_b, threads, seed):
    # before: A [3, 1, K] @ B [1, K, N] took MLAS's M = 1 kernel per batch entry where ONNX
    # Runtime folds the batch into M = 3 rows (general kernel); A [5, K] @ B [K] took the
    # N = 1 kernel where ONNX Runtime makes 5 products of one row (M = 1 kernel); at 2
    # threads lowp never cut a product, ONNX Runtime cuts N (K blocks of the part's width,
    # a one-column part through the general kernel) or M (a one-row part through the M = 1
    # kernel): 85-90% of A [8, 600] @ B [600, 17] one ulp or more apart
    rng = np.random.default_rng(seed)
    fused = op == "FusedMatMul"
    trans_a, trans_b = trans if fused else (False, False)
    vector_b = vector_b and not trans_a           # ONNX Runtime misreads A there (O33t)
    a_shape = (*batch[0], *((k, m) if trans_a else (m, k)))
    b_shape = (k,) if vector_b else (*batch[1], *((n, k) if trans_b else (k, n)))
    a = rng.standard_normal(a_shape).astype(np.float32)
    b = rng.standard_normal(b_shape).astype(np.float32)
    attrs: dict[str, object] = dict(alpha=alpha, transA=int(trans_a), transB=int(trans_b)) \
        if fused else {}
    y_rank = np.broadcast_shapes(batch[0], () if vector_b else batch[1]).__len__() + \
        (1 if vector_b else 2)
    model = _product_model(op, a, b, y_rank, const_b, attrs)
    _assert_agree(model, {"a": a} if const_b else {"a": a, "b": b}, threads)


@given(batch=st.sampled_from([(1,), (3,), (2, 2), (1, 3)]), m=_M, k=_K,
       n=st.sampled_from([1, 2, 17, 33]), side=st.sampled_from(["a", "b", "ab"]),
       trans=st.tuples(st.booleans(), st.booleans()), alpha=st.sampled_from([1.0, 0.5]),
       threads=st.sampled_from([1, 2, 4]), seed=st.integers(0, 2**16))
@settings(max_examples=60, deadline=None)
def test_fused_matmul_trans_batch_equals_onnxruntime_at_1_2_and_4_threads(
        batch, m, k, n, side, trans, alpha, threads, seed):
    # transBatchA / transBatchB: MLAS reads the moved operand in place (leading dimension
    # times the batch size), so no folding into M and no N = 1 kernel for one column of B
    rng = np.random.default_rng(seed)
    logical = {"a": (k, m) if trans[0] else (m, k), "b": (n, k) if trans[1] else (k, n)}
    feeds = {}
    for name, (rows, cols) in logical.items():
        moved = name in side
        shape = (rows, *batch, cols) if moved else (*batch, rows, cols)
        feeds[name] = rng.standard_normal(shape).astype(np.float32)
    attrs = dict(alpha=alpha, transA=int(trans[0]), transB=int(trans[1]),
                 transBatchA=int("a" in side), transBatchB=int("b" in side))
    model = _product_model("FusedMatMul", feeds["a"], feeds["b"], len(batch) + 2, False,
                           attrs)
    _assert_agree(model, feeds, threads)


@given(batch=st.sampled_from([(2,), (3,), (2, 2), (1, 3)]), m=_M, k=_K,
       side=st.sampled_from(["b", "ab"]), trans=st.tuples(st.booleans(), st.booleans()),
       threads=st.sampled_from([1, 2, 4]), seed=st.integers(0, 2**16))
@settings(max_examples=40, deadline=None)
def test_fused_matmul_lone_batch_moved_column_equals_onnxruntime(batch, m, k, side, trans,
                                                                threads, seed):
    # one column of a batch-moved B (N = 1, alpha 1): MLAS's general kernel (its N = 1
    # kernel needs a leading dimension of 1), now computed natively (before: the reference)
    rng = np.random.default_rng(seed)
    logical = {"a": (k, m) if trans[0] else (m, k), "b": (1, k) if trans[1] else (k, 1)}
    feeds = {}
    for name, (rows, cols) in logical.items():
        shape = (rows, *batch, cols) if name in side else (*batch, rows, cols)
        feeds[name] = rng.standard_normal(shape).astype(np.float32)
    attrs = dict(alpha=1.0, transA=int(trans[0]), transB=int(trans[1]),
                 transBatchA=int("a" in side), transBatchB=1)
    model = _product_model("FusedMatMul", feeds["a"], feeds["b"], len(batch) + 2, False,
                           attrs)
    _assert_agree(model, feeds, threads)
    if native_float.kernels() != "none":
        # (the native backend's result above came from the native product, not the
        # reference it falls back to)
        a, b = (np.ascontiguousarray(np.moveaxis(feeds[name], 0, -2)) if name in side
                else feeds[name] for name in ("a", "b"))
        with native_float.threads(threads):
            assert native_float.matmul(a, b, trans_a=trans[0], trans_b=trans[1],
                                       trans_batch=True,
                                       ldb_factor=int(np.prod(batch))) is not None


@given(m=_M, k=_K, n=_N, trans=st.tuples(st.booleans(), st.booleans()),
       const_b=st.booleans(), c_shape=st.sampled_from(["n", "mn", "none"]),
       threads=st.sampled_from([1, 2, 4]), seed=st.integers(0, 2**16))
@settings(max_examples=60, deadline=None)
def test_gemm_equals_onnxruntime_at_1_2_and_4_threads(m, k, n, trans, const_b, c_shape,
                                                    threads, seed):
    # before: Gemm at 2 threads was one MLAS part where ONNX Runtime cuts it (A [8, 600],
    # B [600, 17]: 88% of values apart)
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k, m) if trans[0] else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans[1] else (k, n)).astype(np.float32)
    model = _product_model("Gemm", a, b, 2, const_b,
                           dict(transA=int(trans[0]), transB=int(trans[1])))
    if c_shape != "none":
        c = rng.standard_normal((n,) if c_shape == "n" else (m, n)).astype(np.float32)
        model.graph.node[0].input.append("c")
        model.graph.initializer.append(numpy_helper.from_array(c, "c"))
    _assert_agree(model, {"a": a} if const_b else {"a": a, "b": b}, threads)


@pytest.mark.parametrize(("a_shape", "b_shape", "threads"), [
    ((3, 1, 40), (1, 40, 8), 1),          # folded: 3 rows, not three M = 1 products
    ((3, 5, 40), (1, 40, 1), 1),          # folded: the N = 1 kernel's row groups of 15 rows
    ((2, 5, 40), (40,), 1),               # a 1-D B: ten products of one row
    ((8, 600), (600, 17), 2),             # N cut 16 + 1: the lone column, general kernel
    ((2, 600), (600, 70), 2),             # N cut 48 + 22: each part its own K block
    ((130, 600), (600, 1), 2),            # M cut 65 + 65: the N = 1 kernel's row groups
])
def test_matmul_shapes_that_differed(a_shape, b_shape, threads):
    rng = np.random.default_rng(0)
    a = rng.standard_normal(a_shape).astype(np.float32)
    b = rng.standard_normal(b_shape).astype(np.float32)
    model = _product_model("MatMul", a, b, len(a_shape) - (len(b_shape) == 1), False, {})
    _assert_agree(model, {"a": a, "b": b}, threads)
