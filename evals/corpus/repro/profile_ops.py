"""Where lowp's Session spends its time on a corpus model's QDQ file, by operator and step kind.

    python evals/corpus/repro/profile_ops.py MODEL FILE.onnx [--threads 1] [--top 8] [--ort]

One batch of the model's evaluation feeds, three warm-up runs (the first two record the
replayed plan), then `--runs` runs with `Session.run(profile=True)`, averaged: each step
inside a native Program is timed there (the total is close to the replayed latency of
run.py); keys ending in " (python)" or " (calls)" are steps run from Python. With `--ort`,
ONNX Runtime's profile of the same file and feeds follows (`enable_profiling`, its
optimized graph's nodes summed by operator type over the same number of runs after three
warm-up runs).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from evals.corpus.models import ALL_BY_NAME, one_batch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    import lowp

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", choices=sorted(ALL_BY_NAME))
    p.add_argument("qdq", type=Path)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--top", type=int, default=8)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--ort", action="store_true", help="also ONNX Runtime's profile")
    args = p.parse_args(argv)
    spec = ALL_BY_NAME[args.model]
    s = lowp.Session(str(args.qdq), threads=args.threads)
    feeds = one_batch(spec, 1)
    times: dict[str, float] = {}
    with threadpool_limits(limits=args.threads):
        for _ in range(3):
            s.run(feeds)
        for _ in range(args.runs):
            s.run(feeds, profile=True)
            for key, t in s.last_profile.items():
                times[key] = times.get(key, 0.0) + t / args.runs
    total = sum(times.values())
    for key, t in sorted(times.items(), key=lambda kv: -kv[1])[:args.top]:
        print(f"{key:32s} {1e3 * t:8.1f} ms {100 * t / total:5.1f}%")
    print(f"{'total':32s} {1e3 * total:8.1f} ms")
    if args.ort:
        print("ONNX Runtime:")
        _print(ort_profile(args.qdq, feeds, args.threads, args.runs), args.top)
    return 0


def _print(times: dict[str, float], top: int) -> None:
    total = sum(times.values())
    for key, t in sorted(times.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{key:32s} {1e3 * t:8.1f} ms {100 * t / total:5.1f}%")
    print(f"{'total':32s} {1e3 * total:8.1f} ms")


def ort_profile(path: Path, feeds: dict[str, Any], threads: int, runs: int
                ) -> dict[str, float]:
    """Seconds per run of ONNX Runtime's nodes by operator type (its own profiler), over
    `runs` runs after three warm-up runs."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as d:
        options.profile_file_prefix = str(Path(d) / "ort")
        session = ort.InferenceSession(str(path), options,
                                       providers=["CPUExecutionProvider"])
        for _ in range(3 + runs):
            session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    nodes = [e for e in events
             if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")]
    per_run = len(nodes) // (3 + runs)          # every run has the same nodes
    times: dict[str, float] = {}
    for e in nodes[len(nodes) - per_run * runs:]:
        key = e["args"].get("op_name", "?")
        times[key] = times.get(key, 0.0) + e["dur"] * 1e-6 / runs
    return times

if __name__ == "__main__":
    raise SystemExit(main())
