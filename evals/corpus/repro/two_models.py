"""Two QDQ files of one corpus model on lowp's Session, interleaved (a model before and
after a change of what stays float).

    python evals/corpus/repro/two_models.py MODEL A.onnx B.onnx [--threads 1] [--rounds 15]

One process holds both sessions; after 3 warm-up runs each, `rounds` rounds run A then B on
one batch of the model's evaluation feeds (seed 1); the medians, the ranges and the ratio
B / A are printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from evals.corpus.models import BY_NAME, one_batch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    import lowp

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", choices=sorted(BY_NAME), metavar="MODEL")
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args(argv)
    spec = BY_NAME[args.model]
    feeds = one_batch(spec, 1)
    sessions = [lowp.Session(str(path), threads=args.threads) for path in (args.a, args.b)]
    times: list[list[float]] = [[], []]
    with threadpool_limits(limits=args.threads):
        for s in sessions:
            for _ in range(3):
                s.run(feeds)
        for _ in range(args.rounds):
            for s, t in zip(sessions, times, strict=True):
                start = time.perf_counter()
                s.run(feeds)
                t.append(1e3 * (time.perf_counter() - start))
    a, b = (statistics.median(t) for t in times)
    print(f"{args.model:20s} A {a:8.2f} ms ({min(times[0]):.2f}-{max(times[0]):.2f})   "
          f"B {b:8.2f} ms ({min(times[1]):.2f}-{max(times[1]):.2f})   B / A {b / a:5.2f}",
          flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
