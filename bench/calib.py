"""Calibration cost: lowp (one process; `--scheduler local --workers 2`; Dask 2 workers)
against ONNX Runtime's `quantize_static` (MinMax / Entropy / Percentile), on ResNet-18 and
MobileNetV2 float models at 224x224 with smooth random images.

Every configuration runs in a fresh child process; the parent reports its wall time (the
calibration call only, after imports and data generation) and its peak memory: the peak of
the summed RSS of the child and all its descendants (workers, Dask scheduler and nannies),
sampled every 20 ms, and the child's own VmHWM. lowp's tables are hashed: every lowp column
of a row must give the same table (bit-identical whatever the workers).

    python bench/calib.py [--samples 256] [--networks resnet18 mobilenet_v2]
                          [--methods minmax entropy percentile]
                          [--tools ort lowp lowp-quantize lowp-local2 lowp-dask2]
                          [--mem-limit-gb 8]

`lowp-quantize` times the whole `lowp quantize` command in the child (calibration, the
quantized model, its check and the end-of-run summary), the others the calibration call.

ONNX Runtime's calibrators keep every batch's outputs until the end (their defaults); a
child over `--mem-limit-gb` of address space fails and is reported as such instead of
pushing the shared machine into the OOM killer.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

CACHE = Path(tempfile.gettempdir()) / "lowp-bench"
PER_FILE = 64            # samples per .npy file of the calibration folder
BATCH = 16               # samples per model call, for every tool


def smooth_images(n: int, seed: int, size: int = 224) -> np.ndarray:
    """`n` smooth 3-channel images, roughly ImageNet-normalized: low-resolution noise
    upsampled bilinearly plus a little pixel noise."""
    import torch

    rng = np.random.default_rng(seed)
    low = torch.from_numpy(rng.standard_normal((n, 3, 7, 7)).astype(np.float32))
    up = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear",
                                         align_corners=False).numpy()
    return (up + 0.1 * rng.standard_normal(up.shape).astype(np.float32)).astype(np.float32)


def data_folder(n: int) -> Path:
    """A folder of .npy files holding `n` images stacked on the first axis (cached)."""
    folder = CACHE / f"calib_{n}"
    if not (folder / "done").exists():
        folder.mkdir(parents=True, exist_ok=True)
        for k, start in enumerate(range(0, n, PER_FILE)):
            np.save(folder / f"part_{k:04d}.npy",
                    smooth_images(min(PER_FILE, n - start), seed=k))
        (folder / "done").touch()
    return folder


def _vmhwm_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# --- children -------------------------------------------------------------------------------
def child(tool: str, model: str, method: str, folder: str) -> dict:
    if tool == "ort":
        return _ort(model, method, folder)
    import lowp
    from lowp.config import CalibMethod, Config

    config = Config(method=CalibMethod(method), batch_size=BATCH)
    t0 = time.perf_counter()
    if tool == "lowp-quantize":                     # the whole CLI run, summary included
        from lowp.calib import CalibrationTable
        from lowp.cli import main as cli_main

        with tempfile.TemporaryDirectory() as tmp:
            table_path = os.path.join(tmp, "table.json")
            rc = cli_main(["quantize", model, "--calib", folder, "-o",
                           os.path.join(tmp, "q.onnx"), "--method", method, "--batch-size",
                           str(BATCH), "--calib-table", table_path, "--quiet"])
            if rc != 0:
                raise SystemExit(f"lowp quantize exited with {rc}")
            table = CalibrationTable.load(table_path)
    elif tool == "lowp":                              # one process, as `lowp quantize` does
        from lowp.feeds import as_feeds
        from lowp.inputs import model_inputs
        from lowp.ir.graph import load_model
        from lowp.passes.annotate import annotate
        from lowp.passes.calibrate import calibrate
        from lowp.passes.canonicalize import canonicalize

        m = canonicalize(load_model(model))
        inputs = model_inputs(m)
        table = calibrate(m, annotate(m, config).activations,
                          as_feeds(folder, inputs, BATCH), inputs, config, progress=False)
    else:
        scheduler = "dask" if tool == "lowp-dask2" else "local"
        table = lowp.calibrate(model, folder, config, scheduler=scheduler, workers=2,
                               progress=False)
    seconds = time.perf_counter() - t0
    text = json.dumps(table.to_dict(), allow_nan=False, separators=(",", ":"))
    return {"seconds": seconds, "table": hashlib.sha256(text.encode()).hexdigest()[:12]}


def _ort(model: str, method: str, folder: str) -> dict:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = self._batches()

        def _batches(self):
            for f in sorted(Path(folder).glob("*.npy")):
                x = np.load(f)
                for s in range(0, len(x), BATCH):
                    yield {"input": x[s:s + BATCH]}

        def get_next(self):
            return next(self._it, None)

    calib = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
             "percentile": CalibrationMethod.Percentile}[method]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        quantize_static(model, os.path.join(tmp, "q.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, calibrate_method=calib)
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "table": "-"}


def _child_main(args: argparse.Namespace) -> None:
    if args.mem_limit_gb:
        limit = int(args.mem_limit_gb * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    out = child(args.tool, args.model, args.method, args.folder)
    out["vmhwm_mb"] = _vmhwm_mb()
    print("RESULT " + json.dumps(out), flush=True)


# --- parent ---------------------------------------------------------------------------------
def measure(tool: str, model: Path, method: str, folder: Path, mem_limit_gb: float) -> dict:
    """Run one configuration in a child process; wall time, tree and child peak RSS."""
    import psutil

    # the address-space cap applies to ONNX Runtime's one process only: lowp's workers and
    # Dask's processes each reserve large virtual areas without using them
    cap = mem_limit_gb if tool == "ort" else 0
    cmd = [sys.executable, __file__, "--child", tool, str(model), method, str(folder),
           "--mem-limit-gb", str(cap)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    root = psutil.Process(proc.pid)
    peak = 0.0
    while proc.poll() is None:
        try:
            procs = [root, *root.children(recursive=True)]
            rss = 0
            for p in procs:
                try:
                    rss += p.memory_info().rss
                except psutil.Error:
                    pass
            peak = max(peak, rss / 2**20)
        except psutil.Error:
            pass
        time.sleep(0.02)
    out, err = proc.communicate()
    lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        last = (err.strip().splitlines() or ["?"])[-1]
        return {"error": f"exit {proc.returncode}: {last[:80]}", "tree_mb": peak}
    result = json.loads(lines[-1][len("RESULT "):])
    result["tree_mb"] = peak
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", nargs=4, metavar=("TOOL", "MODEL", "METHOD", "FOLDER"))
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--networks", nargs="+", default=["resnet18", "mobilenet_v2"])
    ap.add_argument("--methods", nargs="+", default=["minmax", "entropy", "percentile"])
    ap.add_argument("--tools", nargs="+", default=["ort", "lowp", "lowp-local2", "lowp-dask2"])
    ap.add_argument("--mem-limit-gb", type=float, default=8.0)
    args = ap.parse_args()
    if args.child:
        args.tool, args.model, args.method, args.folder = args.child
        _child_main(args)
        return

    import networks

    folder = data_folder(args.samples)
    print(f"{args.samples} smooth random images 3x224x224 in {folder} (batches of {BATCH}); "
          f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")
    rows = []
    for net in args.networks:
        model = networks.export(net, CACHE)
        for method in args.methods:
            results = {t: measure(t, model, method, folder, args.mem_limit_gb)
                       for t in args.tools}
            for t, r in results.items():
                print(f"  {net} {method} {t}: {r}", file=sys.stderr, flush=True)
            rows.append((net, method, results))
    _print(rows, args.tools)


def _print(rows: list, tools: list[str]) -> None:
    from _common import print_table

    header = ["network", "method"]
    for t in tools:
        header += [f"{t} s", f"{t} MB"]
    header += ["tables equal"]
    if "ort" in tools:
        header += [f"{t} time vs ort" for t in tools if t != "ort"]
    table = []
    for net, method, results in rows:
        row: list[object] = [net, method]
        for t in tools:
            r = results[t]
            row += (["fail", f"{r['tree_mb']:.0f}"] if "error" in r
                    else [f"{r['seconds']:.1f}", f"{r['tree_mb']:.0f}"])
        hashes = {r.get("table") for t, r in results.items() if t != "ort" and "error" not in r}
        row.append("yes" if len(hashes) == 1 else "NO" if hashes else "-")
        if "ort" in tools:
            base = results["ort"]
            for t in tools:
                if t == "ort":
                    continue
                r = results[t]
                row.append("-" if "error" in r or "error" in base
                           else f"{r['seconds'] / base['seconds']:.2f}x")
        table.append(row)
    print_table(header, table)


if __name__ == "__main__":
    main()
