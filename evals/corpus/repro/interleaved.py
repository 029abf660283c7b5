"""lowp's Session against ONNX Runtime on the same QDQ file of a corpus model, interleaved.

    python evals/corpus/repro/interleaved.py MODEL QDQ.onnx [MODEL QDQ.onnx ...]
                                             [--threads 1] [--rounds 15]

One process holds both sessions; after 3 warm-up runs each, `rounds` rounds run lowp then
ONNX Runtime on one batch of the model's evaluation feeds (seed 1), and the medians and
their ratio are printed. On a shared machine the ratio is steadier than two figures taken
minutes apart (run.py times one engine after the other).
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
    import onnxruntime as ort

    import lowp

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pairs", nargs="+", help="MODEL QDQ.onnx, repeated")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args(argv)
    if len(args.pairs) % 2:
        p.error("give MODEL QDQ.onnx pairs")
    for name, path in zip(args.pairs[::2], args.pairs[1::2], strict=True):
        spec = BY_NAME[name]
        feeds = one_batch(spec, 1)
        session = lowp.Session(path, threads=args.threads)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = args.threads, 1
        runtime = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        ours, theirs = [], []
        with threadpool_limits(limits=args.threads):
            for _ in range(3):
                session.run(feeds)
                runtime.run(None, feeds)
            for _ in range(args.rounds):
                t = time.perf_counter()
                session.run(feeds)
                ours.append(time.perf_counter() - t)
                t = time.perf_counter()
                runtime.run(None, feeds)
                theirs.append(time.perf_counter() - t)
        a, b = 1e3 * statistics.median(ours), 1e3 * statistics.median(theirs)
        print(f"{name:20s} lowp {a:8.2f} ms   ONNX Runtime {b:8.2f} ms   ratio {a / b:5.2f}",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
