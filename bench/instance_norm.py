"""Float32 InstanceNormalization: the native kernel, the numpy reference and ONNX Runtime.

    python bench/instance_norm.py [--shapes 1x32x65536 1x32x4096 ...] [--threads 1 2]
                                  [--rounds 15]

For each shape (N x C x spatial...) and thread count, after warm-up, `--rounds` rounds run
lowp's native kernel (`native_float.instance_norm`), the numpy reference
(`float_nn.InstanceNormalization` with the native kernels off) and ONNX Runtime's one-node
model in turn, timed on the process CPU clock; printed: the medians in ms and the ratios
native / ONNX Runtime and numpy / ONNX Runtime, and whether the three outputs are the same
bits. The default shapes are terrain_consistency_unet's (GroupNorm of 32 groups written as
Reshape -> InstanceNormalization -> Reshape, at 128 x 128 down to 16 x 16).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import print_table, wall_and_cpu  # noqa: E402

from lowp.runtime import native_float  # noqa: E402
from lowp.runtime.float_nn import InstanceNormalization  # noqa: E402

DEFAULT_SHAPES = ["1x32x65536", "1x32x32768", "1x32x16384", "1x32x8192", "1x32x4096",
                  "1x32x2048", "1x32x512"]


def _session(x: np.ndarray, scale: np.ndarray, bias: np.ndarray,
             threads: int) -> ort.InferenceSession:
    node = helper.make_node("InstanceNormalization", ["x", "s", "b"], ["y"], epsilon=1e-5)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(x.shape))],
        [numpy_helper.from_array(scale, "s"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def _row(x: np.ndarray, scale: np.ndarray, bias: np.ndarray, threads: int,
         rounds: int) -> list[object]:
    """Median CPU ms of the native kernel, the numpy reference and ONNX Runtime."""
    session = _session(x, scale, bias, threads)

    def native() -> np.ndarray | None:
        with native_float.threads(threads):
            return native_float.instance_norm(x, scale, bias, 1e-5)

    def numpy() -> np.ndarray:
        with native_float.disabled():
            return InstanceNormalization(x, scale, bias, epsilon=1e-5)

    def onnxruntime() -> np.ndarray:
        return session.run(None, {"x": x})[0]

    _, cpu, outs = wall_and_cpu([native, numpy, onnxruntime], rounds)
    ms = [statistics.median(c) * 1e3 for c in cpu]
    same = all(o is not None and np.array_equal(o.view(np.uint32), outs[2].view(np.uint32))
               for o in outs[:2])
    return ["x".join(map(str, x.shape)), threads, f"{ms[0]:.3f}", f"{ms[1]:.3f}",
            f"{ms[2]:.3f}", f"{ms[0] / ms[2]:.2f}", f"{ms[1] / ms[2]:.2f}",
            "yes" if same else "NO"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shapes", nargs="+", default=DEFAULT_SHAPES)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for text in args.shapes:
        shape = tuple(int(d) for d in text.split("x"))
        x = rng.standard_normal(shape).astype(np.float32) * 3 + 1
        scale, bias = (rng.standard_normal(shape[1]).astype(np.float32) for _ in range(2))
        rows += [_row(x, scale, bias, threads, args.rounds) for threads in args.threads]
    print_table(["shape", "threads", "native ms", "numpy ms", "ORT ms", "native / ORT",
                 "numpy / ORT", "same bits"], rows)


if __name__ == "__main__":
    main()
