"""Range methods: entropy (against a loop oracle), percentile, mse, and choose_range."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lowp.calib import (
    HistogramObserver,
    MinMaxObserver,
    choose_range,
    entropy_range,
    kl_divergences,
    mse_errors,
    mse_range,
    percentile_range,
)
from lowp.config import CalibMethod
from lowp.errors import DataError, QuantizationError
from lowp.qparams import QType, choose_qparams, dequantize, quantize

from .reference import kl_divergences_loop, mse_loop


@st.composite
def histograms(draw: st.DrawFn) -> np.ndarray:
    """Random histograms: odd sizes (zero in the middle bin) and even sizes (zero the
    middle edge, HistogramObserver's), dense or sparse, bulk or tails, huge or tiny."""
    seed = draw(st.integers(0, 2**32 - 1))
    num_bins = draw(st.sampled_from([3, 5, 9, 31, 61, 101, 2, 4, 6, 10, 32, 62, 100]))
    density = draw(st.sampled_from([1.0, 0.5, 0.1, 0.02]))
    scale = draw(st.sampled_from([1, 5, 1000, 10**6]))
    rng = np.random.default_rng(seed)
    h = rng.integers(0, scale + 1, num_bins) * (rng.random(num_bins) < density)
    if draw(st.booleans()):  # a peaked bulk in the middle, as activations have
        mid = num_bins // 2
        h[mid - num_bins // 8: mid + num_bins // 8 + 1] += rng.integers(0, 50 * scale + 1)
    if h.sum() == 0:
        h[int(rng.integers(num_bins))] = 1
    # fractional counts (weighted histograms) push eps / count past the series' range; a
    # power of two keeps every partial sum exact, so the vectorised form and the loop see
    # the same values where a smoothed q lands exactly on zero (a tie decided by rounding)
    return h * draw(st.sampled_from([1, 1, 1, 2.0**-10]))


LEVELS = st.sampled_from([2, 3, 4, 7, 15, 16, 31])


def edges_for(h: np.ndarray, amax: float = 1.0) -> np.ndarray:
    return np.linspace(-amax, amax, h.size + 1)


@given(histograms(), LEVELS)
def test_kl_vectorised_equals_loop(h: np.ndarray, levels: int) -> None:
    vec = kl_divergences(h, levels)
    ref = kl_divergences_loop(h, levels)
    assert vec.shape == ref.shape
    assert np.array_equal(np.isinf(vec), np.isinf(ref))
    fin = np.isfinite(ref)
    np.testing.assert_allclose(vec[fin], ref[fin], rtol=1e-9, atol=1e-11)
    if fin.any():  # the chosen candidate is a minimum of the oracle too
        assert ref[int(np.argmin(vec))] <= ref[fin].min() + 1e-11


@pytest.mark.parametrize("levels", [255, 15])
def test_kl_vectorised_equals_loop_at_default_size(levels: int) -> None:
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.standard_normal(300_000), rng.standard_normal(30) * 20])
    amax = np.abs(x).max()
    h, _ = np.histogram(x, bins=8001, range=(-amax, amax))
    vec = kl_divergences(h, levels)
    picks = [levels // 2, levels // 2 + 1, 300, 517, 1200, 2500, 3999, 4000]
    ref = kl_divergences_loop(h, levels, picks)
    np.testing.assert_allclose(vec[np.array(picks) - levels // 2], ref, rtol=1e-9,
                               atol=1e-12)


@pytest.mark.parametrize("levels", [255, 15])
def test_kl_vectorised_equals_loop_on_observer_histogram(levels: int) -> None:
    """The one-pass observer's even histogram (zero the middle edge), default budget."""
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.standard_normal(300_000), rng.standard_normal(30) * 20])
    obs = HistogramObserver("x")
    obs.update(x.astype(np.float32))
    h = obs.counts
    half = h.size // 2
    first = (levels + 1) // 2                       # the least window of 2 i >= levels bins
    vec = kl_divergences(h, levels)
    assert vec.size == half - first + 1
    picks = [first, first + 1, 300, 517, 1200, 2500, half - 1, half]
    ref = kl_divergences_loop(h, levels, picks)
    np.testing.assert_allclose(vec[np.array(picks) - first], ref, rtol=1e-9, atol=1e-12)
    lo, hi = entropy_range(h, obs.edges, levels)
    assert hi == -lo == obs.edges[half + first + int(np.argmin(vec))]


def test_entropy_gaussian_with_outliers_clips_well_below_amax() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(200_000), [-50.0, 45.0, 50.0]]).astype(np.float32)
    mm = MinMaxObserver("x")
    mm.update(x)
    hist = HistogramObserver("x")
    hist.update(x)
    lo, hi = entropy_range(hist.counts, hist.edges)
    assert lo == -hi
    assert 2.5 < hi < 0.25 * mm.amax
    assert choose_range(hist, CalibMethod.ENTROPY) == (lo, hi)


def test_entropy_four_bit_clips_harder_than_eight_bit() -> None:
    rng = np.random.default_rng(2)
    x = rng.laplace(size=100_000)
    amax = np.abs(x).max()
    h, e = np.histogram(x, bins=2001, range=(-amax, amax))
    assert entropy_range(h, e, 15)[1] < entropy_range(h, e, 255)[1]


def test_entropy_without_candidates_returns_full_range() -> None:
    h = np.array([1, 2, 3])
    assert kl_divergences(h, 255).size == 0
    assert entropy_range(h, edges_for(h, 2.0), 255) == (-2.0, 2.0)


@pytest.mark.parametrize("p", [99.0, 99.9, 95.0])
def test_percentile_uniform_close_to_analytic(p: float) -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(-1.0, 3.0, 400_000)
    amax = np.abs(x).max()
    h, e = np.histogram(x, bins=2001, range=(-amax, amax))
    lo, hi = percentile_range(h, e, p)
    q = (100.0 - p) / 100.0
    assert lo == pytest.approx(-1.0 + 4.0 * q, abs=0.01)
    assert hi == pytest.approx(3.0 - 4.0 * q, abs=0.01)


@given(histograms(), st.sampled_from([50.0, 90.0, 99.0, 99.99, 100.0]))
def test_percentile_matches_numpy_quantile_of_bin_uniform_data(h: np.ndarray,
                                                               p: float) -> None:
    e = edges_for(h)
    lo, hi = percentile_range(h, e, p)
    assert e[0] <= lo <= hi <= e[-1]
    cum = np.concatenate([[0.0], np.cumsum(h)])
    # interpolating the CDF at the result gives back the requested fraction
    for v, frac in ((lo, (100 - p) / 100), (hi, p / 100)):
        assert np.interp(v, e, cum) == pytest.approx(frac * cum[-1], rel=1e-9, abs=1e-6)
    nz = np.flatnonzero(h)
    if p == 100.0:
        assert (lo, hi) == (e[nz[0]], e[nz[-1] + 1])


def test_percentile_rejects_bad_p() -> None:
    with pytest.raises(QuantizationError):
        percentile_range(np.ones(3), edges_for(np.ones(3)), 40.0)


@given(histograms(), LEVELS, st.integers(0, 3))
def test_mse_vectorised_equals_loop(h: np.ndarray, levels: int, zeros_div: int) -> None:
    e = edges_for(h, 3.0)
    zeros = int(h[h.size // 2]) // (zeros_div + 1) if zeros_div else 0
    t, err = mse_errors(h, e, levels, exact_zeros=zeros)
    ref = mse_loop(h, e, levels, zeros)
    np.testing.assert_allclose(t, e[h.size // 2 + 1:])
    scale = float(h.sum()) * 9.0
    np.testing.assert_allclose(err, ref, rtol=1e-9, atol=1e-12 * scale)


def quant_mse(x: np.ndarray, lo: float, hi: float, qtype: QType = QType.INT8) -> float:
    qp = choose_qparams(lo, hi, qtype, symmetric=True)
    return float(np.mean((dequantize(quantize(x, qp), qp) - x) ** 2))


@pytest.mark.parametrize("levels,qtype", [(255, QType.INT8), (15, QType.INT4)])
def test_mse_beats_minmax_on_heavy_tails(levels: int, qtype: QType) -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_t(3, 100_000).astype(np.float32)
    mm = MinMaxObserver("x")
    mm.update(x)
    hist = HistogramObserver("x", 4096)
    hist.update(x)
    lo, hi = choose_range(hist, CalibMethod.MSE, num_quantized_bins=levels)
    assert mm.min <= lo <= hi <= mm.max
    err_mse = quant_mse(x, lo, hi, qtype)
    err_minmax = quant_mse(x, mm.min, mm.max, qtype)
    assert err_mse < err_minmax
    # and close to the best of a brute-force scan over thresholds
    scan = min(quant_mse(x, -t, t, qtype) for t in np.geomspace(0.5, mm.amax, 40))
    assert err_mse < 1.02 * scan


def make_hist(x: np.ndarray, num_bins: int = 2048) -> HistogramObserver:
    mm = MinMaxObserver("act")
    mm.update(x)
    hist = HistogramObserver("act", num_bins)
    hist.update(x)
    return hist


# the range rules (MEASURED is the pipeline's choice among them: tests/passes/test_method_choice)
RANGE_METHODS = [m for m in CalibMethod if m is not CalibMethod.MEASURED]


@pytest.mark.parametrize("method", RANGE_METHODS)
def test_choose_range_clipped_to_observed(method: CalibMethod) -> None:
    rng = np.random.default_rng(5)
    x = np.abs(rng.standard_normal(50_000)).astype(np.float32) + 0.25   # one-sided
    hist = make_hist(x)
    lo, hi = choose_range(hist, method, percentile=99.0)
    assert hist.min <= lo <= hi <= hist.max
    if method is CalibMethod.MINMAX:
        assert (lo, hi) == (hist.min, hist.max)


def test_unsigned_non_negative_uses_doubled_levels() -> None:
    rng = np.random.default_rng(6)
    x = np.maximum(rng.standard_normal(100_000), 0).astype(np.float32)
    hist = make_hist(x)
    hi_u8 = choose_range(hist, CalibMethod.ENTROPY, unsigned=True)[1]
    # (the window's upper edge may pass the observed max, which clips it)
    assert hi_u8 == min(entropy_range(hist.counts, hist.edges, 511)[1], hist.max)
    assert hi_u8 != min(entropy_range(hist.counts, hist.edges, 255)[1], hist.max)
    hi_mse = choose_range(hist, CalibMethod.MSE, unsigned=True)[1]
    assert hi_mse == min(mse_range(hist.counts, hist.edges, 511, exact_zeros=hist.zeros)[1],
                         hist.max)


def test_choose_range_errors_and_degenerate() -> None:
    mm = MinMaxObserver("t")
    with pytest.raises(DataError, match="no calibration data"):
        choose_range(mm, CalibMethod.MINMAX)
    mm.update(np.array([-1.0, 2.0], np.float32))
    with pytest.raises(DataError, match="needs histogram"):
        choose_range(mm, CalibMethod.ENTROPY)
    const = make_hist(np.full(10, 3.0, np.float32), 5)
    for method in RANGE_METHODS:
        assert choose_range(const, method) == (3.0, 3.0)
    with pytest.raises(DataError, match="needs a fixed method"):
        choose_range(const, CalibMethod.MEASURED)


def test_kl_direct_path_for_sparse_fractional_histogram(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # eps / count is large here, so part of the candidates bypass the series (C6)
    from lowp.calib import methods

    masks: list[np.ndarray] = []
    inner = methods._inner_entropy

    def spy(*args: object) -> tuple[np.ndarray, np.ndarray]:
        out, direct = inner(*args)  # type: ignore[arg-type]
        masks.append(direct)
        return out, direct

    monkeypatch.setattr(methods, "_inner_entropy", spy)
    h = np.zeros(101)
    h[[10, 48, 50, 80]] = [1e-3, 2e-3, 1e-3, 5e-3]
    vec, ref = kl_divergences(h, 3), kl_divergences_loop(h, 3)
    assert masks[0].any() and not masks[0].all()
    assert np.array_equal(np.isinf(vec), np.isinf(ref))
    np.testing.assert_allclose(vec[np.isfinite(ref)], ref[np.isfinite(ref)], rtol=1e-9,
                               atol=1e-12)
