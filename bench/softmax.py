"""Float Softmax (and LogSoftmax) over the last axis: lowp's native kernel against ONNX
Runtime's one-node model, both at one thread, as lowp/ORT ratios of process CPU time.
Rows of N(0, 1) (ordinary) and rows spanning 0-110 below their maximum (subnormal results,
attention scores as g2p_id_bert's), lengths 8 to 1000, ~32K values a call; `--axis 1` puts
the softmax axis in the middle of (rows, n, --inner) instead (the column kernel). Every case is
checked bit for bit against ONNX Runtime first.

Each round times `--calls` calls of lowp's Python wrapper, of its native binding alone (what
a replayed run calls) and of ONNX Runtime's session.run, in an order that alternates from
round to round; the ratios are the medians over the rounds of each round's ratio.

    python bench/softmax.py [--lengths 8 32 128 384 1000] [--values 32768] [--log]
                            [--axis -1] [--inner 4] [--rounds 9] [--calls 40]
                            [--subnormals measure]

`--subnormals avoid` or `plain` forces the path of the rows reaching more than 60 below
their maximum (the default, measure, takes the faster on this CPU; the bits are the same).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

from lowp.runtime import native_backend, native_float

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import interleaved_cpu_ratios  # noqa: E402


def _onnxruntime(shape: tuple[int, ...], op: str, axis: int) -> ort.InferenceSession:
    graph = helper.make_graph(
        [helper.make_node(op, ["x"], ["y"], axis=axis)], "softmax",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def _rows(kind: str, rows: int, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "ordinary":
        return rng.standard_normal((rows, n)).astype(np.float32)
    x = -rng.random((rows, n)) * 110.0
    x[:, 0] = 0.0
    return (x + rng.standard_normal((rows, 1)) * 5).astype(np.float32)


def _calls(x: np.ndarray, axis: int, log: bool) -> tuple[Callable[[], object], ...]:
    """lowp's wrapper, its binding alone (into a fixed output), and the numpy result."""
    ext = native_backend._native
    y = np.empty_like(x)
    src, dst = x.reshape(-1), y.reshape(-1)
    if axis == -1:
        n = x.shape[-1]

        def binding() -> None:
            ext.float_softmax_rows(src, dst, n, 1, log)
        return (lambda: native_float.softmax_rows(x, log=log)), binding

    inner = int(np.prod(x.shape[axis + 1:]))

    def binding_axis() -> None:
        ext.float_softmax_axis(src, dst, x.shape[axis], inner, 1, log)
    return (lambda: native_float.softmax_axis(x, axis, log=log)), binding_axis


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[8, 32, 128, 384, 1000])
    parser.add_argument("--values", type=int, default=32768, help="values a call")
    parser.add_argument("--log", action="store_true", help="LogSoftmax")
    parser.add_argument("--axis", type=int, default=-1, choices=[-1, 1])
    parser.add_argument("--inner", type=int, default=4, help="columns a line (--axis 1)")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--subnormals", default="measure", choices=["measure", "avoid", "plain"])
    args = parser.parse_args()
    op = "LogSoftmax" if args.log else "Softmax"
    rng = np.random.default_rng(0)
    with native_float.threads(1), native_float.softmax_subnormals(args.subnormals) as path:
        print(f"{op} axis {args.axis}, float kernels {native_float.kernels()}, rows far below "
              f"their maximum: {path} subnormals, 1 thread, process CPU time, median of the "
              "rounds' ratios")
        print(f"{'rows':<11}{'shape':>16}{'lowp/ORT':>10}{'kernel/ORT':>12}")
        for n in args.lengths:
            for kind in ("ordinary", "subnormal"):
                rows = max(1, args.values // n)
                if args.axis == 1:  # (rows, n, inner): softmax over the middle axis
                    rows = max(1, rows // args.inner)
                    x = np.stack([_rows(kind, rows, n, rng) for _ in range(args.inner)], axis=2)
                else:
                    x = _rows(kind, rows, n, rng)
                session = _onnxruntime(x.shape, op, args.axis)
                wrapper, binding = _calls(x, args.axis, args.log)
                want = session.run(None, {"x": x})[0]
                got = wrapper()
                assert got is not None and np.array_equal(
                    np.asarray(got).view(np.uint32), want.view(np.uint32)), (kind, n)
                ratios = interleaved_cpu_ratios(
                    [wrapper, binding, lambda x=x, s=session: s.run(None, {"x": x})],
                    args.rounds, args.calls)
                shape = "x".join(map(str, x.shape))
                print(f"{kind:<11}{shape:>16}{ratios[0]:>10.2f}{ratios[1]:>12.2f}")


if __name__ == "__main__":
    main()
