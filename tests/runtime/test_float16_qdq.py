"""float16 QuantizeLinear and DequantizeLinear as ONNX Runtime 1.32 runs them on x86-64 CPU.

The kernels (onnxruntime/core/providers/cpu/quantization/quantize_linear.cc, MLFloat16):
QuantizeLinear converts x and the scale to float32, divides in float32 (from opset 23 on
rounding the quotient to float16, (O358)), rounds half to even, adds the zero point and
saturates; NaN gives the type's lowest value (docs/operators.md (O217)). DequantizeLinear
computes (x - zero_point) * scale in float32 and rounds that to float16 once. Around them
InsertCastTransformer's isolation rule (docs/operators.md (O216)) runs a DequantizeLinear
whose float16 scale is an initializer in float32 when every reader of its output runs in
float32: found by the fuzzer on ONNX Runtime's own QDQ file of a float16 Cast -> Mul ->
Cast, where lowp rounded the DequantizeLinear before the Mul to float16 and its
QuantizeLinear after the Mul was one step off (repro 187)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session, native_backend
from lowp.runtime.backends import native_available

BACKENDS = ["reference"] + (["native"] if native_available() else [])
F16, F32 = TensorProto.FLOAT16, TensorProto.FLOAT
EVERY_FLOAT16 = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
MS = "com.microsoft"


def _ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray], threads: int = 1
         ) -> dict[str, np.ndarray]:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    s = ort.InferenceSession(model.SerializeToString(), opts,
                             providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds), strict=True))


def _lowp_everywhere(model: onnx.ModelProto, feeds: dict[str, np.ndarray]
                     ) -> list[tuple[str, dict[str, np.ndarray]]]:
    """lowp's outputs on both backends, 1 and 2 threads, every native path."""
    runs = []
    for backend in BACKENDS:
        for threads in (1, 2):
            for path in native_backend.available_paths():
                with native_backend.use_path(path):
                    got = Session(model, backend=backend, threads=threads).run(feeds)
                runs.append((f"{backend}/{threads}/{path}", got))
    return runs


def _single(op: str, domain: str, opset: int, x: np.ndarray, scale: np.ndarray,
            zero: np.ndarray, **attrs: int) -> onnx.ModelProto:
    """One QuantizeLinear / DequantizeLinear of input `x` with initializer qparams."""
    out = (helper.np_dtype_to_tensor_dtype(zero.dtype) if op == "QuantizeLinear" else F16)
    graph = helper.make_graph(
        [helper.make_node(op, ["x", "s", "z"], ["y"], domain=domain, **attrs)], "g",
        [helper.make_tensor_value_info("x", helper.np_dtype_to_tensor_dtype(x.dtype),
                                       list(x.shape))],
        [helper.make_tensor_value_info("y", out, None)],
        [numpy_helper.from_array(scale, "s"), numpy_helper.from_array(zero, "z")])
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(MS, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=opsets, ir_version=10)


# (domain, opset, integer type, layout): per tensor, per axis, blocked (opset 21); from
# opset 23 on the quotient is rounded to float16 first ((O358): 7,308 of the 65,536 values
# of int16 one step apart before, repro 303)
QUANT_CASES = [
    ("", 19, np.int8, "tensor"), ("", 19, np.uint8, "axis"), ("", 21, np.int16, "tensor"),
    ("", 21, np.uint16, "axis"), ("", 21, np.int8, "block"), ("", 21, np.int16, "block"),
    (MS, 19, np.int8, "tensor"), (MS, 19, np.uint16, "axis"),
    ("", 23, np.int8, "tensor"), ("", 23, np.uint16, "axis"), ("", 23, np.int16, "block"),
    ("", 24, np.int16, "tensor"), ("", 25, np.uint8, "axis")]


def _qparams(dtype: type, layout: str, rows: int) -> tuple[np.ndarray, np.ndarray, dict]:
    rng = np.random.default_rng(rows)
    info = np.iinfo(dtype)
    shape: tuple[int, ...] = {"tensor": (), "axis": (rows,), "block": (rows, 1 << 16 >> 10)}[
        layout]
    scale = np.exp2(rng.uniform(-12, 2, shape)).astype(np.float16)
    zero = rng.integers(info.min // 2, info.max // 2, shape, endpoint=True).astype(dtype)
    attrs = {"tensor": {}, "axis": {"axis": 0}, "block": {"axis": 1, "block_size": 16}}[layout]
    return scale, zero, attrs


@pytest.mark.parametrize(("domain", "opset", "dtype", "layout"), QUANT_CASES)
def test_every_float16_quantizes_as_onnxruntime(domain: str, opset: int, dtype: type,
                                                layout: str) -> None:
    """All 65,536 float16 values (NaN, infinities, subnormals) through QuantizeLinear and
    back through DequantizeLinear to float16, against ONNX Runtime."""
    x = EVERY_FLOAT16.reshape(64, 1024)
    scale, zero, attrs = _qparams(dtype, layout, 64)
    quant = _single("QuantizeLinear", domain, opset, x, scale, zero, **attrs)
    want = _ort(quant, {"x": x})["y"]
    for where, got in _lowp_everywhere(quant, {"x": x}):
        assert got["y"].dtype == want.dtype, where
        np.testing.assert_array_equal(got["y"], want, err_msg=where)
    q = np.random.default_rng(3).permutation(want.ravel()).reshape(x.shape)
    dequant = _single("DequantizeLinear", domain, opset, q, scale, zero, **attrs)
    want = _ort(dequant, {"x": q})["y"]
    for where, got in _lowp_everywhere(dequant, {"x": q}):
        assert got["y"].dtype == np.float16, where
        np.testing.assert_array_equal(got["y"].view(np.uint16), want.view(np.uint16),
                                      err_msg=where)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16])
def test_every_integer_dequantizes_to_float16_as_onnxruntime(dtype: type) -> None:
    """Every value of the type against 64 float16 scales (one per row, per axis): the
    float32 product rounded once to float16."""
    info = np.iinfo(dtype)
    q = np.tile(np.arange(info.min, info.max + 1).astype(dtype), (64, 1))
    scale, zero, attrs = _qparams(dtype, "axis", 64)
    model = _single("DequantizeLinear", "", 21, q, scale, zero, **attrs)
    want = _ort(model, {"x": q})["y"]
    for where, got in _lowp_everywhere(model, {"x": q}):
        np.testing.assert_array_equal(got["y"].view(np.uint16), want.view(np.uint16),
                                      err_msg=where)


def _float16_mul(reader: str = "Cast", domain: str = "") -> onnx.ModelProto:
    """x (float32) -> Cast(float16) -> Q -> DQ -> Mul(DQ of a float16 constant) -> Q -> DQ
    -> `reader`, every scale float16: the QDQ form ONNX Runtime's quantizer writes for a
    float16 Cast -> Mul -> Cast (its Q/DQ in `domain`)."""
    def init(name: str, value: object, dtype: type) -> onnx.TensorProto:
        return numpy_helper.from_array(np.asarray(value, dtype), name)

    inits = [init("s0", 0.00789, np.float16), init("z0", -128, np.int8),
             init("kq", [[84], [127], [-1]], np.int8), init("ks", 0.00402, np.float16),
             init("kz", -128, np.int8), init("s1", 0.00671, np.float16),
             init("z1", -128, np.int8)]
    nodes = [helper.make_node("Cast", ["x"], ["h"], to=F16),
             helper.make_node("QuantizeLinear", ["h", "s0", "z0"], ["hq"]),
             helper.make_node("DequantizeLinear", ["hq", "s0", "z0"], ["hd"]),
             helper.make_node("DequantizeLinear", ["kq", "ks", "kz"], ["k"]),
             helper.make_node("Mul", ["hd", "k"], ["m"]),
             helper.make_node("QuantizeLinear", ["m", "s1", "z1"], ["mq"]),
             helper.make_node("DequantizeLinear", ["mq", "s1", "z1"], ["md"])]
    nodes.append(helper.make_node("Cast", ["md"], ["y"], to=F32) if reader == "Cast"
                 else helper.make_node(reader, ["md"], ["y"]))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", F32, [3, 40])],
        [helper.make_tensor_value_info("y", F32 if reader == "Cast" else F16, [3, 40]),
         helper.make_tensor_value_info("mq", TensorProto.INT8, [3, 40])], inits)
    for n in graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            n.domain = domain
    opsets = [helper.make_opsetid("", 19)] + ([helper.make_opsetid(MS, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=opsets, ir_version=9)


# the input of _float16_mul: 120 values over the first QuantizeLinear's range
MUL_INPUT = np.linspace(0, 2, 120, dtype=np.float32).reshape(3, 40)


@pytest.mark.parametrize("reader", ["Cast", "Sigmoid"])
@pytest.mark.parametrize("exposed", [False, True])
def test_a_dequantize_read_only_in_float32_runs_in_float32(reader: str, exposed: bool
                                                           ) -> None:
    """The DequantizeLinear before the Mul reads the quantized input (an edge) and a float16
    scale (an initializer): ONNX Runtime runs it in float32 (its scale cast to float32) and
    the Mul reads the unrounded product; the constant's DequantizeLinear (initializers only)
    and the one after the last QuantizeLinear stay float16 (repro 187). With its value also
    a graph output, the Mul reads a copy of it (EnsureUniqueDQForNodeUnit), still in
    float32."""
    model = _float16_mul(reader)
    if exposed:
        model.graph.output.append(helper.make_tensor_value_info("hd", F16, [3, 40]))
    want = _ort(model, {"x": MUL_INPUT})
    for where, got in _lowp_everywhere(model, {"x": MUL_INPUT}):
        for name, value in want.items():
            np.testing.assert_array_equal(got[name], value, err_msg=f"{where} {name}")


def test_the_dequantize_rounded_to_float16_would_differ() -> None:
    """The test above can fail: ONNX Runtime's QuantizeLinear after the Mul is that of the
    unrounded DequantizeLinear product, and 5 of its 120 values differ from those of the
    product rounded to float16 (the graph as written)."""
    s0, ks, s1 = (np.float32(np.float16(v)) for v in (0.00789, 0.00402, 0.00671))
    hq = np.clip(np.rint(MUL_INPUT.astype(np.float16).astype(np.float32) / s0), 0, 255)
    k = np.float16(np.array([[212], [255], [127]], np.float32) * ks).astype(np.float32)

    def after_mul(hd: np.ndarray) -> np.ndarray:
        m = (hd * k).astype(np.float16).astype(np.float32)
        return (np.clip(np.rint(m / s1), 0, 255) - 128).astype(np.int8)

    wide = after_mul(hq * s0)
    rounded = after_mul((hq * s0).astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(_ort(_float16_mul(), {"x": MUL_INPUT})["mq"], wide)
    assert np.count_nonzero(wide != rounded) == 5


@pytest.mark.parametrize("reader", ["Cast", "Sigmoid"])
def test_contrib_quantize_and_dequantize_run_in_float32(reader: str) -> None:
    """com.microsoft's QuantizeLinear and DequantizeLinear have no float16 kernel as
    InsertCastTransformer sees them: ONNX Runtime runs every one in float32 (the first
    reads x unrounded, the last DequantizeLinear's product reaches the Cast unrounded).
    lowp read them as the ONNX ones and rounded: 9 of 120 QuantizeLinear outputs and 114 of
    120 values of y apart (repro 187)."""
    model = _float16_mul(reader, MS)
    want = _ort(model, {"x": MUL_INPUT})
    for where, got in _lowp_everywhere(model, {"x": MUL_INPUT}):
        for name, value in want.items():
            np.testing.assert_array_equal(got[name], value, err_msg=f"{where} {name}")


def _float16_chain() -> onnx.ModelProto:
    """float32 input, Cast(float16) -> Mul -> Add -> Sigmoid -> Mul -> Cast(float32)."""
    rng = np.random.default_rng(11)
    inits = [numpy_helper.from_array(rng.uniform(0.5, 2, (1, 16)).astype(np.float16), "a"),
             numpy_helper.from_array(rng.uniform(-1, 1, (1, 16)).astype(np.float16), "b"),
             numpy_helper.from_array(rng.uniform(-2, 2, (1, 16)).astype(np.float16), "c")]
    nodes = [helper.make_node("Cast", ["x"], ["h"], to=F16),
             helper.make_node("Mul", ["h", "a"], ["m"]),
             helper.make_node("Add", ["m", "b"], ["s"]),
             helper.make_node("Sigmoid", ["s"], ["g"]),
             helper.make_node("Mul", ["g", "c"], ["o"]),
             helper.make_node("Cast", ["o"], ["y"], to=F32)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F32, [8, 16])],
                              [helper.make_tensor_value_info("y", F32, [8, 16])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)],
                             ir_version=9)


@pytest.mark.parametrize("activations", ["QInt8", "QUInt8", "QInt16"])
def test_onnxruntime_quantizer_float16_qdq_model(activations: str, tmp_path: Path) -> None:
    """A float16 chain quantized by ONNX Runtime's quantize_static: it writes float16 scales
    on the float16 tensors; every output, each QuantizeLinear output exposed, as ONNX
    Runtime computes it."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    rng = np.random.default_rng(5)
    calib = [{"x": rng.standard_normal((8, 16)).astype(np.float32) * 2} for _ in range(4)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter(calib)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.feeds, None)

    src, dst = tmp_path / "f.onnx", tmp_path / "q.onnx"
    onnx.save(_float16_chain(), str(src))
    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType[activations], weight_type=QuantType.QInt8)
    model = onnx.load(str(dst))
    scales = {t.name: t.data_type for t in model.graph.initializer}
    assert F16 in {scales.get(n.input[1]) for n in model.graph.node
                   if n.op_type == "QuantizeLinear"}
    for n in model.graph.node:
        if n.op_type == "QuantizeLinear":
            model.graph.output.append(onnx.ValueInfoProto(name=n.output[0]))
    x = rng.standard_normal((8, 16)).astype(np.float32) * 2
    x[0, :4] = [np.nan, np.inf, -np.inf, 65504.0]
    want = _ort(model, {"x": x})
    for where, got in _lowp_everywhere(model, {"x": x}):
        for name, value in want.items():
            np.testing.assert_array_equal(got[name], value, err_msg=f"{where} {name}")
