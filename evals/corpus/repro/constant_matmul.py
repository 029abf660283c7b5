"""One float MatMul with a constant B (an initializer) on lowp's Session and ONNX Runtime,
interleaved (repro README item 13: the panels of a large constant B kept between calls).

    python evals/corpus/repro/constant_matmul.py [--m 1 8] [--k 300] [--n 1200] [--rounds 40]

Per M, one process holds both sessions (1 thread each); the outputs are checked bit for bit,
then after 3 warm-up runs each `rounds` rounds of 20 runs alternate lowp and ONNX Runtime,
and the ratio of the medians is printed.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    import lowp

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--m", type=int, nargs="+", default=[1, 8])
    p.add_argument("--k", type=int, default=300)
    p.add_argument("--n", type=int, default=1200)
    p.add_argument("--rounds", type=int, default=40)
    args = p.parse_args(argv)
    k, n = args.k, args.n
    for m in args.m:
        rng = np.random.default_rng(m)
        b = rng.standard_normal((k, n)).astype(np.float32)
        feeds = {"a": rng.standard_normal((m, k)).astype(np.float32)}
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["a", "b"], ["y"])], "matmul",
            [helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
            [numpy_helper.from_array(b, "b")])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
        runtime = ort.InferenceSession(model.SerializeToString(), opts,
                                       providers=["CPUExecutionProvider"])
        session = lowp.Session(model, threads=1)
        same = np.array_equal(session.run(feeds)["y"].view(np.uint32),
                              runtime.run(None, feeds)[0].view(np.uint32))
        for _ in range(3):
            session.run(feeds)
            runtime.run(None, feeds)
        ours, theirs = [], []
        for _ in range(args.rounds):
            t = time.perf_counter()
            for _ in range(20):
                session.run(feeds)
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            for _ in range(20):
                runtime.run(None, feeds)
            theirs.append(time.perf_counter() - t)
        ratio = statistics.median(ours) / statistics.median(theirs)
        print(f"M {m} K {k} N {n}: lowp / ONNX Runtime {ratio:5.2f}  "
              f"outputs {'identical' if same else 'DIFFER'}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
