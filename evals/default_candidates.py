"""Changes of lowp's default measured on corpus models: the default (`Config()`, the measured
method choice) against the default with one option changed, each scored as
evals/accuracy.py scores it.

    python evals/default_candidates.py --models dfn3_enc plcmos_v2 [--candidates NAME ...]
                                       [--calib 16] [--eval 32] [--markdown FILE]

For each corpus model the same calibration feeds (seed 0) quantize it with `Config()` and
with `Config(**CANDIDATES[name])` for each candidate (or `Config()` under one of PATCHES:
"4 folds" measures the default's choices on 4 folds of the calibration feeds, not 2);
every one of them is the measured default (its own fold calibrations, range rule, float
step, absorbed activations, bias correction) with that one thing changed. Every quantized
model runs in ONNX Runtime (one thread) on the evaluation feeds (seed 1) and is scored with
the model's task metric (evals/accuracy.py's METRIC_OF) and the SQNR of its scored output.
Each cell gives the metric, the SQNR in brackets and what the measured choice kept; the
last column compares each candidate with the default (SQNR within 0.1 dB ties on SQNR
rows, as `verdict`).
The peers' figures are evals/accuracy.py's (not run here).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evals.accuracy import (  # noqa: E402
    MEASURED,
    SCORED_OUTPUT,
    Result,
    _cell,
    _markdown,
    _text,
    add_corpus_arguments,
    lowp_measured,
    metric_of,
    model_data,
    ort_session,
    sqnr_db,
    verdict,
)
from evals.corpus.models import BY_NAME  # noqa: E402
from lowp.config import QuantPolicy, WeightGranularity  # noqa: E402
from lowp.passes import method_choice  # noqa: E402

# Named changes of the default: Config fields on top of Config().
CANDIDATES: dict[str, dict[str, Any]] = {
    "fold_affine": {"fold_affine": True},
    "per-tensor weights": {"weight_granularity": WeightGranularity.PER_TENSOR},
    "per-tensor weights measured": {"measure_weight_granularity": True},
    "matmul bias measured": {"measure_matmul_bias": True},
    "no bias correction": {"measure_bias_correction": False},
    "no absorbed activations": {"measure_absorbed_activations": False},
    "policy all": {"policy": QuantPolicy.ALL},
    "per-channel chains": {"per_channel_chains": True},
}
# Named changes of the default's measurement itself, not a Config field: a context that
# patches it for the candidate's quantization.
PATCHES: dict[str, Callable[[], contextlib.AbstractContextManager[Any]]] = {
    "4 folds": lambda: mock.patch("lowp.pipeline.method_folds",
                                  functools.partial(method_choice.folds, k=4)),
}
DEFAULT = "default"


def evaluate(name: str, work: Path, candidates: list[str], *, calib_samples: int,
             eval_samples: int) -> tuple[Result, dict[str, str]]:
    """The default and each candidate on one model: scores in a Result keyed by candidate
    name (DEFAULT for `Config()`), and what each measured choice kept."""
    m = BY_NAME[name]
    res = Result(m, metric_of(m))
    chosen: dict[str, str] = {}
    float_model, _, calib, evals, reference = model_data(
        m, work, calib_samples=calib_samples, eval_samples=eval_samples, threads=1)
    for cand in [DEFAULT, *candidates]:
        one = Result(m, res.metric)
        with PATCHES.get(cand, contextlib.nullcontext)():
            q = lowp_measured(float_model, calib, one, CANDIDATES.get(cand, {}))
        if q is None:
            res.errors[cand] = one.errors[MEASURED]
            continue
        res.seconds[cand] = one.seconds[MEASURED]
        chosen[cand] = one.chosen
        run = ort_session(q, 1)
        got = [run(f)[SCORED_OUTPUT.get(name, 0)] for f in evals]
        res.scores[cand] = res.metric.score(reference, got, m.batch)
        res.sqnr[cand] = sqnr_db(reference, got)
    return res, chosen


def row(res: Result, chosen: dict[str, str], candidates: list[str]) -> list[str]:
    cells = [f"{chosen[c]}: {_cell(res, c)}" if c in chosen else _cell(res, c)
             for c in [DEFAULT, *candidates]]
    versus = "; ".join(f"{c} {verdict(res, c, [DEFAULT])}" for c in candidates
                       if c in res.scores)
    return [res.model.name, res.metric.label, *cells, versus]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_corpus_arguments(p)
    p.add_argument("--candidates", nargs="+", default=list(CANDIDATES),
                   choices=sorted([*CANDIDATES, *PATCHES]), metavar="NAME")
    p.add_argument("--markdown", type=Path, help="also write the table as markdown here")
    args = p.parse_args(argv)
    logging.getLogger().setLevel(logging.ERROR)
    header = ("model", "metric", DEFAULT, *args.candidates, "vs default")
    rows = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(limits=1):
        for name in args.models:
            work = Path(tmp) / name
            work.mkdir()
            res, chosen = evaluate(name, work, args.candidates, calib_samples=args.calib,
                                   eval_samples=args.eval)
            rows.append(row(res, chosen, args.candidates))
            for cand, err in res.errors.items():
                print(f"{name}: {cand}: {err}", file=sys.stderr)
            print(" | ".join(rows[-1]) + f"  ({sum(res.seconds.values()):.0f} s)", flush=True)
    minutes = (time.perf_counter() - start) / 60
    title = (f"{len(rows)} models, {args.calib} calibration / {args.eval} evaluation samples, "
             f"{minutes:.1f} min; value (SQNR of the scored output)")
    print(f"\n{title}\n{_text(header, rows)}")
    if args.markdown:
        args.markdown.write_text(f"{title}\n\n{_markdown(header, rows)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
