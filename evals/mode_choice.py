"""Mode AUTO on transformer models: which mode it keeps, and every candidate's SQNR and latency.

    python evals/mode_choice.py [--models bert khmersm] [--calib 64] [--eval 128]

`bert` is the family of evals/families.py (trained, calibration and evaluation feeds from
there); `khmersm` is the corpus model (evals/corpus, cached file; calibration feeds with
seed 0, evaluation feeds with seed 1, batch 1 as its export requires). For each model:
`Config(mode=QuantMode.AUTO)` on the calibration feeds (its own held-out split), then every
candidate built on its own (static calibrated on all the calibration feeds) and scored on the
independent evaluation feeds: output SQNR on lowp's engine against ONNX Runtime float, and
for bert the accuracy against the labels.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evals.fallback import held_out_sqnr  # noqa: E402


def _data(name: str, calib_n: int, eval_n: int, work: Path):
    """(float model, calibration arrays, evaluation arrays, labels or None, batch size)."""
    import onnx

    if name == "bert":
        from evals.families import build
        path, calib, feeds, targets = build("bert", work)
        calib = {k: v[:calib_n] for k, v in calib.items()}
        feeds = {k: v[:eval_n] for k, v in feeds.items()}
        assert targets is not None
        return onnx.load(str(path)), calib, feeds, targets[:eval_n], 16
    from evals.corpus.models import BY_NAME, load_float, make_feeds
    m = BY_NAME[name]
    return (load_float(m), make_feeds(m, calib_n, seed=0), make_feeds(m, eval_n, seed=1),
            None, m.batch)


def run(name: str, calib_n: int, eval_n: int, work: Path, tolerance: float) -> list[str]:
    from lowp.config import Config, QuantMode
    from lowp.passes.mode_choice import CANDIDATES, candidate_config
    from lowp.pipeline import quantize

    float_model, calib, feeds, labels, batch = _data(name, calib_n, eval_n, work)
    config = Config(mode=QuantMode.AUTO, batch_size=batch, auto_tolerance_db=tolerance)
    start = time.perf_counter()
    result = quantize(float_model, calib, config)
    seconds = time.perf_counter() - start
    choice = result.mode_choice
    assert choice is not None
    print(f"== {name}\n{choice.format()}\n  AUTO run: {seconds:.1f} s")
    lines = []
    for c in choice.candidates:
        t = time.perf_counter()
        model = quantize(float_model, calib, candidate_config(config, c.name)).model
        print(f"  {c.name} alone: {time.perf_counter() - t:.1f} s")
        sqnr = held_out_sqnr(model, float_model, feeds, batch)
        extra = ""
        if labels is not None:
            from lowp.runtime import Session
            session = Session(model)
            logits = np.concatenate([session.run({k: v[i:i + batch] for k, v in
                                                  feeds.items()})["logits"]
                                     for i in range(0, len(labels), batch)])
            extra = f" | {100.0 * float((logits.argmax(-1) == labels).mean()):.1f}"
        chosen = " **chosen**" if c.name == choice.chosen else ""
        assert c.sqnr_db is not None and c.latency_ms is not None
        lines.append(f"| {name} | {c.name}{chosen} | {c.sqnr_db:.2f} | {c.latency_ms:.2f} | "
                     f"{sqnr:.2f}{extra} |")
        assert c.name in CANDIDATES
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["bert", "khmersm"])
    p.add_argument("--calib", type=int, default=64, help="calibration samples")
    p.add_argument("--eval", type=int, default=128, help="independent evaluation samples")
    p.add_argument("--tolerance", type=float, default=1.0, help="auto_tolerance_db")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="lowp-mode-") as tmp:
        for name in args.models:
            rows += run(name, args.calib, args.eval, Path(tmp), args.tolerance)
    print("\n| model | candidate | SQNR held-out calib (dB) | latency (ms) | "
          "SQNR eval (dB) [| accuracy (%)] |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
