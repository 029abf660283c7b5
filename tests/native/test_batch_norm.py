"""The float BatchNormalization's native form (x * scale then + offset, `float_binary`)
equals its numpy form bit for bit on random shapes (batch 0 included), parameters and
special values, on every instruction-set path; its folded per-channel parameters are kept
per set of parameter arrays, never reused for other arrays."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from lowp.runtime import float_nn, native_backend, native_float, tape


@given(st.integers(0, 2), st.integers(1, 6), st.lists(st.integers(1, 5), max_size=3),
       st.sampled_from(native_backend.available_paths()), st.booleans(),
       st.integers(0, 10**6))
def test_native_batch_norm_equals_numpy(n, c, spatial, path, specials, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 3, (n, c, *spatial)).astype(np.float32)
    if specials and x.size:
        flat = x.reshape(-1)
        flat[rng.integers(0, flat.size, 3)] = rng.choice(
            np.array([np.inf, -np.inf, np.nan, -0.0, 1e-40], np.float32), 3)
    params = (rng.normal(1, 0.5, c).astype(np.float32), rng.normal(0, 1, c).astype(np.float32),
              rng.normal(0, 1, c).astype(np.float32), rng.uniform(0, 2, c).astype(np.float32))
    with native_float.disabled():
        want = float_nn.BatchNormalization(x, *params, epsilon=1e-3)
    with native_backend.use_path(path), tape.recording() as calls:
        got = float_nn.BatchNormalization(x, *params, epsilon=1e-3)
    assert len(calls) == (2 if x.size else 0)
    assert got.dtype == np.float32 and got.shape == x.shape
    np.testing.assert_array_equal(got, want)


def test_folded_parameters_follow_the_arrays():
    """New parameter arrays (even with the id of freed ones) get their own folding."""
    x = np.ones((1, 2, 3), np.float32)
    for k in range(20):
        scale = np.full(2, float(k + 1), np.float32)
        params = (scale, np.zeros(2, np.float32), np.zeros(2, np.float32),
                  np.ones(2, np.float32))
        got = float_nn.BatchNormalization(x, *params, epsilon=0.0)
        np.testing.assert_array_equal(got, np.full_like(x, k + 1))
        del scale, params


def test_the_same_parameters_on_inputs_of_other_ranks():
    """Kept parameters serve inputs of every rank (they were once kept reshaped for the
    first input's rank, and a 4-D input after a 2-D one failed)."""
    params = tuple(np.arange(1, 4, dtype=np.float32) for _ in range(4))
    for shape in [(2, 3), (1, 3, 4, 4), (2, 3, 5)]:
        x = np.random.default_rng(0).normal(0, 1, shape).astype(np.float32)
        with native_float.disabled():
            want = float_nn.BatchNormalization(x, *params)
        np.testing.assert_array_equal(float_nn.BatchNormalization(x, *params), want)
