"""Cross-layer equalization and bias correction, off and on, per-channel and per-tensor
weights: the task metric and output SQNR of lowp's quantized model against the float one.

    python evals/corrections.py [--models NAME ...] [--families NAME ...] [--calib 16]
                                [--eval 32] [--weights per-channel per-tensor]
                                [--markdown FILE]

Corpus models (evals/corpus) use generated feeds: calibration seed 0, held-out evaluation
seed 1, scored with evals/accuracy.py's task metric of the model (METRICS, metric_of).
Families (evals/families.py) are trained in torch and scored with their own metric on their
evaluation samples; their first `--calib` calibration samples are used. Every quantized
model runs in ONNX Runtime (one thread), against ONNX Runtime float; each cell is the task
metric with the SQNR of the primary output in brackets. For every model, one lowp
`quantize` per (weights, equalize, bias_correction): 8 per model.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evals.accuracy import (  # noqa: E402
    CALIB_SEED,
    EVAL_SEED,
    chunks,
    metric_of,
    ort_session,
    sqnr_db,
)
from evals.corpus.models import BY_NAME, load_float, make_feeds  # noqa: E402

VARIANTS = ((False, False), (True, False), (False, True), (True, True))   # (CLE, BC)
VARIANT_NAMES = ("off", "CLE", "BC", "CLE+BC")
WEIGHTS = ("per-channel", "per-tensor")


@dataclass
class Row:
    model: str
    metric: str
    weights: str
    pairs: int
    corrected: int
    cells: dict[str, tuple[float, float]] = field(default_factory=dict)  # metric, SQNR
    higher_is_better: bool = True
    seconds: float = 0.0
    error: str = ""


def _quantize(model: onnx.ModelProto, calib: dict[str, np.ndarray], batch: int,
              granularity: str, eq: bool, bc: bool) -> onnx.ModelProto:
    from lowp.config import Config
    from lowp.pipeline import quantize
    from lowp.targets import WeightGranularity

    config = Config(batch_size=batch, weight_granularity=WeightGranularity(granularity),
                    equalize=eq, bias_correction=bc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize(model, calib, config).model


def _counts(model: onnx.ModelProto) -> tuple[int, int]:
    """(equalizable pairs, Conv/Gemm layers whose bias the correction adjusts)."""
    from lowp.config import Config
    from lowp.passes.annotate import annotate
    from lowp.passes.bias_correct import with_zero_biases
    from lowp.passes.canonicalize import canonicalize
    from lowp.passes.equalize import find_pairs

    canon = canonicalize(model)
    ann = annotate(with_zero_biases(canon), Config())
    layers = {s.node for s in ann.biases.values()}
    ops = {n.name: n.op_type for n in canon.graph.node}
    return len(find_pairs(canon)), sum(1 for n in layers if ops.get(n) in ("Conv", "Gemm"))


def corpus_rows(name: str, calib_n: int, eval_n: int,
                weights: tuple[str, ...] = WEIGHTS) -> list[Row]:
    m = BY_NAME[name]
    metric = metric_of(m)
    float_model = load_float(m)
    b = m.batch
    calib = make_feeds(m, -(-max(calib_n, b) // b) * b, seed=CALIB_SEED)
    evals = list(chunks(make_feeds(m, -(-max(eval_n, b) // b) * b, seed=EVAL_SEED), b))
    run = ort_session(float_model, 1)
    reference = [run(f)[0] for f in evals]

    def score(q: onnx.ModelProto) -> tuple[float, float]:
        r = ort_session(q, 1)
        got = [r(f)[0] for f in evals]
        return metric.score(reference, got, b), sqnr_db(reference, got)

    return _rows(name, metric.label, metric.higher_is_better, float_model, calib, b, score,
                 weights)


def family_rows(name: str, calib_n: int, work: Path,
                weights: tuple[str, ...] = WEIGHTS) -> list[Row]:
    from evals import families

    path, calib, feeds, targets = families.build(name, work)
    float_model = onnx.load(str(path))
    calib = {k: v[:calib_n] for k, v in calib.items()}
    run = ort_session(float_model, 1)
    names = [o.name for o in float_model.graph.output]
    reference = dict(zip(names, run(feeds), strict=True))
    first_metric = next(iter(families.metric(name, reference, targets, reference)))

    def score(q: onnx.ModelProto) -> tuple[float, float]:
        got = dict(zip(names, ort_session(q, 1)(feeds), strict=True))
        value = families.metric(name, got, targets, reference)[first_metric]
        return value, sqnr_db([reference[names[0]]], [got[names[0]]])

    higher = "error" not in first_metric and "px" not in first_metric
    return _rows(name, first_metric, higher, float_model, calib, 16, score, weights)


def _rows(name: str, label: str, higher: bool, float_model: onnx.ModelProto,
          calib: dict[str, np.ndarray], batch: int,
          score: Callable[[onnx.ModelProto], tuple[float, float]],
          weights: tuple[str, ...] = WEIGHTS) -> list[Row]:
    pairs, corrected = _counts(float_model)
    rows = []
    for granularity in weights:
        row = Row(name, label, granularity, pairs, corrected, higher_is_better=higher)
        t0 = time.perf_counter()
        try:
            for (eq, bc), v in zip(VARIANTS, VARIANT_NAMES, strict=True):
                if eq and pairs == 0:
                    continue                       # nothing to equalize: same model as off
                row.cells[v] = score(_quantize(float_model, calib, batch, granularity, eq, bc))
        except Exception as e:                       # reported in the table, never raised
            row.error = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:150]}"
        row.seconds = time.perf_counter() - t0
        rows.append(row)
        print(_line(row), flush=True)
    return rows


def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 0.01 and v != 0 else f"{v:.4g}"


def _line(row: Row) -> str:
    cells = []
    for v in VARIANT_NAMES:
        if v in row.cells:
            metric, sqnr = row.cells[v]
            cells.append(f"{_fmt(metric)} ({sqnr:.2f} dB)")
        else:
            cells.append("= off (no pair)" if v.startswith("CLE") and not row.error else "")
    return " | ".join([row.model, row.metric, row.weights, str(row.pairs), str(row.corrected),
                       *cells, row.error or _verdict(row)])


def _verdict(row: Row, tie_db: float = 0.1) -> str:
    """Each variant against 'off' on the output SQNR: wins / loses by more than `tie_db`,
    else ties. The task metric is in the cells: with 32 samples its steps are coarse."""
    if "off" not in row.cells:
        return ""
    base = row.cells["off"][1]
    words = []
    for v in VARIANT_NAMES[1:]:
        if v in row.cells:
            d = row.cells[v][1] - base
            word = "wins" if d > tie_db else "loses" if d < -tie_db else "ties"
            words.append(f"{v} {word} ({d:+.2f} dB)")
    return "; ".join(words)


HEADER = ("model", "metric", "weights", "CLE pairs", "BC layers", *VARIANT_NAMES,
          "vs off (SQNR)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="*", default=[], choices=sorted(BY_NAME))
    p.add_argument("--families", nargs="*", default=[])
    p.add_argument("--calib", type=int, default=16)
    p.add_argument("--eval", type=int, default=32)
    p.add_argument("--weights", nargs="+", choices=WEIGHTS, default=list(WEIGHTS))
    p.add_argument("--markdown", metavar="FILE")
    args = p.parse_args(argv)
    rows: list[Row] = []
    print(" | ".join(HEADER), flush=True)
    with tempfile.TemporaryDirectory(prefix="lowp-corrections-") as tmp:
        for name in args.families:
            rows += family_rows(name, args.calib, Path(tmp), tuple(args.weights))
        for name in args.models:
            rows += corpus_rows(name, args.calib, args.eval, tuple(args.weights))
    if args.markdown:
        lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
        lines += ["| " + _line(r) + " |" for r in rows]
        Path(args.markdown).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
