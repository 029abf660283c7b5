"""Float Gemm / MatMul of a constant B (the products a QDQ file leaves float, as tf2onnx's
Gemm with beta 0 and no C): lowp's Session against ONNX Runtime's on the same one-node
model, at the same thread count, as lowp/ORT ratios of process CPU time (median over the
rounds of each round's ratio, the two engines' order alternating from round to round).
Every case is checked bit for bit against ONNX Runtime first.

    python bench/sgemm.py [--shapes 128x128x128 1x128x128 ...] [--threads 1]
                          [--op Gemm] [--trans-b] [--chain 1] [--heads 0]
                          [--rounds 15] [--calls 200]

A shape is MxKxN; `--trans-b` stores B as (N, K) with transB 1 (Gemm only); `--chain C`
runs C products in a row (the per-run costs of both engines spread over them).
`--heads H` times attention's products instead: one MatMul of A (H, M, K) by B (H, K, N),
both inputs (B packed every call by both engines), with `--trans-b` B given as (H, N, K)
through a Transpose (ONNX Runtime fuses the two into FusedMatMul with transB, as lowp does):
Q·Kᵀ is `--heads 8 --trans-b --shapes SxDxS`, P·V `--heads 8 --shapes SxSxD`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import lowp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import interleaved_cpu_ratios  # noqa: E402


def _model(m: int, k: int, n: int, op: str, trans_b: bool, chain: int = 1) -> bytes:
    """`chain` products in a row, each with its own constant B (k x n, then n x k, ...,
    scaled by 1 / sqrt(depth) so that the values keep their size): the engines' per-run
    costs spread over the chain, and every B's panels are out of L1 when it comes."""
    rng = np.random.default_rng(m * 7 + k * 3 + n)
    nodes, inits, width = [], [], k
    for i in range(chain):
        out = n if i % 2 == 0 else k
        b = (rng.standard_normal((out, width) if trans_b else (width, out)) /
             np.sqrt(width)).astype(np.float32)
        inits.append(numpy_helper.from_array(b, f"b{i}"))
        attrs = {"transB": 1} if trans_b else {}
        nodes.append(helper.make_node(op, ["a" if i == 0 else f"y{i - 1}", f"b{i}"],
                                      ["y" if i == chain - 1 else f"y{i}"], **attrs))
        width = out
    graph = helper.make_graph(
        nodes, "product", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, width])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return model.SerializeToString()


def _heads_model(h: int, m: int, k: int, n: int, trans_b: bool) -> bytes:
    """MatMul of inputs a (h, m, k) and b (h, k, n) (with `trans_b`: b (h, n, k) through a
    Transpose of its last two axes)."""
    nodes = [helper.make_node("MatMul", ["a", "bt" if trans_b else "b"], ["y"])]
    if trans_b:
        nodes.insert(0, helper.make_node("Transpose", ["b"], ["bt"], perm=[0, 2, 1]))
    graph = helper.make_graph(
        nodes, "heads",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [h, m, k]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [h, n, k] if trans_b else
                                       [h, k, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [h, m, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return model.SerializeToString()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+",
                        default=["128x128x128", "128x128x512", "128x512x128", "1x128x128",
                                 "16x128x128", "33x100x77", "128x64x128"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--op", default="Gemm", choices=["Gemm", "MatMul"])
    parser.add_argument("--trans-b", action="store_true")
    parser.add_argument("--chain", type=int, default=1, help="products in a row")
    parser.add_argument("--heads", type=int, default=0,
                        help="attention's products: H heads, B an input (MatMul)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    what = (f"MatMul of {args.heads} heads, B an input" if args.heads else
            f"{args.op}, constant B, chain of {args.chain}")
    print(f"float {what}{', transB' if args.trans_b else ''}, "
          f"{args.threads} thread(s), process CPU time lowp / ONNX Runtime (median of rounds)")
    for shape in args.shapes:
        m, k, n = (int(v) for v in shape.split("x"))
        data = (_heads_model(args.heads, m, k, n, args.trans_b) if args.heads else
                _model(m, k, n, args.op, args.trans_b, args.chain))
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
        runtime = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        session = lowp.Session(data, threads=args.threads)
        rng = np.random.default_rng(1)
        if args.heads:
            feeds = {"a": rng.standard_normal((args.heads, m, k)).astype(np.float32),
                     "b": rng.standard_normal((args.heads, n, k) if args.trans_b else
                                              (args.heads, k, n)).astype(np.float32)}
        else:
            feeds = {"a": rng.standard_normal((m, k)).astype(np.float32)}
        want = runtime.run(None, feeds)[0]
        got = session.run(feeds)["y"]
        assert np.array_equal(np.asarray(got).view(np.uint32), want.view(np.uint32)), shape
        [ratio] = interleaved_cpu_ratios([lambda s=session, f=feeds: s.run(f),
                                          lambda r=runtime, f=feeds: r.run(None, f)],
                                         args.rounds, args.calls)
        print(f"{shape:>14}  {ratio:.2f}")


if __name__ == "__main__":
    main()
