"""lowp / ONNX Runtime latency on lowp's QDQ file of every corpus model, interleaved.

    python bench/corpus_ratio.py --work DIR [--threads 1 2] [--rounds 15] [--models A B ...]
                                 [--prequantized] [--markdown table.md] [--quantize-only]
                                 [--fp32]

Each model's QDQ file is `DIR/<name>.lowp.qdq.onnx`, quantized here (16 calibration samples,
seed 0, as `evals/corpus/run.py`) when it is missing; `--prequantized` adds the files the
corpus ships already quantized, run as they are (a file with frozen inputs as `load_float`
gives it, saved to `DIR/<name>.frozen.onnx`). For each model and thread count one process
holds both sessions; after 3 warm-up runs each, `--rounds` rounds run lowp then ONNX Runtime
on one batch of the model's evaluation feeds (seed 1), timed on the wall clock, on the
process CPU clock and on each engine's own threads (`own`: the calling thread inside its run
plus its workers' CPU time over the round: ONNX Runtime's idle workers spin after its run, by
default about 40 ms of CPU at 2 threads on the AMD EPYC, which the process clock bills to
lowp's next run; docs/native.md); then each engine alone, in a block of `--rounds` runs
started after 0.2 s of sleep (so the other one's spinning workers have gone quiet): the
`block` ratio is what each engine's latency is when it has the machine to itself, which
at 2 threads the interleaved wall clock does not show. Printed: the ratios of the medians,
and whether every output is identical (NaN equal to NaN). On a shared machine only the
ratios mean something; the load average is printed at the start and the end.

`--fp32` also times ONNX Runtime on the model's float file, alone in a block as the others:
the `lowp / fp32` and `ORT / fp32` ratios say whether int8 pays on this model, and whether
lowp's int8 beats ONNX Runtime's float run wherever ONNX Runtime's int8 does. (A file the
corpus ships already quantized has no float file: no column.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from threadpoolctl import threadpool_limits
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import interleaved_ms, ort_session, thread_ids, wall_cpu_own  # noqa: E402
from evals.corpus.models import MODELS, PREQUANTIZED, CorpusModel, load_float, make_feeds  # noqa: E402

import lowp  # noqa: E402

CALIBRATION_SAMPLES = 16


@dataclass(frozen=True)
class Row:
    """One model at one thread count."""

    name: str
    threads: int
    lowp_ms: float
    ort_ms: float
    wall_ratio: float
    cpu_ratio: float
    own_ratio: float
    block_ratio: float
    identical: bool
    lowp_fp32_ratio: float | None = None    # lowp int8 block / ONNX Runtime fp32 block
    ort_fp32_ratio: float | None = None     # ONNX Runtime int8 block / its fp32 block


def qdq_file(spec: CorpusModel, work: Path, shipped: bool) -> Path:
    """lowp's QDQ file of `spec` in `work` (quantized now when missing), or the shipped one."""
    if shipped and not spec.frozen and not spec.pin_batch:
        return spec.path
    if shipped:     # frozen recurrent states folded in, as the corpus runs the file
        path = work / f"{spec.name}.frozen.onnx"
        if not path.exists():
            onnx.save(load_float(spec), str(path))
        return path
    path = work / f"{spec.name}.lowp.qdq.onnx"
    if not path.exists():
        calib = make_feeds(spec, spec.calib_samples(CALIBRATION_SAMPLES), seed=0)
        onnx.save(lowp.quantize_model(load_float(spec), calib), str(path))
    return path


def identical(ours: list[np.ndarray], theirs: list[Any]) -> bool:
    """Every output equal in shape, type and values (ZipMap's sequence of maps, a list
    from ONNX Runtime, as an object array)."""
    pairs = [(a, np.asarray(b)) for a, b in zip(ours, theirs, strict=True)]
    return all(a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=
               a.dtype.kind in "fc") for a, b in pairs)


def measure(spec: CorpusModel, path: Path, threads: int, rounds: int,
            fp32: bool = False) -> Row:
    batches = make_feeds(spec, spec.batch, 1)
    # (a graph model's feeds are a list of whole batches: its first one is timed)
    feeds = batches[0] if isinstance(batches, list) else batches
    session = lowp.Session(str(path), threads=threads)
    before = thread_ids()
    runtime = ort_session(str(path), threads)
    ort_workers = thread_ids() - before
    me = threading.get_native_id()
    names = [o.name for o in runtime.get_outputs()]
    def ours() -> list[np.ndarray]:
        values = session.run(feeds, names)
        return [np.asarray(values[n]) for n in names]

    # lowp's workers: every other thread but the caller (its pool starts on first use; any
    # other thread of the process is counted as lowp's too)
    with threadpool_limits(limits=threads):
        wall, cpu, own, outputs = wall_cpu_own(
            (ours, lambda: runtime.run(names, feeds)),
            (lambda: thread_ids() - ort_workers - {me}, lambda: ort_workers), rounds)
        blocks = []
        for fn in (ours, lambda: runtime.run(names, feeds)):
            time.sleep(0.2)
            blocks.append(interleaved_ms([fn], rounds, 1e9)[0])
        if fp32:
            # the float file with recurrent states frozen, as the corpus runs it
            float_runtime = ort_session(load_float(spec).SerializeToString(), threads)
            del runtime     # its spinning workers gone before the float block
            time.sleep(0.2)
            blocks.append(interleaved_ms([lambda: float_runtime.run(names, feeds)],
                                         rounds, 1e9)[0])
    a, b = (statistics.median(t) for t in wall)
    return Row(spec.name, threads, 1e3 * a, 1e3 * b, a / b,
               statistics.median(cpu[0]) / statistics.median(cpu[1]),
               statistics.median(own[0]) / statistics.median(own[1]),
               blocks[0] / blocks[1], identical(outputs[0], outputs[1]),
               *((blocks[0] / blocks[2], blocks[1] / blocks[2]) if fp32 else ()))


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def ratios(row: Row, fp32: bool) -> list[float]:
    """The row's ratios in the table's order (the fp32 ones as NaN where not measured)."""
    extra = [row.lowp_fp32_ratio, row.ort_fp32_ratio] if fp32 else []
    return [row.wall_ratio, row.cpu_ratio, row.own_ratio, row.block_ratio,
            *(float("nan") if x is None else x for x in extra)]


def markdown(rows: list[Row], threads: list[int]) -> str:
    by_model: dict[str, dict[int, Row]] = {}
    for r in rows:
        by_model.setdefault(r.name, {})[r.threads] = r
    fp32 = any(r.lowp_fp32_ratio is not None for r in rows)
    what = "wall / CPU / own CPU / block" + (" / lowp:fp32 / ORT:fp32" if fp32 else "")
    head = "| model | " + " | ".join(f"{t} thread(s): {what}, identical" for t in threads)
    lines = [head + " |", "|---|" + "---|" * len(threads)]
    for name, cells in by_model.items():
        text = [" / ".join(f"{x:.2f}" for x in ratios(c, fp32)) + f", "
                f"{'yes' if c.identical else 'NO'}"
                if (c := cells.get(t)) else "-" for t in threads]
        lines.append(f"| {name} | " + " | ".join(text) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True, help="folder of the QDQ files")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--models", nargs="+", help="corpus model names (default: all)")
    p.add_argument("--prequantized", action="store_true",
                   help="also the files the corpus ships already quantized")
    p.add_argument("--markdown", type=Path, help="also write the table as markdown here")
    p.add_argument("--quantize-only", action="store_true",
                   help="only make the missing QDQ files")
    p.add_argument("--fp32", action="store_true",
                   help="also time ONNX Runtime on the float file (lowp:fp32, ORT:fp32)")
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    shipped = {m.name for m in PREQUANTIZED}
    specs = [*MODELS, *(PREQUANTIZED if args.prequantized else ())]
    if args.models:
        specs = [m for m in specs if m.name in args.models]
    print(f"load average at start: {load_average()}", flush=True)
    rows: list[Row] = []
    bar = tqdm(specs, file=sys.stderr)
    for spec in bar:
        bar.set_postfix_str(spec.name)
        try:
            path = qdq_file(spec, args.work, spec.name in shipped)
            for t in () if args.quantize_only else args.threads:
                row = measure(spec, path, t, args.rounds,
                              fp32=args.fp32 and spec.name not in shipped)
                rows.append(row)
                versus_float = ("" if row.lowp_fp32_ratio is None else
                                f"  lowp:fp32 {row.lowp_fp32_ratio:5.2f}  ORT:fp32 "
                                f"{row.ort_fp32_ratio:5.2f}")
                bar.write(f"{row.name:28s} {t} thr  lowp {row.lowp_ms:9.2f} ms  ORT "
                          f"{row.ort_ms:9.2f} ms  wall {row.wall_ratio:5.2f}  cpu "
                          f"{row.cpu_ratio:5.2f}  own cpu {row.own_ratio:5.2f}  block "
                          f"{row.block_ratio:5.2f}{versus_float}  "
                          f"identical {row.identical}")
        except Exception as e:      # a model that fails is reported, the others still run
            bar.write(f"{spec.name:28s} failed: {e!r:.200}")
    print(f"load average at end: {load_average()}", flush=True)
    table = markdown(rows, args.threads)
    print(table)
    if args.markdown:
        args.markdown.write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
