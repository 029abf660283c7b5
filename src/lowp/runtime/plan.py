"""Execution plan: a list of steps over named tensors, each with the layouts it can run in."""

from __future__ import annotations

from collections.abc import Callable
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


def per_channel_rows(x: np.ndarray, channels: int, layout: object) -> bool:
    """`x` holds its `channels` channels along its last axis (channels-last data, or rank
    2), where a per-channel table applies as it is."""
    return x.ndim >= 2 and x.shape[-1] == channels and (layout is CL or x.ndim == 2)
