"""lowp with its Programs' output buffers shared (lowp.runtime.sharing), lowp without, and
ONNX Runtime on the same file, interleaved in one process, timed on the process CPU clock.

    python bench/shared_outputs.py --work DIR [--prequantized] --models A B ...
                                   [--threads 1 2] [--rounds 60]

Each model's file is the one `bench/corpus_ratio.py` runs (`DIR/<name>.lowp.qdq.onnx`,
quantized there when missing, or with `--prequantized` the file the corpus ships); a name
of `bench/networks.py` (resnet18, mobilenet_v2) runs its `bench/models.py` QDQ file on one
1x3x224x224 input. After 4 warm-up runs each (the third compiles and checks the shared
Programs), `--rounds` rounds run the three sessions in turn; printed: the CPU-time ratios
of the medians (shared / not shared, and each over ONNX Runtime), and the bytes of step
outputs moved into arenas against the arenas' size.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.corpus_ratio import qdq_file  # noqa: E402
from evals.corpus.models import ALL_BY_NAME, make_feeds  # noqa: E402

import lowp  # noqa: E402
from lowp.runtime import sharing  # noqa: E402

NETWORKS = ("resnet18", "mobilenet_v2")


def case(name: str, work: Path, shipped: bool) -> tuple[Path, dict[str, np.ndarray]]:
    if name in NETWORKS:
        from bench.models import _prepare
        x = np.random.default_rng(1).standard_normal((1, 3, 224, 224)).astype(np.float32)
        return _prepare(name)[1], {"input": x}
    spec = ALL_BY_NAME[name]
    return qdq_file(spec, work, shipped), make_feeds(spec, spec.batch, 1)


def measure(path: Path, feeds: dict[str, np.ndarray], threads: int, rounds: int
            ) -> tuple[list[float], int, int]:
    """CPU-time medians (shared, not shared, ONNX Runtime), bytes moved, arena bytes."""
    shared = lowp.Session(str(path), threads=threads)
    with sharing.disabled():
        own = lowp.Session(str(path), threads=threads)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    theirs = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    runs = [lambda: shared.run(feeds), lambda: own.run(feeds), lambda: theirs.run(None, feeds)]
    times: list[list[float]] = [[], [], []]
    with threadpool_limits(threads):
        for _ in range(4):
            for run in runs:
                run()
        for _ in range(rounds):
            for run, t in zip(runs, times, strict=True):
                c0 = time.process_time()
                run()
                t.append(time.process_time() - c0)
    signature = tuple((k, v.shape, v.dtype.str) for k, v in feeds.items())
    assert shared._replayer is not None
    found = shared._replayer.shared_memory(signature)
    return ([statistics.median(t) for t in times], sum(b for _, b, _ in found),
            sum(a for _, _, a in found))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", type=Path, required=True, help="folder of the QDQ files")
    p.add_argument("--models", nargs="+", required=True)
    p.add_argument("--prequantized", action="store_true",
                   help="run the files the corpus ships quantized")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=int, default=60)
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    for name in args.models:
        path, feeds = case(name, args.work, args.prequantized)
        for threads in args.threads:
            (a, b, c), moved, arena = measure(path, feeds, threads, args.rounds)
            print(f"{name:28s} {threads} thr  shared/not {a / b:.3f}  shared/ORT {a / c:.3f}"
                  f"  not/ORT {b / c:.3f}  moved {moved / 1e6:.2f} MB -> arena "
                  f"{arena / 1e6:.2f} MB", flush=True)


if __name__ == "__main__":
    main()
