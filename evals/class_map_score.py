"""The range-method choice on CTC recognisers, scoring their class-score map by SQNR alone or
by frame argmax agreement first (passes.output_kind), compared on corpus models.

    python evals/class_map_score.py --models ppocrv6_rec_small ppocrv5_rec --calib 16 --eval 32

For each model and score, lowp's default (`Config()`, the measured method choice) runs on
the calibration feeds of evals/accuracy.py (seed 0): "sqnr" with `class_maps=()`, "frames"
with the class maps found in the graph, or, where none is found, the model's scored output
named (`class_maps=(<name>,)`, as `--class-maps` does). The model each keeps is scored in
ONNX Runtime on the evaluation feeds (seed 1) with the model's task metric (accuracy.py's
METRIC_OF, SCORED_OUTPUT), as evals/accuracy.py scores "lowp measured". "frames" runs
first; where the SQNR alone picks the same range rule from its candidates (the record holds
both measures), "sqnr" is that same model (the steps after the rule score the SQNR either
way) and is not run again.
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


def _sqnr_pick(choice: object) -> str:
    """The rule the SQNR alone picks from a record's candidates."""
    import dataclasses

    from lowp.passes.method_choice import pick
    return pick([dataclasses.replace(c, agreement=None)
                 for c in choice.candidates])[0]  # type: ignore[attr-defined]


def run(name: str, score: str, calib_samples: int, eval_samples: int, threads: int
        ) -> tuple[str, float, float, str, str]:
    """The chosen method (with the steps kept), the task metric and the SQNR of the scored
    output on the evaluation feeds, the choice's candidates line, and the rule the SQNR
    alone picks from them ("same:" when it is the chosen one), for `score`."""
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
    by_sqnr = "" if choice is None else (
        "same:" if _sqnr_pick(choice) == choice.chosen else _sqnr_pick(choice))
    return (chosen, metric_of(m).score(reference, got, m.batch), sqnr_db(reference, got), folds,
            by_sqnr)


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
            cells, folds, same = {}, [], False
            for score in sorted(args.scores, key=lambda s: s != "frames"):
                if score == "sqnr" and "frames" in cells and same:
                    cells[score] = "the same model"
                    continue
                chosen, value, sqnr, measured, by_sqnr = run(name, score, args.calib,
                                                             args.eval, args.threads)
                same = by_sqnr.startswith("same:")
                cells[score] = f"{chosen}: {_num(value)} ({_num(sqnr)} dB)"
                folds.append(f"{score}: {measured}")
            print(f"| {name} | {metric_of(BY_NAME[name]).label} | "
                  + " | ".join(cells[s] for s in args.scores)
                  + " |", flush=True)
            print("  folds: " + " || ".join(folds), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
