"""Numpy implementations of the ONNX optional operators (opset 15 to 18): Optional,
OptionalHasElement and OptionalGetElement (docs/operators.md, (O265)).

An optional with an element is the element itself (a tensor or a `TensorSequence`); one
without is a `NoElement`. Like sequences they live only inside a run, as plain Python steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lowp.errors import NodeError
from lowp.runtime.float_registry import NoElement, TensorSequence, register

Value = np.ndarray | TensorSequence | NoElement


@register
def Optional(input: Value | None = None, *, type: object = None,  # noqa: A002
             **_: Any) -> Value:
    """The optional of `input`: the input itself, or `NoElement` without one."""
    if input is None:
        return NoElement(type)
    if isinstance(input, NoElement):
        raise NodeError("Optional's input must be a tensor or a sequence, not an optional")
    return input


@register
def OptionalHasElement(input: Value | None = None, **_: Any) -> np.ndarray:  # noqa: A002
    """A bool scalar: whether `input` holds an element (false without an input)."""
    return np.array(input is not None and not isinstance(input, NoElement))


@register
def OptionalGetElement(input: Value, **_: Any) -> Value:  # noqa: A002
    """The element of `input` (a tensor or sequence passes as it is); an optional without
    one is the model's error, as ONNX Runtime refuses it."""
    if input is None or isinstance(input, NoElement):
        raise NodeError("the optional has no element")
    return input
