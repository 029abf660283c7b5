"""The native MatMulNBits kernel (native/matmul_nbits.h) against its numpy reference
(lowp.ops.matmul_nbits.PackedNBits.run), bit for bit: M from 0, K whole and partial blocks,
N with and without a remainder of four columns, per-tensor and per-column scales and zero
points, with and without bias, blocks of zeros, NaN and infinities in A (a NaN out for a NaN,
its sign not compared), tiny blocks whose 127 / amax overflows, on every instruction-set path
at 1 and 2 threads; and a Session's step
replaying it (docs/native.md, "MatMulNBits")."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import lowp
from lowp.ops.matmul_nbits import PackedNBits, pack_weight
from lowp.runtime import native_backend as nb
from lowp.runtime import native_float

PATHS = nb.available_paths()
SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-38, -3e-39, 3.4e38]


def _packed(rng: np.random.Generator, k: int, n: int, wtype: type, per_column: bool,
            zero: str) -> PackedNBits:
    info = np.iinfo(wtype)
    w = rng.integers(info.min, info.max + 1, (k, n)).astype(wtype)
    count = n if per_column else 1
    s = rng.uniform(0.001, 0.05, count).astype(np.float32)
    z = {"zero": np.zeros(count, np.int64),
         "random": rng.integers(info.min, info.max + 1, count),
         "edge": np.full(count, info.max)}[zero].astype(wtype)
    if not per_column:
        s, z = s.reshape(()), z.reshape(())
    return PackedNBits(*pack_weight(w, s, z))


def _activation(rng: np.random.Generator, m: int, k: int, extreme: str) -> np.ndarray:
    x = rng.normal(0, 1, (m, k)).astype(np.float32)
    if m == 0 or extreme == "none":
        return x
    if extreme == "zero_block":
        x[rng.integers(0, m), :min(k, 32)] = 0
    elif extreme == "tiny_block":
        x[rng.integers(0, m), :min(k, 32)] *= np.float32(1e-38)
    else:
        flat = x.reshape(-1)
        where = rng.integers(0, flat.size, max(1, flat.size // 50))
        flat[where] = rng.choice(np.array(SPECIAL, np.float32), where.size)
    return x


def _assert_bits(got: np.ndarray, want: np.ndarray) -> None:
    """The same bits, a NaN for a NaN (which of two NaNs an addition hands on, so the NaN's
    sign, is the compiler's choice of operand order: not mirrored)."""
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(np.where(nan, 0, got).view(np.uint32),
                                  np.where(nan, 0, want).view(np.uint32))


def _assert_every_path(x: np.ndarray, packed: PackedNBits, bias: np.ndarray | None,
                       want: np.ndarray, thread_counts: tuple[int, ...]) -> None:
    """The native kernel gives `want`'s bits on every instruction-set path at each thread
    count."""
    for path in PATHS:
        with nb.use_path(path):
            for threads in thread_counts:
                with native_float.threads(threads):
                    got = native_float.matmul_nbits(x, packed, bias)
                assert got is not None
                _assert_bits(got, want)


@settings(max_examples=60, deadline=None)
@given(m=st.sampled_from([0, 1, 2, 3, 7, 16]), k=st.integers(1, 300),
       n=st.sampled_from([1, 2, 3, 4, 5, 8, 13, 16, 33]),
       wtype=st.sampled_from([np.int8, np.uint8]), per_column=st.booleans(),
       zero=st.sampled_from(["zero", "random", "edge"]), biased=st.booleans(),
       extreme=st.sampled_from(["none", "zero_block", "tiny_block", "special"]),
       seed=st.integers(0, 2**31 - 1))
def test_native_equals_reference(m: int, k: int, n: int, wtype: type, per_column: bool,
                                 zero: str, biased: bool, extreme: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    packed = _packed(rng, k, n, wtype, per_column, zero)
    x = _activation(rng, m, k, extreme)
    bias = rng.normal(0, 1, n).astype(np.float32) if biased else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = packed.run(x, bias)
    _assert_every_path(x, packed, bias, want, (1, 2))


def test_nan_codes() -> None:
    """A block holding a NaN, one holding an infinity and a tiny one (127 / amax overflows,
    so its zeros times it are NaN) quantize every NaN or infinite product to code 0 in both
    (docs/operators.md (O136))."""
    rng = np.random.default_rng(5)
    packed = _packed(rng, 96, 6, np.int8, True, "random")
    x = rng.normal(0, 1, (3, 96)).astype(np.float32)
    x[0, 3], x[1, 40] = np.nan, np.inf
    x[2, 64:] = 0
    x[2, 70] = np.float32(2e-38)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = packed.run(x)
    got = native_float.matmul_nbits(x, packed, None)
    assert got is not None
    _assert_bits(got, want)
    assert np.isfinite(want[2]).all()


@pytest.mark.parametrize("threads", [1, 2])
def test_session_step_replays(threads: int) -> None:
    """The lowered step writes into its arena: repeated runs (replayed) give the reference's
    bits, for new values in the same feed."""
    rng = np.random.default_rng(1)
    k, n = 100, 7
    w = rng.integers(-128, 128, (k, n)).astype(np.int8)
    ws = rng.uniform(0.002, 0.02, n).astype(np.float32)
    b = rng.normal(0, 0.5, n).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(ws, "ws"),
             numpy_helper.from_array(np.zeros(n, np.int8), "wz"),
             numpy_helper.from_array(b, "b")]
    nodes = [helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wf"], axis=1),
             helper.make_node("MatMul", ["x", "wf"], ["mm"]),
             helper.make_node("Add", ["mm", "b"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    packed = PackedNBits(*pack_weight(w, ws, np.zeros(n, np.int8)))
    session = lowp.Session(model, threads=threads)
    for i in range(5):
        x = rng.normal(0, 1 + i, (3, k)).astype(np.float32)
        _assert_bits(session.run({"x": x})["y"], packed.run(x, b))


@pytest.mark.parametrize("m,k,n", [(1, 4096, 600), (8, 1024, 300), (3, 2000, 77)])
def test_threads_split_rows_and_columns(m: int, k: int, n: int) -> None:
    """Products large enough for a second thread: rows split (8 rows), columns or panels
    split (1 and 3 rows), the same bits as the reference on every path."""
    rng = np.random.default_rng(m * k + n)
    packed = _packed(rng, k, n, np.int8, True, "random")
    x = rng.normal(0, 1, (m, k)).astype(np.float32)
    bias = rng.normal(0, 1, n).astype(np.float32)
    want = packed.run(x, bias)
    _assert_every_path(x, packed, bias, want, (1, 2, 3))
