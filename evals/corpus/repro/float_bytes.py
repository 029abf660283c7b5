"""Byte check of corpus float models: lowp against ONNX Runtime, at 1 and 2 threads.

    python evals/corpus/repro/float_bytes.py gtcrn_stream dtln_frame ...

For each model named: its float file, run.py's feeds (2 batches, seed 1), ONNX Runtime's
and lowp's outputs compared by dtype, shape and bytes; prints the share of identical
elements of each output that differs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "src"))

from evals.corpus import run  # noqa: E402
from evals.corpus.models import MODELS  # noqa: E402


def check(name: str, threads: int) -> str:
    m = next(x for x in MODELS if x.name == name)
    model = run.load_float(m)
    feeds = run.make_feeds(m, 2 * m.batch, seed=1)
    theirs = run.run_all(run.ort_runner(model, threads), feeds, m.batch)
    ours = run.run_all(run.lowp_runner(model, threads), feeds, m.batch)
    apart = []
    for a, b in zip(theirs, ours, strict=True):
        for key, ref in a.items():
            got = np.asarray(b[key])
            ref = np.asarray(ref)
            if got.dtype != ref.dtype or got.shape != ref.shape:
                apart.append(f"{key}: {got.dtype}{got.shape} vs {ref.dtype}{ref.shape}")
            elif got.tobytes() != ref.tobytes():
                same = float(np.mean(got == ref)) * 100
                apart.append(f"{key}: {same:.2f}% identical, max "
                             f"{float(np.abs(got.astype(np.float64) - ref).max()):.3g}")
    return "identical" if not apart else "; ".join(sorted(set(apart)))


def main() -> None:
    for name in sys.argv[1:]:
        for threads in (1, 2):
            print(f"{name} threads={threads}: {check(name, threads)}", flush=True)


if __name__ == "__main__":
    main()
