"""Measured per-core peaks: int8 VNNI (vpdpbusd) and fp32 FMA, printed as GOPS.

Run: .venv/bin/python bench/peak.py [--seconds S]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import peak_gops, print_table  # noqa: E402

KINDS = [
    ("vnni512", "int8 vpdpbusd zmm (64 MAC/instr)"),
    ("vnni256", "int8 vpdpbusd ymm (EVEX, 32 MAC/instr)"),
    ("fma512", "fp32 vfmadd231ps zmm (16 FMA/instr)"),
    ("fma256", "fp32 vfmadd231ps ymm (8 FMA/instr)"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=0.5)
    args = parser.parse_args()
    rows = []
    for kind, what in KINDS:
        try:
            rows.append([kind, what, f"{peak_gops(kind, args.seconds):.1f}"])
        except ValueError as err:
            rows.append([kind, what, f"n/a ({err})"])
    print("Per-core peak, one thread (1 MAC = 2 ops)")
    print_table(["kind", "instruction", "GOPS"], rows)


if __name__ == "__main__":
    main()
