"""`--sixteen-bit NAME`: a node of the model named like an operator type (skl2onnx names its
nodes 'MatMul', 'MatMul1', ...) is that node, so the fallback record's flags give the same
model again; a name that is no node is an operator type."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from lowp.cli import EXIT_OK, main


def _two_matmuls(path) -> None:
    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w0"], ["h"], name="MatMul"),
         helper.make_node("Relu", ["h"], ["r"], name="Relu"),
         helper.make_node("MatMul", ["r", "w1"], ["y"], name="MatMul1")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
        [numpy_helper.from_array(rng.uniform(-1, 1, (8, 8)).astype(np.float32), "w0"),
         numpy_helper.from_array(rng.uniform(-1, 1, (8, 4)).astype(np.float32), "w1")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def _wide_weights(path) -> set[str]:
    """The weights stored in 16 bits."""
    return {i.name for i in onnx.load(str(path)).graph.initializer
            if i.data_type == TensorProto.INT16 and i.name.endswith("_quantized")}


def test_a_node_named_like_its_type_is_the_node(tmp_path):
    model, calib = tmp_path / "m.onnx", tmp_path / "c.npz"
    _two_matmuls(model)
    np.savez(calib, x=np.random.default_rng(1).normal(size=(16, 8)).astype(np.float32))

    def run(out: str, *names: str) -> set[str]:
        assert main(["quantize", str(model), "--calib", str(calib), "-o", str(tmp_path / out),
                     "--quiet", "--no-report", "--no-speed", "--method", "minmax",
                     "--sixteen-bit", *names]) == EXIT_OK
        return _wide_weights(tmp_path / out)

    node = run("node.onnx", "MatMul")
    assert len(node) == 1 and next(iter(node)).startswith("w0")
    assert len(run("both.onnx", "MatMul", "MatMul1")) == 2
    assert len(run("relu.onnx", "Relu")) == 0          # the Relu node: no weight widened
