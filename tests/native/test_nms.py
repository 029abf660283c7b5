"""The native NonMaxSuppression (docs/operators.md (O242), (O243), (O313)) selects exactly
the rows of its numpy reference, lowp.runtime.float_detection.NonMaxSuppression with the
native kernels off, on every instruction-set path and at 1 and 2 threads: drawn boxes and
scores with ties, NaN and infinite values, equal and empty boxes, empty batches; and a
detector-sized node equals ONNX Runtime."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowp.runtime import native_backend, native_float
from lowp.runtime.float_registry import FLOAT_OPS
from tests.runtime.node_agreement import assert_node_agrees

PATHS = native_backend.available_paths()
pytestmark = pytest.mark.skipif(native_float.kernels() == "none",
                                reason="the extension has no float kernels")
NMS = FLOAT_OPS["NonMaxSuppression"]


def _inputs(boxes: np.ndarray, scores: np.ndarray, limit: int | None, iou: float | None,
            floor: float | None) -> list[np.ndarray | None]:
    """The node's inputs, an omitted one None, none after the last given one."""
    inputs: list[np.ndarray | None] = [
        boxes, scores, None if limit is None else np.array([limit], np.int64),
        None if iou is None else np.array([iou], np.float32),
        None if floor is None else np.array([floor], np.float32)]
    while inputs[-1] is None:
        inputs.pop()
    return inputs


def _same(inputs: list[np.ndarray | None], cpb: int, path: str, threads: int,
          expect_native: bool = True) -> np.ndarray:
    """The native rows equal the numpy reference's; returns them."""
    with native_float.disabled():
        want = NMS(*inputs, center_point_box=cpb, opset=11)
    with native_backend.use_path(path), native_float.threads(threads):
        got = NMS(*inputs, center_point_box=cpb, opset=11)
        given = [*inputs[2:], None, None, None]
        limit = 0 if given[0] is None else int(given[0][0])
        iou = np.float32(0 if given[1] is None else given[1][0])
        floor = None if given[2] is None else np.float32(given[2][0])
        direct = native_float.non_max_suppression(inputs[0], inputs[1], max(limit, 0), iou,
                                                  floor, cpb)
    assert got.dtype == np.int64 and got.shape == want.shape, (got, want)
    np.testing.assert_array_equal(got, want)
    if expect_native and inputs[1] is not None and inputs[1].size and limit > 0:
        assert direct is not None
        np.testing.assert_array_equal(direct, want)
    return want


def _boxes(rng: np.random.Generator, shape: tuple[int, int], kind: str) -> np.ndarray:
    """(batches, n, 4) boxes: spread out, on a coarse grid (equal, touching and empty
    boxes), or with NaN and infinite coordinates among them."""
    if kind == "spread":
        return rng.uniform(-2, 30, (*shape, 4)).astype(np.float32)
    b = rng.integers(0, 7, (*shape, 4)).astype(np.float32)
    if kind == "specials":
        pick = rng.random(b.shape)
        b[pick < 0.06] = np.nan
        b[(pick >= 0.06) & (pick < 0.09)] = np.inf
        b[(pick >= 0.09) & (pick < 0.11)] = -np.inf
        b[(pick >= 0.11) & (pick < 0.14)] = np.float32(-0.0)
    return b


def _scores(rng: np.random.Generator, shape: tuple[int, int, int], nans: bool) -> np.ndarray:
    """Scores from a few values (many ties), some NaN when `nans`."""
    s = rng.choice(np.array([0.0, 0.1, 0.25, 0.5, 0.5, 0.9, 1.0, -0.3], np.float32), shape)
    if nans:
        s[rng.random(shape) < 0.2] = np.nan
    return s


@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31), batches=st.integers(0, 2), classes=st.integers(0, 3),
       n=st.integers(0, 60), kind=st.sampled_from(["spread", "grid", "specials"]),
       nans=st.booleans(), limit=st.sampled_from([None, -1, 0, 1, 3, 17, 40, 2**62]),
       iou=st.sampled_from([None, 0.0, 0.3, 1 / 3, 0.5, 1.0]),
       floor=st.sampled_from([None, 0.0, 0.25, -1.0, float("nan")]),
       cpb=st.integers(0, 1), threads=st.sampled_from([1, 2]))
def test_native_nms_equals_its_numpy_form(path, seed, batches, classes, n, kind, nans, limit,
                                          iou, floor, cpb, threads):
    rng = np.random.default_rng(seed)
    boxes = _boxes(rng, (batches, n), kind)
    scores = _scores(rng, (batches, classes, n), nans)
    _same(_inputs(boxes, scores, limit, iou, floor), cpb, path, threads)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("cpb", [0, 1])
def test_crowded_boxes_many_kept(path: str, cpb: int) -> None:
    # hundreds of kept boxes (the vector paths' blocks of 8 and 16 and their remainders),
    # crowded so that most candidates meet a kept box late in the list; ties and NaNs
    rng = np.random.default_rng(5 + cpb)
    centers = rng.uniform(0, 200, (2, 1500, 2))
    boxes = np.concatenate([centers, rng.uniform(1, 12, (2, 1500, 2))], -1).astype(np.float32)
    if cpb == 0:
        boxes = np.concatenate([centers - 3, centers + 3], -1).astype(np.float32)
    scores = np.round(rng.random((2, 3, 1500)) * 50).astype(np.float32) / 50
    scores[0, 1, ::7] = np.nan
    for limit in (1, 15, 16, 17, 300, 5000):
        for threads in (1, 2):
            rows = _same(_inputs(boxes, scores, limit, 0.3, None), cpb, path, threads)
            assert len(rows) > min(limit, 100) or limit == 1


@pytest.mark.parametrize("path", PATHS)
def test_equal_boxes_and_empty_ones(path: str) -> None:
    # identical boxes (IoU 1: suppressed unless the threshold is 1), empty and negative-area
    # boxes (never suppressed, never suppressing), and a box overlapping one exactly at the
    # threshold
    boxes = np.array([[[0, 0, 2, 2], [0, 0, 2, 2], [1, 1, 1, 1], [1, 1, 1, 1], [2, 2, 0, 0],
                       [0, 0, 2, 1], [5, 5, 5, 9]]], np.float32)
    scores = np.array([[[0.9, 0.9, 0.8, 0.8, 0.7, 0.6, 0.5]]], np.float32)
    for iou in (0.0, 0.5, 1.0):
        for cpb in (0, 1):
            _same(_inputs(boxes, scores, 10, iou, None), cpb, path, 1)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("cpb", [0, 1])
def test_overlap_exactly_at_the_threshold(path: str, cpb: int) -> None:
    # 40 disjoint 2 x 1 boxes kept first, then a 1 x 1 box inside each (IoU exactly 0.5
    # with its own, 0 with the others): kept at threshold 0.5 (the test is IoU >
    # threshold), suppressed below it; every candidate meets all 40 kept boxes (vector
    # blocks and their remainder), its own one in any block
    k = np.arange(40, dtype=np.float32)
    order = np.random.default_rng(cpb).permutation(40)
    wide = np.stack([3 * k, k * 0, 3 * k + 1, k * 0 + 2], -1)       # y1 x1 y2 x2
    unit = np.stack([3 * k, k * 0, 3 * k + 1, k * 0 + 1], -1)[order]
    boxes = np.concatenate([wide, unit])[None].astype(np.float32)
    if cpb:                                           # the same boxes as centre and size
        y1, x1, y2, x2 = (boxes[..., i] for i in range(4))
        boxes = np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], -1)
    scores = np.linspace(1, 0.1, 80, dtype=np.float32)[None, None]
    for iou, kept in ((0.5, 80), (np.nextafter(np.float32(0.5), np.float32(0)), 40)):
        for threads in (1, 2):
            rows = _same(_inputs(boxes, scores, 100, float(iou), None), cpb, path, threads)
            assert len(rows) == kept


def test_empty_inputs_stay_numpy() -> None:
    # no batch, no class or no box: nothing to select, an empty (0, 3) result either way
    for shape in ((0, 2, 5), (1, 0, 5), (1, 2, 0)):
        boxes = np.zeros((shape[0], shape[2], 4), np.float32)
        scores = np.zeros(shape, np.float32)
        rows = _same(_inputs(boxes, scores, 5, 0.5, None), 0, PATHS[0], 1)
        assert rows.shape == (0, 3)


@pytest.mark.parametrize("cpb", [0, 1])
def test_detector_head_equals_onnxruntime(cpb: int) -> None:
    # a YOLO-style head, 2 images x 6 classes x 2000 boxes around 25 objects, score
    # threshold, 100 a class; one class's scores partly NaN (ONNX Runtime's heap order)
    rng = np.random.default_rng(cpb)
    objects = rng.uniform(0, 640, (25, 2))
    pick = rng.integers(0, 25, (2, 2000))
    c = objects[pick] + rng.normal(0, 5, (2, 2000, 2))
    wh = rng.uniform(10, 120, (2, 2000, 2))
    boxes = np.concatenate([c, wh] if cpb else [c - wh / 2, c + wh / 2], -1)
    scores = 1 / (1 + np.exp(-rng.normal(-3, 2.5, (2, 6, 2000))))
    scores[1, 2, rng.random(2000) < 0.05] = np.nan
    attrs: dict[str, Any] = {"center_point_box": cpb}
    inputs: list[np.ndarray | None] = [
        boxes.astype(np.float32), scores.astype(np.float32), np.array([100], np.int64),
        np.array([0.45], np.float32), np.array([0.2], np.float32)]
    want = assert_node_agrees("NonMaxSuppression", inputs, attrs, 11)
    assert len(want) > 100
    inputs[4] = None                                 # every box a candidate, NaNs included
    assert_node_agrees("NonMaxSuppression", inputs, attrs, 11)
