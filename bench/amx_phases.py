"""Where a real amx GEMM call spends its time: the same NativeMatMul timed with phases of
the kernel left out (the timing build's switches; the outputs are then wrong), the
variants alternating round by round in one process on the thread's CPU clock. Printed per
shape: the full call's GOPS and, for every variant, the median over the rounds of its time
over the full call's time in the same round (1 - that is the share of the phase).

Needs the timing build (never installed: the switches make the outputs wrong):

    cmake -S . -B /tmp/build-phases -G Ninja -DCMAKE_BUILD_TYPE=Release -DLOWP_AMX_PHASES=ON ...
    cmake --build /tmp/build-phases   # then put its _native*.so where lowp is imported from
    python bench/amx_phases.py [--shapes 512x768x3072 2048x1024x1024] [--rounds 11]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from amx_gemm import gemm_case  # noqa: E402

from lowp import _native  # type: ignore[attr-defined]  # noqa: E402
from lowp.runtime import native_backend  # noqa: E402

SHAPES = ["128x768x768", "512x768x3072", "2048x1024x1024", "1024x1024x1024", "512x512x512"]

# kernels_amx.cpp's PhaseSkip bits
PACK, TILES, STORES, EPILOGUE, SCRATCH_OUT = 1, 2, 4, 8, 16
VARIANTS = [
    ("no epilogue", EPILOGUE),
    ("epilogue into a 2 KB scratch", SCRATCH_OUT),
    ("no C tile stores", STORES),
    ("no row packing", PACK),
    ("no epilogue, no C stores", EPILOGUE | STORES),
    ("no tile passes", TILES),
    ("no tile passes, scratch output", TILES | SCRATCH_OUT),
    ("packing and driver only", TILES | EPILOGUE),
]


def run_shape(shape: str, rounds: int, work: float) -> tuple[float, list[float]]:
    g = gemm_case(shape)
    m, k, n = map(int, shape.split("x"))
    op, x = g.op, g.x
    _native.set_amx_phase_skip(0)
    if not np.array_equal(op(x), g.want):
        raise SystemExit(f"gemm {shape}: lowp (amx) differs from the reference")
    masks = [0] + [mask for _, mask in VARIANTS]
    reps = max(1, int(work / (2.0 * m * k * n)))
    times: dict[int, list[float]] = {mask: [] for mask in masks}
    try:
        for r in range(rounds):
            for mask in masks if r % 2 == 0 else masks[::-1]:
                _native.set_amx_phase_skip(mask)
                t0 = time.thread_time()
                for _ in range(reps):
                    op(x)
                times[mask].append((time.thread_time() - t0) / reps)
    finally:
        _native.set_amx_phase_skip(0)
    full = np.array(times[0])
    gops = 2.0 * m * k * n / float(np.median(full)) * 1e-9
    return gops, [float(np.median(np.array(times[mask]) / full)) for mask in masks[1:]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=SHAPES, help="M x K x N")
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--work", type=float, default=1e9,
                        help="operations per timed block (calls repeated up to it)")
    args = parser.parse_args()
    if not hasattr(_native, "set_amx_phase_skip"):
        raise SystemExit("not a timing build: configure with -DLOWP_AMX_PHASES=ON (see above)")
    if "amx" not in native_backend.available_paths():
        raise SystemExit("this CPU has no usable AMX-INT8 path")
    native_backend.set_path("amx")
    print(f"{'M x K x N':>16}  {'GOPS':>5}  " + "  ".join(name for name, _ in VARIANTS))
    for shape in args.shapes:
        gops, shares = run_shape(shape, args.rounds, args.work)
        cells = "  ".join(f"{share:>{len(name)}.2f}"
                          for (name, _), share in zip(VARIANTS, shares, strict=True))
        print(f"{shape:>16}  {gops:5.0f}  {cells}", flush=True)
    print("Each variant's thread CPU time over the full call's, medians over the rounds.")


if __name__ == "__main__":
    main()
