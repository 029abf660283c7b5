"""Mutation fuzz of model files: corrupt the bytes of good models, then load, run and lint.

    python tools/fuzz_models.py --mutations 1000 [--seed 0] [--keep DIR]

Each mutant (bit flips, a trimmed tail, a chunk of the file spliced over another place,
inserted or deleted bytes, a run of 0xFF; or, one in three, a well-formed model with one
absurd field: an integer attribute, an initializer's shape, a scale or zero point, a
node input wired to another tensor) of the bundled demo model and of its QDQ form is
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

# outcome of one mutant; INTERNAL, TRACEBACK, CRASH and HANG fail the fuzz
OK, CLEAN, MEMORY, INTERNAL, TRACEBACK, CRASH, HANG = (
    "ok", "clean", "memory", "internal", "traceback", "crash", "hang")
FAILURES = (INTERNAL, TRACEBACK, CRASH, HANG)
BATCH_TIMEOUT_S = 120.0
_BACKEND_VAR = "LOWP_FUZZ_BACKEND"   # the Session backend of the child processes


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


# structured mutations: a well-formed protobuf with one field made absurd, so that the
# mutant gets past the parser and the checker into lowering and the kernels

_ODD_INTS = (0, -1, 1, 2, 3, 5, 64, 2**31 - 1, -2**31, 10**9)
_ODD_FLOATS = (0.0, -1.0, float("nan"), float("inf"), 1e-45, 1e30)


def _attribute(m: Any, rng: random.Random) -> None:
    """An integer (or integer list) attribute of a random node gets an odd value."""
    attrs = [a for n in m.graph.node for a in n.attribute if a.type in (2, 7)]  # INT, INTS
    if not attrs:
        return
    a = rng.choice(attrs)
    if a.type == 2:
        a.i = rng.choice(_ODD_INTS)
    elif a.ints:
        a.ints[rng.randrange(len(a.ints))] = rng.choice(_ODD_INTS)
        if rng.random() < 0.3:
            del a.ints[-1]


def _reshape_initializer(m: Any, rng: random.Random) -> None:
    """An initializer keeps its values under another shape (rank, order, or a 0 dim)."""
    import numpy as np
    from onnx import numpy_helper

    inits = list(m.graph.initializer)
    if not inits:
        return
    t = rng.choice(inits)
    a = numpy_helper.to_array(t)
    choice = rng.randrange(4)
    if choice == 0:
        shape: tuple[int, ...] = (a.size,)
    elif choice == 1:
        shape = tuple(reversed(a.shape))
    elif choice == 2:
        shape = (1, *a.shape, 1)
    else:
        shape = (*a.shape[:-1], 0) if a.ndim else (0,)
        a = np.zeros(shape, a.dtype)
    t.CopyFrom(numpy_helper.from_array(a.reshape(shape), t.name))


def _qparam(m: Any, rng: random.Random) -> None:
    """A scale becomes 0, negative, NaN, Inf, tiny or huge; or a zero point its extreme."""
    import numpy as np
    from onnx import numpy_helper

    qdq = [n for n in m.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    inits = {t.name: t for t in m.graph.initializer}
    names = [n.input[k] for n in qdq for k in (1, 2) if len(n.input) > k and n.input[k] in inits]
    if not names:
        return
    t = inits[rng.choice(names)]
    a = numpy_helper.to_array(t).copy()
    if a.dtype.kind == "f":
        a[...] = rng.choice(_ODD_FLOATS)
    else:
        info = np.iinfo(a.dtype)
        a[...] = rng.choice((info.min, info.max))
    t.CopyFrom(numpy_helper.from_array(a, t.name))


def _rewire(m: Any, rng: random.Random) -> None:
    """A node input reads another existing tensor (shapes and types no longer match)."""
    nodes = [n for n in m.graph.node if n.input]
    if not nodes:
        return
    names = sorted({o for n in m.graph.node for o in n.output}
                   | {t.name for t in m.graph.initializer} | {i.name for i in m.graph.input})
    n = rng.choice(nodes)
    n.input[rng.randrange(len(n.input))] = rng.choice(names)


STRUCTURED: dict[str, Callable[[Any, random.Random], None]] = {
    "attribute": _attribute, "reshape_initializer": _reshape_initializer,
    "qparam": _qparam, "rewire": _rewire}


def _structured(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    import onnx

    m = onnx.ModelProto()
    m.ParseFromString(data)
    name = rng.choice(sorted(STRUCTURED))
    STRUCTURED[name](m, rng)
    return m.SerializeToString(), name


def mutate(data: bytes, rng: random.Random, structured: float = 1 / 3
           ) -> tuple[bytes, str]:
    """One to three byte mutations of `data` (or, with probability `structured`, one
    structured mutation), and their names."""
    if rng.random() < structured:
        return _structured(data, rng)
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


def make_mutants(models: dict[str, bytes], count: int, seed: int, folder: Path,
                 structured: float = 1 / 3) -> list[Mutant]:
    """`count` mutants, alternating between the seed models, written to `folder`."""
    rng = random.Random(seed)
    names = sorted(models)
    out = []
    for i in range(count):
        name = names[i % len(names)]
        data, how = mutate(models[name], rng, structured)
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
        session = Session(path, backend=os.environ.get(_BACKEND_VAR, "auto"))
        session.run({session.inputs[0].name: x} if session.inputs else {})
    except InternalError as e:
        return INTERNAL, str(e)
    except LowpError as e:
        return CLEAN, str(e).splitlines()[0] if str(e) else ""
    except MemoryError as e:
        # the engine lets MemoryError through on purpose (a stride or pad of 10^9 asks
        # numpy for 74 GiB); counted apart, not a failure
        return MEMORY, f"{type(e).__name__}: {e}"[:300]
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


_RANK = {OK: 0, CLEAN: 1, MEMORY: 2, INTERNAL: 3, TRACEBACK: 4}


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
            f"{c[MEMORY]} out of memory, {c[INTERNAL]} internal errors, {c[TRACEBACK]} "
            f"tracebacks, {c[CRASH]} crashes, {c[HANG]} hangs")


def fuzz(count: int, seed: int, keep: Path | None = None, batch: int = 100,
         structured: float = 1 / 3) -> list[dict[str, str]]:
    """Make `count` mutants and run them; the ones not clean are copied to `keep`."""
    with tempfile.TemporaryDirectory(prefix="lowp-mutants-") as tmp:
        mutants = make_mutants(seed_models(), count, seed, Path(tmp), structured)
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
    p.add_argument("--structured", type=float, default=1 / 3, metavar="SHARE",
                   help="share of structured mutants (default 1/3; 0: byte mutations only)")
    p.add_argument("--backend", choices=["auto", "native", "reference"], default="auto",
                   help="Session backend the mutants run on")
    p.add_argument("--worker", nargs=2, metavar=("LIST", "RESULTS"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        run_worker(Path(args.worker[0]).read_text().splitlines(), Path(args.worker[1]))
        return 0
    os.environ[_BACKEND_VAR] = args.backend
    results = fuzz(args.mutations, args.seed, args.keep, args.batch, args.structured)
    for line in _failures(results):
        print(line)
    print(summary_line(results))
    return 1 if any(r["outcome"] in FAILURES for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
