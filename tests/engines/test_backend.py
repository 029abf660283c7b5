"""The "dnnlowp-acc16" backend runs a QDQ model's conv/FC groups through (S1)-(S6)."""

from __future__ import annotations

import numpy as np
import pytest

import lowp
from lowp.data import demo_model_path, load_demo_calibration, load_demo_test
from lowp.engines import acc16_backend_factory
from lowp.runtime.backends import BACKENDS


def test_session_with_acc16_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "dnnlowp-acc16" in BACKENDS
    q = lowp.quantize_model(demo_model_path(), load_demo_calibration())
    feeds, labels = load_demo_test()
    x = {"input": feeds["input"][:64]}
    ref = lowp.Session(q, backend="reference").run(x)["logits"]
    # every weight an outlier: int32 accumulation throughout, identical to the reference
    monkeypatch.setitem(BACKENDS, "dnnlowp-acc16-all-outliers", acc16_backend_factory(0))
    exact = lowp.Session(q, backend="dnnlowp-acc16-all-outliers").run(x)["logits"]
    np.testing.assert_array_equal(exact, ref)
    acc16 = lowp.Session(q, backend="dnnlowp-acc16").run(x)["logits"]
    assert (acc16.argmax(1) == ref.argmax(1)).mean() >= 0.95
    monkeypatch.setitem(BACKENDS, "dnnlowp-acc16-reference",
                        acc16_backend_factory(impl="reference"))
    again = lowp.Session(q, backend="dnnlowp-acc16-reference").run(x)["logits"]
    np.testing.assert_array_equal(again, acc16)
