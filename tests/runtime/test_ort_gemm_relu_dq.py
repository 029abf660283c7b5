"""DequantizeLinear(constant weight) -> MatMul -> Add of an (N,) constant (or the Gemm that
MatMulAddFusion makes of them), then a Relu or Clip read by one node: ONNX Runtime 1.32 keeps
a float Gemm over the DequantizeLinear there (FusedGemm with the Relu), where any other
activation, a Relu read twice or a Relu that is a graph output gives MatMulNBits with the
bias fused. lowp computes the same each way, both backends, every instruction-set path, 1 and
2 threads (docs/operators.md (O178); evals/corpus/repro/README.md 161)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from onnx import ModelProto, TensorProto, helper, numpy_helper

from tests.runtime.ort_agreement import assert_outputs_equal_onnxruntime_on_every_path


def _model(act: str, *, weight: str, gemm: bool, after: str, rank3: bool = False,
           seed: int = 0) -> ModelProto:
    """x (5, 128) (or (2, 3, 128)) times DequantizeLinear(int8 per column, or uint4 in
    blocks of 64) (128, 16), plus a (16,) bias (Add, or the Gemm's C), then `act`, then
    `after`: 'neg' (one reader), 'output' (the activation is the graph output) or 'two'
    (two readers)."""
    rng = np.random.default_rng(seed)
    k, n = 128, 16
    if weight == "int8":
        w = rng.integers(-127, 128, (k, n)).astype(np.int8)
        s = rng.uniform(0.01, 0.02, (n,)).astype(np.float32)
        dq = helper.make_node("DequantizeLinear", ["w", "s"], ["wf"], axis=1)
    else:
        w = rng.integers(0, 16, (k, n)).astype(ml_dtypes.uint4)
        s = rng.uniform(0.01, 0.02, (k // 64, n)).astype(np.float32)
        dq = helper.make_node("DequantizeLinear", ["w", "s"], ["wf"], axis=0, block_size=64)
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(s, "s"),
             numpy_helper.from_array(rng.normal(0, 1, n).astype(np.float32), "b")]
    if gemm:
        nodes = [dq, helper.make_node("Gemm", ["x", "wf", "b"], ["a"])]
    else:
        nodes = [dq, helper.make_node("MatMul", ["x", "wf"], ["m"]),
                 helper.make_node("Add", ["m", "b"], ["a"])]
    act_inputs = ["a"]
    if act == "Clip06":
        inits += [numpy_helper.from_array(np.float32(0), "lo"),
                  numpy_helper.from_array(np.float32(6), "hi")]
        act, act_inputs = "Clip", ["a", "lo", "hi"]
    nodes.append(helper.make_node(act, act_inputs, ["r"]))
    outputs = ["r"]
    if after in ("neg", "two"):
        nodes.append(helper.make_node("Neg", ["r"], ["y"]))
        outputs = ["y"]
    if after == "two":
        nodes.append(helper.make_node("Abs", ["r"], ["y2"]))
        outputs.append("y2")
    shape = [2, 3, k] if rank3 else [5, k]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, shape)], [helper.make_tensor_value_info(
            o, TensorProto.FLOAT, None) for o in outputs], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


def _check(model: ModelProto, threads: int) -> None:
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    x = np.random.default_rng(threads).normal(0, 1, shape).astype(np.float32)
    assert_outputs_equal_onnxruntime_on_every_path(model, {"x": x}, threads)


@pytest.mark.parametrize("act", ["Relu", "Clip", "Clip06"])
@pytest.mark.parametrize("weight", ["int8", "uint4"])
@pytest.mark.parametrize("gemm", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_relu_or_clip_after_the_bias_keeps_a_float_gemm(act: str, weight: str, gemm: bool,
                                                         threads: int) -> None:
    """Before, lowp made these MatMulNBits: most outputs apart from ONNX Runtime's float
    Gemm (madmom_chroma_dnn's blockwise uint4 file 0.00% identical)."""
    _check(_model(act, weight=weight, gemm=gemm, after="neg"), threads)


@pytest.mark.parametrize("act,after,rank3", [
    ("Relu", "output", False), ("Relu", "two", False), ("Relu", "neg", True),
    ("Sigmoid", "neg", False), ("LeakyRelu", "neg", False), ("Tanh", "neg", False)])
@pytest.mark.parametrize("threads", [1, 2])
def test_other_forms_stay_matmul_nbits(act: str, after: str, rank3: bool,
                                       threads: int) -> None:
    """The forms ONNX Runtime still makes MatMulNBits (a Relu that is a graph output or is
    read twice, a rank-3 activation, other activations)."""
    _check(_model(act, weight="uint4", gemm=False, after=after, rank3=rank3), threads)
