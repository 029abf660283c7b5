"""CalibrationTable: JSON save/load round trip, atomic writes, clear errors on foreign files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lowp.calib import CalibrationTable, HistogramObserver, MinMaxObserver
from lowp.config import CalibMethod
from lowp.errors import DataError


def make_table(seed: int = 0, names: tuple[str, ...] = ("a", "b/c:0")) -> CalibrationTable:
    rng = np.random.default_rng(seed)
    observers: list[MinMaxObserver | HistogramObserver] = []
    for name in names:
        x = rng.standard_normal(1000).astype(np.float32)
        hist = HistogramObserver(name, 128)
        hist.update(x)
        observers.append(hist)
    mm = MinMaxObserver("weights_only")
    mm.update(rng.standard_normal(10))
    observers.append(mm)
    return CalibrationTable(observers)


def test_save_load_round_trip(tmp_path: Path) -> None:
    table = make_table()
    table.choose_ranges(CalibMethod.MINMAX)
    table.set_range("a", -1.0, 1.5)
    ranges = table.ranges
    path = tmp_path / "calib.json"
    table.save(path)
    back = CalibrationTable.load(path)
    assert back == table
    assert back.ranges == ranges
    assert back.settings["method"] == "minmax"
    assert [p.name for p in tmp_path.iterdir()] == ["calib.json"]   # no temp file left
    json.loads(path.read_text())                                       # strict JSON


def test_save_replaces_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "calib.json"
    path.write_text("old")
    make_table().save(path)
    assert CalibrationTable.load(path) == make_table()


def test_merge_tables_equals_one_pass() -> None:
    a, b = make_table(1), make_table(2, names=("a", "z"))
    merged = a.merge(b)
    assert sorted(merged) == ["a", "b/c:0", "weights_only", "z"]
    assert merged["a"] == a["a"].merge(b["a"])  # type: ignore[arg-type]
    assert merged.ranges == {}


def test_choose_ranges() -> None:
    table = make_table()
    ranges = table.choose_ranges(CalibMethod.MINMAX)
    assert ranges["a"] == (table["a"].min, table["a"].max)
    with pytest.raises(DataError, match="weights_only"):   # min/max only: no histogram
        table.choose_ranges(CalibMethod.PERCENTILE)
    table = CalibrationTable(obs for name, obs in make_table().items() if name != "weights_only")
    ranges = table.choose_ranges(CalibMethod.ENTROPY, num_quantized_bins=15, unsigned={"a"})
    assert ranges.keys() == {"a", "b/c:0"}


@pytest.mark.parametrize("content", [
    b"\x89PNG\r\n\x1a\n\x00\x00",
    b"not json at all",
    b"[1, 2, 3]",
    b'{"format": "something.else", "version": 1}',
    b'{"format": "lowp.calibration_table", "version": 99, "tensors": {}}',
    b'{"format": "lowp.calibration_table", "version": 1, "tensors": []}',
    b'{"format": "lowp.calibration_table", "version": 1, "tensors": {"a": {"stats": 3}}}',
    b'{"format": "lowp.calibration_table", "version": 1, "tensors": {"a": {"stats": '
    b'{"kind": "minmax", "name": "b", "min": 0, "max": 1, "count": 1}}}}',
    b'{"format": "lowp.calibration_table", "version": 1, "tensors": {"a": {"stats": '
    b'{"kind": "minmax", "name": "a", "min": 0, "max": 1, "count": 1}, "range": [2, 1]}}}',
])
def test_foreign_files_raise_data_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.json"
    path.write_bytes(content)
    with pytest.raises(DataError, match="x.json"):
        CalibrationTable.load(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        CalibrationTable.load(tmp_path / "nope.json")


def test_range_needs_statistics() -> None:
    with pytest.raises(DataError, match="no statistics"):
        CalibrationTable(ranges={"ghost": (0.0, 1.0)})
