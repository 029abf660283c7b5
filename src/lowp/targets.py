"""Backend targets as data: what each deployment engine accepts and how it rounds.

A Target drives qparam choice (passes.annotate / calibrate) and the lint in passes.verify.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .errors import QuantizationError
from .fixedpoint import RequantMode
from .qparams import FLOAT32_EPS, QType


class WeightGranularity(enum.Enum):
    PER_TENSOR = "per-tensor"
    PER_CHANNEL = "per-channel"


@dataclass(frozen=True)
class Target:
    """The quantization contract of one inference engine.

    Attributes
    ----------
    activation_qtype, weight_qtype
        Storage types of activations and weights.
    activation_symmetric, weight_symmetric
        Whether the zero point is fixed at the middle of the range (0 for signed types).
    reduce_range
        Activations use one bit less (fbgemm on CPUs without VNNI guards vpmaddubsw).
    weight_narrow_range
        Signed weights restricted to [-qmax, qmax], e.g. [-127, 127].
    min_scale
        Smallest scale the engine accepts for any tensor.
    requant_scale_bounds
        Half-open interval [lo, hi) that every s_x * s_w / s_y must lie in, or None.
    weight_granularities
        Granularities the engine accepts for weights.
    requant_mode
        How int32 accumulators become output integers.
    accumulation_bits
        32, or 16 for saturating 16-bit accumulation (DNNLOWP_ACC16 style).
    """

    name: str
    description: str
    activation_qtype: QType = QType.UINT8
    activation_symmetric: bool = False
    reduce_range: bool = False
    weight_qtype: QType = QType.INT8
    weight_symmetric: bool = True
    weight_narrow_range: bool = False
    min_scale: float = FLOAT32_EPS
    requant_scale_bounds: tuple[float, float] | None = None
    weight_granularities: tuple[WeightGranularity, ...] = (
        WeightGranularity.PER_TENSOR, WeightGranularity.PER_CHANNEL)
    requant_mode: RequantMode = RequantMode.FLOAT32
    accumulation_bits: int = 32


TARGETS: dict[str, Target] = {}


def register_target(target: Target) -> Target:
    TARGETS[target.name] = target
    return target


LOWP = register_target(Target(
    name="lowp",
    description="lowp's own engine: u8 activations, s8 symmetric weights in [-127, 127], "
                "float32 requantization",
    weight_narrow_range=True,
))
ONNXRUNTIME = register_target(Target(
    name="onnxruntime",
    description="ONNX Runtime CPU (MLAS): u8 asymmetric activations, s8 symmetric weights, "
                "float32 requantization",
))
X86 = register_target(Target(
    name="x86",
    description="PyTorch fbgemm/x86: u8 activations with reduce_range, s8 symmetric weights",
    reduce_range=True,
))
register_target(Target(
    name="fbgemm",
    description="alias of x86 (PyTorch's fbgemm engine)",
    reduce_range=True,
))
QNNPACK = register_target(Target(
    name="qnnpack",
    description="PyTorch QNNPACK: u8 asymmetric activations and u8 asymmetric weights, "
                "per tensor",
    weight_qtype=QType.UINT8,
    weight_symmetric=False,
    weight_granularities=(WeightGranularity.PER_TENSOR,),
    requant_scale_bounds=(2.0 ** -32, 1.0),
))
XNNPACK = register_target(Target(
    name="xnnpack",
    description="XNNPACK qs8: s8 asymmetric activations, s8 symmetric weights in [-127, 127] "
                "with zero point 0, min scale 2^-12, requantization scale in [2^-32, 256)",
    activation_qtype=QType.INT8,
    weight_narrow_range=True,
    min_scale=2.0 ** -12,
    requant_scale_bounds=(2.0 ** -32, 256.0),
))
register_target(Target(
    name="gemmlowp",
    description="gemmlowp/TFLite-style: u8 activations, s8 symmetric weights, fixed-point "
                "requantization with a 31-bit multiplier and rounding shift",
    requant_mode=RequantMode.FIXEDPOINT,
    requant_scale_bounds=(2.0 ** -31, 1.0),
))


def get_target(target: str | Target) -> Target:
    if isinstance(target, Target):
        return target
    try:
        return TARGETS[target]
    except KeyError:
        raise QuantizationError(
            f"unknown target '{target}'; choose one of {', '.join(sorted(TARGETS))}") from None
