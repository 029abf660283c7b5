"""A float activation times DequantizeLinear(constant 8-bit weight) (NNCF's dense layers after
a Transpose / Flatten): ONNX Runtime 1.32 rewrites it into MatMulNBits (bits 8, block 32,
accuracy level 4), which quantizes each block of 32 activations to int8; lowp computes the
same, bit for bit, on both backends (docs/operators.md (O118), lowp.ops.matmul_nbits); with
NaNs and infinities in the activation ((O136)), and for 4-bit and block_size 32 weights
((O137))."""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import ModelProto, TensorProto, helper, numpy_helper

import lowp
from lowp.ops.matmul_nbits import matmul_nbits8
from lowp.runtime import native_backend as nb


def _session(model: ModelProto, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


# 4-bit weight types: (ONNX type, values' range, numpy holder)
_FOUR_BIT = {"int4": (TensorProto.INT4, -8, 7, np.int8),
             "uint4": (TensorProto.UINT4, 0, 15, np.uint8)}


def _int_tensor(values: np.ndarray, name: str, wtype: type | str) -> TensorProto:
    if isinstance(wtype, str):
        return helper.make_tensor(name, _FOUR_BIT[wtype][0], values.shape,
                                  values.reshape(-1).tolist())
    return numpy_helper.from_array(values.astype(wtype), name)


def _int_range(wtype: type | str) -> tuple[int, int]:
    if isinstance(wtype, str):
        return _FOUR_BIT[wtype][1], _FOUR_BIT[wtype][2]
    info = np.iinfo(wtype)
    return int(info.min), int(info.max)


def _dq_model(k: int, n: int, x_shape: list[int], *, wtype: type | str = np.int8,
              per_column: bool = True, zero_point: int | str | None = 0, bias: str = "",
              op: str = "MatMul", block: int = 0, seed: int = 0) -> ModelProto:
    """x (float) -> MatMul / Gemm with DequantizeLinear(w); w int8 / uint8 or "int4" /
    "uint4", per tensor, per column or in blocks of `block` along K; zero point a value,
    "random" (one per scale) or None; bias "add" (an Add of a (N,) constant), "add2d" (of
    a (1, N) one), "gemm" (Gemm's C) or "gemm_dq" (Gemm's C a DequantizeLinear of int32)."""
    rng = np.random.default_rng(seed)
    lo, hi = _int_range(wtype)
    w = rng.integers(lo, hi + 1, (k, n))
    shape = (-(-k // block), n) if block else (n,) if per_column else ()
    ws = rng.uniform(0.002, 0.02, shape).astype(np.float32)
    inits = [_int_tensor(w, "w", wtype), numpy_helper.from_array(ws, "ws")]
    dq_in = ["w", "ws"]
    if zero_point is not None:
        z = rng.integers(lo, hi + 1, shape) if zero_point == "random" else np.full(
            shape, zero_point)
        inits.append(_int_tensor(z, "wz", wtype))
        dq_in.append("wz")
    attrs = {"axis": 0, "block_size": block} if block else {"axis": 1} if per_column else {}
    nodes = [helper.make_node("DequantizeLinear", dq_in, ["wf"], **attrs)]
    b = rng.normal(0, 0.5, (1, n) if bias == "add2d" else (n,)).astype(np.float32)
    if bias == "gemm_dq":    # an int32 bias and its DequantizeLinear, as quantizers write it
        inits += [numpy_helper.from_array(np.rint(b / 2e-6).astype(np.int32), "bq"),
                  numpy_helper.from_array(np.float32(2e-6), "bs")]
        nodes.append(helper.make_node("DequantizeLinear", ["bq", "bs"], ["b"]))
    elif bias:
        inits.append(numpy_helper.from_array(b, "b"))
    if op == "Gemm":
        nodes.append(helper.make_node("Gemm", ["x", "wf", "b"] if bias.startswith("gemm")
                                      else ["x", "wf"], ["y"]))
    else:
        nodes.append(helper.make_node("MatMul", ["x", "wf"], ["mm" if bias else "y"]))
        if bias:
            nodes.append(helper.make_node("Add", ["mm", "b"], ["y"]))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [*x_shape[:-1], n])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


def _check(model: ModelProto, x: np.ndarray, threads: int = 1, *,
           paths: tuple[str, ...] = ()) -> None:
    """lowp's bits (NaNs' too) equal ONNX Runtime's on both backends, the native one on
    each instruction-set path of `paths` (or the active one)."""
    want = _session(model, threads).run(None, {"x": x})[0]
    for path in paths or (None,):
        with nb.use_path(path) if path else contextlib.nullcontext():
            for backend in ("auto", "reference"):
                got = lowp.Session(model, backend=backend, threads=threads).run({"x": x})["y"]
                np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32),
                                              err_msg=f"{backend} {path}")


@pytest.mark.parametrize("m,k,n", [(1, 32, 4), (7, 50, 3), (8, 128, 16), (3, 160, 13),
                                   (64, 50, 1), (5, 576, 128), (2, 300, 20)])
@pytest.mark.parametrize("threads", [1, 2])
def test_matmul_nbits_bit_for_bit(m: int, k: int, n: int, threads: int) -> None:
    """Whole groups of four blocks and single blocks, a partial last block, columns in
    groups of four and the rest, one and two threads; the bias Add fused."""
    x = np.random.default_rng(m * k + n).normal(0, 1, (m, k)).astype(np.float32)
    _check(_dq_model(k, n, [m, k], bias="add", seed=k), x, threads)


@pytest.mark.parametrize("case", [
    {"per_column": False, "zero_point": None},          # int8, per tensor, no zero point
    {"wtype": np.uint8, "zero_point": 131},
    {"wtype": np.uint8, "zero_point": None},
    {"zero_point": -3, "bias": ""},
    {"op": "Gemm", "bias": "gemm"},
    {"op": "Gemm", "bias": "gemm_dq"},     # the bias fused as computed (O310), repro 260
    {"op": "Gemm"},
])
def test_weight_forms_and_gemm(case: dict[str, object]) -> None:
    x = np.random.default_rng(2).normal(0, 2, (9, 96)).astype(np.float32)
    _check(_dq_model(96, 6, [9, 96], **case), x)  # type: ignore[arg-type]


def test_leading_axes_and_zero_blocks() -> None:
    """A rank-3 activation (ONNX Runtime reshapes around MatMulNBits) with an all-zero block
    (scale 0)."""
    x = np.random.default_rng(4).normal(0, 1, (2, 5, 70)).astype(np.float32)
    x[:, 1, 32:64] = 0
    _check(_dq_model(70, 8, [2, 5, 70], bias="add"), x)


def test_reference_against_the_contrib_operator() -> None:
    """lowp.ops.matmul_nbits against com.microsoft MatMulNBits itself, zero points 100 and
    128, K = 1000 (31 full blocks and a partial one)."""
    rng = np.random.default_rng(7)
    m, k, n = 33, 1000, 7
    blocks = -(-k // 32)
    w = rng.integers(0, 256, (n, blocks, 32)).astype(np.uint8)
    s = rng.uniform(0.001, 0.01, (n, blocks)).astype(np.float32)
    z = np.where(rng.random((n, blocks)) < 0.5, 100, 128).astype(np.uint8)
    bias = rng.normal(0, 0.3, n).astype(np.float32)
    x = rng.normal(0, 1, (m, k)).astype(np.float32)
    _assert_contrib_equals_reference(x, w, s, z, bias, bits=8)


def _assert_contrib_equals_reference(x: np.ndarray, w: np.ndarray, s: np.ndarray,
                                     z: np.ndarray, bias: np.ndarray, *, bits: int) -> None:
    """com.microsoft MatMulNBits (bits 8 or 4, blocks of 32, accuracy level 4) on x with the
    weight w (N, blocks, 32) uint8 values, scales and zero points (N, blocks), bias (N,),
    bit for bit against lowp.ops.matmul_nbits' 8-bit kernel on the same values."""
    (m, k), (n, blocks, _) = x.shape, w.shape
    w_data, z_data = w, z
    if bits == 4:                       # two values a byte, low nibble first; zero points
        zpad = np.zeros((n, blocks + blocks % 2), np.uint8)     # padded to whole bytes
        zpad[:, :blocks] = z
        w_data = (w[..., 0::2] | w[..., 1::2] << 4).astype(np.uint8)
        z_data = (zpad[:, 0::2] | zpad[:, 1::2] << 4).astype(np.uint8)
    node = helper.make_node("MatMulNBits", ["x", "w", "s", "z", "", "b"], ["y"],
                            domain="com.microsoft", K=k, N=n, bits=bits, block_size=32,
                            accuracy_level=4)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
        [numpy_helper.from_array(w_data, "w"), numpy_helper.from_array(s.reshape(-1), "s"),
         numpy_helper.from_array(z_data.reshape(-1), "z"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21),
                                                     helper.make_opsetid("com.microsoft", 1)])
    want = _session(model, 1).run(None, {"x": x})[0]
    got = matmul_nbits8(x, w, s, z, bias)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def _u16_model(k: int, n: int, m: int, *, q_out: bool, dtype: type = np.uint16,
               gemm_bias: bool = False) -> ModelProto:
    """x -> QuantizeLinear -> DequantizeLinear (16-bit) -> MatMul(DequantizeLinear(int8 w))
    [-> QuantizeLinear -> DequantizeLinear, 16-bit]: MatMulNBits too, the activation's
    DequantizeLinear left in float. `gemm_bias`: a Gemm whose C is DequantizeLinear(int32),
    as ONNX Runtime's quantizer writes an A16W8 Gemm."""
    rng = np.random.default_rng(9)
    w = rng.integers(-127, 128, (k, n)).astype(np.int8)
    zp = 30000 if dtype == np.uint16 else 100
    inits = [numpy_helper.from_array(w, "w"),
             numpy_helper.from_array(rng.uniform(0.002, 0.02, n).astype(np.float32), "ws"),
             numpy_helper.from_array(np.float32(1e-4), "xs"),
             numpy_helper.from_array(np.array(zp, dtype), "xz"),
             numpy_helper.from_array(np.float32(3e-3), "ys"),
             numpy_helper.from_array(np.array(zp, dtype), "yz")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xf"]),
             helper.make_node("DequantizeLinear", ["w", "ws"], ["wf"], axis=1),
             helper.make_node("Gemm", ["xf", "wf", "bf"], ["mm" if q_out else "y"])
             if gemm_bias else
             helper.make_node("MatMul", ["xf", "wf"], ["mm" if q_out else "y"])]
    if gemm_bias:
        inits += [numpy_helper.from_array(rng.integers(-10**6, 10**6, n).astype(np.int32),
                                          "bq"),
                  numpy_helper.from_array(np.float32(2.4e-7), "bs")]
        nodes.insert(0, helper.make_node("DequantizeLinear", ["bq", "bs"], ["bf"]))
    if q_out:
        nodes += [helper.make_node("QuantizeLinear", ["mm", "ys", "yz"], ["yq"]),
                  helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


@pytest.mark.parametrize("q_out", [False, True])
@pytest.mark.parametrize("dtype", [np.uint16, np.int16])
def test_16_bit_activation(q_out: bool, dtype: type) -> None:
    x = np.random.default_rng(10).normal(0, 1, (12, 257)).astype(np.float32)
    _check(_u16_model(257, 24, 12, q_out=q_out, dtype=dtype), x)


@pytest.mark.parametrize("q_out", [False, True])
@pytest.mark.parametrize("dtype", [np.uint16, np.int16])
def test_16_bit_activation_gemm_with_a_dequantized_bias(q_out: bool, dtype: type) -> None:
    """ONNX Runtime's quantizer's A16W8 Gemm: the int32 bias's DequantizeLinear stays, its
    output is MatMulNBits' bias (O310); lowp kept a float Gemm, up to 128 steps of the
    16-bit output apart (repro 260)."""
    x = np.random.default_rng(11).normal(0, 1, (12, 257)).astype(np.float32)
    for threads in (1, 2):
        _check(_u16_model(257, 24, 12, q_out=q_out, dtype=dtype, gemm_bias=True), x, threads)


def test_float_activation_with_an_8_bit_quantizelinear_after_stays_float() -> None:
    """ONNX Runtime keeps DequantizeLinear -> float MatMul -> QuantizeLinear (uint8) there;
    so does lowp."""
    model = _dq_model(64, 8, [4, 64])
    model.graph.node[-1].output[0] = "mm"
    model.graph.initializer.extend([numpy_helper.from_array(np.float32(0.05), "ys"),
                                    numpy_helper.from_array(np.uint8(128), "yz")])
    model.graph.node.extend([helper.make_node("QuantizeLinear", ["mm", "ys", "yz"], ["q"]),
                             helper.make_node("DequantizeLinear", ["q", "ys", "yz"], ["y"])])
    x = np.random.default_rng(11).normal(0, 3, (4, 64)).astype(np.float32)
    _check(model, x)


def _special_rows(k: int, rng: np.random.Generator) -> np.ndarray:
    """Rows of normal values with NaNs and infinities where MLAS's block maximum keeps or
    drops them (docs/operators.md (O136)): a NaN in a block's first 16 values (dropped by
    the next maxps: finite outputs), in its last 16 (kept: NaN outputs), one that drops a
    larger value of its lane (whose code wraps), -NaN, +-inf, a partial last block of 16
    values or fewer, and tiny blocks whose 127 / amax overflows."""
    rows = []
    for pos in range(0, k, max(1, k // 24)):
        for value in (np.nan, -np.nan, np.inf, -np.inf):
            x = rng.normal(0, 1, k).astype(np.float32)
            x[pos] = value
            rows.append(x)
        x = rng.normal(0, 1, k).astype(np.float32)
        x[pos] = np.nan
        x[(pos - 16) % k] = 50.0       # its lane's first value, with the NaN second
        x[(pos - 24) % k] = 3e9        # the lane the NaN replaced when it is dropped
        rows.append(x)
    rows.append((rng.normal(0, 1, k) * 1e-38).astype(np.float32))
    return np.stack(rows)


@pytest.mark.parametrize("k", [10, 40, 96, 300])
@pytest.mark.parametrize("threads", [1, 2])
def test_nan_and_infinities_bit_for_bit(k: int, threads: int) -> None:
    """NaNs and infinities in the activation: ONNX Runtime's outputs (finite where MLAS's
    maxps drops the NaN, its NaN's bits where it keeps it) on both backends and every
    instruction-set path. Before, lowp gave NaN for every row with a NaN (its block
    maximum kept any NaN, and a NaN product was code -128, not 0)."""
    x = _special_rows(k, np.random.default_rng(k))
    _check(_dq_model(k, 13, [x.shape[0], k], bias="add", zero_point="random", seed=k), x,
           threads, paths=tuple(nb.available_paths()))


@pytest.mark.parametrize("case", [
    {"block": 32},
    {"block": 32, "zero_point": "random", "wtype": np.uint8},
    {"block": 32, "zero_point": "random", "bias": "add"},
    {"wtype": "int4"},
    {"wtype": "int4", "zero_point": None, "per_column": False},
    {"wtype": "int4", "block": 32, "zero_point": "random", "op": "Gemm", "bias": "gemm"},
    {"wtype": "uint4", "zero_point": "random"},
    {"wtype": "uint4", "zero_point": None, "block": 32},
    {"block": 128, "zero_point": "random", "bias": "add"},
    {"wtype": "uint4", "block": 128, "op": "Gemm", "bias": "gemm"},
])
@pytest.mark.parametrize("threads", [1, 2])
def test_4_bit_and_blockwise_weights(case: dict[str, object], threads: int) -> None:
    """DequantizeLinear of int4 / uint4 weights (MatMulNBits bits 4) and with block_size 32
    or 128 along K (one scale and zero point a block; 128: MLAS's BlkLen128 kernel): lowp
    ran int4 with a zero point into a QuantizationError, the others as a float MatMul
    (docs/operators.md (O137))."""
    x = np.random.default_rng(3).normal(0, 1, (19, 300)).astype(np.float32)
    _check(_dq_model(300, 21, [19, 300], **case), x, threads)  # type: ignore[arg-type]


@pytest.mark.parametrize("wtype", ["int4", "uint4"])
def test_16_bit_activation_4_bit_weight(wtype: str) -> None:
    """A uint16 activation's DequantizeLinear times an int4 / uint4 weight: MatMulNBits
    bits 4 with the activation's DequantizeLinear left in float."""
    model = _u16_model(257, 24, 12, q_out=False)
    rng = np.random.default_rng(12)
    lo, hi = _int_range(wtype)
    weights = [_int_tensor(rng.integers(lo, hi + 1, (257, 24)), "w", wtype),
               _int_tensor(rng.integers(lo, hi + 1, 24), "wz", wtype)]
    inits = [t for t in model.graph.initializer if t.name != "w"]
    del model.graph.initializer[:]
    model.graph.initializer.extend([*inits, *weights])
    model.graph.node[2].input.append("wz")
    x = rng.normal(0, 1, (12, 257)).astype(np.float32)
    _check(model, x)


def test_4_bit_reference_against_the_contrib_operator() -> None:
    """com.microsoft MatMulNBits bits 4 (its CompInt8 kernel) equals the 8-bit kernel of
    lowp.ops.matmul_nbits on the same unsigned values and zero points."""
    rng = np.random.default_rng(8)
    m, k, n = 21, 700, 9
    blocks = -(-k // 32)
    w = rng.integers(0, 16, (n, blocks, 32)).astype(np.uint8)
    s = rng.uniform(0.001, 0.01, (n, blocks)).astype(np.float32)
    z = rng.integers(0, 16, (n, blocks)).astype(np.uint8)
    bias = rng.normal(0, 0.3, n).astype(np.float32)
    x = _special_rows(k, rng)[:m]
    _assert_contrib_equals_reference(x, w, s, z, bias, bits=4)


_SPECIAL = [np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 3e9, 1e-39]


@settings(max_examples=40, deadline=None)
@given(m=st.sampled_from([0, 1, 2, 5, 16]), k=st.integers(1, 200),
       n=st.sampled_from([1, 3, 4, 17]),
       wtype=st.sampled_from([np.int8, np.uint8, "int4", "uint4"]),
       form=st.sampled_from(["tensor", "column", "block", "block128"]),
       zero_point=st.sampled_from([None, "random"]),
       bias=st.sampled_from(["", "add", "add2d", "gemm"]),
       specials=st.lists(st.tuples(st.integers(0, 2**20), st.sampled_from(_SPECIAL)),
                         max_size=6),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**31 - 1))
def test_property_equals_onnxruntime(m: int, k: int, n: int, wtype: type | str, form: str,
                                     zero_point: str | None, bias: str,
                                     specials: list[tuple[int, float]], threads: int,
                                     seed: int) -> None:
    """Any shape, weight type and form, zero point, bias and NaN / infinity positions:
    lowp's bits equal ONNX Runtime's on both backends (MatMulNBits where ONNX Runtime
    rewrites, the float Gemm it keeps for a (1, N) bias)."""
    model = _dq_model(k, n, [m, k], wtype=wtype, per_column=form != "tensor",
                      zero_point=zero_point, bias=bias, op="Gemm" if bias == "gemm" else "MatMul",
                      block={"block": 32, "block128": 128}.get(form, 0), seed=seed)
    x = np.random.default_rng(seed).normal(0, 1, (m, k)).astype(np.float32)
    for where, value in specials:
        if x.size:
            x.reshape(-1)[where % x.size] = value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        _check(model, x, threads)


@pytest.mark.parametrize("bias", ["", "add", "gemm", "add2d"])
@pytest.mark.parametrize("threads", [1, 2])
def test_float16_activation(bias: str, threads: int) -> None:
    """A float16 activation times DequantizeLinear(int8 weight, float16 scale): ONNX Runtime
    casts around the float32 MatMulNBits (its bias Add fused first); lowp's output was
    float32 (the graph's is float16) and a float16 bias Add stayed unfused. A (1, N) bias
    keeps a Gemm, run in float32 between Casts on the float16 DequantizeLinear's output
    ((O146)): lowp kept the float16 MatMul and Add, and its DequantizeLinear gave the
    unrounded float32 product (12 of 30 outputs differed)."""
    model = _dq_model(96, 6, [5, 96], bias=bias, op="Gemm" if bias == "gemm" else "MatMul",
                      zero_point="random")
    for t in model.graph.initializer:
        if t.name in ("ws", "b"):
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16),
                                               t.name))
    for v in (*model.graph.input, *model.graph.output):
        v.type.tensor_type.elem_type = TensorProto.FLOAT16
    x = np.random.default_rng(13).normal(0, 1, (5, 96)).astype(np.float16)
    want = _session(model, threads).run(None, {"x": x})[0]
    for backend in ("auto", "reference"):
        got = lowp.Session(model, backend=backend, threads=threads).run({"x": x})["y"]
        assert got.dtype == np.float16, backend
        np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16),
                                      err_msg=backend)


@pytest.mark.parametrize("rows", [1, 2, 9])
@pytest.mark.parametrize("threads", [1, 2])
def test_blocks_of_128_pair_rows(rows: int, threads: int) -> None:
    """Blocks of 128: rows in pairs fold their 16 lanes by hsum_float_16, a last odd row's
    groups of four columns by FoldAccumulators (N = 10: two groups and two columns more);
    a rank-3 activation's rows counted flattened; NaN and infinite values included."""
    x = _special_rows(300, np.random.default_rng(rows))[:3 * rows].reshape(3, rows, 300)
    _check(_dq_model(300, 10, [3, rows, 300], block=128, zero_point="random", bias="add"), x,
           threads)


@pytest.mark.parametrize("per_column", [False, True])
def test_float16_dequantize_rounds(per_column: bool) -> None:
    """DequantizeLinear with a float16 scale gives float16: the float32 product rounded
    ((O146)); lowp's was the float32 product."""
    rng = np.random.default_rng(5)
    w = rng.integers(-128, 128, (40, 6)).astype(np.int8)
    scale = rng.uniform(0.002, 0.02, (6,) if per_column else ()).astype(np.float16)
    node = helper.make_node("DequantizeLinear", ["x", "s"], ["y"],
                            **({"axis": 1} if per_column else {}))
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.INT8, [40, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [40, 6])],
        [numpy_helper.from_array(scale, "s")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    want = _session(model, 1).run(None, {"x": w})[0]
    for backend in ("auto", "reference"):
        got = lowp.Session(model, backend=backend).run({"x": w})["y"]
        assert got.dtype == np.float16, backend
        np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16),
                                      err_msg=backend)
