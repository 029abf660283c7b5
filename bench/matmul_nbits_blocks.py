"""lowp's CPU time over ONNX Runtime's for DequantizeLinear(block_size B) -> MatMul -> Add
(ONNX Runtime's MatMulNBits of that block, lowp's native MatMulNBits kernel), timed
alternately in one process.

    python bench/matmul_nbits_blocks.py [--blocks 16 32 64 128] [--wtype int8]
        [--threads 1] [--rounds 5] [--runs 5]

Shapes (M, K, N): (1, 4096, 600) and (64, 512, 256). A round runs lowp `--runs` times and
ONNX Runtime `--runs` times (process CPU time each, the order reversed every other round);
prints the median over `--rounds` rounds of lowp's time over ONNX Runtime's.
"""

from __future__ import annotations

import argparse
from functools import partial

import numpy as np
import onnxruntime as ort
from bench._common import interleaved_cpu_ratios
from tests.runtime.test_ort_matmul_nbits import _dq_model

import lowp

SHAPES = [(1, 4096, 600), (64, 512, 256)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--wtype", choices=["int8", "int4"], default="int8")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    wtype = np.int8 if args.wtype == "int8" else "int4"
    for block in args.blocks:
        for m, k, n in SHAPES:
            model = _dq_model(k, n, [m, k], wtype=wtype, zero_point="random", bias="add",
                              block=block).SerializeToString()
            x = np.random.default_rng(0).normal(0, 1, (m, k)).astype(np.float32)
            options = ort.SessionOptions()
            options.intra_op_num_threads = args.threads
            theirs = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
            ours = lowp.Session(model, threads=args.threads)
            feed = {"x": x}
            ratio = interleaved_cpu_ratios(
                [partial(ours.run, feed), partial(theirs.run, None, feed)],
                args.rounds, args.runs)[0]
            print(f"block {block:3d} {args.wtype} M {m} K {k} N {n}: lowp / ONNX Runtime CPU "
                  f"{ratio:.2f}")


if __name__ == "__main__":
    main()
