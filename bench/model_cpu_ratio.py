"""lowp's Session against ONNX Runtime on the same QDQ file, interleaved in one process, timed
on the process CPU clock (steadier than wall time on a loaded machine), optionally on a
forced instruction-set path.

    python bench/model_cpu_ratio.py NAME QDQ.onnx [NAME QDQ.onnx ...] [--threads 1]
                                    [--rounds 8] [--path avx2] [--ort-spin on|stop|off]

NAME is a corpus model (its evaluation feeds, `evals/corpus/models.py`) or a network of
`bench/networks.py` (resnet18, mobilenet_v2: one 1x3x224x224 float input named `input`,
their `bench/models.py` QDQ files). After 3 warm-up runs each, `--rounds` rounds run lowp
then ONNX Runtime; printed: the ratio of the medians and of the fastest runs (CPU time) and
the ratio of the wall-time medians, and of each engine's own CPU time (its calling thread
inside its run and its workers over the round, bench._common.wall_cpu_own). ONNX Runtime
always runs its own best kernels; `--path` forces lowp's (`native_backend.use_path`).
`--ort-spin` sets whether ONNX Runtime's idle intra-op workers spin after its runs (`on`: its
default), during its runs only (`stop`) or never (`off`): the process CPU clock counts a
worker spinning during lowp's next run (docs/native.md, "What the 2-thread CPU ratios of
dfn3_erb_dec hold").
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
from contextlib import nullcontext
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import ORT_SPIN, ort_session, thread_ids, wall_cpu_own  # noqa: E402
from evals.corpus.models import BY_NAME, one_batch  # noqa: E402

import lowp  # noqa: E402
from lowp.runtime import native_backend  # noqa: E402


def feeds_for(name: str) -> dict[str, np.ndarray]:
    if name in BY_NAME:
        spec = BY_NAME[name]
        return one_batch(spec, 1)
    rng = np.random.default_rng(1)
    return {"input": rng.standard_normal((1, 3, 224, 224)).astype(np.float32)}


def measure(path: str, feeds: dict[str, np.ndarray], threads: int, rounds: int,
            spin: str = "on") -> tuple[tuple[list[float], ...], ...]:
    """CPU, wall and own CPU seconds of each run, (lowp, ONNX Runtime)."""
    session = lowp.Session(path, threads=threads)
    before = thread_ids()
    runtime = ort_session(path, threads, spin)
    ort_workers = thread_ids() - before
    me = threading.get_native_id()
    with threadpool_limits(limits=threads):
        wall, cpu, own, _ = wall_cpu_own(
            (lambda: session.run(feeds), lambda: runtime.run(None, feeds)),
            (lambda: thread_ids() - ort_workers - {me}, lambda: ort_workers), rounds)
    return tuple(cpu), tuple(wall), tuple(own)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", nargs="+", help="NAME QDQ.onnx, repeated")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--path", default=None, help="force lowp's instruction-set path")
    parser.add_argument("--ort-spin", choices=sorted(ORT_SPIN), default="on",
                        help="ONNX Runtime's idle workers: spin after runs (on, its default), "
                        "during runs only (stop), never (off)")
    args = parser.parse_args()
    if len(args.pairs) % 2:
        parser.error("give NAME QDQ.onnx pairs")
    for name, path in zip(args.pairs[::2], args.pairs[1::2], strict=True):
        with native_backend.use_path(args.path) if args.path else nullcontext():
            cpu, wall, own = measure(path, feeds_for(name), args.threads, args.rounds,
                                args.ort_spin)
        print(f"{name:16s} {args.path or 'default':12s} spin {args.ort_spin:4s} lowp/ORT cpu "
              f"{statistics.median(cpu[0]) / statistics.median(cpu[1]):5.3f} "
              f"(fastest {min(cpu[0]) / min(cpu[1]):5.3f})  wall "
              f"{statistics.median(wall[0]) / statistics.median(wall[1]):5.3f}  own cpu "
              f"{statistics.median(own[0]) / statistics.median(own[1]):5.3f}", flush=True)

if __name__ == "__main__":
    main()
