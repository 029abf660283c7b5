"""Per-token quantized products fused into one step (lowp.runtime.per_token_fusion): the
native call (IntMatMul.run_per_token) equals the unfused nodes' numpy operators bit for bit on
every instruction-set path and thread count, the unfused nodes equal the numpy reference
(D1)-(D4) (lowp.ops.linear.per_token_matmul), and a fused Session equals the unfused one and
ONNX Runtime run after run."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import lowp
from lowp.config import ActivationGranularity, QuantMode
from lowp.ops.linear import per_token_matmul
from lowp.runtime import native_backend, native_float, native_integer, per_token_fusion
from lowp.runtime.per_token_fusion import _unfused
from lowp.runtime.prepacked import freeze
from tests.runtime.ort_agreement import onnxruntime_run

PATHS = native_backend.available_paths()
PER_TOKEN = lowp.Config(mode=QuantMode.DYNAMIC,
                        activation_granularity=ActivationGranularity.PER_TOKEN)
BYTES = st.sampled_from([np.dtype(np.uint8), np.dtype(np.int8)])
# reductions around the 4-byte groups and 64-byte blocks, columns around the 16/64 panels
DEPTHS = st.one_of(st.integers(1, 20), st.sampled_from([63, 64, 65, 127, 128, 129, 384, 515]))
WIDTHS = st.one_of(st.integers(1, 20), st.sampled_from([31, 32, 33, 63, 64, 65, 129, 200]))
ROWS = st.sampled_from(["normal", "zero", "constant", "positive", "negative", "tiny",
                        "subnormal", "ties", "huge"])


def _native() -> bool:
    ext = native_integer._extension()
    return ext is not None and hasattr(ext.IntMatMul, "run_per_token")


needs_native = pytest.mark.skipif(not _native(), reason="the extension has no run_per_token")


def _row(rng: np.random.Generator, kind: str, k: int) -> np.ndarray:
    if kind == "zero":
        return np.zeros(k, np.float32)
    if kind == "constant":          # hi - lo is the value itself; zero point 0 or 255
        return np.full(k, rng.choice([-3.5, 2.25, 1e-3]), np.float32)
    if kind == "ties":              # x / scale on halves: round half to even
        return (rng.integers(-255, 256, k) / 2).astype(np.float32)
    if kind == "subnormal":         # hi - lo below the smallest normal: scale tiny / 255
        return (rng.standard_normal(k) * 1e-40).astype(np.float32)
    scale = {"tiny": 1e-30, "huge": 1e30}.get(kind, float(np.exp(rng.normal(0, 2))))
    x = rng.standard_normal(k) * scale
    if kind == "positive":
        x = np.abs(x)
    elif kind == "negative":
        x = -np.abs(x)
    return x.astype(np.float32)


def _case(rng: np.random.Generator, batch: list[int], m: int, k: int, n: int,
          dtype: np.dtype, zw_kind: str, per_column: bool, biased: bool,
          kinds: list[str]) -> tuple[np.ndarray, ...]:
    x = np.stack([_row(rng, kinds[i % len(kinds)], k) for i in range(int(np.prod(batch)) * m)]
                 or [np.zeros(k, np.float32)])[:int(np.prod(batch)) * m]
    x = x.reshape(*batch, m, k)
    info = np.iinfo(dtype)
    w = rng.integers(int(info.min), int(info.max) + 1, (k, n)).astype(dtype)
    zw = {"none": None,
          "scalar": np.array(rng.integers(info.min, info.max + 1), dtype),
          "per-column": rng.integers(info.min, info.max + 1, n).astype(dtype)}[zw_kind]
    w_scale = (np.exp(rng.normal(-5, 1, n if per_column else ())).astype(np.float32))
    bias = rng.normal(0, 1, n).astype(np.float32) if biased else None
    return x, w, zw, np.asarray(w_scale, np.float32), bias


@needs_native
@settings(max_examples=120, deadline=None)
@given(batch=st.lists(st.integers(0, 3), max_size=2), m=st.integers(0, 40), k=DEPTHS,
       n=WIDTHS, dtype=BYTES, zw_kind=st.sampled_from(["none", "scalar", "per-column"]),
       per_column=st.booleans(), biased=st.booleans(), kinds=st.lists(ROWS, min_size=1,
                                                                       max_size=4),
       seed=st.integers(0, 2**32 - 1))
def test_native_equals_unfused_operators(batch, m, k, n, dtype, zw_kind, per_column, biased,
                                         kinds, seed) -> None:
    rng = np.random.default_rng(seed)
    x, w, zw, w_scale, bias = _case(rng, batch, m, k, n, dtype, zw_kind, per_column, biased,
                                    kinds)
    with native_float.disabled():
        want = _unfused(x, w, zw, w_scale, bias, 17)
    w = freeze(w.copy())
    for path in PATHS:
        with native_backend.use_path(path):
            for threads in (1, 2):
                with native_float.threads(threads):
                    got = native_integer.per_token_matmul(x, w, zw, w_scale, bias)
                assert got is not None
                assert got.dtype == np.float32 and got.shape == want.shape
                np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32),
                                              err_msg=f"{path} {threads}")


@settings(max_examples=60, deadline=None)
@given(m=st.integers(0, 12), k=DEPTHS, n=WIDTHS, dtype=BYTES,
       zw_kind=st.sampled_from(["none", "scalar", "per-column"]), per_column=st.booleans(),
       kinds=st.lists(ROWS, min_size=1, max_size=4), seed=st.integers(0, 2**32 - 1))
def test_unfused_operators_are_the_reference(m, k, n, dtype, zw_kind, per_column, kinds,
                                             seed) -> None:
    """The nodes the fused step stands for compute (D1)-(D4) as lowp.ops.linear does."""
    rng = np.random.default_rng(seed)
    x, w, zw, w_scale, _ = _case(rng, [], m, k, n, dtype, zw_kind, per_column, False, kinds)
    with native_float.disabled():
        got = _unfused(x, w, zw, w_scale, None, 17)
    want = per_token_matmul(x, w, w_scale, 0 if zw is None else zw)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


SPECIALS = [np.nan, np.inf, -np.inf, 3e38, -3e38, -0.0, 1e-45]


@needs_native
@settings(max_examples=80, deadline=None)
@given(m=st.integers(1, 12), k=DEPTHS, n=WIDTHS, dtype=BYTES,
       zw_kind=st.sampled_from(["none", "scalar", "per-column"]), per_column=st.booleans(),
       biased=st.booleans(), specials=st.integers(1, 4), zero_scale=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_rows_not_finite_equal_unfused_operators(m, k, n, dtype, zw_kind, per_column, biased,
                                                specials, zero_scale, seed) -> None:
    """NaN, infinities and ranges past float32 (3e38 - -3e38) in some rows, a weight scale
    of 0 (inf * 0): the native values are the unfused operators' bit for bit."""
    rng = np.random.default_rng(seed)
    x, w, zw, w_scale, bias = _case(rng, [], m, k, n, dtype, zw_kind, per_column, biased,
                                    ["normal", "zero", "positive"])
    for _ in range(specials):
        x[rng.integers(0, m), rng.integers(0, k)] = SPECIALS[rng.integers(len(SPECIALS))]
    if zero_scale:
        w_scale.reshape(-1)[0] = 0.0
    with np.errstate(all="ignore"):
        with native_float.disabled():
            want = _unfused(x, w, zw, w_scale, bias, 17)
        w = freeze(w.copy())
        for path in PATHS:
            with native_backend.use_path(path):
                got = native_integer.per_token_matmul(x, w, zw, w_scale, bias)
            assert got is not None
            np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32),
                                          err_msg=path)


@needs_native
def test_rows_not_finite_cases() -> None:
    """A row whose first value is NaN gives the default NaN everywhere; a NaN that ReduceMax
    and ReduceMin drop (docs/operators.md (O127)) is left out of the range and quantized to
    0, as the unfused operators do; an infinity gives the NaN of 0 * inf, or, with lo = -inf
    (zero point NaN, cast to INT32_MIN), -inf where the column sum is odd."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 40)).astype(np.float32)
    x[1, 7], x[2, 3], x[3, 5], x[4, 0] = np.nan, np.inf, -np.inf, np.nan
    w = freeze(rng.integers(-128, 128, (40, 9)).astype(np.int8))
    w_scale = np.float32(0.01).reshape(())
    got = native_integer.per_token_matmul(x, w, None, w_scale, None)
    assert got is not None
    assert (got[4].view(np.uint32) == 0x7FC00000).all()
    assert np.isfinite(got[1]).all()
    with np.errstate(all="ignore"), native_float.disabled():
        want = _unfused(x, w, None, w_scale, None, 17)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    assert np.isnan(got[2]).all()
    odd = w.astype(np.int64).sum(axis=0) % 2 == 1
    assert (got[3][odd] == -np.inf).all() and np.isnan(got[3][~odd]).all()
    np.testing.assert_array_equal(got[0], per_token_matmul(x[:1], w, w_scale)[0])


def _encoder(rng: np.random.Generator, d: int = 48, hidden: int = 96) -> onnx.ModelProto:
    """x -> MatMul (shared input for two products) -> Gemm(transB, bias) -> MatMul: products
    that share one row quantization, biased and unbiased, 2-D and 3-D."""
    inits = [numpy_helper.from_array(rng.normal(0, 0.2, (d, hidden)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.normal(0, 0.2, (d, hidden)).astype(np.float32), "w2"),
             numpy_helper.from_array(rng.normal(0, 0.2, (d, hidden)).astype(np.float32), "w3"),
             numpy_helper.from_array(rng.normal(0, 0.1, d).astype(np.float32), "b3"),
             numpy_helper.from_array(np.array([-1, hidden], np.int64), "flat")]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h1"]),
             helper.make_node("MatMul", ["x", "w2"], ["h2"]),
             helper.make_node("Relu", ["h1"], ["r1"]),
             helper.make_node("Mul", ["r1", "h2"], ["g"]),
             helper.make_node("Reshape", ["g", "flat"], ["g2"]),
             helper.make_node("Gemm", ["g2", "w3", "b3"], ["y"], transB=1)]
    # w3 is (d, hidden) read transposed: (hidden -> d)
    graph = helper.make_graph(nodes, "enc", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [2, 7, d])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [14, d])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_session_fused_equals_unfused_and_onnxruntime() -> None:
    rng = np.random.default_rng(11)
    q = lowp.quantize_model(_encoder(rng), None, PER_TOKEN)
    fused = lowp.Session(q, threads=1)
    assert [s.op_type for s in fused.steps].count(per_token_fusion.OP_TYPE) == 3
    assert "MatMulInteger" not in [s.op_type for s in fused.steps]
    with per_token_fusion.disabled():
        unfused = lowp.Session(q, threads=1)
    assert per_token_fusion.OP_TYPE not in [s.op_type for s in unfused.steps]
    for run in range(4):                # the recording runs, then replay
        x = rng.normal(0, 1, (2, 7, 48)).astype(np.float32)
        x[0, run] = 0.0
        got = fused.run({"x": x})["y"]
        np.testing.assert_array_equal(got, unfused.run({"x": x})["y"])
        np.testing.assert_array_equal(got, onnxruntime_run(q, {"x": x})[0])


def test_other_forms_are_left_alone() -> None:
    """Column sums that are not those of the weight, or another constant than 255, and the
    chain is not fused (the file computes something else than (D4) then)."""
    rng = np.random.default_rng(12)
    q = lowp.quantize_model(_encoder(rng), None, PER_TOKEN)
    sums = next(t for t in q.graph.initializer if "column_sums" in t.name)
    changed = onnx.ModelProto()
    changed.CopyFrom(q)
    for t in changed.graph.initializer:
        if t.name == sums.name:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(sums) + 1, sums.name))
    assert sum(n.op_type == per_token_fusion.OP_TYPE
               for n in per_token_fusion.apply(changed).graph.node) == 2
    x = rng.normal(0, 1, (2, 7, 48)).astype(np.float32)
    np.testing.assert_array_equal(lowp.Session(changed).run({"x": x})["y"],
                                  onnxruntime_run(changed, {"x": x})[0])
    top = next(t for t in q.graph.initializer if t.name.startswith("per_token_qmax"))
    for t in changed.graph.initializer:
        if t.name == top.name:
            t.CopyFrom(numpy_helper.from_array(np.array(127.0, np.float32), top.name))
    assert per_token_fusion.apply(changed) is changed
