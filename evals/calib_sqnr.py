"""Output SQNR of lowp's quantized corpus models per calibration method: a quick check that a
change to calibration keeps the quantized models as accurate.

    python evals/calib_sqnr.py [--models NAME ...] [--calib 16] [--eval 32]
                               [--methods entropy percentile mse]

The models are quantized as evals/accuracy.py quantizes them (`lowp_methods`: one histogram
calibration, the ranges chosen again per method), on the same feeds (calibration seed 0,
evaluation seed 1), and each runs in ONNX Runtime; the line of a model gives the SQNR (dB)
of its primary output against the float model's, per method. Run it with two versions of
lowp (PYTHONPATH) to compare them; no peer is run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evals.accuracy import lowp_methods, model_data, ort_session, sqnr_db  # noqa: E402
from evals.corpus.models import BY_NAME  # noqa: E402


def model_sqnr(name: str, calib_samples: int, eval_samples: int, methods: list[str],
               work: Path) -> dict[str, float | str]:
    """SQNR (dB) per method of one corpus model, or the error text."""
    m = BY_NAME[name]
    float_model, _, calib, evals, reference = model_data(
        m, work, calib_samples=calib_samples, eval_samples=eval_samples, threads=1)
    made, failed = lowp_methods(float_model, calib, lambda _: None)
    out: dict[str, float | str] = {}
    for method in methods:
        key = f"lowp {method}"
        if key not in made:
            out[method] = failed.get(key, "missing")
            continue
        q = ort_session(made[key], 1)
        out[method] = sqnr_db(reference, [q(f)[0] for f in evals])
    return out


def main(argv: list[str] | None = None) -> int:
    import tempfile

    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", required=True, choices=sorted(BY_NAME))
    p.add_argument("--calib", type=int, default=16)
    p.add_argument("--eval", type=int, default=32)
    p.add_argument("--methods", nargs="+", default=["entropy", "percentile", "mse"])
    args = p.parse_args(argv)
    print("model " + " ".join(args.methods), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            try:
                row = model_sqnr(name, args.calib, args.eval, args.methods, Path(tmp))
            except Exception as e:  # one failing model does not stop the others
                print(f"{name} error: {type(e).__name__}: {e}", flush=True)
                continue
            cells = [f"{v:.2f}" if isinstance(v, float) else f"({v})"
                     for v in (row[m] for m in args.methods)]
            print(name + " " + " ".join(cells), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
