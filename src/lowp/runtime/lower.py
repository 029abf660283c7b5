"""Lower a (QDQ) ONNX graph to steps: DQ -> op -> Q groups become integer operators,
everything else runs in float. One lowering function per op type, in a table."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from ..errors import ModelError, UnsupportedOpError
from ..fixedpoint import Requant, RequantMode, requant_scale
from ..ir.graph import Graph, attributes
from ..ops.concat import concat as qconcat
from ..ops.elementwise import add as qadd
from ..ops.elementwise import mul as qmul
from ..ops.linear import exact_matmul, wrap_int32
from ..ops.linear import matmul as qmatmul
from ..ops.lut import ACTIVATIONS, apply_lut, build_lut
from ..ops.pool import average_pool as qaverage_pool
from ..ops.pool import global_average_pool as qglobal_average_pool
from ..qparams import PerAxis, PerTensor, QParams, QType, dequantize, quantize
from .backends import ReferenceBackend
from .fastops import make_add
from .fastops import max_pool as fast_max_pool
from .float_ops import FLOAT_OPS
from .fuse import fuse_tables
from .plan import CF, CL, Step

_DATA_MOVEMENT = {"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Slice",
                  "Resize", "Pad", "DepthToSpace", "SpaceToDepth", "MaxPool", "GlobalMaxPool",
                  "Identity", "Gather", "Split", "Expand", "Tile"}


@dataclass
class Quantized:
    """An integer tensor feeding or leaving a lowered operator, with its qparams."""

    name: str
    qparams: QParams


class LowerCtx:
    """What a lowering function may ask about its node's QDQ neighbourhood."""

    def __init__(self, graph: Graph, node: onnx.NodeProto, dq_nodes: dict[str, onnx.NodeProto],
                 q_nodes: dict[str, list[onnx.NodeProto]], backend: ReferenceBackend,
                 requant_mode: RequantMode, arithmetic: Any = None) -> None:
        self.graph = graph
        self.node = node
        self.attrs = attributes(node)
        self._dq = dq_nodes
        self._q = q_nodes
        self.backend = backend
        self.requant_mode = requant_mode
        # optional engine arithmetic for Conv/MatMul/Gemm (lowp.fidelity.session.EngineHook)
        self.arithmetic = arithmetic
        self.absorbed: list[onnx.NodeProto] = []      # Q / fused activation nodes replaced

    def qparams_of(self, qdq: onnx.NodeProto, int_tensor: str) -> QParams | None:
        g = self.graph
        if not g.is_constant(qdq.input[1]):
            return None
        scale = g.constant(qdq.input[1]).astype(np.float32)
        if len(qdq.input) > 2 and qdq.input[2]:
            if not g.is_constant(qdq.input[2]):
                return None
            zp = g.constant(qdq.input[2])
            qtype = QType.from_numpy(zp.dtype)
        else:
            zp = np.zeros(scale.shape, np.int32)
            et = g.value_elem_type(int_tensor)
            qtype = QType.from_onnx(et) if et else QType.UINT8
        if scale.ndim == 0 or scale.size == 1 and "axis" not in attributes(qdq):
            return QParams(scale.reshape(()), zp.reshape(()).astype(np.int32), qtype,
                           qtype.qmin, qtype.qmax, PerTensor())
        if "block_size" in attributes(qdq) and int(attributes(qdq)["block_size"]):  # type: ignore[call-overload]
            return None
        axis = int(attributes(qdq).get("axis", 1))  # type: ignore[call-overload]
        return QParams(scale.reshape(-1), zp.reshape(-1).astype(np.int32), qtype,
                       qtype.qmin, qtype.qmax, PerAxis(axis))

    def act_input(self, i: int) -> Quantized | None:
        """Input i as a per-tensor integer activation (it must come from a DequantizeLinear)."""
        if i >= len(self.node.input) or not self.node.input[i]:
            return None
        dq = self._dq.get(self.node.input[i])
        if dq is None:
            return None
        qp = self.qparams_of(dq, dq.input[0])
        if qp is None or not qp.is_per_tensor:
            return None
        return Quantized(dq.input[0], qp)

    def const_input(self, i: int) -> tuple[np.ndarray, QParams] | None:
        """Input i as constant integers + qparams (a weight or bias behind a DQ)."""
        if i >= len(self.node.input) or not self.node.input[i]:
            return None
        dq = self._dq.get(self.node.input[i])
        if dq is None or not self.graph.is_constant(dq.input[0]):
            return None
        qp = self.qparams_of(dq, dq.input[0])
        if qp is None:
            return None
        return self.graph.constant(dq.input[0]), qp

    def output(self) -> tuple[Quantized, int, int] | None:
        """The output's Q node (through a fused Relu/Clip): (tensor, qmin, qmax) or None."""
        out = self.node.output[0]
        absorbed = []
        consumers = self.graph.consumers.get(out, [])
        clamp_lo, clamp_hi = -np.inf, np.inf
        if (len(consumers) == 1 and consumers[0].op_type in ("Relu", "Clip")
                and out not in self.graph.output_names):
            act = consumers[0]
            if act.op_type == "Relu":
                clamp_lo = 0.0
            else:
                lo, hi = _clip_bounds(act, self.graph)
                if lo is None:
                    return None
                clamp_lo, clamp_hi = lo, hi  # type: ignore[assignment]
            absorbed.append(act)
            out = act.output[0]
            consumers = self.graph.consumers.get(out, [])
        if (len(consumers) != 1 or consumers[0].op_type != "QuantizeLinear"
                or out in self.graph.output_names):
            return None
        q = consumers[0]
        qp = self.qparams_of(q, q.output[0])
        if qp is None or not qp.is_per_tensor:
            return None
        qmin, qmax = qp.qmin, qp.qmax
        if clamp_lo > -np.inf:
            qmin = max(qmin, int(quantize(np.float32(clamp_lo), qp)))
        if clamp_hi < np.inf:
            qmax = min(qmax, int(quantize(np.float32(clamp_hi), qp)))
        absorbed.append(q)
        self.absorbed = absorbed
        return Quantized(q.output[0], qp), qmin, qmax

    def requant(self, m: np.ndarray, y: QParams, qmin: int, qmax: int) -> Requant:
        return Requant(m, int(y.zero_point), qmin, qmax, self.requant_mode,
                       y.qtype.numpy_dtype)

    def step(self, inputs: list[str], outputs: list[str],
             fn: Callable[..., tuple[np.ndarray, ...]], **kw: object) -> Step:
        return Step(self.node.name, self.node.op_type, "int", inputs, outputs, fn,
                    **kw)  # type: ignore[arg-type]


def _clip_bounds(node: onnx.NodeProto, graph: Graph) -> tuple[float | None, float]:
    a = attributes(node)
    lo: float | None = float(a.get("min", -np.inf))  # type: ignore[arg-type]
    hi = float(a.get("max", np.inf))  # type: ignore[arg-type]
    for idx in (1, 2):
        if len(node.input) > idx and node.input[idx]:
            if not graph.is_constant(node.input[idx]):
                return None, hi
            v = float(graph.constant(node.input[idx]))
            if idx == 1:
                lo = v
            else:
                hi = v
    return lo, hi


Lowering = Callable[[LowerCtx], Step | None]
LOWERINGS: dict[str, Lowering] = {}


def lowering(*op_types: str) -> Callable[[Lowering], Lowering]:
    def deco(fn: Lowering) -> Lowering:
        for op in op_types:
            LOWERINGS[op] = fn
        return fn
    return deco


# ---------------------------------------------------------------------------------------
# heavy operators: convolution and matrix products

def _bias_at(ctx: LowerCtx, i: int, x: QParams, w: QParams) -> np.ndarray | None | bool:
    """Bias input i as int32 at scale s_x * s_w (A1); False when it cannot be used."""
    if i >= len(ctx.node.input) or not ctx.node.input[i]:
        return None
    c = ctx.const_input(i)
    if c is None:
        return False
    bq, bqp = c
    if bq.dtype != np.int32:
        return False
    want = (np.float32(x.scale) * w.scale).astype(np.float32)
    if np.array_equal(np.broadcast_to(bqp.scale, want.shape), want) and np.all(
            bqp.zero_point == 0):
        return bq.astype(np.int32)
    # a bias at another scale: bring it to s_x * s_w (a rounding step of its own)
    real = dequantize(bq, bqp)
    return np.clip(np.rint(real / want), -2**31, 2**31 - 1).astype(np.int32)


def _weight_zero_point(w: QParams, channels: int) -> int | np.ndarray:
    return int(w.zero_point) if w.is_per_tensor else w.zero_point.astype(np.int32)


@lowering("Conv")
def _conv(ctx: LowerCtx) -> Step | None:
    x, wc = ctx.act_input(0), ctx.const_input(1)
    if x is None or wc is None:
        return None
    w, wqp = wc
    if not wqp.is_per_tensor and wqp.granularity != PerAxis(0):
        return None
    out = ctx.output()
    if out is None:
        return None
    y, qmin, qmax = out
    bias = _bias_at(ctx, 2, x.qparams, wqp)
    if bias is False:
        return None
    a = ctx.attrs
    k = w.ndim - 2
    auto_pad = str(a.get("auto_pad", "NOTSET"))
    strides = list(a.get("strides", [1] * k))  # type: ignore[call-overload]
    dilations = list(a.get("dilations", [1] * k))  # type: ignore[call-overload]
    group = int(a.get("group", 1))  # type: ignore[call-overload]
    m = requant_scale(x.qparams.scale, wqp.scale, y.qparams.scale)
    requant = ctx.requant(m, y.qparams, qmin, qmax)
    backend = ctx.backend
    kernels: dict[tuple[int, ...], Callable[..., np.ndarray]] = {}

    def kernel_for(spatial: tuple[int, ...]) -> Callable[..., np.ndarray]:
        if spatial not in kernels:
            pads = _conv_pads(a, auto_pad, spatial, w.shape[2:], strides, dilations)
            if ctx.arithmetic is not None:           # engine arithmetic (lowp.fidelity)
                kernels[spatial] = ctx.arithmetic.conv(
                    w, bias if isinstance(bias, np.ndarray) else None, x.qparams, wqp,
                    y.qparams, qmin, qmax, strides=strides, pads=pads, dilations=dilations,
                    group=group)
                return kernels[spatial]
            kernels[spatial] = backend.conv(
                w, bias if isinstance(bias, np.ndarray) else None,
                x_zero_point=int(x.qparams.zero_point), x_dtype=x.qparams.qtype.numpy_dtype,
                w_zero_point=_weight_zero_point(wqp, w.shape[0]), requant=requant,
                strides=strides, pads=pads, dilations=dilations, group=group)
        return kernels[spatial]

    static = auto_pad in ("NOTSET", "VALID")
    if static:
        kernel_for(())

    def run(xv: np.ndarray, *, layout: object) -> tuple[np.ndarray, ...]:
        spatial = () if static else (tuple(xv.shape[2:]) if layout is CF
                                     else tuple(xv.shape[1:-1]))
        return (kernel_for(spatial)(xv, layout),)

    return ctx.step([x.name], [y.name], run, layouts=backend.conv_layouts)


def _conv_pads(a: dict[str, object], auto_pad: str, spatial: Sequence[int],
               kernel: Sequence[int], strides: Sequence[int],
               dilations: Sequence[int]) -> list[int]:
    k = len(kernel)
    if auto_pad == "NOTSET":
        return list(a.get("pads", [0] * 2 * k))  # type: ignore[call-overload]
    if auto_pad == "VALID":
        return [0] * 2 * k
    begins, ends = [], []
    for size, kk, s, d in zip(spatial, kernel, strides, dilations, strict=True):
        out = -(-size // s)
        total = max(0, (out - 1) * s + (kk - 1) * d + 1 - size)
        small, big = total // 2, total - total // 2
        begins.append(small if auto_pad == "SAME_UPPER" else big)
        ends.append(big if auto_pad == "SAME_UPPER" else small)
    return begins + ends


@lowering("MatMul", "Gemm")
def _matmul(ctx: LowerCtx) -> Step | None:
    a = ctx.attrs
    if ctx.node.op_type == "Gemm" and (
            float(a.get("alpha", 1.0)) != 1.0 or float(a.get("beta", 1.0)) != 1.0  # type: ignore[arg-type]
            or int(a.get("transA", 0))):  # type: ignore[call-overload]
        return None
    x = ctx.act_input(0)
    if x is None:
        return _dynamic_matmul(ctx)
    wc = ctx.const_input(1)
    trans_b = bool(int(a.get("transB", 0))) if ctx.node.op_type == "Gemm" else False  # type: ignore[call-overload]
    if wc is None:
        if ctx.node.op_type == "Gemm":
            return None
        other = ctx.act_input(1)
        if other is None:
            return None
        return _matmul_two_activations(ctx, x, other)
    w, wqp = wc
    if w.ndim != 2:
        return None
    if trans_b:
        w = np.ascontiguousarray(w.T)
        if not wqp.is_per_tensor:
            if wqp.granularity != PerAxis(0):
                return None
            wqp = QParams(wqp.scale, wqp.zero_point, wqp.qtype, wqp.qmin, wqp.qmax, PerAxis(1))
    elif not wqp.is_per_tensor and wqp.granularity.axis % 2 != 1:  # type: ignore[union-attr]
        return None
    out = ctx.output()
    if out is None:
        return None
    y, qmin, qmax = out
    bias = _bias_at(ctx, 2, x.qparams, wqp) if ctx.node.op_type == "Gemm" else None
    if bias is False:
        return None
    m = requant_scale(x.qparams.scale, wqp.scale, y.qparams.scale)
    kernel = ctx.backend.matmul(
        w, bias if isinstance(bias, np.ndarray) else None,
        a_zero_point=int(x.qparams.zero_point), a_dtype=x.qparams.qtype.numpy_dtype,
        b_zero_point=_weight_zero_point(wqp, w.shape[1]),
        requant=ctx.requant(m, y.qparams, qmin, qmax))
    if ctx.arithmetic is not None:                   # engine arithmetic (lowp.fidelity)
        kernel = ctx.arithmetic.matmul(w, bias if isinstance(bias, np.ndarray) else None,
                                       x.qparams, wqp, y.qparams, qmin, qmax)

    def run(xv: np.ndarray, *, layout: object) -> tuple[np.ndarray, ...]:
        return (kernel(xv),)

    return ctx.step([x.name], [y.name], run)


def _dynamic_matmul(ctx: LowerCtx) -> Step | None:
    """DynamicQuantizeLinear -> DequantizeLinear -> MatMul(DQ(weights)): integer product,
    float output y = float32(acc) * float32(s_x * s_w) (per column where s_w is)."""
    dq = ctx._dq.get(ctx.node.input[0])
    if dq is None or len(dq.input) < 3:
        return None
    producer = ctx.graph.producer.get(dq.input[0])
    if (producer is None or producer.op_type != "DynamicQuantizeLinear"
            or list(dq.input[:3]) != list(producer.output[:3])):
        return None
    wc = ctx.const_input(1)
    if wc is None or wc[0].ndim != 2:
        return None
    w, wqp = wc
    column_axis = 1
    bias = None
    if ctx.node.op_type == "Gemm":
        if int(ctx.attrs.get("transB", 0)):  # type: ignore[call-overload]
            w, column_axis = w.T, 0
        if len(ctx.node.input) > 2 and ctx.node.input[2]:
            if not ctx.graph.is_constant(ctx.node.input[2]):
                return None
            bias = ctx.graph.constant(ctx.node.input[2]).astype(np.float32)
    if not wqp.is_per_tensor and wqp.granularity.axis % 2 != column_axis:  # type: ignore[union-attr]
        return None
    wi = w.astype(np.int64) - (wqp.zero_point.astype(np.int64) if wqp.is_per_tensor
                               else wqp.zero_point.astype(np.int64).reshape(1, -1))
    w_scale = wqp.scale.astype(np.float32)

    def run(q: np.ndarray, s: np.ndarray, z: np.ndarray, *,
            layout: object) -> tuple[np.ndarray, ...]:
        acc = wrap_int32(exact_matmul(q.astype(np.int64) - np.int64(z), wi))
        scale = (np.float32(s) * w_scale).astype(np.float32)
        y = acc.astype(np.float32) * scale
        return (y if bias is None else y + bias,)

    return ctx.step(list(dq.input[:3]), [ctx.node.output[0]], run, act_inputs=(0,))


def _matmul_two_activations(ctx: LowerCtx, a: Quantized, b: Quantized) -> Step | None:
    out = ctx.output()
    if out is None:
        return None
    y, qmin, qmax = out
    m = requant_scale(a.qparams.scale, b.qparams.scale, y.qparams.scale)
    requant = ctx.requant(m, y.qparams, qmin, qmax)

    def run(av: np.ndarray, bv: np.ndarray, *, layout: object) -> tuple[np.ndarray, ...]:
        return (qmatmul(av, bv, a_zero_point=int(a.qparams.zero_point),
                                  b_zero_point=int(b.qparams.zero_point), requant=requant),)

    return ctx.step([a.name, b.name], [y.name], run, act_inputs=(0, 1))


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
    aq, bq, yq = a.qparams, b.qparams, y.qparams
    if ctx.node.op_type == "Add" and max(aq.qtype.bits, bq.qtype.bits) <= 16:
        fast = make_add(aq.qtype.numpy_dtype, float(aq.scale), int(aq.zero_point),
                        bq.qtype.numpy_dtype, float(bq.scale), int(bq.zero_point),
                        float(yq.scale), int(yq.zero_point), qmin, qmax,
                        yq.qtype.numpy_dtype)

        def run(av: np.ndarray, bv: np.ndarray, *, layout: object) -> tuple[np.ndarray, ...]:
            return (fast(av, bv),)
    else:
        fn = qadd if ctx.node.op_type == "Add" else qmul
        kw = {"mode": ctx.requant_mode} if ctx.node.op_type == "Mul" else {}

        def run(av: np.ndarray, bv: np.ndarray, *, layout: object) -> tuple[np.ndarray, ...]:
            return (fn(av, bv, a_scale=float(aq.scale), a_zero_point=int(aq.zero_point),
                       b_scale=float(bq.scale), b_zero_point=int(bq.zero_point),
                       y_scale=float(yq.scale), y_zero_point=int(yq.zero_point), qmin=qmin,
                       qmax=qmax, out_dtype=yq.qtype.numpy_dtype, **kw),)

    return ctx.step([a.name, b.name], [y.name], run, layouts=(CF, CL), act_inputs=(0, 1),
                    elementwise=True)


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
    mode = ctx.requant_mode

    def run(*xs: np.ndarray, layout: object) -> tuple[np.ndarray, ...]:
        ax = axis % xs[0].ndim
        if layout is CL and xs[0].ndim >= 3 and ax >= 1:
            ax = xs[0].ndim - 1 if ax == 1 else ax - 1
        return (qconcat(xs, qps, y.qparams, ax, mode),)

    return ctx.step([i.name for i in ins], [y.name], run,  # type: ignore[union-attr]
                    layouts=(CF, CL), act_inputs=tuple(range(len(ins))), elementwise=True)


@lowering("AveragePool", "GlobalAveragePool")
def _average_pool(ctx: LowerCtx) -> Step | None:
    x = ctx.act_input(0)
    out = ctx.output() if x is not None else None
    if x is None or out is None:
        return None
    y, qmin, qmax = out
    a = ctx.attrs
    if str(a.get("auto_pad", "NOTSET")) not in ("NOTSET", "VALID"):
        return None
    common = dict(x_zero_point=int(x.qparams.zero_point), x_scale=float(x.qparams.scale),
                  y_scale=float(y.qparams.scale), y_zero_point=int(y.qparams.zero_point),
                  qmin=qmin, qmax=qmax, mode=ctx.requant_mode)
    if ctx.node.op_type == "GlobalAveragePool":
        def run(xv: np.ndarray, *, layout: object) -> tuple[np.ndarray, ...]:
            return (qglobal_average_pool(xv, layout=layout, **common).astype(  # type: ignore[arg-type]
                y.qparams.qtype.numpy_dtype),)
    else:
        kernel = list(a["kernel_shape"])  # type: ignore[call-overload]
        k = len(kernel)
        geometry = dict(kernel_shape=kernel,
                        strides=list(a.get("strides", [1] * k)),  # type: ignore[call-overload]
                        pads=[0] * 2 * k if a.get("auto_pad") == "VALID"
                        else list(a.get("pads", [0] * 2 * k)),  # type: ignore[call-overload]
                        dilations=list(a.get("dilations", [1] * k)),  # type: ignore[call-overload]
                        count_include_pad=bool(a.get("count_include_pad", 0)),
                        ceil_mode=bool(a.get("ceil_mode", 0)))

        def run(xv: np.ndarray, *, layout: object) -> tuple[np.ndarray, ...]:
            return (qaverage_pool(xv, layout=layout, **geometry, **common).astype(  # type: ignore[arg-type]
                y.qparams.qtype.numpy_dtype),)
    return ctx.step([x.name], [y.name], run, layouts=(CF, CL))


# ---------------------------------------------------------------------------------------
# lookup-table activations

@lowering(*[op for op in ACTIVATIONS])
def _activation(ctx: LowerCtx) -> Step | None:
    x = ctx.act_input(0)
    if x is None or x.qparams.qtype.bits > 16:
        return None
    node = ctx.node
    attrs = {k: v for k, v in ctx.attrs.items() if k in ("alpha", "beta", "gamma",
                                                          "approximate")}
    if node.op_type == "Clip":
        lo, hi = _clip_bounds(node, ctx.graph)
        if lo is None:
            return None
        attrs = {"min": lo, "max": hi}
    elif len(node.input) > 1:
        return None
    out = _plain_output(ctx)
    if out is None:
        return None
    table = build_lut(ACTIVATIONS[node.op_type](**attrs), x.qparams, out.qparams)
    qtype = x.qparams.qtype

    def run(xv: np.ndarray, *, layout: object) -> tuple[np.ndarray, ...]:
        return (apply_lut(xv, table, qtype),)

    return ctx.step([x.name], [out.name], run, layouts=(CF, CL), elementwise=True,
                    table_dtype=np.dtype(qtype.numpy_dtype))


def _plain_output(ctx: LowerCtx, index: int = 0) -> Quantized | None:
    """Output `index`'s Q node with no fused activation (it would change a table's meaning).

    The Q node is added to the nodes this lowering absorbs.
    """
    name = ctx.node.output[index]
    consumers = ctx.graph.consumers.get(name, [])
    if (len(consumers) != 1 or consumers[0].op_type != "QuantizeLinear"
            or name in ctx.graph.output_names):
        return None
    q = consumers[0]
    qp = ctx.qparams_of(q, q.output[0])
    if qp is None or not qp.is_per_tensor:
        return None
    ctx.absorbed = [*ctx.absorbed, q] if index else [q]
    return Quantized(q.output[0], qp)


# ---------------------------------------------------------------------------------------
# data movement: the float implementation run on integers when qparams are unchanged

def _data_movement(ctx: LowerCtx) -> Step | None:
    x = ctx.act_input(0)
    if x is None or (len(ctx.node.output) != 1 and ctx.node.op_type != "Split"):
        return None
    outs = [_plain_output(ctx, i) for i in range(len(ctx.node.output))]
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

    def run(*vals: np.ndarray | None, layout: object) -> tuple[np.ndarray, ...]:
        args = list(vals)
        if node.op_type == "Pad" and str(attrs.get("mode", "constant")) == "constant":
            if opset >= 11:
                while len(args) < 3:
                    args.append(None)
                args[2] = zp
            else:
                attrs["value"] = float(zp)
        result = fn(*args, **attrs, opset=opset, num_outputs=len(out_names))
        results = result if isinstance(result, tuple) else (result,)
        return tuple(np.asarray(r).astype(x.qparams.qtype.numpy_dtype, copy=False)
                     for r in results[:len(out_names)])

    layouts = (CF, CL) if node.op_type in ("MaxPool", "GlobalMaxPool") else (CF,)
    if layouts != (CF,):
        a = ctx.attrs

        def run_pool(xv: np.ndarray, *, layout: object) -> tuple[np.ndarray, ...]:
            if node.op_type == "GlobalMaxPool":
                axes = tuple(range(2, xv.ndim)) if layout is CF else tuple(
                    range(1, xv.ndim - 1))
                return (xv.max(axis=axes, keepdims=True),)
            k = len(a["kernel_shape"])  # type: ignore[arg-type]
            return (fast_max_pool(xv, kernel_shape=list(a["kernel_shape"]),  # type: ignore[call-overload]
                               strides=list(a.get("strides", [1] * k)),  # type: ignore[call-overload]
                               pads=list(a.get("pads", [0] * 2 * k)),  # type: ignore[call-overload]
                               dilations=list(a.get("dilations", [1] * k)),  # type: ignore[call-overload]
                               ceil_mode=bool(a.get("ceil_mode", 0)), layout=layout),)  # type: ignore[arg-type]

        if str(a.get("auto_pad", "NOTSET")) not in ("NOTSET", "VALID") or (
                node.op_type == "MaxPool" and len(node.output) > 1):
            return None
        return ctx.step([x.name], [out.name], run_pool, layouts=layouts)
    return ctx.step(inputs, out_names, run, layouts=layouts)


def _same_qparams(a: QParams, b: QParams) -> bool:
    return (a.qtype == b.qtype and np.array_equal(a.scale, b.scale)
            and np.array_equal(a.zero_point, b.zero_point))


for _op in _DATA_MOVEMENT:
    if _op in FLOAT_OPS:
        LOWERINGS.setdefault(_op, _data_movement)


# ---------------------------------------------------------------------------------------
# the graph walk

def lower(model: onnx.ModelProto, backend: ReferenceBackend,
          requant_mode: RequantMode = RequantMode.FLOAT32,
          outer: frozenset[str] = frozenset(), arithmetic: Any = None) -> list[Step]:
    """Steps in execution order; only those needed for the graph outputs are kept.

    `outer` names values a subgraph reads from its enclosing scope. `arithmetic` (optional,
    lowp.fidelity) computes Conv/MatMul/Gemm groups with a target engine's arithmetic.
    """
    graph = Graph(model)
    dq_nodes = {n.output[0]: n for n in model.graph.node if n.op_type == "DequantizeLinear"}
    q_nodes: dict[str, list[onnx.NodeProto]] = {}
    for n in model.graph.node:
        if n.op_type == "QuantizeLinear":
            q_nodes.setdefault(n.input[0], []).append(n)
    absorbed: set[int] = set()
    steps: list[Step] = []
    lowered: dict[int, Step] = {}
    for node in model.graph.node:
        fn = LOWERINGS.get(node.op_type)
        if fn is None or node.domain not in ("", "ai.onnx"):
            continue
        ctx = LowerCtx(graph, node, dq_nodes, q_nodes, backend, requant_mode, arithmetic)
        step = fn(ctx)
        if step is not None:
            lowered[id(node)] = step
            absorbed.update(id(n) for n in ctx.absorbed)
    for node in model.graph.node:
        if id(node) in absorbed:
            continue
        if id(node) in lowered:
            steps.append(lowered[id(node)])
        else:
            steps.append(_float_step(node, graph, backend, requant_mode))
    return fuse_tables(_prune(steps, graph, outer), set(graph.output_names))


def _float_step(node: onnx.NodeProto, graph: Graph, backend: ReferenceBackend,
                requant_mode: RequantMode) -> Step:
    if node.op_type in ("If", "Loop") and node.domain in ("", "ai.onnx"):
        from .control import control_flow_step
        return control_flow_step(node, graph, backend, requant_mode)
    if node.domain not in ("", "ai.onnx"):
        raise UnsupportedOpError(node.op_type, node.name, f"domain '{node.domain}' is not "
                                 "supported")
    if node.op_type == "DequantizeLinear":
        return _qdq_step(node, graph, quantizing=False)
    if node.op_type == "QuantizeLinear":
        return _qdq_step(node, graph, quantizing=True)
    fn = FLOAT_OPS.get(node.op_type)
    if fn is None:
        raise UnsupportedOpError(node.op_type, node.name, "lowp's engine has no "
                                 "implementation of this operator")
    attrs = attributes(node)
    attrs["opset"] = graph.opset
    attrs["num_outputs"] = len(node.output)
    n_out = len(node.output)
    name, op_type = node.name, node.op_type

    def run(*vals: np.ndarray | None, layout: object) -> tuple[np.ndarray, ...]:
        try:
            result = fn(*vals, **attrs)
        except UnsupportedOpError as e:
            raise UnsupportedOpError(op_type, name, str(e).split(": ", 1)[-1]) from None
        if not isinstance(result, tuple):
            result = (result,)
        return tuple(np.asarray(r) for r in result[:n_out])

    return Step(node.name, node.op_type, "float", list(node.input), list(node.output), run)


def _qdq_step(node: onnx.NodeProto, graph: Graph, *, quantizing: bool) -> Step:
    attrs = attributes(node)
    axis = int(attrs.get("axis", 1))  # type: ignore[call-overload]
    if int(attrs.get("block_size", 0)):  # type: ignore[call-overload]
        raise UnsupportedOpError(node.op_type, node.name, "blocked quantization")
    op_type, name = node.op_type, node.name
    out_type = None
    if quantizing and len(node.input) > 2 and node.input[2]:
        out_type = graph.value_elem_type(node.input[2])
    elif quantizing and "output_dtype" in attrs and int(attrs["output_dtype"]):  # type: ignore[call-overload]
        out_type = int(attrs["output_dtype"])  # type: ignore[call-overload]

    def run(x: np.ndarray, scale: np.ndarray, zp: np.ndarray | None = None, *,
            layout: object) -> tuple[np.ndarray, ...]:
        scale = np.asarray(scale, np.float32)
        if zp is None:
            qtype = QType.from_onnx(out_type) if out_type else (
                QType.UINT8 if quantizing else QType.from_numpy(x.dtype))
            zp = np.zeros(scale.shape, qtype.numpy_dtype)
        qtype = QType.from_numpy(zp.dtype)
        if scale.ndim == 0 or scale.size == 1 and scale.ndim <= 1 and x.ndim == 0:
            qp = QParams(scale.reshape(()), zp.reshape(()), qtype, qtype.qmin, qtype.qmax)
        else:
            qp = QParams(scale.reshape(-1), zp.reshape(-1), qtype, qtype.qmin, qtype.qmax,
                         PerAxis(axis % max(x.ndim, 1)))
        if quantizing:
            return (quantize(x, qp),)
        return (dequantize(x, qp),)

    del op_type, name
    return Step(node.name, node.op_type, "quantize" if quantizing else "dequantize",
                list(node.input), list(node.output), run,
                layouts=(CF, CL) if _per_tensor_node(node, graph) else (CF,))


def _per_tensor_node(node: onnx.NodeProto, graph: Graph) -> bool:
    return graph.is_constant(node.input[1]) and graph.constant(node.input[1]).size == 1


def _prune(steps: list[Step], graph: Graph, outer: frozenset[str]) -> list[Step]:
    needed = set(graph.output_names)
    keep = []
    for step in reversed(steps):
        if any(o in needed for o in step.outputs):
            keep.append(step)
            needed.update(i for i in step.inputs if i)
    keep.reverse()
    produced = {o for s in keep for o in s.outputs} | set(graph.initializers) | set(
        graph.input_names) | set(graph._constants) | outer
    for s in keep:
        for i in s.inputs:
            if i and i not in produced:
                raise ModelError(f"node '{s.name}' reads '{i}', which nothing produces")
    return keep
