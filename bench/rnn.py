"""Recurrent nodes alone: lowp's native recurrence on every instruction-set path, its numpy
reference, and ONNX Runtime, side by side on one thread (median ms, lower is better).

    python bench/rnn.py [--repeats 200] [--activations]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from lowp.runtime import native_backend as nb
from lowp.runtime import native_rnn
from lowp.runtime.float_ops import FLOAT_OPS

CASES = [  # op, T, B, I, H, extra attributes
    ("LSTM", 64, 8, 32, 32, {}),              # the LSTM family's node (evals/families.py)
    ("LSTM", 100, 16, 80, 256, {}),           # speech-sized
    ("LSTM", 20, 1, 512, 512, {}),            # ddddocr_ocr's node (evals/corpus)
    ("LSTM", 32, 8, 28, 256, {}),             # g2p_id_lstm's nodes (batch 8, evals/corpus)
    ("GRU", 64, 8, 32, 32, {}),
    ("GRU", 64, 8, 32, 32, {"linear_before_reset": 1}),
    ("GRU", 100, 16, 80, 256, {}),
    # other activations (docs/operators.md, (O62))
    ("LSTM", 64, 8, 32, 32, {"activations": ["HardSigmoid", "Elu", "Softsign"] * 2}),
    ("GRU", 64, 8, 32, 32, {"activations": ["Relu", "Softplus"] * 2}),
]


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    for _ in range(10):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def measure(op: str, t: int, b: int, i: int, h: int, extra: dict[str, object],
            repeats: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    gates, dirs = (4 if op == "LSTM" else 3), 2
    x = rng.standard_normal((t, b, i)).astype(np.float32)
    w = (rng.standard_normal((dirs, gates * h, i)) * 0.3).astype(np.float32)
    r = (rng.standard_normal((dirs, gates * h, h)) * 0.3).astype(np.float32)
    bias = (rng.standard_normal((dirs, 2 * gates * h)) * 0.3).astype(np.float32)
    attrs = dict(hidden_size=h, direction="bidirectional", layout=0, **extra)
    outs = [f"y{k}" for k in range(3 if op == "LSTM" else 2)]
    node = helper.make_node(op, ["x", "w", "r", "b"], outs, **attrs)
    # the weights are constants, as in a model file: ONNX Runtime prepacks them
    feeds = {"x": x, "b": bias}
    graph = helper.make_graph(
        [node], "rnn", [helper.make_tensor_value_info(k, TensorProto.FLOAT, v.shape)
                        for k, v in feeds.items()],
        [helper.make_empty_tensor_value_info(o) for o in outs],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(r, "r")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), opts,
                                   providers=["CPUExecutionProvider"])

    def lowp_run() -> object:
        return FLOAT_OPS[op](x, w, r, bias, **attrs, w_packed=True, r_packed=True, opset=17)

    row = {"ONNX Runtime": median_ms(lambda: session.run(None, feeds), repeats)}
    for path in nb.available_paths():
        with nb.use_path(path):
            row[f"lowp {path}"] = median_ms(lowp_run, repeats)
    with native_rnn.disabled():
        row["lowp numpy"] = median_ms(lowp_run, max(5, repeats // 10))
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--activations", action="store_true",
                   help="only the nodes with other than the default activations")
    args = p.parse_args()
    cases = [c for c in CASES if "activations" in c[5]] if args.activations else CASES
    rows = []
    with threadpool_limits(1):
        for op, t, b, i, h, extra in tqdm(cases, desc="benchmark", unit="case"):
            rows.append((f"{op} T={t} B={b} I={i} H={h} bidir"
                         + "".join(f" {k}={v}" for k, v in extra.items()),
                         measure(op, t, b, i, h, extra, args.repeats)))
    cols = list(rows[0][1])
    width = max(len(name) for name, _ in rows)
    print("Recurrent nodes, median ms on 1 thread (lower is better)")
    print(" | ".join([f"{'node':{width}}", *cols, "lowp best / ORT"]))
    for name, row in rows:
        best = min(v for k, v in row.items() if k.startswith("lowp ") and k != "lowp numpy")
        cells = [f"{row[c]:{len(c)}.3f}" for c in cols]
        print(" | ".join([f"{name:{width}}", *cells, f"{best / row['ONNX Runtime']:.2f}"]))


if __name__ == "__main__":
    main()
