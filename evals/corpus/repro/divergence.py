"""Find the first tensor where lowp's Session and ONNX Runtime disagree on a QDQ file, and cut
that node out of the graph (`onnx.utils.extract_model`) as a standalone reproducer.

    python evals/corpus/repro/divergence.py MODEL QDQ.onnx [--out DIR] [--seed 1] [--batch-index 0]
                                                   [--tol 0] [--float-tol 0] [--exposed] [--all]

MODEL names the corpus model whose evaluation feeds (seed 1, one batch) drive the run; both
engines run with one intra-op thread, as run.py's do. First the graph outputs as run.py
compares them (nothing exposed). Then ONNX Runtime's own optimized graph
(`SessionOptions.optimized_model_filepath`, default level) runs again with optimizations off
and every tensor it computes exposed: the same values as the plain run, which exposing
tensors of the original file would not give (a QuantizeLinear output made a graph output
stops rewrites such as the transpose optimizer's channels-last pushes, DoubleQDQPairsRemover,
QDQS8ToU8). Every tensor of the original graph that both engines compute (ONNX Runtime keeps
the original names, with their original layout, for the values its rewrites leave) is
compared in graph order, integers within `--tol`, floats within `--float-tol` (0: bit for
bit); the first that differs names the culprit operator. With `--exposed` the older
comparison runs instead: the original file with every QuantizeLinear output exposed, only
those compared. The graph from that operator's inputs (quantized where they come from a
DequantizeLinear) to the tensor, and the input values, are saved to DIR (`.onnx` and
`.npz`), and the cut model is run on both engines again to check that it reproduces alone
(it need not: a rewrite of the whole graph may be the cause).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnx.utils

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from evals.corpus.models import BY_NAME, make_feeds  # noqa: E402

Feeds = dict[str, np.ndarray]


def all_outputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with every QuantizeLinear output declared as a graph output (for ONNX
    Runtime). Only those: a float tensor inside a DQ -> op -> Q group made a graph output
    stops ONNX Runtime from fusing the group into its integer kernel."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for node in m.graph.node:
        if node.op_type != "QuantizeLinear":
            continue
        for out in node.output:
            if out and out not in have:
                m.graph.output.append(onnx.ValueInfoProto(name=out))
                have.add(out)
    return m


def ort_session(model: onnx.ModelProto, *, optimize: bool = True,
                save: Path | None = None):  # noqa: ANN201
    """ONNX Runtime's CPU session with one intra-op thread (run.py's)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if save is not None:
        opts.optimized_model_filepath = str(save)
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def ort_run(model: onnx.ModelProto, feeds: Feeds, *, optimize: bool = True) -> Feeds:
    s = ort_session(model, optimize=optimize)
    names = [o.name for o in s.get_outputs()]
    return dict(zip(names, s.run(None, feeds), strict=True))


def ort_all(model: onnx.ModelProto, feeds: Feeds) -> Feeds:
    """The original file with every QuantizeLinear output exposed (`--exposed`)."""
    return ort_run(all_outputs(model), feeds)


def expose_everything(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with every node output declared as a graph output."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for node in m.graph.node:
        for out in node.output:
            if out and out not in have:
                m.graph.output.append(onnx.ValueInfoProto(name=out))
                have.add(out)
    return m


def ort_optimized_all(model: onnx.ModelProto, feeds: Feeds) -> Feeds:
    """Every tensor of ONNX Runtime's own optimized graph (default level), run again with
    optimizations off: the values its plain run computes, none of its rewrites stopped."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "optimized.onnx"
        ort_session(model, save=path)
        optimized = onnx.load(str(path))
    return ort_run(expose_everything(optimized), feeds, optimize=False)


def lowp_all(model: onnx.ModelProto, feeds: Feeds) -> Feeds:
    import lowp

    return lowp.Session(model, threads=1).run(feeds, capture=True)


def differs(a: np.ndarray, b: np.ndarray, tol: float) -> bool:
    """Integer tensors must be equal (within `tol`); float ones within float rounding too
    (a float tensor inside a fused integer group is only an approximation of it)."""
    if a.shape != b.shape:
        return True
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    if b.dtype.kind == "f":
        tol += 1e-4 * float(np.abs(b).max(initial=0)) + 1e-6
    return bool(d.max(initial=0) > tol)


def first_difference(model: onnx.ModelProto, ort_env: Feeds, low_env: Feeds, tol: float,
                     float_tol: float = 0.0) -> tuple[onnx.NodeProto, str] | None:
    """The first node (graph order) with an output both engines computed that differs:
    integer tensors beyond `tol`, float ones beyond `float_tol` (NaN equal to NaN)."""
    for node in model.graph.node:
        for o in node.output:
            if not o or o not in ort_env or o not in low_env:
                continue
            a, b = np.atleast_1d(low_env[o]), np.atleast_1d(ort_env[o])
            if a.shape != b.shape:
                if a.size != b.size:
                    return node, o
                a = a.reshape(b.shape)
            if not a.size or a.dtype.kind not in "biuf" or b.dtype.kind not in "biuf":
                continue
            x, y = a.astype(np.float64), b.astype(np.float64)
            ne = (x != y) & ~(np.isnan(x) & np.isnan(y))     # inf equal to inf, NaN to NaN
            if not ne.any():
                continue
            limit = float_tol if a.dtype.kind == "f" or b.dtype.kind == "f" else tol
            if not np.all(np.abs(x[ne] - y[ne]) <= limit):   # NaN or inf apart: beyond any
                return node, o
    return None


def first_divergence(model: onnx.ModelProto, ort_env: Feeds, low_env: Feeds, tol: float
                     ) -> onnx.NodeProto | None:
    """The first QuantizeLinear (graph order, so every quantized tensor upstream agrees)
    whose integer output differs; float tensors inside fused groups are not compared."""
    for node in model.graph.node:
        if node.op_type != "QuantizeLinear":
            continue
        o = node.output[0]
        if o in ort_env and o in low_env and differs(low_env[o], ort_env[o], tol):
            return node
    return None


def group_inputs(model: onnx.ModelProto, node: onnx.NodeProto) -> tuple[list[str], str]:
    """The integer (or float, if not quantized) inputs of the operator feeding `node`, and
    that operator's description."""
    producer = {o: n for n in model.graph.node for o in n.output}
    consts = {t.name for t in model.graph.initializer}
    op = producer.get(node.input[0]) if node.op_type == "QuantizeLinear" else node
    if op is None:
        return [node.input[0]], "graph input"
    inputs = []
    for i in op.input:
        if not i or i in consts:
            continue
        src = producer.get(i)
        while src is not None and src.op_type == "Identity":   # neither engine keeps it (O54)
            i = src.input[0]
            src = producer.get(i)
        if i in consts:
            continue
        if src is not None and src.op_type == "DequantizeLinear" and src.input[0] not in consts:
            inputs.append(src.input[0])
        elif src is None or src.op_type not in ("DequantizeLinear", "Constant"):
            inputs.append(i)
    return list(dict.fromkeys(inputs)), f"'{op.name}' ({op.op_type})"


def available_inputs(model: onnx.ModelProto, inputs: list[str], env: Feeds
                     ) -> tuple[list[str], list[str]]:
    """`inputs` with every tensor that neither engine computed replaced by its producer's
    group inputs (recursively), and the tensors so replaced. ONNX Runtime fuses some
    producers away (MatMulAddFusion's MatMul inside MatMulNBits or Gemm, a Conv's Add), and
    lowp may not expose the tensor either: the cut then starts before the fused producer."""
    producer = {o: n for n in model.graph.node for o in n.output}
    kept: list[str] = []
    gone: list[str] = []
    todo, seen = list(inputs), set()
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        seen.add(name)
        src = producer.get(name)
        if name in env or src is None:
            kept.append(name)
            continue
        gone.append(name)
        todo[:0] = group_inputs(model, src)[0]
    return kept, gone


def cut(model_path: Path, inputs: list[str], outputs: list[str], env: Feeds, out_dir: Path,
        tag: str) -> tuple[Path, Path]:
    """Extract the graph between `inputs` and `outputs`; save it and the input values."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", outputs[0])[-60:]
    onnx_path = out_dir / f"{tag}.{safe}.onnx"
    onnx.utils.extract_model(str(model_path), str(onnx_path), inputs, outputs,
                             check_model=False)
    npz_path = onnx_path.with_suffix(".npz")
    np.savez(npz_path, **{n: env[n] for n in inputs})
    return onnx_path, npz_path


def reference_all(model: onnx.ModelProto, feeds: Feeds) -> Feeds:
    """The onnx package's reference evaluator: a third opinion that runs DQ -> float op -> Q
    in float32 (not an oracle at near-ties). QDQ needs opset >= 19 there, whose
    QuantizeLinear/DequantizeLinear compute the same as the older versions."""
    from onnx.reference import ReferenceEvaluator

    m = onnx.ModelProto()
    m.CopyFrom(model)
    for o in m.opset_import:
        if o.domain in ("", "ai.onnx") and o.version < 21:
            o.version = 21
    names = [o.name for o in m.graph.output]
    return dict(zip(names, ReferenceEvaluator(m).run(None, feeds), strict=True))


def report(a: np.ndarray, b: np.ndarray) -> str:
    if a.shape != b.shape:
        if a.size != b.size:
            return f"shapes {a.shape} (lowp) and {b.shape} (ORT)"
        a = a.reshape(b.shape)
    x, y = a.astype(np.float64), b.astype(np.float64)
    ne = (x != y) & ~(np.isnan(x) & np.isnan(y))
    d = np.abs(x[ne] - y[ne])
    return (f"shape {b.shape} {b.dtype}: {100 * np.mean(ne):.2f}% of elements differ, "
            f"max {d.max(initial=0):.6g}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", choices=sorted(BY_NAME))
    p.add_argument("qdq", type=Path)
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "cases")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--batch-index", type=int, default=0, help="which evaluation batch (0, 1)")
    p.add_argument("--tol", type=float, default=0.0, help="for integer tensors")
    p.add_argument("--float-tol", type=float, default=0.0, help="for float tensors")
    p.add_argument("--exposed", action="store_true",
                   help="the older comparison: the file with its QuantizeLinear outputs "
                        "exposed, only those compared")
    p.add_argument("--all", action="store_true",
                   help="also list every tensor that differs, in graph order")
    args = p.parse_args(argv)
    spec = BY_NAME[args.model]
    model = onnx.load(str(args.qdq))
    b = spec.batch
    feeds = {k: v[args.batch_index * b:(args.batch_index + 1) * b]
             for k, v in make_feeds(spec, 2 * b, args.seed).items()}
    try:
        low_env = lowp_all(model, feeds)
    except Exception as e:
        print(f"lowp fails on the whole model: {type(e).__name__}: {e}")
        return 1
    plain = ort_run(model, feeds)
    for name, want in plain.items():
        print(f"output '{name}': {report(np.asarray(low_env[name]), want)}")
    if args.exposed:
        ort_env = ort_all(model, feeds)
        node = first_divergence(model, ort_env, low_env, args.tol)
        found = None if node is None else (node, node.output[0])
    else:
        ort_env = ort_optimized_all(model, feeds)
        same = all(np.array_equal(ort_env[n], v, equal_nan=v.dtype.kind == "f")
                   for n, v in plain.items())
        print("ONNX Runtime's optimized graph, run unoptimized with every tensor exposed: "
              + ("the plain run's outputs" if same else "NOT the plain run's outputs"))
        found = first_difference(model, ort_env, low_env, args.tol, args.float_tol)
    if args.all:
        for n in model.graph.node:
            for o in n.output:
                if o in low_env and o in ort_env and first_difference(
                        _only(n), ort_env, low_env, args.tol, args.float_tol):
                    print(f"  differs: '{o}' ({n.op_type}): "
                          f"{report(np.asarray(low_env[o]), ort_env[o])}")
    if found is None:
        print("no divergence within tolerance")
        return 0
    node, o = found
    inputs, what = group_inputs(model, node)
    if node.op_type == "QuantizeLinear":
        print(f"first divergence: {what}, quantized by '{node.name}' into '{o}'")
    else:
        print(f"first divergence: '{o}' of {what}")
    print(f"  {report(np.asarray(low_env[o]), ort_env[o])}")
    args.out.mkdir(parents=True, exist_ok=True)
    env = {**feeds, **low_env, **ort_env}   # float inputs of a group: exposed by lowp only
    inputs, gone = available_inputs(model, inputs, env)
    for name in gone:
        print(f"  '{name}' is computed by neither engine's exposed graph (ONNX Runtime fused "
              "its producer away): the cut starts at that producer's inputs")
    onnx_path, npz_path = cut(args.qdq, inputs, [o], env, args.out,
                              f"{args.model}.{args.qdq.stem.split('.')[1]}")
    small = onnx.load(str(onnx_path))
    with np.load(npz_path) as z:
        small_feeds = {k: z[k] for k in z.files}
    try:
        a, b = lowp_all(small, small_feeds), ort_run(small, small_feeds)
        print(f"  cut model: {report(a[o], b[o])}")
        r = reference_all(small, small_feeds)[o]
        print(f"  float emulation (onnx.reference) vs lowp: {report(a[o], r)}")
        print(f"  float emulation (onnx.reference) vs ORT:  {report(b[o], r)}")
    except Exception as e:
        print(f"  cut model: {type(e).__name__}: {e}")
    print(f"saved {onnx_path} and {npz_path}")
    return 0


def _only(node: onnx.NodeProto) -> onnx.ModelProto:
    """A model holding `node` alone (for first_difference over its outputs)."""
    m = onnx.ModelProto()
    m.graph.node.append(node)
    return m


if __name__ == "__main__":
    raise SystemExit(main())
