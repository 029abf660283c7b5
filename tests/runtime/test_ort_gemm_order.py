"""Float32 Gemm equals ONNX Runtime bit for bit: C broadcast into the output, then MLAS's
SGEMM multiplying it by beta and accumulating alpha * A B onto it, B prepacked when constant;
a beta other than 0 and 1 keeps MLAS's M = 1 and N = 1 kernels out ((O145))."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import ModelProto, TensorProto, helper, numpy_helper

from lowp.runtime import Session

from .ort_agreement import assert_bits_agree, assert_engines_agree, onnxruntime_run


@pytest.mark.parametrize("m,k,n,trans_b,alpha,beta,const_b,c_shape", [
    (4, 256, 100, 1, 1.0, 1.0, True, (100,)),
    (4, 256, 100, 0, 1.0, 1.0, True, (1, 100)),
    (1, 512, 10, 1, 1.0, 1.0, True, (10,)),
    (8, 300, 64, 1, 0.5, 2.0, True, (8, 64)),
    (4, 256, 100, 1, 1.0, 1.0, False, (100,)),
    (30, 700, 50, 1, 1.0, 0.0, True, (50,)),
    (3, 40, 7, 0, 1.0, 1.0, True, None),
])
def test_gemm_equals_onnxruntime(m: int, k: int, n: int, trans_b: int, alpha: float,
                                 beta: float, const_b: bool, c_shape: tuple[int, ...] | None
                                 ) -> None:
    rng = np.random.default_rng(m + k + n)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = (rng.standard_normal((n, k) if trans_b else (k, n)) * 0.1).astype(np.float32)
    inits = [numpy_helper.from_array(b, "b")] if const_b else []
    inputs = [helper.make_tensor_value_info("a", 1, a.shape)]
    if not const_b:
        inputs.append(helper.make_tensor_value_info("b", 1, b.shape))
    names = ["a", "b"]
    if c_shape is not None:
        inits.append(numpy_helper.from_array(rng.standard_normal(c_shape).astype(np.float32),
                                             "c"))
        names.append("c")
    node = helper.make_node("Gemm", names, ["y"], transB=trans_b, alpha=alpha, beta=beta)
    graph = helper.make_graph([node], "gemm", inputs,
                              [helper.make_tensor_value_info("y", 1, (m, n))], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert_engines_agree(model, {"a": a} if const_b else {"a": a, "b": b})


def _gemm_model(m: int, k: int, n: int, *, trans_a: int, trans_b: int, alpha: float,
                beta: float, const_b: bool, c_shape: tuple[int, ...] | None, seed: int
                ) -> tuple[ModelProto, dict[str, np.ndarray]]:
    """One float32 Gemm node x (m x k, transposed with trans_a) by b (k x n, transposed with
    trans_b; an initializer or a graph input) plus a constant C of `c_shape`, and its feeds."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    b = (rng.standard_normal((n, k) if trans_b else (k, n)) * 0.1).astype(np.float32)
    inits = [numpy_helper.from_array(b, "b")] if const_b else []
    inputs = [helper.make_tensor_value_info("a", 1, a.shape)]
    feeds = {"a": a}
    if not const_b:
        inputs.append(helper.make_tensor_value_info("b", 1, b.shape))
        feeds["b"] = b
    names = ["a", "b"]
    if c_shape is not None:
        inits.append(numpy_helper.from_array(rng.standard_normal(c_shape).astype(np.float32),
                                             "c"))
        names.append("c")
    node = helper.make_node("Gemm", names, ["y"], transA=trans_a, transB=trans_b, alpha=alpha,
                            beta=beta)
    graph = helper.make_graph([node], "gemm", inputs,
                              [helper.make_tensor_value_info("y", 1, (m, n))], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), feeds


@pytest.mark.parametrize("m,k,n,trans_a,trans_b", [
    (1, 40, 17, 0, 0), (1, 40, 17, 0, 1), (1, 1000, 300, 0, 0), (6, 50, 1, 0, 0),
    (6, 50, 1, 1, 0)])
@pytest.mark.parametrize("threads", [1, 2])
def test_beta_skips_small_kernels(m: int, k: int, n: int, trans_a: int, trans_b: int,
                                  threads: int) -> None:
    """beta 0.5 with a B ONNX Runtime does not prepack, at M = 1 or N = 1: MLAS multiplies C
    by beta and runs its general kernel; lowp took the M = 1 / N = 1 kernels and differed in
    up to 15 of 17 outputs."""
    model, feeds = _gemm_model(m, k, n, trans_a=trans_a, trans_b=trans_b, alpha=1.0, beta=0.5,
                               const_b=False, c_shape=(n,), seed=k)
    assert_bits_agree(model, feeds, threads)


@settings(max_examples=40, deadline=None)
@given(m=st.sampled_from([1, 2, 3, 5, 17, 40]), k=st.sampled_from([1, 3, 40, 129, 257, 300]),
       n=st.sampled_from([1, 2, 7, 17, 130]), trans_a=st.sampled_from([0, 1]),
       trans_b=st.sampled_from([0, 1]), alpha=st.sampled_from([1.0, 0.5, -1.25]),
       beta=st.sampled_from([1.0, 0.0, 0.5, 2.0, -0.75]), const_b=st.booleans(),
       c_form=st.sampled_from(["none", "n", "1n", "m1", "mn", "scalar", "1"]),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**31 - 1))
def test_property_gemm_equals_onnxruntime(m: int, k: int, n: int, trans_a: int, trans_b: int,
                                          alpha: float, beta: float, const_b: bool,
                                          c_form: str, threads: int, seed: int) -> None:
    """Any shape, transposes, alpha, beta, C broadcast and B constant or not: lowp's float32
    Gemm equals ONNX Runtime's bit for bit on both backends at one and two threads."""
    c_shape = {"none": None, "n": (n,), "1n": (1, n), "m1": (m, 1), "mn": (m, n),
               "scalar": (), "1": (1,)}[c_form]
    model, feeds = _gemm_model(m, k, n, trans_a=trans_a, trans_b=trans_b, alpha=alpha,
                               beta=beta, const_b=const_b, c_shape=c_shape, seed=seed)
    assert_bits_agree(model, feeds, threads)


@pytest.mark.parametrize("m,k,n", [(3, 300, 17), (1, 40, 17), (5, 600, 130)])
@pytest.mark.parametrize("threads", [1, 2])
def test_float16_matmul_add_beside_dequantize(m: int, k: int, n: int, threads: int) -> None:
    """A float16 MatMul (constant B) + (1, N) Add in a graph that also holds a float16
    DequantizeLinear (which lowp.runtime.ort_insert_cast does not take): ONNX Runtime fuses
    them into a Gemm and runs it in float32 between Casts, B prepacked; lowp kept float16
    MatMul and Add (5 to 170 outputs apart) and the DequantizeLinear gave float32 ((O146))."""
    f16 = TensorProto.FLOAT16
    rng = np.random.default_rng(k)
    inits = [numpy_helper.from_array((rng.standard_normal((k, n)) * 0.1).astype(np.float16),
                                     "b"),
             numpy_helper.from_array(rng.standard_normal((1, n)).astype(np.float16), "c"),
             numpy_helper.from_array(np.float16(0.01), "s")]
    nodes = [helper.make_node("MatMul", ["x", "b"], ["mm"]),
             helper.make_node("Add", ["mm", "c"], ["y"]),
             helper.make_node("DequantizeLinear", ["q", "s"], ["z"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", f16, [m, k]),
                     helper.make_tensor_value_info("q", TensorProto.INT8, [4])],
        [helper.make_tensor_value_info("y", f16, [m, n]),
         helper.make_tensor_value_info("z", f16, [4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    feeds = {"x": rng.standard_normal((m, k)).astype(np.float16),
             "q": np.arange(-2, 2, dtype=np.int8)}
    want = onnxruntime_run(model, feeds, threads)
    for backend in ("native", "reference"):
        got = Session(model, backend=backend, threads=threads).run(feeds)
        for name, theirs in zip(("y", "z"), want, strict=True):
            assert got[name].dtype == np.float16, (backend, name)
            np.testing.assert_array_equal(got[name].view(np.uint16), theirs.view(np.uint16),
                                          err_msg=f"{backend} {name}")
