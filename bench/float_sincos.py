"""Sin and Cos of float32: lowp's native kernel on every instruction-set path against ONNX
Runtime's one-node model (one intra-op thread) in one process, runs alternating; the
numpy form (lowp.eigen_math) on a few runs. Checked bit for bit against ONNX Runtime first.

    python bench/float_sincos.py [--n 1048576] [--rounds 21] [--low -10] [--high 10]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

from lowp import eigen_math
from lowp.runtime import native_backend


def _session(op: str) -> ort.InferenceSession:
    graph = helper.make_graph(
        [helper.make_node(op, ["x"], ["y"])], op,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def _ms(fn: Callable[..., object], *args: object) -> float:
    start = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - start) * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1 << 20)
    p.add_argument("--rounds", type=int, default=21)
    p.add_argument("--low", type=float, default=-10.0)
    p.add_argument("--high", type=float, default=10.0)
    args = p.parse_args()
    ext = native_backend._native
    x = np.random.default_rng(0).uniform(args.low, args.high, args.n).astype(np.float32)
    y = np.empty_like(x)
    print(f"{args.n} values in [{args.low}, {args.high}), 1 thread, median ms")
    for op, form in (("Sin", eigen_math.sin), ("Cos", eigen_math.cos)):
        session, cosine = _session(op), op == "Cos"
        numpy_ms = statistics.median(_ms(form, x) for _ in range(3))
        for path in native_backend.available_paths():
            with native_backend.use_path(path):
                want = session.run(None, {"x": x})[0]
                ext.float_sincos(x, y, cosine, 1)
                assert (want.view(np.uint32) == y.view(np.uint32)).all(), (op, path)
                ours, theirs = [], []
                for _ in range(args.rounds):
                    ours.append(_ms(ext.float_sincos, x, y, cosine, 1))
                    theirs.append(_ms(session.run, None, {"x": x}))
                a, b = statistics.median(ours), statistics.median(theirs)
                print(f"{op} {path:13s} native {a:7.2f}  ONNX Runtime {b:7.2f}  "
                      f"ratio {a / b:.2f}  (numpy form {numpy_ms:.0f})")


if __name__ == "__main__":
    main()
