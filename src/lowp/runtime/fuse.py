"""Fuse element-wise integer steps that depend on one 8/16-bit value into one lookup table.

A unary table step followed by another (HardSigmoid -> ...), or a binary step whose inputs
are x and table(x) (SiLU as x * Sigmoid(x), HardSwish written out), computes a function of
x alone. Evaluating the steps themselves on every representable x gives a table that is
exact by construction: the fused model computes bit for bit what the unfused one does.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from .fastops import Arena, lookup
from .plan import CF, CL, Step


def _domain(dtype: np.dtype) -> np.ndarray:
    """Every value of an 8/16-bit integer type, ordered by its unsigned bit pattern."""
    info = np.iinfo(dtype)
    values = np.arange(info.min, info.max + 1, dtype=np.int64).astype(dtype)
    unsigned = np.dtype(f"u{dtype.itemsize}")
    return values[np.argsort(values.view(unsigned), kind="stable")]


def _table_step(name: str, op_type: str, x: str, out: str, table: np.ndarray,
                dtype: np.dtype, reuse: bool) -> Step:
    arena = Arena(reuse)

    def run(xv: np.ndarray, *, layout: object) -> tuple[np.ndarray, ...]:
        return (lookup(xv, table, arena),)

    return Step(name, op_type, "int", [x], [out], run, layouts=(CF, CL), elementwise=True,
                table_dtype=dtype, replayable=True)


def fuse_tables(steps: list[Step], graph_outputs: set[str], reuse: bool = True) -> list[Step]:
    """Return `steps` with fusable pairs replaced by single table steps (writing into
    reused output buffers when `reuse`, i.e. outside subgraphs)."""
    changed = True
    while changed:
        changed = False
        uses = Counter(i for s in steps for i in s.inputs if i)
        producer = {o: s for s in steps for o in s.outputs}
        for step in steps:
            if step.kind != "int" or not step.elementwise:
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
        return inner, _table_step(name_, f"{inner.op_type}+{step.op_type}", x,
                                  step.outputs[0], table, dtype, reuse)
    return None
