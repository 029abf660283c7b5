"""AffineGrid, MaxUnpool, Col2Im and CenterCropPad give ONNX Runtime's bytes
(docs/operators.md (O248), (O249)): AffineGrid's base grid and Eigen's sum order (float32
and float64, 2-D and 3-D), MaxUnpool's scatter with an output_shape or without, Col2Im's
row-ordered sums (ONNX Runtime's N-D form with dilations included), CenterCropPad's centred
crop and zero pad on any axes; drawn shapes and attributes, both backends at 1 and 2
threads."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowp.errors import NodeError
from lowp.runtime.float_ops import FLOAT_OPS

from .node_agreement import assert_node_agrees


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_drawn_affine_grids_equal_onnxruntime(data: st.DataObject) -> None:
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    rank, n = data.draw(st.integers(2, 3)), data.draw(st.integers(1, 2))
    sizes = [data.draw(st.integers(1, 9)) for _ in range(rank)]
    theta = rng.standard_normal((n, rank, rank + 1)).astype(dtype)
    if data.draw(st.booleans()):
        theta[rng.random(theta.shape) < 0.2] = np.nan
    assert_node_agrees("AffineGrid", [theta, np.array([n, 3, *sizes], np.int64)],
                       {"align_corners": data.draw(st.integers(0, 1))}, 20)


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_drawn_unpools_equal_onnxruntime(data: st.DataObject) -> None:
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    nd = data.draw(st.integers(1, 3))
    kernel = [data.draw(st.integers(1, 3)) for _ in range(nd)]
    strides = [data.draw(st.integers(1, 2)) for _ in range(nd)]
    pads = [data.draw(st.integers(0, kernel[a % nd] - 1)) for a in range(2 * nd)]
    pooled = [data.draw(st.integers(1, 3)) for _ in range(nd)]
    out = [(pooled[a] - 1) * strides[a] - pads[a] - pads[nd + a] + kernel[a]
           for a in range(nd)]
    if min(out) <= 0:
        return
    x = rng.standard_normal((data.draw(st.integers(1, 2)), 2, *pooled)).astype(np.float32)
    shape = [*x.shape[:2], *out]
    inputs: list[np.ndarray | None] = [x, rng.integers(0, int(np.prod(shape)), x.shape)]
    if data.draw(st.booleans()):
        inputs.append(np.array(shape[:2] + [v + data.draw(st.integers(0, 1))
                                            for v in out], np.int64))
    assert_node_agrees("MaxUnpool", inputs, {"kernel_shape": kernel, "strides": strides,
                                             "pads": pads},
                       data.draw(st.sampled_from([9, 11, 22])))


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_drawn_col2ims_equal_onnxruntime(data: st.DataObject) -> None:
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    nd = data.draw(st.sampled_from([1, 2, 2, 3]))
    kernel = [data.draw(st.integers(1, 3)) for _ in range(nd)]
    image = [data.draw(st.integers(1, 6)) for _ in range(nd)]
    strides = [data.draw(st.integers(1, 2)) for _ in range(nd)]
    dilations = [data.draw(st.integers(1, 2)) for _ in range(nd)]
    pads = [data.draw(st.integers(0, 1)) for _ in range(2 * nd)]
    blocks = [(image[a] + pads[a] + pads[nd + a] - dilations[a] * (kernel[a] - 1) - 1)
              // strides[a] + 1 for a in range(nd)]
    if min(blocks) <= 0:
        return
    col = rng.standard_normal((data.draw(st.integers(1, 2)),
                               data.draw(st.integers(1, 2)) * int(np.prod(kernel)),
                               int(np.prod(blocks)))).astype(np.float32)
    if data.draw(st.booleans()):
        col[rng.random(col.shape) < 0.1] = np.nan
        col[rng.random(col.shape) < 0.2] = -0.0
    assert_node_agrees("Col2Im", [col, np.array(image, np.int64), np.array(kernel, np.int64)],
                       {"strides": strides, "dilations": dilations, "pads": pads}, 18)


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_drawn_crops_and_pads_equal_onnxruntime(data: st.DataObject) -> None:
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    rank = data.draw(st.integers(1, 3))
    x = rng.standard_normal([data.draw(st.integers(1, 5)) for _ in range(rank)])
    x = x.astype(data.draw(st.sampled_from([np.float32, np.float64, np.int32])))
    attrs = {}
    axes = list(range(rank))
    if data.draw(st.booleans()):
        axes = data.draw(st.permutations(range(rank)))[:data.draw(st.integers(1, rank))]
        attrs["axes"] = [a - rank if data.draw(st.booleans()) else a for a in axes]
    shape = np.array([data.draw(st.integers(1, 7)) for _ in axes], np.int64)
    assert_node_agrees("CenterCropPad", [x, shape], attrs, 18)


def test_unpool_index_past_the_output_is_refused() -> None:
    with pytest.raises(NodeError, match="outside the output"):
        FLOAT_OPS["MaxUnpool"](np.ones((1, 1, 2), np.float32), np.array([[[0, 9]]]),
                               kernel_shape=[2], strides=[2], opset=11)


def test_col2im_block_count_must_fit() -> None:
    with pytest.raises(NodeError, match="blocks per column"):
        FLOAT_OPS["Col2Im"](np.ones((1, 1, 4), np.float32), np.array([4, 4]),
                            np.array([1, 1]), opset=18)
