"""Shared helpers of the native-kernel tests: spanning requantization, the path loop and
NaNs of random payloads."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from hypothesis import strategies as st

from lowp.fixedpoint import Requant, RequantMode
from lowp.runtime import native_backend as nb

PATHS = nb.available_paths()
MODES = st.sampled_from([RequantMode.FLOAT32, RequantMode.FIXEDPOINT])
INT8_DTYPES = st.sampled_from([np.dtype(np.uint8), np.dtype(np.int8)])


def random_nans(rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` float32 NaNs of random payloads and signs, quiet or signalling."""
    bits = (rng.integers(1, 1 << 22, n).astype(np.uint32) | np.uint32(0x7F800000)
            | (rng.integers(0, 2, n).astype(np.uint32) << 31)
            | (rng.integers(0, 2, n).astype(np.uint32) << 22))
    return bits.view(np.float32)


def random_ints(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    return rng.integers(int(info.min), int(info.max) + 1, size=shape).astype(dtype)


def spanning_requant(acc: np.ndarray, *, out_dtype: np.dtype, mode: RequantMode,
                     per_channel: bool, stretch: float, clamp: tuple[float, float]
                     ) -> Requant:
    """A Requant whose scale maps the accumulator range onto ~`stretch` x the output range.

    Choosing the scale from the accumulators keeps the outputs spread over the whole output
    range; a fixed scale would saturate nearly everything and compare nothing. `clamp`
    selects qmin/qmax as fractions of the type's range (a fused ReLU/Clip).
    """
    info = np.iinfo(out_dtype)
    tmin, tmax = int(info.min), int(info.max)
    flat = acc.reshape(-1, acc.shape[-1]).astype(np.int64)
    if flat.shape[0] == 0:
        lo = np.zeros(acc.shape[-1], np.int64)
        hi = np.ones(acc.shape[-1], np.int64)
    elif per_channel:
        lo, hi = flat.min(axis=0), flat.max(axis=0)
    else:
        lo = np.full(acc.shape[-1], flat.min())
        hi = np.full(acc.shape[-1], flat.max())
    if per_channel:
        # One output zero point serves every channel, so each channel's scale maps its
        # largest magnitude onto half the output range around the middle.
        amax = np.maximum(np.maximum(np.abs(lo), np.abs(hi)), 1).astype(np.float64)
        scale = ((tmax - tmin) / 2 * stretch / amax).astype(np.float32)
        zero_point = (tmin + tmax + 1) // 2
    else:
        span = float(max(hi[0] - lo[0], 1))
        scale = np.float32((tmax - tmin) * stretch / span)
        mid_acc = float(lo[0] + hi[0]) / 2
        zero_point = int(np.clip(np.rint((tmin + tmax) / 2 - mid_acc * float(scale)),
                                 -(1 << 20), 1 << 20))
    qmin = tmin + int(round(clamp[0] * (tmax - tmin)))
    qmax = tmin + int(round(clamp[1] * (tmax - tmin)))
    return Requant(scale, zero_point, qmin, max(qmin, qmax), mode, out_dtype)


def assert_spans(ref: np.ndarray, requant: Requant, acc: np.ndarray) -> None:
    """Guard against vacuous tests: a large output must use a good part of [qmin, qmax].

    Only checked when the accumulators themselves vary (an output that sees nothing but
    padding is legitimately constant).
    """
    if acc.size == 0 or np.unique(acc).size < 64:
        return
    width = requant.qmax - requant.qmin
    rows = ref.size // max(ref.shape[-1], 1) if ref.ndim else 0
    if requant.scale.ndim:
        if rows < 16:
            return  # per-channel ranges need a few rows to mean anything
        flat = acc.reshape(-1, acc.shape[-1])
        if np.mean((flat.min(axis=0) < 0) & (flat.max(axis=0) > 0)) < 0.5:
            return  # one shared zero point cannot center one-signed channels
    if ref.size >= 48 and width >= 16:
        used = int(ref.max()) - int(ref.min())
        # a fifth of the range: one outlier accumulator may stretch the spanning scale
        assert used >= width // 5, f"outputs span only {used} of {width}"


def assert_all_paths(make: Callable[[], Callable[[np.ndarray], np.ndarray]], x: np.ndarray,
                     ref: np.ndarray) -> None:
    """Every available instruction-set path reproduces `ref` exactly (tolerance 0)."""
    for path in PATHS:
        with nb.use_path(path):
            got = make()(x)
        assert got.dtype == ref.dtype, path
        assert got.shape == ref.shape, (path, got.shape, ref.shape)
        if not np.array_equal(got, ref):
            bad = np.argwhere(got != ref)
            raise AssertionError(f"path {path}: {len(bad)} of {ref.size} outputs differ, "
                                 f"first at {bad[0].tolist()}: got {got[tuple(bad[0])]}, "
                                 f"want {ref[tuple(bad[0])]}")


def centering_bias(acc_without_bias: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An int32 bias that moves every channel's accumulators around zero (plus noise)."""
    flat = acc_without_bias.reshape(-1, acc_without_bias.shape[-1]).astype(np.int64)
    mid = (flat.min(axis=0) + flat.max(axis=0)) // 2 if flat.shape[0] else 0
    noise = rng.integers(-2000, 2000, size=flat.shape[1])
    return np.clip(noise - mid, -(1 << 31), (1 << 31) - 1).astype(np.int32)
