"""run_exposed: ONNX Runtime's outputs read in place equal session.run's copies (values,
dtypes, shapes including scalars and empty tensors), and stay valid after the run."""

from __future__ import annotations

import gc

import numpy as np
import onnx
from onnx import TensorProto, helper

from lowp.passes.calibrate import float_session, run_exposed


def _model() -> onnx.ModelProto:
    nodes = [helper.make_node("Add", ["x", "one"], ["y"]),
             helper.make_node("ReduceSum", ["y"], ["s"], keepdims=0),
             helper.make_node("Cast", ["y"], ["i"], to=TensorProto.INT64),
             helper.make_node("Greater", ["y", "one"], ["b"]),
             helper.make_node("Slice", ["y", "zero", "zero"], ["e"]),
             helper.make_node("Cast", ["y"], ["h"], to=TensorProto.FLOAT16)]
    inits = [helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
             helper.make_tensor("zero", TensorProto.INT64, [1], [0])]
    outs = [helper.make_tensor_value_info(n, t, None) for n, t in
            [("y", TensorProto.FLOAT), ("s", TensorProto.FLOAT), ("i", TensorProto.INT64),
             ("b", TensorProto.BOOL), ("e", TensorProto.FLOAT), ("h", TensorProto.FLOAT16)]]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [None, 3])], outs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_in_place_outputs_equal_copies() -> None:
    session = float_session(_model(), mem_pattern=False)
    names = ["y", "s", "i", "b", "e", "h"]
    x = np.arange(12, dtype=np.float32).reshape(4, 3)[:, ::-1]    # not contiguous
    copies = session.run(names, {"x": x})
    views = run_exposed(session, names, {"x": x})
    del session
    gc.collect()
    run_exposed(float_session(_model()), names, {"x": x + 5})       # reuse freed memory
    for name, c, v in zip(names, copies, views, strict=True):
        assert v.dtype == c.dtype and v.shape == c.shape, name
        assert np.array_equal(v, c), name
    assert views[1].shape == () and views[4].shape == (0, 3)
