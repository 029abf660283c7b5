"""Packed weight panels shared between convolutions and products whose panels are equal
(native/pack.cpp, share_panels): the bias, zero points and requantization stay each
operator's own, and every operator still equals its reference on every path, tolerance 0."""

from __future__ import annotations

import gc
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowp import _native
from lowp.fixedpoint import RequantMode
from lowp.ops.conv import conv
from lowp.ops.layout import Layout
from lowp.ops.linear import matmul
from lowp.runtime import native_backend as nb
from lowp.runtime.native_backend import NativeConv, NativeMatMul

from .helpers import PATHS, assert_all_paths, centering_bias, random_ints, spanning_requant


def _product(rng: np.random.Generator, a: np.ndarray, b: np.ndarray, *, threads: int = 1
             ) -> tuple[NativeMatMul, np.ndarray]:
    """A product on `b` with its own bias, zero points and requantization, and its reference."""
    info_a = np.iinfo(a.dtype)
    a_zp = int(rng.integers(info_a.min, info_a.max + 1))
    b_zp = rng.integers(-128, 128, size=b.shape[1]) if rng.random() < 0.5 else 0
    bias = centering_bias(matmul(a, b, a_zero_point=a_zp, b_zero_point=b_zp), rng)
    acc = matmul(a, b, a_zero_point=a_zp, b_zero_point=b_zp, bias=bias)
    mode = RequantMode.FLOAT32 if rng.random() < 0.5 else RequantMode.FIXEDPOINT
    out_dtype = np.dtype(np.uint8) if rng.random() < 0.5 else np.dtype(np.int8)
    rq = spanning_requant(acc, out_dtype=out_dtype, mode=mode, per_channel=rng.random() < 0.5,
                          stretch=1.0, clamp=(0.0, 1.0))
    op = NativeMatMul(b, bias, a_zero_point=a_zp, a_dtype=a.dtype, b_zero_point=b_zp,
                      requant=rq, threads=threads)
    return op, rq.apply(acc)


def test_equal_weights_are_packed_once() -> None:
    """Unrolled time steps: several products on one weight (one array or equal copies) hold
    one copy of the panels; each keeps its own bias and requantization."""
    rng = np.random.default_rng(0)
    a = random_ints(rng, (2, 300), np.dtype(np.uint8))
    b = random_ints(rng, (300, 200), np.dtype(np.int8))
    gc.collect()
    before = _native.live_panels()
    ops = [_product(rng, a, b if i % 2 else b.copy()) for i in range(6)]
    assert len({op.panels_id for op, _ in ops}) == 1
    assert _native.live_panels() == before + 1
    for path in PATHS:
        with nb.use_path(path):
            for op, ref in ops:
                np.testing.assert_array_equal(op(a), ref, err_msg=path)
    del ops, op
    gc.collect()
    assert _native.live_panels() == before


def test_different_weights_are_not_shared() -> None:
    rng = np.random.default_rng(1)
    a = random_ints(rng, (5, 64), np.dtype(np.int8))
    b = random_ints(rng, (64, 48), np.dtype(np.int8))
    c = b.copy()
    c[-1, -1] ^= 1                                   # one bit of the last weight
    d = b[:, :47].copy()                             # one column fewer
    ops = [_product(rng, a, w) for w in (b, c, d)]
    assert len({op.panels_id for op, _ in ops}) == 3
    for path in PATHS:
        with nb.use_path(path):
            for op, ref in ops:
                np.testing.assert_array_equal(op(a), ref, err_msg=path)


def test_uint8_weights_share_with_their_int8_shift() -> None:
    """Weights are packed as w - 128 for uint8: a uint8 weight and its int8 shift have equal
    panels (and their own zero-point terms)."""
    rng = np.random.default_rng(2)
    a = random_ints(rng, (7, 40), np.dtype(np.uint8))
    b8 = random_ints(rng, (40, 70), np.dtype(np.int8))
    bu = (b8.astype(np.int16) + 128).astype(np.uint8)
    (op1, ref1), (op2, ref2) = _product(rng, a, b8), _product(rng, a, bu)
    assert op1.panels_id == op2.panels_id
    for path in PATHS:
        with nb.use_path(path):
            np.testing.assert_array_equal(op1(a), ref1, err_msg=path)
            np.testing.assert_array_equal(op2(a), ref2, err_msg=path)


def test_shared_panels_outlive_the_first_owner() -> None:
    rng = np.random.default_rng(3)
    a = random_ints(rng, (3, 128), np.dtype(np.uint8))
    b = random_ints(rng, (128, 96), np.dtype(np.int8))
    first, _ = _product(rng, a, b)
    second, ref = _product(rng, a, b)
    assert first.panels_id == second.panels_id
    del first
    gc.collect()
    assert_all_paths(lambda: second, a, ref)


@pytest.mark.parametrize("path", PATHS)
def test_operators_sharing_panels_run_from_two_threads(path: str) -> None:
    """Two Python threads, each with its own products on one weight: a path's own copy of the
    panels (amx) is made once, whichever thread asks first."""
    rng = np.random.default_rng(4)
    a = random_ints(rng, (40, 520), np.dtype(np.uint8))
    b = random_ints(rng, (520, 130), np.dtype(np.int8))
    ops = [_product(rng, a, b, threads=t) for t in (1, 2, 1, 2)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def work(mine: list[tuple[NativeMatMul, np.ndarray]]) -> None:
        try:
            barrier.wait()
            for _ in range(5):
                for op, ref in mine:
                    np.testing.assert_array_equal(op(a), ref)
        except BaseException as e:  # reported below
            errors.append(e)

    with nb.use_path(path):
        workers = [threading.Thread(target=work, args=(ops[i::2],)) for i in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    assert not errors, errors[0]


@settings(max_examples=30, deadline=None)
@given(kernel=st.sampled_from([(1, 1), (3, 3), (1, 7), (2, 3)]),
       cin=st.integers(1, 40), cout=st.integers(1, 140), group=st.sampled_from([1, 2]),
       x_dtype=st.sampled_from([np.dtype(np.uint8), np.dtype(np.int8)]),
       w_dtype=st.sampled_from([np.dtype(np.uint8), np.dtype(np.int8)]),
       equal=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_convolutions_share_panels_iff_equal(kernel: tuple[int, int], cin: int, cout: int,
                                             group: int, x_dtype: np.dtype, w_dtype: np.dtype,
                                             equal: bool, seed: int) -> None:
    """Two convolutions of one geometry on equal or different weights: they share panels
    exactly when the weights are equal, and each equals its reference on every path."""
    rng = np.random.default_rng(seed)
    cin, cout = cin * group, cout * group
    w1 = random_ints(rng, (cout, cin // group, *kernel), w_dtype)
    w2 = w1.copy()
    if not equal:
        w2.reshape(-1).view(np.uint8)[rng.integers(w2.size)] ^= np.uint8(1 << int(rng.integers(8)))
    x = random_ints(rng, (2, 9, 8, cin), x_dtype)
    pads = tuple(int(k) // 2 for k in kernel) * 2
    info = np.iinfo(x_dtype)
    cases = []
    for w in (w1, w2):
        x_zp = int(rng.integers(info.min, info.max + 1))
        w_zp = rng.integers(np.iinfo(w_dtype).min, np.iinfo(w_dtype).max + 1, size=cout)
        acc = conv(x, w, None, x_zero_point=x_zp, w_zero_point=w_zp, requant=None,
                   layout=Layout.CHANNELS_LAST, pads=pads, group=group)
        rq = spanning_requant(acc, out_dtype=np.dtype(np.uint8), mode=RequantMode.FLOAT32,
                              per_channel=True, stretch=1.0, clamp=(0.0, 1.0))
        op = NativeConv(w, None, x_zero_point=x_zp, x_dtype=x_dtype, w_zero_point=w_zp,
                        requant=rq, pads=pads, group=group, threads=1)
        cases.append((op, rq.apply(acc)))
    (op1, ref1), (op2, ref2) = cases
    if op1.uses_depthwise_kernel:
        return
    assert (op1.panels_id == op2.panels_id) == equal
    assert_all_paths(lambda: op1, x, ref1)
    assert_all_paths(lambda: op2, x, ref2)
