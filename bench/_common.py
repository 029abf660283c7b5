"""Benchmark helpers: timing (median after warm-up), measured peaks, table printing."""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np

from lowp import _native  # type: ignore[attr-defined]


def median_seconds(fn: Callable[[], object], *, warmup: int = 2, repeats: int = 15,
                   budget: float = 0.6) -> float:
    """Median wall time of `fn()` over `repeats` runs (fewer if `budget` seconds run out)."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats and (len(times) < 3 or time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def interleaved_ms(fns: list[Callable[[], object]], repeats: int,
                   budget: float) -> list[float]:
    """Median ms of each of `fns`, timed in turn round after round, so that a change in the
    machine's load (it is shared) falls on all of them alike."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    start = time.perf_counter()
    while len(times[0]) < repeats and (len(times[0]) < 3 or
                                       time.perf_counter() - start < budget):
        for fn, ts in zip(fns, times, strict=True):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return [1e3 * float(np.median(ts)) for ts in times]



def cpu_seconds(fn: Callable[[], object], calls: int) -> float:
    """Process CPU seconds of `calls` calls of `fn`."""
    t = time.process_time()
    for _ in range(calls):
        fn()
    return time.process_time() - t


def interleaved_cpu_ratios(fns: Sequence[Callable[[], object]], rounds: int,
                           calls: int) -> list[float]:
    """Median over the rounds of each function's process CPU time (`calls` calls) over the
    last one's, the functions timed in turn and their order reversed every other round."""
    for fn in fns:
        fn()
    per_round = []
    for r in range(rounds):
        order = list(range(len(fns)))
        if r % 2:
            order.reverse()
        times = [0.0] * len(fns)
        for k in order:
            times[k] = cpu_seconds(fns[k], calls)
        per_round.append([t / max(times[-1], 1e-9) for t in times[:-1]])
    return [float(np.median([p[k] for p in per_round])) for k in range(len(fns) - 1)]


def wall_and_cpu(runs: Sequence[Callable[[], Any]], rounds: int, warmup: int = 3
                 ) -> tuple[list[list[float]], list[list[float]], list[Any]]:
    """Each of `runs` warmed up `warmup` times, then timed `rounds` rounds, one run of each
    in turn: the wall seconds and the process CPU seconds of every run (per entry of
    `runs`), and what each returned on its last warm-up (to check the outputs)."""
    outputs: list[Any] = [None] * len(runs)
    for _ in range(warmup):
        outputs = [run() for run in runs]
    wall: list[list[float]] = [[] for _ in runs]
    cpu: list[list[float]] = [[] for _ in runs]
    for _ in range(rounds):
        for run, w, c in zip(runs, wall, cpu, strict=True):
            w0, c0 = time.perf_counter(), time.process_time()
            run()
            c.append(time.process_time() - c0)
            w.append(time.perf_counter() - w0)
    return wall, cpu, outputs

def thread_ids() -> set[int]:
    """The native ids of this process's threads (Linux, /proc/self/task)."""
    return {int(t) for t in os.listdir("/proc/self/task")}


def threads_cpu(tids: Collection[int]) -> float:
    """Seconds the threads `tids` of this process have run on a CPU so far, read from each
    thread's own CPU clock (Linux: clock id ((~tid) << 3) | 6, CPUCLOCK_SCHED per thread,
    which counts a running thread's current slice, where /proc's schedstat lags by up to a
    tick); a thread that has ended counts 0."""
    total = 0
    for tid in tids:
        try:
            total += time.clock_gettime_ns(((~tid) << 3) | 6)
        except OSError:
            pass
    return 1e-9 * total


def wall_cpu_own(runs: Sequence[Callable[[], Any]],
                 workers: Sequence[Callable[[], Collection[int]]], rounds: int, warmup: int = 3
                 ) -> tuple[list[list[float]], list[list[float]], list[list[float]], list[Any]]:
    """As `wall_and_cpu`, and each engine's own CPU seconds per round: the calling thread's
    time inside its run plus what its worker threads (`workers[i]()`, asked once after the
    warm-up) ran during the whole round, whenever they ran. Two engines in one process bill
    each other on the process clock: a pool whose idle workers spin after a run (ONNX
    Runtime's default) spins into the other engine's next run; here each pays for its own."""
    outputs: list[Any] = [None] * len(runs)
    for _ in range(warmup):
        outputs = [run() for run in runs]
    tids = [set(w()) for w in workers]
    me = [threading.get_native_id()]
    wall: list[list[float]] = [[] for _ in runs]
    cpu: list[list[float]] = [[] for _ in runs]
    own: list[list[float]] = [[] for _ in runs]
    for _ in range(rounds):
        before = [threads_cpu(t) for t in tids]
        mine = []
        for run, w, c in zip(runs, wall, cpu, strict=True):
            w0, c0, m0 = time.perf_counter(), time.process_time(), threads_cpu(me)
            run()
            mine.append(threads_cpu(me) - m0)
            c.append(time.process_time() - c0)
            w.append(time.perf_counter() - w0)
        for o, m, t, b in zip(own, mine, tids, before, strict=True):
            o.append(m + threads_cpu(t) - b)
    return wall, cpu, own, outputs


def contention(lowp_fn: Callable[[], object], other_fn: Callable[[], object], runs: int,
               cycles: int, one_thread_fn: Callable[[], object] | None = None,
               settle: float = 0.1) -> list[dict[str, float]]:
    """`cycles` times: lowp's block median (`runs` runs back to back), the other engine's
    block median, then both medians with the two engines alternating `runs` rounds (so the
    other engine's idle threads, spinning or parked, share the cores with lowp's next run),
    and, with `one_thread_fn`, lowp on one thread in a block and alternating too. Each block
    starts after `settle` seconds of sleep, so that the other engine's spinning threads have
    gone quiet. One dict of ms per cycle: lowp_block, other_block, lowp_mixed, other_mixed
    (and lowp_one_thread, lowp_one_thread_mixed).

    Comparing lowp's interleaved median with its own block median of the same cycle, taken
    a second or less apart in the same process, separates the other engine's contention from
    the outside load of a shared machine; short cycles, many of them, and the spread of the
    ratio over the cycles show how much that load moved."""
    out = []
    for _ in range(cycles):
        time.sleep(settle)
        cycle = {"lowp_block": interleaved_ms([lowp_fn], runs, 1e9)[0]}
        if one_thread_fn is not None:
            time.sleep(settle)
            cycle["lowp_one_thread"] = interleaved_ms([one_thread_fn], runs, 1e9)[0]
        cycle["other_block"] = interleaved_ms([other_fn], runs, 1e9)[0]
        time.sleep(settle)
        cycle["lowp_mixed"], cycle["other_mixed"] = interleaved_ms([lowp_fn, other_fn], runs,
                                                                  1e9)
        if one_thread_fn is not None:
            cycle["lowp_one_thread_mixed"] = interleaved_ms([one_thread_fn, other_fn], runs,
                                                            1e9)[0]
        out.append(cycle)
    return out


def in_child(target: Callable[..., None], *args: object) -> Any:
    """Run ``target(*args, queue)`` in a fresh (spawned) process and return what it puts on
    the queue: each measurement starts with its own heap, thread pools and RSS."""
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    p = ctx.Process(target=target, args=(*args, queue))
    p.start()
    result = queue.get()
    p.join()
    return result


def peak_gops(kind: str, seconds: float = 0.5, threads: int = 1, tries: int = 1) -> float:
    """Measured peak of a register-only loop run on `threads` threads at once (best of tries)."""
    return max(float(_native.peak_gops(kind, seconds, threads)) for _ in range(tries))


def print_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(h) for h in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for n, r in enumerate(cells):
        print("  ".join(c.rjust(w) if i else c.ljust(w)
                        for i, (c, w) in enumerate(zip(r, widths, strict=True))))
        if n == 0:
            print("  ".join("-" * w for w in widths))


# ONNX Runtime's idle intra-op workers: "on" (its default) spins after each run (~40 ms
# of CPU measured on the AMD EPYC), "stop" spins during a run only
# (session.force_spinning_stop), "off" never spins
ORT_SPIN: dict[str, dict[str, str]] = {
    "on": {"session.intra_op.allow_spinning": "1"},
    "stop": {"session.intra_op.allow_spinning": "1", "session.force_spinning_stop": "1"},
    "off": {"session.intra_op.allow_spinning": "0"},
}


def ort_session(model: str | bytes, threads: int, spin: str | None = None) -> Any:
    """ONNX Runtime's CPU session on `model` (a path or serialized bytes) with `threads`
    intra-op threads, one inter-op thread and the ORT_SPIN setting `spin` (its default when
    None)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    for key, value in ORT_SPIN.get(spin or "", {}).items():
        opts.add_session_config_entry(key, value)
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
