"""The accuracy-budget fallback on corpus models: SQNR of the default quantization and with
`Config(accuracy_budget=...)`, layers moved, time taken.

    python evals/fallback.py [--models NAME ...] [--budgets 25 30 35] [--calib 32] [--eval 32]

Calibration feeds are generated with seed 0 (the budget is measured on their first
`--fallback-samples`), held-out evaluation feeds with seed 1. Every quantized model runs on
lowp's engine (`Session`) and is scored against the float model in ONNX Runtime: the output
SQNR (minimum over the float outputs) on the held-out feeds, next to the SQNR the fallback
measured on the calibration samples. One calibration per model (its table is reused).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evals.corpus.models import BY_NAME, CorpusModel, load_float, make_feeds  # noqa: E402

CALIB_SEED, EVAL_SEED = 0, 1


def held_out_sqnr(qdq, float_model, feeds: dict[str, np.ndarray], batch: int) -> float:
    """Minimum over float outputs of the SQNR of lowp's engine against ONNX Runtime float."""
    from lowp.passes.calibrate import float_session
    from lowp.report.analysis import sqnr_of_energies
    from lowp.runtime import Session

    ref = float_session(float_model)
    names = [o.name for o in ref.get_outputs()]
    session = Session(qdq)
    n = next(iter(feeds.values())).shape[0]
    energy: dict[str, list[float]] = {}
    for start in range(0, n, batch):
        feed = {k: v[start:start + batch] for k, v in feeds.items()}
        want = dict(zip(names, ref.run(None, feed), strict=True))
        got = session.run(feed)
        for name, r in want.items():
            if np.asarray(r).dtype.kind != "f":
                continue
            r64 = np.asarray(r, np.float64)
            e = energy.setdefault(name, [0.0, 0.0])
            e[0] += float(np.sum(r64 ** 2))
            e[1] += float(np.sum((r64 - np.asarray(got[name], np.float64)) ** 2))
    return min((sqnr_of_energies(s, n) for s, n in energy.values()), default=math.inf)


def run_model(m: CorpusModel, budgets: list[float], calib_n: int, eval_n: int,
              samples: int, candidates: int, batch: int) -> list[list[str]]:
    from lowp.config import Config
    from lowp.passes.fallback import BudgetNotMetWarning
    from lowp.pipeline import quantize

    float_model = load_float(m)
    b = m.batch if m.pin_batch else batch
    calib = make_feeds(m, -(-calib_n // b) * b, seed=CALIB_SEED)
    evals = make_feeds(m, -(-eval_n // b) * b, seed=EVAL_SEED)
    rows = []
    t0 = time.perf_counter()
    base = quantize(float_model, calib, Config(batch_size=b))
    seconds = time.perf_counter() - t0
    held = held_out_sqnr(base.model, base.float_model, evals, b)
    rows.append([m.name, "default", "", f"{held:.2f}", "", "", f"{seconds:.1f}"])
    print(" | ".join(rows[-1]), flush=True)
    for budget in budgets:
        config = Config(batch_size=b, accuracy_budget=budget, fallback_samples=samples,
                        fallback_candidates=candidates)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BudgetNotMetWarning)
            res = quantize(float_model, calib, config, calib_table=base.table)
        seconds = time.perf_counter() - t0
        fb = res.fallback
        assert fb is not None
        held = held_out_sqnr(res.model, res.float_model, evals, b)
        kept = sum(1 for s in fb.steps if s.kept)
        measured = sum(1 for c in fb.layers if c.gain_db is not None)
        rows.append([m.name, f"{budget:g} dB", f"{fb.final.min_sqnr_db:.2f}"
                     + ("" if fb.met else " (not met)"), f"{held:.2f}",
                     f"{len(fb.sixteen_bit_nodes)} / {len(fb.float_nodes)}",
                     f"{kept} of {len(fb.steps)}; {measured} measured",
                     f"{seconds:.1f}"])
        print(" | ".join(rows[-1]), flush=True)
        print("    kept: " + "; ".join(f"{s.node} -> {s.after} ({s.sqnr_after_db:.2f} dB)"
                                       for s in fb.steps if s.kept), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["nudenet_320n", "ppocrv5_rec", "khmersm"])
    p.add_argument("--budgets", nargs="+", type=float, default=[25.0, 30.0, 35.0])
    p.add_argument("--calib", type=int, default=32)
    p.add_argument("--eval", type=int, default=32)
    p.add_argument("--fallback-samples", type=int, default=16)
    p.add_argument("--fallback-candidates", type=int, default=24)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--markdown", type=Path)
    args = p.parse_args(argv)
    header = ["model", "budget", "SQNR measured (calib.)", "SQNR held-out", "16-bit / float",
              "moves kept", "seconds"]
    print(" | ".join(header), flush=True)
    rows = []
    for name in args.models:
        rows += run_model(BY_NAME[name], args.budgets, args.calib, args.eval,
                          args.fallback_samples, args.fallback_candidates, args.batch)
    if args.markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        args.markdown.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
