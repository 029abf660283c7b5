"""lowp's engine: lower a QDQ model to integer and float steps and run them."""

from __future__ import annotations

from .session import Session

__all__ = ["Session"]
