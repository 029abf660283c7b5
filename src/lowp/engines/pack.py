"""Weight prepacking of the operator engines (Caffe2 Int8ConvPackWeight / Int8FCPackWeight).

A packed weight holds the quantized weights, their qparams, the int32 bias at s_x * s_w
(Q9), and for DNNLOWP_ACC16 the per-group dense/outlier split (S5) with native kernels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import QuantizationError
from ..qparams import PerTensor, QParams, quantize, quantize_bias
from . import native
from .acc16 import OutlierSplit, split_outliers
from .qparams import choose_weight_qparams
from .types import Engine, EngineOptions, QTensor

Impl = str   # "auto" (native when built), "native" or "reference"


def weight_matrices(w: np.ndarray, group: int) -> np.ndarray:
    """ONNX conv weights (M, C/group, *kernel) as (group, taps * C/group, M/group) (S7).

    The K index runs over kernel taps (row-major) with the input channel innermost, as
    fbgemm's channels-last im2col orders it.
    """
    m, cg = w.shape[:2]
    taps = int(np.prod(w.shape[2:], dtype=np.int64))
    w3 = w.reshape(m, cg, taps).transpose(0, 2, 1).reshape(group, m // group, taps * cg)
    return np.ascontiguousarray(w3.transpose(0, 2, 1))


@dataclass(eq=False)
class Acc16Weights:
    """Per-group dense/outlier split of int8 weight matrices (K, N) and their native kernels."""

    mats: np.ndarray                         # int8 (G, K, N)
    w_zero_point: np.ndarray                 # int64 (G * N,)
    splits: list[OutlierSplit]
    block_pairs: int
    natives: list[native.NativeAcc16Gemm] | None = None
    col_sums: np.ndarray = field(init=False)  # int64 (G, N)

    def __post_init__(self) -> None:
        self.col_sums = self.mats.astype(np.int64).sum(axis=1)

    @classmethod
    def build(cls, mats: np.ndarray, w_zero_point: np.ndarray, nbits_in_non_outlier: int,
              block_pairs: int, impl: Impl = "auto") -> Acc16Weights:
        if mats.dtype != np.int8:
            raise QuantizationError(f"DNNLOWP_ACC16 needs int8 weights, got {mats.dtype}")
        splits = [split_outliers(m, nbits_in_non_outlier) for m in mats]
        natives = None
        if impl == "native" or (impl == "auto" and native.available()):
            natives = [native.NativeAcc16Gemm(s, block_pairs) for s in splits]
        zw = np.broadcast_to(np.asarray(w_zero_point, np.int64),
                             (mats.shape[0] * mats.shape[2],)).copy()
        return cls(mats, zw, splits, block_pairs, natives)

    @property
    def outlier_fraction(self) -> float:
        return sum(s.count for s in self.splits) / max(1, self.mats.size)


@dataclass(eq=False)
class PackedWeights:
    """Prepacked weights of a convolution or a fully connected operator.

    Attributes
    ----------
    kind
        'conv' (weights (M, C/group, *kernel)) or 'fc' (weights (N, K)).
    options
        The engine options the weights were packed for.
    w
        Quantized weights (values and qparams as chosen: per tensor, channel or group).
    group
        Convolution groups (1 for FC).
    bias_int32
        int32 bias at s_x * s_w per channel (Q9), when known at pack time (an int32 bias, or a
        float bias with `x_qparams` given); otherwise computed per call by `bias_for`.
    bias_float
        The float bias, if one was given.
    x_qparams
        Activation qparams assumed at pack time, or None.
    strides, pads, dilations
        Convolution geometry kept with the weights (None: defaults).
    acc16
        The DNNLOWP_ACC16 split and kernels (None for other engines).
    """

    kind: str
    options: EngineOptions
    w: QTensor
    group: int
    bias_int32: np.ndarray | None
    bias_float: np.ndarray | None
    x_qparams: QParams | None
    strides: tuple[int, ...] | None = None
    pads: tuple[int, ...] | None = None
    dilations: tuple[int, ...] | None = None
    acc16: Acc16Weights | None = None

    @property
    def out_channels(self) -> int:
        return int(self.w.values.shape[0])

    @property
    def w_per_channel(self) -> QParams:
        """Weight qparams with one entry per output channel (per tensor stays per tensor)."""
        return self.w.qparams.expand_groups(self.out_channels)

    def w_scale(self) -> np.ndarray:
        """float32 weight scale per output channel, shape (M,)."""
        qp = self.w_per_channel
        return np.broadcast_to(qp.scale, (self.out_channels,)).astype(np.float32)

    def w_zero_point(self) -> np.ndarray:
        """int32 weight zero point per output channel, shape (M,)."""
        qp = self.w_per_channel
        return np.broadcast_to(qp.zero_point, (self.out_channels,)).astype(np.int32)

    def bias_for(self, x_qparams: QParams) -> np.ndarray | None:
        """int32 bias at s_x * s_w (Q9) for activations quantized with `x_qparams`."""
        if self.bias_float is None:
            return self.bias_int32
        if (self.bias_int32 is not None and self.x_qparams is not None
                and np.array_equal(self.x_qparams.scale, x_qparams.scale)):
            return self.bias_int32
        return quantize_bias(self.bias_float, x_qparams.scale, self.w_scale())[0]


def _quantized_weights(w: np.ndarray | QTensor, options: EngineOptions, group: int,
                       w_qparams: QParams | None) -> QTensor:
    if isinstance(w, QTensor):
        if w.qparams.qtype is not options.engine.weight_qtype:
            raise QuantizationError(f"{options.engine.value} needs "
                                    f"{options.engine.weight_qtype.value} weights, got "
                                    f"{w.qparams.qtype.value}")
        return w
    wf = np.asarray(w, dtype=np.float32)
    qp = w_qparams if w_qparams is not None else choose_weight_qparams(wf, options, group)
    if not isinstance(qp.granularity, PerTensor) and qp.granularity.axis % wf.ndim != 0:
        raise QuantizationError("weight qparams must run along the output-channel axis 0")
    return QTensor(quantize(wf, qp), qp)


def _bias(bias: np.ndarray | None, m: int, x_qparams: QParams | None, w: QTensor
          ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(bias_int32, bias_float) from a float or int32 bias."""
    if bias is None:
        return None, None
    b = np.asarray(bias)
    if b.shape != (m,):
        raise QuantizationError(f"bias must have shape ({m},), got {b.shape}")
    if b.dtype == np.int32:
        return b, None
    if b.dtype.kind != "f":
        raise QuantizationError(f"bias must be float or int32, got {b.dtype}")
    bf = b.astype(np.float32)
    if x_qparams is None:
        return None, bf
    scale = w.qparams.expand_groups(m).scale
    return quantize_bias(bf, x_qparams.scale, scale)[0], bf


def pack_conv_weight(w: np.ndarray | QTensor, bias: np.ndarray | None = None, *,
                     group: int = 1, options: EngineOptions | None = None,
                     x_qparams: QParams | None = None, w_qparams: QParams | None = None,
                     strides: Sequence[int] | None = None, pads: Sequence[int] | None = None,
                     dilations: Sequence[int] | None = None, impl: Impl = "auto"
                     ) -> PackedWeights:
    """Quantize (if float) and prepack convolution weights (M, C/group, *kernel).

    Parameters
    ----------
    w
        Float weights, or a QTensor of the engine's weight type (already quantized).
    bias
        None, float (M,) (quantized at s_x * s_w (Q9)), or int32 (M,) taken as is.
    group
        Convolution groups; group == C is depthwise.
    options
        Engine, granularity, sparsity and outlier options (default: DNNLOWP, per tensor).
    x_qparams
        Activation qparams, if known, so that a float bias is quantized once here.
    w_qparams
        Weight qparams to use instead of choosing them from the data.
    strides, pads, dilations
        Geometry stored with the weights; `conv` uses it when given a packed weight.
    impl
        'auto', 'native' or 'reference' for the DNNLOWP_ACC16 kernels.

    Returns
    -------
    PackedWeights
        With ``bias_int32`` = round(b / (s_x * s_w)) per channel when computable.

    Examples
    --------
    >>> from lowp.qparams import QType
    >>> w = np.array([[[[1.0, -2.0], [0.5, 4.0]]]], np.float32)
    >>> p = pack_conv_weight(w, np.array([1.0], np.float32),
    ...                      x_qparams=QParams(np.float32(0.5), np.int32(0), QType.UINT8, 0, 255))
    >>> p.bias_int32.dtype, p.w.values.dtype
    (dtype('int32'), dtype('int8'))
    """
    options = options or EngineOptions()
    wq = _quantized_weights(w, options, group, w_qparams)
    if wq.values.ndim not in (3, 4, 5):
        raise QuantizationError(f"conv weights must be (M, C/group, *kernel), got "
                                f"{wq.values.shape}")
    m = int(wq.values.shape[0])
    if group < 1 or m % group:
        raise QuantizationError(f"{m} output channels do not split into {group} groups")
    b32, bf = _bias(bias, m, x_qparams, wq)
    packed = PackedWeights("conv", options, wq, group, b32, bf, x_qparams,
                           None if strides is None else tuple(strides),
                           None if pads is None else tuple(pads),
                           None if dilations is None else tuple(dilations))
    if options.engine is Engine.DNNLOWP_ACC16:
        packed.acc16 = Acc16Weights.build(weight_matrices(wq.values, group),
                                          packed.w_zero_point(), options.nbits_in_non_outlier,
                                          options.block_pairs, impl)
    return packed


def pack_fc_weight(w: np.ndarray | QTensor, bias: np.ndarray | None = None, *,
                   options: EngineOptions | None = None, x_qparams: QParams | None = None,
                   w_qparams: QParams | None = None, impl: Impl = "auto") -> PackedWeights:
    """Quantize (if float) and prepack fully connected weights (N, K) (Caffe2 FC layout).

    Row-wise (per output channel) quantization is ``WeightQuant.PER_CHANNEL``. See
    `pack_conv_weight` for the other parameters.
    """
    options = options or EngineOptions()
    wq = _quantized_weights(w, options, 1, w_qparams)
    if wq.values.ndim != 2:
        raise QuantizationError(f"FC weights must be (N, K), got {wq.values.shape}")
    b32, bf = _bias(bias, int(wq.values.shape[0]), x_qparams, wq)
    packed = PackedWeights("fc", options, wq, 1, b32, bf, x_qparams)
    if options.engine is Engine.DNNLOWP_ACC16:
        mats = np.ascontiguousarray(wq.values.T)[None]
        packed.acc16 = Acc16Weights.build(mats, packed.w_zero_point(),
                                          options.nbits_in_non_outlier, options.block_pairs,
                                          impl)
    return packed
