"""Native float32 glue kernels (lowp.runtime.native_float) against the numpy operators of
float_ops / float_nn, on every instruction-set path.

Bounds (docs/native.md): Sigmoid, Tanh, HardSigmoid, HardSwish, LeakyRelu, MaxPool and
AveragePool bit for bit; Erf within one float32 ulp of the reference; Gelu (erf and tanh
forms) within one ulp plus |x| * 2^-50, which covers the float64 cancellation of
1 + tanh(u) for x << 0 that the reference has too (measured: |x| * 2^-54 at most over every
257th float32).
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lowp.errors import NodeError
from lowp.runtime import native_backend as nb
from lowp.runtime import native_float
from lowp.runtime.float_registry import FLOAT_OPS

from .helpers import PATHS

pytestmark = pytest.mark.skipif(native_float.kernels() == "none",
                                reason="the extension has no float kernels")

# op name, attributes, bound: "exact" or "ulp" (one float32 ulp) or "gelu"
UNARY_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("Erf", {}, "ulp"),
    ("Gelu", {}, "gelu"),
    ("Gelu", {"approximate": "tanh"}, "gelu"),
    ("Sigmoid", {}, "exact"),
    ("Tanh", {}, "exact"),
    ("HardSigmoid", {"alpha": 0.2, "beta": 0.5}, "exact"),
    ("HardSigmoid", {"alpha": -1.7, "beta": 0.25}, "exact"),
    ("HardSwish", {}, "exact"),
    ("LeakyRelu", {"alpha": 0.01}, "exact"),
    ("LeakyRelu", {"alpha": 0.2}, "exact"),
    ("LeakyRelu", {"alpha": -1.5}, "exact"),
    ("Exp", {}, "exact"),
]
GELU_FLOOR = 2.0 ** -50

FLOATS = st.floats(width=32, allow_nan=True, allow_infinity=True, allow_subnormal=True)
SPECIALS = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1e-45, -1e-45, 1e-38, 3.4e38,
                     -3.4e38, 0.5, -0.5, 0.921875, -0.921875, 3.725, -3.725, 5.27, -5.27,
                     9.0, -9.0, 18.0, -18.0, 88.7, -103.9], np.float32)


def _reference(op: str, x: np.ndarray, attrs: dict[str, Any]) -> np.ndarray:
    with native_float.disabled(), np.errstate(all="ignore"):
        return np.asarray(FLOAT_OPS[op](x, **attrs))


def _assert_within(op: str, bound: str, x: np.ndarray, got: np.ndarray,
                   ref: np.ndarray, where: str) -> None:
    assert got.dtype == np.float32 and got.shape == ref.shape, where
    nan = np.isnan(ref)
    np.testing.assert_array_equal(np.isnan(got), nan, err_msg=f"{op} NaN on {where}")
    g, r, xs = got[~nan], ref[~nan], x[~nan].astype(np.float64)
    if bound == "exact":
        np.testing.assert_array_equal(g.view(np.uint32), r.view(np.uint32),
                                      err_msg=f"{op} on {where}")
        return
    ar = np.abs(r)
    with np.errstate(invalid="ignore", over="ignore"):   # the ulp of inf, inf - inf
        ulp = (np.nextafter(ar, np.float32(np.inf)) - ar).astype(np.float64)
        tol = ulp + (GELU_FLOOR * np.abs(xs) if bound == "gelu" else 0.0)
        diff = np.abs(g.astype(np.float64) - r.astype(np.float64))
    bad = (g != r) & ~(diff <= tol)
    assert not bad.any(), (f"{op} on {where}: x={xs[bad][:4]} got={g[bad][:4]} "
                           f"ref={r[bad][:4]}")


@pytest.mark.parametrize("op,attrs,bound", UNARY_CASES)
@settings(max_examples=40, deadline=None)
@given(x=hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=4, min_side=0,
                                                 max_side=9), elements=FLOATS))
def test_unary_any_values(op: str, attrs: dict[str, Any], bound: str, x: np.ndarray) -> None:
    ref = _reference(op, x, attrs)
    for path in PATHS:
        with nb.use_path(path):
            _assert_within(op, bound, x, np.asarray(FLOAT_OPS[op](x, **attrs)), ref, path)


@pytest.mark.parametrize("op,attrs,bound", UNARY_CASES)
def test_unary_wide_range(op: str, attrs: dict[str, Any], bound: str) -> None:
    """A sweep of magnitudes 2^-30 .. 2^12 of both signs, the specials, and an odd size
    (vector tails), through the registered operator."""
    rng = np.random.default_rng(7)
    mags = np.exp2(rng.uniform(-30, 12, 20011)).astype(np.float32)
    x = np.concatenate([SPECIALS, mags * rng.choice([-1, 1], mags.size).astype(np.float32),
                        rng.standard_normal(3001).astype(np.float32) * 4])
    ref = _reference(op, x, attrs)
    for path in PATHS:
        with nb.use_path(path):
            _assert_within(op, bound, x, np.asarray(FLOAT_OPS[op](x, **attrs)), ref, path)


@pytest.mark.parametrize("op", sorted(native_float.UNARY_CODES))
def test_unary_binding_empty_and_in_place(op: str) -> None:
    code = native_float.UNARY_CODES[op]
    ext = nb._native
    empty = np.empty(0, np.float32)
    ext.float_unary(code, empty, empty, 0.2, 0.5, 1)   # nothing to do, no error
    x = np.linspace(-6, 6, 1001, dtype=np.float32)
    y = np.empty_like(x)
    ext.float_unary(code, x, y, 0.2, 0.5, 1)
    z = x.copy()
    ext.float_unary(code, z, z, 0.2, 0.5, 1)
    np.testing.assert_array_equal(z, y)


def test_unary_threads_do_not_change_results() -> None:
    x = np.random.default_rng(1).standard_normal(300_001).astype(np.float32) * 5
    one = FLOAT_OPS["Erf"](x)
    native_float.set_threads(0)
    try:
        many = FLOAT_OPS["Erf"](x)
    finally:
        native_float.set_threads(1)
    np.testing.assert_array_equal(many, one)


def test_numpy_fallbacks() -> None:
    """float64, empty arrays, disabled(), and an extension without the kernels go to numpy."""
    x64 = np.linspace(-3, 3, 50)
    assert native_float.unary("Erf", x64) is None
    assert native_float.unary("Erf", np.empty((0, 3), np.float32)) is None
    x = np.linspace(-3, 3, 50, dtype=np.float32)
    with native_float.disabled():
        assert native_float.unary("Erf", x) is None
    assert native_float.unary("Erf", x) is not None
    saved = native_float._native
    native_float._native = object()          # an older build: no float_unary
    try:
        assert native_float.kernels() == "none"
        assert native_float.unary("Erf", x) is None
        np.testing.assert_array_equal(FLOAT_OPS["Erf"](x), _reference("Erf", x, {}))
    finally:
        native_float._native = saved


def test_kernels_follow_the_forced_path() -> None:
    expected = {"scalar": "scalar", "avx512vnni": "avx512", "amx": "avx512"}
    for path in PATHS:
        with nb.use_path(path):
            assert native_float.kernels() == expected.get(path, "avx2")
    # LOWP_ISA applies as well: the first use of native_float imports native_backend
    code = "from lowp.runtime import native_float; print(native_float.kernels())"
    done = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, LOWP_ISA="scalar"),
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "scalar"


# --- pooling ------------------------------------------------------------------------------


def _pool_check(op: str, x: np.ndarray, attrs: dict[str, Any]) -> None:
    try:
        ref = _reference(op, x, attrs)
    except NodeError:       # no output window: the native path raises the same error
        with pytest.raises(NodeError):
            FLOAT_OPS[op](x, **attrs)
        return
    for path in PATHS:
        with nb.use_path(path):
            got = np.asarray(FLOAT_OPS[op](x, **attrs))
            assert got.dtype == ref.dtype and got.shape == ref.shape, path
            np.testing.assert_array_equal(got, ref, err_msg=f"{op} {attrs} on {path}")


POOL_VALUES = st.sampled_from(["normal", "specials", "huge"])


def _pool_input(rng: np.random.Generator, shape: tuple[int, ...], kind: str) -> np.ndarray:
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    if kind == "specials" and x.size:
        idx = rng.integers(0, x.size, max(1, x.size // 10))
        x.flat[idx] = rng.choice(np.array([np.nan, np.inf, -np.inf, -0.0, 1e-45], np.float32),
                                 idx.size)
    elif kind == "huge":
        x *= np.float32(1e37)   # sums overflow to inf, as in the reference
    return x


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
@settings(max_examples=60, deadline=None)
@given(data=st.data(), n=st.integers(0, 2), c=st.integers(0, 3), h=st.integers(1, 12),
       w=st.integers(1, 40), values=POOL_VALUES, seed=st.integers(0, 2**32 - 1))
def test_pool_geometries(op: str, data: st.DataObject, n: int, c: int, h: int, w: int,
                         values: str, seed: int) -> None:
    kernel = [data.draw(st.integers(1, 6)) for _ in range(2)]
    attrs: dict[str, Any] = {
        "kernel_shape": kernel,
        "strides": [data.draw(st.integers(1, 4)) for _ in range(2)],
        "dilations": [data.draw(st.integers(1, 3)) for _ in range(2)],
        "ceil_mode": data.draw(st.integers(0, 1)),
    }
    auto = data.draw(st.sampled_from(["NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]))
    attrs["auto_pad"] = auto
    if auto == "NOTSET":
        attrs["pads"] = [data.draw(st.integers(0, kernel[i % 2])) for i in range(4)]
    if op == "AveragePool":
        attrs["count_include_pad"] = data.draw(st.integers(0, 1))
    x = _pool_input(np.random.default_rng(seed), (n, c, h, w), values)
    _pool_check(op, x, attrs)


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_pool_kernel_larger_than_input_and_model_shapes(op: str) -> None:
    rng = np.random.default_rng(5)
    cases: list[tuple[tuple[int, ...], dict[str, Any]]] = [
        ((1, 2, 3, 3), {"kernel_shape": [5, 5], "pads": [2, 2, 2, 2]}),
        ((1, 2, 2, 7), {"kernel_shape": [4, 3], "pads": [1, 0, 2, 0], "ceil_mode": 1,
                        "strides": [3, 2]}),
        ((2, 8, 33, 47), {"kernel_shape": [2, 2], "auto_pad": "SAME_UPPER"}),
        ((1, 16, 64, 64), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
        ((1, 4, 31, 29), {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1,
                          "count_include_pad": 1, "pads": [1, 1, 1, 1]}),
    ]
    for shape, attrs in cases:
        if op == "MaxPool":
            attrs = {k: v for k, v in attrs.items() if k != "count_include_pad"}
        _pool_check(op, _pool_input(rng, shape, "normal"), attrs)


def test_pool_binding_empty_and_threads() -> None:
    ext = nb._native
    y = np.empty((0, 5, 5), np.float32)
    ext.float_pool2d(np.empty((0, 6, 6), np.float32), y, [0, 6, 6, 5, 5],
                     [2, 2, 1, 1, 1, 1, 0, 0, 0, 0], False, False, 1)
    x = np.random.default_rng(2).standard_normal((1, 64, 80, 80)).astype(np.float32)
    attrs = {"kernel_shape": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1]}
    for op in ("MaxPool", "AveragePool"):
        one = FLOAT_OPS[op](x, **attrs)
        native_float.set_threads(0)
        try:
            many = FLOAT_OPS[op](x, **attrs)
        finally:
            native_float.set_threads(1)
        np.testing.assert_array_equal(many, one)
    with pytest.raises(ValueError):
        ext.float_pool2d(x.reshape(64, 80, 80), np.empty((64, 78, 78), np.float32),
                         [64, 80, 80, 78, 78], [3, 3, 0, 1, 1, 1, 0, 0, 0, 0], False, False, 1)


def test_pool_falls_back_for_other_ranks_and_dtypes() -> None:
    x = np.random.default_rng(4).standard_normal((1, 2, 9)).astype(np.float32)
    assert native_float.pool2d("MaxPool", x, [3], [1], [1], [0], [0], [7]) is None
    x64 = np.random.default_rng(4).standard_normal((1, 2, 9, 9))
    attrs = {"kernel_shape": [3, 3]}
    np.testing.assert_array_equal(FLOAT_OPS["MaxPool"](x64, **attrs),
                                  _reference("MaxPool", x64, attrs))




def test_exp_at_the_two_factor_boundaries() -> None:
    """ONNX Runtime's exp (MLAS) rebuilds 2^m from two factors: every float32 step of
    [-104, -86] (m below -126: results subnormal down to 2^-150, then zero) and of
    [86, 89] (m = 128: the high factor 2, overflow to inf) on every path, bit for bit."""
    low = np.arange(np.float32(-104), np.float32(-86), np.float32(1 / 4096), dtype=np.float32)
    high = np.arange(np.float32(86), np.float32(89), np.float32(1 / 4096), dtype=np.float32)
    x = np.concatenate([low, high, np.nextafter(low, np.float32(0))])
    ref = _reference("Exp", x, {})
    for path in PATHS:
        with nb.use_path(path):
            got = np.asarray(FLOAT_OPS["Exp"](x))
        np.testing.assert_array_equal(got.view(np.uint32), ref.view(np.uint32), err_msg=path)
