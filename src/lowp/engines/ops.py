"""Operator-level DNNLOWP engines: quantize, dequantize, conv (+relu), fully connected (+relu).

Each operator quantizes float inputs (static or dynamic qparams), accumulates with the chosen
engine (A1), (S1)-(S6) or (S8), and requantizes with lowp.fixedpoint (R1)-(R4), or returns
the dequantized accumulators (dequantize_output).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import QuantizationError
from ..fixedpoint import Requant, RequantMode, requant_scale
from ..ops.conv import conv as reference_conv
from ..ops.conv import conv_output_shape, im2col
from ..ops.layout import Layout, channel_axis, from_channels_first, to_channels_first
from ..ops.linear import exact_matmul, gemm, wrap_int32
from ..qparams import QParams
from ..qparams import dequantize as _dequantize
from ..qparams import quantize as _quantize
from .acc16 import (
    SaturationReport,
    acc16_outlier_matmul,
    saturation_stats,
    zero_point_terms,
)
from .pack import (
    Acc16Weights,
    Impl,
    PackedWeights,
    pack_conv_weight,
    pack_fc_weight,
    weight_matrices,
)
from .qparams import choose_activation_qparams, zero_centred_qparams
from .types import Engine, EngineOptions, Order, QTensor

Output = QTensor | np.ndarray


def quantize(x: np.ndarray, options: EngineOptions | None = None,
             qparams: QParams | None = None) -> QTensor:
    """Quantize float activations (Q6) to the engine's activation type.

    With `qparams` None they are chosen from this tensor's range (Q2)-(Q5) or, with
    preserve_activation_sparsity, (S9).

    Examples
    --------
    >>> q = quantize(np.array([-1.0, 0.0, 2.0], np.float32))
    >>> q.values.tolist(), int(q.qparams.zero_point)
    ([0, 85, 255], 85)
    """
    options = options or EngineOptions()
    x = np.asarray(x, dtype=np.float32)
    if qparams is None:
        lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
        qparams = choose_activation_qparams(lo, hi, options)
    return QTensor(_quantize(x, qparams), qparams)


def dequantize(x: QTensor) -> np.ndarray:
    """Dequantize (Q7): float32(q - zero_point) * scale."""
    return _dequantize(x.values, x.qparams)


def _activations(x: np.ndarray | QTensor, options: EngineOptions,
                 x_qparams: QParams | None) -> QTensor:
    if isinstance(x, QTensor):
        if x.qparams.qtype is not options.engine.activation_qtype:
            raise QuantizationError(f"{options.engine.value} needs "
                                    f"{options.engine.activation_qtype.value} activations, "
                                    f"got {x.qparams.qtype.value}")
        if not x.qparams.is_per_tensor:
            raise QuantizationError("activations must be quantized per tensor")
        return x
    return quantize(x, options, x_qparams)


# ------------------------------------------------------------------------------------------
# accumulators

def conv_patches(xc: np.ndarray, pad_value: int, kernel: Sequence[int], strides: Sequence[int],
                 pads: Sequence[int], dilations: Sequence[int], group: int
                 ) -> tuple[np.ndarray, tuple[int, ...]]:
    """Channels-first `xc` as per-group patch rows (G, N * L, taps * C/G) in (S7) order."""
    r = xc.ndim - 2
    n, c = xc.shape[:2]
    out_shape = conv_output_shape(xc.shape[2:], kernel, strides, pads, dilations)
    xp = np.pad(xc, [(0, 0), (0, 0)] + [(pads[i], pads[i + r]) for i in range(r)],
                constant_values=pad_value)
    cols = im2col(xp, kernel, strides, dilations, out_shape)          # (N, C, T, L)
    taps, length = cols.shape[2], cols.shape[3]
    cols = cols.reshape(n, group, c // group, taps, length).transpose(1, 0, 4, 3, 2)
    return np.ascontiguousarray(cols.reshape(group, n * length, taps * (c // group))), out_shape


def acc16_accumulate(a: np.ndarray, weights: Acc16Weights, x_zero_point: int,
                     bias: np.ndarray | None, impl: Impl = "auto") -> np.ndarray:
    """(S6) for patch rows (G, R, K) uint8: int32 accumulators (R, G * N)."""
    g, rows, _ = a.shape
    n = weights.mats.shape[2]
    use_native = weights.natives is not None and impl != "reference"
    if impl == "native" and weights.natives is None:
        raise QuantizationError("the native acc16 kernels are not available")
    out = np.empty((rows, g * n), dtype=np.int64)
    for gi in range(g):
        ag = a[gi]
        if use_native:
            part = weights.natives[gi](ag)                            # type: ignore[index]
        else:
            part = acc16_outlier_matmul(ag, weights.splits[gi], weights.block_pairs)
        zw = weights.w_zero_point[gi * n:(gi + 1) * n]
        out[:, gi * n:(gi + 1) * n] = part.astype(np.int64) + zero_point_terms(
            ag, weights.mats[gi], x_zero_point, zw)
    if bias is not None:
        out += np.asarray(bias, dtype=np.int64)
    return wrap_int32(out)


def _conv_accumulators(xq: QTensor, packed: PackedWeights, layout: Layout,
                       strides: Sequence[int], pads: Sequence[int], dilations: Sequence[int],
                       bias: np.ndarray | None, impl: Impl) -> np.ndarray:
    """int32 (int64 for DNNLOWP_16) accumulators in `layout`."""
    engine = packed.options.engine
    w = packed.w.values
    zx = int(xq.qparams.zero_point)
    if engine is Engine.DNNLOWP:
        return reference_conv(xq.values, w, bias, x_zero_point=zx,
                              w_zero_point=packed.w_zero_point(), requant=None,
                              strides=strides, pads=pads, dilations=dilations,
                              group=packed.group, layout=layout)
    xc = to_channels_first(xq.values, layout)
    n, m = xc.shape[0], packed.out_channels
    kernel = w.shape[2:]
    if engine is Engine.DNNLOWP_ACC16:
        assert packed.acc16 is not None
        cols, out_shape = conv_patches(xc, zx, kernel, strides, pads, dilations, packed.group)
        acc = acc16_accumulate(cols, packed.acc16, zx, bias, impl)
    else:                                                                 # (S8) exact int64
        xs = xc.astype(np.int64) - zx
        cols, out_shape = conv_patches(xs, 0, kernel, strides, pads, dilations, packed.group)
        ws = w.astype(np.int64) - packed.w_zero_point().astype(np.int64).reshape(
            (-1,) + (1,) * (w.ndim - 1))
        mats = weight_matrices(ws, packed.group)
        parts = exact_matmul(cols, mats)                                  # (G, R, Mg)
        acc = parts.transpose(1, 0, 2).reshape(-1, m)
        if bias is not None:
            acc = acc + np.asarray(bias, dtype=np.int64)
    acc = acc.reshape((n, *out_shape, m))
    return np.ascontiguousarray(np.moveaxis(acc, -1, 1)) if layout is Layout.CHANNELS_FIRST \
        else acc


def _fc_accumulators(xq: QTensor, packed: PackedWeights, bias: np.ndarray | None,
                     impl: Impl) -> np.ndarray:
    engine = packed.options.engine
    x, w = xq.values, packed.w.values
    zx = int(xq.qparams.zero_point)
    if engine is Engine.DNNLOWP:
        return gemm(x, w, a_zero_point=zx, b_zero_point=packed.w_zero_point(), bias=bias,
                    trans_b=True)
    if engine is Engine.DNNLOWP_ACC16:
        assert packed.acc16 is not None
        return acc16_accumulate(np.ascontiguousarray(x)[None], packed.acc16, zx, bias, impl)
    ws = w.astype(np.int64) - packed.w_zero_point().astype(np.int64)[:, None]
    acc = exact_matmul(x.astype(np.int64) - zx, ws.T)                     # (S8)
    return acc + np.asarray(bias, dtype=np.int64) if bias is not None else acc


# ------------------------------------------------------------------------------------------
# epilogue

def requantize_wide(acc: np.ndarray, requant: Requant, axis: int) -> np.ndarray:
    """(S8) requantization of int64 accumulators: (R2) with float32(acc) rounded from int64.

    Accumulators that fit int32 go through `Requant.apply` unchanged; FIXEDPOINT (R4)
    requires that they do.
    """
    if acc.dtype == np.int32 or (acc.size == 0 or (
            int(acc.min()) >= -(1 << 31) and int(acc.max()) < (1 << 31))):
        return requant.apply(acc.astype(np.int32), channel_axis=axis)
    if requant.mode is not RequantMode.FLOAT32:
        raise QuantizationError("fixed-point requantization needs int32 accumulators; the "
                                "DNNLOWP_16 accumulators exceed int32")
    scale = requant.scale
    if scale.ndim:
        shape = [1] * acc.ndim
        shape[axis] = -1
        scale = scale.reshape(shape)
    y = np.rint(acc.astype(np.float32) * scale).astype(np.float64) + requant.zero_point
    return np.clip(y, requant.qmin, requant.qmax).astype(requant.out_dtype)


def _epilogue(acc: np.ndarray, axis: int, xq: QTensor, packed: PackedWeights,
              y_qparams: QParams | None, relu: bool, dequantize_output: bool) -> Output:
    options = packed.options
    xw = (np.float32(xq.qparams.scale) * packed.w_scale()).astype(np.float32)
    shape = [1] * acc.ndim
    shape[axis] = -1
    if dequantize_output or y_qparams is None:
        real = acc.astype(np.float32) * xw.reshape(shape)                 # (S10)
        if relu:
            real = np.maximum(real, np.float32(0))
        if dequantize_output:
            return real
        lo, hi = (float(real.min()), float(real.max())) if real.size else (0.0, 0.0)
        y_qparams = choose_activation_qparams(lo, hi, options)
    if not y_qparams.is_per_tensor:
        raise QuantizationError("output qparams must be per tensor")
    zy = int(y_qparams.zero_point)
    qmin = max(y_qparams.qmin, zy) if relu else y_qparams.qmin
    m = requant_scale(xq.qparams.scale, packed.w_scale(), y_qparams.scale)
    requant = Requant(m, zy, qmin, y_qparams.qmax, options.requant_mode,
                      y_qparams.qtype.numpy_dtype)
    return QTensor(requantize_wide(acc, requant, axis), y_qparams)


def _geometry(values: Sequence[int] | None, stored: tuple[int, ...] | None, count: int,
              default: int) -> tuple[int, ...]:
    if values is not None:
        return tuple(int(v) for v in values)
    return stored if stored is not None else (default,) * count


def conv(x: np.ndarray | QTensor, w: np.ndarray | QTensor | PackedWeights,
         bias: np.ndarray | None = None, *, strides: Sequence[int] | None = None,
         pads: Sequence[int] | None = None, dilations: Sequence[int] | None = None,
         group: int = 1, order: Order = Order.NCHW, options: EngineOptions | None = None,
         x_qparams: QParams | None = None, y_qparams: QParams | None = None,
         relu: bool = False, dequantize_output: bool = False, impl: Impl = "auto"
         ) -> Output:
    """Quantized convolution (1-3 spatial axes) with a DNNLOWP engine.

    Parameters
    ----------
    x
        Float activations (quantized here with `x_qparams`, or dynamically from their range)
        or a QTensor of the engine's activation type; layout given by `order`.
    w
        Float weights (M, C/group, *kernel), a QTensor, or `PackedWeights` from
        `pack_conv_weight` (then `bias` must be None and its options are used).
    bias
        None, float (M,) or int32 (M,) at s_x * s_w.
    strides, pads, dilations, group
        ONNX Conv attributes (pads: all begins then all ends); group == C is depthwise.
    order
        NCW/NWC, NCHW/NHWC or NCDHW/NDHWC; input and output share it.
    options
        Engine options (ignored when `w` is packed).
    x_qparams, y_qparams
        Static activation/output qparams; None chooses them from this batch (dynamic).
        A float `x` with packed weights uses the packed ``x_qparams`` when they were given.
    relu
        Fuse a ReLU (the output clamp starts at the output zero point).
    dequantize_output
        Return float32 ``acc * s_x * s_w`` (S10) instead of a requantized QTensor.
    impl
        'auto', 'native' or 'reference' for the DNNLOWP_ACC16 kernels.

    Returns
    -------
    QTensor or np.ndarray
        The requantized output with its qparams, or float32 with `dequantize_output`.

    Examples
    --------
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    >>> w = np.ones((1, 1, 2, 2), np.float32)
    >>> np.round(conv(x, w, dequantize_output=True)[0, 0], 4).tolist()
    [[10.0, 14.0, 18.0], [26.0, 30.0, 34.0], [42.0, 46.0, 50.0]]
    """
    if isinstance(w, PackedWeights):
        if bias is not None:
            raise QuantizationError("pass the bias to pack_conv_weight, not to conv")
        if w.kind != "conv":
            raise QuantizationError("these packed weights are for a fully connected layer")
        packed = w
    else:
        opts = options or EngineOptions()
        xq0 = _activations(x, opts, x_qparams)
        packed = pack_conv_weight(w, bias, group=group, options=opts, x_qparams=xq0.qparams,
                                  impl=impl)
        x = xq0
    xq = _activations(x, packed.options, x_qparams or packed.x_qparams)
    r = packed.w.values.ndim - 2
    if order.spatial_rank != r or xq.values.ndim != r + 2:
        raise QuantizationError(f"order {order.value} does not fit input {xq.values.shape} "
                                f"and weights {packed.w.values.shape}")
    st = _geometry(strides, packed.strides, r, 1)
    pd = _geometry(pads, packed.pads, 2 * r, 0)
    dl = _geometry(dilations, packed.dilations, r, 1)
    layout = order.layout
    acc = _conv_accumulators(xq, packed, layout, st, pd, dl, packed.bias_for(xq.qparams), impl)
    return _epilogue(acc, channel_axis(layout, acc.ndim), xq, packed, y_qparams, relu,
                     dequantize_output)


def conv_relu(x: np.ndarray | QTensor, w: np.ndarray | QTensor | PackedWeights,
              bias: np.ndarray | None = None, **kwargs: object) -> Output:
    """`conv` with a fused ReLU (Caffe2 ConvRelu / Int8ConvRelu)."""
    return conv(x, w, bias, relu=True, **kwargs)  # type: ignore[arg-type]


def fc(x: np.ndarray | QTensor, w: np.ndarray | QTensor | PackedWeights,
       bias: np.ndarray | None = None, *, options: EngineOptions | None = None,
       x_qparams: QParams | None = None, y_qparams: QParams | None = None,
       relu: bool = False, dequantize_output: bool = False, impl: Impl = "auto") -> Output:
    """Quantized fully connected layer ``y = x @ w.T + b`` with a DNNLOWP engine.

    `x` is (M, K), `w` (N, K) as Caffe2's FC stores it; row-wise quantization is
    ``WeightQuant.PER_CHANNEL``. Other parameters as for `conv`.

    Examples
    --------
    >>> x = np.array([[1.0, 2.0]], np.float32); w = np.array([[3.0, 4.0]], np.float32)
    >>> np.round(fc(x, w, dequantize_output=True), 1).tolist()
    [[11.0]]
    """
    if isinstance(w, PackedWeights):
        if bias is not None:
            raise QuantizationError("pass the bias to pack_fc_weight, not to fc")
        if w.kind != "fc":
            raise QuantizationError("these packed weights are for a convolution")
        packed = w
    else:
        opts = options or EngineOptions()
        xq0 = _activations(x, opts, x_qparams)
        packed = pack_fc_weight(w, bias, options=opts, x_qparams=xq0.qparams, impl=impl)
        x = xq0
    xq = _activations(x, packed.options, x_qparams or packed.x_qparams)
    if xq.values.ndim != 2 or xq.values.shape[1] != packed.w.values.shape[1]:
        raise QuantizationError(f"fc input must be (M, {packed.w.values.shape[1]}), got "
                                f"{xq.values.shape}")
    acc = _fc_accumulators(xq, packed, packed.bias_for(xq.qparams), impl)
    return _epilogue(acc, acc.ndim - 1, xq, packed, y_qparams, relu, dequantize_output)


def fc_relu(x: np.ndarray | QTensor, w: np.ndarray | QTensor | PackedWeights,
            bias: np.ndarray | None = None, **kwargs: object) -> Output:
    """`fc` with a fused ReLU (Caffe2 Int8FCRelu)."""
    return fc(x, w, bias, relu=True, **kwargs)  # type: ignore[arg-type]


def analyze_saturation(packed: PackedWeights, x: np.ndarray | QTensor, *,
                       order: Order = Order.NCHW, x_qparams: QParams | None = None
                       ) -> SaturationReport:
    """How often and where DNNLOWP_ACC16 saturates on `x`, per output channel.

    Parameters
    ----------
    packed
        DNNLOWP_ACC16 weights from `pack_conv_weight` (geometry taken from it) or
        `pack_fc_weight`.
    x
        Float activations (quantized as `conv`/`fc` would) or a uint8 QTensor.
    order
        Layout of a convolution input; the report's mask has the output's layout.

    Returns
    -------
    SaturationReport
    """
    if packed.acc16 is None:
        raise QuantizationError("saturation analysis needs DNNLOWP_ACC16 packed weights")
    xq = _activations(x, packed.options, x_qparams)
    zx = int(xq.qparams.zero_point)
    weights = packed.acc16
    if packed.kind == "conv":
        r = packed.w.values.ndim - 2
        layout = order.layout
        xc = to_channels_first(xq.values, layout)
        cols, out_shape = conv_patches(
            xc, zx, packed.w.values.shape[2:], _geometry(None, packed.strides, r, 1),
            _geometry(None, packed.pads, 2 * r, 0), _geometry(None, packed.dilations, r, 1),
            packed.group)
        lead: tuple[int, ...] = (xc.shape[0], *out_shape)
    else:
        cols = np.ascontiguousarray(xq.values)[None]
        lead = (xq.values.shape[0],)
    masks, events, errors = [], [], []
    for gi in range(cols.shape[0]):
        mk, ev, er = saturation_stats(cols[gi], weights.splits[gi], weights.block_pairs)
        masks.append(mk)
        events.append(ev)
        errors.append(er)
    mask = np.concatenate(masks, axis=1)
    ev_all = np.concatenate(events, axis=1)
    err_all = np.concatenate(errors, axis=1)
    m = mask.shape[1]
    out_mask = mask.reshape((*lead, m))
    if packed.kind == "conv" and order.layout is Layout.CHANNELS_FIRST:
        out_mask = from_channels_first(np.moveaxis(out_mask, -1, 1), Layout.CHANNELS_FIRST)
    return SaturationReport(
        outputs_per_channel=int(mask.shape[0]),
        saturated_per_channel=mask.sum(axis=0).astype(np.int64),
        events_per_channel=ev_all.sum(axis=0).astype(np.int64),
        max_abs_error_per_channel=(err_all.max(axis=0) if err_all.size
                                   else np.zeros(m, np.int64)).astype(np.int64),
        mask=np.ascontiguousarray(out_mask))


__all__ = ["analyze_saturation", "conv", "conv_relu", "dequantize", "fc", "fc_relu",
           "quantize", "requantize_wide", "zero_centred_qparams"]
