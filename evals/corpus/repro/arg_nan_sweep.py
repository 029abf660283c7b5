"""ArgMax / ArgMin over NaNs: lowp (both backends) against ONNX Runtime, counted by path.

    python evals/corpus/repro/arg_nan_sweep.py [--sizes 70] [--repeat 2] [--seed 0]

Every reduced length 1..sizes, the reduced axis at each position of 1-D, 2-D and 3-D
shapes (other dimensions 1 to 3), float32 and float64, select_last_index 0 and 1,
ONNX Runtime with 1 and 2 intra-op threads; values -3..2 with 10-30% NaNs and some
±inf and -0. Prints the nodes whose indices are apart, split into ONNX Runtime's two
paths: a 1-D input without select_last_index (reduced whole by Eigen's maxCoeff /
minCoeff with index) and every other case (its scalar update loop).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "src"))

TYPES = {np.float32: TensorProto.FLOAT, np.float64: TensorProto.DOUBLE}


def _model(op: str, shape: list[int], dtype: type, axis: int, last: int) -> bytes:
    node = helper.make_node(op, ["x"], ["y"], axis=axis, keepdims=1, select_last_index=last)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TYPES[dtype], shape)],
        [helper.make_tensor_value_info("y", TensorProto.INT64, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]) \
        .SerializeToString()


def _values(rng: np.random.Generator, shape: list[int], dtype: type) -> np.ndarray:
    x = rng.integers(-3, 3, shape).astype(dtype)
    x[rng.random(shape) < rng.uniform(0.1, 0.3)] = np.nan
    x[rng.random(shape) < 0.05] = -0.0
    x[rng.random(shape) < 0.05] = np.inf
    x[rng.random(shape) < 0.05] = -np.inf
    return x


def main(argv: list[str] | None = None) -> int:
    import lowp

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, default=70)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    options = {}
    for threads in (1, 2):
        options[threads] = ort.SessionOptions()
        options[threads].intra_op_num_threads = threads
    counts: dict[str, list[int]] = {"1-D, select_last_index 0": [0, 0],
                                    "every other case": [0, 0]}
    for n in range(1, args.sizes + 1):
        for rank in (1, 2, 3):
            for pos in range(rank):
                shape = [int(rng.integers(1, 4)) for _ in range(rank)]
                shape[pos] = n
                for dtype in (np.float32, np.float64):
                    for op in ("ArgMax", "ArgMin"):
                        for last in (0, 1):
                            model = _model(op, shape, dtype, pos, last)
                            key = ("1-D, select_last_index 0" if rank == 1 and not last
                                   else "every other case")
                            sessions = {b: lowp.Session(model, backend=b)
                                        for b in ("reference", "native")}
                            for opts in options.values():
                                theirs = ort.InferenceSession(
                                    model, opts, providers=["CPUExecutionProvider"])
                                for _ in range(args.repeat):
                                    x = _values(rng, shape, dtype)
                                    want = theirs.run(None, {"x": x})[0]
                                    apart = any(
                                        not np.array_equal(s.run({"x": x})["y"], want)
                                        for s in sessions.values())
                                    counts[key][0] += int(apart)
                                    counts[key][1] += 1
    for key, (apart, total) in counts.items():
        print(f"{key}: {apart} of {total} nodes apart")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
