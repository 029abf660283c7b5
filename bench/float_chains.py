"""Fused float element-wise chains (lowp.runtime.fuse_float): whole corpus models, lowp with
the chains fused and unfused, and ONNX Runtime on the same QDQ file, one thread, median ms
of interleaved rounds (lower is better); validated first (the fused outputs equal the
unfused ones bit for bit, and their share identical to ONNX Runtime's).

    python bench/float_chains.py [--models magika vit_s_focus ...] [--repeats 15]
                                 [--work /tmp/lowp_float_glue]
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

import numpy as np
import onnxruntime as ort
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import interleaved_ms, print_table  # noqa: E402
from bench.float_glue import model_feeds, qdq_file  # noqa: E402

from lowp.runtime import fuse_float  # noqa: E402

MODELS = ["magika", "vit_s_focus", "khmersm", "captcha_crnn"]


def bench(names: list[str], work: Path, repeats: int) -> None:
    import lowp

    rows = []
    for name in names:
        path = qdq_file(name, work)
        feeds = model_feeds(name, None)
        fused = lowp.Session(str(path), threads=1)
        with fuse_float.disabled():
            unfused = lowp.Session(str(path), threads=1)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        ort_s = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        for _ in range(3):      # past the recording runs
            got, want = fused.run(feeds), unfused.run(feeds)
        for k in want:
            if not np.array_equal(got[k].view(np.uint8), want[k].view(np.uint8)):
                raise SystemExit(f"{name}: fused output {k} differs from the unfused one")
        ort_out = dict(zip([o.name for o in ort_s.get_outputs()], ort_s.run(None, feeds),
                           strict=True))
        same = np.mean([np.mean(got[k] == ort_out[k]) for k in got])
        chains = [s for s in fused.steps if s.chain is not None]
        t_off, t_on, t_ort = interleaved_ms(
            [partial(unfused.run, feeds), partial(fused.run, feeds),
             partial(ort_s.run, None, feeds)], repeats, budget=60)
        rows.append([name, f"{len(chains)} ({sum(len(s.chain.steps) for s in chains)} steps)",
                     f"{100 * same:.2f}%", f"{t_off:.2f}", f"{t_on:.2f}", f"{t_ort:.2f}",
                     f"{t_off / t_on:.2f}x", f"{t_off / t_ort:.2f} -> {t_on / t_ort:.2f}"])
    print("\nwhole models (lowp QDQ files), one thread")
    print_table(["model", "chains", "= ORT", "unfused ms", "fused ms", "ORT ms", "speedup",
                 "lowp / ORT"], rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=MODELS)
    p.add_argument("--work", type=Path, default=Path("/tmp/lowp_float_glue"))
    p.add_argument("--repeats", type=int, default=15, help="timed rounds per model")
    args = p.parse_args()
    with threadpool_limits(limits=1):
        bench(args.models, args.work, args.repeats)


if __name__ == "__main__":
    main()
