"""Element-wise native work split between threads covers every element: the last chunk of
n = 128k + 1 elements (or rows) on two threads used to be left unwritten."""

from __future__ import annotations

import numpy as np
import pytest

from lowp.runtime import native_backend, native_float

pytestmark = pytest.mark.skipif(native_backend.max_threads() < 2,
                                reason="needs two hardware threads")


@pytest.mark.parametrize("n", [65537, 65536 + 129, 3 * 32768 + 1, 2 * 65536 + 1])
@pytest.mark.parametrize("threads", [2, 3, 0])
def test_unary_kernel_writes_every_element(n, threads):
    x = np.linspace(-5, 5, n).astype(np.float32)
    with native_float.threads(1):
        want = native_float.unary("Sigmoid", x)
    with native_float.threads(threads):
        got = native_float.unary("Sigmoid", x)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("rows", [257, 129, 385])
def test_broadcast_rows_split_between_threads(rows):
    from lowp.runtime.program import FLOAT_KERNELS
    rng = np.random.default_rng(rows)
    x = rng.standard_normal((1, rows, 384)).astype(np.float32)
    mean = rng.standard_normal((1, rows, 1)).astype(np.float32)
    y = np.full(x.shape, np.nan, np.float32)
    made = FLOAT_KERNELS["Sub"]([x, mean], y, 2)
    assert made is not None
    (fn, args), out = made
    fn(*args)
    np.testing.assert_array_equal(out, x - mean)
