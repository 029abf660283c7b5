"""Qparams rules of the engines: activations, weights, groups, sparsity (S9), QDQ export."""

from __future__ import annotations

import numpy as np

from ..errors import QuantizationError
from ..qparams import (
    FLOAT32_EPS,
    PerAxis,
    PerGroup,
    PerTensor,
    QParams,
    QType,
    choose_qparams,
    quant_range,
)
from ..targets import Target
from .types import EngineOptions, WeightQuant


def zero_centred_qparams(min_val: float | np.ndarray, max_val: float | np.ndarray,
                         qtype: QType, *, granularity: PerTensor | PerAxis | PerGroup | None
                         = None, min_scale: float = FLOAT32_EPS) -> QParams:
    """Sparsity-preserving qparams (S9): real 0 maps exactly to a fixed zero point.

    Unsigned data without negatives keeps (Q4)-(Q5) (zero point 0). Otherwise the zero point
    is 0 (signed) or 2^(bits-1) (unsigned) and
    ``scale = max(-min' / (z - qmin), max' / (qmax - z))`` in float32, so that the full
    range, e.g. int8 [-128, 127], is used: [-128, 127] gets scale exactly 1.

    Examples
    --------
    >>> qp = zero_centred_qparams(-128.0, 127.0, QType.INT8)
    >>> float(qp.scale), int(qp.zero_point)
    (1.0, 0)
    """
    lo = np.minimum(np.asarray(min_val, dtype=np.float32), np.float32(0))
    hi = np.maximum(np.asarray(max_val, dtype=np.float32), np.float32(0))
    if granularity is None:
        granularity = PerTensor() if lo.ndim == 0 else PerAxis(0)
    if not qtype.signed and bool(np.all(lo >= 0)):
        return choose_qparams(lo, hi, qtype, min_scale=min_scale, granularity=granularity)
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise QuantizationError(f"observed range [{lo}, {hi}] is not finite")
    qmin, qmax = quant_range(qtype)
    z = 0 if qtype.signed else 1 << (qtype.bits - 1)
    scale = np.maximum(-lo / np.float32(z - qmin), hi / np.float32(qmax - z)).astype(np.float32)
    scale = np.where(hi - lo == 0, np.float32(1), np.maximum(scale, np.float32(min_scale)))
    zp = np.full(lo.shape, z, dtype=np.int32)
    return QParams(scale.astype(np.float32), zp, qtype, qmin, qmax, granularity)


def choose_activation_qparams(min_val: float, max_val: float, options: EngineOptions,
                              ) -> QParams:
    """Per-tensor activation qparams of the engine's activation type (Q2)-(Q5) or (S9)."""
    qtype = options.engine.activation_qtype
    if options.preserve_activation_sparsity:
        return zero_centred_qparams(min_val, max_val, qtype)
    return choose_qparams(min_val, max_val, qtype)


def weight_granularity(options: EngineOptions, out_channels: int, groups: int
                       ) -> PerTensor | PerAxis | PerGroup:
    """The granularity `options` asks for, on the output-channel axis 0."""
    if options.weight_quant is WeightQuant.PER_CHANNEL:
        return PerAxis(0)
    if options.weight_quant is WeightQuant.PER_GROUP:
        if groups < 1 or out_channels % groups:
            raise QuantizationError(f"{out_channels} output channels cannot form {groups} "
                                    "groups")
        return PerGroup(0, out_channels // groups)
    return PerTensor()


def _ranges(w: np.ndarray, gran: PerTensor | PerAxis | PerGroup
            ) -> tuple[np.ndarray, np.ndarray]:
    w = np.asarray(w, dtype=np.float32)
    if isinstance(gran, PerTensor):
        if w.size == 0:
            return np.float32(0), np.float32(0)
        return np.float32(w.min()), np.float32(w.max())
    blocks = w.shape[0] if isinstance(gran, PerAxis) else w.shape[0] // gran.group_size
    flat = w.reshape(blocks, -1)
    if flat.shape[1] == 0:
        zeros = np.zeros(blocks, np.float32)
        return zeros, zeros
    return flat.min(axis=1), flat.max(axis=1)


def choose_weight_qparams(w: np.ndarray, options: EngineOptions, groups: int = 1) -> QParams:
    """Weight qparams (output channels on axis 0) at the granularity of `options`.

    Asymmetric (Q4)-(Q5) by default, as DNNLOWP; (S9) with preserve_weight_sparsity.
    """
    w = np.asarray(w, dtype=np.float32)
    gran = weight_granularity(options, w.shape[0], groups)
    lo, hi = _ranges(w, gran)
    qtype = options.engine.weight_qtype
    if options.preserve_weight_sparsity:
        return zero_centred_qparams(lo, hi, qtype, granularity=gran)
    return choose_qparams(lo, hi, qtype, granularity=gran)


def groupwise_weight_qparams(w: np.ndarray, groups: int, target: Target) -> QParams:
    """One qparams per convolution group (Caffe2 quantize_groupwise) under `target`'s rules.

    `w` is a float ONNX Conv weight (M, C / groups, *kernel); the result has
    ``PerGroup(axis=0, group_size=M // groups)``. Weight type, symmetry, narrow range and
    minimum scale come from the target, as for per-channel weights.

    Examples
    --------
    >>> from lowp.targets import get_target
    >>> w = np.array([[[[1.0]]], [[[-2.0]]], [[[4.0]]], [[[0.5]]]], np.float32)
    >>> qp = groupwise_weight_qparams(w, 2, get_target("lowp"))
    >>> qp.scale.shape, qp.granularity
    ((2,), PerGroup(axis=0, group_size=2))
    """
    w = np.asarray(w, dtype=np.float32)
    if groups < 1 or w.shape[0] % groups:
        raise QuantizationError(f"weight with {w.shape[0]} output channels cannot be split "
                                f"into {groups} groups")
    gran = PerGroup(0, w.shape[0] // groups)
    lo, hi = _ranges(w, gran)
    return choose_qparams(lo, hi, target.weight_qtype, symmetric=target.weight_symmetric,
                          narrow_range=target.weight_narrow_range,
                          min_scale=target.min_scale, granularity=gran)


def per_group_for_qdq(qp: QParams, shape: tuple[int, ...], opset: int
                      ) -> tuple[np.ndarray, np.ndarray, int, int]:
    """QDQ form of per-group qparams: (scale, zero_point, axis, block_size).

    Groups along the output-channel axis 0 of a Conv/Gemm weight are exactly per-channel
    qparams with each group's values repeated (block_size 0: a plain per-axis QDQ, opset 13).
    Groups along another axis need ONNX blocked quantization (opset >= 21) and are refused
    for older opsets.
    """
    g = qp.granularity
    if not isinstance(g, PerGroup):
        raise QuantizationError(f"per_group_for_qdq needs PerGroup qparams, got {g}")
    axis = g.axis % len(shape)
    if shape[axis] % g.group_size:
        raise QuantizationError(f"axis {axis} of length {shape[axis]} is not a multiple of the "
                                f"group size {g.group_size}; refusing an inexact export")
    if axis == 0:
        e = qp.expand_groups(shape[0])
        return e.scale, e.zero_point, 0, 0
    if opset < 21:
        raise QuantizationError(f"groups along axis {axis} need blocked QuantizeLinear "
                                f"(opset >= 21); the model has opset {opset}")
    return qp.scale, qp.zero_point, axis, g.group_size


def min_qdq_opset(*qtypes: QType) -> int:
    """Smallest ONNX opset whose QuantizeLinear/DequantizeLinear take all `qtypes`.

    uint8/int8 need 13 (per-axis); 16-bit and 4-bit types need 21.

    Examples
    --------
    >>> min_qdq_opset(QType.UINT8, QType.INT16)
    21
    """
    return 21 if any(q.bits in (4, 16) for q in qtypes) else 13
