"""Reproducer: ConvTranspose of random NaN payloads on lowp's Session (both backends, 1 and
2 threads) against ONNX Runtime, bit for bit (repro item 215).

    python evals/corpus/repro/conv_transpose_nan_payloads.py [--seed 0] [--cases 30]
                                                              [--nans x w b]

Each case: group 1 or 2, 1-3 input channels a group, 1-3 outputs a group, a square kernel
of 1-3, stride 1-2, an input of 1x1 to 5x5; NaNs of random payloads in 20% of x and w and
30% of the bias (those `--nans` names); the filter and bias initializers in every other
case, fed in the others. Printed: the cases whose output differs anywhere, per backend and
thread count.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "src"))


def nans(rng: np.random.Generator, n: int) -> np.ndarray:
    bits = (rng.integers(1, 1 << 22, n).astype(np.uint32) | np.uint32(0x7F800000)
            | (rng.integers(0, 2, n).astype(np.uint32) << 31)
            | (rng.integers(0, 2, n).astype(np.uint32) << 22))
    return bits.view(np.float32)


def main(argv: list[str] | None = None) -> int:
    import onnxruntime as ort

    from lowp import Session

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cases", type=int, default=30)
    p.add_argument("--nans", nargs="+", choices=("x", "w", "b"), default=["x", "w", "b"])
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    apart: dict[str, int] = {}
    for k in range(args.cases):
        g = int(rng.choice([1, 1, 2]))
        cin, cout = g * int(rng.integers(1, 4)), int(rng.integers(1, 4))
        size, stride, hw = (int(v) for v in (rng.integers(1, 4), rng.integers(1, 3),
                                             rng.integers(1, 6)))
        values = {"x": rng.standard_normal((1, cin, hw, hw)).astype(np.float32),
                  "w": rng.standard_normal((cin, cout, size, size)).astype(np.float32),
                  "b": rng.standard_normal(g * cout).astype(np.float32)}
        for name, share in (("x", 0.2), ("w", 0.2), ("b", 0.3)):
            if name in args.nans:
                hit = rng.random(values[name].shape) < share
                values[name][hit] = nans(rng, int(hit.sum()))
        constant = bool(k % 2)
        fed = ["x"] if constant else ["x", "w", "b"]
        graph = helper.make_graph(
            [helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], group=g,
                              strides=[stride, stride])], "g",
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(values[n].shape))
             for n in fed],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            [numpy_helper.from_array(values[n], n) for n in ("w", "b")] if constant else [])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        feeds = {n: values[n] for n in fed}
        for threads in (1, 2):
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            want = ort.InferenceSession(model.SerializeToString(), opts, providers=[
                "CPUExecutionProvider"]).run(None, feeds)[0].view(np.uint32)
            for backend in ("reference", "native"):
                got = Session(model, backend=backend, threads=threads).run(feeds)["y"]
                key = f"{backend}/{threads}"
                apart[key] = apart.get(key, 0) + int(
                    not np.array_equal(got.view(np.uint32), want))
    print(f"ConvTranspose seed {args.seed}, NaNs in {' '.join(args.nans)}: cases apart of "
          f"{args.cases}: {apart}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
