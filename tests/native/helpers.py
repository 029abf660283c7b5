"""Shared helpers of the native-kernel tests: spanning requantization and the path loop."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from hypothesis import strategies as st

from lowp.fixedpoint import Requant, RequantMode
from lowp.runtime import native_backend as nb

PATHS = nb.available_paths()
MODES = st.sampled_from([RequantMode.FLOAT32, RequantMode.FIXEDPOINT])
INT8_DTYPES = st.sampled_from([np.dtype(np.uint8), np.dtype(np.int8)])


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
    span = np.maximum(hi - lo, 1).astype(np.float64)
    scale = ((tmax - tmin) * stretch / span).astype(np.float32)
    if not per_channel:
        scale = np.float32(scale[0])
    mid_acc = float((lo[0] + hi[0]) / 2) if not per_channel else float(np.mean((lo + hi) / 2))
    mid_scale = float(np.mean(scale))
    zero_point = int(np.clip(np.rint((tmin + tmax) / 2 - mid_acc * mid_scale), -(1 << 20),
                             1 << 20))
    qmin = tmin + int(round(clamp[0] * (tmax - tmin)))
    qmax = tmin + int(round(clamp[1] * (tmax - tmin)))
    return Requant(scale, zero_point, qmin, max(qmin, qmax), mode, out_dtype)


def assert_spans(ref: np.ndarray, requant: Requant) -> None:
    """Guard against vacuous tests: a large output must use a good part of [qmin, qmax]."""
    width = requant.qmax - requant.qmin
    if ref.size >= 48 and width >= 16:
        used = int(ref.max()) - int(ref.min())
        assert used >= width // 3, f"outputs span only {used} of {width}"


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
