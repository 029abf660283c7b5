"""Per-run cost of small corpus models: lowp int8 against ONNX Runtime int8 on the same QDQ
file, timed in interleaved rounds, and where lowp's replayed run spends its time.

    python evals/corpus/run.py --models silero_vad_op15 ... --keep DIR   # writes the files
    python bench/tiny_models.py DIR [--models ...] [--threads 1 2] [--repeats 400] [--top 6]
                                    [--blocks]

Per model and thread count: the median of `--repeats` runs of one batch of the model's
evaluation feeds for both engines (the same feeds), and the lowp runs' agreement with ONNX
Runtime (% identical output elements). With `--blocks` each engine is timed in a block of
its own instead of in alternating rounds: with two threads ONNX Runtime's workers spin for
a while after each of its runs and hold a core that the next lowp run then waits for.
With `--top N`, the N most expensive parts of the replayed run: native Programs
(`Segment`: how many steps, how many outside tensors it checks), recorded calls repeated
from Python (`Calls`) and steps run the plain way (`Plain`), each timed around its runner.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import interleaved_ms, print_table  # noqa: E402
from evals.corpus.models import BY_NAME, make_feeds  # noqa: E402

MODELS = ["silero_vad_op15", "silero_vad_sequence", "silero_vad_openvino", "silero_vad_v6_fw",
          "oww_hey_mycroft", "oww_melspectrogram", "khmersm"]


def _ort(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _identical(a: dict[str, np.ndarray], b: list[np.ndarray], names: list[str]) -> float:
    same = sum(int(np.sum(np.asarray(a[n]) == v)) for n, v in zip(names, b, strict=True))
    return 100.0 * same / max(1, sum(v.size for v in b))


def _describe(runner: Any) -> str:
    from lowp.runtime import replay

    if type(runner) is replay._Segment:
        return f"Segment of {len(runner.entries)} steps, {len(runner.checks)} checks"
    step = runner.entry.step if type(runner) is replay._Calls else runner.step
    kind = "Calls" if type(runner) is replay._Calls else "Plain"
    return f"{kind} {step.op_type}:{step.kind} {step.name}"


def breakdown(session: Any, feeds: dict[str, np.ndarray], top: int, runs: int = 200
              ) -> list[tuple[float, str]]:
    """(median us, description) of the `top` most expensive runners of a replayed run."""
    rp = session._replayer
    runners = next(iter(rp._ready.values()))
    times: list[list[float]] = [[] for _ in runners]
    for i, r in enumerate(runners):
        inner = r.run

        def timed(env: Any, layout: Any, everything: bool, inner: Any = inner, i: int = i
                  ) -> None:
            t0 = time.perf_counter()
            inner(env, layout, everything)
            times[i].append(time.perf_counter() - t0)
        r.run = timed                       # an instance attribute: this session only
    for _ in range(runs):
        session.run(feeds)
    med = [1e6 * statistics.median(t) for t in times]
    order = sorted(range(len(runners)), key=lambda i: -med[i])[:top]
    return [(med[i], _describe(runners[i])) for i in order]


def main(argv: list[str] | None = None) -> int:
    import lowp

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir", type=Path, help="folder of run.py --keep (MODEL.lowp.qdq.onnx)")
    p.add_argument("--models", nargs="+", default=MODELS)
    p.add_argument("--threads", nargs="+", type=int, default=[1])
    p.add_argument("--repeats", type=int, default=400)
    p.add_argument("--top", type=int, default=0)
    p.add_argument("--blocks", action="store_true",
                   help="time each engine in its own block, not in alternating rounds")
    args = p.parse_args(argv)
    rows = []
    for name in args.models:
        spec, path = BY_NAME[name], args.dir / f"{name}.lowp.qdq.onnx"
        feeds = make_feeds(spec, spec.batch, 1)
        for threads in args.threads:
            ours = lowp.Session(str(path), threads=threads)
            theirs = _ort(path, threads)
            names = [o.name for o in theirs.get_outputs()]
            ident = _identical(ours.run(feeds), theirs.run(None, feeds), names)
            runs = [lambda s=ours, f=feeds: s.run(f), lambda s=theirs, f=feeds: s.run(None, f)]
            if args.blocks:
                lo, ox = (interleaved_ms([run], args.repeats, budget=20.0)[0] for run in runs)
            else:
                lo, ox = interleaved_ms(runs, args.repeats, budget=20.0)
            rows.append([name, threads, f"{lo:.3f}", f"{ox:.3f}", f"{lo / ox:.2f}",
                         f"{ident:.1f}"])
            if args.top:
                print(f"{name}, {threads} thread(s): lowp {1e3 * lo:.0f} us")
                for us, what in breakdown(ours, feeds, args.top):
                    print(f"  {us:8.1f} us  {what}")
    print_table(["model", "threads", "lowp ms", "ORT ms", "lowp / ORT", "identical %"], rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
