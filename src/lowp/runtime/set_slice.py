"""paddle2onnx's `set_value` (`x[:, i:j] = v`) as one step of a subgraph.

paddle2onnx writes an assignment to a slice of a tensor as some sixteen nodes (slanet_table's
decoder Loop holds two, run on each of its 501 iterations):

    d = Gather(Shape(X), [a]);  m = Min(d, E)
    shape = Shape(Slice(X, S, m, axes=[a], steps=[1]))
    U = Expand(Unsqueeze(V, [a]), shape)
    T = Tile(Reshape(Range(Squeeze(S), Squeeze(m), Squeeze([1])), [1, .., -1, .., 1]),
             Concat(Slice(shape, [0], [a]), [1], Slice(shape, [a + 1], [r])))
    Y = ScatterElements(X, T, U, axis=a)

Where 0 <= s <= m (s = S[0], m = min(X.shape[a], E[0])) and V, unsqueezed at `a`, has X's
shape but for that axis, every index of T lies in [s, m) and U holds V on each of them: Y
is X with `Y[.., s:m, ..] = V` along axis `a`, the same values bit for bit (ScatterElements
copies its updates). `fuse` replaces the steps of such a group (found on the ONNX nodes,
their constants checked) by one step that computes that, and runs the group's own steps
where those conditions do not hold (so its results are always the group's).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from ..ir.graph import attributes
from . import native_float
from .plan import Step

Execute = Callable[[Step, dict[str, Any], dict[str, object]], None]


@dataclass(frozen=True)
class Group:
    """One set_value: its inputs X, S, E, V, its output Y, the axis, and the outputs of
    every node of the group (its intermediates read by no other node)."""

    x: str
    start: str
    end: str
    value: str
    output: str
    axis: int
    rank: int
    members: frozenset[str]


def _constants(graph: onnx.GraphProto, known: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    values = dict(known)
    values.update((t.name, numpy_helper.to_array(t)) for t in graph.initializer)
    for node in graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and (
                node.attribute[0].name == "value"):
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def find(graph: onnx.GraphProto) -> list[Group]:
    """The set_value groups of `graph` (its own nodes; not those of nested subgraphs)."""
    consts = _constants(graph, {})
    made = {o: n for n in graph.node for o in n.output if o}
    readers: dict[str, int] = {}
    for n in graph.node:
        for i in n.input:
            readers[i] = readers.get(i, 0) + 1
    for o in graph.output:
        readers[o.name] = readers.get(o.name, 0) + 1
    groups = []
    for node in graph.node:
        if node.op_type == "ScatterElements":
            group = _match(node, made, consts, readers)
            if group is not None:
                groups.append(group)
    return groups


def _ints(consts: dict[str, np.ndarray], name: str) -> list[int] | None:
    v = consts.get(name)
    if v is None or v.dtype.kind not in "iu" or v.ndim > 1:
        return None
    return [int(x) for x in v.reshape(-1)]


def _axis(node: onnx.NodeProto) -> int:
    value = attributes(node).get("axis", 0)
    return value if isinstance(value, int) else 0


def _match(scatter: onnx.NodeProto, made: dict[str, onnx.NodeProto],
           consts: dict[str, np.ndarray], readers: dict[str, int]) -> Group | None:
    def producer(name: str, op: str, n_in: tuple[int, ...]) -> onnx.NodeProto | None:
        node = made.get(name)
        if node is None or node.op_type != op or node.domain not in ("", "ai.onnx") or (
                len(node.input) not in n_in):
            return None
        return node

    attrs = attributes(scatter)
    if len(scatter.input) != 3 or attrs.get("reduction", "none") not in ("none", b"none"):
        return None
    x, t_name, u_name = scatter.input
    axis = _axis(scatter)
    nodes: list[onnx.NodeProto] = [scatter]
    # U = Expand(Unsqueeze(V, [a]), Shape(Slice(X, S, m, [a], [1])))
    expand = producer(u_name, "Expand", (2,))
    if expand is None:
        return None
    unsq = producer(expand.input[0], "Unsqueeze", (2,))
    shape = producer(expand.input[1], "Shape", (1,))
    if unsq is None or shape is None or attributes(shape).keys() - {"opset", "num_outputs"}:
        return None
    sliced = producer(shape.input[0], "Slice", (5,))
    tile = producer(t_name, "Tile", (2,))
    if sliced is None or tile is None or sliced.input[0] != x:
        return None
    reshape = producer(tile.input[0], "Reshape", (2,))
    concat = producer(tile.input[1], "Concat", (3,))
    target = None if reshape is None else _ints(consts, reshape.input[1])
    if reshape is None or concat is None or target is None:
        return None
    rank = len(target)
    a = axis + rank if axis < 0 else axis
    if not 0 <= a < rank or target != [-1 if k == a else 1 for k in range(rank)]:
        return None
    if _ints(consts, unsq.input[1]) not in ([a], [a - rank]):
        return None
    if _ints(consts, sliced.input[3]) not in ([a], [a - rank]) or (
            _ints(consts, sliced.input[4]) != [1]):
        return None
    start, m_name = sliced.input[1], sliced.input[2]
    # m = Min(Gather(Shape(X), [a]), E)
    low = producer(m_name, "Min", (2,))
    if low is None:
        return None
    gathers = [(k, producer(low.input[k], "Gather", (2,))) for k in (0, 1)]
    found = [(k, g) for k, g in gathers if g is not None]
    if len(found) != 1:
        return None
    k, gather = found[0]
    end = low.input[1 - k]
    full = producer(gather.input[0], "Shape", (1,))
    if (full is None or full.input[0] != x or _axis(gather) != 0
            or attributes(full).keys() - {"opset", "num_outputs"}
            or _ints(consts, gather.input[1]) != [a]):
        return None
    # T = Tile(Reshape(Range(Squeeze(S), Squeeze(m), Squeeze([1])), target), repeats)
    rng = producer(reshape.input[0], "Range", (3,))
    if rng is None:
        return None
    squeezes = [producer(n, "Squeeze", (1,)) for n in rng.input]
    if any(s is None or attributes(s).get("axes") is not None for s in squeezes):
        return None
    sq0, sq1, sq2 = squeezes
    assert sq0 is not None and sq1 is not None and sq2 is not None
    if sq0.input[0] != start or sq1.input[0] != m_name or _ints(consts, sq2.input[0]) != [1]:
        return None
    # repeats = Concat(Slice(shape, [0], [a], [0]), [1], Slice(shape, [a + 1], [>= r], [0]))
    if _axis(concat) != 0:
        return None
    head = producer(concat.input[0], "Slice", (4, 5))
    tail = producer(concat.input[2], "Slice", (4, 5))
    if head is None or tail is None or _ints(consts, concat.input[1]) != [1]:
        return None
    for part, lo, hi in ((head, 0, a), (tail, a + 1, rank)):
        ends = _ints(consts, part.input[2])
        if (part.input[0] != shape.output[0] or _ints(consts, part.input[1]) != [lo]
                or ends is None or len(ends) != 1 or (ends[0] != hi if part is head
                                                       else ends[0] < hi)
                or _ints(consts, part.input[3]) != [0]
                or (len(part.input) == 5 and _ints(consts, part.input[4]) != [1])):
            return None
    if a == 0 or a == rank - 1:
        return None         # (an empty head or tail: written otherwise by the exporter)
    nodes += [expand, unsq, shape, sliced, tile, reshape, concat, low, gather, full, rng,
              sq0, sq1, sq2, head, tail]
    members = frozenset(o for n in nodes for o in n.output if o)
    inner = members - {scatter.output[0]}
    # every intermediate is read inside the group only
    inside: dict[str, int] = {}
    for n in nodes:
        for i in n.input:
            inside[i] = inside.get(i, 0) + 1
    if any(readers.get(o, 0) != inside.get(o, 0) for o in inner):
        return None
    return Group(x, start, end, unsq.input[0], scatter.output[0], a, rank, members)


def fuse(steps: list[Step], groups: list[Group], constants: dict[str, np.ndarray],
         execute: Execute) -> list[Step]:
    """`steps` with each group's steps replaced by one `SetSlice` step where they are
    exactly the group's nodes but its Constant nodes (at the place of the last one)."""
    for group in groups:
        mine = [k for k, s in enumerate(steps) if any(o in group.members for o in s.outputs)]
        outs = {o for k in mine for o in steps[k].outputs if o}
        if not mine or any(steps[k].kind != "float" or steps[k].subplans for k in mine) or (
                not outs <= group.members or group.output not in outs
                or steps[mine[-1]].outputs != [group.output]):
            continue
        inner = [steps[k] for k in mine]
        step = Step(f"{steps[mine[-1]].name} (set_value)", "SetSlice", "float",
                    [group.x, group.start, group.end, group.value], [group.output],
                    _set_slice_fn(group, inner, constants, execute), act_inputs=())
        taken = set(mine)
        steps = [step if k == mine[-1] else s for k, s in enumerate(steps) if k not in taken
                 or k == mine[-1]]
    return steps


def applies(group_axis: int, x: np.ndarray, start: object, end: object, value: object
            ) -> tuple[int, int] | None:
    """(s, m) where the fused computation is the group's: else None."""
    if not (isinstance(start, np.ndarray) and isinstance(end, np.ndarray)
            and isinstance(value, np.ndarray)):
        return None
    if start.shape != (1,) or end.shape != (1,) or start.dtype != np.int64 or (
            end.dtype != np.int64) or value.dtype != x.dtype or value.ndim + 1 != x.ndim:
        return None
    a = group_axis
    if value.shape != x.shape[:a] + x.shape[a + 1:]:
        return None
    s, e = int(start[0]), int(end[0])
    m = min(x.shape[a], e)
    if not 0 <= s <= m:
        return None
    return s, m


def _set_slice_fn(group: Group, inner: list[Step], constants: dict[str, np.ndarray],
                  execute: Execute) -> Callable[..., tuple[np.ndarray, ...]]:
    a = group.axis

    def run(x: np.ndarray, start: np.ndarray, end: np.ndarray, value: np.ndarray, *,
            layout: object) -> tuple[np.ndarray, ...]:
        del layout
        bounds = (applies(a, x, start, end, value)
                  if isinstance(x, np.ndarray) and x.ndim == group.rank else None)
        if bounds is None:
            # the group's own steps, as they would have run
            env: dict[str, Any] = {**constants, group.x: x, group.start: start,
                                   group.end: end, group.value: value}
            layout_of: dict[str, object] = {}
            for step in inner:
                execute(step, env, layout_of)
            return (env[group.output],)
        s, m = bounds
        made = native_float.set_slice(x, start, end, value, a)
        if made is not None:
            return (made,)
        y = x.copy()
        index = (slice(None),) * a + (slice(s, m),)
        y[index] = np.expand_dims(value, a)
        return (y,)

    return run


__all__ = ["Group", "applies", "find", "fuse"]
