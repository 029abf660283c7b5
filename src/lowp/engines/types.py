"""Choices of the DNNLOWP-style operator engines: engine, weight granularity, order, options."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from ..errors import QuantizationError
from ..fixedpoint import RequantMode
from ..ops.layout import Layout
from ..qparams import QParams, QType

# fbgemm's acc16 kernels keep KCB = 256 terms (128 pairs) in 16 bits before widening (S2).
DEFAULT_BLOCK_PAIRS = 128


class Engine(enum.Enum):
    """Integer engine of an operator (Caffe2 DNNLOWP engine names).

    DNNLOWP: uint8 activations, int8 weights, int32 accumulation (A1).
    DNNLOWP_16: uint16 activations, int16 weights, exact int64 accumulation (S8).
    DNNLOWP_ACC16: uint8 x int8 with saturating 16-bit accumulation of the dense weights and
    an int32 sparse outlier part (S1)-(S6).
    """

    DNNLOWP = "DNNLOWP"
    DNNLOWP_16 = "DNNLOWP_16"
    DNNLOWP_ACC16 = "DNNLOWP_ACC16"

    @property
    def activation_qtype(self) -> QType:
        return QType.UINT16 if self is Engine.DNNLOWP_16 else QType.UINT8

    @property
    def weight_qtype(self) -> QType:
        return QType.INT16 if self is Engine.DNNLOWP_16 else QType.INT8


class WeightQuant(enum.Enum):
    """Weight granularity: one qparams per tensor, per output channel (row-wise), per group."""

    PER_TENSOR = "per-tensor"
    PER_CHANNEL = "per-channel"
    PER_GROUP = "per-group"


class Order(enum.Enum):
    """Storage order of activations (Caffe2 names); the spatial rank follows from the name."""

    NCW = "NCW"
    NWC = "NWC"
    NCHW = "NCHW"
    NHWC = "NHWC"
    NCDHW = "NCDHW"
    NDHWC = "NDHWC"

    @property
    def layout(self) -> Layout:
        return Layout.CHANNELS_FIRST if self.value[1] == "C" else Layout.CHANNELS_LAST

    @property
    def spatial_rank(self) -> int:
        return len(self.value) - 2


@dataclass(frozen=True)
class EngineOptions:
    """How an operator quantizes and accumulates.

    Attributes
    ----------
    engine
        Integer engine, see `Engine`.
    weight_quant
        Weight granularity; PER_GROUP is Caffe2's ``quantize_groupwise``.
    preserve_activation_sparsity
        Activations use the zero-centred rule (S9): real 0 maps to the zero point 0 (data
        without negatives) or to the middle of the unsigned range (data with both signs).
    preserve_weight_sparsity
        Weights use (S9): zero point 0, int8 values in [-128, 127].
    nbits_in_non_outlier
        DNNLOWP_ACC16 only: weights outside [-2^(T-1), 2^(T-1)) go to the int32 outlier
        matrix (S5); 0 makes every weight an outlier, 8 none.
    requant_mode
        Requantization of the int32 accumulators, (R2) or (R4). DNNLOWP_16 requantizes its
        int64 accumulators by (S8) and takes FLOAT32 only.
    block_pairs
        DNNLOWP_ACC16 only: pairs accumulated in 16 bits before widening to int32 (S2).
    """

    engine: Engine = Engine.DNNLOWP
    weight_quant: WeightQuant = WeightQuant.PER_TENSOR
    preserve_activation_sparsity: bool = False
    preserve_weight_sparsity: bool = False
    nbits_in_non_outlier: int = 8
    requant_mode: RequantMode = RequantMode.FLOAT32
    block_pairs: int = DEFAULT_BLOCK_PAIRS

    def __post_init__(self) -> None:
        if not 0 <= self.nbits_in_non_outlier <= 8:
            raise QuantizationError(
                f"nbits_in_non_outlier must be in [0, 8], got {self.nbits_in_non_outlier}")
        if self.engine is Engine.DNNLOWP_16 and self.requant_mode is not RequantMode.FLOAT32:
            raise QuantizationError("DNNLOWP_16 requantizes int64 accumulators in float32 "
                                    "(S8); fixed-point requantization needs int32")
        if self.block_pairs < 1:
            raise QuantizationError(f"block_pairs must be >= 1, got {self.block_pairs}")


@dataclass(frozen=True, eq=False)
class QTensor:
    """Integer values with their qparams (Caffe2's Int8Tensor)."""

    values: np.ndarray
    qparams: QParams

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", np.asarray(self.values))
        if self.values.dtype != self.qparams.qtype.numpy_dtype:
            raise QuantizationError(f"values of dtype {self.values.dtype} do not match "
                                    f"{self.qparams.qtype.value}")
