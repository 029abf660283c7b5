"""The native GridSample (2-D float32, linear and nearest, zeros and border padding:
docs/operators.md (O246), (O247), (O314)) equals its numpy reference,
lowp.runtime.float_detection.GridSample with the native kernels off, bit for bit at 1 and 2
threads (NaN, infinite and signed-zero inputs, positions on pixel centres and halves,
outside the image), refuses the grids the reference refuses, and a feature-map sized node
equals ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowp.errors import NodeError
from lowp.runtime import native_float
from lowp.runtime.float_registry import FLOAT_OPS
from tests.native.helpers import random_nans
from tests.runtime.node_agreement import assert_node_agrees

pytestmark = pytest.mark.skipif(native_float.kernels() == "none",
                                reason="the extension has no float kernels")
GRID_SAMPLE = FLOAT_OPS["GridSample"]


def _both(x: np.ndarray, grid: np.ndarray, attrs: dict[str, object], opset: int,
          threads: int) -> tuple[np.ndarray, np.ndarray]:
    with native_float.threads(threads):
        got = GRID_SAMPLE(x, grid, **attrs, opset=opset)
    with native_float.disabled():
        want = GRID_SAMPLE(x, grid, **attrs, opset=opset)
    return got, want


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 2), c=st.integers(1, 4),
       h=st.integers(1, 9), w=st.integers(1, 9), oh=st.integers(0, 7), ow=st.integers(1, 7),
       mode=st.sampled_from(["bilinear", "nearest"]), padding=st.sampled_from(["zeros",
                                                                              "border"]),
       align=st.integers(0, 1), snap=st.sampled_from([0, 2, 4, 8]),
       specials=st.booleans(), threads=st.sampled_from([1, 2]))
def test_native_grid_sample_equals_its_numpy_form(seed, n, c, h, w, oh, ow, mode, padding,
                                                  align, snap, specials, threads):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    if specials:
        pick = rng.random(x.shape)
        x[pick < 0.08] = random_nans(rng, int((pick < 0.08).sum()))
        x[(pick >= 0.08) & (pick < 0.12)] = np.inf
        x[(pick >= 0.12) & (pick < 0.16)] = -np.inf
        x[(pick >= 0.16) & (pick < 0.2)] = np.float32(-0.0)
    grid = rng.uniform(-1.4, 1.4, (n, oh, ow, 2)).astype(np.float32)
    if snap:                                  # on pixel centres, edges and halves
        grid = (np.round(grid * snap) / snap).astype(np.float32)
    attrs = {"mode": mode, "padding_mode": padding, "align_corners": align}
    got, want = _both(x, grid, attrs, 16, threads)
    assert got.dtype == np.float32 and got.shape == want.shape == (n, c, oh, ow)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    if oh:
        with native_float.threads(threads):
            assert native_float.grid_sample(x, grid, mode == "nearest", padding == "border",
                                            bool(align)) is not None


@pytest.mark.parametrize("align", [0, 1])
@pytest.mark.parametrize("padding", ["zeros", "border"])
def test_meeting_nans_as_onnxruntime(padding: str, align: int) -> None:
    # NaNs of other payloads and signs, infinities (a weight of 0 times one is x86's
    # default NaN) at positions on pixels and halves: where two NaNs meet in a sum the
    # first operand's is handed on, as in numpy and ONNX Runtime
    rng = np.random.default_rng(7 + align)
    x = rng.choice(np.array([np.inf, -np.inf, 1.0, -0.0, 2.5], np.float32), (1, 3, 4, 5))
    pick = rng.random(x.shape) < 0.35
    x[pick] = random_nans(rng, int(pick.sum()))
    grid = (np.round(rng.uniform(-1.2, 1.2, (1, 6, 7, 2)) * 3) / 3).astype(np.float32)
    attrs = {"mode": "bilinear", "padding_mode": padding, "align_corners": align}
    for threads in (1, 2):
        got, want = _both(x, grid, attrs, 16, threads)
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    assert_node_agrees("GridSample", [x, grid], attrs, 16)


@pytest.mark.parametrize("bad", [np.nan, np.inf, 3e19])
def test_wild_grids_refused(bad: float) -> None:
    # NaN, infinite and beyond-2**62 positions: the native call declines, the reference
    # raises its error
    x = np.ones((1, 2, 3, 3), np.float32)
    grid = np.zeros((1, 2, 2, 2), np.float32)
    grid[0, 1, 1, 0] = bad
    assert native_float.grid_sample(x, grid, False, False, False) is None
    with pytest.raises(NodeError, match="NaN, infinity"):
        GRID_SAMPLE(x, grid, mode="bilinear", opset=16)


@pytest.mark.parametrize(("mode", "padding", "align"), [
    ("bilinear", "zeros", 0), ("nearest", "zeros", 0), ("bilinear", "border", 0),
    ("bilinear", "zeros", 1), ("nearest", "border", 1)])
def test_feature_map_equals_onnxruntime(mode: str, padding: str, align: int) -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 32, 40, 48)).astype(np.float32)
    x[0, 3, 5:9, 7] = np.nan
    grid = rng.uniform(-1.1, 1.1, (1, 30, 36, 2)).astype(np.float32)
    assert_node_agrees("GridSample", [x, grid],
                       {"mode": mode, "padding_mode": padding, "align_corners": align}, 16)
