"""CalibrationTable: per-tensor statistics and chosen ranges, saved as JSON."""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..atomic import write_text
from ..config import CalibMethod
from ..errors import DataError
from .methods import AutoChoice, auto_choice, choose_range
from .observers import Observer, observer_from_dict

FORMAT = "lowp.calibration_table"
VERSION = 1


class CalibrationTable(Mapping[str, Observer]):
    """Tensor name -> observer (its statistics), plus the ranges chosen from them.

    A table is the result of calibration: save it, and a later run can load it and skip
    the forward passes. Tables from shards combine with `merge` (exact, see observers.py).

    Parameters
    ----------
    observers
        Observers keyed by their own `name`.
    ranges
        Chosen (lo, hi) per tensor name; every name must have statistics.
    settings
        How the ranges were chosen (method and its parameters); informational.

    Examples
    --------
    >>> import numpy as np
    >>> from lowp.calib import MinMaxObserver
    >>> obs = MinMaxObserver("x")
    >>> obs.update(np.array([-1.0, 4.0], np.float32))
    >>> table = CalibrationTable([obs])
    >>> table.choose_ranges(CalibMethod.MINMAX)
    {'x': (-1.0, 4.0)}
    """

    def __init__(self, observers: Iterable[Observer] = (),
                 ranges: Mapping[str, tuple[float, float]] | None = None,
                 settings: Mapping[str, Any] | None = None) -> None:
        self._stats: dict[str, Observer] = {}
        for obs in observers:
            self.add(obs)
        self._ranges: dict[str, tuple[float, float]] = {}
        for name, rng in (ranges or {}).items():
            self.set_range(name, *rng)
        self._settings: dict[str, Any] = dict(settings or {})
        self._choices: dict[str, AutoChoice] = {}       # what CalibMethod.AUTO chose

    # --- mapping over statistics ------------------------------------------------------------
    def __getitem__(self, name: str) -> Observer:
        return self._stats[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._stats)

    def __contains__(self, name: object) -> bool:
        return name in self._stats

    def __len__(self) -> int:
        return len(self._stats)

    def __repr__(self) -> str:
        return (f"CalibrationTable({len(self._stats)} tensors, "
                f"{len(self._ranges)} ranges, settings={self._settings})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CalibrationTable):
            return NotImplemented
        return (self._stats == other._stats and self._ranges == other._ranges
                and self._settings == other._settings and self._choices == other._choices)

    __hash__ = None  # type: ignore[assignment]

    # --- contents ---------------------------------------------------------------------------
    @property
    def ranges(self) -> dict[str, tuple[float, float]]:
        """Chosen (lo, hi) per tensor (a copy)."""
        return dict(self._ranges)

    @property
    def choices(self) -> dict[str, AutoChoice]:
        """Per tensor, the candidate CalibMethod.AUTO kept and every candidate's error."""
        return dict(self._choices)

    @property
    def settings(self) -> dict[str, Any]:
        """How the ranges were chosen (a copy)."""
        return dict(self._settings)

    def record(self, **settings: Any) -> None:
        """Add how the observed model was prepared to `settings` (e.g. equalize=True): a
        table describes the activations of that model only."""
        self._settings.update(settings)

    def add(self, observer: Observer) -> None:
        """Add an observer; one already present under the same name is merged with it."""
        name = observer.name
        if name in self._stats:
            self._stats[name] = self._stats[name].merge(observer)  # type: ignore[arg-type]
        else:
            self._stats[name] = observer

    def set_range(self, name: str, lo: float, hi: float) -> None:
        """Record the chosen range of tensor `name`."""
        if name not in self._stats:
            raise DataError(f"tensor '{name}': range given but no statistics in the table")
        lo, hi = float(lo), float(hi)
        if not (lo <= hi) or not all(map(_finite, (lo, hi))):
            raise DataError(f"tensor '{name}': invalid range [{lo}, {hi}]")
        self._ranges[name] = (lo, hi)

    def choose_ranges(self, method: CalibMethod, *, num_quantized_bins: int = 255,
                      percentile: float = 99.99, unsigned: Collection[str] = (),
                      exact: Collection[str] = ()) -> dict[str, tuple[float, float]]:
        """Choose and record a range for every tensor with `choose_range`.

        Parameters
        ----------
        method, num_quantized_bins, percentile
            As for `lowp.calib.choose_range`.
        unsigned
            Names of tensors stored in an unsigned type (see `choose_range`).
        exact
            Names of tensors whose statistics are their exact values, not a sample: the
            constants of the graph (initializers, Constant nodes, and tensors computed from
            constants only, which canonicalization folds into initializers). Their range is
            their [min, max] under every method: a histogram method estimates the range of a
            distribution from samples and may clip its tails, but a constant has no other
            values to represent (as weights, which are quantized from min/max too). Their
            statistics may therefore be min/max only.

        Returns
        -------
        dict
            The ranges, also available later as `ranges`. Under CalibMethod.AUTO, what was
            chosen for each tensor and why is in `choices`.
        """
        method = CalibMethod(method)
        self._choices = {}
        for name, obs in self._stats.items():
            if obs.is_empty:
                # empty on every feed: no value to represent. [0, 0] marks it; `choose`
                # refuses to quantize it, and policy ALL leaves it in float
                # (pipeline._fragile_tensors_stay_float)
                self._ranges[name] = (0.0, 0.0)
                continue
            kind = CalibMethod.MINMAX if name in exact else method
            if kind is CalibMethod.AUTO:
                self._ranges[name], self._choices[name] = auto_choice(
                    obs, num_quantized_bins=num_quantized_bins, percentile=percentile,
                    unsigned=name in unsigned)
                continue
            self._ranges[name] = choose_range(obs, kind, num_quantized_bins=num_quantized_bins,
                                              percentile=percentile,
                                              unsigned=name in unsigned)
        self._settings.update({"method": method.value, "num_quantized_bins": num_quantized_bins,
                               "percentile": percentile})
        return self.ranges

    def merge(self, other: CalibrationTable) -> CalibrationTable:
        """Statistics of both tables (union; common tensors merged exactly).

        Ranges are not carried over: they depend on all the statistics, so choose them
        again on the merged table.
        """
        out = CalibrationTable(self._stats.values())
        for obs in other._stats.values():
            out.add(obs)
        return out

    # --- files ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly content of the table."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "settings": self._settings,
            "tensors": {name: {"stats": obs.to_dict(), "range": _range_json(self._ranges, name),
                               **({"choice": self._choices[name].to_dict()}
                                  if name in self._choices else {})}
                        for name, obs in self._stats.items()},
        }

    @classmethod
    def from_dict(cls, d: Any, *, source: str = "calibration table") -> CalibrationTable:
        """Rebuild a table from `to_dict` output; anything else raises DataError."""
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise DataError(f"{source} is not a lowp calibration table "
                            f"(missing \"format\": \"{FORMAT}\")")
        if d.get("version") != VERSION:
            raise DataError(f"{source}: unsupported calibration table version "
                            f"{d.get('version')!r} (this lowp reads version {VERSION})")
        tensors = d.get("tensors")
        settings = d.get("settings", {})
        if not isinstance(tensors, dict) or not isinstance(settings, dict):
            raise DataError(f"{source}: 'tensors' and 'settings' must be objects")
        table = cls(settings=settings)
        for name, entry in tensors.items():
            if not isinstance(entry, dict):
                raise DataError(f"{source}: entry of tensor '{name}' must be an object")
            try:
                obs = observer_from_dict(entry.get("stats"))
            except DataError as exc:
                raise DataError(f"{source}: tensor '{name}': {exc}") from exc
            if obs.name != name:
                raise DataError(f"{source}: entry '{name}' holds statistics of '{obs.name}'")
            table.add(obs)
            rng = entry.get("range")
            if rng is not None:
                if not (isinstance(rng, list) and len(rng) == 2
                        and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                for v in rng)):
                    raise DataError(f"{source}: tensor '{name}': 'range' must be [lo, hi]")
                try:
                    table.set_range(name, rng[0], rng[1])
                except DataError as exc:
                    raise DataError(f"{source}: {exc}") from exc
            if "choice" in entry:                    # optional: tables before AUTO lack it
                try:
                    table._choices[name] = AutoChoice.from_dict(entry["choice"])
                except DataError as exc:
                    raise DataError(f"{source}: tensor '{name}': {exc}") from exc
        return table

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the table as JSON, atomically (temp file in the same directory + rename)."""
        write_text(path, json.dumps(self.to_dict(), allow_nan=False, separators=(",", ":")))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CalibrationTable:
        """Read a table written by `save`; a missing or foreign file raises DataError."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise DataError(f"calibration table '{path}' does not exist") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"'{path}' is not a lowp calibration table: {exc}") from exc
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"'{path}' is not a lowp calibration table "
                            f"(not valid JSON: {exc})") from exc
        return cls.from_dict(d, source=f"'{path}'")


def _finite(v: float) -> bool:
    return v == v and v not in (float("inf"), float("-inf"))


def _range_json(ranges: Mapping[str, tuple[float, float]], name: str) -> list[float] | None:
    rng = ranges.get(name)
    return None if rng is None else [rng[0], rng[1]]
