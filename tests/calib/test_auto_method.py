"""CalibMethod.AUTO: the per-tensor choice among minmax, percentile, entropy and mse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import lowp
from lowp.calib import CalibrationTable, HistogramObserver, MinMaxObserver
from lowp.calib.methods import (
    AUTO_CANDIDATES,
    AutoChoice,
    auto_choice,
    choose_range,
    range_error,
)
from lowp.config import CalibMethod, Config
from lowp.data import demo_model_path, load_demo_calibration
from lowp.errors import DataError


def observed(name: str, x: np.ndarray, num_bins: int = 16384) -> HistogramObserver:
    obs = HistogramObserver(name, num_bins)
    obs.update(x)
    return obs


def gaussian_with_outliers(seed: int = 0) -> HistogramObserver:
    """10^6 standard normal values and two at +-50: min/max spends most levels on two."""
    rng = np.random.default_rng(seed)
    return observed("outliers", np.concatenate([rng.standard_normal(1_000_000), [-50.0, 50.0]]))


def fake_quant_mse(x: np.ndarray, lo: float, hi: float, steps: int = 255) -> float:
    """Direct measurement: quantize x on the grid of [lo, hi] (as qparams do) and back."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / steps
    zero_point = np.clip(-np.rint(lo / scale), 0, steps)
    q = np.clip(np.rint(x / scale) + zero_point, 0, steps)
    return float(np.mean(((q - zero_point) * scale - x) ** 2))


def test_range_error_matches_fake_quantization() -> None:
    """The histogram estimate (C10) agrees with quantizing the samples themselves."""
    rng = np.random.default_rng(1)
    x = rng.laplace(size=400_000)
    obs = observed("x", x)
    for lo, hi in [(x.min(), x.max()), (-3.0, 3.0), (-1.0, 2.0), (-0.5, 0.5)]:
        est = range_error(obs.counts, obs.edges, lo, hi, exact_zeros=obs.zeros)
        assert est == pytest.approx(fake_quant_mse(x, lo, hi), rel=0.05)


def test_outliers_percentile_and_mse_beat_minmax() -> None:
    obs = gaussian_with_outliers()
    (lo, hi), choice = auto_choice(obs)
    errors = choice.errors
    assert errors["percentile"] < errors["minmax"] and errors["mse"] < errors["minmax"]
    assert choice.method is not CalibMethod.MINMAX
    assert errors[choice.method.value] == min(errors.values())
    assert (lo, hi) == choose_range(obs, choice.method)
    assert hi < 20.0 and lo > -20.0                  # the outliers are clipped


@pytest.mark.parametrize("saturated", [False, True])
def test_uniform_keeps_min_max(saturated: bool) -> None:
    """On a uniform, clipping barely pays: AUTO keeps min/max, or mse's range less than
    0.5% inside it (the MSE optimum of a uniform clips a sliver), which quantizes the
    samples at least as well. `saturated`: half of the values sit at the ends, as after a
    saturating tanh."""
    rng = np.random.default_rng(2)
    x = rng.uniform(-1.0, 1.0, 200_000)
    if saturated:
        x = np.concatenate([x, np.repeat([-1.0, 1.0], 100_000)])
    obs = observed("u", x)
    (lo, hi), choice = auto_choice(obs)
    assert choice.method in (CalibMethod.MINMAX, CalibMethod.MSE)
    width = obs.max - obs.min
    assert lo <= obs.min + 0.005 * width and hi >= obs.max - 0.005 * width
    assert fake_quant_mse(x, lo, hi) <= 1.01 * fake_quant_mse(x, obs.min, obs.max)


def test_min_max_statistics_keep_their_range() -> None:
    obs = MinMaxObserver("w")
    obs.update(np.array([-2.0, 3.0]))
    assert auto_choice(obs) == ((-2.0, 3.0), AutoChoice(CalibMethod.MINMAX, {}))
    assert choose_range(obs, CalibMethod.MINMAX) == (-2.0, 3.0)


def test_candidates_are_the_fixed_methods() -> None:
    assert set(AUTO_CANDIDATES) == set(CalibMethod) - {CalibMethod.AUTO, CalibMethod.MEASURED}


def test_table_records_choices_and_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    weights = MinMaxObserver("w")
    weights.update(rng.standard_normal(10))
    table = CalibrationTable([gaussian_with_outliers(),
                              observed("u", rng.uniform(0.0, 1.0, 50_000)), weights])
    ranges = table.choose_ranges(CalibMethod.AUTO, unsigned={"outliers", "u"}, exact={"w"})
    choices = table.choices
    assert set(choices) == {"outliers", "u"}          # constants have nothing to choose
    assert choices["outliers"].method is not CalibMethod.MINMAX
    assert set(choices["u"].errors) == {m.value for m in AUTO_CANDIDATES}
    path = tmp_path / "auto.json"
    table.save(path)
    back = CalibrationTable.load(path)
    assert back == table
    assert back.ranges == ranges and back.choices == choices
    assert back.settings["method"] == "auto"
    table.choose_ranges(CalibMethod.MINMAX, exact={"w"})   # a fixed method clears them
    assert table.choices == {}


def test_tables_without_choices_still_load(tmp_path: Path) -> None:
    table = CalibrationTable([gaussian_with_outliers()])
    table.choose_ranges(CalibMethod.MSE)
    d = table.to_dict()
    assert "choice" not in d["tensors"]["outliers"]
    assert CalibrationTable.from_dict(d) == table


def test_malformed_choice_names_the_tensor() -> None:
    table = CalibrationTable([gaussian_with_outliers()])
    table.choose_ranges(CalibMethod.AUTO)
    d = table.to_dict()
    d["tensors"]["outliers"]["choice"] = {"method": "best", "errors": {}}
    with pytest.raises(DataError, match="'outliers'.*unknown method"):
        CalibrationTable.from_dict(d)


def test_auto_model_is_valid_and_runs_in_onnxruntime() -> None:
    calib = load_demo_calibration()
    q = lowp.quantize_model(demo_model_path(), calib, Config(method=CalibMethod.AUTO))
    onnx.checker.check_model(q, full_check=True)
    session = ort.InferenceSession(q.SerializeToString(), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    batch = {name: np.asarray(calib[name][:4])}
    (out, *_) = session.run(None, batch)
    ref = ort.InferenceSession(str(demo_model_path()),
                               providers=["CPUExecutionProvider"]).run(None, batch)[0]
    assert out.shape == ref.shape
    assert np.all(np.isfinite(out))
    snr = 10 * np.log10(np.sum(ref.astype(np.float64) ** 2)
                        / np.sum((ref.astype(np.float64) - out) ** 2))
    assert snr > 15.0
