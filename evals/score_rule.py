"""How the measured choices combine the SQNR of several scored outputs, compared on corpus
models: the minimum (the rule of `Measurement.min_sqnr_db`), the mean in dB, or the first
scored output alone.

    python evals/score_rule.py --models mtcnn_onet centerface --calib 16 --eval 32

For each model and rule, lowp's default (`Config()`, the measured method choice) runs with
`Measurement.min_sqnr_db` replaced by the rule, on the calibration feeds of
evals/accuracy.py (seed 0); the model it keeps is scored in ONNX Runtime on the evaluation
feeds (seed 1) with the model's task metric and output (accuracy.py's METRIC_OF,
SCORED_OUTPUT), as evals/accuracy.py scores "lowp measured". The outputs scored are the
default's (passes.scored_outputs: recurrent state left out) under every rule.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evals.accuracy import (  # noqa: E402
    SCORED_OUTPUT,
    _num,
    add_corpus_arguments,
    metric_of,
    model_data,
    ort_session,
    sqnr_db,
)
from evals.corpus.models import BY_NAME  # noqa: E402

_CAP = 200.0


def _values(m: object) -> list[float]:
    names = [n for n in m.scored if n in m.sqnr_db] or list(m.sqnr_db)  # type: ignore[attr-defined]
    return [min(m.sqnr_db[n], _CAP) for n in names]  # type: ignore[attr-defined]


RULES: dict[str, Callable[[object], float]] = {
    "min": lambda m: min(_values(m), default=math.inf),
    "mean": lambda m: (sum(v) / len(v)) if (v := _values(m)) else math.inf,
    "first": lambda m: (_values(m) or [math.inf])[0],
}


def run(name: str, rule: str, calib_samples: int, eval_samples: int, threads: int
        ) -> tuple[str, float, float]:
    """The chosen method (with the layers left in float), the task metric and the SQNR of
    the scored output on the evaluation feeds, for `rule`."""
    from lowp.passes import sensitivity
    from lowp.pipeline import quantize

    m = BY_NAME[name]
    with tempfile.TemporaryDirectory() as tmp:
        float_model, _, calib, evals, reference = model_data(
            m, Path(tmp), calib_samples=calib_samples, eval_samples=eval_samples,
            threads=threads)
    original = sensitivity.Measurement.min_sqnr_db
    sensitivity.Measurement.min_sqnr_db = property(RULES[rule])  # type: ignore[assignment]
    try:
        result = quantize(float_model, calib)
    finally:
        sensitivity.Measurement.min_sqnr_db = original  # type: ignore[method-assign]
    choice = result.method_choice
    chosen = "" if choice is None else choice.chosen + (
        f" + {len(choice.kept_float)} float" if choice.kept_float else "")
    session = ort_session(result.model, threads)
    got = [session(f)[SCORED_OUTPUT.get(name, 0)] for f in evals]
    return chosen, metric_of(m).score(reference, got, m.batch), sqnr_db(reference, got)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_corpus_arguments(p)
    p.add_argument("--rules", nargs="+", default=list(RULES), choices=list(RULES))
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    print("| model | metric | " + " | ".join(args.rules) + " |")
    print("|---|---|" + "---|" * len(args.rules))
    with threadpool_limits(limits=args.threads):
        for name in args.models:
            cells = []
            for rule in args.rules:
                chosen, value, sqnr = run(name, rule, args.calib, args.eval, args.threads)
                cells.append(f"{chosen}: {_num(value)} ({_num(sqnr)} dB)")
            print(f"| {name} | {metric_of(BY_NAME[name]).label} | " + " | ".join(cells)
                  + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
