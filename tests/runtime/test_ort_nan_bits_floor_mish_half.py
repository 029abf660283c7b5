"""NaN bits of Floor, Ceil, Mish and float16 Max / Min against ONNX Runtime bit for bit.

Floor and Ceil (docs/operators.md (O148)): ONNX Runtime's Eigen functor quiets a signalling
NaN in its packets and keeps it as it is in the scalar tail of each run of its parallel
blocks (cost 1); lowp's native Floor kept it everywhere, numpy's floor and ceil quieted it
everywhere (repro item 124). Mish and float16 Max / Min (O147): Mish's Mul of two NaNs
follows Mul's rule, not numpy's multiply; a float16 operand that is one value in the
broadcast run gives, when NaN, 0x7e00 with its sign (repro item 125)."""

from __future__ import annotations

import numpy as np
import onnx
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from lowp.runtime import Session, native_float

from .ort_agreement import assert_bits_agree, onnxruntime_run, unary_model

_NAN32 = np.array([0x7F800001, 0xFFA00003, 0x7FC00005, 0xFFC00007, 0x3FC00000, 0xBFC00000,
                   0x00000000, 0x80000000, 0x7F800000], np.uint32)


def _nan_payloads(n: int, seed: int) -> np.ndarray:
    """float32 values, most of them NaNs of random payloads (signalling and quiet)."""
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    nan = rng.random(n) < 0.6
    bits[nan] = (bits[nan] & np.uint32(0x807FFFFF)) | np.uint32(0x7F800001)
    bits[: min(n, 9)] = _NAN32[: min(n, 9)]
    return bits.view(np.float32)


@settings(max_examples=40, deadline=None)
@given(op=st.sampled_from(["Floor", "Ceil", "Mish"]), n=st.integers(1, 70),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**31 - 1))
def test_unary_nan_bits_equal_onnxruntime(op, n, threads, seed):
    # before: Floor(0x7f800001) of 5 values natively 0x7f800001 in the packet, ONNX Runtime
    # 0x7fc00001; Ceil's tail 0xffc00007 where ONNX Runtime keeps 0xff800007
    model = onnx.load_from_string(unary_model(op, TensorProto.FLOAT))
    assert_bits_agree(model, {"x": _nan_payloads(n, seed)}, threads)


def test_block_edges_at_two_threads_equal_onnxruntime():
    # 100,003 values at 2 threads: ONNX Runtime's blocks of 16,842 (cost 1) each keep a
    # NaN on their tails (positions 16,840 and 16,841 ...); Mish's Mul picks by them too
    x = _nan_payloads(100_003, 7)
    for op in ("Floor", "Ceil", "Mish"):
        model = onnx.load_from_string(unary_model(op, TensorProto.FLOAT))
        for threads in (1, 2):
            assert_bits_agree(model, {"x": x}, threads)


def test_float64_floor_ceil_nan_bits_equal_onnxruntime():
    # packets of two doubles quiet a signalling NaN, the odd last one keeps it
    x = np.full(7, 0x7FF0000000000001, np.uint64).view(np.float64)
    for op in ("Floor", "Ceil"):
        model = unary_model(op, TensorProto.DOUBLE)
        theirs = onnxruntime_run(model, {"x": x})[0].view(np.uint64)
        assert theirs[-1] == 0x7FF0000000000001
        for backend in ("reference", "native"):
            ours = Session(onnx.load_from_string(model), backend=backend).run({"x": x})["y"]
            np.testing.assert_array_equal(ours.view(np.uint64), theirs, err_msg=backend)


_HALF = np.array([0x0000, 0x8000, 0x3C00, 0xBC00, 0x7C01, 0xFC7D, 0x7E05, 0xFF49, 0x7D37,
                  0x5BA5], np.uint16).view(np.float16)
_HALF_SHAPES = ([((n,), (1,)) for n in range(1, 12)] + [((n,), (n,)) for n in range(1, 12)]
                + [((3, n), (3, 1)) for n in range(1, 7)] + [((3, 1), (1, n)) for n in range(1, 7)]
                + [((2, 3, n), (3, n)) for n in range(1, 5)] + [((1,), (1,)), ((5,), ())])


def _half_model(op: str, shapes: list[tuple[int, ...]]) -> onnx.ModelProto:
    names = [f"x{i}" for i in range(len(shapes))]
    graph = helper.make_graph(
        [helper.make_node(op, names, ["y"])], "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT16, list(s))
         for n, s in zip(names, shapes, strict=True)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@settings(max_examples=80, deadline=None)
@given(op=st.sampled_from(["Max", "Min"]), shapes=st.sampled_from(_HALF_SHAPES),
       swap=st.booleans(), extra=st.booleans(), threads=st.sampled_from([1, 2]),
       seed=st.integers(0, 2**31 - 1))
def test_half_max_min_nan_bits_equal_onnxruntime(op, shapes, swap, extra, threads, seed):
    # before: Max(x, NaN 0xfc7d as one value) gave 0xfc7d, ONNX Runtime 0xfe00
    rng = np.random.default_rng(seed)
    pair = list(shapes[::-1] if swap else shapes)
    if extra:
        pair.append(pair[0])
    model = _half_model(op, pair)
    feeds = {f"x{i}": rng.choice(_HALF, size=s).astype(np.float16) for i, s in enumerate(pair)}
    theirs = onnxruntime_run(model, feeds, threads)[0].view(np.uint16)
    with native_float.disabled():
        ours = Session(model, backend="reference", threads=threads).run(feeds)["y"]
    np.testing.assert_array_equal(ours.view(np.uint16), theirs, err_msg="numpy")
    ours = Session(model, backend="native", threads=threads).run(feeds)["y"]
    np.testing.assert_array_equal(ours.view(np.uint16), theirs, err_msg="native")
