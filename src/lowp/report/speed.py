"""Does int8 pay here? Float and int8 latency of one feed on lowp's engine and on ONNX Runtime.

`measure_speed` times four runs of the same feed: the float model and the quantized (QDQ)
model, each on lowp's engine and on ONNX Runtime, with the same intra-op thread count. The
four are timed interleaved (one run of each per round, in turn), so that a machine whose
load changes during the measurement slows all four alike, and each gets the median of its
rounds. `SpeedReport.advice` states the verdict by a fixed rule: int8 pays when its fastest
engine beats the fastest float engine by more than `PAYS`; otherwise it says that the float
model is as fast or faster (small models, where per-operator costs dominate the arithmetic,
and models left mostly in float).
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import onnx

from .table import format_table

# int8 "pays" when it is at least this much faster than the best float run (a 5% margin:
# interleaved medians on a quiet machine move by a few percent)
PAYS = 0.95
ENGINES = ("lowp", "ONNX Runtime")


@dataclass(frozen=True)
class SpeedReport:
    """Median milliseconds per run of one feed, by (engine, "float" | "int8")."""

    ms: Mapping[tuple[str, str], float]
    threads: int
    rounds: int

    def best(self, kind: str) -> tuple[str, float]:
        """(engine, ms) of the fastest engine for `kind` ("float" or "int8")."""
        engine = min(ENGINES, key=lambda e: self.ms[e, kind])
        return engine, self.ms[engine, kind]

    def advice(self) -> str:
        (qe, q), (fe, f) = self.best("int8"), self.best("float")
        if q <= PAYS * f:
            return (f"int8 pays: {qe} int8 takes {q:.3g} ms, {f / q:.2f}x faster than the "
                    f"fastest float run ({fe}, {f:.3g} ms).")
        return (f"int8 does not pay on this model at this input size: the fastest int8 run "
                f"({qe}, {q:.3g} ms) is not faster than {fe} running the float model "
                f"({f:.3g} ms). Small models, and models left mostly in float, spend their "
                "time per operator rather than in arithmetic; keep the float model there, or "
                "measure again with the batch you deploy.")

    def format(self) -> str:
        rows = [[e, round(self.ms[e, "float"], 3), round(self.ms[e, "int8"], 3),
                 f"{self.ms[e, 'float'] / self.ms[e, 'int8']:.2f}x"] for e in ENGINES]
        lowp_q, ort_q = self.ms["lowp", "int8"], self.ms["ONNX Runtime", "int8"]
        table = format_table(["engine", "float ms", "int8 ms", "int8 speed-up"], rows,
                             title=f"\nLatency of one feed ({self.threads} thread"
                                   f"{'s' if self.threads != 1 else ''}, median of "
                                   f"{self.rounds} interleaved rounds)")
        return (f"{table}\nlowp int8 / ONNX Runtime int8: {lowp_q / ort_q:.2f}\n"
                f"{self.advice()}")


def measure_speed(qdq: onnx.ModelProto, float_model: onnx.ModelProto,
                  feed: Mapping[str, np.ndarray], *, threads: int = 1,
                  budget_s: float = 1.0, min_rounds: int = 3, max_rounds: int = 200,
                  backend: str = "auto") -> SpeedReport:
    """Time `feed` through the float and int8 models on both engines, interleaved, until
    `budget_s` seconds of timed runs (at least `min_rounds` rounds, at most `max_rounds`).
    Each run is warmed up twice first (lowp records its replayed plan on the first runs)."""
    from ..passes.calibrate import float_session
    from ..runtime import Session

    feed = dict(feed)
    runs: dict[tuple[str, str], Callable[[], object]] = {}
    for kind, model in (("float", float_model), ("int8", qdq)):
        session = Session(model, backend=backend, threads=threads)
        ort = float_session(model, threads=threads)
        runs["lowp", kind] = functools.partial(session.run, feed)
        runs["ONNX Runtime", kind] = functools.partial(ort.run, None, feed)
    for run in runs.values():
        run()
        run()
    times: dict[tuple[str, str], list[float]] = {k: [] for k in runs}
    spent, rounds = 0.0, 0
    while rounds < max_rounds and (rounds < min_rounds or spent < budget_s):
        for key, run in runs.items():
            t0 = time.perf_counter()
            run()
            dt = time.perf_counter() - t0
            times[key].append(dt)
            spent += dt
        rounds += 1
    return SpeedReport({k: 1e3 * statistics.median(v) for k, v in times.items()}, threads,
                       rounds)
