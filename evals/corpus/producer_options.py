"""The corpus quantized by ONNX Runtime's quantizer with options other than run.py's, each
file run by ONNX Runtime and by lowp's Session.

    python evals/corpus/producer_options.py [--models magika nudenet_320n]
                                            [--options per_tensor u16] [--calib 8]
                                            [--markdown table.md] [--keep DIR]
                                            [--ort-config KEY=VALUE ...]

run.py quantizes with QDQ, per-channel int8 weights, uint8 activations, min/max;
qoperator.py does the same in QOperator form. Here, one column per option (`OPTIONS`):
per-tensor weights (quantize_static's default), reduce_range, int8 activations with
symmetric activations and weights, 16-bit activations (uint16 and int16: com.microsoft
QuantizeLinear / DequantizeLinear below opset 21), and quantize_dynamic (DynamicQuantizeLinear,
MatMulInteger, ConvInteger, DynamicQuantizeLSTM). Each cell is the share of output elements
on which the two engines agree exactly and the largest difference, or the step that failed
(`ORT quantize`, `ORT run`: ONNX Runtime's own; `lowp`: lowp's). Calibration and test feeds
are run.py's (seed 0 and seed 1). `--ort-config` passes session configuration entries to
ONNX Runtime's run (e.g. session.qdq_matmulnbits_accuracy_level=0: its DequantizeLinear ->
MatMul fusion into MatMulNBits then computes in float32 instead of quantizing the
activations to int8; repro/README.md). Needs the corpus cache (python
evals/corpus/fetch.py).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

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


@dataclass(frozen=True)
class Option:
    """One way to call ONNX Runtime's quantizer: static (with `static` keyword arguments and
    `extra` extra_options; QuantType names as strings) or dynamic."""

    name: str
    dynamic: bool = False
    static: tuple[tuple[str, Any], ...] = ()
    extra: tuple[tuple[str, Any], ...] = ()


OPTIONS: tuple[Option, ...] = (
    Option("per_tensor", static=(("per_channel", False),)),
    Option("reduce_range", static=(("per_channel", True), ("reduce_range", True))),
    Option("s8_symmetric", static=(("per_channel", True), ("activation_type", "QInt8")),
           extra=(("ActivationSymmetric", True), ("WeightSymmetric", True))),
    Option("u16", static=(("per_channel", True), ("activation_type", "QUInt16"))),
    Option("s16", static=(("per_channel", True), ("activation_type", "QInt16"))),
    Option("dynamic", dynamic=True),
)
BY_OPTION = {o.name: o for o in OPTIONS}


def quantize(option: Option, float_path: Path, out: Path, calib: Feeds, batch: int) -> None:
    """ONNX Runtime's quantizer with `option` on the float file (raised to opset 13 first
    for per-channel axes, as run.py does)."""
    from onnx import version_converter
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    model = onnx.load(str(float_path))
    if {o.domain: o.version for o in model.opset_import}.get("", 0) < 13:
        float_path = out.with_suffix(".opset13.onnx")
        onnx.save(version_converter.convert_version(model, 13), str(float_path))
    if option.dynamic:
        quantize_dynamic(str(float_path), str(out), weight_type=QuantType.QInt8)
        return

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = chunks(calib, batch)

        def get_next(self) -> Feeds | None:
            return next(self.it, None)

    kwargs: dict[str, Any] = {"quant_format": QuantFormat.QDQ,
                              "activation_type": QuantType.QUInt8,
                              "weight_type": QuantType.QInt8}
    for k, v in option.static:
        kwargs[k] = getattr(QuantType, v) if k.endswith("_type") else v
    quantize_static(str(float_path), str(out), Reader(), extra_options=dict(option.extra),
                    **kwargs)


@dataclass
class Row:
    model: CorpusModel
    cells: dict[str, str] = field(default_factory=dict)


def cell(option: Option, m: CorpusModel, float_path: Path, out: Path, calib: Feeds,
         feeds: Feeds, ort_config: Mapping[str, str]) -> str:
    """'identical % / max diff' of lowp's Session against ONNX Runtime on the file that
    `option` makes, or the step that failed and its error."""
    label = "ORT quantize"
    try:
        quantize(option, float_path, out, calib, m.batch)
        label = "ORT run"
        want = run_all(ort_runner(out, 1, ort_config), feeds, m.batch)
        label = "lowp"
        got = run_all(lowp_runner(out, 1), feeds, m.batch)
        ident, diff, _, _ = agreement(got, want)
    except Exception as e:
        return f"{label}: {_error(e)}"[:160]
    return f"{ident:.2f} / {diff:.3g}"


def evaluate(m: CorpusModel, options: list[Option], work: Path, calib_samples: int,
             ort_config: Mapping[str, str]) -> Row:
    """One row for model `m`; never raises."""
    row = Row(m)
    float_path = work / f"{m.name}.float.onnx"
    try:
        onnx.save(load_float(m), str(float_path))
        calib = make_feeds(m, m.calib_samples(calib_samples), seed=0)
        feeds = make_feeds(m, 2 * m.batch, seed=1)
    except Exception as e:
        row.cells = {o.name: f"setup: {_error(e)}" for o in options}
        return row
    for o in options:
        row.cells[o.name] = cell(o, m, float_path, work / f"{m.name}.ort.{o.name}.onnx",
                                 calib, feeds, ort_config)
    return row


def table(rows: list[Row], options: list[Option], markdown: bool) -> str:
    head = ["model", *(o.name for o in options)]
    body = [[r.model.name, *(r.cells.get(o.name, "") for o in options)] for r in rows]
    if markdown:
        esc = lambda c: c.replace("|", "\\|")  # noqa: E731
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in body]
        return "\n".join(lines)
    short = [[c if len(c) < 40 else c[:37] + "..." for c in r] for r in body]
    widths = [max(len(x) for x in col) for col in zip(head, *short, strict=False)]
    fmt = "  ".join(f"{{:{w}s}}" for w in widths)
    return "\n".join([fmt.format(*head), fmt.format(*("-" * w for w in widths)),
                      *(fmt.format(*r) for r in short)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=[m.name for m in MODELS])
    parser.add_argument("--options", nargs="*", default=[o.name for o in OPTIONS],
                        choices=[o.name for o in OPTIONS])
    parser.add_argument("--calib", type=int, default=8)
    parser.add_argument("--markdown", metavar="FILE")
    parser.add_argument("--keep", metavar="DIR")
    parser.add_argument("--ort-config", nargs="*", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    ort_config = dict(entry.split("=", 1) for entry in args.ort_config)
    logging.getLogger().setLevel(logging.ERROR)
    options = [BY_OPTION[o] for o in args.options]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for name in args.models:
            rows.append(evaluate(BY_NAME[name], options, work, args.calib, ort_config))
            r = rows[-1]
            print(f"{name}: " + "; ".join(f"{k} {v}" for k, v in r.cells.items()),
                  flush=True)
    print()
    print(table(rows, options, markdown=False))
    if args.markdown:
        Path(args.markdown).write_text(table(rows, options, markdown=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
