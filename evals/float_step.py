"""The default's float step on corpus models, run whatever the folds' SQNR: what it measures,
what it would keep, what it costs, and how the kept model scores.

    python evals/float_step.py [--models NAME ...] [--calib 16] [--eval 32] [--jsonl FILE]

For each corpus model, the default (`Config(method=MEASURED)`) quantizes the calibration
feeds (seed 0) as evals/accuracy.py's `lowp_measured` does, with the float step run on
every model (`method_choice.DOMINANT_BELOW_DB` lifted to infinity for the run), so that the
layers it measures on models above 20 dB and their gains can be compared across running
rules (docs/accuracy.md, "The float step above 20 dB"). Printed per model: the chosen rule
and its folds' SQNR, each layer measured (its nodes, the nodes sharing its weights counted
as one layer) with its gain per fold, the layers kept by the 3 dB rule, the seconds the
step took (the time `_float_layers` spends: one capture run per fold and the layer models)
and the whole default's, and the kept model scored in ONNX Runtime on the evaluation feeds
(seed 1) with the model's task metric and output SQNR, as evals/accuracy.py scores it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evals.accuracy import add_corpus_arguments, metric_of, model_data, ort_session, sqnr_db  # noqa: E402
from evals.corpus.models import BY_NAME  # noqa: E402


def run(name: str, work: Path, calib_samples: int, eval_samples: int) -> dict[str, Any]:
    import lowp.pipeline as pipeline
    from lowp.config import CalibMethod, Config
    from lowp.passes import method_choice

    m = BY_NAME[name]
    float_model, _, calib, evals, reference = model_data(
        m, work, calib_samples=calib_samples, eval_samples=eval_samples, threads=1)
    step_seconds = [0.0]
    measure_layers = pipeline._float_layers

    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return measure_layers(*args, **kwargs)
        finally:
            step_seconds[0] += time.perf_counter() - t0

    below = method_choice.DOMINANT_BELOW_DB
    pipeline._float_layers = timed
    method_choice.DOMINANT_BELOW_DB = math.inf
    try:
        t0 = time.perf_counter()
        result = pipeline.quantize(float_model, calib, Config(method=CalibMethod.MEASURED))
        seconds = time.perf_counter() - t0
    finally:
        pipeline._float_layers = measure_layers
        method_choice.DOMINANT_BELOW_DB = below
    choice = result.method_choice
    assert choice is not None
    chosen = next(c for c in choice.candidates if c.method == choice.chosen)
    session = ort_session(result.model, 1)
    got = [session(f)[0] for f in evals]
    metric = metric_of(m)
    return {
        "model": name, "chosen": choice.chosen, "folds_sqnr_db": chosen.sqnr_db,
        "per_fold_db": list(chosen.folds_db),
        "layers": [{"nodes": list(f.nodes), "op_type": f.op_type, "gain_db": f.gain_db,
                    "folds_db": list(f.folds_db), "error": f.error}
                   for f in choice.float_layers],
        "kept_float": choice.kept_float, "step_seconds": step_seconds[0],
        "default_seconds": seconds, "metric": metric.label,
        "score": metric.score(reference, got, m.batch), "sqnr_db": sqnr_db(reference, got),
        "sha256": hashlib.sha256(result.model.SerializeToString()).hexdigest()[:16],
    }


def _layer(x: dict[str, Any]) -> str:
    nodes = x["nodes"]
    name = " + ".join(nodes) if len(nodes) <= 2 else f"{nodes[0]} + {len(nodes) - 1} more"
    gains = (" ".join(f"{v:+.2f}" for v in x["folds_db"]) if x["gain_db"] is not None
             else f"failed: {x['error']}")
    return f"{name} ({x['op_type']}): {gains}"


def _line(r: dict[str, Any]) -> str:
    layers = "; ".join(_layer(x) for x in r["layers"])
    return (f"{r['model']}: {r['chosen']} folds {r['folds_sqnr_db']:.2f} dB "
            f"({' '.join(f'{v:.2f}' for v in r['per_fold_db'])}); layers: {layers}; "
            f"kept: {r['kept_float'] or 'none'}; step {r['step_seconds']:.1f} s of "
            f"{r['default_seconds']:.1f} s; {r['metric']} {r['score']:.4g} "
            f"({r['sqnr_db']:.2f} dB); model {r['sha256']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_corpus_arguments(p)
    p.add_argument("--jsonl", type=Path, help="append one JSON line per model here")
    args = p.parse_args(argv)
    logging.getLogger().setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(limits=1):
        for name in args.models:
            work = Path(tmp) / name
            work.mkdir()
            r = run(name, work, args.calib, args.eval)
            print(_line(r), flush=True)
            if args.jsonl:
                with args.jsonl.open("a") as f:
                    f.write(json.dumps(r) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
