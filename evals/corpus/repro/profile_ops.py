"""Where lowp's Session spends its time on a corpus model's QDQ file, by operator and step kind.

    python evals/corpus/repro/profile_ops.py MODEL QDQ.onnx [--threads 1] [--top 8]

One batch of the model's evaluation feeds, one warm-up run, then one run with
`Session.run(profile=True)` (step by step, without the replayer, so the total is higher than
the replayed latency of run.py; the shares are what matters).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from evals.corpus.models import BY_NAME, make_feeds  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    import lowp

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", choices=sorted(BY_NAME))
    p.add_argument("qdq", type=Path)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--top", type=int, default=8)
    args = p.parse_args(argv)
    spec = BY_NAME[args.model]
    s = lowp.Session(str(args.qdq), threads=args.threads)
    feeds = make_feeds(spec, spec.batch, 1)
    with threadpool_limits(limits=args.threads):
        s.run(feeds)
        s.run(feeds, profile=True)
    total = sum(s.last_profile.values())
    for key, t in sorted(s.last_profile.items(), key=lambda kv: -kv[1])[:args.top]:
        print(f"{key:32s} {1e3 * t:8.1f} ms {100 * t / total:5.1f}%")
    print(f"{'total':32s} {1e3 * total:8.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
