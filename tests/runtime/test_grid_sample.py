"""GridSample gives ONNX Runtime's bytes (docs/operators.md (O246), (O247)): opset 16's
bilinear / nearest / bicubic and opset 20's linear / nearest / cubic, zeros / border /
reflection padding, align_corners, 4-D and (linear, nearest) 5-D inputs, float32 and
(opset 20 on) float64; drawn shapes and grids, both backends at 1 and 2 threads."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowp.errors import NodeError, UnsupportedOpError
from lowp.runtime.float_ops import FLOAT_OPS

from .node_agreement import assert_node_agrees


@pytest.mark.parametrize("mode", ["linear", "nearest", "cubic"])
def test_reflection_of_a_length_one_axis(mode: str) -> None:
    # align_corners maps every position of a length-1 axis to its one entry; its
    # neighbours reflect onto it too (the other channels' NaNs are never read)
    x = np.full((1, 3, 1, 3), np.nan, np.float32)
    x[0, 1] = [[1, 2, 3]]
    grid = np.array([[[[-1, -1], [0.3, 1.0], [1, 0.7], [-0.9, 0.2]]]], np.float32)
    want = assert_node_agrees("GridSample", [x, grid], {
        "mode": mode, "padding_mode": "reflection", "align_corners": 1}, 20)
    assert not np.isnan(want[0, 1]).any()


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_drawn_grids_equal_onnxruntime(data: st.DataObject) -> None:
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    opset = data.draw(st.sampled_from([16, 20, 22]))
    dtype = np.float32 if opset < 20 else data.draw(st.sampled_from([np.float32,
                                                                       np.float64]))
    rank = 3 if opset >= 20 and data.draw(st.booleans()) else 2
    n, c = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3))
    sizes = [data.draw(st.integers(1, 5)) for _ in range(rank)]
    out = [data.draw(st.integers(0 if rank == 2 else 1, 4)) for _ in range(rank)]
    x = rng.standard_normal((n, c, *sizes)).astype(dtype)
    if data.draw(st.booleans()):
        x[rng.random(x.shape) < 0.1] = np.nan
    grid = rng.uniform(-1.3, 1.3, (n, *out, rank)).astype(dtype)
    if data.draw(st.booleans()):                # sample positions on the pixels
        grid = np.round(grid * 4) / 4
    modes = ["bilinear", "nearest", "bicubic"] if opset < 20 else ["linear", "nearest",
                                                                   "cubic"]
    attrs = {"mode": data.draw(st.sampled_from(modes[:2] if rank == 3 else modes)),
             "padding_mode": data.draw(st.sampled_from(["zeros", "border", "reflection"])),
             "align_corners": data.draw(st.integers(0, 1))}
    assert_node_agrees("GridSample", [x, grid], attrs, opset)


def payload_nans(rng: np.random.Generator, shape: tuple[int, ...],
                  dtype: type) -> np.ndarray:
    """Standard normal values, a third of them NaNs of distinct payloads and both signs,
    some infinities (an infinity times a zero weight: the default NaN)."""
    x = rng.standard_normal(shape).astype(dtype)
    u = rng.random(shape)
    nan = u < 0.33
    ints = np.uint32 if dtype == np.float32 else np.uint64
    quiet = 0x7FC00000 if dtype == np.float32 else 0x7FF8000000000000
    sign = 0x80000000 if dtype == np.float32 else 0x8000000000000000
    x.view(ints)[nan] = (quiet + 1 + rng.integers(0, 1 << 20, nan.sum())).astype(ints) | \
        np.where(rng.random(nan.sum()) < 0.5, sign, 0).astype(ints)
    x[(u >= 0.33) & (u < 0.4)] = np.inf
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rank,mode", [(3, "linear"), (2, "cubic")])
@pytest.mark.parametrize("seed", range(6))
def test_nan_payloads_of_3d_linear_and_cubic_sums_equal_onnxruntime(
        dtype: type, rank: int, mode: str, seed: int) -> None:
    """Where NaNs of different payloads meet, a 3-D linear sum hands on each addition's
    second operand's, a cubic sum each addition's by ONNX Runtime's compiled order
    (docs/operators.md (O354))."""
    rng = np.random.default_rng(seed)
    x = payload_nans(rng, (2, 3, *([4] * rank)), dtype)
    grid = rng.uniform(-1.2, 1.2, (2, 5, 6, *([3] if rank == 3 else []), rank)).astype(dtype)
    if seed % 2:                                # on the pixels: zero weights
        grid = np.round(grid * 4) / 4
    padding = ["zeros", "border", "reflection"][seed % 3]
    assert_node_agrees("GridSample", [x, grid], {"mode": mode, "padding_mode": padding,
                                                 "align_corners": seed % 2}, 20)


def test_nan_grid_is_refused() -> None:
    grid = np.array([[[[np.nan, 0.0]]]], np.float32)
    with pytest.raises(NodeError, match="NaN"):
        FLOAT_OPS["GridSample"](np.zeros((1, 1, 2, 2), np.float32), grid, opset=16)


def test_mode_names_follow_the_opset() -> None:
    x, grid = np.zeros((1, 1, 2, 2), np.float32), np.zeros((1, 1, 1, 2), np.float32)
    with pytest.raises(NodeError, match="mode 'linear'"):
        FLOAT_OPS["GridSample"](x, grid, mode="linear", opset=16)
    with pytest.raises(NodeError, match="cubic mode samples 4-D"):
        FLOAT_OPS["GridSample"](np.zeros((1, 1, 2, 2, 2), np.float32),
                                np.zeros((1, 1, 1, 1, 3), np.float32), mode="cubic",
                                opset=20)


def test_float64_before_opset_20_is_refused_as_onnxruntime_does() -> None:
    with pytest.raises(UnsupportedOpError, match="float32 only"):
        FLOAT_OPS["GridSample"](np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 1, 2)), opset=16)
