"""The summary compares lowp's engine with ONNX Runtime at one intra-op thread, the
configuration lowp reproduces: with two, MLAS cuts a float product between the threads and
ONNX Runtime's own result changes, which the summary must not report as a disagreement."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from lowp.passes.calibrate import float_session
from lowp.report import summary


def _qdq_then_float_product() -> onnx.ModelProto:
    """a (quantized, 16 x 144) times b (a float input, 144 x 144): a float MatMul whose B is
    not a constant, so MLAS packs it per call in blocks that depend on each thread's N."""
    inits = [numpy_helper.from_array(np.float32(0.02), "s"),
             numpy_helper.from_array(np.uint8(128), "z")]
    nodes = [helper.make_node("QuantizeLinear", ["a", "s", "z"], ["aq"]),
             helper.make_node("DequantizeLinear", ["aq", "s", "z"], ["ad"]),
             helper.make_node("MatMul", ["ad", "b"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [16, 144]),
                     helper.make_tensor_value_info("b", TensorProto.FLOAT, [144, 144])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [16, 144])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model


def test_summary_agrees_where_onnxruntime_threads_disagree() -> None:
    model = _qdq_then_float_product()
    rng = np.random.default_rng(0)
    feed = {"a": rng.uniform(-2, 2, (16, 144)).astype(np.float32),
            "b": rng.standard_normal((144, 144)).astype(np.float32)}
    one, two = (float_session(model, threads=t).run(None, feed)[0] for t in (1, 2))
    assert np.count_nonzero(one != two), "ONNX Runtime's two-thread product no longer differs"
    result = summary.summarize(model, model, feed)
    assert [(a.output, a.identical_share) for a in result.agreement] == [("y", 1.0)]
