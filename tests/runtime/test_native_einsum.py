"""Float32 two-operand Einsum read and written in place (native_float.einsum_products): one
float_sgemm_mlas product per batch entry over strided views, bit for bit with the reference
that copies the operands to (batch, M, K) and (batch, K, N) (the numpy path, MLAS's order in
lowp.mlas_sgemm), with ONNX Runtime's values, and replayed inside a native Program."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session, native_float
from lowp.runtime.backends import native_available
from lowp.runtime.float_ops import FLOAT_OPS
from tests.runtime.ort_agreement import assert_engines_agree, onnxruntime_run

pytestmark = pytest.mark.skipif(
    not native_available() or not hasattr(native_float._extension(), "float_sgemm_mlas"),
    reason="the native extension is not built")

Einsum = FLOAT_OPS["Einsum"]


@st.composite
def contractions(draw: st.DrawFn) -> tuple[str, np.ndarray, np.ndarray]:
    """A two-operand equation with batch, row, contracted and column indices in drawn
    orders, its operands (some of them transposed or sliced views) and sizes around the
    kernels' 16-float vectors."""
    kinds = draw(st.lists(st.sampled_from("brkc"), min_size=1, max_size=5))
    letters = "pqrstuvw"[:len(kinds)]
    in_a = [x for x, kind in zip(letters, kinds, strict=True) if kind in "brk"]
    in_b = [x for x, kind in zip(letters, kinds, strict=True) if kind in "bkc"]
    out = [x for x, kind in zip(letters, kinds, strict=True) if kind in "brc"]
    ta, tb, to = (draw(st.permutations(v)) for v in (in_a, in_b, out))
    if not ta or not tb:
        ta, tb = ta or in_a, tb or in_b
    size = {x: draw(st.sampled_from([1, 2, 3, 5, 16, 17, 33])) for x in letters}
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)

    def operand(term: list[str]) -> np.ndarray:
        shape = [size[x] for x in term]
        values = rng.standard_normal([*shape[:-1], shape[-1] + 3] if shape else shape)
        x = values.astype(np.float32)
        return x[..., 1:1 + shape[-1]] if shape else x        # a view with a row stride

    equation = f"{''.join(ta)},{''.join(tb)}->{''.join(to)}"
    return equation, operand(list(ta)), operand(list(tb))


@settings(max_examples=150, deadline=None)
@given(contractions())
def test_in_place_products_equal_the_copying_reference(case) -> None:
    equation, a, b = case
    with native_float.disabled():
        want = Einsum(a, b, equation=equation)
    got = Einsum(a, b, equation=equation)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_deepfilternet_grouped_linear_equals_onnxruntime() -> None:
    """DeepFilterNet3's grouped linear layers: btgi,gih->btgh."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((1, 40, 16, 16)).astype(np.float32)
    w = rng.standard_normal((16, 16, 60)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Einsum", ["a", "w"], ["y"], equation="btgi,gih->btgh")], "g",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, a.shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, (1, 40, 16, 60))],
        [numpy_helper.from_array(w, "w")])
    assert_engines_agree(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]),
                         {"a": a})


def _grouped_linear() -> helper.ModelProto:
    """x -> Relu -> Reshape (1, T, 8, 64) -> Einsum with constant (8, 64, 32) -> Tanh."""
    rng = np.random.default_rng(5)
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]),
         helper.make_node("Reshape", ["r", "shape"], ["g"]),
         helper.make_node("Einsum", ["g", "w"], ["e"], equation="btgi,gih->btgh"),
         helper.make_node("Tanh", ["e"], ["y"])], "grouped",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 40, 512])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 40, 8, 32])],
        [numpy_helper.from_array(np.array([1, 40, 8, 64], np.int64), "shape"),
         numpy_helper.from_array((rng.standard_normal((8, 64, 32)) * 0.2).astype(np.float32),
                                 "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_einsum_replays_in_a_program_with_onnxruntime_outputs() -> None:
    model = _grouped_linear()
    session = Session(model.SerializeToString())
    rng = np.random.default_rng(9)
    for run in range(4):
        feeds = {"x": rng.standard_normal((1, 40, 512)).astype(np.float32)}
        np.testing.assert_array_equal(session.run(feeds)["y"], onnxruntime_run(model, feeds)[0],
                                      err_msg=f"run {run}")
    signature = (("x", (1, 40, 512), "<f4"),)
    assert session._replayer is not None
    assert "Einsum" not in [s.op_type for s in session._replayer.plain_steps(signature)]


def _attention(c: int, t: int) -> helper.ModelProto:
    """terrain_consistency_unet's attention core: q, k, v (1, C, T) ->
    Einsum(bct,bcs->bts) -> Softmax -> Einsum(bts,bcs->bct), the last one's output not
    in the products' row order."""
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, c, t]) for n in "qkv"]
    graph = helper.make_graph(
        [helper.make_node("Einsum", ["q", "k"], ["w"], equation="bct,bcs->bts"),
         helper.make_node("Softmax", ["w"], ["p"], axis=2),
         helper.make_node("Einsum", ["p", "v"], ["y"], equation="bts,bcs->bct")], "attention",
        io, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, t])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("threads", [1, 2])
def test_attention_einsums_replay_in_one_program_with_onnxruntime_outputs(threads) -> None:
    """Both Einsums (the second through a buffer and one native copy) replay inside the
    Program, ONNX Runtime's bits on every run."""
    c, t = 24, 37
    model = _attention(c, t)
    session = Session(model.SerializeToString(), threads=threads)
    rng = np.random.default_rng(2)
    for run in range(4):
        feeds = {n: rng.standard_normal((1, c, t)).astype(np.float32) for n in "qkv"}
        np.testing.assert_array_equal(session.run(feeds)["y"],
                                      onnxruntime_run(model, feeds, threads)[0],
                                      err_msg=f"run {run}")
    signature = tuple((n, (1, c, t), "<f4") for n in "qkv")
    assert session._replayer is not None
    assert session._replayer.programs(signature) == [3]
