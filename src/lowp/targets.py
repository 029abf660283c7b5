"""Backend targets as data: what each deployment engine accepts and how it rounds.

A Target drives qparam choice (passes.annotate / calibrate), the lint in passes.verify, and
the engine arithmetic models in lowp.fidelity (docs/engines.md). The rounding details in
`Arithmetic` were measured against PyTorch 2.13 and ONNX Runtime 1.32 (tests/fidelity).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .errors import QuantizationError
from .fixedpoint import RequantMode
from .qparams import FLOAT32_EPS, QType


class WeightGranularity(enum.Enum):
    PER_TENSOR = "per-tensor"
    PER_CHANNEL = "per-channel"
    PER_GROUP = "per-group"       # one qparams per convolution group, exported per channel


class BiasMode(enum.Enum):
    """How the bias enters the output (docs/engines.md, (E2)-(E5))."""

    INT32 = "int32"
    """int32 stored in the model at scale s_x * s_w, added to the accumulator (A1)."""
    INT32_RECIPROCAL = "int32-reciprocal"
    """Float bias quantized at run time: round_half_even(b * float32(1 / (s_x * s_w)))."""
    FLOAT_PRESCALED = "float-prescaled"
    """Float bias: float32(acc) + float32(b / (s_x * s_w)), then times M (fbgemm)."""
    FLOAT_POSTSCALED = "float-postscaled"
    """Float bias added after scaling: float32(acc) * s_x * s_w + b (oneDNN)."""


class ScaleDivision(enum.Enum):
    """How a value is divided by a scale: a true division or a product with the reciprocal."""

    DIVIDE = "divide"
    RECIPROCAL = "reciprocal"


class Epilogue(enum.Enum):
    """Order of the float operations that turn an accumulator into an output."""

    MULTIPLIER = "multiplier"
    """One folded multiplier M = s_x * s_w / s_y (R1): y = round(acc * M) + zy."""
    SEPARATE_SCALES = "separate-scales"
    """((float32(acc) * s_x) * s_w + b) * float32(1 / s_y) + zy, each step in float32."""


class ZeroPointAdd(enum.Enum):
    """Where the output zero point is added."""

    INTEGER = "integer"
    """After rounding, in integers."""
    FLOAT = "float"
    """In float32 before rounding (a float32 sum can round before the final rounding)."""


class Accumulation(enum.Enum):
    """How the int32 accumulator is formed."""

    INT32 = "int32"
    """Exact products summed in int32 (VNNI vpdpbusd, scalar code)."""
    INT16_PAIRS = "int16-pairs"
    """AVX2 vpmaddubsw: raw u8 * s8 products of adjacent K pairs are summed with int16
    saturation before being widened (CPUs without VNNI)."""
    INT16_PAIRS_DEPTHWISE = "int16-pairs-depthwise"
    """Exact int32, except fbgemm's depthwise fast path, which saturates adjacent kernel-tap
    pairs at 16 bits on every CPU (measured with VNNI; docs/engines.md, (E1))."""


@dataclass(frozen=True)
class Arithmetic:
    """The exact arithmetic of an engine's int8 convolution / matrix product.

    Attributes
    ----------
    bias
        How the bias is added.
    multiplier
        How M's division by s_y is done: float32(float32(s_x * s_w) / s_y) (DIVIDE) or
        float32(float32(s_w * s_x) * float32(1 / s_y)) (RECIPROCAL).
    epilogue
        One folded multiplier or the scales applied one after another.
    zero_point_add
        Output zero point added in integers or in float32.
    accumulation
        Exact int32 or 16-bit saturating pairs.
    quantize
        How QuantizeLinear divides by the scale (ONNX / MLAS divide; PyTorch multiplies by
        the reciprocal).
    """

    bias: BiasMode = BiasMode.INT32
    multiplier: ScaleDivision = ScaleDivision.DIVIDE
    epilogue: Epilogue = Epilogue.MULTIPLIER
    zero_point_add: ZeroPointAdd = ZeroPointAdd.INTEGER
    accumulation: Accumulation = Accumulation.INT32
    quantize: ScaleDivision = ScaleDivision.DIVIDE


EXACT = Arithmetic()
FBGEMM = Arithmetic(bias=BiasMode.FLOAT_PRESCALED, quantize=ScaleDivision.RECIPROCAL,
                    accumulation=Accumulation.INT16_PAIRS_DEPTHWISE)
FBGEMM_AVX2 = Arithmetic(bias=BiasMode.FLOAT_PRESCALED, quantize=ScaleDivision.RECIPROCAL,
                         accumulation=Accumulation.INT16_PAIRS)
ONEDNN = Arithmetic(bias=BiasMode.FLOAT_POSTSCALED, epilogue=Epilogue.SEPARATE_SCALES,
                    zero_point_add=ZeroPointAdd.FLOAT, quantize=ScaleDivision.RECIPROCAL)
QNNPACK_PT = Arithmetic(bias=BiasMode.INT32_RECIPROCAL, multiplier=ScaleDivision.RECIPROCAL,
                        quantize=ScaleDivision.RECIPROCAL)


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
    arithmetic
        Exact rounding details of convolutions and matrix products (lowp.fidelity).
    conv_arithmetic
        Arithmetic of convolutions when it differs from `arithmetic` (PyTorch's x86 engine
        sends convolutions with zero weight zero points and groups <= 100 to oneDNN on CPUs
        with VNNI, everything else to fbgemm).
    op_weight_granularities
        Per op type, weight granularities narrower than `weight_granularities`.
    channel_activation_qtype
        Storage type of the per-channel activation grids of `Config.per_channel_chains`, or
        None for an engine that takes no per-channel activations.
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
    arithmetic: Arithmetic = field(default=EXACT)
    conv_arithmetic: Arithmetic | None = None
    op_weight_granularities: tuple[tuple[str, tuple[WeightGranularity, ...]], ...] = ()
    channel_activation_qtype: QType | None = None

    def granularities_for(self, op_type: str) -> tuple[WeightGranularity, ...]:
        """Weight granularities accepted for `op_type` (Conv, ConvTranspose, MatMul, ...)."""
        for op, allowed in self.op_weight_granularities:
            if op == op_type:
                return allowed
        return self.weight_granularities


TARGETS: dict[str, Target] = {}


def register_target(target: Target) -> Target:
    TARGETS[target.name] = target
    return target


_NO_PER_CHANNEL_TRANSPOSE = (("ConvTranspose", (WeightGranularity.PER_TENSOR,)),)

LOWP = register_target(Target(
    name="lowp",
    description="lowp's own engine: u8 activations, s8 symmetric weights in [-127, 127], "
                "float32 requantization",
    weight_narrow_range=True,
    channel_activation_qtype=QType.INT8,      # docs/operators.md (O240)
))
ONNXRUNTIME = register_target(Target(
    name="onnxruntime",
    description="ONNX Runtime CPU (MLAS): u8 asymmetric activations, s8 symmetric weights, "
                "float32 requantization",
    channel_activation_qtype=QType.INT8,
))
X86 = register_target(Target(
    name="x86",
    description="PyTorch x86 engine: u8 activations with reduce_range, s8 symmetric weights; "
                "linear layers on fbgemm, convolutions on oneDNN (VNNI CPUs) or fbgemm",
    reduce_range=True,
    arithmetic=FBGEMM,
    conv_arithmetic=ONEDNN,
    op_weight_granularities=_NO_PER_CHANNEL_TRANSPOSE,
))
register_target(Target(
    name="fbgemm",
    description="PyTorch fbgemm engine: u8 activations with reduce_range, s8 weights, "
                "float bias divided by s_x * s_w and added to the float accumulator",
    reduce_range=True,
    arithmetic=FBGEMM,
    op_weight_granularities=_NO_PER_CHANNEL_TRANSPOSE,
))
register_target(Target(
    name="fbgemm-avx2",
    description="fbgemm on CPUs without VNNI: like fbgemm, but vpmaddubsw saturates adjacent "
                "u8 * s8 product pairs at 16 bits (reduce_range keeps activations safe)",
    reduce_range=True,
    arithmetic=FBGEMM_AVX2,
    op_weight_granularities=_NO_PER_CHANNEL_TRANSPOSE,
))
register_target(Target(
    name="onednn",
    description="PyTorch oneDNN engine: u8 activations, s8 weights with zero point 0, float "
                "bias added after scaling by s_x and s_w, 1/s_y and zero point in float32",
    arithmetic=ONEDNN,
    op_weight_granularities=_NO_PER_CHANNEL_TRANSPOSE,
))
QNNPACK = register_target(Target(
    name="qnnpack",
    description="QNNPACK: u8 asymmetric activations and u8 asymmetric weights, per tensor; "
                "PyTorch's QNNPACK quantizes the float bias at run time with 1/(s_x * s_w)",
    weight_qtype=QType.UINT8,
    weight_symmetric=False,
    weight_granularities=(WeightGranularity.PER_TENSOR,),
    requant_scale_bounds=(2.0 ** -32, 1.0),
    arithmetic=QNNPACK_PT,
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
    """The registered Target named `target` (or `target` itself)."""
    if isinstance(target, Target):
        return target
    try:
        return TARGETS[target]
    except KeyError:
        raise QuantizationError(
            f"unknown target '{target}'; choose one of {', '.join(sorted(TARGETS))}") from None
