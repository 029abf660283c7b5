"""Float glue: lowp's native float32 kernels (lowp.runtime.native_float) against their numpy
reference and ONNX Runtime, one thread, median ms (lower is better).

  ops         each kernel on a model-sized tensor: numpy reference, native, ONNX Runtime on a
              one-node model; validated first (max float32 ulp from the reference)
  thresholds  numpy time / native time on tiny arrays (native_float.MIN_SIZE)
  models      whole models: lowp QDQ files of the corpus (quantized once into --work), lowp
              with the numpy glue and with the native kernels, and ONNX Runtime on the same
              file; validated first (share of identical outputs, native vs numpy glue)

    python bench/float_glue.py [ops] [thresholds] [models] [--models ppocrv6_det_small ...]
                               [--size 960] [--work /tmp/lowp_float_glue]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import interleaved_ms, median_seconds, print_table  # noqa: E402

from lowp.runtime import native_float  # noqa: E402
from lowp.runtime.float_registry import FLOAT_OPS  # noqa: E402

# op, attributes, input shape (NCHW, sizes of the PP-OCR detectors' glue at ~1000 px),
# standard deviation of the values
OP_CASES: list[tuple[str, dict[str, Any], tuple[int, ...], float]] = [
    ("Erf", {}, (1, 64, 240, 240), 3.0),
    ("Erf", {}, (1, 64, 240, 240), 0.5),    # GELU's x / sqrt 2 in a trained network
    ("Gelu", {}, (1, 64, 240, 240), 3.0),
    ("Gelu", {"approximate": "tanh"}, (1, 64, 240, 240), 3.0),
    ("Sigmoid", {}, (1, 64, 240, 240), 3.0),
    ("Tanh", {}, (1, 64, 240, 240), 3.0),
    ("HardSigmoid", {"alpha": 0.2, "beta": 0.5}, (1, 64, 240, 240), 3.0),
    ("HardSwish", {}, (1, 64, 240, 240), 3.0),
    ("MaxPool", {"kernel_shape": [2, 2], "auto_pad": "SAME_UPPER"}, (1, 64, 240, 240), 3.0),
    ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
     (1, 64, 240, 240), 3.0),
    ("AveragePool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
     (1, 64, 240, 240), 3.0),
    ("AveragePool", {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1},
     (1, 64, 239, 239), 3.0),
    ("GlobalAveragePool", {}, (1, 64, 240, 240), 3.0),
    ("GlobalAveragePool", {}, (8, 256, 7, 7), 3.0),
    # a detection head's DFL softmax (16 bins over axis 1, read in place), and over the last axis
    ("Softmax", {"axis": 1}, (1, 16, 4, 8400), 3.0),
    ("LogSoftmax", {"axis": 1}, (1, 16, 4, 8400), 3.0),
    ("Softmax", {"axis": -1}, (1, 4, 8400, 16), 3.0),
]

MODELS = ("ppocrv5_det", "ppocrv6_det_small", "vit_s_focus")


def agreement(x: np.ndarray, got: np.ndarray, ref: np.ndarray) -> tuple[str, int]:
    """(% of bit-identical values, largest distance in float32 steps) of got from ref; -1 if
    NaN does not match NaN. The distance skips values below |x| * 2^-24, where a GELU is the
    float64 cancellation of 1 + erf / 1 + tanh (bounded by |x| * 2^-50 in the tests)."""
    same = (got.view(np.uint32) == ref.view(np.uint32)) | (np.isnan(got) & np.isnan(ref))
    if not np.array_equal(np.isnan(got), np.isnan(ref)):
        return f"{100 * same.mean():.4f}", -1
    keep = ~np.isnan(ref)
    if got.shape == x.shape:
        with np.errstate(over="ignore"):
            keep &= np.abs(ref) >= np.abs(x) * np.float32(2.0 ** -24)
    ia = got[keep].view(np.int32).astype(np.int64)
    ib = ref[keep].view(np.int32).astype(np.int64)
    ia = np.where(ia < 0, -(ia & 0x7FFFFFFF), ia)
    ib = np.where(ib < 0, -(ib & 0x7FFFFFFF), ib)
    return f"{100 * same.mean():.4f}", int(np.abs(ia - ib).max(initial=0))


def ort_node(op: str, attrs: dict[str, Any], shape: tuple[int, ...]) -> Callable[..., Any]:
    """ONNX Runtime on a one-node model of `op` (one thread)."""
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    graph = helper.make_graph([node], op, [helper.make_tensor_value_info("x", 1, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    s = ort.InferenceSession(model.SerializeToString(), opts,
                             providers=["CPUExecutionProvider"])
    return lambda x: s.run(None, {"x": x})[0]


def bench_ops() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for op, attrs, shape, std in OP_CASES:
        x = (rng.standard_normal(shape) * std).astype(np.float32)
        fn = FLOAT_OPS[op]
        with native_float.disabled():
            ref = fn(x, **attrs)
            t_np = median_seconds(partial(fn, x, **attrs), repeats=5)
        got = fn(x, **attrs)
        t_nat = median_seconds(partial(fn, x, **attrs), repeats=15)
        ort_fn = ort_node(op, attrs, shape)
        t_ort = median_seconds(partial(ort_fn, x), repeats=15)
        label = op + ("(tanh)" if attrs.get("approximate") == "tanh" else "")
        if "kernel_shape" in attrs:
            label += " " + "x".join(map(str, attrs["kernel_shape"])) + (
                " s" + "x".join(map(str, attrs["strides"])) if "strides" in attrs else " s1")
        rows.append([label, "x".join(map(str, shape)), f"{std:g}", *agreement(x, got, ref),
                     f"{1e3 * t_np:.2f}", f"{1e3 * t_nat:.2f}", f"{1e3 * t_ort:.2f}",
                     f"{t_np / t_nat:.1f}x", f"{t_nat / t_ort:.2f}"])
    print("\nfloat kernels, one thread, native path " + native_float.kernels())
    print_table(["op", "shape", "std", "identical %", "max ulp", "numpy ms", "native ms", "ORT ms",
                 "speedup", "native/ORT"], rows)


def bench_thresholds() -> None:
    rng = np.random.default_rng(0)
    sizes = [1, 4, 16, 64, 256, 1024, 4096]
    rows = []
    saved, native_float.MIN_SIZE = native_float.MIN_SIZE, 1
    try:
        for op, attrs, _shape, _std in OP_CASES:
            fn = FLOAT_OPS[op]
            cells = []
            for n in sizes:
                side = max(1, int(round(np.sqrt(n))))
                x = (rng.standard_normal((1, 1, side, side) if "kernel_shape" in attrs
                                         else (n,)) * 3).astype(np.float32)
                with native_float.disabled():
                    t_np = median_seconds(partial(fn, x, **attrs), repeats=200, budget=0.2)
                t_nat = median_seconds(partial(fn, x, **attrs), repeats=200, budget=0.2)
                cells.append(f"{t_np / t_nat:.1f}")
            rows.append([op + ("(tanh)" if attrs.get("approximate") == "tanh" else ""), *cells])
    finally:
        native_float.MIN_SIZE = saved
    print("\nnumpy time / native time by element count (> 1: native pays)")
    print_table(["op", *map(str, sizes)], rows)


def qdq_file(name: str, work: Path) -> Path:
    """The lowp QDQ file of corpus model `name`, quantized once (calibration as the corpus)."""
    from evals.corpus.models import BY_NAME, load_float, make_feeds

    import lowp

    path = work / f"{name}.lowp.qdq.onnx"
    if not path.exists():
        m = BY_NAME[name]
        calib = make_feeds(m, max(16, m.batch), seed=0)
        work.mkdir(parents=True, exist_ok=True)
        onnx.save(lowp.quantize_model(load_float(m), calib), str(path))
    return path


def model_feeds(name: str, size: int | None) -> dict[str, np.ndarray]:
    from evals.corpus.models import BY_NAME, make_feeds

    m = BY_NAME[name]
    feeds = make_feeds(m, m.batch, seed=1)
    if size and name != "vit_s_focus":   # the detectors take any page size
        key, x = next(iter(feeds.items()))
        feeds = {key: np.random.default_rng(1).standard_normal(
            x.shape[:2] + (size, size)).astype(np.float32)}
    return feeds


def bench_models(names: list[str], size: int | None, work: Path, repeats: int) -> None:
    import lowp

    rows = []
    for name in names:
        path = qdq_file(name, work)
        feeds = model_feeds(name, size)
        session = lowp.Session(str(path), threads=1)
        with native_float.disabled():
            ref = session.run(feeds)
        got = session.run(feeds)
        same = np.mean([np.mean(got[k] == ref[k]) for k in ref])
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        ort_s = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

        def numpy_glue(session: Any = session, feeds: dict[str, np.ndarray] = feeds) -> None:
            with native_float.disabled():
                session.run(feeds)

        t_off, t_on, t_ort = interleaved_ms(
            [numpy_glue, partial(session.run, feeds), partial(ort_s.run, None, feeds)],
            repeats, budget=60)
        shape = "x".join(map(str, next(iter(feeds.values())).shape))
        rows.append([name, shape, f"{100 * same:.3f}%", f"{t_off:.1f}", f"{t_on:.1f}",
                     f"{t_ort:.1f}", f"{t_off / t_on:.2f}x", f"{t_off / t_ort:.2f}",
                     f"{t_on / t_ort:.2f}"])
    print("\nwhole models (lowp QDQ files), one thread")
    print_table(["model", "input", "identical", "numpy glue ms", "native glue ms", "ORT ms",
                 "speedup", "before/ORT", "after/ORT"], rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("parts", nargs="*", default=["ops", "thresholds", "models"],
                   choices=["ops", "thresholds", "models"])
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--size", type=int, default=None,
                   help="page side for the detectors (default: the corpus input)")
    p.add_argument("--work", type=Path, default=Path("/tmp/lowp_float_glue"))
    p.add_argument("--repeats", type=int, default=7, help="timed rounds per model")
    args = p.parse_args()
    if native_float.kernels() == "none":
        raise SystemExit("the extension has no float kernels: rebuild with pip install -e .")
    with threadpool_limits(limits=1):
        if "ops" in args.parts:
            bench_ops()
        if "thresholds" in args.parts:
            bench_thresholds()
        if "models" in args.parts:
            bench_models(args.models, args.size, args.work, args.repeats)


if __name__ == "__main__":
    main()
