"""Held-out folds cut along time from one calibration excerpt, measured on corpus models.

    python evals/time_folds.py --models madmom_beats_tcn madmom_key_cnn --calib 16 --eval 32

A model whose calibration is a single feed of a fixed size (the madmom models: one excerpt
of 64 or 128 frames, the time axis pinned) gets no held-out fold from lowp's measured
choice: its candidates are measured on the data their ranges come from. Where the model is
convolutional over that axis, the one excerpt can be cut in `--windows` disjoint time
windows, each a feed of a copy of the model whose first input axis is pinned to the window
length; the measured default (`Config()`) then holds out one window per fold. For each
model this script prints, scored as evals/accuracy.py scores "lowp measured" (task metric
and SQNR of the scored output on the evaluation feeds, seed 1):

- `in-sample`: the default as it runs now (the one excerpt, measured in-sample);
- `time folds`: the rule, bias correction decision and float layers that the default keeps
  on the windowed copy, applied to the whole model and calibration excerpt;
- every candidate rule alone and with bias correction (`Config.bias_correction`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
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


def windowed(model: onnx.ModelProto, length: int) -> onnx.ModelProto:
    """A copy of `model` whose inputs' first axis is pinned to `length`; the outputs' and
    intermediate shapes are left to be inferred again."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for inp in m.graph.input:
        dims = inp.type.tensor_type.shape.dim
        if dims:
            dims[0].ClearField("dim_param")
            dims[0].dim_value = length
    for out in m.graph.output:
        dims = out.type.tensor_type.shape.dim
        for d in dims:
            d.ClearField("dim_value")
            d.ClearField("dim_param")
    del m.graph.value_info[:]
    return m


def score(name: str, model: onnx.ModelProto, evals: list, reference: list, threads: int
          ) -> str:
    m = BY_NAME[name]
    session = ort_session(model, threads)
    got = [session(f)[SCORED_OUTPUT.get(name, 0)] for f in evals]
    return (f"{_num(metric_of(m).score(reference, got, m.batch))} "
            f"({_num(sqnr_db(reference, got))} dB)")


def chosen_config(result: object, base: object) -> tuple[str, object]:
    """The label and the Config of what the measured default kept in `result`."""
    from lowp.passes.method_choice import candidate_config

    choice = result.method_choice  # type: ignore[attr-defined]
    bc = choice.bias_correction is not None and choice.bias_correction.kept
    cfg = dataclasses.replace(candidate_config(base, choice.chosen),  # type: ignore[arg-type]
                              exclude_nodes=tuple(choice.kept_float), bias_correction=bc)
    label = choice.chosen + "".join(f" + {n} float" for n in choice.kept_float) + (
        " + bias correction" if bc else "")
    folds = " / ".join(f"{c.method} {' '.join(f'{v:.2f}' for v in c.folds_db)}"
                       for c in choice.candidates if c.folds_db)
    line = choice.bias_correction.line().strip() if choice.bias_correction else ""
    return f"{label} [folds: {folds}; {line}]", cfg


def run(name: str, windows: int, calib_samples: int, eval_samples: int, threads: int,
        rules: bool) -> None:
    from lowp.config import Config
    from lowp.passes.method_choice import candidate_config, candidate_names
    from lowp.pipeline import quantize

    m = BY_NAME[name]
    with tempfile.TemporaryDirectory() as tmp:
        float_model, _, calib, evals, reference = model_data(
            m, Path(tmp), calib_samples=calib_samples, eval_samples=eval_samples,
            threads=threads)
    base = Config()
    print(f"## {name}", flush=True)
    now = quantize(float_model, calib)
    label, _ = chosen_config(now, base)
    print(f"in-sample (the default now): {label}: "
          f"{score(name, now.model, evals, reference, threads)}", flush=True)
    frames = next(iter(calib.values())).shape[0]
    length = frames // windows
    short = windowed(float_model, length)
    feeds = [{k: np.ascontiguousarray(v[i * length:(i + 1) * length])
              for k, v in calib.items()} for i in range(windows)]
    try:
        cut = quantize(short, feeds)
        label, cfg = chosen_config(cut, base)
        full = quantize(float_model, calib, cfg).model
        print(f"time folds ({windows} windows of {length}): {label}: "
              f"{score(name, full, evals, reference, threads)}", flush=True)
    except Exception as e:        # a model that does not run on a shorter window
        print(f"time folds ({windows} windows of {length}): failed: "
              f"{type(e).__name__}: {str(e).splitlines()[0][:200]}", flush=True)
    if not rules:
        return
    for rule in candidate_names(base):
        cells = []
        for bc in (False, True):
            cfg = dataclasses.replace(candidate_config(base, rule), bias_correction=bc)
            cells.append(score(name, quantize(float_model, calib, cfg).model, evals,
                               reference, threads))
        print(f"{rule}: {cells[0]}; with bias correction {cells[1]}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_corpus_arguments(p)
    p.add_argument("--windows", type=int, default=2, help="time windows (folds)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-rules", action="store_true", help="leave out the fixed rules")
    args = p.parse_args(argv)
    with threadpool_limits(limits=args.threads):
        for name in args.models:
            run(name, args.windows, args.calib, args.eval, args.threads, not args.no_rules)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
