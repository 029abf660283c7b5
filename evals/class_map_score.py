"""The range-method choice on CTC recognisers, scoring their class-score map by SQNR alone or
by frame argmax agreement first (passes.output_kind), compared on corpus models.

    python evals/class_map_score.py --models ppocrv6_rec_small ppocrv5_rec --calib 16 --eval 32

For each model and score, lowp's default (`Config()`, the measured method choice) runs on
the calibration feeds of evals/accuracy.py (seed 0): "sqnr" with `class_maps=()`, "frames"
with the class maps found in the graph, or, where none is found, the model's scored output
named (`class_maps=(<name>,)`, as `--class-maps` does). The model each keeps is scored in
ONNX Runtime on the evaluation feeds (seed 1) with the model's task metric (accuracy.py's
METRIC_OF, SCORED_OUTPUT), as evals/accuracy.py scores "lowp measured".
"""

from __future__ import annotations

import argparse
import sys
import tempfile
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

SCORES = ("sqnr", "frames")


def _class_maps(score: str, model: object, name: str) -> tuple[str, ...] | None:
    """The `Config.class_maps` of `score`: none, or those found, else the scored output."""
    from lowp.passes.output_kind import detected_class_maps
    if score == "sqnr":
        return ()
    outputs = [o.name for o in model.graph.output]  # type: ignore[attr-defined]
    found = detected_class_maps(model)  # type: ignore[arg-type]
    return None if found else (outputs[SCORED_OUTPUT.get(name, 0)],)


def run(name: str, score: str, calib_samples: int, eval_samples: int, threads: int
        ) -> tuple[str, float, float, str]:
    """The chosen method (with the steps kept), the task metric and the SQNR of the scored
    output on the evaluation feeds, and the choice's candidates line, for `score`."""
    from lowp import Config
    from lowp.pipeline import quantize

    m = BY_NAME[name]
    with tempfile.TemporaryDirectory() as tmp:
        float_model, _, calib, evals, reference = model_data(
            m, Path(tmp), calib_samples=calib_samples, eval_samples=eval_samples,
            threads=threads)
    result = quantize(float_model, calib,
                      Config(class_maps=_class_maps(score, float_model, name)))
    choice = result.method_choice
    chosen = "" if choice is None else choice.flags().replace("--method ", "")
    folds = "" if choice is None else "; ".join(
        f"{c.method} {_num(c.sqnr_db)} dB" + (f" {c.agreement:.2f}%" if c.agreement is not None
                                               else "")
        for c in choice.candidates)
    session = ort_session(result.model, threads)
    got = [session(f)[SCORED_OUTPUT.get(name, 0)] for f in evals]
    return chosen, metric_of(m).score(reference, got, m.batch), sqnr_db(reference, got), folds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_corpus_arguments(p)
    p.add_argument("--scores", nargs="+", default=list(SCORES), choices=SCORES)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    print("| model | metric | " + " | ".join(args.scores) + " |")
    print("|---|---|" + "---|" * len(args.scores))
    with threadpool_limits(limits=args.threads):
        for name in args.models:
            cells, folds = [], []
            for score in args.scores:
                chosen, value, sqnr, measured = run(name, score, args.calib, args.eval,
                                                    args.threads)
                cells.append(f"{chosen}: {_num(value)} ({_num(sqnr)} dB)")
                folds.append(f"{score}: {measured}")
            print(f"| {name} | {metric_of(BY_NAME[name]).label} | " + " | ".join(cells)
                  + " |", flush=True)
            print("  folds: " + " || ".join(folds), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
