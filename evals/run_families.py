"""Quantize each model family with the default Config and compare float vs int8 quality and
latency on ONNX Runtime and on lowp's engine; prints one table (failures per cell).

    python evals/run_families.py [--opset 11] [--families crnn bert] [--repeats 10]
                                 [--batch 8] [--threads 1] [--dir /tmp/lowp-families]

Quality: float (ONNX Runtime), float (lowp's engine), int8 on lowp's engine, int8 on ONNX
Runtime (the same QDQ file). Fidelity metrics compare against the float ONNX Runtime outputs.
Latency: median of repeated runs after warm-up on one batch of evaluation samples, with
`--threads` threads for each engine (numpy's BLAS pool included).
"lowp==ORT %", "max|lowp-ORT|": int8 output elements on which lowp's engine and ONNX Runtime
agree exactly on the same QDQ file, and their largest difference.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from threadpoolctl import threadpool_limits
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evals import families  # noqa: E402

ENGINES = ("float ORT", "float lowp", "int8 lowp", "int8 ORT")
Runner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass
class Result:
    """Everything measured for one family; a string is the error of a failed step."""

    family: str
    ops: list[str] = field(default_factory=list)
    stage_errors: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, dict[str, float | str]] = field(default_factory=dict)
    latency_ms: dict[str, float | str] = field(default_factory=dict)
    identical: float | None = None          # % of int8 output elements where lowp == ORT
    max_diff: float | None = None           # largest |lowp - ORT| over the int8 outputs


def _error(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0] if msg else ''}"[:300]


def ort_runner(model: str | Path | onnx.ModelProto, threads: int) -> Runner:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    s = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in s.get_outputs()]
    return lambda feeds: dict(zip(names, s.run(None, dict(feeds)), strict=True))


def lowp_runner(model: str | Path | onnx.ModelProto, threads: int) -> Runner:
    import lowp

    s = lowp.Session(model, threads=threads)
    return lambda feeds: s.run(feeds)


def run_batched(run: Runner, feeds: dict[str, np.ndarray], batch: int = 64
                ) -> dict[str, np.ndarray]:
    n = len(next(iter(feeds.values())))
    parts = [run({k: v[i:i + batch] for k, v in feeds.items()}) for i in range(0, n, batch)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def median_ms(run: Runner, feeds: dict[str, np.ndarray], repeats: int,
              budget: float = 3.0) -> float:
    for _ in range(2):
        run(feeds)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats and (len(times) < 3 or time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        run(feeds)
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def evaluate(name: str, directory: Path, *, opset: int, repeats: int, batch: int,
             threads: int, quick: bool = False, bar: tqdm | None = None) -> Result:
    """Build, quantize (default Config), score and time one family; never raises."""
    import lowp

    res = Result(name)

    def stage(label: str) -> None:
        if bar is not None:
            bar.set_postfix_str(f"{name}: {label}")

    try:
        stage("build")
        path, calib, feeds, targets = families.build(name, directory, opset=opset, quick=quick)
        res.ops = families.op_types(path)
    except Exception as e:
        res.stage_errors["build"] = _error(e)
        return res
    qdq: onnx.ModelProto | None = None
    try:
        stage("quantize")
        qdq = lowp.quantize_model(path, calib)
        onnx.save(qdq, str(path.with_suffix(".qdq.onnx")))
    except Exception as e:
        res.stage_errors["quantize"] = _error(e)
    models = {"float ORT": (ort_runner, path), "float lowp": (lowp_runner, path),
              "int8 lowp": (lowp_runner, qdq), "int8 ORT": (ort_runner, qdq)}
    reference: dict[str, np.ndarray] | None = None
    int8: dict[str, dict[str, np.ndarray]] = {}
    one_batch = {k: v[:batch] for k, v in feeds.items()}
    for engine in ENGINES:
        make, model = models[engine]
        if model is None:
            res.latency_ms[engine] = "no QDQ model"
            continue
        stage(engine)
        try:
            run = make(model, threads)
        except Exception as e:
            res.stage_errors[f"{engine} load"] = _error(e)
            res.latency_ms[engine] = "load failed"
            continue
        try:
            outputs = run_batched(run, feeds)
            if reference is None:
                if engine != "float ORT":
                    raise RuntimeError("no float ONNX Runtime reference")
                reference = outputs
            if engine.startswith("int8"):
                int8[engine] = outputs
            for metric, value in families.metric(name, outputs, targets, reference).items():
                res.metrics.setdefault(metric, {})[engine] = value
        except Exception as e:
            res.stage_errors[f"{engine} run"] = _error(e)
            if "--debug" in sys.argv:
                traceback.print_exc()
            continue
        try:
            res.latency_ms[engine] = median_ms(run, one_batch, repeats)
        except Exception as e:
            res.latency_ms[engine] = _error(e)
    if len(int8) == 2:
        a, b = int8["int8 lowp"], int8["int8 ORT"]
        same = sum(int(np.sum(a[k] == b[k])) for k in b)
        res.identical = 100.0 * same / sum(b[k].size for k in b)
        res.max_diff = max(float(np.abs(a[k].astype(np.float64) - b[k]).max()) for k in b)
    return res


def _fmt(v: float | str | None) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return "FAIL"
    return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"


def print_table(results: list[Result], opset: int) -> None:
    header = ["family", "metric", *ENGINES, *(f"ms {e}" for e in ENGINES), "lowp==ORT %",
              "max|lowp-ORT|"]
    rows: list[list[str]] = []
    for r in results:
        metrics = list(r.metrics) or ["-"]
        for k, m in enumerate(metrics):
            vals = r.metrics.get(m, {})
            lat = [_fmt(r.latency_ms.get(e)) if k == 0 else "" for e in ENGINES]
            rows.append([r.family if k == 0 else "", m,
                         *(_fmt(vals.get(e)) for e in ENGINES), *lat,
                         _fmt(r.identical) if k == 0 else "",
                         _fmt(r.max_diff) if k == 0 else ""])
    widths = [max(len(x[i]) for x in [header, *rows]) for i in range(len(header))]
    print(f"\nModel families, opset {opset}, default Config (int8 QDQ)")
    for n, row in enumerate([header, *rows]):
        print("  ".join(c.rjust(w) if i > 1 else c.ljust(w)
                        for i, (c, w) in enumerate(zip(row, widths, strict=True))))
        if n == 0:
            print("  ".join("-" * w for w in widths))
    for r in results:
        if r.stage_errors:
            print(f"\n{r.family}: failures")
            for where, msg in r.stage_errors.items():
                print(f"  {where}: {msg}")
    print("\nOperators")
    for r in results:
        print(f"  {r.family}: {' '.join(r.ops)}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--families", nargs="+", default=list(families.FAMILIES),
                   choices=families.FAMILIES)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--batch", type=int, default=8, help="samples per timed run")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "lowp-families")
    p.add_argument("--quick", action="store_true", help="a few training steps only")
    p.add_argument("--debug", action="store_true", help="print tracebacks of failures")
    args = p.parse_args(argv)
    results = []
    # lowp's float operators call numpy, whose BLAS pool ignores Session(threads=...): bound
    # it too, or an oversubscribed BLAS pool dominates the float timings
    with threadpool_limits(limits=args.threads), tqdm(args.families, desc="families",
                                                      unit="model") as bar:
        for name in bar:
            results.append(evaluate(name, args.dir, opset=args.opset, repeats=args.repeats,
                                    batch=args.batch, threads=args.threads, quick=args.quick,
                                    bar=bar))
    print_table(results, args.opset)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
