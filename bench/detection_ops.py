"""Detection and geometry float ops (NonMaxSuppression, RoiAlign, GridSample) on the shapes
detectors run them at: lowp natively, its numpy reference and ONNX Runtime's CPU kernel.

    python bench/detection_ops.py [--cases nms_80x8400_t25_k100_c0 ...] [--threads 1]
                                  [--rounds 9] [--list]

For each case and thread count, after warm-up, `--rounds` rounds run lowp's operator (the
float op of lowp.runtime.float_detection, which calls its native kernel where there is
one), the same operator with the native kernels off (`native_float.disabled()`: the numpy
reference) and ONNX Runtime's one-node model in turn, timed on the process CPU clock;
printed: the medians in ms, the ratios lowp / ONNX Runtime and numpy / ONNX Runtime, and
whether the three outputs are the same bytes. Where an op has no native kernel the first
two columns time the same code.

Cases: NonMaxSuppression of a YOLOv8 head (1 x 80 classes x 8400 boxes) and of a YOLOv5
class-agnostic one (1 x 1 x 25200), score threshold 0.25 (and 0.001, COCO evaluation's),
100 or 300 boxes a class, corners (center_point_box 0) or centres (1), boxes jittered
around 40 objects so that suppression happens; RoiAlign of Mask R-CNN's box head (1000
proposals on the stride-4 FPN map 1 x 256 x 200 x 272, 7 x 7, sampling_ratio 2,
output_half_pixel as torchvision's aligned=False exports) and mask head (100 detections,
14 x 14), and of a ppocr-style text-line crop (half_pixel, 32 x 128 bins, adaptive
sampling); GridSample bilinear and nearest on a 1 x 32 x 128 x 128 map (zeros padding,
and border).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from onnx import helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import print_table, wall_and_cpu  # noqa: E402

from lowp.runtime import native_float  # noqa: E402
from lowp.runtime.float_registry import FLOAT_OPS  # noqa: E402

Case = tuple[str, list[np.ndarray], dict[str, Any], int]


def _detections(rng: np.random.Generator, boxes: int, classes: int,
                centers: bool) -> tuple[np.ndarray, np.ndarray]:
    """(1, boxes, 4) boxes jittered around 40 objects (x1 y1 x2 y2 corners, or xc yc w h)
    and (1, classes, boxes) sigmoid scores, most of them small as a detector's are."""
    objects = rng.uniform(0, 640, (40, 2))
    sizes = rng.uniform(8, 200, (40, 2))
    pick = rng.integers(0, 40, boxes)
    c = objects[pick] + rng.normal(0, 6, (boxes, 2))
    wh = sizes[pick] * rng.uniform(0.8, 1.25, (boxes, 2))
    b = np.concatenate([c, wh] if centers else [c - wh / 2, c + wh / 2], axis=1)
    logits = rng.normal(-6, 2.5, (classes, boxes))
    scores = 1 / (1 + np.exp(-logits))
    return b[None].astype(np.float32), scores[None].astype(np.float32)


def _nms(boxes: int, classes: int, threshold: float, limit: int, cpb: int) -> Case:
    rng = np.random.default_rng(boxes + classes + cpb)
    b, s = _detections(rng, boxes, classes, bool(cpb))
    name = f"nms_{classes}x{boxes}_t{threshold:g}_k{limit}_c{cpb}".replace("0.", "")
    inputs = [b, s, np.array([limit], np.int64), np.array([0.45], np.float32),
              np.array([threshold], np.float32)]
    return name, inputs, {"center_point_box": cpb}, 11


def _roi_align(name: str, x_shape: tuple[int, ...], rois: int, out: int, sampling: int,
               scale: float, mode: str, image: tuple[float, float]) -> Case:
    rng = np.random.default_rng(rois)
    x = rng.standard_normal(x_shape).astype(np.float32)
    lo = rng.uniform(0, 0.8, (rois, 2)) * image
    size = rng.uniform(0.05, 0.5, (rois, 2)) * image
    r = np.concatenate([lo, np.minimum(lo + size, image)], axis=1).astype(np.float32)
    attrs = {"output_height": out, "output_width": out, "sampling_ratio": sampling,
             "spatial_scale": scale, "coordinate_transformation_mode": mode}
    return name, [x, r, np.zeros(rois, np.int64)], attrs, 16


def _grid_sample(mode: str, padding: str) -> Case:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 32, 128, 128)).astype(np.float32)
    # a smooth warp of the identity grid, a little of it outside [-1, 1]
    g = np.stack(np.meshgrid(np.linspace(-1, 1, 128), np.linspace(-1, 1, 128))[::1], -1)
    g = g * 1.05 + 0.05 * np.sin(3 * g[..., ::-1])
    grid = g[None].astype(np.float32)
    return (f"grid_{mode}_{padding}", [x, grid],
            {"mode": mode, "padding_mode": padding, "align_corners": 0}, 16)


def cases() -> list[Case]:
    return [
        _nms(8400, 80, 0.25, 100, 0), _nms(8400, 80, 0.25, 100, 1),
        _nms(8400, 80, 0.25, 300, 0), _nms(8400, 80, 0.001, 300, 1),
        _nms(25200, 1, 0.25, 300, 1), _nms(25200, 1, 0.25, 100, 0),
        _nms(25200, 1, 0.001, 300, 1),
        _roi_align("roi_maskrcnn_box", (1, 256, 200, 272), 1000, 7, 2, 0.25,
                   "output_half_pixel", (1088.0, 800.0)),
        _roi_align("roi_maskrcnn_mask", (1, 256, 200, 272), 100, 14, 2, 0.25,
                   "output_half_pixel", (1088.0, 800.0)),
        _roi_align("roi_textline", (1, 64, 160, 160), 64, 32, 0, 0.25, "half_pixel",
                   (640.0, 640.0)),
        _grid_sample("bilinear", "zeros"), _grid_sample("nearest", "zeros"),
        _grid_sample("bilinear", "border"),
    ]


def _op(case: Case) -> str:
    return {"nms": "NonMaxSuppression", "roi": "RoiAlign", "grid": "GridSample"}[
        case[0].split("_")[0]]


def _session(op: str, inputs: list[np.ndarray], attrs: dict[str, Any], opset: int,
             threads: int) -> ort.InferenceSession:
    names = [f"in{i}" for i in range(len(inputs))]
    graph = helper.make_graph(
        [helper.make_node(op, names, ["y"], **attrs)], "g",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(x.dtype), x.shape)
         for n, x in zip(names, inputs, strict=True)],
        [helper.make_empty_tensor_value_info("y")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def _row(case: Case, threads: int, rounds: int) -> list[object]:
    """Median CPU ms of lowp, the numpy reference and ONNX Runtime on one case."""
    name, inputs, attrs, opset = case
    op = _op(case)
    fn = FLOAT_OPS[op]
    session = _session(op, inputs, attrs, opset, threads)
    feeds = {f"in{i}": x for i, x in enumerate(inputs)}

    def lowp() -> np.ndarray:
        with native_float.threads(threads):
            return np.asarray(fn(*inputs, **attrs, opset=opset))

    def numpy() -> np.ndarray:
        with native_float.disabled():
            return np.asarray(fn(*inputs, **attrs, opset=opset))

    def onnxruntime() -> np.ndarray:
        return np.asarray(session.run(None, feeds)[0])

    runs: list[Callable[[], np.ndarray]] = [lowp, numpy, onnxruntime]
    _, cpu, outs = wall_and_cpu(runs, rounds, warmup=2)
    ms = [statistics.median(c) * 1e3 for c in cpu]
    same = all(o.dtype == outs[2].dtype and o.shape == outs[2].shape
               and o.tobytes() == outs[2].tobytes() for o in outs[:2])
    return [name, threads, list(outs[2].shape), f"{ms[0]:.3f}", f"{ms[1]:.3f}",
            f"{ms[2]:.3f}", f"{ms[0] / ms[2]:.2f}", f"{ms[1] / ms[2]:.2f}",
            "yes" if same else "NO"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", nargs="+", help="case names (default: all; --list)")
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--list", action="store_true", help="print the case names and stop")
    args = p.parse_args()
    chosen = cases()
    if args.list:
        print("\n".join(c[0] for c in chosen))
        return
    if args.cases:
        known = {c[0] for c in chosen}
        unknown = sorted(set(args.cases) - known)
        if unknown:
            p.error(f"unknown cases {unknown}; --list shows them")
        chosen = [c for c in chosen if c[0] in args.cases]
    rows = [_row(case, threads, args.rounds) for case in chosen for threads in args.threads]
    print_table(["case", "threads", "output", "lowp ms", "numpy ms", "ORT ms", "lowp / ORT",
                 "numpy / ORT", "same bytes"], rows)


if __name__ == "__main__":
    main()
