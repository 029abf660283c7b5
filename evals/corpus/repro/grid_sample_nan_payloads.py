"""Reproducer: GridSample's 3-D linear and 2-D cubic sums with NaNs of distinct payloads and
signs in the input, on lowp's Session (both backends) against ONNX Runtime, bit for bit
(repro item 298).

    python evals/corpus/repro/grid_sample_nan_payloads.py [--seeds 30]

Per seed, dtype (float32, float64) and mode: input (2, 3, 4, 4[, 4]) with a third NaNs and
7% +inf, a grid of 5 x 6 (x 3) points (on the pixels for odd seeds: zero weights, inf * 0),
padding zeros / border / reflection by seed, align_corners on odd seeds.
Printed: the runs apart, then their count.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "src"))

from tests.runtime.test_grid_sample import payload_nans  # noqa: E402


def model(x: np.ndarray, grid: np.ndarray, **attrs: object) -> bytes:
    et = TensorProto.FLOAT if x.dtype == np.float32 else TensorProto.DOUBLE
    graph = helper.make_graph(
        [helper.make_node("GridSample", ["x", "g"], ["y"], **attrs)], "g",
        [helper.make_tensor_value_info("x", et, list(x.shape)),
         helper.make_tensor_value_info("g", et, list(grid.shape))],
        [helper.make_tensor_value_info("y", et, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]
                             ).SerializeToString()


def main(argv: list[str] | None = None) -> int:
    import onnxruntime as ort

    from lowp import Session

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=30)
    args = p.parse_args(argv)
    runs = apart = 0
    for dtype in (np.float32, np.float64):
        for rank, mode in ((3, "linear"), (2, "cubic")):
            for seed in range(args.seeds):
                rng = np.random.default_rng(seed)
                x = payload_nans(rng, (2, 3, *([4] * rank)), dtype)
                grid = rng.uniform(-1.2, 1.2, (2, 5, 6, *([3] if rank == 3 else []), rank)
                                   ).astype(dtype)
                if seed % 2:
                    grid = np.round(grid * 4) / 4
                data = model(x, grid, mode=mode, padding_mode=["zeros", "border",
                                                               "reflection"][seed % 3],
                             align_corners=seed % 2)
                feeds = {"x": x, "g": grid}
                want = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(
                    None, feeds)[0]
                runs += 1
                for backend in ("reference", "native"):
                    got = Session(data, backend=backend).run(feeds)["y"]
                    if got.tobytes() != want.tobytes():
                        apart += 1
                        print(f"{np.dtype(dtype).name} {rank}-D {mode} seed {seed} {backend}")
                        break
    print(f"runs apart: {apart} of {runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
