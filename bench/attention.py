"""Float Attention (opset 23, one node): lowp's Session against ONNX Runtime's, both at
`--threads` threads (one by default), as lowp/ORT ratios of process CPU time, interleaved in
one process. 4-D inputs
(batch 1, 8 query heads, 4 key/value heads, head size 64), causal, no mask; sequence lengths
from `--lengths`. Every case is checked bit for bit against ONNX Runtime first.

    python bench/attention.py [--lengths 16 64 256] [--rounds 9] [--calls 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

import lowp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import interleaved_cpu_ratios, print_table  # noqa: E402

_HEADS, _KV_HEADS, _SIZE = 8, 4, 64


def _model(seq: int) -> bytes:
    shapes = {"q": [1, _HEADS, seq, _SIZE], "k": [1, _KV_HEADS, seq, _SIZE],
              "v": [1, _KV_HEADS, seq, _SIZE]}
    graph = helper.make_graph(
        [helper.make_node("Attention", list(shapes), ["y"], is_causal=1)], "attention",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in shapes.items()],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])
    model.ir_version = 10
    return model.SerializeToString()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for seq in args.lengths:
        data = _model(seq)
        feeds = {"q": rng.standard_normal((1, _HEADS, seq, _SIZE)).astype(np.float32),
                 "k": rng.standard_normal((1, _KV_HEADS, seq, _SIZE)).astype(np.float32),
                 "v": rng.standard_normal((1, _KV_HEADS, seq, _SIZE)).astype(np.float32)}
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        theirs = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        ours = lowp.Session(data, backend="native", threads=args.threads)
        want = theirs.run(None, feeds)[0]
        got = ours.run(dict(feeds))["y"]
        if not np.array_equal(got.view(np.uint32), want.view(np.uint32)):
            raise SystemExit(f"sequence {seq}: lowp differs from ONNX Runtime")
        (ratio,) = interleaved_cpu_ratios(
            [lambda s=ours, f=feeds: s.run(dict(f)),  # type: ignore[misc]
             lambda s=theirs, f=feeds: s.run(None, f)],  # type: ignore[misc]
            args.rounds, args.calls)
        rows.append([seq, f"{ratio:.2f}"])
    print_table(["sequence", "lowp / ONNX Runtime CPU time"], rows)


if __name__ == "__main__":
    main()
