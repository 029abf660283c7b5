"""Reproducer: lowp's Session refuses a model that ONNX Runtime runs, because an If branch reads
an outer-scope tensor that a node listed after the If produces (silero_vad_op15, ONNX
Runtime's QDQ file).

    python evals/corpus/repro/outer_scope_order.py

`onnxruntime.quantization.quantize_static` reorders the top-level nodes of Silero VAD's op15
export without counting the If branches' outer-scope reads, so the If comes before the node
producing '/model/decoder/If_output_0' that its branches read. ONNX Runtime sorts the graph
itself and runs it; `onnx.checker` rejects it ("Nodes in a graph must be topologically
sorted"), and so does lowp.Session, which checks before anything else. Expected: lowp sorts
the top-level nodes (branch outer-scope reads included) before checking, as ONNX Runtime
does, so that it runs this QDQ file from another tool.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper


def build() -> onnx.ModelProto:
    out = helper.make_tensor_value_info("picked", TensorProto.FLOAT, [1, 4])
    then_g = helper.make_graph([helper.make_node("Relu", ["late"], ["picked"])], "then", [],
                               [out])
    else_g = helper.make_graph([helper.make_node("Neg", ["late"], ["picked"])], "else", [],
                               [out])
    nodes = [
        helper.make_node("If", ["cond"], ["picked"], then_branch=then_g, else_branch=else_g),
        helper.make_node("Abs", ["x"], ["late"]),           # listed after its reader
        helper.make_node("Add", ["picked", "x"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "outer_scope_order",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
         helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])


def main() -> int:
    import onnxruntime as ort

    import lowp

    model = build()
    feeds = {"x": np.array([[1.0, -2.0, 3.0, -4.0]], np.float32), "cond": np.array(True)}
    y = ort.InferenceSession(model.SerializeToString(),
                             providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    print(f"onnxruntime: {y.ravel().tolist()}")
    try:
        got = lowp.Session(model).run(feeds)["y"]
    except Exception as e:
        print(f"lowp: {type(e).__name__}: {str(e).splitlines()[0]}")
        return 1
    print(f"lowp: {got.ravel().tolist()}")
    return 0 if np.array_equal(got, y) else 1


if __name__ == "__main__":
    raise SystemExit(main())
