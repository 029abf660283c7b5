"""Float32 Einsum nodes alone: lowp / ONNX Runtime, runs alternating, one process.

    python bench/einsum.py [--rounds 200] [--threads 1 2]

One-node models of DeepFilterNet3's grouped linear layers (btgi,gih->btgh, weights
constant) and a batched product; for each, the medians of the process CPU time and of the
wall time of `Session.run` (lowp) and `InferenceSession.run` (ONNX Runtime), timed in turn
round after round (bench._common.wall_and_cpu), their ratios, and whether the outputs are
identical. On a shared machine only the ratios mean something.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import wall_and_cpu  # noqa: E402

import lowp  # noqa: E402

# (equation, input shape, constant weight shape)
CASES = (
    ("btgi,gih->btgh", (1, 40, 8, 64), (8, 64, 32)),      # dfn3 df_dec linear_in
    ("btgi,gih->btgh", (1, 40, 16, 32), (16, 32, 16)),    # dfn3 df_dec skip
    ("btgi,gih->btgh", (1, 40, 16, 16), (16, 16, 60)),    # dfn3 df_dec output
    ("bij,bjk->bik", (8, 40, 64), (8, 64, 32)),
)


def one_node(equation: str, x_shape: tuple[int, ...], w: np.ndarray) -> bytes:
    out = np.einsum(equation, np.zeros(x_shape, np.float32), w).shape
    graph = helper.make_graph(
        [helper.make_node("Einsum", ["x", "w"], ["y"], equation=equation)], "einsum",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return onnx.shape_inference.infer_shapes(model).SerializeToString()


def measure(equation: str, x_shape: tuple[int, ...], w: np.ndarray, x: np.ndarray,
            threads: int, rounds: int) -> str:
    """One case's line: CPU medians, the CPU and wall ratios, and whether the outputs agree."""
    model = one_node(equation, x_shape, w)
    feeds = {"x": x}
    ours = lowp.Session(model, threads=threads)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    theirs = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    wall, cpu, outs = wall_and_cpu(
        [lambda: ours.run(feeds)["y"], lambda: theirs.run(None, feeds)[0]], rounds)
    ms = [1e3 * statistics.median(c) for c in cpu]
    return (f"{equation:16s} {str(x_shape):16s} {threads} thr  CPU lowp {ms[0]:.4f} ms"
            f"  ORT {ms[1]:.4f} ms  CPU {ms[0] / ms[1]:.2f}  wall "
            f"{statistics.median(wall[0]) / statistics.median(wall[1]):.2f}"
            f"  identical {np.array_equal(outs[0], outs[1])}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    for threads in args.threads:
        for equation, x_shape, w_shape in CASES:
            w = rng.standard_normal(w_shape).astype(np.float32)
            x = rng.standard_normal(x_shape).astype(np.float32)
            print(measure(equation, x_shape, w, x, threads, args.rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
