"""Reproducer: float Convs that ONNX Runtime runs on MLAS's NCHWc, pointwise and NCHW-input
kernels, with NaNs of random payloads, on lowp's Session (both backends, 1 and 2 threads)
against ONNX Runtime, bit for bit (repro item 282).

    python evals/corpus/repro/conv_nan_payloads.py [--seed 5] [--trials 3] [--share 0.02]

The five convolutions of the item (32 -> 32 3x3, 16 -> 48 3x3, 64 -> 16 1x1 pointwise,
3 -> 16 3x3 NCHW input, 40 -> 32 3x3 with a partial block of channels), each alone, with a
Relu after it and as the first input of an Add of the same Conv of a second input (ONNX
Runtime's NCHWc Sum); `--share` of x (and x2) NaNs of random payloads and signs, 1% +inf.
Printed: per case the outputs apart; the count of (case, backend, threads) runs apart.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from onnx import helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "src"))

CONVS = [(32, 32, 9, 13, 3), (16, 48, 7, 20, 3), (64, 16, 6, 6, 1), (3, 16, 10, 10, 3),
         (40, 32, 8, 9, 3)]


def nan_laden(rng: np.random.Generator, shape: tuple[int, ...], share: float) -> np.ndarray:
    x = rng.standard_normal(shape).astype(np.float32)
    u = rng.random(shape)
    hit = u < share
    x.view(np.uint32)[hit] = ((0x7F800001 + rng.integers(0, 0x3FFFFF, hit.sum()))
                              | np.where(rng.random(hit.sum()) < 0.5, 0x80000000, 0)
                              ).astype(np.uint32)
    x[(u >= share) & (u < share + 0.01)] = np.inf
    return x


def model(w: np.ndarray, b: np.ndarray, shape: tuple[int, ...], tail: str) -> bytes:
    k = w.shape[2]
    attrs = {"kernel_shape": [k, k], "pads": [k // 2] * 4}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y" if not tail else "c"], **attrs)]
    inputs = [helper.make_tensor_value_info("x", 1, list(shape))]
    if tail == "relu":
        nodes.append(helper.make_node("Relu", ["c"], ["y"]))
    elif tail == "sum":
        nodes += [helper.make_node("Conv", ["x2", "w", "b"], ["s"], **attrs),
                  helper.make_node("Add", ["c", "s"], ["y"])]
        inputs.append(helper.make_tensor_value_info("x2", 1, list(shape)))
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", 1, None)],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


def main(argv: list[str] | None = None) -> int:
    import onnxruntime as ort

    from lowp import Session

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--share", type=float, default=0.02)
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    runs = apart = 0
    for c, m, h, wd, k in CONVS:
        for trial in range(args.trials):
            for tail in ("", "relu", "sum"):
                x = nan_laden(rng, (2, c, h, wd), args.share)
                feeds = {"x": x} if tail != "sum" else {
                    "x": x, "x2": nan_laden(rng, x.shape, args.share)}
                w = rng.standard_normal((m, c, k, k)).astype(np.float32)
                b = rng.standard_normal(m).astype(np.float32)
                data = model(w, b, x.shape, tail)
                for threads in (1, 2):
                    opts = ort.SessionOptions()
                    opts.intra_op_num_threads = threads
                    want = ort.InferenceSession(data, opts, providers=[
                        "CPUExecutionProvider"]).run(None, feeds)[0].view(np.uint32)
                    for backend in ("reference", "native"):
                        got = Session(data, backend=backend, threads=threads).run(feeds)["y"]
                        n = int((got.view(np.uint32) != want).sum())
                        runs += 1
                        apart += n > 0
                        if n:
                            print(f"{c}->{m} {k}x{k} {tail or 'conv'} trial {trial} "
                                  f"{backend}/{threads}: {n} of {want.size} apart")
    print(f"runs apart: {apart} of {runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
