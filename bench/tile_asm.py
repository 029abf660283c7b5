"""The instruction mix of every GEMM tile's innermost loop, from the compiled object files:
vector moves to or from the stack there mean accumulators spilled or copied on every k group.

    python bench/tile_asm.py [BUILD_DIR] [--match REGEX]

The object files of the integer kernels (`kernels_*.cpp.o` and acc16's `kernel_*.cpp.o`
under BUILD_DIR, e.g. build/dev) are disassembled with `objdump -d -C`; in each function
whose name matches `--match` (by default the GEMM tiles and acc16's blocks), the shortest
backward-jump loop that holds a multiply-add (vpdpbusd, vpdpwssd, vpmaddwd, vpmaddubsw) is
counted by mnemonic (`->mem` / `<-mem`: a vector move with a memory destination / source).
A clean tile has only its loads, broadcasts, multiply-adds and loop control there.
"""

from __future__ import annotations

import argparse
import re
import subprocess
from collections import Counter
from pathlib import Path

MULTIPLY_ADDS = {"vpdpbusd", "vpdpwssd", "vpmaddwd", "vpmaddubsw"}
_FUNC = re.compile(r"^([0-9a-f]+) <(.*)>:$")
_INSN = re.compile(r"^\s+([0-9a-f]+):\s+(?:\{vex\}\s+)?(\S+)\s*(.*)$")
_TARGET = re.compile(r"([0-9a-f]+) <")


def functions(listing: str) -> list[tuple[str, list[tuple[int, str, str]]]]:
    """(name, [(address, mnemonic, operands)]) of each function in an objdump listing."""
    out: list[tuple[str, list[tuple[int, str, str]]]] = []
    for line in listing.splitlines():
        if m := _FUNC.match(line):
            out.append((m.group(2), []))
        elif (m := _INSN.match(line)) and out:
            out[-1][1].append((int(m.group(1), 16), m.group(2), m.group(3)))
    return out


def inner_loop(insns: list[tuple[int, str, str]]) -> list[tuple[int, str, str]] | None:
    """The shortest backward-jump loop body that contains a multiply-add."""
    index = {a: i for i, (a, _, _) in enumerate(insns)}
    best = None
    for i, (a, op, args) in enumerate(insns):
        m = _TARGET.match(args) if op.startswith("j") else None
        if m and int(m.group(1), 16) <= a and int(m.group(1), 16) in index:
            body = insns[index[int(m.group(1), 16)]:i + 1]
            if any(x[1] in MULTIPLY_ADDS for x in body) and (best is None or len(body) < len(best)):
                best = body
    return best


def mix(body: list[tuple[int, str, str]]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for _, op, args in body:
        if op.startswith("vmov") and "(" in args:
            op += "->mem" if args.index("(") > args.index(",") else "<-mem"
        counts[op] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build", nargs="?", type=Path, default=Path("build/dev"))
    parser.add_argument("--match", default=r"gemm_tile|acc16::.*block<")
    args = parser.parse_args()
    for obj in sorted(args.build.rglob("kernel*_*.cpp.o")):
        listing = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-C", str(obj)],
                                 check=True, capture_output=True, text=True).stdout
        print(f"== {next(p.name for p in obj.parents if p.name.endswith('.dir'))}")
        for name, insns in functions(listing):
            if not re.search(args.match, name):
                continue
            short = re.sub(r"\(.*", "", re.sub(r"lowp\w*::\(anonymous namespace\)::", "", name))
            body = inner_loop(insns)
            if body is None:
                print(f"{short:28s} no multiply-add loop")
                continue
            stack = sum(1 for _, op, a in body
                        if op.startswith("vmov") and ("(%rsp" in a or "(%rbp" in a))
            print(f"{short:28s} {len(body):3d} insns  " +
                  " ".join(f"{k}:{v}" for k, v in sorted(mix(body).items())) +
                  (f"  STACK MOVES {stack}" if stack else ""))


if __name__ == "__main__":
    main()
