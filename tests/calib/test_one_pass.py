"""`calibrate` reads the feeds once for every method (one ONNX Runtime forward pass per
feed), and its histograms equal observers filled directly with the same tensors."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import pytest

from lowp.calib import HistogramObserver
from lowp.config import CalibMethod, Config
from lowp.data import demo_model_path, load_demo_calibration
from lowp.feeds import as_feeds
from lowp.inputs import model_inputs
from lowp.ir.graph import load_model
from lowp.passes.annotate import annotate
from lowp.passes.calibrate import calibrate, float_session, run_exposed
from lowp.passes.canonicalize import canonicalize


class CountingFeeds:
    """Re-iterable feeds that count how often they are iterated."""

    def __init__(self, feeds: list[Mapping[str, np.ndarray]]) -> None:
        self.feeds = feeds
        self.passes = 0
        self.num_feeds = len(feeds)

    def __iter__(self) -> Iterator[Mapping[str, np.ndarray]]:
        self.passes += 1
        return iter(self.feeds)


@pytest.fixture(scope="module")
def setup() -> tuple:
    model = canonicalize(load_model(demo_model_path()))
    inputs = model_inputs(model)
    feeds = list(as_feeds(load_demo_calibration(), inputs, 64))
    return model, inputs, feeds


# MEASURED is the pipeline's choice among the range methods, not one calibrate runs
@pytest.mark.parametrize("method", [m for m in CalibMethod if m is not CalibMethod.MEASURED])
def test_every_method_reads_the_feeds_once(setup: tuple, method: CalibMethod) -> None:
    model, inputs, feeds = setup
    config = Config(method=method, batch_size=64)
    counting = CountingFeeds(feeds)
    table = calibrate(model, annotate(model, config).activations, counting, inputs, config,
                      progress=False)
    assert counting.passes == 1
    assert len(table.ranges) > 0


def test_histograms_are_those_of_the_tensors(setup: tuple) -> None:
    model, inputs, feeds = setup
    config = Config(method=CalibMethod.ENTROPY, batch_size=64)
    tensors = annotate(model, config).activations
    table = calibrate(model, tensors, feeds, inputs, config, progress=False)
    from lowp.passes.calibrate import expose_tensors

    fed = {i.name for i in inputs}
    computed = [t for t in tensors if t not in fed and t in table]
    session = float_session(expose_tensors(model, computed), mem_pattern=False)
    direct = {t: HistogramObserver(t, config.num_bins) for t in computed}
    for feed in feeds:
        for t, v in zip(computed, run_exposed(session, computed, feed), strict=True):
            direct[t].update(np.array(v))
    checked = 0
    for t, obs in direct.items():
        if isinstance(table[t], HistogramObserver):
            assert table[t] == obs, t
            checked += 1
    assert checked > 0
