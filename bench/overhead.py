"""Per-run overhead: lowp vs ONNX Runtime on chains of 200 tiny steps, where the kernels'
work is negligible and what is measured is the engine's cost per run and per step.

Two chains, both checked with onnx.checker:
  qdq    a float chain of 1x1 Conv / Relu / Add (residual: the two previous tensors) /
         MaxPool (3x3, stride 1, pad 1) on a 1x8x4x4 tensor, quantized by
         lowp.quantize_model (the same QDQ file runs in both engines: the int8 path). A
         quantized Add or Mul with a broadcast constant runs lowp's numpy reference (no
         native kernel), which is compute, not overhead, and is left out;
  float  a float glue chain of Add / Mul / Relu / Sigmoid / Reshape on a 1x8x4x4 tensor.
Outputs are compared before timing (qdq: equal to ONNX Runtime's within one quantization
step, as the engines' integer rounding may differ; float: within float32 rounding), then
both engines run in this process in alternating rounds after warm-up (medians, so that a
change in the shared machine's load falls on both). The table checks lowp's run against the
target of issue #11: at most 1 us per ONNX node (200 us a run for 200 steps).

    python bench/overhead.py [--steps 200] [--threads 1 2] [--repeats 2000] [--chains qdq float]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import interleaved_ms, print_table  # noqa: E402

CACHE = Path(tempfile.gettempdir()) / "lowp-bench"
SHAPE = (1, 8, 4, 4)
TARGET_US_PER_NODE = 1.0   # issue #11: a 200-node chain of tiny ops in <= 200 us a run


def _chain(steps: int, ops: tuple[str, ...], seed: int = 0) -> onnx.ModelProto:
    """A float model of `steps` nodes cycling through `ops`, each reading the previous
    node's output (constants as initializers)."""
    rng = np.random.default_rng(seed)
    c = SHAPE[1]
    nodes, inits = [], []
    x, prev = "input", "input"

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value.astype(np.float32), name))
        return name

    for i in range(steps):
        op, y = ops[i % len(ops)], f"t{i}"
        if op == "AddSkip":                  # a residual Add: same-shape operands
            nodes.append(helper.make_node("Add", [x, prev], [y], name=f"n{i}"))
        elif op in ("Add", "Mul"):
            v = rng.uniform(-0.5, 0.5, (1, c, 1, 1)) if op == "Add" else rng.uniform(
                0.8, 1.2, (1, c, 1, 1))
            nodes.append(helper.make_node(op, [x, const(f"c{i}", v)], [y], name=f"n{i}"))
        elif op in ("Relu", "Sigmoid"):
            nodes.append(helper.make_node(op, [x], [y], name=f"n{i}"))
        elif op == "Conv":
            w = rng.standard_normal((c, c, 1, 1)) * (1.0 / np.sqrt(c))
            b = rng.uniform(-0.1, 0.1, c)
            nodes.append(helper.make_node(op, [x, const(f"w{i}", w), const(f"b{i}", b)], [y],
                                          name=f"n{i}"))
        elif op == "MaxPool":
            nodes.append(helper.make_node(op, [x], [y], name=f"n{i}", kernel_shape=[3, 3],
                                          strides=[1, 1], pads=[1, 1, 1, 1]))
        elif op == "Reshape":
            shape = SHAPE if i % 2 else (1, c, SHAPE[2] * SHAPE[3])
            inits.append(numpy_helper.from_array(np.array(shape, np.int64), f"s{i}"))
            nodes.append(helper.make_node(op, [x, f"s{i}"], [y], name=f"n{i}"))
        else:
            raise ValueError(f"no chain step for {op}")
        prev, x = x, y
    nodes.append(helper.make_node("Reshape", [x, const_shape(inits)], ["output"],
                                  name="final"))
    graph = helper.make_graph(
        nodes, "chain", [helper.make_tensor_value_info("input", TensorProto.FLOAT, SHAPE)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, SHAPE)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def const_shape(inits: list[onnx.TensorProto]) -> str:
    inits.append(numpy_helper.from_array(np.array(SHAPE, np.int64), "out_shape"))
    return "out_shape"


def _models(steps: int) -> dict[str, Path]:
    """Chain name -> model path (the QDQ chain quantized with lowp, cached)."""
    import lowp
    from lowp.ir.graph import save_model

    CACHE.mkdir(parents=True, exist_ok=True)
    out = {}
    float_qdq = _chain(steps, ("Conv", "Relu", "AddSkip", "MaxPool"))
    qdq_path = CACHE / f"overhead_qdq_{steps}.onnx"
    if not qdq_path.exists():
        calib = {"input": np.random.default_rng(1).standard_normal((16, *SHAPE[1:]))
                 .astype(np.float32)}
        model = lowp.quantize_model(float_qdq, calib)
        onnx.checker.check_model(model, full_check=True)
        save_model(model, qdq_path)
    out["qdq"] = qdq_path
    glue_path = CACHE / f"overhead_float_{steps}.onnx"
    onnx.save(_chain(steps, ("Add", "Mul", "Relu", "Reshape", "Sigmoid", "Reshape")), glue_path)
    out["float"] = glue_path
    return out


def _runners(path: Path, threads: int) -> tuple[Callable[..., dict], Callable[..., dict], object]:
    import onnxruntime as ort

    import lowp

    session = lowp.Session(str(path), backend="native", threads=threads)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    s = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in s.get_outputs()]

    def run_ort(feeds: dict) -> dict:
        return dict(zip(names, s.run(None, feeds), strict=True))

    return session.run, run_ort, session


def _validate(chain: str, a: dict, b: dict, path: Path) -> None:
    for k in a:
        if chain == "float":
            np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)
        else:
            model = onnx.load(str(path))
            dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear"][-1]
            inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
            step = float(inits[dq.input[1]])
            np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1.01 * step, err_msg=k)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--repeats", type=int, default=2000)
    ap.add_argument("--chains", nargs="+", default=["qdq", "float"], choices=["qdq", "float"])
    args = ap.parse_args()
    paths = _models(args.steps)
    feeds = {"input": np.random.default_rng(2).standard_normal(SHAPE).astype(np.float32)}
    rows = []
    for chain in args.chains:
        for threads in args.threads:
            run_lowp, run_ort, session = _runners(paths[chain], threads)
            _validate(chain, run_lowp(feeds), run_ort(feeds), paths[chain])
            for _ in range(20):
                run_lowp(feeds)
                run_ort(feeds)
            t_lowp, t_ort = (1e-3 * ms for ms in interleaved_ms(
                [lambda: run_lowp(feeds), lambda: run_ort(feeds)],  # noqa: B023
                args.repeats, budget=6.0))
            steps = len(session.steps)  # type: ignore[attr-defined]
            target = TARGET_US_PER_NODE * args.steps
            rows.append([chain, threads, steps, f"{t_lowp * 1e6:.1f}", f"{t_ort * 1e6:.1f}",
                         f"{t_lowp * 1e6 / steps:.2f}", f"{t_ort * 1e6 / args.steps:.2f}",
                         f"{t_lowp / t_ort:.2f}", f"{t_lowp * 1e6 / target:.2f}",
                         "ok" if t_lowp * 1e6 <= target else "OVER"])
    print(f"Per-run latency, median, chains of {args.steps} ONNX nodes on {SHAPE}; target "
          f"<= {TARGET_US_PER_NODE:g} us a node ({TARGET_US_PER_NODE * args.steps:g} us a run)")
    print_table(["chain", "threads", "lowp steps", "lowp us", "ORT us", "lowp us/step",
                 "ORT us/node", "lowp/ORT", "lowp / target", "check"], rows)


if __name__ == "__main__":
    main()
