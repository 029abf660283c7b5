"""The corpus quantized by ONNX Runtime's quantizer with options other than run.py's, each
file run by ONNX Runtime and by lowp's Session.

    python evals/corpus/producer_options.py [--models magika nudenet_320n]
                                            [--options per_tensor u16] [--calib 8]
                                            [--markdown table.md] [--keep DIR]
                                            [--ort-config KEY=VALUE ...] [--threads 1 2]

run.py quantizes with QDQ, per-channel int8 weights, uint8 activations, min/max;
qoperator.py does the same in QOperator form. Here, one column per option (`OPTIONS`):
per-tensor weights (quantize_static's default), reduce_range, int8 activations with
symmetric activations and weights, 16-bit activations (uint16 and int16: com.microsoft
QuantizeLinear / DequantizeLinear below opset 21), and quantize_dynamic
(DynamicQuantizeLinear, MatMulInteger, ConvInteger, DynamicQuantizeLSTM). Beyond those:
QOperator form (QLinearConv, QLinearMatMul, QGemm, QLinearAdd ...), the extra_options
AddQDQPairToWeight (float weights behind a QuantizeLinear -> DequantizeLinear pair),
DedicatedQDQPair (one pair per consumer), QDQKeepRemovableActivations (the pairs around Relu
/ Clip kept), QDQOpTypePerChannelSupportToAxis (per-channel MatMul weights along axis 1),
ActivationSymmetric on uint8 activations (zero point 128), int4 weights (QInt4),
quantize_dynamic per channel and with uint8 weights, and weight-only MatMulNBits from
MatMulNBitsQuantizer (4 or 8 bits, blocks of 32, 64 or 128, symmetric or not, accuracy level
4; in QOperator form a com.microsoft MatMulNBits, in QDQ form a blockwise int4
DequantizeLinear before the MatMul). Each cell is the share of output elements on which the
two engines agree exactly and the largest difference, or the step that failed (`ORT
quantize`, `ORT run`: ONNX Runtime's own; `lowp`: lowp's); with `--threads 1 2`, one such
figure per thread count (lowp's `Session(threads=T)` against ONNX Runtime's T intra-op
threads), joined by ` · `. Calibration and test feeds are run.py's (seed 0 and seed 1).
`--ort-config` passes session configuration entries to ONNX Runtime's run (e.g.
session.qdq_matmulnbits_accuracy_level=0: its DequantizeLinear -> MatMul fusion into
MatMulNBits then computes in float32 instead of quantizing the activations to int8;
repro/README.md). Needs the corpus cache (python evals/corpus/fetch.py).
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
    `extra` extra_options; QuantType and QuantFormat names as strings), dynamic (`static`
    then holds quantize_dynamic's keyword arguments) or weight-only MatMulNBits (`nbits`:
    MatMulNBitsQuantizer's keyword arguments)."""

    name: str
    dynamic: bool = False
    static: tuple[tuple[str, Any], ...] = ()
    extra: tuple[tuple[str, Any], ...] = ()
    nbits: tuple[tuple[str, Any], ...] = ()


OPTIONS: tuple[Option, ...] = (
    Option("per_tensor", static=(("per_channel", False),)),
    Option("reduce_range", static=(("per_channel", True), ("reduce_range", True))),
    Option("s8_symmetric", static=(("per_channel", True), ("activation_type", "QInt8")),
           extra=(("ActivationSymmetric", True), ("WeightSymmetric", True))),
    Option("u16", static=(("per_channel", True), ("activation_type", "QUInt16"))),
    Option("s16", static=(("per_channel", True), ("activation_type", "QInt16"))),
    Option("dynamic", dynamic=True),
    Option("qoperator", static=(("per_channel", True), ("quant_format", "QOperator"))),
    Option("qoperator_s8", static=(("per_channel", True), ("quant_format", "QOperator"),
                                   ("activation_type", "QInt8")),
           extra=(("ActivationSymmetric", True),)),
    Option("weight_pair", static=(("per_channel", True),),
           extra=(("AddQDQPairToWeight", True),)),
    Option("dedicated_pair", static=(("per_channel", True),),
           extra=(("DedicatedQDQPair", True),)),
    Option("keep_removable", static=(("per_channel", True),),
           extra=(("QDQKeepRemovableActivations", True),)),
    Option("matmul_axis", static=(("per_channel", True),),
           extra=(("QDQOpTypePerChannelSupportToAxis", {"MatMul": 1}),)),
    Option("u8_symmetric", static=(("per_channel", True),),
           extra=(("ActivationSymmetric", True),)),
    Option("s4_weights", static=(("per_channel", True), ("weight_type", "QInt4"))),
    Option("dynamic_per_channel", dynamic=True, static=(("per_channel", True),)),
    Option("dynamic_u8", dynamic=True, static=(("weight_type", "QUInt8"),)),
    Option("nbits4_b32_sym", nbits=(("bits", 4), ("block_size", 32), ("is_symmetric", True))),
    Option("nbits4_b128_acc4", nbits=(("bits", 4), ("block_size", 128),
                                      ("accuracy_level", 4))),
    Option("nbits4_b64_qdq", nbits=(("bits", 4), ("block_size", 64),
                                    ("quant_format", "QDQ"))),
    Option("nbits8_b32_acc4", nbits=(("bits", 8), ("block_size", 32),
                                     ("accuracy_level", 4))),
)
# run.py's and qoperator.py's columns plus the first six, unless --options names others
DEFAULT_OPTIONS = ("per_tensor", "reduce_range", "s8_symmetric", "u16", "s16", "dynamic")
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

    def enum(key: str, value: Any) -> Any:
        if key.endswith("_type"):
            return getattr(QuantType, value)
        return getattr(QuantFormat, value) if key == "quant_format" else value

    model = onnx.load(str(float_path))
    if {o.domain: o.version for o in model.opset_import}.get("", 0) < 13:
        float_path = out.with_suffix(".opset13.onnx")
        model = version_converter.convert_version(model, 13)
        onnx.save(model, str(float_path))
    if option.nbits:
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

        nbits = MatMulNBitsQuantizer(model, **{k: enum(k, v) for k, v in option.nbits})
        nbits.process()
        nbits.model.save_model_to_file(str(out), use_external_data_format=False)
        return
    if option.dynamic:
        dyn: dict[str, Any] = {"weight_type": QuantType.QInt8}
        dyn.update({k: enum(k, v) for k, v in option.static})
        quantize_dynamic(str(float_path), str(out), **dyn)
        return

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = chunks(calib, batch)

        def get_next(self) -> Feeds | None:
            return next(self.it, None)

    kwargs: dict[str, Any] = {"quant_format": QuantFormat.QDQ,
                              "activation_type": QuantType.QUInt8,
                              "weight_type": QuantType.QInt8}
    kwargs.update({k: enum(k, v) for k, v in option.static})
    quantize_static(str(float_path), str(out), Reader(), extra_options=dict(option.extra),
                    **kwargs)


@dataclass
class Row:
    model: CorpusModel
    cells: dict[str, str] = field(default_factory=dict)


def cell(option: Option, m: CorpusModel, float_path: Path, out: Path, calib: Feeds,
         feeds: Feeds, ort_config: Mapping[str, str], threads: tuple[int, ...] = (1,)) -> str:
    """'identical % / max diff' of lowp's Session against ONNX Runtime on the file that
    `option` makes, once per thread count (joined by ' · '), or the step that failed and
    its error."""
    label = "ORT quantize"
    try:
        quantize(option, float_path, out, calib, m.batch)
    except Exception as e:
        return f"{label}: {_error(e)}"[:160]
    figures = []
    for t in threads:
        label = "ORT run"
        try:
            want = run_all(ort_runner(out, t, ort_config), feeds, m.batch)
            label = "lowp"
            got = run_all(lowp_runner(out, t), feeds, m.batch)
            ident, diff, _, _ = agreement(got, want)
        except Exception as e:
            figures.append(f"{label}: {_error(e)}"[:160])
            continue
        figures.append(f"{ident:.2f} / {diff:.3g}")
    return " · ".join(figures)


def evaluate(m: CorpusModel, options: list[Option], work: Path, calib_samples: int,
             ort_config: Mapping[str, str], threads: tuple[int, ...] = (1,)) -> Row:
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
                                 calib, feeds, ort_config, threads)
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
    parser.add_argument("--options", nargs="*", default=list(DEFAULT_OPTIONS),
                        choices=[o.name for o in OPTIONS])
    parser.add_argument("--calib", type=int, default=8)
    parser.add_argument("--markdown", metavar="FILE")
    parser.add_argument("--keep", metavar="DIR")
    parser.add_argument("--ort-config", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", nargs="*", type=int, default=[1])
    args = parser.parse_args(argv)
    ort_config = dict(entry.split("=", 1) for entry in args.ort_config)
    logging.getLogger().setLevel(logging.ERROR)
    options = [BY_OPTION[o] for o in args.options]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for name in args.models:
            rows.append(evaluate(BY_NAME[name], options, work, args.calib, ort_config,
                                 tuple(args.threads)))
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
