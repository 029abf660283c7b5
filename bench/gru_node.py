"""One float32 GRU node (a model of that node, its weights constants) in a lowp Session
against ONNX Runtime, at one thread, interleaved.

    python bench/gru_node.py [--seq 100] [--batch 2] [--input 400] [--hidden 400]
                             [--linear-before-reset 1] [--rounds 30]

The defaults are nsnet2_16k's GRUs (evals/corpus). Each round runs lowp, then ONNX Runtime,
on the same feeds (an initial state of zeros as the model's input); printed: whether the
outputs are identical, each engine's median thread CPU time and their ratio. With
`--input 1` the input projection is next to nothing and the time is the recurrence's (the
per-step products and the cells). The machine is shared: only the ratios mean something.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import lowp


def gru_model(seq: int, batch: int, inp: int, hidden: int, lbr: int) -> bytes:
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((1, 3 * hidden, inp)) * 0.05).astype(np.float32)
    r = (rng.standard_normal((1, 3 * hidden, hidden)) * 0.05).astype(np.float32)
    b = (rng.standard_normal((1, 6 * hidden)) * 0.1).astype(np.float32)
    node = helper.make_node("GRU", ["x", "w", "r", "b", "", "h0"], ["y", "yh"],
                            hidden_size=hidden, linear_before_reset=lbr)
    graph = helper.make_graph(
        [node], "gru",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, (seq, batch, inp)),
         helper.make_tensor_value_info("h0", TensorProto.FLOAT, (1, batch, hidden))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, (seq, 1, batch, hidden)),
         helper.make_tensor_value_info("yh", TensorProto.FLOAT, (1, batch, hidden))],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(r, "r"),
         numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    return model.SerializeToString()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seq", type=int, default=100)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--input", type=int, default=400)
    p.add_argument("--hidden", type=int, default=400)
    p.add_argument("--linear-before-reset", type=int, default=1)
    p.add_argument("--rounds", type=int, default=30)
    a = p.parse_args()
    model = gru_model(a.seq, a.batch, a.input, a.hidden, a.linear_before_reset)
    feeds = {"x": np.random.default_rng(1).standard_normal(
        (a.seq, a.batch, a.input)).astype(np.float32),
        "h0": np.zeros((1, a.batch, a.hidden), np.float32)}
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    theirs = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    ours = lowp.Session(model, threads=1)
    names = ["y", "yh"]
    want, got = theirs.run(names, feeds), ours.run(feeds, names)
    same = all(got[n].tobytes() == w.tobytes() for n, w in zip(names, want, strict=True))
    runs = (lambda: ours.run(feeds, names), lambda: theirs.run(names, feeds))
    for _ in range(3):
        for run in runs:
            run()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(a.rounds):
        for run, kept in zip(runs, times, strict=True):
            t0 = time.thread_time()
            run()
            kept.append(time.thread_time() - t0)
    ms = [statistics.median(t) * 1e3 for t in times]
    print(f"GRU T={a.seq} B={a.batch} I={a.input} H={a.hidden} "
          f"linear_before_reset={a.linear_before_reset}: identical {same}; lowp {ms[0]:.3f} "
          f"ms, ONNX Runtime {ms[1]:.3f} ms, ratio {ms[0] / ms[1]:.3f}")


if __name__ == "__main__":
    main()
