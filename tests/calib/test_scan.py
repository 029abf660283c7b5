"""Native calibration scans (lowp._calib) equal the numpy reference observers exactly: same
counts, same bin for every value (edges and their neighbours, +-amax, values outside the
range, denormals, signed zeros, bins widened between batches), same min/max (with
numpy's sign of a zero extreme), the same error for NaN/Inf with the state untouched, and
no dependence on the thread count."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowp.calib import HistogramObserver, MinMaxObserver, scan
from lowp.calib.observers import width_exponent
from lowp.errors import DataError

PATHS = scan.available_paths()
native = pytest.mark.skipif(not PATHS, reason="lowp._calib is not built")
F32 = np.finfo(np.float32)


def state(obs: MinMaxObserver | HistogramObserver) -> str:
    """The observer's whole state as JSON text (tells -0.0 from 0.0, unlike ==)."""
    return json.dumps(obs.to_dict())


def edge_values(amax: float, num_bins: int, rng: np.random.Generator, k: int) -> np.ndarray:
    """k float32 values on or next to the bin edges j 2^q of a histogram whose amax is
    `amax` (and +-amax): where a float32 or fused bin computation would round differently
    from the float64 reference."""
    q = width_exponent(amax, num_bins)
    top = int(np.floor(np.ldexp(amax, -q))) + 1
    edges = np.ldexp(rng.integers(-top, top + 1, k).astype(np.float64), q)
    pick = np.clip(edges, -amax, amax).astype(np.float32)
    step = rng.integers(-2, 3, k)
    out = pick.copy()
    for s in (-2, -1, 1, 2):
        sel = step == s
        for _ in range(abs(s)):
            out[sel] = np.nextafter(out[sel], np.float32(np.inf if s > 0 else -np.inf))
    return out


@st.composite
def scan_cases(draw: st.DrawFn) -> tuple[list[np.ndarray], int]:
    """(float32 batches, num_bins): a first batch whose range is wider or narrower than
    the second's (the second is then binned at once, or its bins are widened first), random
    sizes from 0 (sometimes over the size at which the scan threads), bin budgets, and
    values on edges, at +-amax, zeros of both signs, denormals and extremes."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    size = draw(st.sampled_from([0, 1, 7, 15, 16, 17, 31, 33, 100, 1000, 70_000, 150_001]))
    num_bins = draw(st.sampled_from([4, 5, 12, 256, 2048, 16384]))
    scale = 10.0 ** draw(st.integers(-30, 30))
    x = (rng.standard_normal(size) * scale).astype(np.float32)
    first = (rng.standard_normal(64) * scale
             * draw(st.sampled_from([0.0, 1e-3, 0.5, 2.0, 10.0]))).astype(np.float32)
    if size:
        amax = float(np.abs(x).max()) or 1.0
        k = max(1, size // 4)
        idx = rng.integers(0, size, k)
        x[idx] = edge_values(amax, num_bins, rng, k)
        specials = np.array([amax, -amax, 0.0, -0.0, F32.smallest_subnormal,
                             -F32.smallest_subnormal, F32.tiny],
                            dtype=np.float32)
        if draw(st.booleans()):
            specials = np.append(specials, np.float32([F32.max, -F32.max]))
        j = rng.integers(0, size, min(size, 3 * specials.size))
        x[j] = specials[rng.integers(0, specials.size, j.size)]
        zeros = rng.random(size) < draw(st.sampled_from([0.0, 0.3, 0.9]))
        x[zeros] = np.where(rng.random(int(zeros.sum())) < 0.5, 0.0, -0.0)
    return [first, x], num_bins


def observed(parts: list[np.ndarray], num_bins: int, path: str
             ) -> tuple[MinMaxObserver, HistogramObserver]:
    mm, hist = MinMaxObserver("t"), HistogramObserver("t", num_bins)
    with scan.use_path(path):
        for x in parts:
            mm.update(x)
            hist.update(x)
    return mm, hist


@native
@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=60)
@given(case=scan_cases())
def test_native_equals_reference(path: str, case: tuple[list[np.ndarray], int]) -> None:
    parts, num_bins = case
    mm_ref, hist_ref = observed(parts, num_bins, scan.REFERENCE)
    mm, hist = observed(parts, num_bins, path)
    assert state(mm) == state(mm_ref)
    assert state(hist) == state(hist_ref)


@native
@pytest.mark.parametrize("path", PATHS)
def test_every_edge_value_lands_in_the_reference_bin(path: str) -> None:
    """One value per batch over a fixed layout: the counts pin down the bin of each value,
    not just the sum."""
    rng = np.random.default_rng(0)
    for amax, num_bins in [(1.0, 16384), (3.0, 4), (0.1, 256), (7.3e-3, 2048), (5e30, 12),
                           (1e-38, 16384)]:
        amax = float(np.float32(amax))
        span = np.float32([amax, -amax])
        values = np.concatenate([edge_values(amax, num_bins, rng, 400), span])
        for v in values:
            x = np.full(17, v, dtype=np.float32)        # a vector step and a scalar tail
            with scan.use_path(path):
                obs = HistogramObserver("t", num_bins)
                obs.update(span)
                before = obs.stored_counts.copy()
                obs.update(x)
            expected = before + np.bincount(obs.bin_index(x), minlength=before.size)
            assert np.array_equal(obs.stored_counts, expected), (v, amax, num_bins)
            assert obs.exponent == width_exponent(amax, num_bins)


@native
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("data", [[0.0, -0.0], [-0.0, 0.0], [-0.0, -0.0], [1.0, -0.0, 0.0],
                                  [-1.0, 0.0, -0.0] * 20, [0.0] * 33, [-0.0] * 33])
def test_zero_extremes_carry_numpy_sign(path: str, data: list[float]) -> None:
    x = np.array(data, dtype=np.float32)
    mm_ref, hist_ref = observed([x], 12, scan.REFERENCE)
    mm, hist = observed([x], 12, path)
    assert state(mm) == state(mm_ref)
    assert state(hist) == state(hist_ref)


@native
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [0, 16, 70_000, 199_999])
def test_non_finite_raises_and_keeps_state(path: str, bad: float, where: int) -> None:
    rng = np.random.default_rng(1)
    good = rng.standard_normal(1000).astype(np.float32)
    x = rng.standard_normal(200_000).astype(np.float32)
    x[where] = bad
    with scan.use_path(path):
        for obs in (MinMaxObserver("act"), HistogramObserver("act", 128)):
            obs.update(good)
            before = state(obs)
            with pytest.raises(DataError, match="tensor 'act'.*NaN.*Inf"):
                obs.update(x)
            assert state(obs) == before


@native
def test_counts_do_not_depend_on_threads() -> None:
    from lowp import _calib  # type: ignore[attr-defined]

    rng = np.random.default_rng(2)
    x = (rng.standard_normal(1_000_003) * 3).astype(np.float32)
    x[rng.random(x.size) < 0.4] = 0.0
    results = []
    for threads in (1, 2, 3, 8):
        counts = np.zeros(8192, dtype=np.int64)
        found = _calib.histogram(x, counts, 128.0, -4096, -32.0, 32.0, threads)
        results.append((found, counts.tolist(), _calib.min_max(x, threads)))
    assert all(r == results[0] for r in results)
    assert sum(results[0][1]) == x.size
    # a value outside [lo_ok, hi_ok]: the counts are left alone (the caller widens its bins)
    counts = np.zeros(8192, dtype=np.int64)
    found = _calib.histogram(x, counts, 128.0, -4096, -32.0, float(x.max()) / 2, 2)
    assert found[0] and not counts.any()


@native
def test_other_dtypes_and_layouts_take_the_reference() -> None:
    rng = np.random.default_rng(3)
    base = rng.standard_normal((64, 65)).astype(np.float32)
    for x in (base[:, ::2], base.T, base.astype(np.float64), (base * 100).astype(np.int32)):
        mm_ref, hist_ref = observed([x], 128, scan.REFERENCE)
        mm, hist = observed([x], 128, PATHS[-1])
        assert state(mm) == state(mm_ref)
        assert state(hist) == state(hist_ref)


def test_path_selection() -> None:
    with scan.use_path(scan.REFERENCE):
        assert scan.active_path() == scan.REFERENCE
        assert scan.min_max(np.ones(3, np.float32)) is None
    with pytest.raises(ValueError, match="not (available|built)"):
        scan.set_path("neon")


@native
def test_calibration_table_is_the_reference_one() -> None:
    """The whole calibration (one pass, in-place outputs, ranges) on the demo model."""
    from lowp.config import CalibMethod, Config
    from lowp.data import demo_model_path, load_demo_calibration
    from lowp.feeds import as_feeds
    from lowp.inputs import model_inputs
    from lowp.ir.graph import load_model
    from lowp.passes.annotate import annotate
    from lowp.passes.calibrate import calibrate
    from lowp.passes.canonicalize import canonicalize

    model = canonicalize(load_model(demo_model_path()))
    inputs = model_inputs(model)
    config = Config(method=CalibMethod.ENTROPY, batch_size=16)
    tensors = annotate(model, config).activations
    tables = []
    for path in (scan.REFERENCE, PATHS[-1]):
        with scan.use_path(path):
            feeds = as_feeds(load_demo_calibration(), inputs, 16)
            tables.append(calibrate(model, tensors, feeds, inputs, config, progress=False))
    assert json.dumps(tables[0].to_dict()) == json.dumps(tables[1].to_dict())
