"""Softmax, LogSoftmax and Hardmax before opset 13 (over the input coerced to 2-D at the
axis) of an empty batch: empty outputs, as ONNX Runtime gives (evals/corpus/repro/README.md,
item 192)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tests.runtime.ort_agreement import assert_outputs_equal_onnxruntime_on_every_path


def _model(op: str, axis: int, opset: int) -> onnx.ModelProto:
    node = helper.make_node(op, ["x"], ["y"], axis=axis)
    graph = helper.make_graph(
        [node], "coerced", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                          ["N", 2, 3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 3, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 6
    return model


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("axis", [1, 2, -1])
@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax", "Hardmax"])
def test_coerced_softmax_of_an_empty_batch_is_empty(op: str, axis: int, threads: int) -> None:
    for batch in (0, 2):
        x = np.random.default_rng(batch).standard_normal((batch, 2, 3, 4)).astype(np.float32)
        assert_outputs_equal_onnxruntime_on_every_path(_model(op, axis, 11), {"x": x},
                                                       threads)
