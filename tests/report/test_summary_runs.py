"""The summary's per-layer comparison in small pieces (runs of a few samples, blocks of
float64 temporaries) gives the figures of one piece, up to float64 summation order."""

from __future__ import annotations

import numpy as np
import pytest

import lowp
from lowp.config import ActivationGranularity, CalibMethod, Config, QuantMode
from lowp.data import demo_model_path, load_demo_calibration
from lowp.pipeline import quantize
from lowp.report import analysis, layers, summary
from lowp.report.layers import LayerSources
from tests.passes.token_models import token_model


@pytest.fixture(scope="module")
def demo() -> lowp.pipeline.QuantizeResult:
    return quantize(demo_model_path(), load_demo_calibration(),
                    Config(batch_size=16, method=CalibMethod.MINMAX))


def layer_figures(s: summary.Summary) -> dict[str, tuple[float, float]]:
    return {e.tensor: (e.sqnr_db, e.max_abs_error) for e in s.worst_layers}


def test_runs_and_blocks_give_the_same_figures(demo: lowp.pipeline.QuantizeResult,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    feeds = list(demo.feeds)[:4]
    monkeypatch.setattr(summary, "_SQNR_RUN_SAMPLES", 1 << 30)
    monkeypatch.setattr(analysis, "_BLOCK_ELEMENTS", 1 << 40)
    whole = summary.summarize(demo.model, demo.float_model, feeds)
    monkeypatch.setattr(summary, "_SQNR_RUN_SAMPLES", 3)
    monkeypatch.setattr(analysis, "_BLOCK_ELEMENTS", 100)
    pieces = summary.summarize(demo.model, demo.float_model, feeds)
    a, b = layer_figures(whole), layer_figures(pieces)
    assert a.keys() == b.keys() and len(a) > 3
    for name in a:
        assert b[name][0] == pytest.approx(a[name][0], rel=1e-9, abs=1e-9), name
        assert b[name][1] == a[name][1], name
    assert whole.agreement == pieces.agreement


def test_sample_runs_cut_only_a_free_shared_batch_axis() -> None:
    feed = {"a": np.zeros((10, 2)), "b": np.ones((10,))}
    runs = summary._sample_runs(feed, batch_free=True)
    assert [len(r["a"]) for r in runs] == [4, 4, 2]
    assert np.array_equal(np.concatenate([r["b"] for r in runs]), feed["b"])
    assert summary._sample_runs(feed, batch_free=False) == [feed]
    odd = {"a": np.zeros((10, 2)), "b": np.ones((3,))}
    assert summary._sample_runs(odd, batch_free=True) == [odd]


def test_per_layer_detail_in_pieces_gives_the_same_figures(
        demo: lowp.pipeline.QuantizeResult, monkeypatch: pytest.MonkeyPatch) -> None:
    """The report's per-layer figures (accumulated and local, three comparisons each) and
    histograms do not depend on how the samples are cut into runs and blocks."""
    feeds = list(demo.feeds)[:3]
    sources = LayerSources(demo.table, demo.annotation.shared)
    monkeypatch.setattr(summary, "_SQNR_RUN_SAMPLES", 1 << 30)
    monkeypatch.setattr(layers, "_BLOCK_ELEMENTS", 1 << 40)
    whole = summary.summarize(demo.model, demo.float_model, feeds, layers=sources).layers
    monkeypatch.setattr(summary, "_SQNR_RUN_SAMPLES", 5)
    monkeypatch.setattr(layers, "_BLOCK_ELEMENTS", 97)
    pieces = summary.summarize(demo.model, demo.float_model, feeds, layers=sources).layers
    assert whole is not None and pieces is not None and whole.samples == pieces.samples == 48
    assert [r.tensor for r in whole.rows] == [r.tensor for r in pieces.rows]
    for a, b in zip(whole.rows, pieces.rows, strict=True):
        for c in layers.Comparison:
            for fa, fb in ((a.accumulated[c], b.accumulated[c]), (a.local[c], b.local[c])):
                assert fb.elements == fa.elements and fb.differ == fa.differ, a.tensor
                assert fb.max_abs == fa.max_abs, a.tensor
                assert fb.signal == pytest.approx(fa.signal, rel=1e-12), a.tensor
                assert fb.noise == pytest.approx(fa.noise, rel=1e-9, abs=1e-300), a.tensor
        assert a.ranges is not None and b.ranges is not None
        assert np.array_equal(a.ranges.counts, b.ranges.counts)
        assert a.ranges.source == "report samples"          # min/max calibration


def test_per_token_products_count_as_integer_operators() -> None:
    """A per-token dynamic model's fused products (PerTokenMatMul steps, float steps that
    compute in integers) are counted as integer operators, not as float ones."""
    model, feed = token_model(samples=8)
    quantized = quantize(model, feed, Config(
        mode=QuantMode.DYNAMIC,
        activation_granularity=ActivationGranularity.PER_TOKEN)).model
    result = summary.summarize(quantized, model, feed)
    assert (result.int_ops, result.float_ops) == (2, 1)     # two products, one Relu
    assert "2 integer operators, 1 float operators" in result.format()
