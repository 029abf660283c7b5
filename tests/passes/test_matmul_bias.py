"""MatMul -> Add(constant bias) as one Gemm (passes.matmul_bias): the float function is kept,
only the pattern is rewritten, and the quantized model rounds the biased sum once."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import lowp
from lowp.config import Config, QuantMode
from lowp.errors import QuantizationError
from lowp.passes.matmul_bias import fuse_matmul_bias
from lowp.pipeline import quantize


def _dense(x_shape: list, k: int, n: int, bias_shape: tuple[int, ...], *, seed: int = 0,
           bias_first: bool = False, bias_offset: float = 0.0, extra_reader: bool = False
           ) -> onnx.ModelProto:
    """x -> MatMul(W [k, n]) -> Add(b) -> Relu -> y (a second reader of the product when
    `extra_reader`)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.5, (k, n)).astype(np.float32)
    b = (rng.normal(0, 0.5, bias_shape) + bias_offset).astype(np.float32)
    add_in = ["b", "p"] if bias_first else ["p", "b"]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["p"], name="dense"),
             helper.make_node("Add", add_in, ["s"], name="bias"),
             helper.make_node("Relu", ["s"], ["y"], name="act")]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if extra_reader:
        nodes.append(helper.make_node("Sigmoid", ["p"], ["z"], name="other"))
        outputs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "dense",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              outputs,
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return onnx.shape_inference.infer_shapes(model)


def _run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, {"x": x})


@settings(max_examples=15, deadline=None)
@given(lead=st.sampled_from([[5], [1], ["batch"]]),
       k=st.integers(1, 9), n=st.integers(1, 9), bias_rank=st.integers(1, 2),
       bias_first=st.booleans(), seed=st.integers(0, 2**16))
def test_the_float_function_is_kept(lead: list, k: int, n: int, bias_rank: int,
                                    bias_first: bool, seed: int) -> None:
    bias_shape = (1,) * (min(bias_rank, len(lead) + 1) - 1) + (n,)
    model = _dense([*lead, k], k, n, bias_shape, seed=seed, bias_first=bias_first)
    fused, count = fuse_matmul_bias(model)
    assert count == 1
    assert [nd.op_type for nd in fused.graph.node if nd.op_type in ("MatMul", "Add")] == []
    assert sum(nd.op_type == "Gemm" for nd in fused.graph.node) == 1
    onnx.checker.check_model(fused, full_check=True)
    shape = [d if isinstance(d, int) else 3 + i for i, d in enumerate(lead)] + [k]
    x = np.random.default_rng(seed + 1).normal(0, 1, shape).astype(np.float32)
    (want,), (got,) = _run(model, x), _run(fused, x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("why, model", [
    ("the product has a second reader", _dense([4, 6], 6, 3, (3,), extra_reader=True)),
    ("the bias runs along another axis", _dense([4, 6], 6, 3, (4, 1))),
    ("the bias is a full matrix", _dense([4, 6], 6, 3, (4, 3))),
    ("the rank of x is unknown", _dense(None, 6, 3, (3,))),  # type: ignore[arg-type]
    ("x has rank 3", _dense([2, 4, 6], 6, 3, (3,))),
    ("x has rank 3, its leading dimensions unknown", _dense(["a", "b", 6], 6, 3, (1, 1, 3))),
])
def test_other_patterns_are_left_alone(why: str, model: onnx.ModelProto) -> None:
    fused, count = fuse_matmul_bias(model)
    assert count == 0, why
    assert fused.SerializeToString() == model.SerializeToString()


def _sqnr(ref: np.ndarray, got: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref.astype(np.float64) ** 2)
                               / np.sum((ref.astype(np.float64) - got) ** 2)))


def biased_head() -> tuple[onnx.ModelProto, dict[str, np.ndarray], np.ndarray]:
    """A Dense head x [n, 16] -> MatMul -> Add(bias) -> y, its calibration data and
    evaluation input: positive inputs far from zero, a bias that cancels their mean
    product, so the product's own int8 grid spans the channels' offsets (tens), the biased
    sum's only its spread."""
    rng = np.random.default_rng(3)
    # weights on their own per-channel int8 grid (exact), one sign per column: the columns'
    # sums, which the input's mean multiplies, are large
    steps = rng.integers(0, 128, (16, 4))
    steps[0] = 127
    w = (steps / 127.0 * np.array([1, -1, 1, -1])).astype(np.float32)
    mean = np.full(16, 10.0, np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["p"], name="dense"),
         helper.make_node("Add", ["p", "b"], ["y"], name="bias")],
        "head", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(-(mean @ w), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    calib = {"x": (mean + rng.normal(0, 1, (64, 16))).astype(np.float32)}
    x = (mean + rng.normal(0, 1, (64, 16))).astype(np.float32)
    return model, calib, x


def test_one_rounding_of_the_biased_sum_is_closer_to_float() -> None:
    model, calib, x = biased_head()
    (ref,) = _run(model, x)
    plain = Config(method=lowp.CalibMethod.MINMAX)
    fused = Config(method=lowp.CalibMethod.MINMAX, fuse_matmul_bias=True)
    q_plain = quantize(model, calib, plain).model
    q_fused = quantize(model, calib, fused).model
    assert {n.op_type for n in q_fused.graph.node} >= {"Gemm"}
    assert "Gemm" not in {n.op_type for n in q_plain.graph.node}
    (got_plain,), (got_fused,) = _run(q_plain, x), _run(q_fused, x)
    assert _sqnr(ref, got_fused) > _sqnr(ref, got_plain) + 5.0    # 26.6 against 18.4 dB
    # lowp's engine computes ONNX Runtime's outputs on the rewritten file
    ours = lowp.Session(q_fused).run({"x": x})
    np.testing.assert_array_equal(np.asarray(next(iter(ours.values()))
                                             if isinstance(ours, dict) else ours[0]), got_fused)


def test_a_model_without_the_pattern_is_quantized_the_same() -> None:
    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="dense")], "plain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 5])],
        [numpy_helper.from_array(rng.normal(0, 1, (8, 5)).astype(np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    calib = {"x": rng.normal(0, 1, (16, 8)).astype(np.float32)}
    a = lowp.quantize_model(model, calib, Config(method=lowp.CalibMethod.MINMAX))
    b = lowp.quantize_model(model, calib, Config(method=lowp.CalibMethod.MINMAX,
                                                 fuse_matmul_bias=True))
    assert a.SerializeToString() == b.SerializeToString()


def test_the_option_is_checked() -> None:
    with pytest.raises(QuantizationError, match="fuse_matmul_bias"):
        Config(fuse_matmul_bias=1)  # type: ignore[arg-type]
    with pytest.raises(QuantizationError, match="fuse_matmul_bias"):
        Config(fuse_matmul_bias=True, mode=QuantMode.DYNAMIC)
