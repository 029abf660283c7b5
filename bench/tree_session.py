"""Memory, load time and per-row time of a tree ensemble model in lowp and ONNX Runtime.

    python bench/tree_session.py [--model luscinia_stress] [--rows 1 4 64] [--threads 1]
                                 [--rounds 5] [--engine lowp|ort|both]

One process builds the engine(s) on the corpus model's float file (evals/corpus/models.py)
and prints: the process's peak resident memory before and after each build, each build's
wall time, and per batch size the median wall and CPU times of lowp's and ONNX Runtime's runs,
timed in turn round after round (the machine is shared: only the ratios mean something),
with whether the outputs are identical. `--engine lowp` (or `ort`) builds that one alone,
so the peak memory is that engine's.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evals.corpus.models import ALL_BY_NAME, load_float, make_feeds  # noqa: E402

import lowp  # noqa: E402
from lowp.runtime.ml_ops import maps_as_arrays  # noqa: E402


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn):  # type: ignore[no-untyped-def]
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="luscinia_stress")
    ap.add_argument("--rows", type=int, nargs="+", default=[1, 4, 64])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--engine", choices=("lowp", "ort", "both"), default="both")
    a = ap.parse_args()
    spec = ALL_BY_NAME[a.model]
    # the file itself when the corpus runs it as it is (no frozen inputs): the peak is then
    # the engine's alone
    data: str | bytes = (str(spec.path) if not spec.frozen and not spec.pin_batch
                         else load_float(spec).SerializeToString())
    print(f"{a.model}: file {spec.path.stat().st_size / 2**20:.0f} MB; peak RSS before "
          f"the engines {peak_mb():.0f} MB")
    runs = {}
    if a.engine in ("lowp", "both"):
        s, wall, cpu = timed(lambda: lowp.Session(data, threads=a.threads))
        runs["lowp"] = lambda f: maps_as_arrays(s.run(f))
        print(f"lowp Session built in {wall:.1f} s wall ({cpu:.1f} s CPU); peak RSS "
              f"{peak_mb():.0f} MB")
    if a.engine in ("ort", "both"):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = a.threads
        o, wall, cpu = timed(lambda: ort.InferenceSession(data, opts,
                                                         providers=["CPUExecutionProvider"]))
        names = [x.name for x in o.get_outputs()]
        runs["ort"] = lambda f: maps_as_arrays(dict(zip(names, o.run(None, f), strict=True)))
        print(f"ONNX Runtime session built in {wall:.1f} s wall ({cpu:.1f} s CPU); peak RSS "
              f"{peak_mb():.0f} MB")
    first = make_feeds(spec, 1, seed=0)
    assert isinstance(first, dict)
    for name, run in runs.items():
        _, wall, cpu = timed(lambda run=run: run(first))
        print(f"{name} first run (1 row) {wall:.1f} s wall ({cpu:.1f} s CPU); peak RSS "
              f"{peak_mb():.0f} MB")
    for rows in a.rows:
        made = make_feeds(spec, rows, seed=1)
        assert isinstance(made, dict)
        feeds = {k: np.ascontiguousarray(v) for k, v in made.items()}
        times: dict[str, list[tuple[float, float]]] = {k: [] for k in runs}
        outs = {}
        for _ in range(a.rounds):
            for name, run in runs.items():
                outs[name], wall, cpu = timed(lambda run=run, feeds=feeds: run(feeds))
                times[name].append((wall, cpu))
        line = [f"{rows} rows:"]
        for name, ts in times.items():
            line.append(f"{name} {1e3 * statistics.median(t[0] for t in ts):.3g} ms wall, "
                        f"{1e3 * statistics.median(t[1] for t in ts):.3g} ms CPU;")
        if len(outs) == 2:
            same = all(np.array_equal(outs["lowp"][k], outs["ort"][k], equal_nan=True)
                       and outs["lowp"][k].dtype == outs["ort"][k].dtype
                       for k in outs["ort"])
            line.append("identical" if same else "DIFFERENT")
        print(" ".join(line))
    print(f"peak RSS {peak_mb():.0f} MB")


if __name__ == "__main__":
    main()
