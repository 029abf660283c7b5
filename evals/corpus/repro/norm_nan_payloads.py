"""Reproducer: InstanceNormalization and BatchNormalization of random NaN payloads on lowp's
Session (both backends, 1 and 2 threads) against ONNX Runtime, bit for bit (repro item 200).

    python evals/corpus/repro/norm_nan_payloads.py [--seeds 0 1 2 3] [--cases 40]

Each case: a random shape (1-2 images, 1-19 channels, one or two spatial axes of 1-8, or
for InstanceNormalization 1-3 channels and 1-39 values), x with 0-30% NaNs of random
payloads, signs, quiet or signalling, the parameters with 30-40% (BatchNormalization's as
initializers in every other case, fed in the others). Printed per operator and seed: the
cases whose output differs anywhere, per backend and thread count.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "src"))


def nans(rng: np.random.Generator, n: int) -> np.ndarray:
    bits = (rng.integers(1, 1 << 22, n).astype(np.uint32) | np.uint32(0x7F800000)
            | (rng.integers(0, 2, n).astype(np.uint32) << 31)
            | (rng.integers(0, 2, n).astype(np.uint32) << 22))
    return bits.view(np.float32)


def with_nans(rng: np.random.Generator, a: np.ndarray, share: float) -> np.ndarray:
    hit = rng.random(a.shape) < share
    a[hit] = nans(rng, int(hit.sum()))
    return a


def case(op: str, rng: np.random.Generator, k: int
         ) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """One random model and its feeds."""
    if op == "InstanceNormalization":
        shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(1, 40)))
        names, shares, constant = ["scale", "bias"], [0.4, 0.4], False
    else:
        spatial = [int(v) for v in rng.integers(1, 9, int(rng.integers(1, 3)))]
        shape = (int(rng.integers(1, 3)), int(rng.integers(1, 20)), *spatial)
        names, shares, constant = ["scale", "bias", "mean", "var"], [0.3] * 4, bool(k % 2)
    c = shape[1]
    x = with_nans(rng, rng.standard_normal(shape).astype(np.float32),
                  float(rng.choice([0.0, 0.05, 0.3])))
    params = {n: with_nans(rng, (rng.random(c) + 0.5 if n == "var" else
                                 rng.standard_normal(c)).astype(np.float32), s)
              for n, s in zip(names, shares, strict=True)}
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))]
    if not constant:
        inputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, [c]) for n in names]
    graph = helper.make_graph(
        [helper.make_node(op, ["x", *names], ["y"])], "g", inputs,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))],
        [numpy_helper.from_array(v, n) for n, v in params.items()] if constant else [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    return model, {"x": x} if constant else {"x": x, **params}


def main(argv: list[str] | None = None) -> int:
    import onnxruntime as ort

    from lowp import Session

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    p.add_argument("--cases", type=int, default=40)
    args = p.parse_args(argv)
    for op in ("InstanceNormalization", "BatchNormalization"):
        for seed in args.seeds:
            rng = np.random.default_rng(seed)
            apart: dict[str, int] = {}
            for k in range(args.cases):
                model, feeds = case(op, rng, k)
                data = model.SerializeToString()
                for threads in (1, 2):
                    opts = ort.SessionOptions()
                    opts.intra_op_num_threads = threads
                    want = ort.InferenceSession(data, opts, providers=[
                        "CPUExecutionProvider"]).run(None, feeds)[0].view(np.uint32)
                    for backend in ("reference", "native"):
                        got = Session(model, backend=backend, threads=threads).run(feeds)["y"]
                        key = f"{backend}/{threads}"
                        apart[key] = apart.get(key, 0) + int(
                            not np.array_equal(got.view(np.uint32), want))
            print(f"{op} seed {seed}: cases apart of {args.cases}: {apart}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
