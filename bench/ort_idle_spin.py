"""The CPU time ONNX Runtime's intra-op workers burn after a run, and lowp's pool after one.

    python bench/ort_idle_spin.py NAME QDQ.onnx [NAME QDQ.onnx ...] [--threads 2] [--runs 5]

NAME is a corpus model (its evaluation feeds, `evals/corpus/models.py`). For each engine, after
3 warm-up runs: `--runs` times, one run, then the calling thread sleeps 5 ms 24 times
while the CPU clocks of the engine's worker threads are read (bench._common.threads_cpu);
printed: the cumulative milliseconds of worker CPU time at each 5 ms step. ONNX Runtime's
workers spin after a run (its default `session.intra_op.allow_spinning`: 2^20 pause
iterations in its WorkerLoop before blocking), lowp's for at most 400 us (native/threadpool.h,
kSpin). On the process CPU clock of a benchmark that alternates the two engines, what one
engine's workers burn after its run lands in the other engine's run.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path

import onnxruntime as ort
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import thread_ids, threads_cpu  # noqa: E402
from evals.corpus.models import BY_NAME, one_batch  # noqa: E402

import lowp  # noqa: E402


def after_runs(run: Callable[[], object], workers: Collection[int], runs: int) -> list[list[float]]:
    """For each of `runs` runs: the workers' cumulative CPU ms at each 5 ms of sleep after it."""
    out = []
    for _ in range(runs):
        run()
        c0 = threads_cpu(workers)
        steps = []
        for _ in range(24):
            time.sleep(0.005)
            steps.append(1e3 * (threads_cpu(workers) - c0))
        out.append(steps)
    return out


def measure(name: str, path: str, threads: int, runs: int) -> None:
    feeds = one_batch(BY_NAME[name], 1)
    session = lowp.Session(path, threads=threads)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    before = thread_ids()
    runtime = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    theirs = thread_ids() - before
    with threadpool_limits(limits=threads):
        for _ in range(3):
            session.run(feeds)
            runtime.run(None, feeds)
        # lowp's pool starts on first use: every thread but the caller and ONNX Runtime's
        ours = thread_ids() - theirs - {threading.get_native_id()}
        for engine, run, workers in (("lowp", lambda: session.run(feeds), ours),
                                     ("ONNX Runtime", lambda: runtime.run(None, feeds), theirs)):
            for steps in after_runs(run, workers, runs):
                print(f"{name:16s} {engine:12s} {threads} thr  workers' CPU ms after the run, "
                      f"every 5 ms: " + " ".join(f"{s:.1f}" for s in steps), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", nargs="+", help="NAME QDQ.onnx, repeated")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if len(args.pairs) % 2:
        parser.error("give NAME QDQ.onnx pairs")
    for name, path in zip(args.pairs[::2], args.pairs[1::2], strict=True):
        measure(name, path, args.threads, args.runs)


if __name__ == "__main__":
    main()
