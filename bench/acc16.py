"""Benchmark: DNNLOWP_ACC16 (saturating 16-bit accumulation + int32 outliers) vs int32.

GEMM shapes of convolution layers as im2col products (M = output pixels, N = output
channels, K = taps x input channels), single thread:

* acc16 avx2 / acc16 scalar: lowp._acc16, dense part (S1)-(S4) plus the sparse outlier part
  (S5) into int32; the O(M*N) zero-point/bias/requantization epilogue is not included.
* acc32 <path>: lowp's native int8 matmul (lowp._native, exact int32 accumulation (A1),
  requantized to uint8), on each instruction-set path this CPU runs (avx2, avx512vnni...).

Weights: int8 values in [-63, 63] (the dense part of nbits_in_non_outlier = 7) with a given
fraction moved to +-[64, 127] (outliers for T = 7); the "T=8" rows keep every weight dense.
Every kernel is validated bit for bit against the numpy reference on the first rows before
it is timed (best of 3 medians). GOPS count 2 ops per multiply-add.

Run: .venv/bin/python bench/acc16.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import median_seconds, print_table  # noqa: E402

from lowp.engines import acc16_outlier_matmul, native, split_outliers  # noqa: E402
from lowp.fixedpoint import Requant  # noqa: E402
from lowp.ops.linear import matmul  # noqa: E402

CASES = {
    "conv3x3 64->64 @56x56": (3136, 64, 576),
    "conv1x1 256->64 @56x56": (3136, 64, 256),
}
FRACTIONS = (0.0, 0.005, 0.01, 0.02, 0.05, 0.10)
CHECK_ROWS = 96
ROUNDS = 3          # best of 3 medians: the machine is shared


def _time(fn: object, **kw: object) -> float:
    return min(median_seconds(fn, **kw) for _ in range(ROUNDS))  # type: ignore[arg-type]


def _weights(rng: np.random.Generator, k: int, n: int, fraction: float) -> np.ndarray:
    w = rng.integers(-63, 64, size=(k, n))
    pick = rng.random((k, n)) < fraction
    big = rng.integers(64, 128, size=(k, n)) * rng.choice([-1, 1], size=(k, n))
    return np.where(pick, big, w).astype(np.int8)


def _acc32_kernels(b: np.ndarray) -> list[tuple[str, object]]:
    try:
        from lowp.runtime import native_backend
    except ImportError:
        return []
    requant = Requant(np.float32(1.0 / 4096), 0, 0, 255)
    out = []
    for path in native_backend.available_paths():
        if path == "scalar":
            continue
        kern = native_backend.NativeMatMul(b, None, a_zero_point=0, a_dtype=np.uint8,
                                           b_zero_point=0, requant=requant, threads=1)
        out.append((path, (kern, requant, native_backend)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer outlier fractions")
    args = parser.parse_args()
    if not native.available():
        raise SystemExit("lowp._acc16 is not built")
    fractions = (0.0, 0.01, 0.10) if args.quick else FRACTIONS
    rng = np.random.default_rng(0)
    rows = []
    for name, (m, n, k) in CASES.items():
        a = rng.integers(0, 256, size=(m, k)).astype(np.uint8)
        ops = 2.0 * m * n * k
        base = _weights(rng, k, n, 0.0)
        acc32 = {}
        for path, (kern, requant, nb) in _acc32_kernels(base):        # type: ignore[misc]
            with nb.use_path(path):
                want = matmul(a[:CHECK_ROWS], base, a_zero_point=0, b_zero_point=0,
                              requant=requant)
                assert np.array_equal(kern(a[:CHECK_ROWS]), want), path
                acc32[path] = _time(lambda kern=kern, a=a: kern(a))
        best32 = min(acc32.values()) if acc32 else float("nan")
        settings = [(8, 0.0)] + [(7, f) for f in fractions]
        for nbits, frac in settings:
            w = _weights(rng, k, n, frac)
            split = split_outliers(w, nbits)
            gemm = native.NativeAcc16Gemm(split, 128)
            want = acc16_outlier_matmul(a[:CHECK_ROWS], split)
            times = {}
            for path in native.available_paths():
                with native.use_path(path):
                    assert np.array_equal(gemm(a[:CHECK_ROWS]), want), path
                    out = np.empty((m, n), np.int32)
                    budget = 0.3 if path == "scalar" else 0.6
                    times[path] = _time(lambda g=gemm, a=a, out=out: g(a, out), repeats=5
                                                 if path == "scalar" else 15, budget=budget)
            t16 = times.get("avx2", times["scalar"])
            row = [name, f"T={nbits}", f"{split.fraction:.1%}",
                   f"{ops / t16 * 1e-9:.1f}", f"{ops / times['scalar'] * 1e-9:.2f}"]
            row += [f"{ops / acc32[p] * 1e-9:.1f}" for p in acc32]
            row += [f"{best32 / t16:.2f}"] + (
                [f"{acc32['avx2'] / t16:.2f}"] if "avx2" in acc32 else [])
            rows.append(row)
            print(".", end="", flush=True, file=sys.stderr)
    paths32 = list(acc32)
    header = (["layer (M=3136)", "nbits", "outliers", "acc16 avx2", "acc16 scalar"]
              + [f"acc32 {p}" for p in paths32] + ["acc16/best acc32"]
              + (["acc16/acc32 avx2"] if "avx2" in acc32 else []))
    print(file=sys.stderr)
    print("GOPS, single thread (speed ratios > 1 favour acc16)")
    print_table(header, rows)


if __name__ == "__main__":
    main()
