"""Lower DequantizeLinear -> element-wise float operators -> QuantizeLinear to a lookup table.

A region that starts at the dequantized value of one 8-bit tensor, contains only
element-wise float operators whose other inputs are constants, and ends in one
QuantizeLinear computes, for each output element, a function of one integer (and of the
element's channel when a constant varies along the last axis, as a bias does). Evaluating
the region's own float operators on every representable integer, once per channel, gives a
table that is exact by construction: the lowered step computes bit for bit what the float
steps compute. A GELU written out (Div, Erf, Add, Mul, Mul) after a quantized MatMul and
its float bias Add becomes one table lookup per element.

A BatchNormalization in the region (inference mode, its input the region's value) varies
per channel along axis 1 instead: with its other constants single values, the region is one
table per channel, looked up on channels-last data (a QOperator file's unfolded BN and
HardSwish after a quantized Conv: 27 of them were 49% of a PP-LCNet classifier's run).

Regions of a single operator that has an integer lowering of its own (a quantized Sigmoid,
Add, ...) are left to that lowering.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import numpy as np
import onnx

from .. import eigen_math
from ..ir.graph import Graph, attributes
from ..ops.layout import Layout, from_channels_first, to_channels_first
from ..qparams import QParams, dequantize, quantize
from . import native_float
from .fastops import Arena, lookup
from .float_ops import FLOAT_OPS
from .lowering import LOWERINGS, LowerCtx, lowering
from .plan import CF, CL, Step, per_channel_rows

# Float operators that map each output element to the same element of every input
# (numpy broadcasting) and whose output is float.
ELEMENTWISE: frozenset[str] = frozenset({
    "Add", "Sub", "Mul", "Div", "Pow", "Min", "Max", "Neg", "Abs", "Reciprocal", "Sqrt",
    "Exp", "Log", "Erf", "Tanh", "Sigmoid", "Relu", "LeakyRelu", "Elu", "Selu", "Celu",
    "Softplus", "Softsign", "HardSigmoid", "HardSwish", "Gelu", "Clip", "Sin", "Cos",
    "Identity", "BiasGelu", "FastGelu",
})
# ONNX Runtime's fused element-wise operators (lowp.runtime.ort_fusions writes them)
_DOMAINS = ("", "ai.onnx", "com.microsoft")
MAX_REGION_NODES = 32
MAX_TABLE_ENTRIES = 1 << 20
# a region with more operators whose value depends on the element's position is left to
# its float steps (one table for each subset of them)
MAX_POSITIONAL_NODES = 3


def _region(ctx: LowerCtx, source: str) -> tuple[list[onnx.NodeProto], onnx.NodeProto] | None:
    """(region nodes in graph order, the closing QuantizeLinear) or None.

    The region is every node reachable from `source` before a QuantizeLinear; it must be
    element-wise, read nothing computed outside it but constants, and close in exactly one
    QuantizeLinear whose input nothing else reads.
    """
    g = ctx.graph
    values = {source}
    nodes: list[onnx.NodeProto] = []
    closing: list[onnx.NodeProto] = []
    frontier = [source]
    while frontier:
        value = frontier.pop()
        if value in g.output_names:
            return None
        for consumer in g.consumers.get(value, []):
            if any(consumer is n for n in [*nodes, *closing]):
                continue
            if consumer.op_type == "QuantizeLinear" and consumer.input[0] == value:
                closing.append(consumer)
                continue
            per_channel = consumer.op_type == "BatchNormalization" and \
                consumer.input[0] == value and not any(
                    a.name == "training_mode" and a.i for a in consumer.attribute)
            if ((consumer.op_type not in ELEMENTWISE and not per_channel)
                    or consumer.domain not in _DOMAINS
                    or len([o for o in consumer.output if o]) != 1
                    or len(nodes) >= MAX_REGION_NODES):
                return None
            nodes.append(consumer)
            values.add(consumer.output[0])
            frontier.append(consumer.output[0])
    if len(closing) != 1 or not nodes:
        return None
    q = closing[0]
    if q.input[0] == source or len(g.consumers.get(q.input[0], [])) != 1:
        return None
    if any(i and i not in values and not _float_constant(g, i) for n in nodes for i in n.input):
        return None
    order = {id(n): k for k, n in enumerate(g.graph.node)}
    return sorted(nodes, key=lambda n: order[id(n)]), q


# per graph: the values of its DequantizeLinear nodes of constants (_constant)
_DEQUANTIZED: weakref.WeakKeyDictionary[Graph, dict[str, np.ndarray | None]] = \
    weakref.WeakKeyDictionary()


def _float_constant(g: Graph, name: str) -> bool:
    return _constant(g, name) is not None


def _constant(g: Graph, name: str) -> np.ndarray | None:
    """The float value of `name` when it is fixed: a float constant, or a DequantizeLinear
    of constants (a BatchNormalization scale that ONNX Runtime's quantizer quantized),
    computed by the runtime's own DequantizeLinear step; else None."""
    if g.is_constant(name):
        value = g.constant(name)
        return value if value.dtype.kind == "f" else None
    cache = _DEQUANTIZED.setdefault(g, {})
    if name not in cache:
        cache[name] = None
        dq = g.producer.get(name)
        if (dq is not None and dq.op_type == "DequantizeLinear" and dq.domain in ("", "ai.onnx")
                and all(g.is_constant(i) for i in dq.input if i)):
            from .lower import _qdq_step

            step = _qdq_step(dq, g, quantizing=False, subgraph=True)
            value = np.asarray(step.fn(*[g.constant(i) if i else None for i in dq.input],
                                       layout=CF)[0])
            cache[name] = value if value.dtype.kind == "f" else None
    return cache[name]


def _channels(constants: list[np.ndarray]) -> int | None:
    """Length of the last axis the constants vary along (1: none); None if they vary along
    another axis."""
    channels = 1
    for c in constants:
        if c.size == 1:
            continue
        if any(d != 1 for d in c.shape[:-1]) or channels not in (1, c.shape[-1]):
            return None
        channels = c.shape[-1]
    return channels


@lowering("DequantizeLinear")
def _float_region(ctx: LowerCtx) -> Step | None:
    dq = ctx.node
    g = ctx.graph
    if g.is_constant(dq.input[0]):
        return None
    x_qp = ctx.qparams_of(dq, dq.input[0])
    if x_qp is None or not x_qp.is_per_tensor or x_qp.qtype.bits != 8:
        return None
    found = _region(ctx, dq.output[0])
    if found is None:
        return None
    nodes, q = found
    return _region_step(ctx, dq, x_qp, nodes, q, dq.name)


@lowering("QuantizeLinear")
def _float_region_at_quantize(ctx: LowerCtx) -> Step | None:
    """A region whose dequantized source is also read outside it (by a quantized Mul of a
    GELU written out in a QDQ file: x -> DequantizeLinear -> {Div -> Erf -> QuantizeLinear,
    Mul}), lowered at its QuantizeLinear: the table step reads the source's integers and the
    DequantizeLinear stays for its other readers (dropped when they run on integers)."""
    q = ctx.node
    g = ctx.graph
    found = _region_before(g, q)
    if found is None:
        return None
    nodes, dq = found
    if g.is_constant(dq.input[0]):
        return None
    x_qp = ctx.qparams_of(dq, dq.input[0])
    if x_qp is None or not x_qp.is_per_tensor or x_qp.qtype.bits != 8:
        return None
    step = _region_step(ctx, dq, x_qp, nodes, q, q.name)
    ctx.absorbed = [n for n in ctx.absorbed if n is not q]   # (the step stands for q)
    return step


def _region_before(g: Graph, q: onnx.NodeProto
                   ) -> tuple[list[onnx.NodeProto], onnx.NodeProto] | None:
    """(region nodes in graph order, its DequantizeLinear) of the element-wise float nodes
    that compute `q`'s input from one DequantizeLinear and constants, when every value
    inside is read only inside (or by `q`) and the DequantizeLinear's output is also read
    outside the region (else the DequantizeLinear's own lowering takes the region)."""
    if q.input[0] in g.output_names or len(g.consumers.get(q.input[0], [])) != 1:
        return None
    nodes: list[onnx.NodeProto] = []
    sources: set[int] = set()
    dq: onnx.NodeProto | None = None
    frontier = [q.input[0]]
    while frontier:
        value = frontier.pop()
        p = g.producer.get(value)
        if p is None:
            return None
        if p.op_type == "DequantizeLinear" and p.domain in ("", "ai.onnx"):
            if dq is not None and p is not dq:
                return None
            dq = p
            sources.add(id(p))
            continue
        if any(p is n for n in nodes):
            continue
        if (p.op_type not in ELEMENTWISE or p.domain not in _DOMAINS
                or len([o for o in p.output if o]) != 1 or len(nodes) >= MAX_REGION_NODES):
            return None
        nodes.append(p)
        for i in p.input:
            if i and not _float_constant(g, i):
                frontier.append(i)
    if dq is None or not nodes:
        return None
    inside = {id(n) for n in nodes} | {id(q)}
    for n in nodes:
        if n.output[0] in g.output_names or any(
                id(c) not in inside for c in g.consumers.get(n.output[0], [])):
            return None
    if dq.output[0] in g.output_names or all(
            id(c) in inside for c in g.consumers.get(dq.output[0], [])):
        return None
    order = {id(n): k for k, n in enumerate(g.graph.node)}
    return sorted(nodes, key=lambda n: order[id(n)]), dq


def _region_step(ctx: LowerCtx, dq: onnx.NodeProto, x_qp: QParams,
                 nodes: list[onnx.NodeProto], q: onnx.NodeProto, name: str) -> Step | None:
    """The table step of region `nodes` from `dq`'s output to `q`'s input, named `name`."""
    g = ctx.graph
    if len(nodes) == 1 and nodes[0].op_type in LOWERINGS and nodes[0].domain in ("", "ai.onnx"):
        return None
    y_qp = ctx.qparams_of(q, q.output[0])
    if y_qp is None or not y_qp.is_per_tensor or y_qp.qtype.bits != 8:
        return None
    constants = [c for n in nodes for i in n.input if i and (c := _constant(g, i)) is not None]
    norms = [n for n in nodes if n.op_type == "BatchNormalization"]
    if norms:
        channels = _norm_channels(g, nodes, norms)
        rank = 0
    else:
        channels = _channels(constants)
        rank = max((c.ndim for c in constants), default=0)
        if channels is None:
            axis1 = _axis1_channels(constants)
            if axis1 is not None and axis1[0] * 256 <= MAX_TABLE_ENTRIES:
                return _axis1_step(ctx, dq, nodes, q, x_qp, y_qp, *axis1, name)
    if channels is None or channels * 256 > MAX_TABLE_ENTRIES:
        return None
    positions = _Positions.of(nodes)
    if positions is None:
        return None
    region = _evaluator(g, nodes, dq.output[0], q.input[0])
    tables = positions.tables(lambda scalar: _table(
        _evaluator(g, nodes, dq.output[0], q.input[0], scalar), x_qp, y_qp, channels))
    table = tables[frozenset()]
    fix = positions.fix(tables, "axis1" if norms else "last" if channels > 1 else "none",
                        lambda: ort_channels_last(g, dq.output[0], q.output[0]))
    ctx.absorbed = [*nodes, q]
    op_type = "+".join(n.op_type for n in nodes)
    if norms:
        # per channel along axis 1: the table runs on channels-last data (its last axis)
        return Step(name, op_type, "int", [dq.input[0]],
                    [q.output[0]], _channel_lookup(table, channels, region, x_qp, y_qp,
                                                   Arena(reuse=not ctx.subgraph), fix=fix),
                    layouts=(CL,), replayable=fix is None,
                    channel_table=table if fix is None else None)
    run = _lookup(table, channels, rank,
                  lambda xv: quantize(region(dequantize(xv, x_qp)), y_qp),
                  Arena(reuse=not ctx.subgraph), fix)
    if fix is not None:
        # a function of each element's position too: neither fused nor replayed
        return Step(name, op_type, "int", [dq.input[0]], [q.output[0]], run,
                    layouts=(CF, CL) if channels == 1 else (CF,))
    if channels == 1:
        # a step that may add leading axes is not a function of each element alone: it is
        # not fused with neighbouring tables (lowp.runtime.fuse)
        same_shape = rank <= 1
        return Step(name, op_type, "int", [dq.input[0]], [q.output[0]], run,
                    layouts=(CF, CL), elementwise=same_shape,
                    table_dtype=x_qp.qtype.numpy_dtype if same_shape else None,
                    replayable=True)
    return Step(name, op_type, "int", [dq.input[0]], [q.output[0]], run, replayable=True)


def _axis1_channels(constants: list[np.ndarray]) -> tuple[int, int] | None:
    """(C, rank) when every constant is a single value or holds C > 1 values along axis 1
    of an operand of that rank (3 or more): shape (1, C, 1, ...), or (C, 1, ...) of one
    rank less (a convolution's bias added after it); else None."""
    found: set[int] = set()
    rank = 0
    for c in constants:
        if c.size == 1:
            continue
        if c.ndim >= 3 and c.shape[0] == 1 and c.shape[1] > 1 and all(d == 1 for d in c.shape[2:]):
            found.add(int(c.shape[1]))
            rank = max(rank, c.ndim)
        elif c.ndim >= 2 and c.shape[0] > 1 and all(d == 1 for d in c.shape[1:]):
            found.add(int(c.shape[0]))
            rank = max(rank, c.ndim + 1)
        else:
            return None
    if len(found) != 1:
        return None
    return found.pop(), rank


def _axis1_step(ctx: LowerCtx, dq: onnx.NodeProto, nodes: list[onnx.NodeProto],
                q: onnx.NodeProto, x_qp: QParams, y_qp: QParams, channels: int, rank: int,
                name: str) -> Step | None:
    """A region whose constants vary along axis 1 (a convolution's bias, then a GELU) as one
    table per channel, looked up on channels-last data of that rank; other inputs run the
    region."""
    g = ctx.graph
    positions = _Positions.of(nodes)
    if positions is None:
        return None
    region = _evaluator(g, nodes, dq.output[0], q.input[0])
    dtype = x_qp.qtype.numpy_dtype
    codes = np.arange(256, dtype=np.uint8).view(dtype)
    grid = np.repeat(codes[:, None], channels, axis=1).reshape((256, channels) + (1,) * (rank - 2))

    def build(scalar: frozenset[int]) -> np.ndarray:
        fn = _evaluator(g, nodes, dq.output[0], q.input[0], scalar)
        y = np.broadcast_to(fn(dequantize(grid, x_qp)), grid.shape).reshape(256, channels)
        return np.ascontiguousarray(quantize(y.astype(np.float32), y_qp).T)

    tables = positions.tables(build)
    table = tables[frozenset()]
    fix = positions.fix(tables, "axis1", lambda: ort_channels_last(g, dq.output[0], q.output[0]))
    run = _channel_lookup(table, channels, region, x_qp, y_qp, Arena(reuse=not ctx.subgraph),
                          rank=rank, fix=fix)
    ctx.absorbed = [*nodes, q]
    if fix is not None:
        return Step(name, "+".join(n.op_type for n in nodes), "int", [dq.input[0]],
                    [q.output[0]], run, layouts=(CL,))
    return Step(name, "+".join(n.op_type for n in nodes), "int", [dq.input[0]],
                [q.output[0]], run, layouts=(CL,), replayable=True, channel_table=table,
                channel_table_where=lambda xv, layout: xv.ndim == rank)


def _norm_channels(g: Graph, nodes: list[onnx.NodeProto], norms: list[onnx.NodeProto]
                   ) -> int | None:
    """The channel count of a region with BatchNormalization (per channel along axis 1),
    when its other constants are single values; else None."""
    if any(len(n.input) < 5 or not all(_float_constant(g, i) for i in n.input[1:5])
           for n in norms):
        return None
    sizes = {int(np.size(_constant(g, i))) for n in norms for i in n.input[1:5]}  # type: ignore[arg-type]
    if len(sizes) != 1:
        return None
    others = [c for n in nodes if n.op_type != "BatchNormalization"
              for i in n.input if i and (c := _constant(g, i)) is not None]
    if any(c.size != 1 for c in others):
        return None
    return sizes.pop()


def _channel_lookup(table: np.ndarray, channels: int, region: Callable[[np.ndarray], np.ndarray],
                    x_qp: QParams, y_qp: QParams, arena: Arena, rank: int | None = None,
                    fix: Fix | None = None) -> Callable[..., tuple[np.ndarray, ...]]:
    """A per-channel region's table step: channels along the last axis (channels-last data,
    or rank 2; of rank `rank` when given), `fix` then setting the elements whose value
    depends on their position; anything else runs the region on channels-first data."""
    def run(xv: np.ndarray, *, layout: Layout) -> tuple[np.ndarray, ...]:
        if per_channel_rows(xv, channels, layout) and rank in (None, xv.ndim):
            y = lookup(xv, table, arena)
            if fix is not None:
                fix(xv, y, layout)
            return (y,)
        cf = to_channels_first(xv, layout) if xv.ndim > 2 else xv
        y = quantize(region(dequantize(cf, x_qp)), y_qp)
        return (from_channels_first(y, layout) if xv.ndim > 2 else y,)

    return run


def _evaluator(g: Graph, nodes: list[onnx.NodeProto], source: str, sink: str,
               scalar: frozenset[int] | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """The region's float operators as one function of the dequantized source. With
    `scalar`, each operator whose value depends on the element's position
    (`eigen_math.POSITIONAL`) computes every element as one side of its assignment does:
    the C library's for the nodes at the indices in `scalar`, the packets' for the others
    (a table's element lies in a run's tail for some of them)."""
    calls = []
    for k, n in enumerate(nodes):
        attrs = attributes(n)
        fn: Callable[..., np.ndarray] = FLOAT_OPS[n.op_type]
        if scalar is not None and _positional(n):
            fn = _one_side(n, eigen_math.SCALARS if k in scalar else eigen_math.PACKETS)
        attrs["opset"] = g.opset
        attrs["num_outputs"] = 1
        calls.append((fn, list(n.input), n.output[0], attrs))

    def evaluate(xf: np.ndarray) -> np.ndarray:
        env = {source: xf}
        for fn, inputs, output, attrs in calls:
            args = [env[i] if i in env else _constant(g, i) if i else None for i in inputs]
            env[output] = np.asarray(fn(*args, **attrs))
        return env[sink]

    return evaluate


def _table(region: Callable[[np.ndarray], np.ndarray], x_qp: QParams, y_qp: QParams,
           channels: int) -> np.ndarray:
    """(channels, 256) output integers, indexed by the input's unsigned bit pattern."""
    dtype = x_qp.qtype.numpy_dtype
    codes = np.arange(256, dtype=np.uint8).view(dtype)
    grid = np.repeat(codes[:, None], channels, axis=1)          # (256, channels)
    y = region(dequantize(grid, x_qp))
    y = np.broadcast_to(y, (*y.shape[:-2], 256, channels)).reshape(256, channels)
    return np.ascontiguousarray(quantize(y.astype(np.float32), y_qp).T)


def _lookup(table: np.ndarray, channels: int, rank: int,
            fallback: Callable[[np.ndarray], np.ndarray],
            arena: Arena, fix: Fix | None = None) -> Callable[..., tuple[np.ndarray, ...]]:
    """The table step, `fix` then setting the elements whose value depends on their
    position; constants of rank `rank` give the output at least that rank (leading unit
    axes, as numpy broadcasting adds them), whatever the input's rank."""
    per_tensor = np.ascontiguousarray(table[0]) if channels == 1 else table

    def run(xv: np.ndarray, *, layout: Layout) -> tuple[np.ndarray, ...]:
        if channels > 1 and (xv.ndim == 0 or xv.shape[-1] != channels):
            return (fallback(xv),)       # the constants broadcast the input: no table
        y = lookup(xv, per_tensor, arena)
        if fix is not None:
            fix(xv, y, layout)
        if y.ndim < rank:
            cf = to_channels_first(y, layout) if y.ndim > 1 else y
            cf = cf.reshape((1,) * (rank - y.ndim) + cf.shape)
            y = from_channels_first(cf, layout) if y.ndim > 1 else cf
        return (y,)

    return run


# ---------------------------------------------------------------------------------------
# operators whose value depends on the element's position (docs/operators.md (O169))

Fix = Callable[[np.ndarray, np.ndarray, Layout], None]


def _positional(n: onnx.NodeProto) -> bool:
    return n.op_type in eigen_math.POSITIONAL and n.domain in ("", "ai.onnx")


def _one_side(n: onnx.NodeProto, path: eigen_math.Path) -> Callable[..., np.ndarray]:
    """ONNX Runtime's float32 kernel of `n` as one side of its assignment computes every
    element: `path` PACKETS (a run's full packets) or SCALARS (its last length % 4)."""
    attrs = {k: v for k, v in attributes(n).items() if k in ("alpha", "gamma")}
    expression = eigen_math.POSITIONAL[n.op_type](**attrs)

    def one(x: np.ndarray, *_: object, **__: object) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.asarray(expression(np.asarray(x, np.float32), path), np.float32)

    return one


class _Positions:
    """The region's operators whose value depends on the element's position: ONNX Runtime
    runs each over the whole tensor as an Eigen assignment (one or several runs at its
    threads, `eigen_math.functor_runs`), its packets on a run's full packets and the C
    library on the last length % 4 elements; an element's integer is the table of the
    subset of them whose run tail it lies in."""

    def __init__(self, nodes: list[onnx.NodeProto], found: list[int]) -> None:
        self.found = found
        self.ops = [nodes[k].op_type for k in found]

    @classmethod
    def of(cls, nodes: list[onnx.NodeProto]) -> _Positions | None:
        found = [k for k, n in enumerate(nodes) if _positional(n)]
        return None if len(found) > MAX_POSITIONAL_NODES else cls(nodes, found)

    def tables(self, build: Callable[[frozenset[int]], np.ndarray]
               ) -> dict[frozenset[int], np.ndarray]:
        """The table of each subset of the operators (key: their node indices) on the C
        library's side; frozenset() is the packets' table."""
        subsets = [frozenset(k for b, k in enumerate(self.found) if mask >> b & 1)
                   for mask in range(1 << len(self.found))]
        return {s: build(s) for s in subsets}

    def fix(self, tables: dict[frozenset[int], np.ndarray], channel: str,
            ort_layout: Callable[[], bool]) -> Fix | None:
        """None when every subset's table is the packets' (the region is one table);
        otherwise the function that sets, in a lookup `y` of `xv` by the packets' table,
        each element in a run tail of some operator to its subset's table. `channel`: how
        an element's table row follows from its channels-first index ("none": one row,
        "last": the last axis, "axis1": axis 1); `ort_layout()`: whether ONNX Runtime runs
        the region on channels-last data (`ort_channels_last`)."""
        packets = tables[frozenset()]
        differ = {s: t for s, t in tables.items() if s and not np.array_equal(t, packets)}
        if not differ:
            return None
        ops, found = self.ops, self.found
        channels_last = ort_layout()

        def fix(xv: np.ndarray, y: np.ndarray, layout: Layout) -> None:
            if xv.ndim == 0:                  # one element: a run's tail
                xv, y = xv.reshape(1), y.reshape(1)
            n = int(xv.size)
            threads = native_float.get_threads()
            masks: dict[int, int] = {}
            for b, op in enumerate(ops):
                for first, last in eigen_math.functor_runs(op, n, threads):
                    for p in range(last - (last - first) % 4, last):
                        masks[p] = masks.get(p, 0) | 1 << b
            by_subset: dict[frozenset[int], list[int]] = {}
            for p, mask in masks.items():
                s = frozenset(k for b, k in enumerate(found) if mask >> b & 1)
                if s in differ:
                    by_subset.setdefault(s, []).append(p)
            unsigned = np.dtype(f"u{xv.dtype.itemsize}")
            for s, flat in by_subset.items():
                at, cf = tail_index(np.asarray(flat, np.int64), xv, layout, channels_last)
                row = (cf[-1] if channel == "last" else cf[1] if channel == "axis1"
                       else np.zeros(len(flat), np.int64))
                y[at] = differ[s][row, xv[at].view(unsigned)]

        return fix


def ort_channels_last(g: Graph, source: str, sink: str) -> bool:
    """Whether ONNX Runtime runs the element-wise operators from `source` to `sink` on
    channels-last data: `source` comes from a convolution its layout pass runs
    channels-last and `sink` leads to one, through operators its transpose optimizer has
    handlers for, which pushes the Transpose after the first convolution through them to
    cancel the one before the second ((O60), (O169))."""
    from .lower import _from_convolution, _leads_to_convolution

    return _from_convolution(g, source, set()) and _leads_to_convolution(g, [sink])


def tail_index(flat: np.ndarray, xv: np.ndarray, layout: Layout, channels_last: bool
               ) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """(index into `xv`, channels-first coordinates) of the elements at positions `flat`
    of ONNX Runtime's tensor: channels-first, or channels-last (rank 3 or more) when
    `channels_last`; `xv` is held in `layout`."""
    held_last = layout is CL and xv.ndim > 2
    shape = (xv.shape[0], xv.shape[-1], *xv.shape[1:-1]) if held_last else xv.shape
    if channels_last and xv.ndim > 2:
        at = np.unravel_index(flat, (shape[0], *shape[2:], shape[1]))
        cf = (at[0], at[-1], *at[1:-1])
    else:
        cf = np.unravel_index(flat, shape)
    return ((cf[0], *cf[2:], cf[1]) if held_last else cf), cf
