"""The native float softmax and log-softmax (ONNX Runtime's AVX-512F order) equal their
numpy forms, lowp.ort_math.softmax_rows and log_softmax_rows, bit for bit on every
instruction-set path; those forms equal ONNX Runtime (tests/runtime/test_ort_float_order.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lowp import ort_math
from lowp.runtime import native_backend, native_float

PATHS = native_backend.available_paths()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("log", [False, True])
@given(rows=st.integers(1, 40), n=st.integers(1, 300), seed=st.integers(0, 2**16),
       spread=st.sampled_from([0.01, 1.0, 8.0, 60.0, 300.0]), threads=st.sampled_from([1, 2]))
def test_native_softmax_equals_its_numpy_form(path, log, rows, n, seed, spread, threads):
    x = (np.random.default_rng(seed).standard_normal((rows, n)) * spread).astype(np.float32)
    with native_backend.use_path(path), native_float.threads(threads):
        got = native_float.softmax_rows(x, log=log)
    assert got is not None
    numpy_form = ort_math.log_softmax_rows if log else ort_math.softmax_rows
    np.testing.assert_array_equal(got, numpy_form(x))


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("log", [False, True])
def test_native_softmax_special_values(path, log):
    x = np.array([[1, 2, np.inf, 0], [1, np.nan, 2, 3], [-np.inf, 0, 1, 2], [-np.inf] * 4,
                  [3e38, -3e38, 0, 1], [np.inf, np.inf, 0, 0], [-100, 0, -103.9, -200]],
                 np.float32)
    with native_backend.use_path(path):
        got = native_float.softmax_rows(x, log=log)
    numpy_form = ort_math.log_softmax_rows if log else ort_math.softmax_rows
    np.testing.assert_array_equal(got, numpy_form(x))
