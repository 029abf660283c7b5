"""Engine arithmetic models: what each deployment engine outputs for an int8 conv / matmul.

Layer: numerics only. Accumulation is exact integer work (or fbgemm's 16-bit pair
saturation); the epilogue is the engine's own order of float32 operations, described by a
Target's `Arithmetic` (docs/engines.md, (E1)-(E6)). The normative lowp arithmetic is the
EXACT row: int32 bias, folded multiplier, `lowp.fixedpoint.requantize`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import QuantizationError
from ..fixedpoint import RequantMode, requantize
from ..ops.conv import conv as int_conv
from ..ops.conv import conv_output_shape, im2col
from ..ops.layout import Layout, from_channels_first, to_channels_first
from ..ops.linear import matmul as int_matmul
from ..ops.linear import wrap_int32
from ..targets import (
    Accumulation,
    Arithmetic,
    BiasMode,
    Epilogue,
    ScaleDivision,
    Target,
    ZeroPointAdd,
    get_target,
)

F32 = np.float32
INT16_MIN, INT16_MAX = -(1 << 15), (1 << 15) - 1
#: PyTorch's x86 engine sends convolutions with more groups than this to fbgemm.
ONEDNN_MAX_GROUPS = 100


@dataclass(frozen=True, eq=False)
class LayerQParams:
    """Quantization parameters of one conv / matmul layer.

    `w_scale` / `w_zero_point` are 0-d (per tensor) or 1-d (one per output channel).
    `qmin` / `qmax` are the output clamp bounds, raised to the zero point by a fused ReLU.
    """

    x_scale: float
    x_zero_point: int
    w_scale: np.ndarray
    w_zero_point: np.ndarray
    y_scale: float
    y_zero_point: int
    qmin: int = 0
    qmax: int = 255

    def __post_init__(self) -> None:
        object.__setattr__(self, "w_scale", np.asarray(self.w_scale, dtype=F32))
        object.__setattr__(self, "w_zero_point", np.asarray(self.w_zero_point, dtype=np.int64))
        if self.qmin > self.qmax:
            raise QuantizationError(f"empty output range [{self.qmin}, {self.qmax}]")

    @property
    def product_scale(self) -> np.ndarray:
        """float32(s_x * s_w), the scale of the accumulator and of an int32 bias (Q9)."""
        return (F32(self.x_scale) * self.w_scale).astype(F32)


def arithmetic_for(target: Target, op_type: str, q: LayerQParams, group: int = 1) -> Arithmetic:
    """The arithmetic `target` uses for one layer (x86 dispatches convolutions, (E6)).

    Examples
    --------
    >>> from lowp.targets import get_target, Epilogue
    >>> q = LayerQParams(0.1, 0, np.float32(0.01), np.int64(0), 0.5, 0)
    >>> arithmetic_for(get_target("x86"), "Conv", q).epilogue is Epilogue.SEPARATE_SCALES
    True
    """
    if (op_type == "Conv" and target.conv_arithmetic is not None
            and not np.any(q.w_zero_point) and group <= ONEDNN_MAX_GROUPS):
        return target.conv_arithmetic
    return target.arithmetic


def _per_channel(v: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    if v.ndim == 0:
        return v
    shape = [1] * ndim
    shape[axis] = -1
    return v.reshape(shape)


def _divide(value: np.ndarray, scale: np.ndarray, how: ScaleDivision) -> np.ndarray:
    """float32 value / scale, as a true division or a product with float32(1 / scale)."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        if how is ScaleDivision.DIVIDE:
            return (value.astype(F32) / scale.astype(F32)).astype(F32)
        recip = (F32(1) / scale.astype(F32)).astype(F32)
        return (value.astype(F32) * recip).astype(F32)


def float_bias(bias: np.ndarray | None, q: LayerQParams) -> np.ndarray | None:
    """A float32 bias: as given, or an int32 bias dequantized at s_x * s_w (Q7)."""
    if bias is None:
        return None
    b = np.asarray(bias)
    if b.dtype.kind == "f":
        return b.astype(F32)
    return (b.astype(np.int64).astype(F32) * np.broadcast_to(q.product_scale, b.shape)
            ).astype(F32)


def int32_bias(bias: np.ndarray | None, q: LayerQParams, how: ScaleDivision) -> np.ndarray | None:
    """An int32 bias at s_x * s_w: as given, or a float bias rounded half to even (Q9)."""
    if bias is None:
        return None
    b = np.asarray(bias)
    if b.dtype.kind != "f":
        return b.astype(np.int32)
    scale = np.broadcast_to(q.product_scale, b.shape).astype(F32)
    v = _divide(b.astype(F32), scale, how).astype(np.float64)
    info = np.iinfo(np.int32)
    return np.clip(np.rint(np.nan_to_num(v, nan=0.0)), info.min, info.max).astype(np.int32)


def epilogue(acc: np.ndarray, bias: np.ndarray | None, q: LayerQParams, arith: Arithmetic,
             requant_mode: RequantMode = RequantMode.FLOAT32, channel_axis: int = 1
             ) -> np.ndarray:
    """Accumulators (without bias) to output integers, in the engine's order (E2)-(E5).

    Parameters
    ----------
    acc
        int32 accumulators sum (x - zx)(w - zw), bias not included.
    bias
        float32 (a real bias, as PyTorch holds it) or int32 (at s_x * s_w, as ONNX holds it),
        one per output channel, or None.
    q
        The layer's scales, zero points and output clamp.
    arith
        The engine's arithmetic.
    requant_mode
        FLOAT32 or FIXEDPOINT for the folded-multiplier epilogue with an int32 bias.
    channel_axis
        Axis of `acc` that holds output channels.

    Returns
    -------
    np.ndarray
        int32 outputs in [q.qmin, q.qmax].

    Examples
    --------
    fbgemm adds the float bias to the float accumulator; an int32 bias is rounded first:

    >>> from lowp.targets import FBGEMM, EXACT
    >>> q = LayerQParams(1.0, 0, np.float32(1.0), np.int64(0), 1.0, 0, 0, 255)
    >>> acc = np.array([[11]], np.int32); b = np.array([0.5], np.float32)
    >>> int(epilogue(acc, b, q, FBGEMM)[0, 0]), int(epilogue(acc, b, q, EXACT)[0, 0])
    (12, 11)
    """
    acc = np.asarray(acc, dtype=np.int32)
    axis = channel_axis % max(acc.ndim, 1)
    sx, sy, zy = F32(q.x_scale), F32(q.y_scale), int(q.y_zero_point)
    sw = _per_channel(q.w_scale, acc.ndim, axis)

    def bias_shaped(b: np.ndarray | None) -> np.ndarray | None:
        return None if b is None else _per_channel(np.asarray(b), acc.ndim, axis)

    def finish(v: np.ndarray) -> np.ndarray:
        """round half to even, add the zero point (integer or float32), clamp."""
        if arith.zero_point_add is ZeroPointAdd.FLOAT:
            r = np.rint((v + F32(zy)).astype(F32)).astype(np.float64)
        else:
            r = np.rint(v).astype(np.float64) + zy
        return np.clip(np.nan_to_num(r), q.qmin, q.qmax).astype(np.int32)

    with np.errstate(over="ignore", invalid="ignore"):
        if arith.epilogue is Epilogue.SEPARATE_SCALES:                         # (E5)
            t = ((acc.astype(F32) * sx).astype(F32) * sw).astype(F32)
            fb = bias_shaped(float_bias(bias, q))
            if fb is not None:
                t = (t + fb).astype(F32)
            return finish((t * (F32(1) / sy).astype(F32)).astype(F32))
        if arith.multiplier is ScaleDivision.DIVIDE:                            # (R1)
            m = ((sx * sw).astype(F32) / sy).astype(F32)
        else:                                                                   # (E4)
            m = ((sw * sx).astype(F32) * (F32(1) / sy).astype(F32)).astype(F32)
        if arith.bias is BiasMode.FLOAT_PRESCALED and bias is not None:        # (E3)
            fb = np.asarray(float_bias(bias, q))
            pre = _divide(fb, np.broadcast_to(q.product_scale, fb.shape), ScaleDivision.DIVIDE)
            v = (acc.astype(F32) + _per_channel(pre, acc.ndim, axis)).astype(F32)
            return finish((v * m).astype(F32))
        how = (ScaleDivision.RECIPROCAL if arith.bias is BiasMode.INT32_RECIPROCAL
               else ScaleDivision.DIVIDE)
        bq = bias_shaped(int32_bias(bias, q, how))                              # (E2), (E4)
        total = acc if bq is None else wrap_int32(acc.astype(np.int64) + bq)
        if arith.zero_point_add is ZeroPointAdd.INTEGER:
            return requantize(total, m, zy, q.qmin, q.qmax, requant_mode)      # (R2) / (R4)
        return finish((total.astype(F32) * m).astype(F32))


# ---------------------------------------------------------------------------------------
# accumulation

def _pairs_saturated(xr: np.ndarray, wr: np.ndarray) -> np.ndarray:
    """sum_p sat16(x[2p] w[2p] + x[2p+1] w[2p+1]) over K: (..., K, L) x (M, K) -> (..., M, L)."""
    k = xr.shape[-2]
    if k % 2:
        xr = np.concatenate([xr, np.zeros(xr.shape[:-2] + (1, xr.shape[-1]), xr.dtype)], -2)
        wr = np.concatenate([wr, np.zeros((wr.shape[0], 1), wr.dtype)], -1)
    xe, xo = xr[..., 0::2, :], xr[..., 1::2, :]                   # (..., P, L)
    we, wo = wr[:, 0::2], wr[:, 1::2]                             # (M, P)
    pair = (xe[..., None, :, :] * we[:, :, None] + xo[..., None, :, :] * wo[:, :, None])
    return np.clip(pair, INT16_MIN, INT16_MAX).sum(axis=-2)       # (..., M, L)


def _raw_correction(raw: np.ndarray, xsum: np.ndarray, wsum: np.ndarray, k: int, zx: int,
                    zw: np.ndarray) -> np.ndarray:
    """sum (x - zx)(w - zw) from raw sum x w: minus zx sum w, minus zw sum x, plus K zx zw."""
    return raw - zx * wsum - zw * xsum + k * zx * zw


def fbgemm_depthwise_fast_path(channels: int, w_shape: Sequence[int], group: int,
                               strides: Sequence[int], pads: Sequence[int],
                               dilations: Sequence[int]) -> bool:
    """Whether fbgemm runs this convolution in its depthwise kernels (which saturate, (E1)).

    Measured with PyTorch 2.13: one input channel per group, groups a multiple of 8, one or
    two output channels per group, a square k x k kernel with k in {3, 5, 7} (3 x 3 x 3 in
    3D), strides <= 2, pads k // 2 on every side and no dilation. 1D convolutions never.

    Examples
    --------
    >>> fbgemm_depthwise_fast_path(32, (32, 1, 3, 3), 32, [1, 1], [1, 1, 1, 1], [1, 1])
    True
    >>> fbgemm_depthwise_fast_path(12, (12, 1, 3, 3), 12, [1, 1], [1, 1, 1, 1], [1, 1])
    False
    """
    kernel = tuple(w_shape[2:])
    r = len(kernel)
    allowed = {2: (3, 5, 7), 3: (3,)}.get(r, ())
    return (channels == group and group % 8 == 0 and w_shape[0] in (group, 2 * group)
            and len(set(kernel)) == 1 and kernel[0] in allowed
            and all(s <= 2 for s in strides) and all(d == 1 for d in dilations)
            and all(p == kernel[0] // 2 for p in pads))


def accumulate_conv(x: np.ndarray, w: np.ndarray, q: LayerQParams, arith: Arithmetic, *,
                    strides: Sequence[int], pads: Sequence[int], dilations: Sequence[int],
                    group: int) -> np.ndarray:
    """int32 accumulators of a channels-first convolution, bias excluded (E1).

    With INT16_PAIRS (and on fbgemm's depthwise fast path) the K order is fbgemm's: kernel
    offsets outer, input channels inner, per group; adjacent K pairs saturate at 16 bits.
    """
    zx, zw = int(q.x_zero_point), q.w_zero_point
    exact = arith.accumulation is Accumulation.INT32 or (
        arith.accumulation is Accumulation.INT16_PAIRS_DEPTHWISE and not
        fbgemm_depthwise_fast_path(x.shape[1], w.shape, group, strides, pads, dilations))
    if exact:
        return int_conv(x, w, None, x_zero_point=zx, w_zero_point=zw, requant=None,
                        strides=strides, pads=pads, dilations=dilations, group=group)
    r = x.ndim - 2
    n, c = x.shape[:2]
    m, cg = w.shape[:2]
    out_shape = conv_output_shape(x.shape[2:], w.shape[2:], strides, pads, dilations)
    xp = np.pad(x.astype(np.int64), [(0, 0), (0, 0)] + [(pads[i], pads[i + r]) for i in
                                                        range(r)], constant_values=zx)
    cols = im2col(xp, w.shape[2:], strides, dilations, out_shape)            # (N, C, Kk, L)
    kk, length = cols.shape[2], cols.shape[3]
    mg = m // group
    zwv = np.broadcast_to(zw, (m,)).astype(np.int64)
    out = np.empty((n, m, length), np.int64)
    for g in range(group):
        xg = cols[:, g * cg:(g + 1) * cg].transpose(0, 2, 1, 3).reshape(n, kk * cg, length)
        wg = w[g * mg:(g + 1) * mg].astype(np.int64).reshape(mg, cg, kk)
        wg = wg.transpose(0, 2, 1).reshape(mg, kk * cg)
        raw = _pairs_saturated(xg, wg)                                        # (N, Mg, L)
        out[:, g * mg:(g + 1) * mg] = _raw_correction(
            raw, xg.sum(axis=1)[:, None, :], wg.sum(axis=1)[None, :, None], kk * cg, zx,
            zwv[g * mg:(g + 1) * mg][None, :, None])
    return wrap_int32(out.reshape((n, m) + out_shape))


def accumulate_matmul(a: np.ndarray, b: np.ndarray, q: LayerQParams,
                      arith: Arithmetic) -> np.ndarray:
    """int32 accumulators of a (..., K) x (K, N) product, bias excluded (E1)."""
    zx, zw = int(q.x_zero_point), q.w_zero_point
    if arith.accumulation is not Accumulation.INT16_PAIRS:
        return int_matmul(a, b, a_zero_point=zx, b_zero_point=zw)
    lead = a.shape[:-1]
    a2 = a.reshape(-1, a.shape[-1]).astype(np.int64).T[None]                 # (1, K, R)
    bt = b.astype(np.int64).T                                                # (N, K)
    raw = _pairs_saturated(a2, bt)[0]                                        # (N, R)
    zwv = np.broadcast_to(zw, (b.shape[1],)).astype(np.int64)[:, None]
    acc = _raw_correction(raw, a2[0].sum(axis=0)[None, :], bt.sum(axis=1)[:, None],
                          a.shape[-1], zx, zwv)
    return wrap_int32(acc.T.reshape(lead + (b.shape[1],)))


# ---------------------------------------------------------------------------------------
# whole layers

def conv(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, q: LayerQParams,
         target: str | Target, *, strides: Sequence[int] | None = None,
         pads: Sequence[int] | None = None, dilations: Sequence[int] | None = None,
         group: int = 1, layout: Layout = Layout.CHANNELS_FIRST) -> np.ndarray:
    """A quantized convolution exactly as `target`'s engine computes it.

    Parameters
    ----------
    x
        Activations (N, C, *spatial), or channels-last with `layout`.
    w
        Integer weights in ONNX layout (M, C / group, *kernel).
    bias
        float32 (real) or int32 (at s_x * s_w) bias per output channel, or None.
    q
        Scales, zero points and output clamp.
    target
        A Target or its name (see lowp.targets.TARGETS).
    strides, pads, dilations, group
        ONNX Conv attributes (pads: all begins, then all ends).
    layout
        Layout of `x` and of the result.

    Returns
    -------
    np.ndarray
        Outputs in [q.qmin, q.qmax], int32.
    """
    t = get_target(target)
    xc = to_channels_first(np.asarray(x), layout)
    r = xc.ndim - 2
    strides = list(strides) if strides is not None else [1] * r
    dilations = list(dilations) if dilations is not None else [1] * r
    pads = list(pads) if pads is not None else [0] * 2 * r
    arith = arithmetic_for(t, "Conv", q, group)
    acc = accumulate_conv(xc, np.asarray(w), q, arith, strides=strides, pads=pads,
                          dilations=dilations, group=group)
    y = epilogue(acc, bias, q, arith, t.requant_mode, channel_axis=1)
    return np.ascontiguousarray(from_channels_first(y, layout))


def matmul(a: np.ndarray, b: np.ndarray, bias: np.ndarray | None, q: LayerQParams,
           target: str | Target) -> np.ndarray:
    """A quantized (..., K) x (K, N) product (Linear, MatMul, Gemm) as `target` computes it.

    `b` holds integer weights with output channels along its last axis; per-channel
    parameters run along N. Returns int32 outputs in [q.qmin, q.qmax].
    """
    t = get_target(target)
    arith = arithmetic_for(t, "MatMul", q)
    acc = accumulate_matmul(np.asarray(a), np.asarray(b), q, arith)
    return epilogue(acc, bias, q, arith, t.requant_mode, channel_axis=-1)


@dataclass(frozen=True)
class EngineModel:
    """An engine whose arithmetic lowp reproduces, and the peer it was measured against."""

    target: str
    peer: str
    verified: bool


#: Engine models keyed by target name; `verified` means bit-exact tests against the peer
#: run on this project's CI machine (tests/fidelity).
ENGINES: dict[str, EngineModel] = {e.target: e for e in (
    EngineModel("lowp", "lowp's numpy reference (lowp.ops)", True),
    EngineModel("onnxruntime", "ONNX Runtime CPU: QLinearConv, QLinearMatMul, QDQ Conv/MatMul",
                True),
    EngineModel("x86", "PyTorch quantized engine 'x86' (oneDNN conv, fbgemm linear)", True),
    EngineModel("fbgemm", "PyTorch quantized engine 'fbgemm' (VNNI)", True),
    EngineModel("fbgemm-avx2", "fbgemm without VNNI (vpmaddubsw saturation)", False),
    EngineModel("onednn", "PyTorch quantized engine 'onednn'", True),
    EngineModel("qnnpack", "PyTorch quantized engine 'qnnpack'", True),
    EngineModel("xnnpack", "XNNPACK qs8 fp32 requantization (from its source)", False),
    EngineModel("gemmlowp", "gemmlowp / TFLite fixed-point requantization (from its source)",
                False),
)}
