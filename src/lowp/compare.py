"""`lowp compare`: run a quantized model under two engines or targets and explain differences."""

from __future__ import annotations

import argparse


def add_compare_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the `compare` subcommand (filled in by the fidelity work)."""
