"""Shapes after a fused convolution (docs/operators.md (O167)): onnx's shape inference does
not know com.microsoft FusedConv, which ONNX Runtime's Conv + Add fusion (and lowp's copy of
it) makes, so every value after one had no inferred shape, and a GlobalAveragePool of a
later Conv whose input channels only shape inference knows took MLAS's NCHW order where
ONNX Runtime runs its NCHWc kernel (ppocrv3_det_en: evals/corpus/repro/README.md, 146)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from lowp.ir.graph import Graph
from lowp.runtime import Session

from .ort_agreement import onnxruntime_run


def _model(channels: int = 16, out_channels: int = 32, size: int = 10) -> onnx.ModelProto:
    """x -> Conv a, Conv b -> Add (ONNX Runtime: FusedConv with a sum input) -> Div by a
    constant (not channel-keeping for lowp's weight-based count) -> 1x1 Conv ->
    GlobalAveragePool -> y."""
    rng = np.random.default_rng(0)

    def weight(name: str, o: int, i: int) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.standard_normal((o, i, 1, 1)).astype(np.float32),
                                       name)

    inits = [weight("wa", channels, channels), weight("wb", channels, channels),
             weight("wc", out_channels, channels),
             numpy_helper.from_array(np.array(6.0, np.float32), "six")]
    nodes = [helper.make_node("Conv", ["x", "wa"], ["a"]),
             helper.make_node("Conv", ["x", "wb"], ["b"]),
             helper.make_node("Add", ["b", "a"], ["s"]),
             helper.make_node("Div", ["s", "six"], ["d"]),
             helper.make_node("Conv", ["d", "wc"], ["c"]),
             helper.make_node("GlobalAveragePool", ["c"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                   [1, channels, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_values_after_a_fused_conv_have_shapes() -> None:
    model = _model()
    fused = onnx.ModelProto()
    fused.CopyFrom(model)
    add = fused.graph.node[2]
    add.CopyFrom(helper.make_node("FusedConv", ["x", "wb", "", "a"], ["s"],
                                  domain="com.microsoft", activation="Relu"))
    assert Graph(fused).inferred_shape("c") == [1, 32, 10, 10]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("backend", ["reference", "native"])
def test_pool_after_a_fused_conv_equals_onnxruntime(backend: str, threads: int) -> None:
    model = _model()
    x = np.random.default_rng(1).standard_normal((1, 16, 10, 10)).astype(np.float32)
    want = onnxruntime_run(model, {"x": x}, threads)[0]
    session = Session(model, backend=backend, threads=threads)
    for _ in range(2):                          # recorded, then replayed
        np.testing.assert_array_equal(session.run({"x": x})["y"], want)
