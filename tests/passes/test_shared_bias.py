"""A float bias shared by two convolutions becomes one int32 bias per convolution."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import lowp


def test_siamese_branches_get_their_own_bias():
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b")]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["a", "w", "b"], ["ya"], pads=[1, 1, 1, 1]),
         helper.make_node("Conv", ["b_in", "w", "b"], ["yb"], pads=[1, 1, 1, 1])],
        "siamese", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3, 6, 6]),
                    helper.make_tensor_value_info("b_in", TensorProto.FLOAT, [2, 3, 6, 6])],
        [helper.make_tensor_value_info("ya", TensorProto.FLOAT, [2, 4, 6, 6]),
         helper.make_tensor_value_info("yb", TensorProto.FLOAT, [2, 4, 6, 6])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    feeds = {"a": rng.standard_normal((2, 3, 6, 6)).astype(np.float32),
             "b_in": 7 * rng.standard_normal((2, 3, 6, 6)).astype(np.float32)}
    q = lowp.quantize_model(model, feeds)
    consts = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    producer = {o: n for n in q.graph.node for o in n.output}
    convs = [n for n in q.graph.node if n.op_type == "Conv"]
    assert len({producer[c.input[2]].input[0] for c in convs}) == 2     # two int32 biases
    for c in convs:
        x_dq, w_dq, b_dq = (producer[i] for i in c.input)
        want = (np.float32(consts[x_dq.input[1]]) * consts[w_dq.input[1]]).astype(np.float32)
        np.testing.assert_array_equal(consts[b_dq.input[1]], want)
    sess = ort.InferenceSession(q.SerializeToString(), providers=["CPUExecutionProvider"])
    got = lowp.Session(q).run(feeds)
    for name, value in zip(["ya", "yb"], sess.run(["ya", "yb"], feeds), strict=True):
        np.testing.assert_array_equal(got[name], value)
    assert onnx.checker.check_model(q) is None
