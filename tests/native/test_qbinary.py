"""Native quantized Add / Mul with broadcasting (native_backend.qbinary, through
fastops.make_add / make_mul) against the numpy references (lowp.ops.elementwise.add / mul,
float32 mode), tolerance 0: every pair of input values, then broadcast shapes, strided views,
zero points, scales and clamp bounds drawn by hypothesis, on every instruction-set path."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowp.fixedpoint import requant_scale
from lowp.ops.elementwise import add as ref_add
from lowp.ops.elementwise import add_constant
from lowp.ops.elementwise import mul as ref_mul
from lowp.runtime import native_backend as nb
from lowp.runtime.fastops import Arena, FloatMul, make_add, make_mul

from .helpers import PATHS

DTYPES = [np.dtype(np.uint8), np.dtype(np.int8)]
VECTOR_PATHS = [p for p in PATHS if p in ("avx512vnni", "amx")]   # where fastops takes it


def _params(draw_or_rng: object, a_dtype: np.dtype, b_dtype: np.dtype,
            out_dtype: np.dtype, scales: tuple[float, float, float],
            zps: tuple[int, int, int], relu: bool) -> dict[str, object]:
    info = np.iinfo(out_dtype)
    qmin = zps[2] if relu else int(info.min)
    return dict(a_scale=scales[0], a_zero_point=zps[0], b_scale=scales[1],
                b_zero_point=zps[1], y_scale=scales[2], y_zero_point=zps[2], qmin=qmin,
                qmax=int(info.max), out_dtype=out_dtype)


def _ops(op: str, params: dict[str, object], a_dtype: np.dtype, b_dtype: np.dtype):
    p = params
    if op == "Add":
        fast = make_add(a_dtype, p["a_scale"], p["a_zero_point"], b_dtype,  # type: ignore[arg-type]
                        p["b_scale"], p["b_zero_point"], p["y_scale"], p["y_zero_point"],
                        p["qmin"], p["qmax"], p["out_dtype"])

        def reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return ref_add(a, b, **p)  # type: ignore[arg-type]
        return fast, reference

    def reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # noqa: F811
        return ref_mul(a, b, **p)  # type: ignore[arg-type]
    m = float(requant_scale(p["a_scale"], p["b_scale"], p["y_scale"]))  # type: ignore[arg-type]
    fast = make_mul(reference, np.dtype(p["out_dtype"]),  # type: ignore[arg-type]
                    float_mul=FloatMul(p["a_zero_point"], p["b_zero_point"], m,  # type: ignore[arg-type]
                                       p["y_zero_point"], p["qmin"], p["qmax"]))  # type: ignore[arg-type]
    return fast, reference


def _check(op: str, a: np.ndarray, b: np.ndarray, params: dict[str, object]) -> None:
    fast, reference = _ops(op, params, a.dtype, b.dtype)
    expected = reference(a, b)
    for path in PATHS:
        with nb.use_path(path):
            for arena in (None, Arena()):
                got = fast(a, b, arena)
                assert got.dtype == expected.dtype and got.shape == expected.shape
                np.testing.assert_array_equal(got, expected, err_msg=f"{op} {path}")


def _calls_native(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = nb.qbinary

    def counted(*args: object, **kw: object) -> object:
        calls.append(1)
        return real(*args, **kw)  # type: ignore[arg-type]
    monkeypatch.setattr(nb, "qbinary", counted)
    return calls


@pytest.mark.parametrize("op", ["Add", "Mul"])
@pytest.mark.parametrize("a_dtype", DTYPES)
@pytest.mark.parametrize("b_dtype", DTYPES)
@pytest.mark.parametrize("out_dtype", DTYPES)
def test_every_value_pair(op: str, a_dtype: np.dtype, b_dtype: np.dtype, out_dtype: np.dtype,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    # a (256, 1) against b (256,): every pair, b contiguous along rows, a one value per row
    calls = _calls_native(monkeypatch)
    a = np.arange(256, dtype=np.uint8).view(a_dtype).reshape(256, 1)
    b = np.arange(256, dtype=np.uint8).view(b_dtype)
    rng = np.random.default_rng(11)
    for _ in range(4):
        scales = tuple(float(v) for v in rng.uniform(0.005, 0.2, 3))
        zps = tuple(int(rng.integers(np.iinfo(d).min, np.iinfo(d).max + 1))
                    for d in (a_dtype, b_dtype, out_dtype))
        params = _params(rng, a_dtype, b_dtype, out_dtype, scales, zps, False)  # type: ignore[arg-type]
        _check(op, a, b, params)
        _check(op, b, a, params)  # the other operand as the row scalar (O10a)'s swap
    assert bool(calls) == bool(VECTOR_PATHS)


def _shapes(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...]]:
    rank = draw(st.integers(1, 5))
    shape = [draw(st.integers(1, 7)) for _ in range(rank)]
    if draw(st.booleans()):
        shape[-1] = draw(st.integers(1, 150))     # rows longer than a vector, with tails
    a = [n if draw(st.booleans()) else 1 for n in shape]
    b = [n if draw(st.booleans()) else 1 for n in shape]
    a = a[draw(st.integers(0, rank - 1)):] if draw(st.booleans()) else a
    b = b[draw(st.integers(0, rank - 1)):] if draw(st.booleans()) else b
    return tuple(a), tuple(b)


@st.composite
def _cases(draw: st.DrawFn) -> tuple[str, np.ndarray, np.ndarray, dict[str, object]]:
    op = draw(st.sampled_from(["Add", "Mul"]))
    a_dtype, b_dtype, out_dtype = (draw(st.sampled_from(DTYPES)) for _ in range(3))
    a_shape, b_shape = _shapes(draw)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, a_shape).astype(np.uint8).view(a_dtype)
    b = rng.integers(0, 256, b_shape).astype(np.uint8).view(b_dtype)
    if draw(st.booleans()) and a.ndim >= 1 and a.shape[-1] > 1:
        a = np.repeat(a, 2, axis=-1)[..., ::2]     # a strided view (element stride 2)
    if draw(st.booleans()) and b.ndim >= 2:
        b = np.swapaxes(np.ascontiguousarray(np.swapaxes(b, -1, -2)), -1, -2)  # transposed
    scales = tuple(float(np.float32(draw(st.floats(1e-3, 1.0)))) for _ in range(3))
    zps = tuple(draw(st.integers(int(np.iinfo(d).min), int(np.iinfo(d).max)))
                for d in (a_dtype, b_dtype, out_dtype))
    params = _params(None, a_dtype, b_dtype, out_dtype, scales, zps,  # type: ignore[arg-type]
                     draw(st.booleans()))
    return op, a, b, params


@settings(max_examples=200, deadline=None)
@given(_cases())
def test_broadcast_shapes_equal_reference(case: tuple[str, np.ndarray, np.ndarray,
                                                      dict[str, object]]) -> None:
    op, a, b, params = case
    _check(op, a, b, params)


def test_row_kinds_are_native(monkeypatch: pytest.MonkeyPatch) -> None:
    # a bias row, a per-row scalar, a mask row (an attention score + mask) all run natively
    calls = _calls_native(monkeypatch)
    rng = np.random.default_rng(3)
    params = _params(None, DTYPES[0], DTYPES[0], DTYPES[0], (0.05, 0.02, 0.07), (128, 3, 120),
                     False)
    for a_shape, b_shape in [((2, 32, 64), (64,)), ((2, 4, 32, 32), (2, 1, 1, 32)),
                             ((4, 1), (4, 100)), ((300,), (1,))]:
        a = rng.integers(0, 256, a_shape).astype(np.uint8)
        b = rng.integers(0, 256, b_shape).astype(np.uint8)
        for op in ("Add", "Mul"):
            n = len(calls)
            _check(op, a, b, params)
            assert len(calls) > n or not VECTOR_PATHS, (op, a_shape, b_shape)


@settings(max_examples=60, deadline=None)
@given(_cases())
def test_kernel_equals_reference_on_every_path(case: tuple[str, np.ndarray, np.ndarray,
                                                         dict[str, object]]) -> None:
    # the kernel itself on every path (fastops takes it only where its rows are vectors)
    op, a, b, p = case
    if op == "Add":
        ma = requant_scale(p["a_scale"], 1.0, p["y_scale"])  # type: ignore[arg-type]
        mb = requant_scale(p["b_scale"], 1.0, p["y_scale"])  # type: ignore[arg-type]
        kw = dict(mul=False, ma=float(ma), mb=float(mb), za=0, zb=0,
                  c=float(add_constant(ma, p["a_zero_point"], mb, p["b_zero_point"],  # type: ignore[arg-type]
                                       p["y_zero_point"])))  # type: ignore[arg-type]
        expected = ref_add(a, b, span_kind="", **p)  # type: ignore[arg-type]
    else:
        m = requant_scale(p["a_scale"], p["b_scale"], p["y_scale"])  # type: ignore[arg-type]
        kw = dict(mul=True, ma=float(m), mb=1.0, c=float(np.float32(p["y_zero_point"])),  # type: ignore[arg-type]
                  za=p["a_zero_point"], zb=p["b_zero_point"])
        expected = ref_mul(a, b, **p)  # type: ignore[arg-type]
    for path in PATHS:
        with nb.use_path(path):
            for threads in (1, 2):
                got = nb.qbinary(a, b, qmin=p["qmin"], qmax=p["qmax"],  # type: ignore[arg-type]
                                 out_dtype=p["out_dtype"], threads=threads, **kw)  # type: ignore[arg-type]
                if got is not None:
                    np.testing.assert_array_equal(got, expected, err_msg=f"{op} {path}")


def test_rejects_out_of_range_bounds() -> None:
    a = np.zeros(4, np.uint8)
    with pytest.raises(ValueError):
        nb.qbinary(a, a, mul=False, ma=1.0, mb=1.0, c=0.0, za=0, zb=0, qmin=-1, qmax=255,
                   out_dtype=np.uint8)
    with pytest.raises(ValueError):
        nb.qbinary(a, a, mul=True, ma=float("inf"), mb=1.0, c=0.0, za=0, zb=0, qmin=0,
                   qmax=255, out_dtype=np.uint8)
