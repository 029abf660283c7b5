"""Replay: repeat the native calls of a session's steps without the Python above them.

A replayable step (`Step.replayable`) does nothing but calls into the native extension,
writing into output buffers it owns (an arena), or is a pure reshape whose outputs are
views of its inputs. Once the same input shapes have been run
twice, recording every such step's calls, a step whose two recordings are identical (the
same functions on the same buffers, the same arguments, the same output buffers) is from
then on run by repeating its recorded calls, as long as its inputs are the very objects
(or views of the very memory) it read when recorded. Anything else (float steps, a
changed input object) runs through `execute` as before, so the results are always those
of a plain run; replay only removes the per-step overhead of the Python layers (layout
checks, validation, dispatch).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .plan import CF, Step
from .tape import Call, recording

Env = dict[str, np.ndarray]
Layouts = dict[str, object]
Execute = Callable[[Step, Env, Layouts], None]
# the same feeds (name, shape, dtype) replay the same plan; at most this many are kept
MAX_SIGNATURES = 4


@dataclass
class _Record:
    """What one replayable step did in one run."""

    calls: list[Call]
    inputs: list[tuple[str, object, object]]         # (name, value object, layout)
    outputs: list[tuple[str, np.ndarray, object]]


@dataclass
class _Replay:
    """A step to run by repeating `calls` while its inputs are these objects."""

    step: Step
    calls: list[Call]
    inputs: list[tuple[str, object, object]]
    outputs: list[tuple[str, np.ndarray, object]]


@dataclass
class _Fixed:
    """A float step on shapes only: its outputs are the same for every run of a signature."""

    step: Step
    outputs: list[tuple[str, np.ndarray, object]]


Entry = Step | _Replay | _Fixed

# Float operators that, on constant inputs (or, for Shape and Size, on a tensor whose shape
# the feed shapes fix), compute the same values on every run: the shape arithmetic that
# exporters write (Shape -> Gather -> Unsqueeze -> Concat -> Reshape, ...).
FOLDABLE = frozenset({
    "Shape", "Size", "Constant", "ConstantOfShape", "Gather", "Unsqueeze", "Squeeze",
    "Concat", "Slice", "Cast", "Add", "Sub", "Mul", "Div", "Mod", "Neg", "Abs", "Floor",
    "Ceil", "Min", "Max", "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Not",
    "And", "Or", "Where", "Range", "Reshape", "Identity", "ReduceProd", "ReduceSum",
    "ReduceMin", "ReduceMax", "Expand", "Tile", "Transpose",
})
# Operators whose output shapes depend on input values: where they occur, tensor shapes are
# not fixed by the feed shapes, and nothing is folded.
DATA_DEPENDENT_SHAPES = frozenset({
    "NonZero", "Compress", "Unique", "TopK", "NonMaxSuppression", "Loop", "If", "Scan",
    "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
    "Bernoulli", "StringSplit",
})
# Inputs (by position) that give an output's shape: they must be fixed values too.
SHAPE_INPUTS: dict[str, tuple[int, ...]] = {
    "Reshape": (1,), "Expand": (1,), "Tile": (1,), "Slice": (1, 2, 3, 4),
    "Resize": (1, 2, 3), "Upsample": (1,), "Pad": (1, 3), "ConstantOfShape": (0,),
    "Range": (0, 1, 2), "OneHot": (1,), "Split": (1,), "Squeeze": (1,), "Unsqueeze": (1,),
    "ReduceMean": (1,), "ReduceSum": (1,), "ReduceMax": (1,), "ReduceMin": (1,),
    "ReduceProd": (1,), "ReduceL2": (1,), "CenterCropPad": (1,), "GridSample": (1,),
    "MaxUnpool": (2,), "DFT": (1,), "STFT": (2, 3),
}


def fixed_steps(steps: list[Step], constants: set[str]) -> set[int]:
    """Indices of the float steps whose outputs depend only on constants and on the shapes
    the feeds fix; empty when some shape in the model may depend on values."""
    fixed_values = set(constants)
    fixed: set[int] = set()
    for i, step in enumerate(steps):
        if step.op_type in DATA_DEPENDENT_SHAPES:
            return set()
        ins = [n for n in step.inputs if n]
        if step.kind == "float" and step.op_type in FOLDABLE and (
                step.op_type in ("Shape", "Size") or all(n in fixed_values for n in ins)):
            fixed.add(i)
            fixed_values.update(o for o in step.outputs if o)
    for step in steps:
        for k in SHAPE_INPUTS.get(step.op_type, ()):
            if k < len(step.inputs) and step.inputs[k] and step.inputs[k] not in fixed_values:
                return set()                     # a shape computed from data
    return fixed


class Replayer:
    """Runs a session's steps, recording the first two runs of each feed signature and
    replaying from the third on."""

    def __init__(self, steps: list[Step], execute: Execute,
                 constants: set[str] | None = None) -> None:
        self.steps = steps
        self._execute = execute
        self._fixed = fixed_steps(steps, constants or set())
        self._state: dict[object, list[_Record | None] | list[Entry]] = {}
        self._ready: set[object] = set()

    def replayed_steps(self, signature: object) -> int:
        """How many steps of a signature's plan run by replay (0 until it is ready)."""
        if signature not in self._ready:
            return 0
        return sum(isinstance(e, (_Replay, _Fixed)) for e in self._state[signature])

    def run(self, signature: object, env: Env, layout: Layouts) -> None:
        state = self._state.get(signature)
        if signature in self._ready:
            self._replay(state, env, layout)  # type: ignore[arg-type]
            return
        if state is None and len(self._state) >= MAX_SIGNATURES:
            for step in self.steps:
                self._execute(step, env, layout)
            return
        records = self._record(env, layout)
        if state is None:
            self._state[signature] = records
        else:
            self._state[signature] = _plan(self.steps, state, records,  # type: ignore[arg-type]
                                           self._fixed)
            self._ready.add(signature)

    def _record(self, env: Env, layout: Layouts) -> list[_Record | None]:
        records: list[_Record | None] = []
        for i, step in enumerate(self.steps):
            if i in self._fixed:
                self._execute(step, env, layout)
                records.append(_Record([], [], [(n, env[n], layout.get(n, CF))
                                                for n in step.outputs if n]))
                continue
            if not step.replayable:
                self._execute(step, env, layout)
                records.append(None)
                continue
            inputs: list[tuple[str, object, object]] = [
                (n, env.get(n), layout.get(n, CF)) for n in step.inputs if n]
            with recording() as tape:
                self._execute(step, env, layout)
            outputs = [(n, env[n], layout.get(n, CF)) for n in step.outputs if n]
            records.append(_Record(tape, inputs, outputs))
        return records

    def _replay(self, plan: list[Entry], env: Env, layout: Layouts) -> None:
        for entry in plan:
            if type(entry) is _Fixed:
                for n, v, lay in entry.outputs:
                    env[n] = v
                    layout[n] = lay
            elif type(entry) is _Replay and _inputs_match(entry, env, layout):
                for fn, args in entry.calls:
                    fn(*args)
                for n, v, lay in entry.outputs:
                    env[n] = v
                    layout[n] = lay
            else:
                self._execute(entry.step if type(entry) is _Replay else entry,  # type: ignore[union-attr,arg-type]
                              env, layout)


def _inputs_match(entry: _Replay, env: Env, layout: Layouts) -> bool:
    """The step's inputs are what it read when recorded: the same objects, or arrays over
    the same memory with the same shape and strides (a view made anew each run, say). The
    recorded arrays are alive, so an array at the same address is a view of the same
    buffer, never new memory that happens to be there."""
    for n, v, lay in entry.inputs:
        cur = env.get(n)
        if cur is not v and not (type(cur) is np.ndarray and type(v) is np.ndarray
                                 and _geometry(cur) == _geometry(v)):
            return False
        if layout.get(n, CF) is not lay:
            return False
    return True


def _plan(steps: list[Step], first: list[_Record | None], second: list[_Record | None],
          fixed: set[int]) -> list[Entry]:
    plan: list[Entry] = []
    for i, (step, a, b) in enumerate(zip(steps, first, second, strict=True)):
        if i in fixed and a is not None and b is not None and _same_values(a, b):
            plan.append(_Fixed(step, b.outputs))
        elif i in fixed:
            plan.append(step)
        elif a is not None and b is not None and _same(a, b):
            plan.append(_Replay(step, b.calls, b.inputs, b.outputs))
        else:
            plan.append(step)
    return plan


def _same_values(a: _Record, b: _Record) -> bool:
    """Both runs gave equal outputs (a check of what `fixed_steps` concluded)."""
    return all(na == nb and la is lb and isinstance(va, np.ndarray) and isinstance(vb, np.ndarray)
               and va.dtype == vb.dtype and va.shape == vb.shape and np.array_equal(va, vb)
               for (na, va, la), (nb, vb, lb) in zip(a.outputs, b.outputs, strict=True))


def _same(a: _Record, b: _Record) -> bool:
    """Two recordings of a step did the same thing on the same memory. Both runs' arrays
    were alive at once (the first recording holds its own), so equal addresses mean the
    same buffers, not reused memory."""
    if len(a.calls) != len(b.calls) or len(a.outputs) != len(b.outputs):
        return False
    if not b.calls and not all(_is_view_of_inputs(v, b.inputs) for _, v, _ in b.outputs):
        return False    # a step without native calls replays only by handing on views
    for (fa, xa), (fb, xb) in zip(a.calls, b.calls, strict=True):
        if _function(fa) != _function(fb) or len(xa) != len(xb):
            return False
        if not all(_same_value(u, v) for u, v in zip(xa, xb, strict=True)):
            return False
    return all(na == nb and la is lb and _same_value(va, vb)
               for (na, va, la), (nb, vb, lb) in zip(a.outputs, b.outputs, strict=True))


def _is_view_of_inputs(value: np.ndarray, inputs: list[tuple[str, object, object]]) -> bool:
    """`value` is a view into an input array's memory (nothing was computed into it)."""
    base = value.base
    return isinstance(value, np.ndarray) and base is not None and any(
        isinstance(v, np.ndarray) and np.shares_memory(value, v) for _, v, _ in inputs)


def _function(fn: object) -> tuple[int, int]:
    """Identity of a function or bound method (bound methods are new objects per access)."""
    return id(getattr(fn, "__func__", fn)), id(getattr(fn, "__self__", None))


def _same_value(u: object, v: object) -> bool:
    if isinstance(u, np.ndarray) or isinstance(v, np.ndarray):
        return (isinstance(u, np.ndarray) and isinstance(v, np.ndarray)
                and _geometry(u) == _geometry(v))
    return type(u) is type(v) and bool(u == v)


def _geometry(a: np.ndarray) -> tuple[object, ...]:
    return a.__array_interface__["data"][0], a.shape, a.strides, a.dtype.str
