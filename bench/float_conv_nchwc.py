"""Float32 2-D convolution in MLAS's NCHWc order: lowp._float_conv against ONNX Runtime's own
Conv (a one-node model with the same weights, default optimizations: its NCHWc kernels), and
optionally against the kernel of an earlier build, median ms (lower is better).

Each case is validated first: lowp's output equals ONNX Runtime's bit for bit (and the
earlier kernel's). Then, interleaved round by round: the kernel on prepacked weights,
`nchwc_conv.convolve` (the call a model makes: cached packing, output allocation), ONNX
Runtime's session.run, and the earlier kernel. Times are the fastest of the rounds (on a
shared machine a run preempted by another process is slower, never faster), with the
ratio of the medians beside the ratio of the fastest.

    python bench/float_conv_nchwc.py [--threads 1 2] [--rounds 15]
        [--baseline path/to/an/older/_float_conv.cpython-311-x86_64-linux-gnu.so]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import onnxruntime as ort
from onnx import helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import print_table  # noqa: E402

from lowp import _float_conv  # type: ignore[attr-defined]  # noqa: E402
from lowp.runtime import nchwc_conv  # noqa: E402

# name, (c, m, kernel, stride, height = width, group); a pair (kh, kw) for the kernel and a
# triple (n, h, w) for the input: 1-row maps (slovorez_morphemes' 1-D convolutions)
CASES: list[tuple[str, tuple[int, int, int | tuple[int, int], int,
                             int | tuple[int, int, int], int]]] = [
    ("64->64 3x3 56x56", (64, 64, 3, 1, 56, 1)),
    ("128->128 3x3 28x28", (128, 128, 3, 1, 28, 1)),
    ("256->256 1x1 14x14", (256, 256, 1, 1, 14, 1)),
    ("3->32 3x3 s2 224x224", (3, 32, 3, 2, 224, 1)),
    ("depthwise 3x3 96x56x56", (96, 96, 3, 1, 56, 96)),
    ("512->512 3x3 14x14", (512, 512, 3, 1, 14, 1)),
    ("256->192 1x5 4x1x64", (256, 192, (1, 5), 1, (4, 1, 64), 1)),
    ("192->192 1x5 4x1x64", (192, 192, (1, 5), 1, (4, 1, 64), 1)),
    ("192->192 1x1 4x1x64", (192, 192, 1, 1, (4, 1, 64), 1)),
]


def load_baseline(path: str) -> ModuleType:
    """An earlier build of lowp._float_conv, imported beside the current one."""
    spec = importlib.util.spec_from_file_location("_float_conv", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def interleaved(fns: list[Callable[[], object]], rounds: int) -> list[list[float]]:
    """Seconds of each of `fns` per round, timed in turn round after round."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for fn, ts in zip(fns, times, strict=True):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return times


def ort_session(w: np.ndarray, b: np.ndarray, x_shape: tuple[int, ...], attrs: dict[str, Any],
                threads: int) -> ort.InferenceSession:
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], **attrs)
    graph = helper.make_graph([node], "conv", [helper.make_tensor_value_info("x", 1, x_shape)],
                              [helper.make_tensor_value_info("y", 1, None)],
                              initializer=[numpy_helper.from_array(w, "w"),
                                           numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def bench_case(shape: tuple[int, int, int | tuple[int, int], int, int | tuple[int, int, int],
                            int], threads: int, rounds: int,
               baseline: ModuleType | None) -> list[object]:
    c, m, kernel_shape, s, size, group = shape
    kh, kw = kernel_shape if isinstance(kernel_shape, tuple) else (kernel_shape, kernel_shape)
    n, h, wd = size if isinstance(size, tuple) else (1, size, size)
    rng = np.random.default_rng(h * wd + c)
    x = rng.standard_normal((n, c, h, wd)).astype(np.float32)
    w = (rng.standard_normal((m, c // group, kh, kw)) * 0.1).astype(np.float32)
    b = rng.standard_normal(m).astype(np.float32)
    pads, strides, dil = [kh // 2, kw // 2] * 2, [s, s], [1, 1]
    plan = nchwc_conv.plan(x.shape, w.shape, group, True, True)
    assert plan is not None, "ONNX Runtime keeps this Conv in NCHW on this CPU"
    isa = nchwc_conv._native_isa()
    assert isa is not None, "lowp._float_conv is not built"
    out = ((h + 2 * pads[0] - kh) // s + 1, (wd + 2 * pads[1] - kw) // s + 1)
    packed = nchwc_conv.pack(w, group)

    def kernel(module: ModuleType, y: np.ndarray) -> None:
        module.conv(x, packed, b, y, nchwc_conv.KINDS[plan.kind], plan.block, group, kh, kw,
                    s, s, 1, 1, pads[0], pads[1], isa, threads)

    sess = ort_session(w, b, x.shape, {"pads": pads, "strides": strides, "group": group},
                       threads)
    y_new = np.empty((n, m, *out), np.float32)
    kernel(_float_conv, y_new)
    y_ort = sess.run(None, {"x": x})[0]
    same = bool(np.array_equal(y_new, y_ort))
    fns = [lambda: kernel(_float_conv, y_new),
           lambda: nchwc_conv.convolve(x, w, b, plan, group, pads, strides, dil, threads),
           lambda: sess.run(None, {"x": x})]
    if baseline is not None:
        y_old = np.empty_like(y_new)
        kernel(baseline, y_old)
        same = same and bool(np.array_equal(y_old, y_new))
        fns.append(lambda: kernel(baseline, y_old))
    times = interleaved(fns, rounds)
    fastest = [1e3 * min(ts) for ts in times]
    median = [float(np.median(ts)) for ts in times]
    ratios = [fastest[2] / fastest[0], median[2] / median[0]]
    if baseline is not None:
        ratios.append(fastest[3] / fastest[0])
    return ["yes" if same else "NO", *(f"{t:.2f}" for t in fastest),
            *(f"{r:.2f}" for r in ratios)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--baseline", help="an earlier build's _float_conv module file")
    args = ap.parse_args()
    baseline = load_baseline(args.baseline) if args.baseline else None
    header = ["case", "threads", "= ORT", "kernel ms", "convolve ms", "ORT ms"] + \
        (["baseline ms"] if baseline else []) + ["ORT / kernel", "(medians)"] + \
        (["baseline / kernel"] if baseline else [])
    rows = []
    for threads in args.threads:
        for name, shape in CASES:
            rows.append([name, threads, *bench_case(shape, threads, args.rounds, baseline)])
    print_table(header, rows)


if __name__ == "__main__":
    main()
