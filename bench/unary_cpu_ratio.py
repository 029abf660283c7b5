"""lowp's CPU time over ONNX Runtime's for one-input operators on one vector, timed
alternately in one process.

    python bench/unary_cpu_ratio.py Exp Log Sin [--dtype float64] [--n 100003]
        [--threads 1] [--rounds 5] [--runs 5]

Each operator is a one-node model over a vector of `--n` N(0, 16) values (their absolute
values for Log). A round runs ONNX Runtime `--runs` times, then lowp `--runs` times, and
takes the ratio of the two process CPU times; prints the range over `--rounds` rounds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

import lowp

_TYPES = {"float32": (np.float32, TensorProto.FLOAT), "float64": (np.float64, TensorProto.DOUBLE)}


def _model(op: str, elem_type: int) -> bytes:
    node = helper.make_node(op, ["x"], ["y"])
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", elem_type, ["n"])],
        [helper.make_tensor_value_info("y", elem_type, ["n"])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ops", nargs="+")
    parser.add_argument("--dtype", choices=sorted(_TYPES), default="float64")
    parser.add_argument("--n", type=int, default=100_003)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    dtype, elem_type = _TYPES[args.dtype]
    values = (np.random.default_rng(0).standard_normal(args.n) * 4).astype(dtype)
    for op in args.ops:
        x = np.abs(values) if op == "Log" else values
        model = _model(op, elem_type)
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        theirs = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        ours = lowp.Session(model, threads=args.threads)
        ratios = []
        for _ in range(args.rounds):
            t0 = time.process_time()
            for _ in range(args.runs):
                theirs.run(None, {"x": x})
            t1 = time.process_time()
            with np.errstate(all="ignore"):
                for _ in range(args.runs):
                    ours.run({"x": x})
            t2 = time.process_time()
            ratios.append((t2 - t1) / max(t1 - t0, 1e-9))
        print(f"{op} {args.dtype} n={args.n} threads={args.threads}: lowp / ONNX Runtime CPU "
              f"{min(ratios):.2f}-{max(ratios):.2f}", flush=True)


if __name__ == "__main__":
    main()
