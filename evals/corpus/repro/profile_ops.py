"""Where lowp's Session spends its time on a corpus model's QDQ file, by operator and step kind.

    python evals/corpus/repro/profile_ops.py MODEL FILE.onnx [--threads 1] [--top 8]

One batch of the model's evaluation feeds, three warm-up runs (the first two record the
replayed plan), then `--runs` runs with `Session.run(profile=True)`, averaged: each step
inside a native Program is timed there (the total is close to the replayed latency of
run.py); keys ending in " (python)" or " (calls)" are steps run from Python.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
