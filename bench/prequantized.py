"""The corpus's pre-quantized files (fetched), all or those with given operators: lowp's
Session and ONNX Runtime on one thread, checked identical first, then timed in alternation
(median ms; lowp / ONNX Runtime, lower is better).

    python bench/prequantized.py [--repeats 30] [--budget 30] [--models NAME ...]

bench/quantized_lstm.py and bench/dynamic_int8.py run it on the files of one kind.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Collection
from pathlib import Path

import numpy as np
import onnxruntime as ort
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import interleaved_ms, print_table  # noqa: E402
from evals.corpus import models as corpus  # noqa: E402

import lowp  # noqa: E402


def measure(spec: corpus.CorpusModel, repeats: int, budget: float,
            ops: Collection[str] = ()) -> list[object] | None:
    """[name, input shape, identical?, lowp ms, ORT ms, ratio] of one file, or None when
    `ops` is given and the file has none of them."""
    model = corpus.load_float(spec)
    if ops and not any(n.op_type in ops for n in model.graph.node):
        return None
    feeds = corpus.make_feeds(spec, spec.batch, seed=0)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), opts,
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    ours = lowp.Session(model, threads=1)
    want = session.run(None, feeds)
    got = ours.run(feeds)
    identical = all(np.array_equal(got[n], w) for n, w in zip(names, want, strict=True))
    lowp_ms, ort_ms = interleaved_ms([lambda: ours.run(feeds),
                                      lambda: session.run(None, feeds)], repeats, budget)
    shape = "x".join(str(d) for d in next(iter(feeds.values())).shape)
    return [spec.name, shape, "yes" if identical else "NO", f"{lowp_ms:.2f}", f"{ort_ms:.2f}",
            f"{lowp_ms / ort_ms:.2f}"]


def main(ops: Collection[str] = (), description: str | None = None,
         argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=(description or __doc__).splitlines()[0])
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--budget", type=float, default=30.0, help="seconds per model at most")
    p.add_argument("--models", nargs="*", help="names from evals/corpus/models.py PREQUANTIZED")
    args = p.parse_args(argv)
    specs = [m for m in corpus.PREQUANTIZED if m.path.exists()
             and (not args.models or m.name in args.models)]
    if not specs:
        raise SystemExit("no pre-quantized file fetched: see evals/corpus/README.md")
    with threadpool_limits(1):
        rows = [r for s in specs if (r := measure(s, args.repeats, args.budget, ops))
                is not None]
    print_table(["model", "input", "identical", "lowp ms", "ORT ms", "lowp / ORT"], rows)


if __name__ == "__main__":
    main()
