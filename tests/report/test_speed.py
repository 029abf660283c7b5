"""The latency table: four interleaved timings and the verdict's rule."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import lowp
from lowp.data import demo_model_path, load_demo_calibration
from lowp.report.speed import ENGINES, PAYS, SpeedReport, measure_speed


def _report(lowp_float: float, lowp_int8: float, ort_float: float, ort_int8: float
            ) -> SpeedReport:
    return SpeedReport({("lowp", "float"): lowp_float, ("lowp", "int8"): lowp_int8,
                        ("ONNX Runtime", "float"): ort_float,
                        ("ONNX Runtime", "int8"): ort_int8}, threads=1, rounds=9)


def test_int8_pays_only_when_its_fastest_engine_beats_the_fastest_float_run() -> None:
    pays = _report(2.0, 0.5, 1.0, 0.8)
    assert pays.best("int8") == ("lowp", 0.5) and pays.best("float") == ("ONNX Runtime", 1.0)
    assert pays.advice().startswith("int8 pays") and "2.00x" in pays.advice()
    # a tiny model: the float model on ONNX Runtime is as fast as either int8 run
    tiny = _report(0.4, 0.05, 0.03, 0.04)
    assert tiny.advice().startswith("int8 does not pay") and "ONNX Runtime" in tiny.advice()
    # within the margin counts as not paying
    edge = _report(1.0, PAYS * 1.0 + 1e-6, 1.0, 5.0)
    assert edge.advice().startswith("int8 does not pay")
    text = pays.format()
    assert "lowp int8 / ONNX Runtime int8: 0.62" in text and "9 interleaved rounds" in text


@pytest.mark.parametrize("threads", [1, 2])
def test_measure_speed_times_all_four_runs(threads: int) -> None:
    calib = load_demo_calibration()
    model = onnx.load(str(demo_model_path()))
    qdq = lowp.quantize_model(model, calib, lowp.Config(method=lowp.CalibMethod.MINMAX))
    feed = {k: v[:1] for k, v in calib.items()}
    report = measure_speed(qdq, model, feed, threads=threads, budget_s=0.0, min_rounds=2)
    assert report.rounds == 2 and report.threads == threads
    assert set(report.ms) == {(e, k) for e in ENGINES for k in ("float", "int8")}
    assert all(np.isfinite(v) and v > 0 for v in report.ms.values())
