"""Registry of the numpy float operators: FLOAT_OPS maps an ONNX op type to its function.

Calling convention (fixed, the executor relies on it): ``fn(*inputs, **attributes)`` where
inputs are numpy arrays or None for omitted optional inputs, attributes are the node's
attributes as Python values, plus ``opset`` (the model's default-domain opset). Ops whose
result depends on how many outputs the node declares (Split before opset 18, MaxPool's
Indices, Dropout's mask) also read the optional ``num_outputs`` keyword. Multi-output ops
return a tuple; the executor binds its first ``len(node.output)`` entries. Ops registered
with `array_attributes` (the tree ensembles, whose attribute lists hold millions of entries;
LinearClassifier and ZipMap, which check and parse their lists once) get those lists as
numpy arrays and a ``node_cache`` keyword: a dict that lives as long as the node's step,
for what they parse from the attributes once.

Values are numpy arrays, except the ONNX sequences that the sequence operators
(lowp.runtime.sequence_ops) make and read inside a graph: an immutable `TensorSequence`,
and the optional without an element that Optional makes (lowp.runtime.optional_ops):
`NoElement`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import onnx

from lowp.errors import UnsupportedOpError
from lowp.ir.graph import attributes

OpResult = np.ndarray | tuple[np.ndarray, ...]
OpFn = Callable[..., Any]
F = TypeVar("F", bound=OpFn)

FLOAT_OPS: dict[str, OpFn] = {}


@dataclass(frozen=True, eq=False)
class TensorSequence:
    """An ONNX sequence value: tensors of one element type `dtype`, in order.

    Immutable: the sequence operators make new ones. Its tensors are always in ONNX's
    (channels-first) layout, since the steps that put them in take every input that way
    (lowp.runtime.session.execute). It lives only inside a run: graph inputs and outputs
    are tensors (lowp.inputs).
    """

    dtype: np.dtype
    tensors: tuple[np.ndarray, ...] = ()

    def __len__(self) -> int:
        return len(self.tensors)

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.tensors)


@dataclass(frozen=True, eq=False)
class NoElement:
    """An ONNX optional value without an element (an Optional node without its input),
    of ONNX type `type_proto` when the node names one. It lives only inside a run, where
    only the optional operators (lowp.runtime.optional_ops) read it; an optional with an
    element is that element itself."""

    type_proto: object = None


class MapSequence(list):  # type: ignore[type-arg]
    """An ONNX sequence of maps, as ai.onnx.ml ZipMap makes it (lowp.runtime.ml_ops): one
    dict a row, class label -> score (a Python float of the float32 value), the form
    ONNX Runtime's Python API returns. The one non-tensor value a graph may output; no
    operator of lowp reads it."""


def register(fn: F) -> F:
    """Register `fn` under its own name, which is the ONNX op type."""
    if fn.__name__ in FLOAT_OPS:
        raise ValueError(f"float op {fn.__name__} registered twice")
    FLOAT_OPS[fn.__name__] = fn
    return fn


# op type -> the list attributes the executor hands it as numpy arrays (`array_attributes`)
ARRAY_ATTRIBUTES: dict[str, frozenset[str]] = {}


def array_attributes(*names: str) -> Callable[[F], F]:
    """Register op `fn` as reading its list attributes `names` as numpy arrays
    (lowp.ir.graph.attributes) and a per-node ``node_cache`` dict."""
    def mark(fn: F) -> F:
        ARRAY_ATTRIBUTES[fn.__name__] = frozenset(names)
        return fn
    return mark


# op type -> fn(attrs, input dtype, fixed): what a node registered with `array_attributes`
# parses from its attributes once, done at the session's build when its first input's type
# is declared (the tree ensembles' forests); `fixed` when that input is a graph input, whose
# type every run keeps (lowp.runtime.session checks the feeds), so the op may drop what it
# parsed its attributes into. Its refusals are left to the run (a model the runs refuse).
PREPARE: dict[str, Callable[[dict[str, Any], np.dtype, bool], None]] = {}


def prepared_by(*op_types: str) -> Callable[[F], F]:
    """Register fn as the `PREPARE` of `op_types`."""
    def mark(fn: F) -> F:
        for op_type in op_types:
            PREPARE[op_type] = fn
        return fn
    return mark


def node_attributes(node: onnx.NodeProto) -> dict[str, object]:
    """The attributes of `node` as its op reads them (lowp.ir.graph.attributes): the op's
    array attributes as arrays, and a fresh ``node_cache`` for such ops."""
    arrays = ARRAY_ATTRIBUTES.get(node.op_type)
    if arrays is None:
        return attributes(node)
    return {**attributes(node, arrays), "node_cache": {}}


def unsupported(op_type: str, detail: str) -> UnsupportedOpError:
    """The error for an attribute value lowp does not run; the executor adds the node name."""
    return UnsupportedOpError(op_type, "", detail)


def compute_dtype(x: np.ndarray) -> np.dtype:
    """The float dtype arithmetic runs in: float32 for float16/bfloat16-like inputs."""
    if x.dtype == np.float64:
        return np.dtype(np.float64)
    return np.dtype(np.float32)
