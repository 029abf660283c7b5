"""Lowerings of element-wise arithmetic, concatenation, pooling, lookup-table activations
and data movement (the float implementation run on integers when qparams are unchanged)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import eigen_math
from ..fixedpoint import RequantMode, requant_scale
from ..ops.elementwise import add as qadd
from ..ops.elementwise import mul as qmul
from ..ops.layout import Layout, from_channels_first, to_channels_first
from ..ops.lut import ACTIVATIONS, TAIL_ACTIVATIONS, build_lut
from ..ops.pool import crop_negative_pads, ort_same_pads
from ..ops.softmax import exp_table, output_multiplier
from ..ops.softmax import softmax as qsoftmax
from ..qparams import QParams, QType
from . import moves, native_float
from .fastops import (
    Arena,
    FloatMul,
    lookup,
    make_add,
    make_average_pool,
    make_concat,
    make_mul,
)
from .fastops import global_average_pool as fast_global_average_pool
from .fastops import max_pool as fast_max_pool
from .float_nn import auto_pads
from .float_ops import FLOAT_OPS
from .lower_float_region import ort_channels_last, tail_index
from .lowering import (
    LOWERINGS,
    LowerCtx,
    clip_bounds,
    lowering,
    plain_output,
)
from .plan import (
    CF,
    CL,
    Step,
    StepFn,
    channels_first_view,
    channels_last_result,
    channels_perm,
    per_channel_rows,
    through_channels_first,
)

DATA_MOVEMENT = {"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Slice",
                  "Resize", "Pad", "DepthToSpace", "SpaceToDepth", "MaxPool", "GlobalMaxPool",
                  "Identity", "Gather", "Split", "Expand", "Tile"}

RESHAPES = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"}

# ---------------------------------------------------------------------------------------
# element-wise arithmetic, concatenation, pooling

@lowering("Add", "Mul")
def _binary(ctx: LowerCtx) -> Step | None:
    a, b = ctx.act_input(0), ctx.act_input(1)
    if a is None or b is None or len(ctx.node.input) != 2:
        return None
    out = ctx.output()
    if out is None:
        return None
    y, qmin, qmax = out
    if ctx.node.op_type == "Add" and ctx.requant_mode is not RequantMode.FLOAT32:
        return None
    types = (a.qparams.qtype, b.qparams.qtype, y.qparams.qtype)
    if ctx.requant_mode is RequantMode.FLOAT32 and not ctx.from_qoperator and (
            len(set(types)) > 1 or max(t.bits for t in types) > 8):
        # ONNX Runtime fuses a QDQ Add/Mul group into QLinearAdd/QLinearMul ((O10a)/(O11a))
        # only when both inputs and the output have one 8-bit type, uint8 or int8; it runs
        # mixed and 16-bit groups unfused (DequantizeLinear -> float op -> QuantizeLinear),
        # and so do they here
        return None
    aq, bq, yq = a.qparams, b.qparams, y.qparams
    if ctx.node.op_type == "Mul" and max(aq.qtype.bits, bq.qtype.bits) > 8:
        # the product of two 16-bit codes overflows the int32 accumulator of (O11)/(O11a)
        # (65535 * 35613 wraps negative); ONNX Runtime has no 16-bit QLinearMul and runs
        # DequantizeLinear -> float Mul -> QuantizeLinear, as lowp does for these groups
        return None
    if ctx.node.op_type == "Add" and max(aq.qtype.bits, bq.qtype.bits) <= 16:
        fast = make_add(aq.qtype.numpy_dtype, float(aq.scale), int(aq.zero_point),
                        bq.qtype.numpy_dtype, float(bq.scale), int(bq.zero_point),
                        float(yq.scale), int(yq.zero_point), qmin, qmax,
                        yq.qtype.numpy_dtype)
        arena = Arena(reuse=not ctx.subgraph)

        def run(av: np.ndarray, bv: np.ndarray, *, layout: object) -> tuple[np.ndarray, ...]:
            return (fast(av, bv, arena),)
    else:
        fn = qadd if ctx.node.op_type == "Add" else qmul
        kw: dict[str, object] = {"mode": ctx.requant_mode} if ctx.node.op_type == "Mul" else {}

        def reference(av: np.ndarray, bv: np.ndarray) -> np.ndarray:
            return fn(av, bv, a_scale=float(aq.scale), a_zero_point=int(aq.zero_point),
                      b_scale=float(bq.scale), b_zero_point=int(bq.zero_point),
                      y_scale=float(yq.scale), y_zero_point=int(yq.zero_point), qmin=qmin,
                      qmax=qmax, out_dtype=yq.qtype.numpy_dtype, **kw)  # type: ignore[arg-type]

        float_mul = FloatMul(int(aq.zero_point), int(bq.zero_point),
                             float(requant_scale(float(aq.scale), float(bq.scale),
                                                 float(yq.scale))),
                             int(yq.zero_point), qmin, qmax) \
            if ctx.requant_mode is RequantMode.FLOAT32 else None
        tabled = make_mul(reference, yq.qtype.numpy_dtype, float_mul=float_mul) \
            if ctx.node.op_type == "Mul" else None
        arena = Arena(reuse=not ctx.subgraph)

        def run(av: np.ndarray, bv: np.ndarray, *, layout: object) -> tuple[np.ndarray, ...]:
            if tabled is not None:
                return (tabled(av, bv, arena),)
            return (reference(av, bv),)

    unary = _constant_operand_table(ctx, a, b, y.name, run)
    if unary is None:
        unary = _channel_operand_table(ctx, a, b, y.name, run)
    if unary is not None:
        return unary
    return ctx.step([a.name, b.name], [y.name], run, layouts=(CF, CL), act_inputs=(0, 1),
                    elementwise=True, replayable=True)


def _constant_operand_table(ctx: LowerCtx, a: Any, b: Any, y_name: str,
                            run: Callable[..., tuple[np.ndarray, ...]]) -> Step | None:
    """An 8-bit Add or Mul with a one-value constant operand (rank 0 or 1) as a table step
    of the other operand: the step's own results on the 256 codes, so that lowp.runtime.fuse
    can compose it with the tables around it (a hard-swish's x + 3). One-element inputs run
    the step itself (with both operands single values, which one the kernel treats as the
    scalar is its own rule, (O10a))."""
    operands = _constant_operand(ctx, a, b)
    if operands is None:
        return None
    const, c, x, dtype = operands
    if c.size != 1 or c.ndim > 1 or dtype.itemsize != 1:
        return None
    codes = np.arange(256, dtype=np.uint8).view(dtype)
    (values,) = run(*((codes, c) if const == 1 else (c, codes)), layout=CF)
    values = np.asarray(values)
    if values.shape != (256,) or values.dtype.itemsize != 1:
        return None
    table = np.array(values, copy=True)          # (run wrote into its own buffer)
    arena = Arena(reuse=not ctx.subgraph)

    def run_table(xv: np.ndarray, *, layout: object) -> tuple[np.ndarray, ...]:
        if xv.dtype != dtype or xv.size < 2 or xv.ndim < c.ndim:
            return run(*((xv, c) if const == 1 else (c, xv)), layout=layout)
        return (lookup(xv, table, arena),)

    return ctx.step([x.name], [y_name], run_table,
                    layouts=(CF, CL), elementwise=True, table_dtype=dtype, replayable=True)


def _channel_operand_table(ctx: LowerCtx, a: Any, b: Any, y_name: str,
                           run: Callable[..., tuple[np.ndarray, ...]]) -> Step | None:
    """An 8-bit Add or Mul with a per-channel constant operand (one value per channel of
    axis 1: an unfolded BatchNormalization's scale or shift) as one 256-entry table per
    channel, looked up along the last axis of channels-last data: the step's own results
    on every code of every channel. The table holds what the step computes where the
    constant is a scalar for each span of the other operand ((O10a): spatial size above 1);
    other shapes and layouts run the step itself."""
    operands = _constant_operand(ctx, a, b)
    if operands is None:
        return None
    const, c, x, dtype = operands
    found = _channel_count(c)
    # a (C,) constant: one value per position of the operand's last axis (madmom's
    # batch norm written out on (time, frequency, channels) data), its rows in memory
    last = found is None and c.ndim == 1 and c.size > 1
    if (found is None and not last) or dtype.itemsize != 1:
        return None
    channels, rank = found if found is not None else (c.size, 2)
    codes = np.arange(256, dtype=np.uint8).view(dtype)
    if last:
        # (both operands step along the last axis together, as in the model: (O10a)'s
        # spans of C values on either side)
        grid = np.ascontiguousarray(np.broadcast_to(codes.reshape(256, 1), (256, channels)))
    else:
        grid = np.ascontiguousarray(np.broadcast_to(
            codes.reshape((1, 1, 256) + (1,) * (rank - 3)),
            (1, channels, 256) + (1,) * (rank - 3)))
    (values,) = run(*((grid, c) if const == 1 else (c, grid)), layout=CF)
    values = np.asarray(values)
    if values.shape != grid.shape or values.dtype.itemsize != 1:
        return None
    table = np.ascontiguousarray(values.T if last else values.reshape(channels, 256))
    arena = Arena(reuse=not ctx.subgraph)

    def where(xv: np.ndarray, layout: Layout) -> bool:
        if last:
            return xv.dtype == dtype and xv.ndim >= 2
        return xv.dtype == dtype and xv.ndim == rank and xv.size > xv.shape[0] * channels

    def run_table(xv: np.ndarray, *, layout: Layout) -> tuple[np.ndarray, ...]:
        if per_channel_rows(xv, channels, layout, last) and where(xv, layout):
            return (lookup(xv, table, arena),)
        cf = to_channels_first(xv, layout) if xv.ndim > 2 else xv
        (y,) = run(*((cf, c) if const == 1 else (c, cf)), layout=CF)
        return (from_channels_first(y, layout) if xv.ndim > 2 else y,)

    return ctx.step([x.name], [y_name], run_table, layouts=(CF, CL), replayable=True,
                    channel_table=table, channel_table_where=where, channel_table_last=last)


def _constant_operand(ctx: LowerCtx, a: Any, b: Any
                      ) -> tuple[int, np.ndarray, Any, np.dtype] | None:
    """(the constant's position, its value, the other operand, that operand's integer
    type) when exactly one of the two operands is a constant of the graph."""
    const = [k for k, t in enumerate((a, b)) if ctx.graph.is_constant(t.name)]
    if len(const) != 1:
        return None
    x = (a, b)[1 - const[0]]
    return (const[0], np.asarray(ctx.graph.constant((a, b)[const[0]].name)), x,
            np.dtype(x.qparams.qtype.numpy_dtype))


def _channel_count(c: np.ndarray) -> tuple[int, int] | None:
    """(C, rank) when constant `c` holds C > 1 values along axis 1 of an operand of that
    rank (3 or more) and broadcasts along its other axes: shape (1, C, 1, ...) of the same
    rank, or (C, 1, ...) of one less; else None."""
    if c.ndim >= 3 and c.shape[0] == 1 and c.shape[1] > 1 and all(d == 1 for d in c.shape[2:]):
        return int(c.shape[1]), c.ndim
    if c.ndim >= 2 and c.shape[0] > 1 and all(d == 1 for d in c.shape[1:]):
        return int(c.shape[0]), c.ndim + 1
    return None


@lowering("Concat")
def _concat(ctx: LowerCtx) -> Step | None:
    ins = [ctx.act_input(i) for i in range(len(ctx.node.input))]
    if any(i is None for i in ins):
        return None
    out = ctx.output()
    if out is None:
        return None
    y, qmin, qmax = out
    if (qmin, qmax) != (y.qparams.qmin, y.qparams.qmax):
        return None
    axis = int(ctx.attrs["axis"])  # type: ignore[call-overload]
    qps = [i.qparams for i in ins]  # type: ignore[union-attr]
    concat = make_concat(qps, y.qparams, ctx.requant_mode)
    arena = Arena(reuse=not ctx.subgraph)

    def run(*xs: np.ndarray, layout: object) -> tuple[np.ndarray, ...]:
        ax = axis % xs[0].ndim
        if layout is CL and xs[0].ndim >= 3 and ax >= 1:
            ax = xs[0].ndim - 1 if ax == 1 else ax - 1
        return (concat(xs, ax, arena),)

    # (not `elementwise`: an output element is not a function of the inputs' elements at
    # its position, so Concat(x, f(x)) is no table of x: lowp.runtime.fuse)
    return ctx.step([i.name for i in ins], [y.name], run,  # type: ignore[union-attr]
                    layouts=(CF, CL), act_inputs=tuple(range(len(ins))), replayable=True)


@lowering("AveragePool", "GlobalAveragePool")
def _average_pool(ctx: LowerCtx) -> Step | None:
    x = ctx.act_input(0)
    out = ctx.output() if x is not None else None
    if x is None or out is None:
        return None
    y, qmin, qmax = out
    a = ctx.attrs
    auto_pad = str(a.get("auto_pad", "NOTSET"))
    if auto_pad not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        return None
    if not ctx.from_qoperator and (x.qparams.qtype is not y.qparams.qtype
                                   or x.qparams.qtype.bits != 8):
        # ONNX Runtime's QDQ selector makes QLinearAveragePool / QLinearGlobalAveragePool
        # of a group whose input and output have one 8-bit type, uint8 or int8 (after
        # (O47u)); a 16-bit or mixed group stays DequantizeLinear -> float pool ->
        # QuantizeLinear, and so does it here (docs/operators.md (O59))
        return None
    common = dict(x_zero_point=int(x.qparams.zero_point), x_scale=float(x.qparams.scale),
                  y_scale=float(y.qparams.scale), y_zero_point=int(y.qparams.zero_point),
                  qmin=qmin, qmax=qmax, mode=ctx.requant_mode)
    if ctx.node.op_type == "GlobalAveragePool":
        arena = Arena(reuse=not ctx.subgraph)
        out_dtype = np.dtype(y.qparams.qtype.numpy_dtype)

        def run_global(xv: np.ndarray, *, layout: object) -> tuple[np.ndarray, ...]:
            return (fast_global_average_pool(xv, layout=layout, out_dtype=out_dtype,  # type: ignore[arg-type]
                                             arena=arena, **common),)  # type: ignore[arg-type]

        return ctx.step([x.name], [y.name], run_global, layouts=(CF, CL), replayable=True)
    else:
        kernel = list(a["kernel_shape"])  # type: ignore[call-overload]
        k = len(kernel)
        strides = [int(v) for v in a.get("strides", [1] * k)]  # type: ignore[attr-defined]
        fixed_pads = ([0] * 2 * k if auto_pad == "VALID"
                      else [int(v) for v in a.get("pads", [0] * 2 * k)])  # type: ignore[attr-defined]
        geometry = dict(kernel_shape=kernel, strides=strides, pads=fixed_pads,
                        dilations=list(a.get("dilations", [1] * k)),  # type: ignore[call-overload]
                        count_include_pad=bool(a.get("count_include_pad", 0)),
                        ceil_mode=bool(a.get("ceil_mode", 0)))

        out_dtype = np.dtype(y.qparams.qtype.numpy_dtype)
        pools: dict[tuple[int, ...], Callable[..., np.ndarray]] = {}   # by pads
        arena = Arena(reuse=not ctx.subgraph)

        def run(xv: np.ndarray, *, layout: object) -> tuple[np.ndarray, ...]:
            spatial = xv.shape[1:-1] if layout is CL else xv.shape[2:]
            pads = fixed_pads
            if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
                # ONNX Runtime's pooling pads for this input's size (as MaxPool's: a
                # negative one drops input elements), then the explicit-pad kernel
                begin, end = ort_same_pads(tuple(spatial), kernel, strides, auto_pad)
                xv = crop_negative_pads(xv, begin, end, 1 if layout is CL else 2)
                spatial = xv.shape[1:-1] if layout is CL else xv.shape[2:]
                pads = [max(p, 0) for p in (*begin, *end)]
            if not any(pads) and list(spatial) == kernel:
                # ONNX Runtime's QLinearAveragePool runs its global average pool when the
                # window is the whole image and nothing is padded (qlinear_pool.cc,
                # fallback_to_global): (O8)-(O9), not (O8a)
                # (into the arena, so that the step replays natively)
                return (fast_global_average_pool(xv, layout=layout, out_dtype=out_dtype,  # type: ignore[arg-type]
                                                 arena=arena, **common),)  # type: ignore[arg-type]
            pool = pools.get(tuple(pads))
            if pool is None:
                pool = pools[tuple(pads)] = make_average_pool(
                    {**geometry, "pads": pads}, common)  # type: ignore[arg-type]
            return (pool(xv, layout, arena).astype(out_dtype, copy=False),)
    return ctx.step([x.name], [y.name], run, layouts=(CF, CL), replayable=True)


# ---------------------------------------------------------------------------------------
# lookup-table activations

# Activations whose QDQ group (one DequantizeLinear, one QuantizeLinear of the same 8-bit
# type) ONNX Runtime fuses into a lookup-table kernel of com.microsoft
ORT_TABLE_KERNELS = {"Sigmoid": "QLinearSigmoid", "LeakyRelu": "QLinearLeakyRelu"}


def _refuse_per_channel_table(ctx: LowerCtx) -> None:
    """ONNX Runtime's table kernels refuse per-channel activations when the session loads
    (docs/operators.md (O239)); lowp refuses the node as well."""
    kernel = ORT_TABLE_KERNELS.get(ctx.node.op_type)
    if kernel is None or not ctx._ort_arithmetic:
        return
    x, y = ctx.dq_input_qparams(0), ctx.sole_q_output_qparams()
    if x is not None and y is not None and x.qtype is y.qtype and x.qtype.bits == 8:
        ctx.refuse_per_channel_activations(kernel, x, y)


@lowering(*[op for op in ACTIVATIONS])
def _activation(ctx: LowerCtx) -> Step | None:
    _refuse_per_channel_table(ctx)
    x = ctx.act_input(0)
    if x is None or x.qparams.qtype.bits > 16:
        return None
    node = ctx.node
    attrs = {k: v for k, v in ctx.attrs.items() if k in ("alpha", "beta", "gamma",
                                                          "approximate")}
    if node.op_type == "Clip":
        lo, hi = clip_bounds(node, ctx.graph)
        if lo is None:
            return None
        attrs = {"min": lo, "max": hi}
    elif len(node.input) > 1:
        return None
    out = plain_output(ctx)
    if out is None:
        return None
    qtype = x.qparams.qtype
    # the table indexed by the input's unsigned bit pattern (fastops.lookup)
    codes = np.arange(2 ** qtype.bits, dtype=np.int64).astype(
        np.dtype(f"u{qtype.bits // 8}")).view(qtype.numpy_dtype).astype(np.int64) - qtype.qmin

    def by_bits(fn: Callable[..., Callable[[np.ndarray], np.ndarray]]) -> np.ndarray:
        return np.ascontiguousarray(build_lut(fn(**attrs), x.qparams, out.qparams)[codes])

    table = by_bits(ACTIVATIONS[node.op_type])
    arena = Arena(reuse=not ctx.subgraph)
    tail = TAIL_ACTIVATIONS.get(node.op_type)
    tail_table = by_bits(tail) if tail is not None else table
    if not np.array_equal(tail_table, table):
        channels_last = ort_channels_last(ctx.graph, node.input[0], node.output[0])
        return ctx.step([x.name], [out.name], _functor_table(node.op_type, table, tail_table,
                                                             arena, channels_last),
                        layouts=(CF, CL))

    def run(xv: np.ndarray, *, layout: object) -> tuple[np.ndarray, ...]:
        return (lookup(xv, table, arena),)

    return ctx.step([x.name], [out.name], run, layouts=(CF, CL), elementwise=True,
                    table_dtype=np.dtype(qtype.numpy_dtype), replayable=True)


def _functor_table(op: str, table: np.ndarray, tail_table: np.ndarray,
                   arena: Arena, channels_last: bool) -> StepFn:
    """A table activation whose ONNX Runtime float kernel is an Eigen functor (O132): the
    packets' `table` everywhere, then `tail_table` (the C library's side) on the last
    length % 4 elements of each run the functor evaluates at the session's threads, at
    their positions in ONNX Runtime's tensor: channels-first, or channels-last when
    `channels_last` (between its channels-last convolutions, (O169)). A function of the
    position too, so neither fused with other tables nor replayed."""
    def run(xv: np.ndarray, *, layout: object) -> tuple[np.ndarray, ...]:
        unsigned = np.dtype(f"u{xv.dtype.itemsize}")
        if xv.ndim == 0:                     # one element: the C library's side
            return (np.asarray(tail_table[xv.view(unsigned)]),)
        y = lookup(xv, table, arena)
        runs = eigen_math.functor_runs(op, int(xv.size), native_float.get_threads())
        tails = [k for first, last in runs for k in range(last - (last - first) % 4, last)]
        if not tails:
            return (y,)
        at, _ = tail_index(np.asarray(tails, np.int64), xv, layout, channels_last)  # type: ignore[arg-type]
        y[at] = tail_table[xv[at].view(unsigned)]
        return (y,)

    return run


def _native_softmax_rows() -> Callable[..., np.ndarray] | None:
    try:
        from .native_backend import qsoftmax_rows
    except ImportError:
        return None
    return qsoftmax_rows


@lowering("Softmax")
def _softmax(ctx: LowerCtx) -> Step | None:
    """(O17), ONNX Runtime's QLinearSoftmax: 8-bit in, the same type out."""
    x = ctx.act_input(0)
    if x is None or ctx.requant_mode is not RequantMode.FLOAT32:
        return None
    if x.qparams.qtype not in (QType.UINT8, QType.INT8):
        return None
    out = plain_output(ctx)
    if out is None or out.qparams.qtype is not x.qparams.qtype:
        return None
    opset = ctx.graph.opset
    axis = int(ctx.attrs.get("axis", 1 if opset < 13 else -1))  # type: ignore[call-overload]
    xs, ys, yz = float(x.qparams.scale), float(out.qparams.scale), int(out.qparams.zero_point)
    qt = out.qparams.qtype
    arena = Arena(reuse=not ctx.subgraph)
    native_rows = _native_softmax_rows()

    def run(xv: np.ndarray, *, layout: object) -> tuple[np.ndarray, ...]:
        ax = axis % max(xv.ndim, 1)
        n = int(np.prod(xv.shape[ax:])) if opset < 13 else xv.shape[ax] if xv.ndim else 1
        inner = 1 if opset < 13 else int(np.prod(xv.shape[ax + 1:]))
        if xv.size and xv.flags.c_contiguous and native_rows is not None:
            return (native_rows(xv, n, exp_table(float(np.float32(xs)), n),
                                float(output_multiplier(ys)), yz, qt.qmin, qt.qmax,
                                out=arena.get(xv.shape, xv.dtype),
                                threads=native_float.get_threads(), inner=inner),)
        return (qsoftmax(xv, axis=axis, x_scale=xs, y_scale=ys, y_zero_point=yz,
                         coerce_2d=opset < 13),)

    return ctx.step([x.name], [out.name], run, layouts=(CF,), replayable=True)


# ---------------------------------------------------------------------------------------
# data movement: the float implementation run on integers when qparams are unchanged

def _data_movement(ctx: LowerCtx) -> Step | None:
    x = ctx.act_input(0)
    if x is None or (len(ctx.node.output) != 1 and ctx.node.op_type != "Split"):
        return None
    outs = [plain_output(ctx, i) for i in range(len(ctx.node.output))]
    if any(o is None or not _same_qparams(x.qparams, o.qparams) for o in outs):
        return None
    out = outs[0]
    assert out is not None
    out_names = [o.name for o in outs]  # type: ignore[union-attr]
    node = ctx.node
    fn = FLOAT_OPS[node.op_type]
    attrs = dict(ctx.attrs)
    if node.op_type == "Resize" and str(attrs.get("mode", "nearest")) != "nearest":
        return None
    inputs = list(node.input)
    inputs[0] = x.name
    zp = x.qparams.zero_point.astype(x.qparams.qtype.numpy_dtype)
    opset = ctx.graph.opset
    if node.op_type == "Pad":
        if str(attrs.get("mode", "constant")) == "constant":
            if len(inputs) > 2 and inputs[2]:
                if not ctx.graph.is_constant(inputs[2]) or float(
                        ctx.graph.constant(inputs[2])) != 0.0:
                    return None
                inputs[2] = ""
            elif float(attrs.get("value", 0.0)) != 0.0:  # type: ignore[arg-type]
                return None

    split = node.op_type == "Split"
    # Split writes contiguous parts into buffers of its own (native copies that replay)
    splitter = moves.SplitCopies(len(out_names), reuse=not ctx.subgraph) if split else None

    def run(*vals: np.ndarray | None, layout: object) -> tuple[np.ndarray, ...]:
        args = list(vals)
        kw = attrs
        if node.op_type == "Pad" and str(attrs.get("mode", "constant")) == "constant":
            if opset >= 11:
                while len(args) < 3:
                    args.append(None)
                args[2] = zp
            else:
                attrs["value"] = float(zp)
        if split and layout is CL and args[0] is not None and args[0].ndim >= 3:
            kw = {**attrs, "axis": _channels_last_axis(int(attrs.get("axis", 0)),  # type: ignore[call-overload]
                                                       args[0].ndim)}
        # Split's num_outputs attribute (opset >= 18) equals the number of outputs
        if splitter is not None:
            return splitter(lambda *a: fn(*a, **{**kw, "num_outputs": len(out_names)},
                                          opset=opset), args, layout)
        result = fn(*args, **{**kw, "num_outputs": len(out_names)}, opset=opset)
        results = result if isinstance(result, tuple) else (result,)
        # the data's own integer type (the quantized type; element indices when
        # lowp.runtime.moves maps the step)
        data = args[0]
        dtype = data.dtype if isinstance(data, np.ndarray) and data.dtype.kind in "iu" else \
            x.qparams.qtype.numpy_dtype
        return tuple(np.asarray(r).astype(dtype, copy=False) for r in results[:len(out_names)])

    if split:
        return ctx.step(inputs, out_names, run, layouts=(CF, CL), replayable=True)
    if node.op_type == "Resize" or (node.op_type in ("Slice", "Squeeze") and
                                    _spatial_axes(ctx)):
        # (nearest Resize: a copy; Slice of spatial axes: a circular padding's ends, Slice ->
        # Concat along time; Slice and Squeeze of the unit width of a 1-D convolution
        # written as a 2-D one) the convolutions around them keep their channels-last
        # layout, and so do the element-wise steps and pooling after them
        return ctx.step(inputs, out_names, through_channels_first(run), layouts=(CF, CL))
    moving = channels_perm(attrs.get("perm")) if node.op_type == "Transpose" else None  # type: ignore[arg-type]
    if moving == "to_last":
        # a convolution's channels-last output moved channels-last in ONNX terms (a
        # TensorFlow-converted graph): the input's memory as it is, a view
        return ctx.step(inputs, out_names, channels_first_view(run), layouts=(CF, CL),
                        output_layout=CF, moves_channels=moving)
    if moving == "to_first":
        # and moved back before the next convolution: that one's channels-last input
        # (lower._transpose_where_consumers_want), the same memory again
        return ctx.step(inputs, out_names, run, channels_last_fn=channels_last_result(run),
                        moves_channels=moving)
    layouts = (CF, CL) if node.op_type in ("MaxPool", "GlobalMaxPool") else (CF,)
    if layouts != (CF,):
        a = ctx.attrs
        arena = Arena(reuse=not ctx.subgraph)

        auto_pad = str(a.get("auto_pad", "NOTSET"))

        def run_pool(xv: np.ndarray, *, layout: object) -> tuple[np.ndarray, ...]:
            if node.op_type == "GlobalMaxPool":
                axes = tuple(range(2, xv.ndim)) if layout is CF else tuple(
                    range(1, xv.ndim - 1))
                return (xv.max(axis=axes, keepdims=True),)
            kernel = list(a["kernel_shape"])  # type: ignore[call-overload]
            k = len(kernel)
            strides = list(a.get("strides", [1] * k))  # type: ignore[call-overload]
            dilations = list(a.get("dilations", [1] * k))  # type: ignore[call-overload]
            # explicit pads, or SAME_UPPER / SAME_LOWER's for this input's spatial shape
            spatial = xv.shape[2:] if layout is CF else xv.shape[1:-1]
            if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
                # negative ones kept: ONNX Runtime's MaxPool loop reads what they would
                # drop past the end ((O200))
                begin, end = ort_same_pads(spatial, kernel, strides, auto_pad)
            else:
                begin, end = auto_pads("MaxPool", spatial, kernel, strides, dilations,
                                       a.get("pads"), auto_pad)  # type: ignore[arg-type]
            return (fast_max_pool(xv, kernel_shape=kernel, strides=strides,
                                  pads=[*begin, *end], dilations=dilations,
                                  ceil_mode=bool(a.get("ceil_mode", 0)), layout=layout,  # type: ignore[arg-type]
                                  arena=arena),)

        if auto_pad not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER") or (
                node.op_type == "MaxPool" and len(node.output) > 1):
            return None
        return ctx.step([x.name], [out.name], run_pool, layouts=layouts, replayable=True)
    # pure reshapes compute nothing: when their output is a view of the input, a replay only
    # has to hand the same view on (lowp.runtime.replay)
    return ctx.step(inputs, out_names, run, layouts=layouts,
                    replayable=node.op_type in RESHAPES)


_WHOLE_END = 2**31 - 1     # an end at or past it leaves the axis whole whatever its size


def _spatial_axes(ctx: LowerCtx) -> bool:
    """A Slice (opset >= 10) or Squeeze whose constant axes are spatial ones (2 and up,
    counted from the front), not counting a Slice's axes taken whole (start 0, an end of
    at least 2^31 - 1, step 1: tf2onnx writes a strided slice of every axis so). A Slice
    of the channels (an STFT's real and imaginary halves, read by float arithmetic) stays
    channels-first: its readers would convert it back."""
    graph, node = ctx.graph, ctx.node
    names = list(node.input)
    if node.op_type == "Squeeze":
        if len(names) > 1 and names[1]:
            if not graph.is_constant(names[1]):
                return False
            axes = np.asarray(graph.constant(names[1])).reshape(-1)
        else:
            axes = np.asarray(ctx.attrs.get("axes", []), np.int64).reshape(-1)
        return axes.size > 0 and bool(np.all(axes >= 2))
    if graph.opset < 10 or len(names) < 4 or not names[3] or not graph.is_constant(names[3]):
        return False
    axes = np.asarray(graph.constant(names[3])).reshape(-1)
    return axes.size > 0 and bool(np.all(axes[~_whole_axes(ctx, axes.size)] >= 2))


def _whole_axes(ctx: LowerCtx, count: int) -> np.ndarray:
    """Which of a Slice's `count` axes it takes whole: constant start 0, end at least
    2^31 - 1 and step 1 (none when any of them is not constant)."""
    names = [*ctx.node.input, "", ""]
    values = []
    for k in (1, 2, 4):
        if not names[k] and k == 4:
            values.append(np.ones(count, np.int64))
        elif names[k] and ctx.graph.is_constant(names[k]):
            values.append(np.asarray(ctx.graph.constant(names[k])).reshape(-1))
        else:
            return np.zeros(count, bool)
    starts, ends, steps = values
    if not starts.size == ends.size == steps.size == count:
        return np.zeros(count, bool)
    return (starts == 0) & (ends >= _WHOLE_END) & (steps == 1)


def _channels_last_axis(axis: int, ndim: int) -> int:
    """The axis of a channels-last tensor that holds channels-first axis `axis`."""
    axis %= ndim
    return axis if axis == 0 else (ndim - 1 if axis == 1 else axis - 1)


def _same_qparams(a: QParams, b: QParams) -> bool:
    return (a.qtype == b.qtype and np.array_equal(a.scale, b.scale)
            and np.array_equal(a.zero_point, b.zero_point))


for _op in DATA_MOVEMENT:
    if _op in FLOAT_OPS:
        LOWERINGS.setdefault(_op, _data_movement)
