"""Per-feature Mul -> Add folded into the neighbouring layer (passes.affine_fold): the float
function is kept, only the pattern is rewritten, and the quantized file runs the same in
lowp's engine and ONNX Runtime."""

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
from lowp.passes.affine_fold import fold_affine
from lowp.pipeline import quantize

OPSET = 17


def _model(nodes: list[onnx.NodeProto], x_shape: list | None, inits: dict[str, np.ndarray],
           outputs: tuple[str, ...] = ("y",)) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "affine", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        [numpy_helper.from_array(v if v.dtype == np.int64 else v.astype(np.float32), k)
         for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    return onnx.shape_inference.infer_shapes(model)


def _factors(rng: np.random.Generator, n: int) -> np.ndarray:
    """Per-feature factors spread over two decades, as a batch normalization's are."""
    return (np.exp(rng.uniform(-2.0, 3.4, n)) * rng.choice([-1.0, 1.0], n)).astype(np.float32)


def _dense_bn_dense(lead: list, k: int, n: int, m: int, *, seed: int = 0,
                    affine_shape: tuple[int, ...] | None = None, with_add: bool = True,
                    dense_bias: bool = True, gemm: bool = False, trans_b: bool = False,
                    readers: int = 1) -> onnx.ModelProto:
    """x -> MatMul(W1 [k, n]) -> Relu -> Mul(c) -> Add(b) -> `readers` x (MatMul(W2 [n, m])
    [-> Add(bias)] or Gemm(W2)) -> y0, y1, ..."""
    rng = np.random.default_rng(seed)
    shape = affine_shape or (n,)
    inits = {"w1": rng.normal(0, 0.5, (k, n)), "c": _factors(rng, n).reshape(shape),
             "b": rng.normal(0, 2.0, n).reshape(shape)}
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="dense1"),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("Mul", ["r", "c"], ["s"], name="bn_mul")]
    z = "s"
    if with_add:
        nodes.append(helper.make_node("Add", ["s", "b"], ["z"], name="bn_add"))
        z = "z"
    outputs = []
    for i in range(readers):
        w2 = rng.normal(0, 0.5, (n, m))
        y = f"y{i}"
        outputs.append(y)
        if gemm:
            inits[f"w2_{i}"] = w2.T if trans_b else w2
            inits[f"c2_{i}"] = rng.normal(0, 0.5, m)
            nodes.append(helper.make_node("Gemm", [z, f"w2_{i}", f"c2_{i}"], [y],
                                          name=f"dense2_{i}", transB=int(trans_b)))
        elif dense_bias:
            inits[f"w2_{i}"] = w2
            inits[f"bias2_{i}"] = rng.normal(0, 0.5, m)
            nodes += [helper.make_node("MatMul", [z, f"w2_{i}"], [f"p{i}"], name=f"dense2_{i}"),
                      helper.make_node("Add", [f"p{i}", f"bias2_{i}"], [y], name=f"bias2_{i}")]
        else:
            inits[f"w2_{i}"] = w2
            nodes.append(helper.make_node("MatMul", [z, f"w2_{i}"], [y], name=f"dense2_{i}"))
    return _model(nodes, [*lead, k], inits, tuple(outputs))


def _run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    s = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return s.run(None, {"x": x})


def _same_function(model: onnx.ModelProto, folded: onnx.ModelProto, x: np.ndarray) -> None:
    onnx.checker.check_model(folded, full_check=True)
    for want, got in zip(_run(model, x), _run(folded, x), strict=True):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))


@settings(max_examples=20, deadline=None)
@given(lead=st.sampled_from([[5], [1], ["batch"], [2, 3]]), k=st.integers(1, 7),
       n=st.integers(1, 9), m=st.integers(1, 6), with_add=st.booleans(),
       dense_bias=st.booleans(), readers=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_into_the_readers_keeps_the_float_function(lead: list, k: int, n: int, m: int,
                                                   with_add: bool, dense_bias: bool,
                                                   readers: int, seed: int) -> None:
    model = _dense_bn_dense(lead, k, n, m, seed=seed, with_add=with_add,
                            dense_bias=dense_bias, readers=readers)
    folded, count = fold_affine(model)
    assert count == 1
    assert not {"Mul", "Relu"} - {nd.op_type for nd in model.graph.node}
    assert "Mul" not in {nd.op_type for nd in folded.graph.node}
    # the shift joins the Dense layer's own bias: no Add is added where one was
    adds = sum(nd.op_type == "Add" for nd in folded.graph.node)
    assert adds == (readers if dense_bias or with_add else 0)
    shape = [d if isinstance(d, int) else 4 for d in lead] + [k]
    x = np.random.default_rng(seed + 1).normal(0, 1, shape).astype(np.float32)
    _same_function(model, folded, x)


@pytest.mark.parametrize("trans_b", [False, True])
def test_into_a_gemm_reader(trans_b: bool) -> None:
    model = _dense_bn_dense([4], 6, 5, 3, gemm=True, trans_b=trans_b)
    folded, count = fold_affine(model)
    assert count == 1
    assert [nd.op_type for nd in folded.graph.node] == ["MatMul", "Relu", "Gemm"]
    _same_function(model, folded, np.random.default_rng(1).normal(0, 1, (4, 6)).astype(
        np.float32))


def _conv_bn(layout: str, *, seed: int = 0, bias: bool = True, with_add: bool = True,
             channels: int = 4) -> onnx.ModelProto:
    """x [1, 2, 7, 6] -> Conv(3x3) -> layout nodes -> Mul(c) -> Add(b) -> Elu -> y.

    layout "nchw": none, constants [1, C, 1, 1]; "nhwc": Transpose to NHWC and Squeeze of the
    batch axis, constants [C] (a TensorFlow export's); "unsqueeze": Unsqueeze at 0, constants
    [1, 1, C, 1, 1]."""
    rng = np.random.default_rng(seed)
    c_out = channels
    inits = {"w": rng.normal(0, 0.5, (c_out, 2, 3, 3))}
    conv_in = ["x", "w"]
    if bias:
        inits["bias"] = rng.normal(0, 0.5, c_out)
        conv_in.append("bias")
    nodes = [helper.make_node("Conv", conv_in, ["t0"], name="conv", pads=[1, 1, 1, 1])]
    if layout == "nchw":
        shape: tuple[int, ...] = (1, c_out, 1, 1)
        last = "t0"
    elif layout == "nhwc":
        inits["axes"] = np.array([0], np.int64)
        nodes += [helper.make_node("Transpose", ["t0"], ["t1"], perm=[0, 2, 3, 1]),
                  helper.make_node("Squeeze", ["t1", "axes"], ["t2"])]
        shape, last = (c_out,), "t2"
    else:
        nodes.append(helper.make_node("Unsqueeze", ["t0", "axes"], ["t1"]))
        inits["axes"] = np.array([0], np.int64)
        shape, last = (1, 1, c_out, 1, 1), "t1"
    inits["c"] = _factors(rng, c_out).reshape(shape)
    inits["b"] = rng.normal(0, 2.0, c_out).reshape(shape)
    nodes.append(helper.make_node("Mul", [last, "c"], ["s"], name="bn_mul"))
    z = "s"
    if with_add:
        nodes.append(helper.make_node("Add", ["b", "s"], ["z"], name="bn_add"))
        z = "z"
    nodes.append(helper.make_node("Elu", [z], ["y"], name="elu"))
    return _model(nodes, [1, 2, 7, 6], inits)


@settings(max_examples=12, deadline=None)
@given(layout=st.sampled_from(["nchw", "nhwc", "unsqueeze"]), bias=st.booleans(),
       with_add=st.booleans(), channels=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_into_the_producer_keeps_the_float_function(layout: str, bias: bool, with_add: bool,
                                                    channels: int, seed: int) -> None:
    model = _conv_bn(layout, seed=seed, bias=bias, with_add=with_add, channels=channels)
    folded, count = fold_affine(model)
    assert count == 1
    assert not {"Mul", "Add"} & {nd.op_type for nd in folded.graph.node}
    x = np.random.default_rng(seed + 1).normal(0, 1, (1, 2, 7, 6)).astype(np.float32)
    _same_function(model, folded, x)


def _left_alone() -> list[tuple[str, onnx.ModelProto]]:
    rng = np.random.default_rng(0)
    cases = []
    m = _dense_bn_dense([4], 6, 5, 3)
    m.graph.node.append(helper.make_node("Sigmoid", ["z"], ["other"], name="other"))
    m.graph.output.append(helper.make_tensor_value_info("other", TensorProto.FLOAT, None))
    cases.append(("the affine output has a reader that is not a Dense layer", m))
    m = _dense_bn_dense([4], 6, 5, 3)
    m.graph.output.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, None))
    cases.append(("the affine output is a graph output", m))
    cases.append(("the factors run along another axis",
                  _dense_bn_dense([5], 6, 5, 3, affine_shape=(5, 1))))
    m = _conv_bn("nchw")
    m.graph.initializer.remove(next(t for t in m.graph.initializer if t.name == "c"))
    m.graph.initializer.append(numpy_helper.from_array(
        rng.uniform(1, 2, (1, 1, 7, 1)).astype(np.float32), "c"))
    cases.append(("the factors run along the height", m))
    m = _conv_bn("nchw")
    m.graph.node.append(helper.make_node("Relu", ["t0"], ["other"], name="other"))
    m.graph.output.append(helper.make_tensor_value_info("other", TensorProto.FLOAT, None))
    cases.append(("the convolution's output has a second reader", m))
    return cases


@pytest.mark.parametrize("why, model", _left_alone())
def test_other_patterns_are_left_alone(why: str, model: onnx.ModelProto) -> None:
    folded, count = fold_affine(model)
    assert count == 0, why
    assert folded.SerializeToString() == model.SerializeToString()


def _sqnr(ref: np.ndarray, got: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref.astype(np.float64) ** 2)
                               / np.sum((ref.astype(np.float64) - got) ** 2)))


def test_folded_factors_are_closer_to_float_and_run_the_same_in_both_engines() -> None:
    # a batch normalization between two Dense layers whose factors span 0.14 to 30: stored
    # on one 8-bit grid and applied to one activation grid, the small ones are lost
    model = _dense_bn_dense(["n"], 16, 24, 8, seed=5)
    rng = np.random.default_rng(7)
    calib = {"x": rng.normal(0, 1, (64, 16)).astype(np.float32)}
    x = rng.normal(0, 1, (64, 16)).astype(np.float32)
    (ref,) = _run(model, x)
    plain = quantize(model, calib, Config(method=lowp.CalibMethod.MINMAX)).model
    folded = quantize(model, calib, Config(method=lowp.CalibMethod.MINMAX,
                                           fold_affine=True)).model
    onnx.checker.check_model(folded)
    assert "Mul" not in {n.op_type for n in folded.graph.node}
    (got_plain,), (got_folded,) = _run(plain, x), _run(folded, x)
    assert _sqnr(ref, got_folded) > _sqnr(ref, got_plain) + 2.0    # 28.3 against 24.6 dB
    for threads in (1, 2):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        want = ort.InferenceSession(folded.SerializeToString(), opts,
                                    providers=["CPUExecutionProvider"]).run(None, {"x": x})
        for backend in ("native", "reference"):
            ours = lowp.Session(folded, threads=threads, backend=backend).run({"x": x})
            got = list(ours.values()) if isinstance(ours, dict) else list(ours)
            for a, b in zip(got, want, strict=True):
                np.testing.assert_array_equal(np.asarray(a), b)


def test_a_model_without_the_pattern_is_quantized_the_same() -> None:
    rng = np.random.default_rng(0)
    model = _model([helper.make_node("MatMul", ["x", "w"], ["y"], name="dense")], ["n", 8],
                   {"w": rng.normal(0, 1, (8, 5))})
    calib = {"x": rng.normal(0, 1, (16, 8)).astype(np.float32)}
    a = lowp.quantize_model(model, calib, Config(method=lowp.CalibMethod.MINMAX))
    b = lowp.quantize_model(model, calib, Config(method=lowp.CalibMethod.MINMAX,
                                                 fold_affine=True))
    assert a.SerializeToString() == b.SerializeToString()


def test_the_option_is_checked() -> None:
    with pytest.raises(QuantizationError, match="fold_affine"):
        Config(fold_affine=1)  # type: ignore[arg-type]
    with pytest.raises(QuantizationError, match="fold_affine"):
        Config(fold_affine=True, mode=QuantMode.DYNAMIC)
