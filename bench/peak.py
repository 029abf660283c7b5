"""Measured peaks: int8 AMX (tdpbusd), VNNI (vpdpbusd, vpdpwssd) and fp32 FMA, in GOPS, on 1
and 2 threads.

The 2-thread figure runs the same loop on two threads at once; on a VM whose two vCPUs share
one physical core (or a busy host) it is not twice the 1-thread figure.

Run: .venv/bin/python bench/peak.py [--seconds S] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import peak_gops, print_table  # noqa: E402

KINDS = [
    ("amx", "int8 AMX tdpbusd, 4 C tiles (16x16x64 = 16384 MAC/instr)"),
    ("vnni512", "int8 vpdpbusd zmm (64 MAC/instr)"),
    ("vnni256", "int8 vpdpbusd ymm (EVEX, 32 MAC/instr)"),
    ("wssd512", "int16 vpdpwssd zmm (32 MAC/instr)"),
    ("fma512", "fp32 vfmadd231ps zmm (16 FMA/instr)"),
    ("fma256", "fp32 vfmadd231ps ymm (8 FMA/instr)"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    rows = []
    for kind, what in KINDS:
        row = [kind, what]
        for threads in args.threads:
            try:
                row.append(f"{peak_gops(kind, args.seconds, threads):.1f}")
            except ValueError as err:
                row.append(f"n/a ({err})")
        rows.append(row)
    print("Measured peak (1 MAC = 2 ops), best-case register-only loops")
    print_table(["kind", "instruction", *(f"GOPS {t} thr" for t in args.threads)], rows)


if __name__ == "__main__":
    main()
