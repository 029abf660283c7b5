"""Fuse element-wise integer steps that depend on one 8/16-bit value into one lookup table.

A unary table step followed by another (HardSigmoid -> ...), or a binary step whose inputs
are x and table(x) (SiLU as x * Sigmoid(x), HardSwish written out), computes a function of
x alone. Evaluating the steps themselves on every representable x gives a table that is
exact by construction: the fused model computes bit for bit what the unfused one does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np

from ..ops.layout import Layout
from .fastops import Arena, lookup
from .plan import CF, CL, Step, per_channel_rows


def _domain(dtype: np.dtype) -> np.ndarray:
    """Every value of an 8/16-bit integer type, ordered by its unsigned bit pattern."""
    info = np.iinfo(dtype)
    values = np.arange(info.min, info.max + 1, dtype=np.int64).astype(dtype)
    unsigned = np.dtype(f"u{dtype.itemsize}")
    return values[np.argsort(values.view(unsigned), kind="stable")]


def _table_step(name: str, op_type: str, x: str, out: str, table: np.ndarray,
                dtype: np.dtype, reuse: bool,
                steps: Callable[[np.ndarray, object], np.ndarray]) -> Step:
    """The fused table; inputs of fewer than two elements (or of another type) run the
    fused steps themselves (`steps`), whose results there may not be a function of x alone
    (a one-value operand's broadcasting rule, (O10a))."""
    arena = Arena(reuse)

    def run(xv: np.ndarray, *, layout: object) -> tuple[np.ndarray, ...]:
        if xv.dtype != dtype or xv.size < 2:
            return (steps(xv, layout),)
        return (lookup(xv, table, arena),)

    return Step(name, op_type, "int", [x], [out], run, layouts=(CF, CL), elementwise=True,
                table_dtype=dtype, replayable=True)


def _channel_table_step(first: Step, then: Step, table: np.ndarray, reuse: bool) -> Step:
    """Per-channel table `first` followed by the unary or per-channel table `then` as one
    per-channel table on channels-last data where both tables hold (elsewhere the two steps
    run one after the other)."""
    arena = Arena(reuse)
    channels = table.shape[0]
    conditions = [w for w in (first.channel_table_where, then.channel_table_where) if w]
    last = first.channel_table_last

    def where(xv: np.ndarray, layout: Layout) -> bool:
        return all(w(xv, layout) for w in conditions)

    def run(xv: np.ndarray, *, layout: Layout) -> tuple[np.ndarray, ...]:
        if per_channel_rows(xv, channels, layout, last) and where(xv, layout):
            return (lookup(xv, table, arena),)
        (mid,) = first.fn(xv, layout=layout)
        return then.fn(mid, layout=layout)

    return Step(f"{first.name}+{then.name}", f"{first.op_type}+{then.op_type}", "int",
                list(first.inputs), list(then.outputs), run, layouts=first.layouts,
                replayable=True, channel_table=table,
                channel_table_where=where if conditions else None, channel_table_last=last)


def fuse_tables(steps: list[Step], graph_outputs: set[str], reuse: bool = True) -> list[Step]:
    """Return `steps` with fusable pairs replaced by single table steps (writing into
    reused output buffers when `reuse`, i.e. outside subgraphs)."""
    changed = True
    while changed:
        changed = False
        uses = Counter(i for s in steps for i in s.inputs if i)
        producer = {o: s for s in steps for o in s.outputs}
        for step in steps:
            if step.kind != "int" or not (step.elementwise or step.channel_table is not None):
                continue
            fused = _fuse_one(step, producer, uses, graph_outputs, reuse)
            if fused is not None:
                inner, new = fused
                steps = [new if s is step else s for s in steps if s is not inner]
                changed = True
                break
    return steps


def _fuse_one(step: Step, producer: dict[str, Step], uses: Counter[str],
              graph_outputs: set[str], reuse: bool) -> tuple[Step, Step] | None:
    """(the absorbed step, the fused step) or None."""
    if len(step.outputs) != 1:
        return None
    ins = [i for i in step.inputs if i]
    first = producer.get(ins[0]) if len(ins) == 1 else None
    if (step.table_dtype is not None and first is not None and first.kind == "int"
            and first.channel_table is not None and uses[ins[0]] == 1
            and ins[0] not in graph_outputs
            and first.channel_table.dtype == np.dtype(step.table_dtype)):
        # a per-channel table, then a unary one: their composition, channel by channel
        values = step.fn(_domain(np.dtype(step.table_dtype)), layout=CF)[0]
        unsigned = np.dtype(f"u{first.channel_table.dtype.itemsize}")
        table = np.ascontiguousarray(values[first.channel_table.view(unsigned)])
        return first, _channel_table_step(first, step, table, reuse)
    if (step.channel_table is not None and first is not None and first.kind == "int"
            and first.channel_table is not None and uses[ins[0]] == 1
            and ins[0] not in graph_outputs
            and first.channel_table.shape == step.channel_table.shape
            and first.channel_table_last == step.channel_table_last):
        # two per-channel tables (an unfolded BatchNormalization's Mul, then its Add)
        rows = first.channel_table.view(np.dtype(f"u{first.channel_table.dtype.itemsize}"))
        table = np.ascontiguousarray(np.take_along_axis(step.channel_table,
                                                        rows.astype(np.intp), axis=1))
        return first, _channel_table_step(first, step, table, reuse)
    if step.channel_table is not None:
        return None
    for slot, name in enumerate(ins):
        inner = producer.get(name)
        if (inner is None or inner.table_dtype is None or inner.kind != "int"
                or uses[name] != 1 or name in graph_outputs):
            continue
        x = inner.inputs[0]
        others = [n for j, n in enumerate(ins) if j != slot]
        if any(n != x for n in others):          # every other input must be x itself
            continue
        dtype = inner.table_dtype
        domain = _domain(dtype)
        inner_values = inner.fn(domain, layout=CF)[0]
        args = [inner_values if j == slot else domain for j in range(len(ins))]
        table = np.ascontiguousarray(step.fn(*args, layout=CF)[0])
        name_ = f"{inner.name}+{step.name}"

        def steps(xv: np.ndarray, layout: object, inner: Step = inner, slot: int = slot,
                  outer: Step = step) -> np.ndarray:
            (mid,) = inner.fn(xv, layout=layout)
            args = [mid if j == slot else xv for j in range(len(ins))]
            return outer.fn(*args, layout=layout)[0]  # type: ignore[no-any-return]

        return inner, _table_step(name_, f"{inner.op_type}+{step.op_type}", x,
                                  step.outputs[0], table, dtype, reuse, steps)
    return None
