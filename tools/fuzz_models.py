"""Mutation fuzz of model files: corrupt the bytes of good models, then load, run and lint.

    python tools/fuzz_models.py --mutations 1000 [--seed 0] [--keep DIR]

Each mutant (bit flips, a trimmed tail, a chunk of the file spliced over another place,
inserted or deleted bytes, a run of 0xFF) of the bundled demo model and of its QDQ form is
loaded and run by `lowp.Session` on two demo samples and linted by `lowp check`. The only
acceptable outcomes are success or a clean LowpError (one `lowp: ` line, exit status 2);
an InternalError (exit 3) is counted apart and fails the fuzz like a traceback. Mutants
run in batches in a child process, so a segfault or a hang names its mutant instead of
killing the fuzzer.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# outcome of one mutant; every one but OK, CLEAN and INTERNAL fails the fuzz
OK, CLEAN, INTERNAL, TRACEBACK, CRASH, HANG = (
    "ok", "clean", "internal", "traceback", "crash", "hang")
FAILURES = (INTERNAL, TRACEBACK, CRASH, HANG)
BATCH_TIMEOUT_S = 120.0


# --- mutations -----------------------------------------------------------------------------

def _flip_bits(b: bytearray, rng: random.Random) -> bytearray:
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    return b


def _trim(b: bytearray, rng: random.Random) -> bytearray:
    return b[:rng.randrange(len(b))]


def _splice(b: bytearray, rng: random.Random) -> bytearray:
    """A chunk of the file copied over another place (fields land where others were)."""
    src, dst, n = rng.randrange(len(b)), rng.randrange(len(b)), rng.randint(1, 256)
    b[dst:dst + n] = b[src:src + n]
    return b


def _insert(b: bytearray, rng: random.Random) -> bytearray:
    i = rng.randrange(len(b) + 1)
    b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    return b


def _delete(b: bytearray, rng: random.Random) -> bytearray:
    i = rng.randrange(len(b))
    del b[i:i + rng.randint(1, 16)]
    return b


def _fill_ff(b: bytearray, rng: random.Random) -> bytearray:
    i, n = rng.randrange(len(b)), rng.randint(1, 32)
    b[i:i + n] = b"\xff" * len(b[i:i + n])
    return b


MUTATIONS: dict[str, Callable[[bytearray, random.Random], bytearray]] = {
    "flip": _flip_bits, "trim": _trim, "splice": _splice, "insert": _insert,
    "delete": _delete, "fill_ff": _fill_ff}


def mutate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One to three mutations of `data`, and their names."""
    b, names = bytearray(data), []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        if not b:
            break
        name = rng.choice(sorted(MUTATIONS))
        b = MUTATIONS[name](b, rng)
        names.append(name)
    return bytes(b), "+".join(names)


# --- the seeds -----------------------------------------------------------------------------

def seed_models() -> dict[str, bytes]:
    """The demo float model and its QDQ form (quantized on 32 calibration samples)."""
    import lowp
    from lowp.data import demo_model_path, load_demo_calibration

    data = Path(demo_model_path()).read_bytes()
    calib = {k: v[:32] for k, v in load_demo_calibration().items()}
    qdq = lowp.quantize_model(data, calib).SerializeToString()
    return {"demo": data, "demo_qdq": qdq}


@dataclass(frozen=True)
class Mutant:
    path: str
    seed_model: str
    mutation: str


def make_mutants(models: dict[str, bytes], count: int, seed: int, folder: Path
                 ) -> list[Mutant]:
    """`count` mutants, alternating between the seed models, written to `folder`."""
    rng = random.Random(seed)
    names = sorted(models)
    out = []
    for i in range(count):
        name = names[i % len(names)]
        data, how = mutate(models[name], rng)
        path = folder / f"{i:05d}_{name}.onnx"
        path.write_bytes(data)
        out.append(Mutant(str(path), name, how))
    return out


# --- the child: run mutants, one result line each --------------------------------------

@functools.cache
def _demo_input() -> Any:
    from lowp.data import load_demo_calibration

    return load_demo_calibration()["input"][:2]


def _classify_run(path: str) -> tuple[str, str]:
    """Load + Session.run on two demo samples."""
    from lowp.errors import InternalError, LowpError
    from lowp.runtime import Session

    x = _demo_input()
    try:
        session = Session(path)
        session.run({session.inputs[0].name: x} if session.inputs else {})
    except InternalError as e:
        return INTERNAL, str(e)
    except LowpError as e:
        return CLEAN, str(e).splitlines()[0] if str(e) else ""
    except Exception as e:
        return TRACEBACK, f"{type(e).__name__}: {e}"[:500]
    return OK, ""


def _classify_check(path: str) -> tuple[str, str]:
    """`lowp check` in-process: exit 0/1, or 2/3 with exactly one `lowp: ` line."""
    from lowp.cli import main

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["check", path, "--target", "lowp"])
    except BaseException as e:   # noqa: BLE001 (SystemExit included: main must return)
        return TRACEBACK, f"lowp check raised {type(e).__name__}: {e}"[:500]
    lines = err.getvalue().strip().splitlines()
    if code in (0, 1) and not lines:
        return OK, ""
    if code in (2, 3) and len(lines) == 1 and lines[0].startswith("lowp: "):
        return (CLEAN if code == 2 else INTERNAL), lines[0]
    return TRACEBACK, f"lowp check: exit {code}, stderr {err.getvalue()[:400]!r}"


_RANK = {OK: 0, CLEAN: 1, INTERNAL: 2, TRACEBACK: 3}


def run_worker(paths: list[str], results: Path) -> None:
    """Append one JSON line per mutant to `results`, flushed before the next one starts."""
    import numpy as np

    np.seterr(all="ignore")
    warnings.simplefilter("ignore")
    with results.open("a") as f:
        for path in paths:
            run, run_msg = _classify_run(path)
            check, check_msg = _classify_check(path)
            worst = max((run, run_msg), (check, check_msg), key=lambda r: _RANK[r[0]])
            f.write(json.dumps({"path": path, "outcome": worst[0], "run": run,
                                "check": check, "message": worst[1]}) + "\n")
            f.flush()


# --- the parent: batches in child processes ------------------------------------------------

def _read_results(results: Path) -> dict[str, dict[str, str]]:
    if not results.exists():
        return {}
    return {r["path"]: r for r in map(json.loads, results.read_text().splitlines()) if r}


def run_mutants(mutants: list[Mutant], *, batch: int = 100,
                timeout_s: float = BATCH_TIMEOUT_S, child: list[str] | None = None
                ) -> list[dict[str, str]]:
    """Every mutant's result; a crashed or hung child marks the mutant it was on.

    `child` is the worker command (this file with --worker); it is called with the file
    listing the mutants and the results file as its last two arguments."""
    child = child or [sys.executable, __file__, "--worker"]
    by_path = {m.path: m for m in mutants}
    todo = [m.path for m in mutants]
    done: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="lowp-fuzz-") as tmp:
        while todo:
            chunk, results = todo[:batch], Path(tmp) / f"results_{len(done)}.jsonl"
            listing = Path(tmp) / "paths.txt"
            listing.write_text("\n".join(chunk))
            status = _run_child([*child, str(listing), str(results)], timeout_s)
            got = _read_results(results)
            done.update(got)
            rest = [p for p in chunk if p not in got]
            if rest and status != "ok":
                outcome = CRASH if status.startswith("signal") or status.startswith(
                    "exit") else HANG
                done[rest[0]] = {"path": rest[0], "outcome": outcome, "run": outcome,
                                 "check": outcome, "message": status}
                rest = rest[1:]
            todo = rest + todo[batch:]
    return [{**done[p], "seed_model": by_path[p].seed_model,
             "mutation": by_path[p].mutation} for p in (m.path for m in mutants)]


def _run_child(cmd: list[str], timeout_s: float) -> str:
    """'ok', 'signal N', 'exit N' or 'timeout'."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                              env=env)
    except subprocess.TimeoutExpired:
        return f"timeout after {timeout_s:.0f} s"
    if proc.returncode < 0:
        return f"signal {-proc.returncode}: {proc.stderr.strip()[-300:]}"
    if proc.returncode:
        return f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"
    return "ok"


def summary_line(results: list[dict[str, str]]) -> str:
    c = Counter(r["outcome"] for r in results)
    return (f"{len(results)} mutations: {c[OK]} loaded and ran, {c[CLEAN]} clean errors, "
            f"{c[INTERNAL]} internal errors, {c[TRACEBACK]} tracebacks, {c[CRASH]} crashes, "
            f"{c[HANG]} hangs")


def fuzz(count: int, seed: int, keep: Path | None = None, batch: int = 100
         ) -> list[dict[str, str]]:
    """Make `count` mutants and run them; failing mutants are copied to `keep`."""
    with tempfile.TemporaryDirectory(prefix="lowp-mutants-") as tmp:
        mutants = make_mutants(seed_models(), count, seed, Path(tmp))
        results = run_mutants(mutants, batch=batch)
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            for r in results:
                if r["outcome"] not in (OK, CLEAN):
                    src = Path(r["path"])
                    (keep / f"{r['outcome']}_{src.name}").write_bytes(src.read_bytes())
    return results


def _failures(results: list[dict[str, str]]) -> Iterator[str]:
    for r in results:
        if r["outcome"] not in (OK, CLEAN):
            yield (f"  {r['outcome']:9} {Path(r['path']).name} ({r['mutation']}): "
                   f"{r['message'][:200]}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mutations", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=100, help="mutants per child process")
    p.add_argument("--keep", type=Path, help="copy the mutants that were not clean here")
    p.add_argument("--worker", nargs=2, metavar=("LIST", "RESULTS"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        run_worker(Path(args.worker[0]).read_text().splitlines(), Path(args.worker[1]))
        return 0
    results = fuzz(args.mutations, args.seed, args.keep, args.batch)
    for line in _failures(results):
        print(line)
    print(summary_line(results))
    return 1 if any(r["outcome"] in FAILURES for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
