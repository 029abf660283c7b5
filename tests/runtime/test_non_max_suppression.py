"""NonMaxSuppression gives ONNX Runtime's selected indices (docs/operators.md (O242),
(O243)): its IoU arithmetic, boxes taken by descending score and equal scores by ascending
index, NaN scores placed where its heap puts them; drawn batches, classes, box formats and
optional inputs, both backends at 1 and 2 threads."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowp.errors import NodeError
from lowp.runtime import float_detection
from lowp.runtime.float_ops import FLOAT_OPS

from .node_agreement import assert_node_agrees


def _limit(n: int) -> np.ndarray:
    return np.array([n], np.int64)


def _scalar(v: float) -> np.ndarray:
    return np.array([v], np.float32)


def test_equal_scores_by_ascending_index() -> None:
    # (a heap with score alone as its order would pop 0 6 3 2 5 8 7 4 1)
    boxes = np.array([[[0, 2 * i, 1, 2 * i + 1] for i in range(9)]], np.float32)
    scores = np.full((1, 1, 9), 0.5, np.float32)
    scores[0, 0, ::3] = 0.7
    want = assert_node_agrees("NonMaxSuppression", [boxes, scores, _limit(100)], {}, 11)
    assert want[:, 2].tolist() == [0, 3, 6, 1, 2, 4, 5, 7, 8]


def test_nan_scores_follow_the_heap() -> None:
    boxes = np.array([[[0, 2 * i, 1, 2 * i + 1] for i in range(7)]], np.float32)
    scores = np.array([[[0.2, np.nan, 0.9, 0.4, np.nan, 0.9, 0.1]]], np.float32)
    assert_node_agrees("NonMaxSuppression", [boxes, scores, _limit(10)], {}, 11)


@pytest.mark.parametrize("center_point_box", [0, 1])
def test_overlapping_boxes_suppressed(center_point_box: int) -> None:
    boxes = np.array([[[0, 0, 1, 1], [0, 0.1, 1, 1.1], [0, -0.1, 1, 0.9], [0, 10, 1, 11],
                       [0, 10.1, 1, 11.1], [0, 100, 1, 101]]], np.float32)
    scores = np.array([[[0.9, 0.75, 0.6, 0.95, 0.5, 0.3]]], np.float32)
    want = assert_node_agrees(
        "NonMaxSuppression", [boxes, scores, _limit(3), _scalar(0.5), _scalar(0.0)],
        {"center_point_box": center_point_box}, 11)
    assert len(want) >= 1


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_drawn_suppressions_equal_onnxruntime(data: st.DataObject) -> None:
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    batches, classes = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3))
    n = data.draw(st.integers(0, 24))
    boxes = rng.uniform(0, 8, (batches, n, 4)).astype(np.float32)
    scores = rng.uniform(0, 1, (batches, classes, n)).astype(np.float32)
    if data.draw(st.booleans()):                 # equal scores and touching boxes
        boxes, scores = np.round(boxes), np.round(scores * 4) / 4
    if data.draw(st.booleans()):
        scores[rng.random(scores.shape) < 0.1] = np.nan
        boxes[rng.random(boxes.shape) < 0.05] = np.nan
    inputs: list[np.ndarray | None] = [boxes, scores]
    optional = data.draw(st.integers(0, 3))
    if optional >= 1:
        inputs.append(_limit(data.draw(st.integers(-1, 8))))
    if optional >= 2:
        inputs.append(_scalar(data.draw(st.sampled_from([0.0, 0.3, 0.5, 1.0]))))
    if optional >= 3:
        inputs.append(_scalar(data.draw(st.sampled_from([0.0, 0.25, 0.6, float("nan")]))))
    assert_node_agrees("NonMaxSuppression", inputs,
                       {"center_point_box": data.draw(st.integers(0, 1))}, 11)


@pytest.mark.parametrize("chunk", [1, 3, 256])
def test_candidate_chunks_keep_the_order(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # candidates are weighed in chunks against the kept boxes and each other: any chunk
    # length gives the one-at-a-time selection (300 crowded boxes, 2 classes)
    monkeypatch.setattr(float_detection, "_NMS_CHUNK", chunk)
    rng = np.random.default_rng(11)
    centers = rng.uniform(0, 40, (1, 300, 2))
    boxes = np.concatenate([centers, rng.uniform(2, 9, (1, 300, 2))], -1).astype(np.float32)
    scores = np.round(rng.random((1, 2, 300)) * 20).astype(np.float32) / 20
    assert_node_agrees("NonMaxSuppression", [boxes, scores, _limit(60), _scalar(0.3)],
                       {"center_point_box": 1}, 11)


@pytest.mark.parametrize(("inputs", "match"), [
    ([np.zeros((1, 2, 3), np.float32), np.zeros((1, 1, 2), np.float32)], "must be"),
    ([np.zeros((1, 2, 4), np.float32), np.zeros((1, 1, 3), np.float32)], "must be"),
    ([np.zeros((1, 2, 4), np.float32), np.zeros((1, 1, 2), np.float32), _limit(1),
      _scalar(1.5)], "iou_threshold"),
])
def test_bad_inputs_raise(inputs: list[np.ndarray], match: str) -> None:
    with pytest.raises(NodeError, match=match):
        FLOAT_OPS["NonMaxSuppression"](*inputs, opset=11)
