"""Per-token dynamic int8 on lowp's engine against lowp static and ONNX Runtime's dynamic int8.

    python bench/per_token.py [--models minilm_l6_int8w khmersm bert] [--rounds 21]

For each model (corpus models by name, `bert` the family of evals/families.py) four files:
lowp's default static model (calibrated on 4 batches of the corpus feeds, seed 0; bert: 64
of its calibration sequences), lowp's per-token dynamic model (`--mode dynamic --activations
per-token`), lowp's per-tensor dynamic model, and ONNX Runtime's `quantize_dynamic` (int8
weights) of lowp's canonicalized float model (where folded constants are the weights'
initializers, which quantize_dynamic needs). lowp's Session and ONNX Runtime run the
per-token file and must agree bit for bit; then all of them run interleaved in one process
on one thread, one batch of evaluation feeds (seed 1), and the medians of each run's
process CPU time (steady under load; everything runs on the calling thread at one thread)
and wall time are printed with their ratios to lowp static.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

Feeds = dict[str, np.ndarray]


def _model(name: str, work: Path) -> tuple[onnx.ModelProto, Feeds, Feeds]:
    """(float model, calibration feeds, one evaluation batch)."""
    if name == "bert":
        from evals.families import build
        path, calib, feeds, _ = build("bert", work)
        return (onnx.load(str(path)), {k: v[:64] for k, v in calib.items()},
                {k: v[:16] for k, v in feeds.items()})
    from evals.corpus.models import BY_NAME, load_float, make_feeds
    spec = BY_NAME[name]
    return (load_float(spec), make_feeds(spec, 4 * spec.batch, seed=0),
            make_feeds(spec, spec.batch, seed=1))


def _files(name: str, work: Path) -> tuple[dict[str, Path], Feeds]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    import lowp
    from lowp.config import ActivationGranularity, Config, QuantMode
    from lowp.ir.graph import load_model
    from lowp.passes.canonicalize import canonicalize

    float_model, calib, feeds = _model(name, work)
    batch = next(iter(feeds.values())).shape[0]
    configs = {"static": Config(batch_size=batch),
               "per-token": Config(mode=QuantMode.DYNAMIC,
                                   activation_granularity=ActivationGranularity.PER_TOKEN),
               "per-tensor": Config(mode=QuantMode.DYNAMIC)}
    files = {}
    for kind, config in configs.items():
        files[kind] = work / f"{name}.{kind}.onnx"
        data = calib if config.mode is QuantMode.STATIC else None
        onnx.save(lowp.quantize_model(float_model, data, config), str(files[kind]))
    canon = work / f"{name}.canonical.onnx"
    onnx.save(canonicalize(load_model(float_model)), str(canon))
    files["ort dynamic"] = work / f"{name}.ort_dynamic.onnx"
    quantize_dynamic(str(canon), str(files["ort dynamic"]), weight_type=QuantType.QInt8)
    return files, feeds


def measure(name: str, rounds: int) -> None:
    import onnxruntime as ort
    from threadpoolctl import threadpool_limits

    import lowp

    with tempfile.TemporaryDirectory() as tmp:
        files, feeds = _files(name, Path(tmp))
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = 1, 1

        def onnxruntime(path: Path) -> Callable[[], object]:
            s = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            return lambda: s.run(None, feeds)

        def ours(path: Path) -> Callable[[], object]:
            s = lowp.Session(str(path), threads=1)
            return lambda: s.run(feeds)

        runs = {"lowp static": ours(files["static"]),
                "lowp per-token": ours(files["per-token"]),
                "lowp per-tensor": ours(files["per-tensor"]),
                "ORT per-token file": onnxruntime(files["per-token"]),
                "ORT quantize_dynamic": onnxruntime(files["ort dynamic"])}
        with threadpool_limits(limits=1):
            got = lowp.Session(str(files["per-token"]), threads=1).run(feeds)
            want = runs["ORT per-token file"]()
            assert isinstance(want, list)
            for (k, v), w in zip(got.items(), want, strict=True):
                if not np.array_equal(v, w):
                    raise SystemExit(f"{name}: lowp and ONNX Runtime differ on {k}")
            cpu: dict[str, list[float]] = {k: [] for k in runs}
            wall: dict[str, list[float]] = {k: [] for k in runs}
            for _ in range(3):
                for fn in runs.values():
                    fn()
            for _ in range(rounds):
                for k, fn in runs.items():
                    t, c = time.perf_counter(), time.process_time()
                    fn()
                    cpu[k].append(time.process_time() - c)
                    wall[k].append(time.perf_counter() - t)
    base_cpu = statistics.median(cpu["lowp static"])
    base_wall = statistics.median(wall["lowp static"])
    print(f"{name}: per-token file identical on lowp and ONNX Runtime; medians of {rounds}")
    for k in runs:
        c, w = statistics.median(cpu[k]), statistics.median(wall[k])
        print(f"  {k:22s} cpu {1e3 * c:8.2f} ms ({c / base_cpu:5.2f}x)   "
              f"wall {1e3 * w:8.2f} ms ({w / base_wall:5.2f}x)", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["minilm_l6_int8w", "khmersm", "bert"])
    p.add_argument("--rounds", type=int, default=21)
    args = p.parse_args(argv)
    for name in args.models:
        measure(name, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
