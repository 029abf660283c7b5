"""Numpy float implementations of the ONNX sequence operators, on `TensorSequence` values.

SequenceEmpty, SequenceConstruct, SequenceInsert, SequenceAt, SequenceErase, SequenceLength,
ConcatFromSequence and SplitToSequence, as the ONNX operator docs state them (opset 11 to
24; docs/operators.md, (O42)-(O45)): positions count from the back when negative and a
position out of range is the model's error (NodeError, the engine adds the node's name).
Sequences are values inside a graph only; they run as plain Python steps (never recorded
into native Programs; docs/architecture.md, "Sequences").
"""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import TensorProto, helper

from lowp.errors import NodeError
from lowp.runtime.float_registry import TensorSequence, register

# the operators of this module: they read or make sequences, so no one-node model of
# tensors shows them (tests/runtime/test_sequence_ops.py checks them instead)
SEQUENCE_OPS = frozenset({"SequenceEmpty", "SequenceConstruct", "SequenceInsert", "SequenceAt",
                          "SequenceErase", "SequenceLength", "ConcatFromSequence",
                          "SplitToSequence"})


def _sequence(s: object, what: str = "input_sequence") -> TensorSequence:
    if not isinstance(s, TensorSequence):
        raise NodeError(f"'{what}' is a {type(s).__name__}, not a sequence")
    return s


def _tensor(t: object, what: str) -> np.ndarray:
    if not isinstance(t, np.ndarray):
        raise NodeError(f"'{what}' is a {type(t).__name__}, not a tensor")
    return t


def _position(position: np.ndarray | None, n: int, *, inserting: bool = False) -> int:
    """The non-negative index of an ONNX position in a sequence of `n` tensors: accepted
    in [-n, n - 1], or [-n, n] for an insertion (n appends)."""
    p = _tensor(position, "position")
    if p.size != 1 or p.dtype.kind not in "iu":
        raise NodeError(f"position must be one integer, got shape {list(p.shape)} of "
                        f"{p.dtype}")
    k = int(p.reshape(-1)[0])
    hi = n if inserting else n - 1
    if not -n <= k <= hi:
        raise NodeError(f"position {k} is out of range [{-n}, {hi}] for a sequence of "
                        f"{n} tensor{'' if n == 1 else 's'}")
    return k + n if k < 0 else k


def _same_type(seq: TensorSequence, t: np.ndarray) -> None:
    if t.dtype != seq.dtype:
        raise NodeError(f"a {t.dtype} tensor cannot join a sequence of {seq.dtype} tensors")


@register
def SequenceEmpty(*, dtype: int = TensorProto.FLOAT, **_: Any) -> TensorSequence:
    """An empty sequence of tensors of element type `dtype` (default float)."""
    return TensorSequence(np.dtype(helper.tensor_dtype_to_np_dtype(int(dtype))))


@register
def SequenceConstruct(*inputs: np.ndarray, **_: Any) -> TensorSequence:
    """The sequence of the inputs, in order (all of one element type)."""
    tensors = tuple(_tensor(t, f"inputs[{k}]") for k, t in enumerate(inputs))
    if not tensors:
        raise NodeError("SequenceConstruct needs at least one input")
    seq = TensorSequence(tensors[0].dtype)
    for t in tensors:
        _same_type(seq, t)
    return TensorSequence(seq.dtype, tensors)


@register
def SequenceInsert(input_sequence: TensorSequence, tensor: np.ndarray,
                   position: np.ndarray | None = None, **_: Any) -> TensorSequence:
    """`tensor` inserted before `position` (in [-n, n]; default n: at the back)."""
    seq = _sequence(input_sequence)
    t = _tensor(tensor, "tensor")
    _same_type(seq, t)
    n = len(seq)
    k = n if position is None else _position(position, n, inserting=True)
    return TensorSequence(seq.dtype, seq.tensors[:k] + (t,) + seq.tensors[k:])


@register
def SequenceAt(input_sequence: TensorSequence, position: np.ndarray,
               **_: Any) -> np.ndarray:
    """The tensor at `position` (in [-n, n - 1])."""
    seq = _sequence(input_sequence)
    return seq.tensors[_position(position, len(seq))]


@register
def SequenceErase(input_sequence: TensorSequence, position: np.ndarray | None = None,
                  **_: Any) -> TensorSequence:
    """The sequence without its tensor at `position` (in [-n, n - 1]; default the last)."""
    seq = _sequence(input_sequence)
    n = len(seq)
    if position is None and n == 0:
        raise NodeError("cannot erase from an empty sequence")
    k = n - 1 if position is None else _position(position, n)
    return TensorSequence(seq.dtype, seq.tensors[:k] + seq.tensors[k + 1:])


@register
def SequenceLength(input_sequence: TensorSequence, **_: Any) -> np.ndarray:
    """The number of tensors, an int64 scalar."""
    return np.array(len(_sequence(input_sequence)), np.int64)


@register
def ConcatFromSequence(input_sequence: TensorSequence, *, axis: int, new_axis: int = 0,
                       **_: Any) -> np.ndarray:
    """The tensors concatenated along `axis` (numpy.concatenate), or with `new_axis=1`
    stacked along a new axis `axis` (numpy.stack; `axis` in [-r - 1, r])."""
    seq = _sequence(input_sequence)
    if not len(seq):
        raise NodeError("cannot concatenate an empty sequence")
    rank = seq.tensors[0].ndim
    out_rank = rank + 1 if new_axis else rank
    if not -out_rank <= axis < out_rank:
        what = "stacking" if new_axis else "concatenating"
        raise NodeError(f"axis {axis} is out of range for {what} tensors of rank {rank}")
    shapes = [list(t.shape) for t in seq]
    if any(len(s) != rank for s in shapes):
        raise NodeError(f"tensors of different ranks: {shapes}")
    if new_axis:
        if any(s != shapes[0] for s in shapes):
            raise NodeError(f"cannot stack tensors of different shapes: {shapes}")
        return np.stack(seq.tensors, axis=axis)
    ax = axis + rank if axis < 0 else axis
    if any(s[:ax] + s[ax + 1:] != shapes[0][:ax] + shapes[0][ax + 1:] for s in shapes):
        raise NodeError(f"tensors differ outside axis {axis}: {shapes}")
    return np.concatenate(seq.tensors, axis=ax)


@register
def SplitToSequence(input: np.ndarray, split: np.ndarray | None = None, *,  # noqa: A002
                    axis: int = 0, keepdims: int = 1, **_: Any) -> TensorSequence:
    """`input` split along `axis`: into pieces of length 1 without `split` (with `axis`
    removed when `keepdims=0`), into chunks of a scalar `split`'s length (the last one
    smaller), or into the lengths of a 1-D `split` (which sum to the axis' length)."""
    x = _tensor(input, "input")
    if not -x.ndim <= axis < x.ndim:
        raise NodeError(f"axis {axis} is out of range for a tensor of rank {x.ndim}")
    ax = axis + x.ndim if axis < 0 else axis
    dim = x.shape[ax]
    if split is None:
        sizes = [1] * dim
    else:
        s = _tensor(split, "split")
        if s.dtype.kind not in "iu" or s.ndim > 1:
            raise NodeError(f"'split' must be an integer scalar or 1-D tensor, got shape "
                            f"{list(s.shape)} of {s.dtype}")
        if s.ndim == 0:
            chunk = int(s)
            if chunk <= 0:
                raise NodeError(f"'split' {chunk} must be positive")
            sizes = [chunk] * (dim // chunk) + ([dim % chunk] if dim % chunk else [])
        else:
            sizes = [int(v) for v in s]
            if any(v < 0 for v in sizes) or sum(sizes) != dim:
                raise NodeError(f"'split' {sizes} must be non-negative lengths summing to "
                                f"the length {dim} of axis {axis}")
    pieces = tuple(np.split(x, np.cumsum(sizes)[:-1], axis=ax)) if sizes else ()
    if split is None and not keepdims:
        pieces = tuple(np.squeeze(p, axis=ax) for p in pieces)
    return TensorSequence(x.dtype, pieces)
