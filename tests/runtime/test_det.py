"""Det gives ONNX Runtime's determinants bit for bit on both backends at 1 and 2 threads
(docs/operators.md (O264)): Eigen's partial-pivoting LU of each matrix (first largest
magnitude as pivot, division by it, the outer-product update, the diagonal's product left to
right), zero pivots, NaNs and infinities included; float16 as float32 between casts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lowp
from lowp.errors import UnsupportedOpError
from lowp.runtime.float_data_ops import DET_UNBLOCKED_SIZE

from .one_node import assert_backends_give_onnxruntimes_bits, one_node_model


def _check(x: np.ndarray) -> None:
    feeds = {"x": x}
    assert_backends_give_onnxruntimes_bits(one_node_model("Det", feeds), feeds)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, DET_UNBLOCKED_SIZE), batch=st.lists(st.integers(0, 3), max_size=2),
       kind=st.sampled_from(["normal", "small integers", "specials"]),
       dtype=st.sampled_from([np.float32, np.float16]), seed=st.integers(0, 2**32 - 1))
def test_matrices(n: int, batch: list[int], kind: str, dtype: type, seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = [*batch, n, n]
    if kind == "small integers":        # ties between pivots, zero pivots, exact zeros
        x = rng.integers(-2, 3, shape).astype(np.float32)
    else:
        x = rng.standard_normal(shape).astype(np.float32)
    if kind == "specials":
        x[rng.random(shape) < 0.05] = np.nan
        x[rng.random(shape) < 0.05] = np.inf
        x[rng.random(shape) < 0.1] = -0.0
    _check(x.astype(dtype))


def test_a_singular_matrix_and_a_nan_pivot() -> None:
    x = np.array([[[1, 2, 3], [2, 4, 6], [1, 0, 1]],
                  [[np.nan, 1, 2], [3, 4, 5], [6, 7, 9]],
                  [[0, 1, 2], [0, 4, 5], [0, 7, 9]]], np.float32)
    _check(x)


def test_larger_matrices_are_refused() -> None:
    n = DET_UNBLOCKED_SIZE + 1
    feeds = {"x": np.eye(n, dtype=np.float32)}
    session = lowp.Session(one_node_model("Det", feeds), backend="reference")
    with pytest.raises(UnsupportedOpError, match="Det"):
        session.run(feeds)
