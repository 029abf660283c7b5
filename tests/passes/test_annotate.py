"""Annotate: which nodes the default policy quantizes."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import lowp
from lowp.config import Config, QuantPolicy
from lowp.passes.annotate import annotate
from lowp.pipeline import quantize


def _attention() -> onnx.ModelProto:
    """x -> q, k projections -> q k^T -> Softmax -> (p v) -> output projection."""
    rng = np.random.default_rng(0)
    init = [numpy_helper.from_array(rng.normal(size=(8, 8)).astype(np.float32), n)
            for n in ("wq", "wk", "wv", "wo")]
    nodes = [helper.make_node("MatMul", ["x", "wq"], ["q"], name="q_proj"),
             helper.make_node("MatMul", ["x", "wk"], ["k"], name="k_proj"),
             helper.make_node("MatMul", ["x", "wv"], ["v"], name="v_proj"),
             helper.make_node("Transpose", ["k"], ["kt"], name="kt", perm=[0, 2, 1]),
             helper.make_node("MatMul", ["q", "kt"], ["scores"], name="qk"),
             helper.make_node("Softmax", ["scores"], ["p"], name="softmax", axis=-1),
             helper.make_node("MatMul", ["p", "v"], ["ctx"], name="pv"),
             helper.make_node("MatMul", ["ctx", "wo"], ["y"], name="out_proj")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 4, 8])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 4, 8])], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_connected_policy_leaves_products_of_activations_between_float_ops_in_float():
    ann = annotate(_attention(), Config())
    assert {"q_proj", "k_proj", "v_proj", "out_proj"} <= set(ann.nodes)
    assert not {"qk", "pv", "kt"} & set(ann.nodes)


def test_all_policy_quantizes_products_of_activations():
    ann = annotate(_attention(), Config(policy=QuantPolicy.ALL))
    assert {"qk", "pv"} <= set(ann.nodes)


def _conv_relu(read_again: bool) -> onnx.ModelProto:
    """x -> Conv -> Relu -> y, a graph output (read by a second Conv too if `read_again`)."""
    rng = np.random.default_rng(0)
    init = [numpy_helper.from_array(rng.normal(size=(4, 2, 3, 3)).astype(np.float32), "w"),
            numpy_helper.from_array(rng.normal(size=(4,)).astype(np.float32), "b")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"], name="relu")]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])]
    if read_again:
        init.append(numpy_helper.from_array(rng.normal(size=(4, 4, 1, 1)).astype(np.float32),
                                            "w2"))
        nodes.append(helper.make_node("Conv", ["y", "w2"], ["z"], name="conv2"))
        outputs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4, 8, 8]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 2, 8, 8])], outputs, init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_relu_writing_a_graph_output_is_absorbed_by_its_convolution() -> None:
    # the Conv's output is rounded either way: on the Relu's range, not on its own
    for read_again in (False, True):
        ann = annotate(_conv_relu(read_again), Config())
        assert ann.fused == {"relu": "c"}
        assert "y" in ann.activations and "c" not in ann.activations


def test_the_absorbed_relu_rounds_the_graph_output_on_its_own_range() -> None:
    model = _conv_relu(read_again=False)
    rng = np.random.default_rng(1)
    calib = {"x": rng.normal(size=(16, 2, 8, 8)).astype(np.float32)}
    x = rng.normal(size=(1, 2, 8, 8)).astype(np.float32)
    q = quantize(model, calib, Config(method=lowp.CalibMethod.MINMAX)).model
    assert "Relu" not in {n.op_type for n in q.graph.node}
    run = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    qrun = ort.InferenceSession(q.SerializeToString(), providers=["CPUExecutionProvider"])
    (ref,), (got,) = run.run(None, {"x": x}), qrun.run(None, {"x": x})
    sqnr = 10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((ref - got) ** 2.0))
    assert sqnr > 38.5     # 39.1 dB; the Conv's output on its own range, then Relu: 37.2
    ours = lowp.Session(q).run({"x": x})
    np.testing.assert_array_equal(np.asarray(next(iter(ours.values()))
                                             if isinstance(ours, dict) else ours[0]), got)
