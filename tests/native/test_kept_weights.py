"""Packed weights kept between calls: the recurrence's R^T (native/recurrent.cpp, one
workspace per weights and direction) and the panels of a prepacked SGEMM operand
(native/float_driver.cpp) are packed again whenever the values change: results are those of
a fresh call with a copy of the weights, bit for bit, on every path."""

from __future__ import annotations

import numpy as np
import pytest

from lowp import mlas_sgemm
from lowp.runtime import native_backend, native_float, native_rnn

PATHS = native_backend.available_paths()
pytestmark = pytest.mark.skipif(native_rnn.kernels() == "none", reason="no native recurrence")


def _lstm(x, w, r, b, threads):
    dirs = r.shape[0]
    lens = np.full(x.shape[1], x.shape[0])
    return native_rnn.lstm(x, w, r, b, lens, None, None, None, [False, True][:dirs], 0, None,
                           False, threads=threads)


def _gru(x, w, r, b, threads):
    dirs = r.shape[0]
    lens = np.full(x.shape[1], x.shape[0])
    return native_rnn.gru(x, w, r, b, lens, None, [False, True][:dirs], 0, None, True,
                          threads=threads)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("dirs", [1, 2])
@pytest.mark.parametrize("threads", [1, 2])
def test_weights_changed_in_place_are_packed_again(path, cell, dirs, threads):
    rng = np.random.default_rng(dirs + 2 * threads)
    g, h, i = (4, 24, 8) if cell == "lstm" else (3, 24, 8)
    x = rng.standard_normal((5, 3, i)).astype(np.float32)
    w = (rng.standard_normal((dirs, g * h, i)) * 0.3).astype(np.float32)
    r = (rng.standard_normal((dirs, g * h, h)) * 0.3).astype(np.float32)
    b = (rng.standard_normal((dirs, 2 * g * h)) * 0.1).astype(np.float32)
    run = _lstm if cell == "lstm" else _gru
    with native_backend.use_path(path):
        first = run(x, w, r, b, threads)[0].copy()
        for k in range(4):
            got = run(x, w, r, b, threads)              # the same array object every time
            want = run(x, w, r.copy(), b, threads)      # new memory: packed afresh
            for a, e in zip(got, want, strict=True):
                np.testing.assert_array_equal(a, e)
            assert k == 0 or not np.array_equal(got[0], first)
            r[:, k % (g * h), k % h] += 0.5             # one weight changes in place
            r[-1, -1, -1] -= 0.25                       # the last value of the last direction


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("shape", [(3, 40, 70), (1, 300, 20), (9, 128, 512), (1, 300, 1200),
                                   (8, 300, 1200)])
def test_prepacked_operand_changed_in_place_is_packed_again(path, transposed, shape):
    m, k, n = shape
    rng = np.random.default_rng(m + k)
    a = rng.standard_normal((m, k)).astype(np.float32)
    stored = rng.standard_normal((n, k) if transposed else (k, n)).astype(np.float32)
    with native_backend.use_path(path):
        for step in range(3):
            b = stored.T if transposed else stored
            got = np.empty((m, n), np.float32)
            assert native_float.sgemm(a, b, got, trans_b=transposed, packed=True)
            want = mlas_sgemm.gemm(a, stored, trans_b=transposed, packed=True)
            np.testing.assert_array_equal(got, want)
            stored[step, -1] += 1.0                 # in place: the same memory, new values
            stored[-1, step] -= 0.5


def _sgemm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    got = np.empty((a.shape[0], b.shape[1]), np.float32)
    assert native_float.sgemm(a, b, got, packed=True)
    return got


def test_more_large_operands_than_the_budget_keeps_and_evicts_with_the_same_bits():
    """Large prepacked operands (more than 2^17 values) are kept within a per-thread budget
    of 2^24 floats, copies and panels: 26 operands of 300 x 1200 in turn overflow it (those
    kept stay, the others are packed per call); after more than 1024 calls elsewhere the
    kept ones are stale and give way to new ones. Every result equals mlas_sgemm.gemm."""
    rng = np.random.default_rng(7)
    a = rng.standard_normal((2, 300)).astype(np.float32)
    bs = [rng.standard_normal((300, 1200)).astype(np.float32) for _ in range(26)]
    for _ in range(2):
        for b in bs:
            np.testing.assert_array_equal(_sgemm(a, b), mlas_sgemm.gemm(a, b, packed=True))
    small = rng.standard_normal((300, 8)).astype(np.float32)
    for _ in range(1100):
        _sgemm(a[:1], small)
    for b in bs[::-1]:
        b[0, 0] += 1.0
        np.testing.assert_array_equal(_sgemm(a, b), mlas_sgemm.gemm(a, b, packed=True))
