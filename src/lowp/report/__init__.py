"""Reports: where accuracy went (per-layer SQNR), agreement between engines, summaries."""

from __future__ import annotations

from .analysis import LayerError, OutputAgreement, compare_outputs, layer_errors
from .table import format_table

__all__ = ["LayerError", "OutputAgreement", "compare_outputs", "format_table", "layer_errors"]
