"""Calibration statistics: observers (min/max, fixed-edge histogram), range methods, tables."""

from __future__ import annotations

from . import scan
from .methods import (
    choose_range,
    entropy_range,
    kl_divergences,
    mse_errors,
    mse_range,
    percentile_range,
)
from .observers import (
    DEFAULT_NUM_BINS,
    HistogramObserver,
    MinMaxObserver,
    Observer,
    observer_from_dict,
)
from .table import CalibrationTable

__all__ = [
    "DEFAULT_NUM_BINS", "CalibrationTable", "HistogramObserver", "MinMaxObserver", "Observer",
    "choose_range", "entropy_range", "kl_divergences", "mse_errors", "mse_range",
    "observer_from_dict", "percentile_range", "scan",
]
