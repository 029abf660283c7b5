"""One float32 LSTM or GRU node at 1 and 2 threads: what cutting a recurrence between threads
gives lowp, beside what it gives ONNX Runtime.

    python bench/rnn_threads.py [--shapes LSTM:8:256 GRU:1:400 ...] [--seq 16] [--input 64]
                                [--runs 40] [--cycles 5]

A shape is OP:BATCH:HIDDEN (a GRU with linear_before_reset, as PyTorch exports it). Each node
is a model of its own (weights, bias and initial state constants or inputs, as
`bench/gru_node.py`); lowp's Session and ONNX Runtime's at 1 and 2 threads run `--cycles`
times each in a block of `--runs` runs, every block after 0.2 s of sleep (so that ONNX
Runtime's spinning workers have gone quiet). Printed per shape: the multiply-adds of one
step's products, the median over the cycles of each block's median (ms), lowp's and ONNX
Runtime's 2-thread / 1-thread ratios, lowp / ONNX Runtime at each thread count, and whether
the outputs are identical. The machine is shared: only the ratios mean something.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import interleaved_ms, print_table  # noqa: E402

import lowp  # noqa: E402

DEFAULT_SHAPES = ["LSTM:8:64", "LSTM:1:128", "LSTM:4:128", "GRU:2:128", "LSTM:1:256",
                  "GRU:1:256", "LSTM:8:256", "GRU:1:400", "GRU:2:400"]


def node_model(op: str, seq: int, batch: int, inp: int, hidden: int) -> bytes:
    gates = 4 if op == "LSTM" else 3
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((1, gates * hidden, inp)) * 0.05).astype(np.float32)
    r = (rng.standard_normal((1, gates * hidden, hidden)) * 0.05).astype(np.float32)
    b = (rng.standard_normal((1, 2 * gates * hidden)) * 0.1).astype(np.float32)
    extra = {"linear_before_reset": 1} if op == "GRU" else {}
    outputs = ["y", "yh"] + (["yc"] if op == "LSTM" else [])
    node = helper.make_node(op, ["x", "w", "r", "b"], outputs, hidden_size=hidden, **extra)
    graph = helper.make_graph(
        [node], op.lower(),
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, (seq, batch, inp))],
        [helper.make_empty_tensor_value_info(o) for o in outputs],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(r, "r"),
         numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def step_macs(op: str, batch: int, hidden: int) -> int:
    padded = (hidden + 15) // 16 * 16
    return batch * (4 if op == "LSTM" else 3) * padded * hidden


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", nargs="+", default=DEFAULT_SHAPES)
    p.add_argument("--seq", type=int, default=16)
    p.add_argument("--input", type=int, default=64)
    p.add_argument("--runs", type=int, default=40)
    p.add_argument("--cycles", type=int, default=5)
    args = p.parse_args()
    rows = []
    for shape in tqdm(args.shapes):
        op, batch, hidden = shape.split(":")[0], *map(int, shape.split(":")[1:])
        model = node_model(op, args.seq, batch, args.input, hidden)
        x = np.random.default_rng(1).standard_normal((args.seq, batch, args.input)
                                                     ).astype(np.float32)
        runs: dict[str, Callable[[], list[np.ndarray]]] = {}
        for threads in (1, 2):
            ours = lowp.Session(model, threads=threads)
            runs[f"lowp {threads}"] = lambda s=ours, x=x: list(s.run({"x": x}).values())
            opts = ort.SessionOptions()
            opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
            theirs = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
            runs[f"ORT {threads}"] = lambda s=theirs, x=x: s.run(None, {"x": x})
        outs = {k: fn() for k, fn in runs.items()}
        same = all(all(np.array_equal(a, b) for a, b in zip(o, outs["ORT 1"], strict=True))
                   for o in outs.values())
        medians: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(args.cycles):
            for k, fn in runs.items():
                time.sleep(0.2)
                medians[k].append(interleaved_ms([fn], args.runs, 1e9)[0])
        ms = {k: statistics.median(v) for k, v in medians.items()}
        rows.append([shape, step_macs(op, batch, hidden),
                     *(f"{ms[k]:.3f}" for k in ("lowp 1", "lowp 2", "ORT 1", "ORT 2")),
                     f"{ms['lowp 2'] / ms['lowp 1']:.2f}", f"{ms['ORT 2'] / ms['ORT 1']:.2f}",
                     f"{ms['lowp 1'] / ms['ORT 1']:.2f}", f"{ms['lowp 2'] / ms['ORT 2']:.2f}",
                     "yes" if same else "NO"])
    print_table(["shape", "step MACs", "lowp 1 ms", "lowp 2 ms", "ORT 1 ms", "ORT 2 ms",
                 "lowp 2/1", "ORT 2/1", "lowp/ORT 1", "lowp/ORT 2", "identical"], rows)


if __name__ == "__main__":
    main()
