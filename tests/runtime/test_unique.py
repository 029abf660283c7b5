"""Unique gives ONNX Runtime's four outputs bit for bit on both backends at 1 and 2 threads
(docs/operators.md (O262)): sorted and in order of appearance, flattened and along an axis,
-0 and 0 as one value (the first kept), and NaNs, which ONNX Runtime's ordered map files
under whichever key its search meets (lowp.runtime.ordered_map)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowp.runtime.float_registry import FLOAT_OPS

from .one_node import assert_backends_give_onnxruntimes_bits, one_node_model


def _check(x: np.ndarray, **attrs: int) -> list[np.ndarray]:
    feeds = {"x": x}
    return assert_backends_give_onnxruntimes_bits(
        one_node_model("Unique", feeds, n_out=4, **attrs), feeds)


def test_nans_join_the_key_the_search_meets() -> None:
    # ONNX Runtime counts both NaNs as 1s (the map's smallest key when they come); a NaN
    # is not a unique value of its own as numpy.unique makes it
    x = np.array([1, np.nan, 2, np.nan, -0.0, 0.0, 1], np.float32)
    y, first, inverse, counts = _check(x)
    assert y.tolist() == [0.0, 1.0, 2.0] and np.signbit(y[0])
    assert counts.tolist() == [2, 4, 1] and first.tolist() == [4, 0, 2]
    assert inverse.tolist() == [1, 1, 2, 1, 0, 0, 1]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 40), nan_share=st.sampled_from([0.0, 0.2, 0.6]),
       sorted_=st.integers(0, 1), dtype=st.sampled_from([np.float32, np.float64, np.float16]),
       seed=st.integers(0, 2**32 - 1))
def test_flattened(n: int, nan_share: float, sorted_: int, dtype: type, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.integers(-6, 6, n).astype(dtype)
    x[rng.random(n) < 0.2] = -0.0
    x[rng.random(n) < nan_share] = np.nan
    _check(x.reshape(-1, 1) if n % 2 else x, sorted=sorted_)


@pytest.mark.parametrize("dtype", [np.int64, np.int8])
@pytest.mark.parametrize("sorted_", [0, 1])
def test_integers(dtype: type, sorted_: int) -> None:
    x = np.random.default_rng(3).integers(-100, 100, (6, 7)).astype(dtype)
    _check(x, sorted=sorted_)


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=3), data=st.data(),
       nans=st.integers(0, 3), sorted_=st.integers(0, 1), seed=st.integers(0, 2**32 - 1))
def test_along_an_axis(shape: list[int], data: st.DataObject, nans: int, sorted_: int,
                       seed: int) -> None:
    """Slices compared as std::vectors (lexicographically by <), NaNs among them too."""
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, shape).astype(np.float32)
    x.reshape(-1)[rng.integers(0, x.size, nans)] = np.nan
    _check(x, sorted=sorted_, axis=axis)


def test_an_empty_axis() -> None:
    _check(np.zeros((3, 0, 2), np.float32), axis=1)


def test_empty_slices_along_a_full_axis_are_one() -> None:
    # (ONNX Runtime 1.32 aborts the process on this input: no comparison with it)
    y, first, inverse, counts = FLOAT_OPS["Unique"](np.zeros((3, 0, 2), np.float32), axis=0)
    assert y.shape == (1, 0, 2) and first.tolist() == [0]
    assert inverse.tolist() == [0, 0, 0] and counts.tolist() == [3]
