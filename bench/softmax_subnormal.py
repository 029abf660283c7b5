"""Float Softmax over rows that reach subnormal values: lowp's native last-axis kernel and
ONNX Runtime's one-node model (one intra-op thread), process CPU time, best of the rounds,
rows spanning 0-110 below their maximum (attention scores as g2p_id_bert's) against rows of
N(0, 1). Checked bit for bit against ONNX Runtime first.

    python bench/softmax_subnormal.py [--rows 1024] [--n 32] [--rounds 7] [--calls 50]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

from lowp.runtime import native_float


def _onnxruntime(shape: tuple[int, int]) -> ort.InferenceSession:
    graph = helper.make_graph(
        [helper.make_node("Softmax", ["x"], ["y"], axis=-1)], "softmax",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def _cpu_ms(fn: Callable[[], object], rounds: int, calls: int) -> float:
    fn()
    best = np.inf
    for _ in range(rounds):
        t = time.process_time()
        for _ in range(calls):
            fn()
        best = min(best, time.process_time() - t)
    return best / calls * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1024)
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    wide = -rng.random((args.rows, args.n)) * 110.0
    wide[:, 0] = 0.0
    wide = (wide + rng.standard_normal((args.rows, 1)) * 5).astype(np.float32)
    narrow = rng.standard_normal((args.rows, args.n)).astype(np.float32)
    session = _onnxruntime((args.rows, args.n))
    print(f"{'rows':<22}{'lowp ms':>10}{'ORT ms':>10}{'lowp/ORT':>10}")
    with native_float.threads(1):
        for name, x in (("N(0, 1)", narrow), ("0-110 below the max", wide)):
            got = native_float.softmax_rows(x)
            want = session.run(None, {"x": x})[0]
            assert got is not None and np.array_equal(got.view(np.uint32),
                                                      want.view(np.uint32)), name
            lp = _cpu_ms(lambda x=x: native_float.softmax_rows(x), args.rounds, args.calls)
            rt = _cpu_ms(lambda x=x: session.run(None, {"x": x}), args.rounds, args.calls)
            print(f"{name:<22}{lp:>10.4f}{rt:>10.4f}{lp / rt:>10.2f}")


if __name__ == "__main__":
    main()
