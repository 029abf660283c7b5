"""The one frozen Config of the quantization pipeline."""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import QuantizationError
from .targets import Target, WeightGranularity, get_target


class QuantMode(enum.Enum):
    """STATIC: activation qparams fixed by calibration. DYNAMIC: weights quantized offline,
    activations quantized per batch at run time (DynamicQuantizeLinear), no calibration.
    AUTO: static, dynamic per-token and dynamic per-tensor are built and measured (output
    SQNR on held-out calibration feeds, latency on lowp's engine) and one is kept by the
    rule of passes.mode_choice.pick (docs/accuracy.md, "Mode choice")."""

    STATIC = "static"
    DYNAMIC = "dynamic"
    AUTO = "auto"


DYNAMIC_OPS: tuple[str, ...] = ("MatMul", "Gemm")


class ActivationGranularity(enum.Enum):
    """How dynamic mode quantizes an activation at run time (docs/quantization.md, (D1)-(D4)).

    PER_TENSOR: one scale and zero point per batch (DynamicQuantizeLinear). PER_TOKEN: one
    per row of the matrix product's input (each token of a sequence), the same formula
    applied row by row, written with standard ONNX operators and MatMulInteger.
    """

    PER_TENSOR = "per-tensor"
    PER_TOKEN = "per-token"


class QuantPolicy(enum.Enum):
    """CONNECTED: compute-heavy operators always, cheap ones only where integers flow through
    them from one quantized operator to another. ALL: every operator on the list."""

    CONNECTED = "connected"
    ALL = "all"


COMPUTE_HEAVY: frozenset[str] = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm"})


class CalibMethod(enum.Enum):
    """How an activation's range is chosen from its calibration statistics.

    AUTO chooses per tensor among the other four: the range whose quantization error on the
    tensor's histogram is least (lowp.calib.methods.auto_choice, recorded in the table).
    MEASURED chooses one method for the whole model: a model per fixed method, each measured
    for its output SQNR on calibration samples held out from the ranges, the best kept
    (passes.method_choice; the pipeline's choice, not a range rule of lowp.calib).
    """

    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"
    MSE = "mse"
    AUTO = "auto"
    MEASURED = "measured"


# Operators whose inputs are quantized by default: the compute-heavy ones and those that
# move int8 data around for free.
DEFAULT_QUANTIZE_OPS: tuple[str, ...] = (
    "Conv", "ConvTranspose", "MatMul", "Gemm", "Add", "Mul", "Concat", "MaxPool", "AveragePool",
    "GlobalAveragePool", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "LeakyRelu",
    "Relu", "Clip", "Resize", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze",
    "Slice", "Pad", "Gelu", "Split", "Gather",
)


@dataclass(frozen=True)
class Config:
    """How to quantize a model.

    Attributes
    ----------
    mode
        Static (calibrated activations), dynamic (activations quantized per batch), or
        AUTO: measured choice among static, dynamic per-token and dynamic per-tensor
        (passes.mode_choice); the static candidate takes every other setting of the config.
    method
        How activation ranges are chosen from calibration statistics. The default, MEASURED,
        measures a model per fixed method on held-out calibration data (2 folds) and keeps
        the one with the best output SQNR; when that is below 20 dB, the one layer whose
        float form gains 3 dB or more on the same folds is left in float
        (passes.method_choice); a fixed method skips that search.
    per_token_below_db
        A step of the MEASURED choice: when the static model's held-out output SQNR is below
        this many dB, dynamic quantization with one activation scale per token
        (`--mode dynamic --activations per-token`) is measured on the same folds and kept
        when it is at least 3 dB more accurate (passes.per_token_step); not for a model in
        which dynamic mode would leave a convolution in float, nor with an accuracy budget.
        None: off (static always).
    target
        Backend whose constraints the qparams obey (a name from lowp.targets.TARGETS).
    weight_granularity
        Per-channel (default), per-tensor, or per-group weights (one scale per convolution
        group, Caffe2's group-wise quantization; exported as per-channel with repeated
        parameters, which is exact).
    percentile
        Percentile for CalibMethod.PERCENTILE.
    num_bins, num_quantized_bins
        Histogram bin budget for entropy / percentile / mse (16384: 8192 to 16384 bins
        over [-amax, amax]) and quantization levels (255 as MXNet, TensorRT).
    exclude_nodes, exclude_op_types
        Nodes left in float.
    quantize_op_types
        Operator types whose inputs and outputs may be quantized.
    policy
        Which of those are: CONNECTED (default) keeps cheap operators only between quantized
        neighbours; ALL quantizes every one.
    batch_size
        Samples per calibration forward pass.
    smooth_alpha
        SmoothQuant-style scale migration before calibration (None: off; 0.5 is the usual
        strength): per-channel activation outliers after a normalization move into the
        following matrix products' weights, which are quantized per channel.
    equalize
        Cross-layer equalization before calibration (passes.equalize): the weight ranges of
        Conv -> (Relu) -> Conv pairs are balanced channel by channel, keeping the float
        function. Static mode only.
    bias_correction
        Empirical bias correction (passes.bias_correct): the bias of every quantized Conv
        and Gemm absorbs the mean output error its weight quantization causes on the
        calibration data (one extra float pass). Static mode only. Off by default: it lost
        on some measured models with per-tensor and with per-channel weights
        (docs/accuracy.md, "Bias correction and cross-layer equalization").
    measure_bias_correction
        Under CalibMethod.MEASURED (without an accuracy budget), the chosen range method's
        model is measured again with bias correction on the same held-out folds, and the
        correction is kept when it raises the mean output SQNR and lowers it on no fold
        (passes.method_choice, BiasCorrectionStep; docs/accuracy.md). False: never applied unless
        `bias_correction` is set.
    absorb_activations
        Under policy CONNECTED with asymmetric activations, every Relu or Clip(0, b) that a
        quantized Conv, Gemm or MatMul with a constant weight feeds alone stays quantized and
        is absorbed into that producer's output quantization, whatever reads it (float
        operators only included; docs/operators.md (O125)). False (default): only one that
        writes a graph output ((O112)).
    measure_absorbed_activations
        Under CalibMethod.MEASURED (without an accuracy budget), where `absorb_activations`
        would change the annotation, the chosen rule's model (with its layer in float) is
        measured with it on the same held-out folds, and it is kept when it raises the mean
        output SQNR and lowers it on no fold, before bias correction is measured
        (passes.method_choice, AbsorbStep; (O126), docs/accuracy.md). False: never applied
        unless `absorb_activations` is set.
    measure_matmul_bias
        Under CalibMethod.MEASURED (without an accuracy budget), where `fuse_matmul_bias`
        rewrites a MatMul -> Add pair, the chosen rule's model (its layer in float, its
        absorbed activations) is measured with the rewrite on the same held-out folds
        (calibrated again), and it is kept when it raises the mean output SQNR and lowers it
        on no fold, before per-tensor weights and bias correction are measured
        (passes.method_choice, MatMulBiasStep; docs/accuracy.md, "Per-tensor weights and
        MatMul biases as steps measured on the folds"). False (default: it turned no loss
        into a win there): never applied unless `fuse_matmul_bias` is set.
    measure_weight_granularity
        Under CalibMethod.MEASURED (without an accuracy budget) with per-channel weights, the
        chosen rule's model (its layer in float, its absorbed activations) is measured with
        per-tensor weights on the same held-out folds, and they are kept when they raise the
        mean output SQNR and lower it on no fold, before bias correction is measured
        (passes.method_choice, PerTensorWeightsStep; docs/accuracy.md, "Per-tensor weights and
        MatMul biases as steps measured on the folds"). Off by default: it turned no loss
        into a win there.
    fuse_matmul_bias
        Every MatMul with a constant [K, N] weight whose only reader adds a constant bias of
        N values is rewritten as one Gemm before annotation (passes.matmul_bias), so the
        bias is added in int32 and the sum rounded once, not the product and then the sum.
        Static mode only. Off by default until measured on the whole corpus
        (docs/accuracy.md, "MatMul bias as a Gemm bias", (O100)).
    fold_affine
        Every per-feature Mul -> Add of constants (a batch normalization or a LayerNorm's
        scale and shift as exporters write them) next to a Conv, Gemm or MatMul with a
        constant weight is folded into that layer's weight and bias before annotation
        (passes.affine_fold), so its factors are not stored on one 8-bit grid nor its
        output rounded on one. Static mode only. Off by default (docs/accuracy.md,
        "Per-feature affine layers folded").
    per_channel_chains
        Every pointwise Conv -> channel-wise operator (HardSwish, Relu, Clip, ...) ->
        depthwise Conv chain has its activations (the pointwise Conv's output, the
        operator's) on one int8 grid per channel (QuantizeLinear / DequantizeLinear with
        axis 1, min/max of each channel on the calibration data; passes.channel_chains).
        ONNX Runtime and lowp's engine run those Convs in float between the grids. Static
        mode only. Off by default (docs/accuracy.md, "Per-channel activation grids along
        pointwise -> depthwise chains").
    measure_per_channel_chains
        Under CalibMethod.MEASURED (without an accuracy budget), where the model has such
        chains and the target takes per-channel activations, the kept model (its range
        rule, layer in float, absorbed activations, bias correction) is measured with
        `per_channel_chains` on the same held-out folds, and the chains are kept when they
        raise the mean output SQNR and lower it on no fold (nor, where class maps are
        scored, any fold's frame agreement) (passes.method_choice, ChannelChainsStep;
        docs/operators.md (O282), docs/accuracy.md, "Per-channel chains measured on the
        folds"). Off by default: the folds pick the chains where they win, but a chained
        file, whose chains run in float in both engines, runs several times slower than
        ONNX Runtime's per-tensor int8 file (same section); never applied then unless
        `per_channel_chains` is set.
    activation_granularity
        Dynamic mode only: one activation scale per tensor (default) or per token (row).
    sixteen_bit_nodes, sixteen_bit_op_types
        Nodes quantized with 16-bit activations and weights (DNNLOWP_16): their input and
        output tensors become uint16 (int16 for signed targets), their weights int16. The
        model is exported at opset 21, the first whose QDQ takes 16-bit types.
    accuracy_budget
        Smallest acceptable output SQNR against the float model, in dB (the minimum over the
        outputs scored, `score_outputs`, measured on lowp's engine on `fallback_samples` samples).
        When the quantized model is below it, the layers that cost the most are moved to
        16 bits, then to float, until it is met (passes.fallback).
    metric, metric_tolerance
        A callable `metric(float_outputs, quantized_outputs) -> float` (higher is better;
        each a dict output name -> array, concatenated over the evaluation feeds) and the
        drop from its value on the float outputs that is allowed. Alone or with the budget.
    fallback_candidates
        How many layers (the worst by local error) get a measured sensitivity; only those
        are moved.
    fallback_samples
        Samples the budget is measured on: the first feeds holding that many of the held-out
        data (`pipeline.quantize(..., accuracy_data=...)`, CLI `--eval`), else of the
        calibration data. Mode AUTO measures its candidates on as many samples.
    score_outputs
        The outputs whose SQNR the measured choices score (the range method and its float
        step, mode AUTO, the accuracy budget): the minimum over them. Empty (the default):
        every float output except recurrent state, an output fed back as an input on the
        next call (passes.scored_outputs; all of them if each is state).
    class_maps
        The scored outputs that are per-frame class-score maps ([N, T, C] or [T, N, C], as a
        CTC recogniser's), which the range-method choice scores by the share of frames whose
        best class is the float model's before their SQNR (passes.output_kind). None (the
        default): those found in the graph, a rank-3 output of a Softmax or LogSoftmax over
        its last axis; a tuple names them (raw logits, say); () scores every output by its
        SQNR.
    auto_max_slowdown, auto_tolerance_db
        Mode AUTO keeps the most accurate candidate unless it is more than
        `auto_max_slowdown` times slower on lowp's engine than the fastest candidate whose
        output SQNR is within `auto_tolerance_db` dB of it; that one is kept then.
    """

    mode: QuantMode = QuantMode.STATIC
    method: CalibMethod = CalibMethod.MEASURED
    target: str = "lowp"
    weight_granularity: WeightGranularity = WeightGranularity.PER_CHANNEL
    percentile: float = 99.99
    num_bins: int = 16384
    num_quantized_bins: int = 255
    exclude_nodes: tuple[str, ...] = ()
    exclude_op_types: tuple[str, ...] = ()
    quantize_op_types: tuple[str, ...] = field(default=DEFAULT_QUANTIZE_OPS)
    policy: QuantPolicy = QuantPolicy.CONNECTED
    smooth_alpha: float | None = None
    equalize: bool = False
    bias_correction: bool = False
    measure_bias_correction: bool = True
    absorb_activations: bool = False
    measure_absorbed_activations: bool = True
    measure_matmul_bias: bool = False
    measure_weight_granularity: bool = False
    fuse_matmul_bias: bool = False
    fold_affine: bool = False
    per_channel_chains: bool = False
    measure_per_channel_chains: bool = False
    activation_granularity: ActivationGranularity = ActivationGranularity.PER_TENSOR
    sixteen_bit_nodes: tuple[str, ...] = ()
    sixteen_bit_op_types: tuple[str, ...] = ()
    batch_size: int = 16
    accuracy_budget: float | None = None
    metric: Callable[[Mapping[str, Any], Mapping[str, Any]], float] | None = None
    metric_tolerance: float | None = None
    fallback_candidates: int = 24
    fallback_samples: int = 32
    score_outputs: tuple[str, ...] = ()
    class_maps: tuple[str, ...] | None = None
    auto_max_slowdown: float = 1.5
    auto_tolerance_db: float = 1.0
    per_token_below_db: float | None = 20.0

    def __post_init__(self) -> None:
        self._check_budget()
        self._check_auto()
        bound = self.per_token_below_db
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, (int, float))
                                  or not math.isfinite(bound)):
            raise QuantizationError(f"per_token_below_db={bound!r}: give a finite number of "
                                    "dB, or None (off)")
        for flag in ("measure_bias_correction", "absorb_activations",
                     "measure_absorbed_activations", "measure_matmul_bias",
                     "measure_weight_granularity", "measure_per_channel_chains"):
            if not isinstance(getattr(self, flag), bool):
                raise QuantizationError(f"{flag}={getattr(self, flag)!r}: give True or False")
        for name in ("equalize", "bias_correction", "fuse_matmul_bias", "fold_affine",
                     "per_channel_chains"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise QuantizationError(f"{name}={value!r}: give True or False")
            if value and self.mode is QuantMode.DYNAMIC:
                raise QuantizationError(f"{name}=True needs mode=QuantMode.STATIC (it works "
                                        "on calibrated layers)")
        if (self.activation_granularity is not ActivationGranularity.PER_TENSOR
                and self.mode is not QuantMode.DYNAMIC):
            raise QuantizationError(f"activation_granularity={self.activation_granularity.value} "
                              "needs mode=QuantMode.DYNAMIC (static activations have "
                              "calibrated per-tensor ranges)")
        if isinstance(self.score_outputs, str) or not all(
                isinstance(n, str) for n in self.score_outputs):
            raise QuantizationError(f"score_outputs={self.score_outputs!r}: give a tuple of "
                                    "output names")
        if self.class_maps is not None and (isinstance(self.class_maps, str) or not all(
                isinstance(n, str) for n in self.class_maps)):
            raise QuantizationError(f"class_maps={self.class_maps!r}: give a tuple of output "
                                    "names, or None (found in the graph)")

    def _check_budget(self) -> None:
        if self.accuracy_budget is not None and not (math.isfinite(self.accuracy_budget)
                                                     and self.accuracy_budget > 0):
            raise QuantizationError(f"accuracy_budget={self.accuracy_budget}: give a finite "
                                    "output SQNR in dB above 0")
        if (self.metric is None) != (self.metric_tolerance is None):
            raise QuantizationError("metric and metric_tolerance go together: the metric "
                                    "and the drop from its float value that is allowed")
        if self.metric_tolerance is not None and not (math.isfinite(self.metric_tolerance)
                                                      and self.metric_tolerance >= 0):
            raise QuantizationError(f"metric_tolerance={self.metric_tolerance}: the allowed "
                                    "drop must be a finite number >= 0")
        if self.metric is not None and not callable(self.metric):
            raise QuantizationError("metric must be callable: metric(float_outputs, "
                                    "quantized_outputs) -> float")
        if self.fallback_candidates < 1 or self.fallback_samples < 1:
            raise QuantizationError("fallback_candidates and fallback_samples must be >= 1")
        if ((self.accuracy_budget is not None or self.metric is not None)
                and self.mode is QuantMode.DYNAMIC):
            raise QuantizationError("an accuracy budget needs static quantization (its "
                                    "layers are measured with the calibration table)")

    def _check_auto(self) -> None:
        slowdown, tolerance = self.auto_max_slowdown, self.auto_tolerance_db
        if (isinstance(slowdown, bool) or not isinstance(slowdown, (int, float))
                or not (math.isfinite(slowdown) and slowdown >= 1.0)):
            raise QuantizationError(f"auto_max_slowdown={slowdown!r}: give a finite number "
                                    ">= 1 (how many times slower than the fastest "
                                    "near-equal candidate the most accurate one may be)")
        if (isinstance(tolerance, bool) or not isinstance(tolerance, (int, float))
                or not (math.isfinite(tolerance) and tolerance >= 0.0)):
            raise QuantizationError(f"auto_tolerance_db={tolerance!r}: give a finite number "
                                    "of dB >= 0")
        if self.mode is QuantMode.AUTO and (self.accuracy_budget is not None
                                            or self.metric is not None):
            raise QuantizationError("an accuracy budget needs mode static, not auto: choose "
                                    "the mode first (lowp quantize --mode auto reports it)")

    def resolved_target(self) -> Target:
        return get_target(self.target)
