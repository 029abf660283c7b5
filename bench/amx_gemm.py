"""The amx path's int8 GEMM against the measured AMX peak and ONNX Runtime, on a loaded
machine: every round times lowp, ONNX Runtime's QDQ Gemm and its QLinearMatMul (1 thread
each, the same integer weights and scales as bench/layers.py) and the register-only AMX
peak loop one after another, on the thread's CPU clock; printed are the medians over the
rounds of each engine's GOPS, of lowp's share of the peak of the same round and of ONNX
Runtime's best time over lowp's. lowp's outputs are checked against the reference first.

    python bench/amx_gemm.py [--shapes 128x768x768 512x768x3072 ...] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import layers  # noqa: E402

from lowp import _native  # type: ignore[attr-defined]  # noqa: E402
from lowp.fixedpoint import Requant, requant_scale  # noqa: E402
from lowp.runtime import native_backend  # noqa: E402
from lowp.runtime.native_backend import NativeMatMul  # noqa: E402

SHAPES = ["128x128x128", "256x256x256", "512x512x512", "1024x1024x1024", "2048x2048x2048",
          "4096x4096x4096", "128x768x768", "512x768x3072", "2048x1024x1024"]


def _cpu_seconds(fn: Callable[[], object], reps: int) -> float:
    """Thread CPU seconds per call of `fn` over `reps` calls."""
    t0 = time.thread_time()
    for _ in range(reps):
        fn()
    return (time.thread_time() - t0) / reps


def _peak() -> float:
    """The AMX peak loop's GOPS on the thread's CPU clock (its wall-clock figure scaled)."""
    w0, c0 = time.perf_counter(), time.thread_time()
    gops = float(_native.peak_gops("amx", 0.05, 1))
    return gops * (time.perf_counter() - w0) / (time.thread_time() - c0)


@dataclass
class GemmCase:
    """One M x K x N int8 GEMM of bench/layers.py's kind: lowp's operator on the current
    path and the reference's output."""

    case: layers.Case
    x: np.ndarray
    w: np.ndarray
    bias: np.ndarray
    y_scale: float
    y_zp: int
    op: NativeMatMul
    want: np.ndarray


def gemm_case(shape: str) -> GemmCase:
    """The GEMM of `shape` ("MxKxN"), random integers from seed 0."""
    m, k, n = map(int, shape.split("x"))
    case = layers.Case(f"gemm {shape}", (m, k), (k, n), linear=True)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(m, k), dtype=np.uint8)
    w = rng.integers(-127, 128, size=(k, n), dtype=np.int8)
    bias = rng.integers(-2000, 2000, size=n, dtype=np.int32)
    acc = layers._reference(case, x, w, bias, None)
    y_scale, y_zp = layers._y_qparams(acc)
    rq = Requant(requant_scale(layers.X_SCALE, layers.W_SCALE, y_scale), y_zp, 0, 255)
    op = NativeMatMul(w, bias, a_zero_point=layers.X_ZP, a_dtype=np.uint8, b_zero_point=0,
                      requant=rq, threads=1)
    return GemmCase(case, x, w, bias, y_scale, y_zp, op, rq.apply(acc))


def run_shape(shape: str, rounds: int, work: float) -> list[float]:
    g = gemm_case(shape)
    m, k, n = map(int, shape.split("x"))
    op, x = g.op, g.x
    if not np.array_equal(op(x), g.want):
        raise SystemExit(f"gemm {shape}: lowp (amx) differs from the reference")
    models = layers._ort_models(g.case, g.w, g.bias, g.y_scale, g.y_zp)
    sessions = [layers._session(models[kind], 1) for kind in ("qdq", "qlinear")]
    fns: list[Callable[[], object]] = [lambda: op(x)]
    fns += [lambda s=s: s.run(None, {"x": x}) for s in sessions]
    for fn in fns:
        fn()
    ops = 2.0 * m * k * n
    reps = max(1, int(work / ops))
    rows = []
    for _ in range(rounds):
        t = [_cpu_seconds(fn, reps) for fn in fns]
        peak = _peak()
        lowp = ops / t[0] * 1e-9
        rows.append([lowp, lowp / peak, ops / t[1] * 1e-9, ops / t[2] * 1e-9,
                     min(t[1:]) / t[0], peak])
    return [float(v) for v in np.median(np.array(rows), axis=0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=SHAPES, help="M x K x N")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--work", type=float, default=2e9,
                        help="operations per timed block (calls repeated up to it)")
    args = parser.parse_args()
    if "amx" not in native_backend.available_paths():
        raise SystemExit("this CPU has no usable AMX-INT8 path")
    native_backend.set_path("amx")
    ort.set_default_logger_severity(3)
    print(f"{'M x K x N':>16}  {'lowp GOPS':>9}  {'%peak':>5}  {'ORT QDQ':>7}  "
          f"{'ORT QLin':>8}  {'x ORT':>5}  {'peak':>5}")
    for shape in args.shapes:
        lowp, share, qdq, qlin, ratio, peak = run_shape(shape, args.rounds, args.work)
        print(f"{shape:>16}  {lowp:9.0f}  {100 * share:4.0f}%  {qdq:7.0f}  {qlin:8.0f}  "
              f"{ratio:5.2f}  {peak:5.0f}", flush=True)
    print("Thread CPU time; medians over the rounds. x ORT = ONNX Runtime's best int8 time "
          "(QDQ, QLinearMatMul) over lowp's.")


if __name__ == "__main__":
    main()
