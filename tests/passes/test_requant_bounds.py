"""The quantizer keeps each layer's requantization scale inside its target's bounds."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

import lowp
from lowp.passes.verify import lint


def test_qnnpack_output_scale_is_raised_until_the_multiplier_is_below_one():
    # two channels carrying the same values and weights that nearly cancel: the output
    # range is a thousandth of what s_x * s_w alone would give, so M = s_x s_w / s_y > 1
    w = np.array([[[[1.0]], [[-0.999]]]], np.float32)
    graph = helper.make_graph(
        [helper.make_node("Concat", ["x", "x"], ["xx"], axis=1),
         helper.make_node("Conv", ["xx", "w"], ["y"])], "cancel",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 1, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 1, 5, 5])],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = np.random.default_rng(0).standard_normal((4, 1, 5, 5)).astype(np.float32)
    config = lowp.Config(target="qnnpack", policy=lowp.QuantPolicy.ALL)
    q = lowp.quantize_model(model, {"x": x}, config)          # verify passes
    assert not lint(q, config.resolved_target())
