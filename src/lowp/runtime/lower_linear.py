"""Lowerings of convolution and matrix products (static and dynamic quantization)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto

from ..errors import NodeError
from ..fixedpoint import Requant, RequantMode, requant_scale
from ..ir.graph import ONNX_DOMAINS, attributes
from ..ops import matmul_nbits
from ..ops.linear import exact_matmul, wrap_int32
from ..ops.linear import matmul as qmatmul
from ..qparams import PerAxis, QParams, QType, dequantize
from . import float_ops, native_float, native_integer
from .fastops import Arena
from .lowering import QOPERATOR_KEY, LowerCtx, Quantized, lowering
from .plan import CF, Step
from .prepacked import freeze

# Every partial sum of an integer product below these bounds is exact in float32, and
# fits the int32 accumulator without wrapping (A1).
_FLOAT32_EXACT = 2 ** 24
_INT32_RANGE = 2 ** 31


def _bias_at(ctx: LowerCtx, i: int, x: QParams, w: QParams) -> np.ndarray | None | bool:
    """Bias input i as int32 at scale s_x * s_w (A1); False when it cannot be used."""
    if i >= len(ctx.node.input) or not ctx.node.input[i]:
        return None
    want = (np.float32(x.scale) * w.scale).astype(np.float32)
    c = ctx.const_input(i)
    if c is None:
        name = ctx.node.input[i]
        if not ctx.graph.is_constant(name) or ctx.graph.constant(name).dtype.kind != "f":
            return False
        # a float bias (no DequantizeLinear): quantized at s_x * s_w, as ONNX Runtime does
        # when it fuses the group into its integer kernel
        real = ctx.graph.constant(name).astype(np.float32)
        return _at_scale(real, want) if real.ndim == 1 else False
    bq, bqp = c
    if bq.dtype != np.int32 or bq.ndim != 1:
        return False
    if not w.is_per_tensor and bq.shape[0] not in (1, np.size(w.scale)):
        raise NodeError(f"bias of shape {list(bq.shape)} does not fit the weight's "
                        f"{np.size(w.scale)} channel scales")
    shape = np.broadcast_shapes(bqp.scale.shape, want.shape)
    if np.array_equal(np.broadcast_to(bqp.scale, shape), np.broadcast_to(want, shape)) and np.all(
            bqp.zero_point == 0):
        return bq.astype(np.int32)
    if _ort_checks_bias_scale(ctx):
        # ONNX Runtime's QLinearConv takes the integers as they are, or its selector leaves
        # the group unfused (DequantizeLinear -> float Conv -> QuantizeLinear), as lowp then
        return bq.astype(np.int32) if _bias_scale_close(bqp, want) else False
    # a bias at another scale: bring it to s_x * s_w (a rounding step of its own)
    return _at_scale(dequantize(bq, bqp), want)


# ONNX Runtime's QDQ Conv selector fuses a group whose bias scale is within this much of
# s_x * s_w (each channel's), docs/operators.md (O88)
_BIAS_SCALE_ATOL = 1e-6
_BIAS_SCALE_RTOL = 1e-2


def _ort_checks_bias_scale(ctx: LowerCtx) -> bool:
    """Whether ONNX Runtime's selector checks this group's bias scale: a Conv's (QGemm takes
    any int32 bias as it is), in ONNX Runtime's arithmetic."""
    return (ctx.node.op_type == "Conv" and ctx.requant_mode is RequantMode.FLOAT32
            and ctx.arithmetic is None and not ctx.from_qoperator)


def _bias_scale_close(bqp: QParams, want: np.ndarray) -> bool:
    """ONNX Runtime's test for a Conv's int32 bias at another scale than s_x * s_w: every
    channel's scale within 1e-6 + 1% of s_x * s_w, and the zero point 0; it then fuses the
    group and QLinearConv reads the integers as if they were at s_x * s_w (docs/operators.md
    (O88))."""
    if np.any(bqp.zero_point != 0):
        return False
    b = np.asarray(bqp.scale, np.float64)
    e = np.asarray(want, np.float64)
    return bool(np.all(np.abs(b - e) <= _BIAS_SCALE_ATOL + _BIAS_SCALE_RTOL * np.abs(e)))


def _at_scale(real: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """A real bias as int32 at `scale`, rounded half to even and saturated."""
    return np.clip(np.rint(real / scale), -2**31, 2**31 - 1).astype(np.int32)


def _ort_runs_unfused(ctx: LowerCtx, x: QType, w: QType, y: QType) -> bool:
    """Whether ONNX Runtime's CPU selectors on x86 leave this QDQ Conv / MatMul / Gemm group
    unfused (DequantizeLinear -> float op -> QuantizeLinear), which lowp then runs the same
    way (docs/operators.md (O5a)): 16-bit activations or weights, an output type other than
    the activation's, and int8 activations (QLinearConv / QLinearMatMul take them only on
    Arm; QGemm takes them with int8 weights). A QOperator file's QLinearConv / QLinearMatMul
    are ONNX Runtime's integer kernels; other requantization modes and engine arithmetic
    (lowp.fidelity) keep lowp's."""
    if (ctx.requant_mode is not RequantMode.FLOAT32 or ctx.from_qoperator
            or ctx.arithmetic is not None):
        return False
    if max(x.bits, w.bits) > 8 or y is not x:
        return True
    if ctx.node.op_type == "Gemm":
        return x is QType.INT8 and w is not QType.INT8
    return x is QType.INT8


def _weight_zero_point(w: QParams, channels: int) -> int | np.ndarray:
    return int(w.zero_point) if w.is_per_tensor else w.zero_point.astype(np.int32)


def _refuse_per_channel_activation(ctx: LowerCtx) -> None:
    """Refuse a QDQ Conv group that ONNX Runtime fuses into QLinearConv although its input
    or output activation has one scale or zero point per channel: its Conv selector does
    not look at the activations' parameters. A group with an int32 bias and a per-channel
    input stays unfused there (its bias test fails), as do the groups of `_ort_runs_unfused`
    (docs/operators.md (O239))."""
    if not ctx._ort_arithmetic:
        return
    x, wc, y = ctx.dq_input_qparams(0), ctx.const_input(1), ctx.sole_q_output_qparams()
    if x is None or wc is None or y is None or _ort_runs_unfused(ctx, x.qtype, wc[1].qtype,
                                                                 y.qtype):
        return
    if len(ctx.node.input) > 2 and ctx.node.input[2]:
        bias = ctx.const_input(2)
        if (bias is None or bias[0].dtype != np.int32 or np.size(x.scale) > 1
                or not _bias_scale_close(bias[1], (np.float32(x.scale) * wc[1].scale)
                                         .astype(np.float32))):
            return
    ctx.refuse_per_channel_activations("QLinearConv", x, y)


@lowering("Conv")
def _conv(ctx: LowerCtx) -> Step | None:
    _refuse_per_channel_activation(ctx)
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
    if _ort_runs_unfused(ctx, x.qparams.qtype, wqp.qtype, y.qparams.qtype):
        return None
    if w.ndim < 3 or 0 in w.shape:
        raise NodeError(f"weight of shape {list(w.shape)} is not a convolution kernel")
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

    subgraph = ctx.subgraph

    def kernel_for(spatial: tuple[int, ...]) -> Callable[..., np.ndarray]:
        if spatial not in kernels:
            pads = _conv_pads(a, auto_pad, spatial, w.shape[2:], strides, dilations)
            if ctx.arithmetic is not None:           # engine arithmetic (lowp.fidelity)
                kernels[spatial] = ctx.arithmetic.conv(
                    w, bias if isinstance(bias, np.ndarray) else None, x.qparams, wqp,
                    y.qparams, qmin, qmax, strides=strides, pads=pads, dilations=dilations,
                    group=group)
                return kernels[spatial]
            saved = backend.reuse_outputs
            backend.reuse_outputs = not subgraph        # arena buffers at top level only
            try:
                kernels[spatial] = backend.conv(
                    w, bias if isinstance(bias, np.ndarray) else None,
                    x_zero_point=int(x.qparams.zero_point),
                    x_dtype=x.qparams.qtype.numpy_dtype,
                    w_zero_point=_weight_zero_point(wqp, w.shape[0]), requant=requant,
                    strides=strides, pads=pads, dilations=dilations, group=group)
            finally:
                backend.reuse_outputs = saved
        return kernels[spatial]

    static = auto_pad in ("NOTSET", "VALID")
    if static:
        kernel_for(())

    def run(xv: np.ndarray, *, layout: object) -> tuple[np.ndarray, ...]:
        spatial = () if static else (tuple(xv.shape[2:]) if layout is CF
                                     else tuple(xv.shape[1:-1]))
        return (kernel_for(spatial)(xv, layout),)

    return ctx.step([x.name], [y.name], run, layouts=backend.conv_layouts, replayable=True)


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
        return _dynamic_matmul(ctx) or _matmul_nbits(ctx)
    wc = ctx.const_input(1)
    trans_b = bool(int(a.get("transB", 0))) if ctx.node.op_type == "Gemm" else False  # type: ignore[call-overload]
    if wc is None:   # a 4-bit weight (no integer qparams) may still be MatMulNBits'
        other = ctx.act_input(1) if ctx.node.op_type == "MatMul" else None
        if other is None:
            return _matmul_nbits(ctx)
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
        return _matmul_integer_to_float(ctx, x, w, wqp) or _matmul_nbits(ctx)
    y, qmin, qmax = out
    if _ort_runs_unfused(ctx, x.qparams.qtype, wqp.qtype, y.qparams.qtype):
        ctx.absorbed = []
        return _matmul_nbits(ctx)
    bias = _bias_at(ctx, 2, x.qparams, wqp) if ctx.node.op_type == "Gemm" else None
    if bias is False:
        return None
    m = requant_scale(x.qparams.scale, wqp.scale, y.qparams.scale)
    saved = ctx.backend.reuse_outputs
    ctx.backend.reuse_outputs = not ctx.subgraph        # arena buffers at top level only
    try:
        kernel = ctx.backend.matmul(
            w, bias if isinstance(bias, np.ndarray) else None,
            a_zero_point=int(x.qparams.zero_point), a_dtype=x.qparams.qtype.numpy_dtype,
            b_zero_point=_weight_zero_point(wqp, w.shape[1]),
            requant=ctx.requant(m, y.qparams, qmin, qmax))
    finally:
        ctx.backend.reuse_outputs = saved
    if ctx.arithmetic is not None:                   # engine arithmetic (lowp.fidelity)
        kernel = ctx.arithmetic.matmul(w, bias if isinstance(bias, np.ndarray) else None,
                                       x.qparams, wqp, y.qparams, qmin, qmax)

    def run(xv: np.ndarray, *, layout: object) -> tuple[np.ndarray, ...]:
        return (kernel(xv),)

    return ctx.step([x.name], [y.name], run, replayable=True)


def _ort_selects_integer_to_float(ctx: LowerCtx) -> bool:
    """Whether ONNX Runtime's QDQ selector takes this MatMul with no QuantizeLinear group
    (MatMulIntegerToFloat): none of its readers is a QuantizeLinear, and it is not read by
    one Relu / Clip alone whose output goes to one reader and is no graph output (the
    selector then wants that reader to be a QuantizeLinear that makes the activation
    redundant, else it selects nothing)."""
    out = ctx.node.output[0]
    readers = ctx.graph.consumers.get(out, [])
    if any(r.op_type == "QuantizeLinear" for r in readers):
        return False
    edges = sum(list(r.input).count(out) for r in readers)
    if edges == 1 and readers[0].op_type in ("Relu", "Clip"):
        act = readers[0].output[0]
        act_edges = sum(list(r.input).count(act) for r in ctx.graph.consumers.get(act, []))
        if act_edges == 1 and act not in ctx.graph.output_names:
            return False
    return True


def _integer_weight(w: np.ndarray, wqp: QParams) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                          np.ndarray, np.ndarray]:
    """A constant 8-bit (k, n) weight's operands: w - z_w in int64 (z_w per tensor or per
    column), its float32 scales, and for the native integer GEMM (packed once, docs/
    native.md; the same int32 product, scaling and bias add bit for bit) the frozen
    weight, its zero points and its scales, one value or one a column."""
    wi = w.astype(np.int64) - (wqp.zero_point.astype(np.int64) if wqp.is_per_tensor
                               else wqp.zero_point.astype(np.int64).reshape(1, -1))
    w_scale = wqp.scale.astype(np.float32)
    w8 = freeze(np.ascontiguousarray(w).copy())
    wz = np.asarray(wqp.zero_point).astype(w.dtype).reshape(-1)
    ws = w_scale.reshape(-1) if w_scale.size > 1 else w_scale.reshape(())
    return wi, w_scale, w8, wz, ws


def _matmul_integer_to_float(ctx: LowerCtx, x: Quantized, w: np.ndarray,
                             wqp: QParams) -> Step | None:
    """DequantizeLinear(8-bit activation) -> MatMul(DequantizeLinear(constant 8-bit weights))
    with no QuantizeLinear after: ONNX Runtime's MatMul selector makes it com.microsoft
    MatMulIntegerToFloat (uint8 activations: int8 ones only on Arm), y = float32(acc) *
    float32(s_x * s_w) (per column where s_w is), which lowp computes the same way
    (docs/operators.md (O113)); any other such MatMul stays float."""
    if (ctx.node.op_type != "MatMul" or ctx.requant_mode is not RequantMode.FLOAT32
            or ctx.from_qoperator or ctx.arithmetic is not None
            or x.qparams.qtype is not QType.UINT8 or wqp.qtype.bits != 8
            or not _ort_selects_integer_to_float(ctx)):
        return None
    wi, w_scale, w8, wz, ws = _integer_weight(w, wqp)
    z = np.asarray(x.qparams.zero_point).astype(x.qparams.qtype.numpy_dtype).reshape(())
    s = np.asarray(x.qparams.scale, np.float32).reshape(())
    scale = (s * w_scale).astype(np.float32)
    # the result in this step's own buffer, so that its one native call replays inside the
    # signature's Program (lowp.runtime.replay); a run that falls back to numpy records no
    # call and stays a plain step
    arena = Arena(reuse=not ctx.subgraph)

    def alloc(shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
        return arena.get(shape, np.dtype(dtype))

    def run(q: np.ndarray, *, layout: object) -> tuple[np.ndarray, ...]:
        if q.dtype == z.dtype:
            with native_float.outputs(alloc):
                native = native_integer.matmul_integer_scaled(q, w8, z, wz, s, ws, None)
            if native is not None:
                return (native,)
        acc = wrap_int32(exact_matmul(q.astype(np.int64) - np.int64(z), wi))
        return (acc.astype(np.float32) * scale,)

    return ctx.step([x.name], [ctx.node.output[0]], run, act_inputs=(0,), replayable=True)


def _activations_integer_to_float(ctx: LowerCtx, a: Quantized, b: Quantized) -> Step | None:
    """DequantizeLinear(uint8 A) -> MatMul(DequantizeLinear(8-bit B)), B not constant, no
    QuantizeLinear after (an attention product as NNCF quantizes it): MatMulIntegerToFloat
    too, y = float32(acc) * float32(s_a * s_b) (docs/operators.md (O113))."""
    if (ctx.requant_mode is not RequantMode.FLOAT32 or ctx.from_qoperator
            or ctx.arithmetic is not None or a.qparams.qtype is not QType.UINT8
            or b.qparams.qtype.bits != 8 or not _ort_selects_integer_to_float(ctx)):
        return None
    za, zb = int(a.qparams.zero_point), int(b.qparams.zero_point)
    scale = np.float32(np.float32(a.qparams.scale) * np.float32(b.qparams.scale))
    span = max(255 - za, za) * max(abs(b.qparams.qtype.qmin - zb), abs(b.qparams.qtype.qmax - zb))

    def run(av: np.ndarray, bv: np.ndarray, *, layout: object) -> tuple[np.ndarray, ...]:
        # every partial sum is an integer of at most k * span: exact in BLAS's float32
        # below 2^24 and float64 below 2^53, in any order
        k = av.shape[-1]
        if k * span < _FLOAT32_EXACT:     # lowp's native float32 product (MLAS's order)
            af = av.astype(np.float32) - np.float32(za)
            bf = bv.astype(np.float32) - np.float32(zb)
            acc = native_float.matmul(af, bf, b_packed=False)
            return ((np.matmul(af, bf) if acc is None else acc) * scale,)
        if k * span < _INT32_RANGE:
            acc64 = np.matmul(av.astype(np.float64) - za, bv.astype(np.float64) - zb)
            return (acc64.astype(np.float32) * scale,)
        acc = wrap_int32(np.matmul(av.astype(np.int64) - za, bv.astype(np.int64) - zb))
        return (acc.astype(np.float32) * scale,)

    return ctx.step([a.name, b.name], [ctx.node.output[0]], run, act_inputs=(0, 1))


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
    wi, w_scale, w8, wz, ws = _integer_weight(w, wqp)
    # (the kernel adds one bias value per column: a Gemm's C of another shape runs in numpy)
    row_bias = bias is None or bias.size == w.shape[1] == bias.shape[-1]

    def run(q: np.ndarray, s: np.ndarray, z: np.ndarray, *,
            layout: object) -> tuple[np.ndarray, ...]:
        if w.dtype.itemsize == 1 and q.dtype == z.dtype and row_bias:
            native = native_integer.matmul_integer_scaled(
                q, w8, z, wz, np.asarray(s, np.float32), ws, bias)
            if native is not None:
                return (native,)
        acc = wrap_int32(exact_matmul(q.astype(np.int64) - np.int64(z), wi))
        scale = (np.float32(s) * w_scale).astype(np.float32)
        y = acc.astype(np.float32) * scale
        return (y if bias is None else y + bias,)

    return ctx.step(list(dq.input[:3]), [ctx.node.output[0]], run, act_inputs=(0,))


def _file_matmul_nbits(ctx: LowerCtx) -> bool:
    """The MatMul (or its bias Add) was a com.microsoft MatMulNBits node of the file
    (lowp.formats.qoperator): ONNX Runtime runs that kernel as it stands, whatever it would
    fuse around the QDQ form; in ONNX Runtime's arithmetic only (docs/operators.md (O176))."""
    return (ctx.requant_mode is RequantMode.FLOAT32 and ctx.arithmetic is None
            and any(p.key == QOPERATOR_KEY and p.value == "MatMulNBits"
                    for p in ctx.node.metadata_props))


def _nbits_bias(ctx: LowerCtx, n: int) -> tuple[np.ndarray | None, onnx.NodeProto | None] | None:
    """The bias ONNX Runtime fuses into MatMulNBits: a Gemm's C, or the one Add reading a
    MatMul's output (MatMulAddFusion), when it is a constant of shape (N,) (then the Add is
    absorbed); (None, None) without one; None where ONNX Runtime keeps a float Gemm (a
    constant Add of another shape, (O118))."""
    node = ctx.node
    if _file_matmul_nbits(ctx):
        # the file's MatMulNBits: its own bias (the marked Add), or the Add ONNX Runtime
        # fuses into it as into its QDQ form's; any other Add stays an Add (O176)
        readers = ctx.graph.consumers.get(node.output[0], [])
        add = next((r for r in readers if r.op_type == "Add"
                    and any(p.key == QOPERATOR_KEY for p in r.metadata_props)), None)
        if add is None:
            return _ort_fused_bias(ctx, n) or (None, None)
        other = add.input[1] if add.input[0] == node.output[0] else add.input[0]
        return ctx.graph.constant(other).astype(np.float32), add
    return _ort_fused_bias(ctx, n)


def _gemm_keeps_float(ctx: LowerCtx) -> bool:
    """A Gemm (a 2-D MatMul + Add that MatMulAddFusion made one, or the file's) whose only
    reader is a Relu or Clip read by exactly one node, no graph output: ONNX Runtime 1.32
    leaves it a float Gemm (FusedGemm with the Relu) over the DequantizeLinear, not
    MatMulNBits (measured: docs/operators.md (O178); a Relu read twice or a graph output,
    and every other activation, give MatMulNBits)."""
    g, out = ctx.graph, ctx.node.output[0]
    readers = g.consumers.get(out, [])
    if len(readers) != 1 or out in g.output_names or readers[0].op_type not in ("Relu", "Clip"):
        return False
    act = readers[0].output[0]
    return act not in g.output_names and len(g.consumers.get(act, [])) == 1


def _ort_fused_bias(ctx: LowerCtx, n: int
                    ) -> tuple[np.ndarray | None, onnx.NodeProto | None] | None:
    node = ctx.node
    if node.op_type == "Gemm":
        if len(node.input) < 3 or not node.input[2]:
            return None, None
        c = _constant_or_dequantized(ctx.graph, node.input[2])
        if c is None:
            return None
        if c.shape != (n,) or _gemm_keeps_float(ctx):
            return None
        return c.astype(np.float32), None
    out = node.output[0]
    readers = ctx.graph.consumers.get(out, [])
    if (len(readers) != 1 or readers[0].op_type != "Add" or out in ctx.graph.output_names
            or list(readers[0].input).count(out) != 1):
        return None, None
    add = readers[0]
    other = add.input[1] if add.input[0] == out else add.input[0]
    if not ctx.graph.is_constant(other):
        return None, None
    c = ctx.graph.constant(other)
    if c.dtype not in (np.float32, np.float16):    # float16: ONNX Runtime fuses, then casts
        return None, None
    return (c.astype(np.float32), add) if c.shape == (n,) else None


def _constant_or_dequantized(g: Any, name: str) -> np.ndarray | None:
    """A constant's value, or a DequantizeLinear of constants' (a quantizer's int32 Gemm
    bias: ONNX Runtime keeps the DequantizeLinear and hands its output to MatMulNBits as
    the bias, (O310)); None for anything else."""
    if g.is_constant(name):
        return np.asarray(g.constant(name))
    dq = g.producer.get(name)
    if (dq is None or dq.op_type != "DequantizeLinear" or dq.domain not in ONNX_DOMAINS
            or not all(g.is_constant(i) for i in dq.input if i)):
        return None
    inputs: list[Any] = [g.constant(i) if i else None for i in dq.input]
    attrs: dict[str, Any] = attributes(dq)
    return np.asarray(float_ops.DequantizeLinear(*inputs, **attrs))


def _is_16_bit_q(g: Any, q: onnx.NodeProto) -> bool:
    """A QuantizeLinear / DequantizeLinear of uint16 / int16 (by its zero point's type)."""
    if len(q.input) < 3 or not q.input[2] or not g.is_constant(q.input[2]):
        return False
    return g.constant(q.input[2]).dtype in (np.uint16, np.int16)


# the weight types DQMatMulToMatMulNBits takes (numpy / ml_dtypes names): bits, signed
_NBITS_WEIGHTS = {"int8": (8, True), "uint8": (8, False), "int4": (4, True), "uint4": (4, False)}


def _nbits_weight(g: Any, dq: onnx.NodeProto) -> matmul_nbits.PackedNBits | None:
    """DequantizeLinear(constant 2-D 8- or 4-bit weight) as DQMatMulToMatMulNBits takes it
    (per tensor, per column, or blocks of 16, 32, 64 or 128 along K: docs/operators.md
    (O137), (O159)) for lowp.ops.matmul_nbits; None for any other form."""
    if not all(g.is_constant(name) for name in dq.input if name):
        return None
    w = g.constant(dq.input[0])
    form = _NBITS_WEIGHTS.get(w.dtype.name)
    if w.ndim != 2 or form is None:
        return None
    bits, signed = form
    k, n = w.shape
    scale = g.constant(dq.input[1]).astype(np.float32)
    zp = g.constant(dq.input[2]) if len(dq.input) > 2 and dq.input[2] else None
    attrs = attributes(dq)
    axis, block = int(attrs.get("axis", 1)), int(attrs.get("block_size", 0))  # type: ignore[call-overload]
    if block:
        shape: tuple[int, ...] = (-(-k // block), n)
        if block not in matmul_nbits.BLOCKS or axis not in (0, -2):
            return None
    elif scale.size == 1 and (scale.ndim == 0 or "axis" not in attrs):
        shape = scale.shape
    elif axis in (1, -1):
        shape = (n,)
    else:
        return None
    if scale.shape != shape or zp is not None and zp.shape != shape:
        return None
    cast = np.int8 if signed else np.uint8
    return matmul_nbits.PackedNBits(*matmul_nbits.pack_weight(
        w.astype(cast), scale, None if zp is None else zp.astype(cast), bits=bits,
        block=block or matmul_nbits.BLOCK), bits=bits)


def _matmul_nbits(ctx: LowerCtx) -> Step | None:
    """A float or 16-bit activation times DequantizeLinear(constant 2-D 8- or 4-bit weight,
    per tensor, per column or in blocks of 32 along K): ONNX Runtime 1.32's
    DQMatMulToMatMulNBits makes it MatMulNBits (bits 8 or 4, block 32, its default accuracy
    level 4: int8 activations a block, docs/operators.md (O118), (O137)), with a constant
    (N,) bias fused; lowp computes it as that kernel does (lowp.ops.matmul_nbits). A 16-bit
    activation's DequantizeLinear stays a float step; an 8-bit QuantizeLinear after a float
    activation keeps the float MatMul (as ONNX Runtime does)."""
    node, g = ctx.node, ctx.graph
    file_nbits = _file_matmul_nbits(ctx)
    if (not (ctx._ort_arithmetic or file_nbits) or g.is_constant(node.input[0])
            or len(node.input) < 2):
        return None
    act_dq = None if file_nbits else ctx._dq.get(node.input[0])
    wide = act_dq is not None
    if act_dq is not None:   # only a 16-bit activation's DequantizeLinear (8-bit: (O113))
        sixteen = (int(TensorProto.UINT16), int(TensorProto.INT16))
        if not _is_16_bit_q(g, act_dq) and g.value_elem_type(act_dq.input[0]) not in sixteen:
            return None
    if node.op_type == "Gemm":
        a = ctx.attrs
        if (int(a.get("transA", 0)) or int(a.get("transB", 0))  # type: ignore[call-overload]
                or float(a.get("alpha", 1.0)) != 1.0 or float(a.get("beta", 1.0)) != 1.0):  # type: ignore[arg-type]
            return None
    dq = ctx._dq.get(node.input[1])
    if dq is None:
        return None
    wout = dq.output[0]
    edges = sum(list(r.input).count(wout) for r in g.consumers.get(wout, []))
    if edges != 1 or wout in g.output_names:
        return None
    for r in g.consumers.get(node.output[0], []):
        if (r.op_type == "QuantizeLinear" and not (wide and _is_16_bit_q(g, r))
                and not file_nbits):
            return None
    packed = _nbits_weight(g, dq)
    if packed is None:
        return None
    fused = _nbits_bias(ctx, packed.n)
    if fused is None:
        return None
    bias, add = fused
    if add is not None:
        ctx.absorbed = [add]
    out = node.output[0] if add is None else add.output[0]

    if bias is not None:
        bias = np.ascontiguousarray(bias, np.float32)
    arena = Arena(reuse=not ctx.subgraph)

    def run(av: np.ndarray, *, layout: object) -> tuple[np.ndarray, ...]:
        if av.dtype == np.float16:   # ONNX Runtime casts around the float32 kernel ((O137))
            return (run(av.astype(np.float32), layout=layout)[0].astype(np.float16),)
        if av.dtype == np.float32 and av.flags.c_contiguous and av.ndim >= 1:
            y = native_float.matmul_nbits(
                av, packed, bias, arena.get((*av.shape[:-1], packed.n), np.dtype(np.float32)))
            if y is not None:
                return (y,)
        return (packed.run(av, bias),)

    return ctx.step([node.input[0]], [out], run, replayable=True)


def _matmul_two_activations(ctx: LowerCtx, a: Quantized, b: Quantized) -> Step | None:
    out = ctx.output()
    if out is None:
        return _activations_integer_to_float(ctx, a, b)
    y, qmin, qmax = out
    if _ort_runs_unfused(ctx, a.qparams.qtype, b.qparams.qtype, y.qparams.qtype):
        return None
    m = requant_scale(a.qparams.scale, b.qparams.scale, y.qparams.scale)
    requant = ctx.requant(m, y.qparams, qmin, qmax)

    za, zb = int(a.qparams.zero_point), int(b.qparams.zero_point)
    span = max(abs(a.qparams.qtype.qmin - za), abs(a.qparams.qtype.qmax - za)) * max(
        abs(b.qparams.qtype.qmin - zb), abs(b.qparams.qtype.qmax - zb))
    float32_requant = requant.mode is RequantMode.FLOAT32 and requant.scale.ndim == 0
    native = _activation_matmul(za, zb, requant) if float32_requant else None
    arena = Arena(reuse=not ctx.subgraph)

    def run(av: np.ndarray, bv: np.ndarray, *, layout: object) -> tuple[np.ndarray, ...]:
        k = av.shape[-1]
        if av.dtype.itemsize > 1 or bv.dtype.itemsize > 1 or k * span >= _INT32_RANGE:
            return (qmatmul(av, bv, a_zero_point=za, b_zero_point=zb, requant=requant),)
        if native is not None and k * span < _FLOAT32_EXACT and native.applies(av, bv):
            shape = (*np.broadcast_shapes(av.shape[:-2], bv.shape[:-2]), av.shape[-2],
                     bv.shape[-1])
            return (native(av, bv, out=arena.get(shape, native.out_dtype)),)
        if float32_requant and k * span < _FLOAT32_EXACT:
            # every partial sum is an integer below 2^24: the float32 product is exact and
            # already float32(acc), the first operand of (R2)
            acc = np.matmul(np.subtract(av, za, dtype=np.float32),
                            np.subtract(bv, zb, dtype=np.float32))
            return (_requantize_float32_acc(acc, requant),)
        # every partial sum is an integer below 2^31: the float64 product is exact (A1)
        acc64 = np.matmul(np.subtract(av, za, dtype=np.float64),
                          np.subtract(bv, zb, dtype=np.float64))
        return (requant.apply(acc64.astype(np.int32), channel_axis=-1),)

    return ctx.step([a.name, b.name], [y.name], run, act_inputs=(0, 1), replayable=True)


def _activation_matmul(za: int, zb: int, requant: Requant) -> Any:
    """The native product of two 8-bit activations (native_backend.ActivationMatMul) with
    this per-tensor float32 requantization, or None without the extension."""
    try:
        from .native_backend import ActivationMatMul
    except ImportError:
        return None
    return ActivationMatMul(a_zero_point=za, b_zero_point=zb, scale=float(requant.scale),
                            y_zero_point=int(requant.zero_point), qmin=requant.qmin,
                            qmax=requant.qmax, out_dtype=requant.out_dtype)


def _requantize_float32_acc(acc: np.ndarray, requant: Requant) -> np.ndarray:
    """(R2) with a per-tensor multiplier on exact float32 accumulators, in place.

    Equals ``requant.apply(acc.astype(int32))``: rint(f32(acc) * M) is an integer-valued
    float32; adding the zero point is exact below 2^24 and, above it, the value is clamped
    to the same bound either way.
    """
    np.multiply(acc, requant.scale, out=acc)
    np.rint(acc, out=acc)
    np.add(acc, np.float32(requant.zero_point), out=acc)
    np.clip(acc, requant.qmin, requant.qmax, out=acc)
    return acc.astype(requant.out_dtype)


@lowering("MatMulInteger")
def _matmul_integer(ctx: LowerCtx) -> Step | None:
    """MatMulInteger with a constant 8-bit B (per-token dynamic mode, (D4)): the exact int32
    product by the native integer GEMM, else through a float BLAS product of the
    zero-point-shifted operands."""
    node, g = ctx.node, ctx.graph
    if len(node.input) < 2 or not g.is_constant(node.input[1]):
        return None
    b = g.constant(node.input[1])
    if b.ndim != 2 or b.dtype.itemsize != 1:
        return None
    zb: np.ndarray | int = 0
    if len(node.input) > 3 and node.input[3]:
        if not g.is_constant(node.input[3]):
            return None
        zb = g.constant(node.input[3]).astype(np.int64).reshape(-1)
    za_name = node.input[2] if len(node.input) > 2 and node.input[2] else None
    if za_name is not None and not (g.is_constant(za_name) and g.constant(za_name).size == 1):
        return None
    za = int(g.constant(za_name).reshape(())) if za_name is not None else 0
    shifted = b.astype(np.int64) - zb
    bound = int(np.abs(shifted).max(initial=0)) * 255        # |a - za| <= 255 for 8-bit a
    b32, b64 = shifted.astype(np.float32), shifted.astype(np.float64)
    # the native integer GEMM (packed once, docs/native.md): the same int32 product
    b8 = freeze(np.ascontiguousarray(b).copy())
    b_zp = (g.constant(node.input[3]).reshape(-1) if len(node.input) > 3 and node.input[3]
            else None)

    def run(av: np.ndarray, *_: np.ndarray | None, layout: object) -> tuple[np.ndarray, ...]:
        if av.dtype.itemsize == 1:
            native = native_integer.matmul_integer(av, b8, np.array(za, av.dtype), b_zp)
            if native is not None:
                return (native,)
        k = b.shape[0]
        if av.dtype.itemsize != 1 or k * bound >= _INT32_RANGE:
            return (wrap_int32(exact_matmul(av.astype(np.int64) - za, shifted)),)
        if k * bound < _FLOAT32_EXACT:   # every partial sum exact in float32 (A1)
            return (np.matmul(np.subtract(av, za, dtype=np.float32), b32).astype(np.int32),)
        return (np.matmul(np.subtract(av, za, dtype=np.float64), b64).astype(np.int32),)

    return ctx.step(list(node.input), [node.output[0]], run)
