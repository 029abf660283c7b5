"""Execution plan: a list of steps over named tensors, each with the layouts it can run in."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..ops.layout import Layout

CF = Layout.CHANNELS_FIRST
CL = Layout.CHANNELS_LAST
StepFn = Callable[..., tuple[np.ndarray, ...]]


@dataclass
class Step:
    """One unit of execution.

    `fn(*arrays, layout=layout)` returns one array per output. `act_inputs` are the input
    positions that are activations (they get converted to the chosen layout); other inputs
    (shapes, axes, sizes) are passed as they are. `elementwise` steps may run channels-last
    only when all activation inputs have the same rank. `table_dtype` marks a unary
    element-wise integer step (a function of one 8/16-bit value) with its input dtype, so
    that chains of such steps can be fused into one table. `replayable` steps do nothing
    but calls into the native extension (recorded and repeated by lowp.runtime.replay) and
    write their outputs into buffers they own. `channels_last_fn`, when set, is a variant
    of `fn` that takes channels-first inputs and returns channels-last outputs in one pass;
    lowering switches to it (and sets `output_layout`) when every reader wants channels-last.
    """

    name: str
    op_type: str
    kind: str                           # "int", "float", "quantize", "dequantize"
    inputs: list[str]
    outputs: list[str]
    fn: StepFn
    layouts: tuple[Layout, ...] = (CF,)
    act_inputs: tuple[int, ...] = (0,)
    elementwise: bool = False
    table_dtype: np.dtype | None = None     # unary integer steps that are lookup tables
    # a per-channel table step on channels-last data: its (channels, 256) table, whose rows
    # are indexed by the input's unsigned bit pattern (lowp.runtime.fuse composes it); it
    # holds the step's results where `per_channel_rows` holds and, when set,
    # `channel_table_where(x, layout)`
    channel_table: np.ndarray | None = None
    channel_table_where: Callable[[np.ndarray, Layout], bool] | None = None
    channel_table_last: bool = False        # its channels are the last ONNX axis
    replayable: bool = False
    channels_last_fn: StepFn | None = None
    output_layout: Layout | None = None     # set: outputs are in it, whatever `layout` was
    # of a replayable step: its activation inputs' layout conversions (index maps and the
    # buffers they fill, by input position, shape and dtype; lowp.runtime.session)
    conversions: dict[object, tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict, repr=False, compare=False)
    subplans: tuple[Any, ...] = ()          # If: its branches (lowp.runtime.control.SubPlan)
    # a fused chain of float element-wise steps: its lowp.runtime.fuse_float.Chain
    chain: Any = None
    # a Transpose that moves the channels last or first (`channels_perm`)
    moves_channels: str | None = None
    # an Add or Sum that ONNX Runtime runs on its NCHWc layout: the block size, whose
    # blocked places decide the NaN of two NaNs (lowp.runtime.ort_context; (O196))
    nchwc_block: int = 0
    # a QuantizeLinear or DequantizeLinear: its `axis` attribute (the per-axis parameters'
    # axis, negative as written; lowp.runtime.replay's per-channel tables)
    qdq_axis: int | None = None
    # a ZipMap whose output is its scores in the order of these keys, of which the Session
    # makes the sequence of maps after the run (lowp.runtime.ml_ops.ZipMap, scores_only)
    map_keys: list[Any] | None = None


def through_channels_first(fn: StepFn) -> StepFn:
    """A one-output step function that takes channels-first data, run on channels-last data
    through a channels-first view of it and its result returned channels-last (a copy step
    whose parameters name channels-first axes: a nearest Resize keeps the layout of the
    convolutions around it). The result is the step's channels-first result moved as
    channels-last data is, so it stays exact when the step moves axis 1 (a Squeeze of the
    channels, an Unsqueeze before them): only its memory order may cost a copy then."""
    def run(*vals: np.ndarray | None, layout: object) -> tuple[np.ndarray, ...]:
        data = vals[0]
        if layout is not CL or data is None or data.ndim < 3:
            return fn(*vals, layout=layout)
        (y,) = fn(np.moveaxis(data, -1, 1), *vals[1:], layout=CF)
        if y.ndim < 3:
            return (y,)         # (a Squeeze to rank 2 or less: its result is channels-first)
        return (np.ascontiguousarray(np.moveaxis(y, 1, -1)),)

    return run


def per_channel_rows(x: np.ndarray, channels: int, layout: object,
                     last_axis: bool = False) -> bool:
    """`x` holds its `channels` channels along its last axis (channels-last data, or rank
    2), where a per-channel table applies as it is. With `last_axis`, the table's channels
    are x's last axis in ONNX terms (a table of a (C,) constant broadcast over the trailing
    axis), which is the last axis in memory unless the data is channels-last."""
    if last_axis:
        return x.ndim >= 2 and x.shape[-1] == channels and (layout is not CL or x.ndim < 3)
    return x.ndim >= 2 and x.shape[-1] == channels and (layout is CL or x.ndim == 2)


def channels_perm(perm: Sequence[int] | None) -> str | None:
    """How a Transpose's `perm` moves the channels: ``"to_last"`` for (0, 2, ..., r-1, 1)
    (channels-first to channels-last, as TensorFlow-converted graphs write after every
    convolution), ``"to_first"`` for (0, r-1, 1, ..., r-2) (back, before the next one), else
    None (rank 3 or more only)."""
    if perm is None or len(perm) < 3:
        return None
    r = len(perm)
    p = [int(a) for a in perm]
    if p == [0, *range(2, r), 1]:
        return "to_last"
    if p == [0, r - 1, *range(1, r - 1)]:
        return "to_first"
    return None


def channels_first_view(fn: StepFn) -> StepFn:
    """A step function of channels-first data run on channels-last data through a
    channels-first view of it (no copy); its results are channels-first either way. For a
    Transpose moving the channels last, that result is a contiguous view of the input: the
    channels-last memory is the transposed tensor's own."""
    def run(*vals: np.ndarray | None, layout: object) -> tuple[np.ndarray, ...]:
        x = vals[0]
        if layout is CL and x is not None and x.ndim >= 3:
            return fn(np.moveaxis(x, -1, 1), *vals[1:], layout=CF)
        return fn(*vals, layout=layout)

    return run


def channels_last_result(fn: StepFn) -> StepFn:
    """`fn` on channels-first data, its one result returned channels-last (rank 3 or more):
    for a Transpose moving the channels first, the input's own memory (a view)."""
    def run(*vals: np.ndarray | None, layout: object) -> tuple[np.ndarray, ...]:
        (y,) = fn(*vals, layout=layout)
        return (np.ascontiguousarray(np.moveaxis(y, 1, -1)) if y.ndim >= 3 else y,)

    return run
