"""Reproducer: float MatMuls of fed A and B with NaNs of random payloads and infinities,
through lowp's native SGEMM with each instruction-set path forced, against ONNX Runtime bit
for bit (repro item 295, docs/operators.md (O349)).

    python evals/corpus/repro/sgemm_nan_paths.py [--seed 1] [--count 300]

Each product: M 2-39, N 2-79, K one of 1, 2, 5, 8, 17, 64, 300, 600 (two and three K
blocks), a share of 1%, 5% or 30% of A and B NaNs (payloads, signs, quiet or signalling)
and half as many +inf; one thread. Printed: per path the products apart.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from onnx import helper

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "src"))


def nan_laden(rng: np.random.Generator, shape: tuple[int, int], share: float) -> np.ndarray:
    x = rng.standard_normal(shape).astype(np.float32)
    u = rng.random(shape)
    bits = ((np.uint32(0x7F800001) + rng.integers(0, 0x3FFFFF, shape).astype(np.uint32))
            | (rng.integers(0, 2, shape) << 31).astype(np.uint32))
    x[u < share] = bits.view(np.float32)[u < share]
    x[(u > share) & (u < 1.5 * share)] = np.inf
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=300)
    args = parser.parse_args()

    import onnxruntime as ort

    from lowp.runtime import native_backend as nb
    from lowp.runtime import native_float

    rng = np.random.default_rng(args.seed)
    apart = {p: 0 for p in nb.available_paths()}
    for _ in range(args.count):
        m, n = int(rng.integers(2, 40)), int(rng.integers(2, 80))
        k = int(rng.choice([1, 2, 5, 8, 17, 64, 300, 600]))
        share = float(rng.choice([0.01, 0.05, 0.3]))
        a, b = nan_laden(rng, (m, k), share), nan_laden(rng, (k, n), share)
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["a", "b"], ["y"])], "g",
            [helper.make_tensor_value_info("a", 1, [m, k]),
             helper.make_tensor_value_info("b", 1, [k, n])],
            [helper.make_tensor_value_info("y", 1, None)])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        theirs = ort.InferenceSession(model.SerializeToString(), options,
                                      providers=["CPUExecutionProvider"]
                                      ).run(None, {"a": a, "b": b})[0].view(np.uint32)
        for path in apart:
            with nb.use_path(path):
                ours = native_float.matmul(a, b)
            assert ours is not None
            apart[path] += int((ours.view(np.uint32) != theirs).any())
    print(f"seed {args.seed}: products apart of {args.count}, per path: {apart}")


if __name__ == "__main__":
    main()
