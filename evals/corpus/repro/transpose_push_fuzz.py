"""Where lowp's transpose optimizer mirror moves a Transpose differently from ONNX Runtime's
(repro item 185).

    python evals/corpus/repro/transpose_push_fuzz.py [graphs]

Random small graphs: x [1, 5, 3, 7] -> Transpose, then 2 to 7 nodes (Relu, Sigmoid, Add,
Mul, Sub of earlier values, Pow 2, Mul by a constant [7], ReduceMean over the last axis,
Transpose by the first permutation's inverse or another), some values also graph outputs.
For each graph with a ReduceMean: ONNX Runtime's optimized graph (ORT_ENABLE_BASIC) and
lowp's (`ort_fusions.apply`), and for every node whether its output is now written by a
Transpose (the Transpose moved after it). Printed: the graphs where the two differ.
"""

from __future__ import annotations

import random
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "src"))

from lowp.runtime import ort_fusions  # noqa: E402

PERMS = [[0, 2, 1, 3], [0, 3, 1, 2], [0, 2, 3, 1], [0, 1, 3, 2]]


def _inverse(p: list[int]) -> list[int]:
    return [p.index(k) for k in range(len(p))]


def build(rng: random.Random) -> onnx.ModelProto:
    first = rng.choice(PERMS)
    nodes = [helper.make_node("Transpose", ["x"], ["v0"], perm=first)]
    values = ["v0"]
    for k in range(1, rng.randint(3, 8)):
        out, a, b = f"v{k}", rng.choice(values), rng.choice(values)
        op = rng.choice(["Relu", "Sigmoid", "Add", "Mul", "Sub", "Pow", "MulC", "Mean", "T"])
        if op in ("Relu", "Sigmoid"):
            nodes.append(helper.make_node(op, [a], [out]))
        elif op in ("Add", "Mul", "Sub"):
            nodes.append(helper.make_node(op, [a, b], [out]))
        elif op == "Pow":
            nodes.append(helper.make_node("Pow", [a, "two"], [out]))
        elif op == "MulC":
            nodes.append(helper.make_node("Mul", [a, "w"], [out]))
        elif op == "Mean":
            nodes.append(helper.make_node("ReduceMean", [a], [out], axes=[-1]))
        else:
            perm = rng.choice([_inverse(first), rng.choice(PERMS)])
            nodes.append(helper.make_node("Transpose", [a], [out], perm=perm))
        values.append(out)
    read = {i for n in nodes for i in n.input}
    outputs = [v for v in values if v not in read]
    outputs += [v for v in values[1:] if v in read and rng.random() < 0.15]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5, 3, 7])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None)
         for o in dict.fromkeys(outputs)],
        [numpy_helper.from_array(np.array(2.0, np.float32), "two"),
         numpy_helper.from_array(np.linspace(0.5, 2.0, 7, dtype=np.float32), "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def moved(graph: onnx.GraphProto, model: onnx.ModelProto) -> dict[str, bool]:
    writer = {o: n for n in graph.node for o in n.output}
    return {n.output[0]: writer.get(n.output[0], n).op_type in ("Transpose", "Identity")
            for n in model.graph.node if n.op_type != "Transpose"}


def onnxruntime_graph(model: onnx.ModelProto, path: str) -> onnx.GraphProto:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.log_severity_level = 3
    options.optimized_model_filepath = path
    ort.InferenceSession(model.SerializeToString(), options,
                         providers=["CPUExecutionProvider"])
    return onnx.load(path).graph


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    apart = 0
    with tempfile.TemporaryDirectory() as work:
        for seed in range(count):
            model = build(random.Random(seed))
            if not any(n.op_type == "ReduceMean" for n in model.graph.node):
                continue
            try:
                theirs = moved(onnxruntime_graph(model, f"{work}/o.onnx"), model)
            except ort.capi.onnxruntime_pybind11_state.Fail:
                continue                    # shapes that do not broadcast
            ours = moved(ort_fusions.apply(model).graph, model)
            if theirs != ours:
                apart += 1
                print(f"seed {seed}: (ONNX Runtime, lowp) moved",
                      {k: (theirs[k], ours[k]) for k in theirs if theirs[k] != ours[k]})
                for n in model.graph.node:
                    perm = [list(a.ints) for a in n.attribute]
                    print(f"    {n.op_type}({', '.join(n.input)}) -> {n.output[0]} {perm or ''}")
                print("    outputs:", [o.name for o in model.graph.output])
    print(f"{apart} graphs apart")


if __name__ == "__main__":
    main()
