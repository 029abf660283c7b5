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

`--interleaved` measures contention instead: one process holds both a lowp and an ONNX
Runtime session of the QDQ file and times each first in a block of consecutive runs, then
alternating with the other engine (so ORT's spinning workers share the cores with lowp's),
and reports lowp's interleaved median over its block median. `--busy N` keeps N
single-threaded busy-loop processes running during every measurement (a loaded machine).
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
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        s = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
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


def _measure_interleaved(path: str, feeds: dict[str, np.ndarray], threads: int, repeats: int,
                         queue: mp.Queue) -> None:
    import onnxruntime as ort
    from _common import interleaved_ms

    import lowp

    session = lowp.Session(path, backend="native", threads=threads)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    ort_s = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    fns = [lambda: session.run(feeds), lambda: ort_s.run(None, feeds)]
    block = [interleaved_ms([fn], repeats, budget=30) for fn in fns]
    mixed = interleaved_ms(fns, repeats, budget=60)
    queue.put({"lowp_block": block[0][0], "ort_block": block[1][0],
               "lowp_mixed": mixed[0], "ort_mixed": mixed[1]})


def _busy_loop() -> None:
    while True:
        pass


def _interleaved_rows(cases: list[tuple[str, int, int]], repeats: int) -> None:
    from _common import in_child

    from lowp.report.table import format_table

    rows = []
    for name, batch, threads in cases:
        _, qdq_path = _prepare(name)
        r = in_child(_measure_interleaved, str(qdq_path), _input(name, batch), threads,
                     max(5, repeats // batch))
        rows.append([name, batch, threads, round(r["lowp_block"], 2), round(r["lowp_mixed"], 2),
                     round(r["lowp_mixed"] / r["lowp_block"], 2), round(r["ort_block"], 2),
                     round(r["ort_mixed"], 2), round(r["ort_mixed"] / r["ort_block"], 2)])
    print(format_table(
        ["network", "batch", "threads", "lowp block ms", "lowp interleaved ms", "lowp ratio",
         "ORT block ms", "ORT interleaved ms", "ORT ratio"], rows,
        title="Contention: one process, each engine alone in a block, then alternating "
              "(medians); ratio = interleaved / block"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", nargs="+", default=["resnet18", "mobilenet_v2", "demo"])
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
    args = ap.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    cases = [(n, b, t) for n in args.networks for b in args.batches for t in args.threads]
    busy = [mp.get_context("spawn").Process(target=_busy_loop, daemon=True)
            for _ in range(args.busy)]
    for p in busy:
        p.start()
    try:
        if args.interleaved:
            _interleaved_rows(cases, args.repeats)
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
