"""Observers: exact merge (== one pass, associative, commutative), JSON round trip, NaN/Inf."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lowp.calib import HistogramObserver, MinMaxObserver, observer_from_dict
from lowp.errors import DataError, QuantizationError


@st.composite
def batches(draw: st.DrawFn, max_batches: int = 4) -> list[np.ndarray]:
    """A few float32 batches of random sizes (some empty), mixed scales and exact zeros."""
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(1, max_batches))
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        size = int(rng.integers(0, 200))
        x = rng.standard_normal(size) * 10.0 ** rng.integers(-3, 4)
        x[rng.random(size) < 0.2] = 0.0
        out.append(x.astype(np.float32))
    return out


NUM_BINS = st.sampled_from([4, 6, 16, 101, 1024])


def one_pass(name: str, parts: list[np.ndarray],
             num_bins: int) -> tuple[MinMaxObserver, HistogramObserver]:
    mm = MinMaxObserver(name)
    hist = HistogramObserver(name, num_bins)
    for x in parts:
        mm.update(x)
        hist.update(x)
    return mm, hist


def state(obs: MinMaxObserver | HistogramObserver) -> str:
    """The whole state as JSON text (tells -0.0 from 0.0, unlike ==)."""
    return json.dumps(obs.to_dict())


@given(batches(), batches(), NUM_BINS)
def test_merge_equals_single_pass(a: list[np.ndarray], b: list[np.ndarray],
                                  num_bins: int) -> None:
    mm_a, h_a = one_pass("t", a, num_bins)
    mm_b, h_b = one_pass("t", b, num_bins)
    mm_ab, h_ab = one_pass("t", a + b, num_bins)
    assert mm_a.merge(mm_b) == mm_ab
    assert h_a.merge(h_b) == h_ab
    assert h_a.merge(h_b).count == sum(x.size for x in a + b)
    # commutative
    assert h_b.merge(h_a) == h_ab
    assert mm_b.merge(mm_a) == mm_ab


@given(batches(), batches(), batches(), NUM_BINS)
def test_merge_is_associative(a: list[np.ndarray], b: list[np.ndarray], c: list[np.ndarray],
                              num_bins: int) -> None:
    (ma, ha), (mb, hb), (mc, hc) = (one_pass("t", s, num_bins) for s in (a, b, c))
    assert ha.merge(hb).merge(hc) == ha.merge(hb.merge(hc))
    assert ma.merge(mb).merge(mc) == ma.merge(mb.merge(mc))


@given(batches(max_batches=6), NUM_BINS, st.randoms(use_true_random=False))
def test_state_does_not_depend_on_order_or_split(parts: list[np.ndarray], num_bins: int,
                                                 rnd: object) -> None:
    """Any order of the values and any split into batches give the same state: the bins
    depend on the final min/max only (coarsening k -> k >> d equals binning at once)."""
    _, ref = one_pass("t", parts, num_bins)
    x = np.concatenate(parts)
    perm = np.random.default_rng(rnd.randrange(2**32)).permutation(x.size)  # type: ignore[attr-defined]
    y = x[perm]
    cuts = sorted(rnd.randrange(y.size + 1) for _ in range(3))  # type: ignore[attr-defined]
    _, other = one_pass("t", np.split(y, cuts), num_bins)
    _, whole = one_pass("t", [x], num_bins)
    assert other == ref and whole == ref


@given(batches(), NUM_BINS)
def test_json_round_trip(parts: list[np.ndarray], num_bins: int) -> None:
    mm, hist = one_pass("layer/out:0", parts, num_bins)
    for obs in (mm, hist):
        back = observer_from_dict(json.loads(json.dumps(obs.to_dict(), allow_nan=False)))
        assert type(back) is type(obs)
        assert back == obs
        assert back.min == obs.min and back.max == obs.max and back.count == obs.count


@given(batches(), NUM_BINS)
def test_histogram_is_numpy_histogram_on_its_edges(parts: list[np.ndarray],
                                                   num_bins: int) -> None:
    """The symmetric view equals np.histogram over its own edges exactly; zero is the
    middle edge; [-amax, amax] spans num_bins / 2 to num_bins bins."""
    _, hist = one_pass("t", parts, num_bins)
    x = np.concatenate(parts)
    assert hist.count == x.size
    assert hist.zeros == np.count_nonzero(x == 0)
    if x.size == 0:
        return
    counts, edges = hist.counts, hist.edges
    half = counts.size // 2
    assert counts.size % 2 == 0 and edges[half] == 0.0
    assert np.array_equal(edges, -edges[::-1])
    assert np.all(np.diff(edges) == hist.width)
    assert counts[half] >= hist.zeros
    ref, _ = np.histogram(x.astype(np.float64), bins=edges)
    assert np.array_equal(ref, counts)
    assert counts.size <= num_bins and hist.stored_counts.size <= num_bins
    amax = float(np.abs(x.astype(np.float64)).max())
    if amax > 0:
        assert num_bins // 4 <= amax / hist.width < num_bins // 2


def test_bins_follow_the_data_and_coarsen() -> None:
    hist = HistogramObserver("t", 8)
    hist.update(np.array([0.3, -0.2], np.float32))     # amax 0.3 < 4 w: w = 2^-3
    assert hist.width == 2.0 ** -3 and hist.first == -2
    assert hist.stored_counts.tolist() == [1, 0, 0, 0, 1]
    hist.update(np.array([2.5], np.float32))           # amax 2.5 < 4 w: w = 1
    assert hist.width == 1.0 and hist.first == -1
    assert hist.stored_counts.tolist() == [1, 1, 0, 1]
    assert hist.counts.tolist() == [0, 0, 1, 1, 0, 1]
    assert hist.edges.tolist() == [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]


def test_zero_only_histogram() -> None:
    hist = HistogramObserver("t", 8)
    hist.update(np.zeros(7, np.float32))
    assert hist.counts.tolist() == [0, 7]
    assert hist.zeros == 7
    hist.update(np.array([1.0], np.float32))
    assert hist.counts.sum() == 8 and hist.zeros == 7
    assert hist.counts[hist.counts.size // 2] == 7


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("make", [lambda: MinMaxObserver("conv1/out"),
                                  lambda: HistogramObserver("conv1/out", 8)])
def test_nan_inf_rejected_with_tensor_name(bad: float, make: object) -> None:
    obs = make()  # type: ignore[operator]
    x = np.array([0.5, bad, 1.0], np.float32)
    with pytest.raises(DataError, match=r"tensor 'conv1/out'.*(NaN|Inf)"):
        obs.update(x)
    assert obs.is_empty  # nothing was recorded


def test_non_numeric_rejected() -> None:
    with pytest.raises(DataError, match="tensor 'b'"):
        MinMaxObserver("b").update(np.array([True, False]))


def test_empty_batches_are_ignored() -> None:
    mm = MinMaxObserver("t")
    mm.update(np.zeros((0, 3), np.float32))
    assert mm.is_empty and mm.min == np.inf and mm.max == -np.inf
    empty = MinMaxObserver("t")
    mm.update(np.array([2.0], np.float32))
    assert mm.merge(empty) == mm and empty.merge(mm) == mm
    hist, none = HistogramObserver("t", 8), HistogramObserver("t", 8)
    hist.update(np.array([2.0, 0.0], np.float32))
    assert hist.merge(none) == hist and none.merge(hist) == hist


def test_merge_rejects_incompatible() -> None:
    a = HistogramObserver("t", 8)
    with pytest.raises(DataError, match="different bin budgets"):
        a.merge(HistogramObserver("t", 16))
    with pytest.raises(DataError, match="tensor 'u'"):
        a.merge(HistogramObserver("u", 8))
    with pytest.raises(DataError, match="cannot merge"):
        a.merge(MinMaxObserver("t"))  # type: ignore[arg-type]


@pytest.mark.parametrize("num_bins", [0, 3, -8, 1])
def test_tiny_num_bins_rejected(num_bins: int) -> None:
    with pytest.raises(QuantizationError, match=">= 4"):
        HistogramObserver("t", num_bins)


def test_version_1_state_is_refused_clearly() -> None:
    old = {"kind": "histogram", "name": "conv/out", "amax": 1.0, "num_bins": 3, "min": 0.0,
           "max": 0.0, "zeros": 1, "counts": [0, 1, 0]}
    with pytest.raises(DataError, match=r"tensor 'conv/out'.*version 1.*calibrate again"):
        observer_from_dict(old)


def good_state() -> dict:
    hist = HistogramObserver("t", 8)
    hist.update(np.array([-0.2, 0.0, 0.3], np.float32))
    return hist.to_dict()


@pytest.mark.parametrize("change", [
    {"counts": [1, 0, 0, 0]},                       # one bin too few for min/max
    {"counts": [1, 0, 1.5, 0, 1]},
    {"counts": [1, 0, -1, 0, 2]},
    {"exponent": -4},                               # layout not the one of min/max
    {"first": -5},
    {"max": 2.0},
    {"zeros": 2},
    {"num_bins": 2},
    {"version": 3},
])
def test_malformed_histogram_state_rejected(change: dict) -> None:
    state = {**good_state(), **change}
    with pytest.raises(DataError):
        observer_from_dict(state)


@pytest.mark.parametrize("state", [
    {"kind": "what"},
    {"kind": "minmax", "name": "t", "min": 1.0, "max": 0.0, "count": 2},
    {"kind": "minmax", "name": "t", "min": None, "max": 1.0, "count": 2},
    {"kind": "minmax", "name": "t", "min": "a", "max": 1.0, "count": 2},
])
def test_malformed_minmax_state_rejected(state: dict) -> None:
    with pytest.raises(DataError):
        observer_from_dict(state)


def test_good_state_loads() -> None:
    assert observer_from_dict(good_state()).count == 3


def test_denormal_range_does_not_overflow() -> None:
    hist = HistogramObserver("t", 8)
    hist.update(np.array([-1e-320, 0.0, 1e-320]))
    assert hist.count == 3 and hist.zeros == 1
    assert np.all(np.isfinite(hist.edges)) and hist.width > 0
    assert hist.counts.sum() == 3 and hist.counts[hist.counts.size // 2] == 1
