"""Annotate: which nodes the default policy quantizes."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from lowp.config import Config, QuantPolicy
from lowp.passes.annotate import annotate


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
