"""8-bit Add and Mul through a table of every value pair equal the reference bit for bit."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lowp.fixedpoint import RequantMode
from lowp.ops.elementwise import add, mul
from lowp.runtime.fastops import Arena, make_add, make_mul

# broadcast patterns real graphs have: same shape, a scalar, a per-channel vector (either
# side), a last-axis vector, a spatial map against channels
PATTERNS = [
    ((2, 8, 20, 30), (2, 8, 20, 30)),
    ((1, 8, 40, 40), (1,)),
    ((1,), (1, 8, 40, 40)),
    ((1, 8, 40, 40), (1, 8, 1, 1)),
    ((1, 8, 1, 1), (1, 8, 40, 40)),
    ((2, 50, 64), (64,)),
    ((1, 8, 40, 40), (1, 1, 40, 40)),
]
dtypes = st.sampled_from([np.dtype(np.uint8), np.dtype(np.int8)])


@settings(max_examples=40, deadline=None)
@given(pattern=st.sampled_from(PATTERNS), a_dtype=dtypes, b_dtype=dtypes, y_dtype=dtypes,
       scales=st.tuples(*[st.floats(0.001, 2.0)] * 3), seed=st.integers(0, 2**32 - 1),
       data=st.data())
def test_tables_equal_reference(pattern: tuple, a_dtype: np.dtype, b_dtype: np.dtype,
                                y_dtype: np.dtype, scales: tuple, seed: int,
                                data: st.DataObject) -> None:
    rng = np.random.default_rng(seed)

    def draw(shape: tuple, dt: np.dtype) -> np.ndarray:
        info = np.iinfo(dt)
        return rng.integers(info.min, info.max + 1, shape).astype(dt)

    a, b = draw(pattern[0], a_dtype), draw(pattern[1], b_dtype)
    ia, ib, iy = np.iinfo(a_dtype), np.iinfo(b_dtype), np.iinfo(y_dtype)
    za = data.draw(st.integers(ia.min, ia.max))
    zb = data.draw(st.integers(ib.min, ib.max))
    zy = data.draw(st.integers(iy.min, iy.max))
    qmin = data.draw(st.sampled_from([int(iy.min), zy]))
    params = dict(a_scale=scales[0], a_zero_point=za, b_scale=scales[1], b_zero_point=zb,
                  y_scale=scales[2], y_zero_point=zy, qmin=qmin, qmax=int(iy.max),
                  out_dtype=y_dtype)
    fast_add = make_add(a_dtype, scales[0], za, b_dtype, scales[1], zb, scales[2], zy,
                        qmin, int(iy.max), y_dtype)
    arena = Arena()
    for _ in range(2):                  # the second run reuses the table and the buffer
        np.testing.assert_array_equal(fast_add(a, b, arena), add(a, b, **params))
    for mode in (RequantMode.FLOAT32, RequantMode.FIXEDPOINT):
        def reference(x: np.ndarray, y: np.ndarray, mode: RequantMode = mode) -> np.ndarray:
            return mul(x, y, mode=mode, **params)

        fast_mul = make_mul(reference, y_dtype)
        np.testing.assert_array_equal(fast_mul(a, b, arena), reference(a, b))
