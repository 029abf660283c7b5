"""DNNLOWP-style operator engines: 8-bit, 16-bit and saturating 16-bit accumulation (acc16)."""

from __future__ import annotations

from . import backend as _backend  # noqa: F401  (registers the "dnnlowp-acc16" backend)
from . import native  # noqa: F401  (lowp.engines.native: paths of the native kernels)
from .acc16 import (
    OutlierSplit,
    SaturationReport,
    acc16_matmul,
    acc16_outlier_matmul,
    outlier_mask,
    split_outliers,
)
from .backend import Acc16Backend, acc16_backend_factory
from .ops import (
    analyze_saturation,
    conv,
    conv_relu,
    dequantize,
    fc,
    fc_relu,
    quantize,
    requantize_wide,
)
from .pack import PackedWeights, pack_conv_weight, pack_fc_weight
from .qparams import (
    choose_activation_qparams,
    choose_weight_qparams,
    groupwise_weight_qparams,
    min_qdq_opset,
    per_group_for_qdq,
    zero_centred_qparams,
)
from .types import DEFAULT_BLOCK_PAIRS, Engine, EngineOptions, Order, QTensor, WeightQuant

__all__ = [
    "DEFAULT_BLOCK_PAIRS", "Acc16Backend", "Engine", "EngineOptions", "Order", "OutlierSplit",
    "PackedWeights", "QTensor", "SaturationReport", "WeightQuant", "acc16_backend_factory",
    "acc16_matmul", "acc16_outlier_matmul", "analyze_saturation", "choose_activation_qparams",
    "choose_weight_qparams", "conv", "conv_relu", "dequantize", "fc", "fc_relu",
    "groupwise_weight_qparams", "min_qdq_opset", "outlier_mask", "pack_conv_weight",
    "pack_fc_weight", "per_group_for_qdq", "quantize", "requantize_wide", "split_outliers",
    "zero_centred_qparams",
]
