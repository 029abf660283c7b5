"""A corpus model quantized with and without some nodes in float, calibrated on each half of
the calibration samples and on all of them, scored on each half and on the evaluation
samples: what the float step's two folds see against what the evaluation sees.

    python evals/corpus/repro/fold_halves.py MODEL --method minmax --exclude NODE [NODE ...]

Calibration samples: 16 with seed 0 (as evals/accuracy.py), cut in halves 0-7 and 8-15 as
the default's two folds cut them (fold 1 holds out 0-7 and calibrates on 8-15); evaluation
samples: 32 with seed 1. Every model runs in ONNX Runtime; the output SQNR (dB) of the first
output is printed per cell, then, per half, the share of the noise power carried by the
output element (a sample, for a one-score model) with the largest error.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from evals.accuracy import chunks, model_data, ort_session, sqnr_db  # noqa: E402
from evals.corpus.models import BY_NAME  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    from lowp.config import CalibMethod, Config
    from lowp.pipeline import quantize

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", choices=sorted(BY_NAME), metavar="MODEL")
    p.add_argument("--method", default="minmax", choices=[m.value for m in CalibMethod
                                                          if m is not CalibMethod.MEASURED])
    p.add_argument("--exclude", nargs="+", required=True, metavar="NODE")
    args = p.parse_args(argv)
    logging.getLogger().setLevel(logging.ERROR)
    spec = BY_NAME[args.model]
    with tempfile.TemporaryDirectory() as tmp:
        float_model, _, calib, evals, reference = model_data(
            spec, Path(tmp), calib_samples=16, eval_samples=32, threads=1)
    n = len(next(iter(calib.values())))
    halves = {"0-7": (0, n // 2), "8-15": (n // 2, n)}

    def part(lo: int, hi: int) -> dict[str, np.ndarray]:
        return {k: v[lo:hi] for k, v in calib.items()}

    run_float = ort_session(float_model, 1)
    scored = {name: list(chunks(part(*b), spec.batch)) for name, b in halves.items()}
    refs = {name: [run_float(f)[0] for f in feeds] for name, feeds in scored.items()}
    config = Config(method=CalibMethod(args.method))
    print(f"{'calibrated on':14s} {'nodes':6s} {'evaluation':>10s} "
          + " ".join(f"{'calib ' + h:>12s}" for h in halves))
    for fit_name, fit in [("all", calib), ("8-15", part(*halves["8-15"])),
                          ("0-7", part(*halves["0-7"]))]:
        for label, exclude in [("int8", ()), ("float", tuple(args.exclude))]:
            model = quantize(float_model, fit, dataclasses.replace(
                config, exclude_nodes=exclude)).model
            run = ort_session(model, 1)
            cells = [sqnr_db(reference, [run(f)[0] for f in evals])]
            shares = []
            for h in halves:
                got = [run(f)[0] for f in scored[h]]
                cells.append(sqnr_db(refs[h], got))
                err = np.concatenate([(g - r).ravel() for g, r in
                                      zip(got, refs[h], strict=True)]) ** 2
                shares.append(f"{h}: {err.max() / err.sum():.2f}")
            print(f"{fit_name:14s} {label:6s} " + " ".join(f"{c:12.2f}" for c in cells)
                  + f"   largest element's noise share {', '.join(shares)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
