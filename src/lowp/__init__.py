"""lowp: post-training int8 quantization of ONNX models and an exact integer engine."""

from __future__ import annotations

from .calib.sharded import Scheduler, calibrate
from .config import CalibMethod, Config, QuantMode, QuantPolicy
from .errors import (
    DataError,
    LowpError,
    ModelError,
    QuantizationError,
    UnsupportedOpError,
)
from .fixedpoint import Requant, RequantMode, requantize
from .formats import Format, convert
from .pipeline import quantize_model
from .qparams import (
    PerAxis,
    PerGroup,
    PerTensor,
    QParams,
    QType,
    choose_qparams,
    dequantize,
    quantize,
)
from .runtime import Session
from .targets import TARGETS, Target, WeightGranularity, get_target

__version__ = "0.1.0"

__all__ = [
    "TARGETS", "CalibMethod", "Config", "DataError", "Format", "LowpError", "ModelError",
    "PerAxis", "PerGroup", "PerTensor", "QParams", "QType", "QuantMode", "QuantPolicy",
    "QuantizationError", "Requant", "RequantMode", "Scheduler", "Session", "Target",
    "UnsupportedOpError", "WeightGranularity", "calibrate", "choose_qparams", "convert",
    "dequantize", "get_target", "quantize", "quantize_model", "requantize",
]
