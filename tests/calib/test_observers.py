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


NUM_BINS = st.sampled_from([3, 5, 11, 101])


def two_pass(name: str, parts: list[np.ndarray], num_bins: int,
             amax: float) -> tuple[MinMaxObserver, HistogramObserver]:
    mm = MinMaxObserver(name)
    hist = HistogramObserver(name, amax, num_bins)
    for x in parts:
        mm.update(x)
        hist.update(x)
    return mm, hist


def amax_of(*shards: list[np.ndarray]) -> float:
    mm = MinMaxObserver("t")
    for shard in shards:
        for x in shard:
            mm.update(x)
    return 0.0 if mm.is_empty else mm.amax


@given(batches(), batches(), NUM_BINS)
def test_merge_equals_single_pass(a: list[np.ndarray], b: list[np.ndarray],
                                  num_bins: int) -> None:
    amax = amax_of(a, b)
    mm_a, h_a = two_pass("t", a, num_bins, amax)
    mm_b, h_b = two_pass("t", b, num_bins, amax)
    mm_ab, h_ab = two_pass("t", a + b, num_bins, amax)
    assert mm_a.merge(mm_b) == mm_ab
    assert h_a.merge(h_b) == h_ab
    assert h_a.merge(h_b).count == sum(x.size for x in a + b)
    # commutative
    assert h_b.merge(h_a) == h_ab
    assert mm_b.merge(mm_a) == mm_ab


@given(batches(), batches(), batches(), NUM_BINS)
def test_merge_is_associative(a: list[np.ndarray], b: list[np.ndarray], c: list[np.ndarray],
                              num_bins: int) -> None:
    amax = amax_of(a, b, c)
    (ma, ha), (mb, hb), (mc, hc) = (two_pass("t", s, num_bins, amax) for s in (a, b, c))
    assert ha.merge(hb).merge(hc) == ha.merge(hb.merge(hc))
    assert ma.merge(mb).merge(mc) == ma.merge(mb.merge(mc))


@given(batches(), NUM_BINS)
def test_json_round_trip(parts: list[np.ndarray], num_bins: int) -> None:
    mm, hist = two_pass("layer/out:0", parts, num_bins, amax_of(parts))
    for obs in (mm, hist):
        back = observer_from_dict(json.loads(json.dumps(obs.to_dict(), allow_nan=False)))
        assert type(back) is type(obs)
        assert back == obs
        assert back.min == obs.min and back.max == obs.max and back.count == obs.count


@given(batches(), NUM_BINS)
def test_histogram_matches_numpy_and_zero_is_central(parts: list[np.ndarray],
                                                     num_bins: int) -> None:
    amax = amax_of(parts)
    _, hist = two_pass("t", parts, num_bins, amax)
    x = np.concatenate(parts)
    assert hist.count == x.size
    assert hist.zeros == np.count_nonzero(x == 0)
    assert hist.counts[num_bins // 2] >= hist.zeros
    if amax > 0:
        ref, _ = np.histogram(x.astype(np.float64), bins=num_bins, range=(-amax, amax))
        # float rounding may move a value sitting on an edge by one bin; counts agree closely
        assert np.abs(ref - hist.counts).sum() <= 2 * max(1, x.size // 1000)
    edges = hist.edges
    assert edges[0] == -amax and edges[-1] == amax
    assert np.allclose(edges, -edges[::-1])


def test_values_outside_range_go_to_edge_bins() -> None:
    hist = HistogramObserver("t", 1.0, 5)
    hist.update(np.array([-3.0, 0.0, 2.5, 1.0], np.float32))
    assert hist.counts.tolist() == [1, 0, 1, 0, 2]
    assert (hist.min, hist.max) == (-3.0, 2.5)


def test_zero_amax_histogram() -> None:
    hist = HistogramObserver("t", 0.0, 5)
    hist.update(np.zeros(7, np.float32))
    assert hist.counts.tolist() == [0, 0, 7, 0, 0]
    assert hist.zeros == 7


def test_from_minmax() -> None:
    mm = MinMaxObserver("t")
    mm.update(np.array([-4.0, 3.0], np.float32))
    hist = HistogramObserver.from_minmax(mm, num_bins=9)
    assert (hist.name, hist.amax, hist.num_bins) == ("t", 4.0, 9)
    with pytest.raises(DataError, match="no calibration data"):
        HistogramObserver.from_minmax(MinMaxObserver("u"))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("make", [lambda: MinMaxObserver("conv1/out"),
                                  lambda: HistogramObserver("conv1/out", 1.0, 5)])
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


def test_merge_rejects_incompatible() -> None:
    a = HistogramObserver("t", 1.0, 5)
    with pytest.raises(DataError, match="different fixed ranges"):
        a.merge(HistogramObserver("t", 2.0, 5))
    with pytest.raises(DataError, match="different fixed ranges"):
        a.merge(HistogramObserver("t", 1.0, 7))
    with pytest.raises(DataError, match="tensor 'u'"):
        a.merge(HistogramObserver("u", 1.0, 5))
    with pytest.raises(DataError, match="cannot merge"):
        a.merge(MinMaxObserver("t"))  # type: ignore[arg-type]


@pytest.mark.parametrize("num_bins", [0, 2, 8000, 1])
def test_even_or_tiny_num_bins_rejected(num_bins: int) -> None:
    with pytest.raises(QuantizationError, match="odd"):
        HistogramObserver("t", 1.0, num_bins)


@pytest.mark.parametrize("state", [
    {"kind": "what"},
    {"kind": "minmax", "name": "t", "min": 1.0, "max": 0.0, "count": 2},
    {"kind": "minmax", "name": "t", "min": None, "max": 1.0, "count": 2},
    {"kind": "minmax", "name": "t", "min": "a", "max": 1.0, "count": 2},
    {"kind": "histogram", "name": "t", "amax": 1.0, "num_bins": 3, "min": 0.0, "max": 0.0,
     "counts": [0, 1]},
    {"kind": "histogram", "name": "t", "amax": 1.0, "num_bins": 3, "min": 0.0, "max": 0.0,
     "counts": [0, 1.5, 0]},
    {"kind": "histogram", "name": "t", "amax": 1.0, "num_bins": 4, "min": 0.0, "max": 0.0,
     "counts": [0, 1, 0, 0]},
    {"kind": "histogram", "name": "t", "amax": -1.0, "num_bins": 3, "min": 0.0, "max": 0.0,
     "counts": [0, 1, 0]},
    {"kind": "histogram", "name": "t", "amax": 1.0, "num_bins": 3, "min": 0.0, "max": 0.0,
     "counts": [0, -1, 2]},
])
def test_malformed_state_rejected(state: dict) -> None:
    with pytest.raises(DataError):
        observer_from_dict(state)


def test_denormal_range_does_not_overflow() -> None:
    hist = HistogramObserver("t", 1e-320, 5)
    hist.update(np.array([-1e-320, 0.0, 1e-320]))
    assert hist.counts.tolist() == [1, 0, 1, 0, 1]
