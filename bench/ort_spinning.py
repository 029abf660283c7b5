"""What ONNX Runtime's spinning workers cost lowp's next run in the same process.

    python bench/ort_spinning.py FILE.onnx --model NAME [--threads 2] [--rounds 15]

One QDQ file (e.g. `bench/corpus_ratio.py`'s DIR/<name>.lowp.qdq.onnx) on the corpus model
NAME's evaluation feeds (seed 1), lowp and ONNX Runtime at `--threads` threads. For ONNX
Runtime's `session.intra_op.allow_spinning` off, on, and off again: the wall medians of lowp
and ONNX Runtime run in turn (`--rounds` rounds), then of lowp alone in a block started 0.2 s
after ONNX Runtime's last run. lowp's alternating median over its block median is what the
other runtime's idle workers cost it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evals.corpus.models import BY_NAME, make_feeds  # noqa: E402

import lowp  # noqa: E402


def _median_ms(fns: list[Callable[[], object]], rounds: int) -> list[float]:
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for fn, t in zip(fns, times, strict=True):
            t0 = time.perf_counter()
            fn()
            t.append(time.perf_counter() - t0)
    return [float(np.median(t)) * 1e3 for t in times]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file")
    ap.add_argument("--model", required=True, help="corpus model whose feeds to use")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    spec = BY_NAME[args.model]
    feeds = make_feeds(spec, spec.batch, seed=1)
    feed = dict(feeds[0] if isinstance(feeds, list) else feeds)
    ours = lowp.Session(args.file, threads=args.threads)
    print(f"{args.model}, {args.threads} threads, {args.rounds} rounds, wall medians (ms)")
    print("ORT spinning | lowp alternating | lowp block | ratio | ORT alternating")
    for spin in ("0", "1", "0"):
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.add_session_config_entry("session.intra_op.allow_spinning", spin)
        theirs = ort.InferenceSession(args.file, so, providers=["CPUExecutionProvider"])
        fns: list[Callable[[], object]] = [lambda: ours.run(dict(feed)),
                                           lambda s=theirs: s.run(None, dict(feed))]
        for fn in fns * 3:
            fn()
        mixed, other = _median_ms(fns, args.rounds)
        time.sleep(0.2)
        block = _median_ms(fns[:1], args.rounds)[0]
        print(f"{'on' if spin == '1' else 'off':>12} | {mixed:16.2f} | {block:10.2f} | "
              f"{mixed / block:5.2f} | {other:15.2f}")


if __name__ == "__main__":
    main()
