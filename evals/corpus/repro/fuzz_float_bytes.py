"""Byte check of the graph fuzzer's float graphs: lowp's Session against ONNX Runtime.

    python evals/corpus/repro/fuzz_float_bytes.py [--count 300] [--seed 0] [--blocks attention]
                                                 [--threads 1] [--save DIR]

Draws `count` graphs from tests/fuzz/graphs.py's fuzz_graphs (hypothesis, fixed seed, so
the same graphs on every run of the same generators; `--blocks` sets LOWP_FUZZ_BLOCKS),
runs each FLOAT model on its first batch size and the fuzzer's feeds in lowp's Session and
in ONNX Runtime (default optimizations, `--threads` threads in both, 1 unless given) and
compares the outputs' bytes. Prints how many were byte-identical and, for the others, the
blocks and the largest difference, or what lowp raised (a crash is counted, and the draw
goes on); `--save` writes each such model and its feeds (N.onnx, N.npz) for
float_divergence.py-style bisection.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "src"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--count", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--blocks", default="")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--save", type=Path)
    a = p.parse_args(argv)
    if a.blocks:
        os.environ["LOWP_FUZZ_BLOCKS"] = a.blocks
    from hypothesis import HealthCheck, Phase, given, seed, settings
    from tests.fuzz.graphs import FuzzGraph, fuzz_graphs
    from tests.fuzz.harness import run_ort

    from lowp.runtime import Session

    results: list[tuple[int, tuple[str, ...], str, float]] = []

    @seed(a.seed)
    @settings(max_examples=a.count, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(fuzz_graphs())
    def draw(g: FuzzGraph) -> None:
        k = len(results)
        feeds = g.feeds(g.batches[0], g.seed)
        try:
            theirs = run_ort(g.model, feeds, threads=a.threads)
        except Exception:  # noqa: BLE001 - a graph ONNX Runtime refuses is not counted
            results.append((k, g.blocks, "refused by ONNX Runtime", 0.0))
            return
        try:
            ours = Session(g.model, threads=a.threads).run(feeds)
        except Exception as e:  # noqa: BLE001 - a crash is counted and saved, the draw goes on
            results.append((k, g.blocks, f"raised {type(e).__name__}: {e}", float("nan")))
            save(k, g.model, feeds)
            return
        if all(np.asarray(ours[n]).tobytes() == np.asarray(v).tobytes()
               for n, v in theirs.items()):
            results.append((k, g.blocks, "identical", 0.0))
            return
        apart = max((float(np.max(np.abs(np.asarray(ours[n], np.float64) - v)))
                     for n, v in theirs.items()
                     if np.shape(ours[n]) == np.shape(v) and np.size(v)
                     and np.asarray(v).dtype.kind == "f"), default=float("inf"))
        results.append((k, g.blocks, "differs", apart))
        save(k, g.model, feeds)

    def save(k: int, model: Any, feeds: dict[str, np.ndarray]) -> None:
        if a.save is not None:
            a.save.mkdir(parents=True, exist_ok=True)
            (a.save / f"{k}.onnx").write_bytes(model.SerializeToString())
            saved: dict[str, Any] = dict(feeds)
            np.savez(a.save / f"{k}.npz", **saved)

    draw()
    counted = [r for r in results if r[2] != "refused by ONNX Runtime"]
    same = sum(r[2] == "identical" for r in counted)
    print(f"{same} of {len(counted)} drawn float graphs byte-identical "
          f"({len(results) - len(counted)} refused by ONNX Runtime)")
    for k, blocks, state, apart in results:
        if state == "differs":
            print(f"  {k}: {' '.join(blocks)}: max |diff| {apart:.3g}")
        elif state.startswith("raised"):
            print(f"  {k}: {' '.join(blocks)}: lowp {state}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
