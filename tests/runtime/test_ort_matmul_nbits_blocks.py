"""MatMulNBits with blocks of 16, 64 and 128 (ONNX Runtime 1.32's DQMatMulToMatMulNBits makes
them of a DequantizeLinear with that block_size; MLAS's BlkLen16 / 64 / 128 CompInt8
kernels on the AVX-512 VNNI dispatch): lowp's numpy reference and its native kernel on every
instruction-set path equal ONNX Runtime bit for bit, bits 4 and 8, with and without zero
points and bias, M = 1 and M > 1 (odd and even), K not a multiple of the block, at 1 and 2
threads (docs/operators.md (O159), (O160))."""

from __future__ import annotations

import warnings

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import ModelProto, TensorProto, helper, numpy_helper

import lowp
from lowp.ops.matmul_nbits import PackedNBits
from lowp.runtime import native_backend as nb
from lowp.runtime import native_float
from tests.runtime.test_ort_matmul_nbits import _dq_model

PATHS = nb.available_paths()
_SPECIAL = [np.nan, -np.nan, np.inf, -np.inf, 0.0, 3e9, 1e-39]


def _contrib_model(k: int, n: int, m: int, w: np.ndarray, s: np.ndarray, z: np.ndarray | None,
                   bias: np.ndarray | None, bits: int, block: int) -> ModelProto:
    """One com.microsoft MatMulNBits node (accuracy level 4) over w (N, blocks, block)
    values, scales and zero points (N, blocks) (None: the default 2^(bits - 1))."""
    blocks = w.shape[1]
    w_data, z_data = w, z
    if bits == 4:                       # two values a byte, low nibble first
        w_data = (w[..., 0::2] | w[..., 1::2] << 4).astype(np.uint8)
        if z is not None:
            zpad = np.zeros((n, blocks + blocks % 2), np.uint8)
            zpad[:, :blocks] = z
            z_data = (zpad[:, 0::2] | zpad[:, 1::2] << 4).astype(np.uint8)
    inits = [numpy_helper.from_array(w_data, "w"), numpy_helper.from_array(s.reshape(-1), "s")]
    inputs = ["x", "w", "s", "", "", ""]
    if z_data is not None:
        inits.append(numpy_helper.from_array(z_data.reshape(-1), "z"))
        inputs[3] = "z"
    if bias is not None:
        inits.append(numpy_helper.from_array(bias, "b"))
        inputs[5] = "b"
    while inputs[-1] == "":
        inputs.pop()
    node = helper.make_node("MatMulNBits", inputs, ["y"], domain="com.microsoft", K=k, N=n,
                            bits=bits, block_size=block, accuracy_level=4)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21),
                                                   helper.make_opsetid("com.microsoft", 1)])


def _ort(model: ModelProto, x: np.ndarray, threads: int) -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    sess = ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def _assert_bits(got: np.ndarray, want: np.ndarray, nan_payload: bool = True) -> None:
    """The same bits; with nan_payload False a NaN for a NaN (its sign and payload, which of
    two NaNs an addition hands on, not compared)."""
    if nan_payload:
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
        return
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(np.where(nan, 0, got).view(np.uint32),
                                  np.where(nan, 0, want).view(np.uint32))


@settings(max_examples=50, deadline=None)
@given(block=st.sampled_from([16, 64, 128]), bits=st.sampled_from([4, 8]),
       m=st.sampled_from([1, 2, 3, 4, 7, 10]), k=st.integers(1, 700),
       n=st.sampled_from([1, 3, 4, 5, 8, 17, 33]), zero_point=st.booleans(),
       bias=st.booleans(), threads=st.sampled_from([1, 2]),
       seed=st.integers(0, 2**31 - 1))
def test_contrib_operator_bit_for_bit(block: int, bits: int, m: int, k: int, n: int,
                                      zero_point: bool, bias: bool, threads: int,
                                      seed: int) -> None:
    """Any shape, block, bits, zero points (full range) and bias: numpy and the native
    kernel on every path equal ONNX Runtime's com.microsoft MatMulNBits."""
    rng = np.random.default_rng(seed)
    blocks, top = -(-k // block), 1 << bits
    w = rng.integers(0, top, (n, blocks, block)).astype(np.uint8)
    s = rng.uniform(0.001, 0.02, (n, blocks)).astype(np.float32)
    z = rng.integers(0, top, (n, blocks)).astype(np.uint8) if zero_point else None
    b = rng.normal(0, 0.3, n).astype(np.float32) if bias else None
    x = rng.normal(0, 1, (m, k)).astype(np.float32)
    want = _ort(_contrib_model(k, n, m, w, s, z, b, bits, block), x, threads)
    zz = z if z is not None else np.full((n, blocks), top // 2, np.uint8)
    packed = PackedNBits(w, s, zz, bits=bits)
    _assert_bits(packed.run(x, b), want)
    for path in PATHS:
        with nb.use_path(path), native_float.threads(threads):
            got = native_float.matmul_nbits(x, packed, b)
        assert got is not None
        _assert_bits(got, want)


@pytest.mark.parametrize("block", [16, 64])
@pytest.mark.parametrize("wtype", [np.int8, np.uint8, "int4", "uint4"])
@pytest.mark.parametrize("threads", [1, 2])
def test_dequantizelinear_blocks_of_16_and_64(block: int, wtype: type | str,
                                              threads: int) -> None:
    """DequantizeLinear(block_size 16 or 64) -> MatMul with a fused bias Add: MatMulNBits of
    that block in ONNX Runtime; lowp's Session (both backends) gives its bits. Before, lowp
    kept the float MatMul there (evals/corpus/repro/README.md 137)."""
    k, n, m = 200, 7, 5
    model = _dq_model(k, n, [m, k], wtype=wtype, zero_point="random", bias="add",
                      block=block, seed=block + threads)
    x = np.random.default_rng(block).normal(0, 1, (m, k)).astype(np.float32)
    want = _ort(model, x, threads)
    for backend in ("auto", "reference"):
        got = lowp.Session(model, backend=backend, threads=threads).run({"x": x})["y"]
        _assert_bits(got, want)


@settings(max_examples=30, deadline=None)
@given(block=st.sampled_from([16, 64, 128]),
       wtype=st.sampled_from([np.int8, np.uint8, "int4", "uint4"]),
       m=st.sampled_from([1, 2, 3, 6]), k=st.integers(1, 400), n=st.sampled_from([1, 4, 9]),
       zero_point=st.sampled_from([None, "random"]), bias=st.sampled_from(["", "add", "gemm"]),
       specials=st.lists(st.tuples(st.integers(0, 2**20), st.sampled_from(_SPECIAL)),
                         max_size=4),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**31 - 1))
def test_sessions_equal_onnxruntime(block: int, wtype: type | str, m: int, k: int, n: int,
                                    zero_point: str | None, bias: str,
                                    specials: list[tuple[int, float]], threads: int,
                                    seed: int) -> None:
    """DequantizeLinear with block_size 16, 64 or 128 -> MatMul / Gemm, NaNs and infinities
    in the activation: lowp's Session on both backends and on every instruction-set path
    equals ONNX Runtime (a NaN for a NaN: which of two NaNs an addition hands on is not
    mirrored at these blocks)."""
    model = _dq_model(k, n, [m, k], wtype=wtype, zero_point=zero_point, bias=bias,
                      op="Gemm" if bias == "gemm" else "MatMul", block=block, seed=seed)
    x = np.random.default_rng(seed).normal(0, 1, (m, k)).astype(np.float32)
    for where, value in specials:
        x.reshape(-1)[where % x.size] = value
    want = _ort(model, x, threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for path in PATHS:
            with nb.use_path(path):
                for backend in ("auto", "reference"):
                    got = lowp.Session(model, backend=backend, threads=threads).run({"x": x})
                    _assert_bits(got["y"], want, nan_payload=False)
