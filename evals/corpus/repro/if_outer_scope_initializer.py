"""Reproducer: an initializer read only by a top-level Shape and from inside an If branch is
dropped by lowp's quantizer, so the QDQ model fails the ONNX checker (silero_vad_op15).

    python evals/corpus/repro/if_outer_scope_initializer.py

Silero VAD (op15 export) reads its recurrent `state` at top level through Shape and inside the
If's branches through Gather (an outer-scope reference). With `state` an initializer, lowp
folds Shape(state) to a constant and then removes `state` as unused, missing the references
from the subgraph: "Nodes in a graph must be topologically sorted, however input 'state' of
node ... Gather". Expected: the QDQ model keeps `state` (or the If stays valid).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def build() -> onnx.ModelProto:
    state = numpy_helper.from_array(np.full((2, 1, 4), 0.5, np.float32), "state")
    w = numpy_helper.from_array(
        np.random.default_rng(0).standard_normal((4, 4)).astype(np.float32), "w")
    zero = numpy_helper.from_array(np.array(0, np.int64), "zero")
    branch_out = helper.make_tensor_value_info("picked", TensorProto.FLOAT, [1, 4])
    then_g = helper.make_graph([helper.make_node("Gather", ["state", "zero"], ["picked"],
                                                 axis=0)], "then", [], [branch_out])
    else_g = helper.make_graph([helper.make_node("Gather", ["state", "zero"], ["picked"],
                                                 axis=0)], "else", [], [branch_out])
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"]),
        helper.make_node("Shape", ["state"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["two"], axis=0),
        helper.make_node("Cast", ["two"], ["two_f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["h"], ["s"], keepdims=0),
        helper.make_node("Less", ["s", "two_f"], ["cond"]),
        helper.make_node("If", ["cond"], ["picked"], then_branch=then_g, else_branch=else_g),
        helper.make_node("Add", ["h", "picked"], ["y0"]),
        helper.make_node("MatMul", ["y0", "w"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "outer_scope", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])], [state, w, zero])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    onnx.checker.check_model(model, full_check=True)
    return model


def main() -> int:
    import lowp

    model = build()
    calib = {"x": np.random.default_rng(1).standard_normal((8, 4)).astype(np.float32)}
    try:
        lowp.quantize_model(model, calib)
    except Exception as e:
        print(f"FAIL {type(e).__name__}: {str(e).splitlines()[0]}")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
