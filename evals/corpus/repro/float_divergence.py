"""Where lowp's Session and ONNX Runtime part on a FLOAT corpus model, and which of ONNX
Runtime's graph transformations is responsible.

    python evals/corpus/repro/float_divergence.py MODEL [--batch-index 0] [--try NAME ...]

Three runs of the float model (the corpus's feeds, seed 1, one batch):

1. ONNX Runtime as run.py runs it (default level, nothing exposed) against lowp's outputs:
   how far apart they are.
2. ONNX Runtime with optimizations off and every tensor exposed (the nodes as written)
   against lowp's capture of every tensor: the first differing tensor in graph order with
   its operator. "none" means lowp computes the graph as written bit for bit and the
   difference comes from a rewrite ONNX Runtime makes (exposing outputs would stop most of
   them, hence level 0 here).
3. The node types of ONNX Runtime's optimized graph (SessionOptions.optimized_model_filepath)
   that the model did not have, and then ONNX Runtime's default run again with one
   transformer at a time disabled (`disabled_optimizers`; `--try` adds names): a
   transformer whose removal makes ONNX Runtime equal to lowp is the cause.
4. With `--bisect`: the model cut at one tensor T (T its only output, so both engines fuse
   everything upstream as in the whole model, bar T's own producer), run on both engines;
   a binary search over the float tensors the last one is computed from, repeated over
   those of the tensor it finds, finds the first T whose value differs (assuming that once
   a tensor differs, the ones computed from it do too).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from evals.corpus.models import BY_NAME, load_float, make_feeds  # noqa: E402

Feeds = dict[str, np.ndarray]

# ONNX Runtime transformers that change float rounding on convolutional / transformer graphs
CANDIDATES = ("ConvBNFusion", "ConvAddFusion", "ConvMulFusion", "ConvActivationFusion",
              "NchwcTransformer", "GemmActivationFusion", "MatMulAddFusion",
              "MatMulScaleFusion", "LayerNormFusion", "SimplifiedLayerNormFusion",
              "SkipLayerNormFusion", "GeluFusion", "BiasGeluFusion", "FastGeluFusion",
              "ConstantFolding", "TransposeOptimizer", "NhwcTransformer",
              "ConvAddActivationFusion", "DivMulFusion", "GemmTransposeFusion",
              "MatmulTransposeFusion", "BiasSoftmaxFusion", "QuickGeluFusion",
              "ReshapeFusion", "AttentionFusion", "EmbedLayerNormFusion", "PadFusion")


def ort_session(model: onnx.ModelProto, *, level: str = "default", expose: bool = False,
                disabled: Sequence[str] = (), save: Path | None = None):  # noqa: ANN201
    import onnxruntime as ort

    m = onnx.ModelProto()
    m.CopyFrom(model)
    if expose:
        have = {o.name for o in m.graph.output}
        for node in m.graph.node:
            for out in node.output:
                if out and out not in have:
                    m.graph.output.append(onnx.ValueInfoProto(name=out))
                    have.add(out)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    if level == "off":
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if save is not None:
        opts.optimized_model_filepath = str(save)
    return ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"],
                                disabled_optimizers=list(disabled))


def ort_run(model: onnx.ModelProto, feeds: Feeds, **kw: object) -> Feeds:
    s = ort_session(model, **kw)  # type: ignore[arg-type]
    names = [o.name for o in s.get_outputs()]
    return dict(zip(names, s.run(None, feeds), strict=True))


def max_diff(a: Feeds, b: Feeds, names: Sequence[str]) -> float:
    worst = 0.0
    for n in names:
        x, y = np.asarray(a[n]), np.asarray(b[n])
        if x.shape != y.shape:
            return float("inf")
        if x.size and x.dtype.kind in "fc":
            worst = max(worst, float(np.abs(x.astype(np.float64) - y.astype(np.float64)).max()))
        elif x.size and not np.array_equal(x, y):
            return float("inf")
    return worst


def first_difference(model: onnx.ModelProto, low: Feeds, ref: Feeds
                     ) -> tuple[onnx.NodeProto, str, float, float] | None:
    """The first node (graph order) one of whose outputs differs: node, tensor, max
    difference, fraction of differing elements."""
    for node in model.graph.node:
        for out in node.output:
            if not out or out not in low or out not in ref:
                continue
            a, b = np.asarray(low[out]), np.asarray(ref[out])
            if a.shape != b.shape:
                return node, out, float("inf"), 1.0
            if not a.size:
                continue
            ne = a != b
            if a.dtype.kind == "f":
                ne &= ~(np.isnan(a) & np.isnan(b))
            if ne.any():
                d = float(np.abs(a.astype(np.float64) - b.astype(np.float64))[ne].max())
                return node, out, d, float(ne.mean())
    return None


def main(argv: Sequence[str] | None = None) -> int:
    import lowp

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model")
    p.add_argument("--batch-index", type=int, default=0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--bisect", action="store_true",
                   help="find the first differing tensor with both engines' fusions on")
    p.add_argument("--try", dest="extra", nargs="*", default=[],
                   help="more ONNX Runtime transformer names to disable one at a time")
    a = p.parse_args(argv)
    spec = BY_NAME[a.model]
    model = load_float(spec)
    feeds_all = make_feeds(spec, 2 * spec.batch, a.seed)
    k = a.batch_index * spec.batch
    feeds = {n: v[k:k + spec.batch] for n, v in feeds_all.items()}
    outs = [o.name for o in model.graph.output]

    session = lowp.Session(model)
    low_out = session.run(feeds)
    ort_out = ort_run(model, feeds)
    print(f"1. outputs, lowp vs ONNX Runtime (default level): max |diff| "
          f"{max_diff(low_out, ort_out, outs):.3g}")

    low_all = session.run(feeds, capture=True)
    ort_plain = ort_run(model, feeds, level="off", expose=True)
    first = first_difference(model, low_all, ort_plain)
    print(f"   outputs, lowp vs ONNX Runtime (optimizations off): max |diff| "
          f"{max_diff(low_out, ort_plain, outs):.3g}")
    if first is None:
        print("2. first differing tensor vs the graph as written: none")
    else:
        node, out, d, frac = first
        print(f"2. first differing tensor vs the graph as written: {out!r} of "
              f"{node.op_type} {node.name!r} (max {d:.3g}, {100 * frac:.2f}% of elements)")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "opt.onnx"
        ort_session(model, save=path)
        opt = onnx.load(str(path))
    before = Counter(n.op_type for n in model.graph.node)
    after = Counter(n.op_type for n in opt.graph.node)
    changed = {t: (before.get(t, 0), after.get(t, 0))
               for t in sorted(set(before) | set(after)) if before.get(t, 0) != after.get(t, 0)}
    print("3. node counts, model -> ONNX Runtime's optimized graph: " + ", ".join(
        f"{t} {x}->{y}" for t, (x, y) in changed.items()))
    fused = Counter()
    for n in opt.graph.node:
        if n.op_type in ("FusedConv", "FusedGemm", "FusedMatMul"):
            for attr in n.attribute:
                if attr.name == "activation":
                    fused[f"{n.op_type}({attr.s.decode()})"] += 1
    if fused:
        print("   fused activations: " + ", ".join(f"{t} x{c}" for t, c in fused.items()))
    base = max_diff(low_out, ort_out, outs)
    helping: list[str] = []
    for name in (*CANDIDATES, *a.extra):
        try:
            got = ort_run(model, feeds, disabled=[name])
        except Exception as e:   # noqa: BLE001 - an unknown name is reported, not fatal
            print(f"   without {name}: failed ({type(e).__name__})")
            continue
        d = max_diff(low_out, got, outs)
        if d == base:
            continue
        helping += [name] if d < base else []
        mark = "  <- lowp equals ONNX Runtime without it" if d == 0 else ""
        print(f"   without {name}: max |diff| {d:.3g}{mark}")
    if len(helping) > 1:
        d = max_diff(low_out, ort_run(model, feeds, disabled=helping), outs)
        print(f"   without {' + '.join(helping)}: max |diff| {d:.3g}")
    print(f"   (every other transformer tried leaves it at {base:.3g})")
    if a.bisect:
        bisect(model, feeds, low_all)
    return 0


def cut_at(model: onnx.ModelProto, name: str, shape: tuple[int, ...]) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.output[:]
    m.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT,
                                                             list(shape)))
    return m


def cut_differs(model: onnx.ModelProto, feeds: Feeds, low_all: Feeds, name: str) -> float:
    import lowp

    m = cut_at(model, name, np.shape(low_all[name]))
    got = lowp.Session(m).run(feeds)[name]
    want = ort_run(m, feeds)[name]
    return max_diff({name: got}, {name: want}, [name])


def ancestors(model: onnx.ModelProto, name: str) -> set[str]:
    """The tensors `name` is computed from, itself included."""
    producer = {o: n for n in model.graph.node for o in n.output if o}
    seen: set[str] = set()
    todo = [name]
    while todo:
        t = todo.pop()
        if t in seen:
            continue
        seen.add(t)
        if t in producer:
            todo.extend(i for i in producer[t].input if i)
    return seen


def first_differing_cut(model: onnx.ModelProto, names: Sequence[str],
                        differs: Callable[[str], bool]) -> str | None:
    """The first of `names` (graph order) whose cut differs, or None when the last agrees:
    a binary search over the tensors the last one is computed from, then again over those
    of the tensor it found until it finds that tensor again (a search over every tensor in
    graph order stops at a tensor whose predecessor in that order is an agreeing value of
    another branch: terrain_consistency_unet's first search ended at a Reshape of a Conv
    that differed too)."""
    cache: dict[str, bool] = {}

    def cut(name: str) -> bool:
        if name not in cache:
            cache[name] = differs(name)
        return cache[name]

    if not names or not cut(names[-1]):
        return None
    target = names[-1]
    while True:
        up = ancestors(model, target)
        pool = [n for n in names if n in up]       # ends with target, which differs
        lo, hi = 0, len(pool) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if cut(pool[mid]):
                hi = mid
            else:
                lo = mid + 1
        if pool[hi] == target:
            return target
        target = pool[hi]


def bisect(model: onnx.ModelProto, feeds: Feeds, low_all: Feeds) -> None:
    """4. the first tensor (graph order) where the cut models differ."""
    names = [o for n in model.graph.node for o in n.output
             if o and o in low_all and np.asarray(low_all[o]).dtype == np.float32
             and np.asarray(low_all[o]).size > 1]
    first = first_differing_cut(model, names,
                                lambda name: cut_differs(model, feeds, low_all, name) > 0)
    if first is None:
        print("4. bisect: the last float tensor agrees")
        return
    producer = {o: n for n in model.graph.node for o in n.output}
    node = producer[first]
    d = cut_differs(model, feeds, low_all, first)
    print(f"4. bisect: first differing tensor {first!r} of {node.op_type} {node.name!r} "
          f"(inputs {list(node.input)}), max |diff| {d:.3g}")

if __name__ == "__main__":
    sys.exit(main())
