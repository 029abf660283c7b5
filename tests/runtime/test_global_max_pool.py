"""Float32 GlobalMaxPool by ReduceMax's rule (docs/operators.md (O48b)): the maximum of the
set over the spatial axes, the default NaN when one is NaN and +0 over -0, on channels-first
and channels-last data, natively on every instruction-set path and in numpy alike."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lowp.runtime import native_backend as nb
from lowp.runtime import native_float
from lowp.runtime.backends import native_available
from lowp.runtime.float_nn import GlobalMaxPool, global_max
from lowp.runtime.float_ops import max_reference

PATHS = ["numpy", *(nb.available_paths() if native_available() else [])]
SPECIALS = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-45, 3.4e38, -3.4e38], np.float32)


def _bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).view(np.uint32).tobytes()


def _input(rng: np.random.Generator, shape: tuple[int, ...], kind: str) -> np.ndarray:
    x = rng.standard_normal(shape).astype(np.float32)
    if kind == "specials":
        idx = rng.integers(0, x.size, max(1, x.size // 6))
        x.flat[idx] = rng.choice(SPECIALS, idx.size)
    elif kind == "zeros":        # maxima that are zeros of either sign
        x = np.where(x > 0, -x, rng.choice(np.array([0.0, -0.0], np.float32), shape))
    return x.astype(np.float32)


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 40),
       spatial=st.lists(st.integers(1, 9), min_size=1, max_size=3),
       kind=st.sampled_from(["normal", "specials", "zeros"]), seed=st.integers(0, 2**32 - 1))
def test_global_max_pool_is_the_maximum_of_the_set(n: int, c: int, spatial: list[int],
                                                   kind: str, seed: int) -> None:
    x = _input(np.random.default_rng(seed), (n, c, *spatial), kind)
    axes = tuple(range(2, x.ndim))
    want = max_reference(x, axes, True)
    cl = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    for path in PATHS:
        with native_float.disabled() if path == "numpy" else nb.use_path(path):
            got = GlobalMaxPool(x)
            got_cl = global_max(cl, tuple(range(1, cl.ndim - 1)))
        assert got.shape == want.shape and _bits(got) == _bits(want), path
        assert _bits(np.moveaxis(got_cl, -1, 1)) == _bits(want), path


def test_global_max_pool_of_integers_is_np_max() -> None:
    x = np.random.default_rng(0).integers(-128, 128, (2, 3, 4, 5)).astype(np.int8)
    np.testing.assert_array_equal(GlobalMaxPool(x), x.max(axis=(2, 3), keepdims=True))
    assert GlobalMaxPool(x).dtype == np.int8
