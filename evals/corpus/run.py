"""Quantize every corpus model with lowp and with ONNX Runtime, run both QDQ files on both
engines, and print one table (see README.md for the columns).

    python evals/corpus/run.py [--models magika nudenet_320n] [--threads 1] [--repeat 10]
                               [--calib 16] [--markdown table.md] [--keep DIR] [--debug]
                               [--nncf]

Per model: lowp's `quantize_model` with the default Config, and ONNX Runtime's
`quantize_static` (QDQ, per-channel int8 weights, uint8 activations, min/max), both on the
same calibration feeds; with `--nncf` also NNCF's `nncf.quantize` with its defaults (as
evals/accuracy.py calls it: TRANSFORMER mode for its transformer encoders), when nncf is
installed. Every QDQ file runs on lowp's `Session` and on ONNX Runtime:
agreement is the share of output elements on which the two engines give identical values
on the same file; the float model itself is compared the same way (lowp's float operators
follow ONNX Runtime's order and fusions, so any difference there is a finding). SQNR
compares ONNX Runtime's run of each QDQ file with the float model's (so it measures the
quantizer, not the engine). Latency is the median of `--repeat` runs of
one batch: lowp int8 and ORT int8 both on lowp's QDQ file, ORT float on the float model.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from threadpoolctl import threadpool_limits
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from evals.corpus.models import (  # noqa: E402
    BY_NAME,
    MODELS,
    CorpusModel,
    load_float,
    make_feeds,
)

Feeds = dict[str, np.ndarray]
Runner = Callable[[Feeds], Feeds]
PRODUCERS = ("lowp", "ort")


@dataclass
class Result:
    """Everything measured for one model; strings are errors of the step that failed."""

    model: CorpusModel
    refused: str | None = None                       # lowp's up-front UnsupportedOpError
    errors: dict[str, str] = field(default_factory=dict)
    identical: dict[str, float] = field(default_factory=dict)   # producer -> % identical
    max_diff: dict[str, float] = field(default_factory=dict)
    worst_output: dict[str, str] = field(default_factory=dict)
    rounding_only: dict[str, bool] = field(default_factory=dict)
    sqnr: dict[str, float] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)


def _error(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0] if lines else ''}"[:240]


def ort_runner(model: onnx.ModelProto | Path, threads: int,
               config: Mapping[str, str] | None = None) -> Runner:
    """ONNX Runtime's CPU session on `model`; `config`: session configuration entries."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    for key, value in (config or {}).items():
        opts.add_session_config_entry(key, value)
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    s = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in s.get_outputs()]
    return lambda feeds: as_tensors(dict(zip(names, s.run(None, dict(feeds)), strict=True)))


def lowp_runner(model: onnx.ModelProto | Path, threads: int) -> Runner:
    import lowp

    s = lowp.Session(model if isinstance(model, onnx.ModelProto) else str(model),
                     threads=threads)
    return lambda feeds: as_tensors(s.run(feeds))


def as_tensors(outputs: Mapping[str, Any]) -> Feeds:
    """`outputs` with a sequence of maps (ZipMap's list of dicts) as its scores (`name`) and
    its keys (`name#keys`), so that both are compared."""
    from lowp.runtime.ml_ops import maps_as_arrays

    return maps_as_arrays(dict(outputs), keys_suffix="#keys")


def chunks(feeds: Feeds | list[Feeds], size: int) -> Iterator[Feeds]:
    if isinstance(feeds, list):     # a graph model's batches, made whole (models.molecules)
        yield from feeds
        return
    n = len(next(iter(feeds.values())))
    for i in range(0, n - size + 1, size):
        yield {k: v[i:i + size] for k, v in feeds.items()}


def run_all(run: Runner, feeds: Feeds | list[Feeds], size: int) -> list[Feeds]:
    return [run(b) for b in chunks(feeds, size)]


def median_ms(run: Runner, feeds: Feeds, repeat: int, budget: float = 5.0) -> float:
    run(feeds)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeat and (len(times) < 3 or time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        run(feeds)
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def agreement(a: list[Feeds], b: list[Feeds]) -> tuple[float, float, str, bool]:
    """% identical elements, largest |a - b|, the output with the largest difference, and
    whether every difference is a float rounding (<= 1e-4 of the output's largest value)."""
    same = total = 0
    worst, worst_name = 0.0, ""
    rounding = True
    for x, y in zip(a, b, strict=True):
        for k, ref in y.items():
            got = np.asarray(x[k])
            if got.shape != ref.shape:
                raise ValueError(f"output '{k}': shape {got.shape} vs {ref.shape}")
            same += int(np.sum(got == ref))
            total += ref.size
            d = float(np.abs(got.astype(np.float64) - ref.astype(np.float64)).max(initial=0))
            if d > worst:
                worst, worst_name = d, k
            if d > 1e-4 * float(np.abs(ref).max(initial=0)) + 1e-7:
                rounding = False
    return 100.0 * same / max(total, 1), worst, worst_name, rounding


def sqnr_db(ref: list[Feeds], got: list[Feeds]) -> float:
    """Signal-to-quantization-noise ratio over every float output element (dB)."""
    signal = noise = 0.0
    for r, g in zip(ref, got, strict=True):
        for k, v in r.items():
            if v.dtype.kind != "f":
                continue
            v64 = v.astype(np.float64)
            signal += float(np.sum(v64 ** 2))
            noise += float(np.sum((v64 - np.asarray(g[k], np.float64)) ** 2))
    if noise == 0.0:
        return float("inf")
    if signal == 0.0:   # the float model outputs only zeros (e.g. a saturated sigmoid)
        return float("nan")
    return 10.0 * np.log10(signal / noise)


def ort_quantize(float_path: Path, out: Path, calib: Feeds | list[Feeds], batch: int) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    model = onnx.load(str(float_path))
    opset = {o.domain: o.version for o in model.opset_import}.get("", 0)
    if opset < 13:   # per-channel DequantizeLinear (axis) needs opset 13
        from onnx import version_converter

        float_path = out.with_suffix(".opset13.onnx")
        onnx.save(version_converter.convert_version(model, 13), str(float_path))

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = chunks(calib, batch)

        def get_next(self) -> Feeds | None:
            return next(self.it, None)

    quantize_static(str(float_path), str(out), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)


def nncf_quantize(model: onnx.ModelProto, name: str, calib: Feeds, batch: int
                  ) -> onnx.ModelProto:
    from evals.accuracy import nncf_quantize as quantize

    return quantize(model, name, calib, batch)


def lowp_quantize(model: onnx.ModelProto, calib: Feeds | list[Feeds]) -> onnx.ModelProto:
    import lowp

    return lowp.quantize_model(model, calib)


def evaluate(m: CorpusModel, work: Path, *, threads: int, repeat: int, calib_samples: int,
             bar: tqdm | None = None, nncf: bool = False) -> Result:
    """Quantize, compare and time one model; never raises."""
    from lowp.errors import UnsupportedOpError

    res = Result(m)

    def stage(label: str) -> None:
        if bar is not None:
            bar.set_postfix_str(f"{m.name}: {label}")

    try:
        stage("load")
        float_model = load_float(m)
        float_path = work / f"{m.name}.float.onnx"
        onnx.save(float_model, str(float_path))
        n_calib = m.calib_samples(calib_samples)
        calib = make_feeds(m, n_calib, seed=0)
        feeds = make_feeds(m, 2 * m.batch, seed=1)
        one = next(chunks(feeds, m.batch))
        ort_float = ort_runner(float_path, threads)
        reference = run_all(ort_float, feeds, m.batch)
        res.latency_ms["ORT float"] = median_ms(ort_float, one, repeat)
    except Exception as e:
        res.errors["float"] = _error(e)
        return res

    stage("lowp float")
    try:    # the float model itself on lowp's engine (docs: float regions, ONNX Runtime's order)
        low_float = run_all(lowp_runner(float_path, threads), feeds, m.batch)
        ident, diff, worst, rounding = agreement(low_float, reference)
        res.identical["float"], res.max_diff["float"] = ident, diff
        res.worst_output["float"], res.rounding_only["float"] = worst, rounding
    except UnsupportedOpError:
        pass            # the QDQ runs below report the refusal
    except Exception as e:
        res.errors["lowp Session, float model"] = _error(e)

    qdq: dict[str, Path] = {}
    stage("lowp quantize")
    try:
        q = lowp_quantize(float_model, calib)
        qdq["lowp"] = work / f"{m.name}.lowp.qdq.onnx"
        onnx.save(q, str(qdq["lowp"]))
    except UnsupportedOpError as e:
        res.refused = str(e)
    except Exception as e:
        res.errors["lowp quantize"] = _error(e)
        if "--debug" in sys.argv:
            traceback.print_exc()
    stage("ORT quantize")
    try:
        qdq["ort"] = work / f"{m.name}.ort.qdq.onnx"
        ort_quantize(float_path, qdq["ort"], calib, m.batch)
    except Exception as e:
        del qdq["ort"]
        res.errors["ORT quantize"] = _error(e)
    if nncf:
        stage("NNCF quantize")
        try:
            q = nncf_quantize(float_model, m.name, calib, m.batch)
            qdq["nncf"] = work / f"{m.name}.nncf.qdq.onnx"
            onnx.save(q, str(qdq["nncf"]))
        except Exception as e:
            res.errors["NNCF quantize"] = _error(e)

    for producer, path in qdq.items():
        stage(f"{producer} QDQ")
        try:
            ort_q = ort_runner(path, threads)
            ort_out = run_all(ort_q, feeds, m.batch)
            res.sqnr[producer] = sqnr_db(reference, ort_out)
        except Exception as e:
            res.errors[f"ORT on {producer} QDQ"] = _error(e)
            continue
        try:
            low = lowp_runner(path, threads)
        except UnsupportedOpError as e:
            res.refused = res.refused or str(e)
            continue
        except Exception as e:
            res.errors[f"lowp Session load, {producer} QDQ"] = _error(e)
            if "--debug" in sys.argv:
                traceback.print_exc()
            continue
        try:
            low_out = run_all(low, feeds, m.batch)
            ident, diff, worst, rounding = agreement(low_out, ort_out)
            res.identical[producer], res.max_diff[producer] = ident, diff
            res.worst_output[producer], res.rounding_only[producer] = worst, rounding
        except Exception as e:
            res.errors[f"lowp Session run, {producer} QDQ"] = _error(e)
            if "--debug" in sys.argv:
                traceback.print_exc()
            continue
        if producer == "lowp":
            try:
                res.latency_ms["lowp int8"] = median_ms(low, one, repeat)
                res.latency_ms["ORT int8"] = median_ms(ort_q, one, repeat)
            except Exception as e:
                res.errors["timing"] = _error(e)
    return res


# --------------------------------------------------------------------------- the table

HEADER = ("model", "family", "exporter/opset", "lowp runs?", "lowp QDQ: identical % / max diff",
          "ORT QDQ: identical % / max diff", "float model: identical % / max diff",
          "SQNR dB lowp QDQ / ORT QDQ",
          "ms lowp int8 / ORT int8 / ORT float")
NNCF_HEADER = ("NNCF QDQ: identical % / max diff",)


def _num(v: float | None, digits: int = 3) -> str:
    if v is None:
        return "-"
    if v == float("inf"):
        return "inf"
    if v != v:
        return "n/a"
    return f"{v:.{digits}g}" if abs(v) < 100 else f"{v:.0f}"


def _runs(r: Result, width: int = 60) -> str:
    if r.refused:
        return f"refused: {r.refused}"
    lowp_errors = [f"{k}: {v}" for k, v in r.errors.items() if "lowp" in k]
    if "float" in r.errors:
        lowp_errors.insert(0, f"float: {r.errors['float']}")
    if lowp_errors:
        text = "; ".join(lowp_errors)
        return text if len(text) <= width else text[:width - 3] + "..."
    return "yes" if r.identical else "-"


def _agree(r: Result, producer: str) -> str:
    """`~` marks differences that are all float roundings (float ops after the last DQ)."""
    if producer not in r.identical:
        return "-"
    mark = "~" if r.rounding_only[producer] and r.identical[producer] < 100 else ""
    return f"{r.identical[producer]:.2f} / {_num(r.max_diff[producer])}{mark}"


def row(r: Result, nncf: bool = False) -> list[str]:
    lat = r.latency_ms
    return [r.model.name, r.model.family, f"{r.model.exporter}/{r.model.opset}", _runs(r),
            _agree(r, "lowp"), _agree(r, "ort"), _agree(r, "float"),
            f"{_num(r.sqnr.get('lowp'))} / {_num(r.sqnr.get('ort'))}",
            " / ".join(_num(lat.get(k)) for k in ("lowp int8", "ORT int8", "ORT float")),
            *([_agree(r, "nncf")] if nncf else [])]


def header(nncf: bool = False) -> tuple[str, ...]:
    return HEADER + NNCF_HEADER if nncf else HEADER


def text_table(results: list[Result], nncf: bool = False) -> str:
    rows = [list(header(nncf)), *(row(r, nncf) for r in results)]
    widths = [max(len(x[i]) for x in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(x, widths, strict=True)).rstrip()
             for x in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(results: list[Result], nncf: bool = False) -> str:
    def esc(c: str) -> str:
        return c.replace("|", "\\|")

    head = header(nncf)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(esc(c) for c in row(r, nncf)) + " |" for r in results]
    return "\n".join(lines)


def notes(results: list[Result]) -> str:
    """Every error that is not a refusal, and every disagreement beyond float rounding."""
    out = []
    for r in results:
        for where, msg in r.errors.items():
            out.append(f"{r.model.name}: {where}: {msg}")
        for producer, ident in r.identical.items():
            if ident < 100.0 and (producer == "float" or not r.rounding_only[producer]):
                what = "float model" if producer == "float" else f"{producer} QDQ"
                out.append(f"{r.model.name}: {what}: lowp and ORT differ on "
                           f"{100 - ident:.2f}% of elements, max {r.max_diff[producer]:.4g} "
                           f"(output '{r.worst_output[producer]}')")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    import lowp

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=[m.name for m in MODELS],
                   choices=sorted(BY_NAME), metavar="NAME")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeat", type=int, default=10, help="timed runs per engine (median)")
    p.add_argument("--calib", type=int, default=16, help="calibration samples")
    p.add_argument("--markdown", type=Path, help="also write the table as markdown here")
    p.add_argument("--keep", type=Path, help="keep the float and QDQ files in this folder")
    p.add_argument("--debug", action="store_true", help="print tracebacks of failures")
    p.add_argument("--nncf", action="store_true",
                   help="also quantize with NNCF (skipped with a note when nncf is missing)")
    args = p.parse_args(argv)
    if args.nncf:
        try:
            import nncf  # noqa: F401
        except ImportError:
            print("nncf is not installed: no NNCF column", file=sys.stderr)
            args.nncf = False
    logging.getLogger().setLevel(logging.ERROR)   # ONNX Runtime's quantizer warns per node
    missing = [n for n in args.models if not BY_NAME[n].path.exists()]
    if missing:
        print(f"not in the cache: {', '.join(missing)}; run python evals/corpus/fetch.py",
              file=sys.stderr)
        return 2
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        # lowp's float operators call numpy, whose BLAS pool ignores Session(threads=...)
        with threadpool_limits(limits=args.threads), tqdm(args.models, desc="corpus",
                                                          unit="model") as bar:
            for name in bar:
                results.append(evaluate(BY_NAME[name], work, threads=args.threads,
                                        repeat=args.repeat, calib_samples=args.calib,
                                        bar=bar, nncf=args.nncf))
    title = (f"lowp {getattr(lowp, '__version__', '?')} corpus, {args.threads} thread(s), "
             f"median of {args.repeat} runs")
    print(f"\n{title}\n{text_table(results, args.nncf)}")
    extra = notes(results)
    if extra:
        print(f"\nErrors and disagreements\n{extra}")
    if args.markdown:
        md = f"{title}\n\n{markdown_table(results, args.nncf)}\n"
        if extra:
            md += "\nErrors and disagreements:\n\n" + "".join(
                f"- {line}\n" for line in extra.splitlines())
        args.markdown.write_text(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
