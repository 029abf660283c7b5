"""Backend fidelity: reproduce each deployment engine's int8 arithmetic exactly.

See docs/engines.md for what each engine computes and why engines disagree.
"""

from __future__ import annotations

from .engines import ENGINES, LayerQParams, arithmetic_for, conv, epilogue, matmul
from .session import EngineHook, run_as, session_for

__all__ = ["ENGINES", "EngineHook", "LayerQParams", "arithmetic_for", "conv", "epilogue",
           "matmul", "run_as", "session_for"]
