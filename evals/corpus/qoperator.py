"""The corpus in QOperator form: ONNX Runtime's quantize_static with
QuantFormat.QOperator (per-channel int8 weights, uint8 or int8 activations, min/max) on each
corpus model, then the QOperator file run by ONNX Runtime and by lowp's Session (which reads it as
its lossless QDQ form, lowp.formats).

    python evals/corpus/qoperator.py [--models magika nudenet_320n] [--calib 8]
                                     [--activations u8] [--keep DIR]

Prints per model the quantized operators in the file, the share of output elements on which
the two engines agree exactly and the largest difference, or the step that failed.
Needs the corpus cache (python evals/corpus/fetch.py).
"""

from __future__ import annotations

import argparse
import collections
import logging
import sys
import tempfile
from pathlib import Path

import onnx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.formats.models import ort_quantize  # noqa: E402

from evals.corpus.models import BY_NAME, MODELS, CorpusModel, load_float, make_feeds  # noqa: E402
from evals.corpus.run import (  # noqa: E402
    Feeds,
    _error,
    agreement,
    chunks,
    lowp_runner,
    ort_runner,
    run_all,
)


def quantize_qoperator(float_path: Path, out: Path, calib: Feeds, batch: int,
                       activations: str = "u8") -> None:
    ort_quantize(float_path, out, chunks(calib, batch), activations=activations)


def evaluate(m: CorpusModel, work: Path, calib_samples: int, activations: str = "u8") -> str:
    """One line for model `m`; never raises."""
    try:
        float_path = work / f"{m.name}.float.onnx"
        onnx.save(load_float(m), str(float_path))
        calib = make_feeds(m, m.calib_samples(calib_samples), seed=0)
        feeds = make_feeds(m, 2 * m.batch, seed=1)
        qop = work / f"{m.name}.ort.{activations}.qop.onnx"
        quantize_qoperator(float_path, qop, calib, m.batch, activations)
    except Exception as e:
        return f"{m.name:22s} ORT quantize failed: {_error(e)}"
    ops = collections.Counter(n.op_type for n in onnx.load(str(qop)).graph.node
                              if n.op_type.startswith(("QLinear", "QGemm", "Dynamic")))
    kinds = " ".join(f"{k}x{v}" for k, v in sorted(ops.items()))
    try:
        want = run_all(ort_runner(qop, 1), feeds, m.batch)
    except Exception as e:
        return f"{m.name:22s} ORT run failed: {_error(e)}  [{kinds}]"
    try:
        got = run_all(lowp_runner(qop, 1), feeds, m.batch)
        ident, diff, worst, _ = agreement(got, want)
    except Exception as e:
        return f"{m.name:22s} lowp failed: {_error(e)}  [{kinds}]"
    return f"{m.name:22s} {ident:8.3f}% identical, max diff {diff:.3g} ({worst})  [{kinds}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=[m.name for m in MODELS])
    parser.add_argument("--calib", type=int, default=8)
    parser.add_argument("--activations", choices=["u8", "s8"], default="u8")
    parser.add_argument("--keep", metavar="DIR")
    args = parser.parse_args(argv)
    logging.getLogger().setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for name in args.models:
            print(evaluate(BY_NAME[name], work, args.calib, args.activations), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
