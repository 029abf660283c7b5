"""The table of quantized reference operators, keyed by the ONNX op type they implement."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

QOPS: dict[str, Callable[..., Any]] = {}


def register(*op_types: str) -> Callable[[F], F]:
    """Record the decorated function as the quantized form of each ONNX op in `op_types`.

    Examples
    --------
    >>> @register("Identity")
    ... def identity(x):
    ...     return x
    >>> QOPS["Identity"] is identity
    True
    >>> del QOPS["Identity"]
    """

    def deco(fn: F) -> F:
        for op in op_types:
            if op in QOPS:
                raise ValueError(f"operator {op} is registered twice")
            QOPS[op] = fn
        return fn

    return deco
