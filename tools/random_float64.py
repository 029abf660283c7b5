"""lowp's engine vs ONNX Runtime on random float64 inputs, for one-input double operators.

    python tools/random_float64.py Exp Log Tanh Sigmoid Sin Cos Sign Shrink
        [--count 10000000] [--block 1000003] [--threads 1] [--kind bits|normal|wide]
        [--seed 0]

Each operator is a one-node double model over a vector of `--block` elements (odd, so that
the last element is Eigen's scalar tail), fed `--count` values in all: `bits` are uniformly
random 64-bit patterns (every sign and exponent, subnormals, infinities and NaN payloads in
proportion: about 1 in 2048 is a NaN or infinity), `normal` N(0, 16) values, `wide`
values 10^U(-3, 3) of either sign (the polynomials' ranges, the reductions' thresholds).
lowp (`lowp.Session`, default backend) and ONNX Runtime run at `--threads` intra-op threads;
the outputs are compared bit for bit (NaN payloads, the sign of zero). Prints per operator
the values compared, how many differ and up to three of them (input, ONNX Runtime's bits,
lowp's bits); exits 1 if any differs (docs/operators.md (O104)).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

import lowp


def _model(op: str) -> bytes:
    node = helper.make_node(op, ["x"], ["y"])
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["n"])],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["n"])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()


def _values(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "bits":
        return rng.integers(0, 2**64, n, dtype=np.uint64).view(np.float64)
    if kind == "normal":
        return rng.standard_normal(n) * 4
    return 10.0 ** rng.uniform(-3, 3, n) * rng.choice([-1.0, 1.0], n)


def sweep(op: str, count: int, block: int, threads: int, kind: str, seed: int) -> int:
    model = _model(op)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    reference = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    session = lowp.Session(model, threads=threads)
    rng = np.random.default_rng(seed)
    done = apart = 0
    shown: list[str] = []
    while done < count:
        x = _values(kind, min(block, count - done), rng)
        expected = np.asarray(reference.run(None, {"x": x})[0])
        with np.errstate(all="ignore"):
            got = session.run({"x": x})["y"]
        differ = np.flatnonzero(got.view(np.uint64) != expected.view(np.uint64))
        apart += differ.size
        for i in differ[:3 - len(shown)]:
            shown.append(f"{x.view(np.uint64)[i]:#018x} ort {expected.view(np.uint64)[i]:#018x}"
                         f" lowp {got.view(np.uint64)[i]:#018x}")
        done += x.size
    print(f"{op} {kind} threads={threads}: {done:,} values, {apart:,} differ"
          + ("".join(f"\n    {s}" for s in shown)), flush=True)
    return apart


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ops", nargs="+")
    parser.add_argument("--count", type=int, default=10_000_000)
    parser.add_argument("--block", type=int, default=1_000_003)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--kind", choices=["bits", "normal", "wide"], default="bits")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    total = sum(sweep(op, args.count, args.block, args.threads, args.kind, args.seed)
                for op in args.ops)
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
