"""A model's float32 linear Resizes natively and in numpy: lowp with the native kernel
(lowp.runtime.native_float.bilinear_float), lowp with the numpy form and ONNX Runtime on the
same QDQ file, one run of each in turn (bench._common.wall_and_cpu), per thread count.

    python bench/bilinear_resize.py MODEL FILE.onnx [--threads 1 2] [--rounds 7]

Printed: the process CPU-time medians, their ratios to ONNX Runtime's (the only figures that
mean something on a shared machine), and whether both lowp runs give ONNX Runtime's outputs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import wall_and_cpu  # noqa: E402
from evals.corpus.models import ALL_BY_NAME, make_feeds  # noqa: E402

import lowp  # noqa: E402
from lowp.runtime import native_float  # noqa: E402


def compare(model: str, qdq: Path, feeds: dict[str, np.ndarray], threads: int,
            rounds: int) -> str:
    """One line: CPU medians of lowp with the numpy Resize, with the native one, and of
    ONNX Runtime, alternating; the ratios; whether each lowp run gives ONNX Runtime's."""
    native = native_float.bilinear_float
    session = lowp.Session(str(qdq), threads=threads)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    runtime = ort.InferenceSession(str(qdq), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in runtime.get_outputs()]

    def ours(kernel: Any) -> list[np.ndarray]:
        native_float.bilinear_float = kernel
        try:
            values = session.run(feeds, names)
        finally:
            native_float.bilinear_float = native
        return [np.asarray(values[n]) for n in names]

    runs = (lambda: ours(lambda *_: None), lambda: ours(native),
            lambda: runtime.run(names, feeds))
    with threadpool_limits(limits=threads):
        _, cpu, outputs = wall_and_cpu(runs, rounds)
    numpy_form, native_form, theirs = (statistics.median(c) for c in cpu)
    same = [all(np.array_equal(a, b) for a, b in zip(outputs[i], outputs[2], strict=True))
            for i in (0, 1)]
    return (f"{model} {threads} thread(s), CPU ms: numpy Resize {1e3 * numpy_form:.1f}, "
            f"native {1e3 * native_form:.1f}, ONNX Runtime {1e3 * theirs:.1f}; ratio "
            f"{numpy_form / theirs:.2f} -> {native_form / theirs:.2f}; identical "
            f"{same[0]} / {same[1]}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", choices=sorted(ALL_BY_NAME))
    p.add_argument("qdq", type=Path)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args()
    spec = ALL_BY_NAME[args.model]
    batches = make_feeds(spec, spec.batch, 1)
    feeds = batches[0] if isinstance(batches, list) else batches
    for threads in args.threads:
        print(compare(args.model, args.qdq, feeds, threads, args.rounds), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
