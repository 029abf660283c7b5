"""End-to-end latency: lowp int8 vs ONNX Runtime int8 (the SAME QDQ file) vs ONNX Runtime
float vs PyTorch's onednn engine, on ResNet-18, MobileNetV2 (224x224) and the bundled demo
model; 1 and 2 threads, batch 1 and 8. Each measurement runs in a fresh process (so peak
memory is per engine), validates first, then reports the median of repeated runs after
warm-up.

PyTorch quantizes the same torch network itself (FX graph mode with the engine's default
qconfig mapping, calibrated on the same 8 inputs) and runs it on channels-last input: its
model is not the QDQ file, so only its time is compared (`--torch-engine none` leaves it out;
the demo model has no torch form).

    python bench/models.py [--networks resnet18 mobilenet_v2 demo] [--batches 1 8]
                           [--threads 1 2] [--repeats 20] [--torch-engine onednn|x86|none]
                           [--interleaved] [--busy N]

`--interleaved` measures contention instead (issue #11: at 2 threads lowp's latency
interleaved with ONNX Runtime stays within 1.2x of its block median). One process per row
holds a lowp and an ONNX Runtime session of the QDQ file and, `--cycles` times, times each
engine alone in a block of `--runs` consecutive runs, then both alternating (so ORT's idle
workers, spinning or parked, share the cores with lowp's next run). It reports lowp's
interleaved median over its block median of the same cycle (median [min-max] over the
cycles) against the target 1.2, with ORT's idle workers spinning after its runs (its
default), during its runs only, or never (`--ort-spin on stop off`). A one-thread lowp
session is timed in the same cycles, alone and alternating with the same ORT session: what
ORT's threads cost a run that has no pool; and lowp's interleaved median over the
one-thread one is the pool's own merit under contention (below 1: its threads still gain).
`--corpus DIR --corpus-models NAME ...` adds corpus models (their lowp QDQ files from
`evals/corpus/run.py --keep DIR`, one batch of their evaluation feeds). `--busy N` keeps N
single-threaded busy-loop processes running during every measurement (a loaded machine).

    python bench/models.py --interleaved --networks resnet18 mobilenet_v2 --batches 1
                           --threads 2 [--ort-spin on stop off] [--cycles 12] [--runs 10]
                           [--corpus DIR --corpus-models magika nudenet_320n]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

CACHE = Path(tempfile.gettempdir()) / "lowp-bench"


def _prepare(name: str) -> tuple[Path, Path]:
    """Float and QDQ model paths (cached)."""
    import lowp
    from lowp.ir.graph import save_model

    if name == "demo":
        from lowp.data import demo_model_path, load_demo_calibration
        float_path, calib = demo_model_path(), load_demo_calibration()
    else:
        import networks
        float_path = networks.export(name, CACHE)
        calib = networks.calibration_data(8)
    qdq_path = CACHE / f"{name}.qdq.onnx"
    if not qdq_path.exists():
        save_model(lowp.quantize_model(float_path, calib), qdq_path)
    return Path(float_path), qdq_path


def _input(name: str, batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    shape = (batch, 1, 8, 8) if name == "demo" else (batch, 3, 224, 224)
    return {"input": rng.standard_normal(shape).astype(np.float32)}


def _peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: reset by exec, unlike ru_maxrss)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _measure(engine: str, path: str, feeds: dict[str, np.ndarray], threads: int,
             repeats: int, queue: mp.Queue) -> None:
    rss0 = _peak_rss_mb()
    if engine == "lowp":
        import lowp
        session = lowp.Session(path, backend="native", threads=threads)
        run = lambda: session.run(feeds)  # noqa: E731
    elif engine.startswith("torch-"):
        import networks
        import torch
        model = networks.quantize_torch(path, engine.removeprefix("torch-"))
        torch.set_num_threads(threads)
        x = torch.from_numpy(next(iter(feeds.values()))).contiguous(
            memory_format=torch.channels_last)

        def run() -> dict[str, np.ndarray]:
            with torch.inference_mode():
                return {"logits": model(x).numpy()}
    else:
        from _common import ort_session
        s = ort_session(path, threads)
        names = [o.name for o in s.get_outputs()]
        run = lambda: dict(zip(names, s.run(None, feeds), strict=True))  # noqa: E731
    out = run()
    for _ in range(3):
        run()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    rss = _peak_rss_mb()
    queue.put({"median_ms": 1e3 * statistics.median(times), "rss_mb": rss,
               "rss_growth_mb": rss - rss0,
               "output": {k: v.tolist() for k, v in out.items()}})


def measure(engine: str, path: Path, feeds: dict[str, np.ndarray], threads: int,
            repeats: int) -> dict:
    from _common import in_child
    return in_child(_measure, engine, str(path), feeds, threads, repeats)


TARGET_CONTENTION = 1.2   # lowp interleaved / lowp block, issue #11


def _measure_interleaved(path: str, feeds: dict[str, np.ndarray], threads: int, runs: int,
                         spin: str, cycles: int, queue: mp.Queue) -> None:
    from _common import contention, ort_session

    import lowp

    session = lowp.Session(path, backend="native", threads=threads)
    one = lowp.Session(path, backend="native", threads=1) if threads != 1 else None
    ort_s = ort_session(path, threads, spin)
    queue.put(contention(lambda: session.run(feeds), lambda: ort_s.run(None, feeds), runs,
                         cycles, None if one is None else lambda: one.run(feeds)))


def _busy_loop() -> None:
    while True:
        pass


def _corpus_case(qdq_dir: Path, name: str) -> tuple[Path, dict[str, np.ndarray]]:
    """A corpus model's lowp QDQ file (from `evals/corpus/run.py --keep DIR`) and its
    evaluation feeds (one batch, seed 1, as evals/corpus/repro/interleaved.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from evals.corpus.models import BY_NAME, make_feeds

    spec = BY_NAME[name]
    return qdq_dir / f"{name}.lowp.qdq.onnx", make_feeds(spec, spec.batch, 1)


def _spread(values: list[float]) -> str:
    return (f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"
            if len(values) > 1 else f"{values[0]:.2f}")


def _interleaved_rows(cases: list[tuple[str, int, int]], args: argparse.Namespace) -> None:
    from _common import in_child

    from lowp.report.table import format_table

    rows, records = [], []
    for name, batch, threads in cases:
        if name.startswith("corpus:"):
            qdq_path, feeds = _corpus_case(args.corpus, name.removeprefix("corpus:"))
        else:
            qdq_path, feeds = _prepare(name)[1], _input(name, batch)
        for spin in args.ort_spin:
            cyc = in_child(_measure_interleaved, str(qdq_path), feeds, threads, args.runs,
                           spin, args.cycles)
            ratio = [c["lowp_mixed"] / c["lowp_block"] for c in cyc]
            rows.append([name, batch, threads, spin,
                         _spread([c["lowp_block"] for c in cyc]),
                         _spread([c["lowp_mixed"] for c in cyc]), _spread(ratio),
                         f"<= {TARGET_CONTENTION}",
                         "ok" if statistics.median(ratio) <= TARGET_CONTENTION else "OVER",
                         "-" if threads == 1 else _spread(
                             [c["lowp_one_thread_mixed"] / c["lowp_one_thread"] for c in cyc]),
                         "-" if threads == 1 else _spread(
                             [c["lowp_mixed"] / c["lowp_one_thread_mixed"] for c in cyc]),
                         _spread([c["other_mixed"] / c["other_block"] for c in cyc]),
                         _spread([c["lowp_mixed"] / c["other_mixed"] for c in cyc])])
            records.append({"network": name, "batch": batch, "threads": threads,
                            "ort_spin": spin, "cycles": cyc})
    print(format_table(
        ["model", "batch", "threads", "ORT spin", "lowp block ms", "lowp interleaved ms",
         "lowp interleaved / block", "target", "check", "lowp 1 thread interleaved / block",
         "interleaved: lowp / lowp 1 thread",
         "ORT interleaved / block", "lowp / ORT interleaved"], rows,
        title=f"Contention: one process per row, {args.cycles} cycles of lowp alone, lowp "
              f"on 1 thread alone, ORT alone, then both alternating ({args.runs} runs each, "
              "medians); median [min-max] over the cycles; check = the median ratio against "
              "the target"))
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1))


def main() -> None:
    from _common import ORT_SPIN

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", nargs="*", default=["resnet18", "mobilenet_v2", "demo"])
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--torch-engine", default="onednn",
                    help="PyTorch quantized engine timed alongside (onednn, x86, fbgemm, "
                         "qnnpack; 'none' to leave PyTorch out)")
    ap.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    ap.add_argument("--interleaved", action="store_true",
                    help="time lowp alone and alternating with ORT in one process")
    ap.add_argument("--busy", type=int, default=0, metavar="N",
                    help="busy-loop processes kept running during the measurements")
    ap.add_argument("--ort-spin", nargs="+", choices=list(ORT_SPIN), default=list(ORT_SPIN),
                    help="--interleaved: ONNX Runtime's idle workers spin after its runs "
                         "(on, its default), during its runs only (stop) or never (off)")
    ap.add_argument("--cycles", type=int, default=12,
                    help="--interleaved: block / alternating cycles per process")
    ap.add_argument("--runs", type=int, default=10,
                    help="--interleaved: runs per block (and alternating rounds) of a cycle")
    ap.add_argument("--corpus", type=Path, metavar="DIR",
                    help="--interleaved: evals/corpus/run.py --keep DIR; --corpus-models "
                         "name their lowp QDQ files")
    ap.add_argument("--corpus-models", nargs="+", default=[], metavar="NAME")
    args = ap.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    cases = [(n, b, t) for n in args.networks for b in args.batches for t in args.threads]
    if args.corpus_models and not args.interleaved:
        ap.error("--corpus-models are timed with --interleaved only")
    cases += [(f"corpus:{m}", 1, t) for m in args.corpus_models for t in args.threads]
    busy = [mp.get_context("spawn").Process(target=_busy_loop, daemon=True)
            for _ in range(args.busy)]
    for p in busy:
        p.start()
    try:
        if args.interleaved:
            _interleaved_rows(cases, args)
        else:
            _block_rows(cases, args)
    finally:
        for p in busy:
            p.terminate()


def _block_rows(cases: list[tuple[str, int, int]], args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from lowp.report.table import format_table

    rows, records = [], []
    for name, batch, threads in tqdm(cases, desc="benchmark", unit="case"):
        float_path, qdq_path = _prepare(name)
        feeds = _input(name, batch)
        reps = max(3, args.repeats // batch) if name != "demo" else args.repeats
        lowp_r = measure("lowp", qdq_path, feeds, threads, reps)
        ortq_r = measure("ort", qdq_path, feeds, threads, reps)
        ortf_r = measure("ort", float_path, feeds, threads, reps)
        torch_ms = None
        if args.torch_engine != "none" and name != "demo":
            torch_ms = measure(f"torch-{args.torch_engine}", Path(name), feeds, threads,
                               reps)["median_ms"]
        a = np.asarray(next(iter(lowp_r["output"].values())))
        b = np.asarray(next(iter(ortq_r["output"].values())))
        identical = float(np.mean(a == b)) * 100
        rows.append([name, batch, threads, round(lowp_r["median_ms"], 2),
                     round(ortq_r["median_ms"], 2), round(ortf_r["median_ms"], 2),
                     "-" if torch_ms is None else round(torch_ms, 2),
                     round(lowp_r["median_ms"] / ortq_r["median_ms"], 2),
                     "-" if torch_ms is None else round(lowp_r["median_ms"] / torch_ms, 2),
                     round(ortf_r["median_ms"] / lowp_r["median_ms"], 2),
                     round(lowp_r["rss_mb"]), round(ortq_r["rss_mb"]), round(identical, 2)])
        records.append(dict(zip(["network", "batch", "threads", "lowp_ms", "ort_int8_ms",
                                 "ort_float_ms", "torch_ms"], rows[-1][:7], strict=True)))
    pt = "PT " + args.torch_engine
    print(format_table(
        ["network", "batch", "threads", "lowp int8 ms", "ORT int8 ms", "ORT float ms",
         f"{pt} ms", "lowp/ORT int8", f"lowp/{pt}", "ORT float/lowp", "lowp peak MB",
         "ORT int8 peak MB", "identical %"], rows,
        title="End-to-end latency, median (lower is better); ratios < 1 mean lowp is faster"))
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
