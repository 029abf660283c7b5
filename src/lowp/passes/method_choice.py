"""Range-method choice (CalibMethod.MEASURED, the default): one model per candidate range
method, each measured for its output SQNR against the float model on calibration data held
out from its ranges, the best kept (docs/accuracy.md, "The measured method choice").

The calibration feeds are cut into `FOLDS` folds (`folds`; sample-stacked data in fewer than
`MIN_FEEDS` feeds is re-cut into smaller feeds first); on each fold one calibration on the
other feeds gives the histograms, each range rule of `CANDIDATES` (a method, and for
percentile the share of values kept) chooses its ranges from them (`rechosen`, as
`quantize_model(..., calib_table=...)` does), and each model is measured on
the held-out feeds with the accuracy budget's evaluator (`measure`: passes.sensitivity's
Evaluator, lowp's engine against ONNX Runtime's float run; the minimum SQNR over the outputs
scored, passes.scored_outputs: the float outputs but recurrent state, or those the user
names; where those include per-frame class-score maps, passes.output_kind, the share of
their frames whose best class is the float model's first, the SQNR between equals).
`combine_folds` averages the folds, `pick` keeps the best; the pipeline then
quantizes on all the calibration data with that rule, so the model equals the one
`candidate_config(config, <chosen>)` gives. Then, with the chosen rule, the layers that add
the most noise are measured left in float (`measure_float_layers`: on the first fold, and on
the others only for a layer that gains DOMINANT_GAIN_DB there; the nodes that share one
weight, `weight_twins`, are one layer) and the one whose float form raises the output SQNR by
at least DOMINANT_GAIN_DB is left in float (`pick_float`; the model's log-magnitude front end,
passes.log_front_end, is measured as one more such layer): the model is then that config's
with `exclude_nodes=(<the layer's nodes>)`. Where `Config.absorb_activations` changes the
annotation, that model is measured on the same folds with it and it is kept when it raises
the mean output SQNR and lowers it on no fold (`AbsorbStep`, docs/operators.md (O126)).
Then that model is measured on the same folds with bias correction (passes.bias_correct),
which is kept when it raises the mean output SQNR and lowers it on no fold
(`BiasCorrectionStep`; the pipeline builds and measures both steps). With
`Config.measure_matmul_bias` and `Config.measure_weight_granularity` (opt-in), the MatMul
biases as Gemm biases (`MatMulBiasStep`) and then per-tensor weights (`PerTensorWeightsStep`)
are measured the same way before bias correction (docs/accuracy.md, "Per-tensor weights and
MatMul biases as steps measured on the folds").
Last, with `Config.measure_per_channel_chains` (opt-in), where the model has pointwise ->
depthwise chains (passes.channel_chains), the kept model is measured with their activations
on per-channel grids (`Config.per_channel_chains`), and they are kept when the mean output
SQNR rises, no fold's falls and, where class maps are scored, no fold's frame agreement
falls (`ChannelChainsStep`, docs/operators.md (O282)).
The record (`MethodChoice`) is printed by the CLI and saved beside the model as
OUTPUT.method.json.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import onnx

from ..calib import CalibrationTable, MinMaxObserver
from ..config import COMPUTE_HEAVY, CalibMethod, Config
from ..errors import LowpError, UnsupportedOpError
from ..feeds import FeedSlice, FeedSource, FeedsWithout, StackedFeeds
from ..inputs import InputSpec
from ..ir.graph import Graph
from ..records import choice_dict, cli_word, write_json
from .annotate import RULES, Annotation
from .choose import QuantPlan
from .fallback import evaluation_feeds
from .log_front_end import log_front_end
from .mode_choice import HELD_OUT_PART, MIN_FEEDS, _samples
from .output_kind import CLASS_MAP, SCORERS
from .per_token_step import FLAGS as PER_TOKEN_FLAGS
from .per_token_step import PerTokenStep
from .scored_outputs import record_lines
from .sensitivity import Built, Evaluator, Precision, relative_noise, sqnr_gain

FORMAT = "lowp.method"
_SQNR_CAP_DB = 200.0     # an exact candidate counts as 200 dB (as mode_choice)
FOLDS = 2                # every calibration feed is held out once, in one of 2 folds
_WIDTH = 17              # the method column of MethodChoice.format



@dataclass(frozen=True)
class RangeRule:
    """A fixed range method, and for percentile the share of values its ranges keep (None:
    `Config.percentile`)."""

    method: CalibMethod
    percentile: float | None = None

    def config(self, config: Config) -> Config:
        """`config` with this rule's range method (and percentile level)."""
        if self.percentile is None:
            return dataclasses.replace(config, method=self.method)
        return dataclasses.replace(config, method=self.method, percentile=self.percentile)

    def flags(self) -> str:
        """The CLI options of this rule."""
        level = "" if self.percentile is None else f" --percentile {self.percentile:g}"
        return f"--method {self.method.value}{level}"


# The range rules measured, by the name the record gives them, in the order that breaks
# ties (minmax first: the method of every lowp release before the choice; the second
# percentile level last, as it came last). "percentile" keeps Config.percentile (99.99%)
# of the values; "percentile_99.999" keeps ONNX Runtime's default share, from the same
# histograms (one model more per fold; docs/accuracy.md, "The measured method choice").
# Left out: AUTO (per tensor), which lost to the best fixed method on 17 of 23 corpus
# models, and entropy, far worst on most models, best only on two where every quantizer is
# below 10 dB, and two thirds of the choice's time on the demo model.
CANDIDATES: dict[str, RangeRule] = {
    "minmax": RangeRule(CalibMethod.MINMAX),
    "percentile": RangeRule(CalibMethod.PERCENTILE),
    "mse": RangeRule(CalibMethod.MSE),
    "percentile_99.999": RangeRule(CalibMethod.PERCENTILE, 99.999),
}
FIRST = "percentile"     # its calibration keeps the histograms the others choose from


def candidate_config(config: Config, name: str) -> Config:
    """`config` with the range rule of the candidate `name` (a key of CANDIDATES)."""
    return CANDIDATES[name].config(config)


def candidate_names(config: Config) -> list[str]:
    """The candidates measured under `config`, in CANDIDATES order: a rule whose config
    equals an earlier one's (a `Config.percentile` of 99.999) is measured once.

    Examples
    --------
    >>> candidate_names(Config())
    ['minmax', 'percentile', 'mse', 'percentile_99.999']
    >>> candidate_names(Config(percentile=99.999))
    ['minmax', 'percentile', 'mse']
    """
    seen: list[Config] = []
    names = []
    for name in CANDIDATES:
        c = candidate_config(config, name)
        if c not in seen:
            seen.append(c)
            names.append(name)
    return names

# The layer left in float (docs/accuracy.md, "A dominant layer left in float"), looked for
# only when the chosen method's held-out output SQNR is below DOMINANT_BELOW_DB (a model
# above it is left to the accuracy budget, which trades speed for accuracy on request; run
# above it on the corpus, the step kept one layer, on a model at 100% top-1 already, at
# 17-20x its latency): of the DOMINANT_CANDIDATES layers (a node, or the nodes sharing its
# weights) that add the most noise (the accuracy budget's prescreen, summed over the folds
# and the layer's nodes), the one whose float form gains the most held-out output SQNR, if
# that mean gain is at least DOMINANT_GAIN_DB (a layer is measured on the second fold only
# if it gains DOMINANT_GAIN_DB on the first): 3 dB is half the output's noise power, so the
# layer's rounding is most of the model's error (oww_melspectrogram's mel MatMul, whose
# rounded output goes into a Log: 0.6 -> 20 dB). Otherwise every layer stays quantized.
DOMINANT_BELOW_DB = 20.0
DOMINANT_CANDIDATES = 3
DOMINANT_GAIN_DB = 3.0
# why the nodes of one float candidate are one layer
SHARED_WEIGHTS = "shared weights"
LOG_FRONT_END = "log front end"


@dataclass(frozen=True)
class FloatCandidate:
    """One layer measured left in float: the gain of the output SQNR over the fully
    quantized model (mean over the folds measured, and per fold: the first only when it
    gains less than DOMINANT_GAIN_DB there); None when it could not be built. `twins` are
    the layer's other nodes, left in float with it: those that apply the same weights
    (`weight_twins`), or the rest of a log-magnitude front end (`why` says which; empty
    for a single node)."""

    node: str
    op_type: str
    gain_db: float | None
    folds_db: tuple[float, ...] = ()
    error: str = ""
    twins: tuple[str, ...] = ()
    why: str = ""

    @property
    def nodes(self) -> tuple[str, ...]:
        """Every node of the layer: `node` and its twins."""
        return (self.node, *self.twins)

    @property
    def label(self) -> str:
        """The layer in the CLI table: its nodes (the first and a count beyond 3), one line.

        Examples
        --------
        >>> FloatCandidate("a", "Conv", 4.0, twins=("b",)).label
        'a + b (Conv, shared weights)'
        >>> FloatCandidate("c0", "Gemm", 1.0, twins=("c1", "c2", "c3")).label
        'c0 + 3 more (Gemm, shared weights)'
        >>> FloatCandidate("stft", "Conv", 9.0, twins=("mel",), why=LOG_FRONT_END).label
        'stft + mel (Conv, log front end)'
        """
        if not self.twins:
            return f"{self.node} ({self.op_type})"
        names = (" + ".join(self.nodes) if len(self.nodes) <= 3
                 else f"{self.node} + {len(self.twins)} more")
        return f"{names} ({self.op_type}, {self.why or SHARED_WEIGHTS})"


@dataclass(frozen=True)
class MethodCandidate:
    """One measured range method (SQNR None when its model could not be built or run)."""

    method: str
    sqnr_db: float | None                   # the mean over the folds
    error: str = ""
    folds_db: tuple[float, ...] = ()        # each fold's output SQNR
    agreement: float | None = None          # class maps: the mean over the folds of the %
    folds_agreement: tuple[float, ...] = ()  # of frames whose best class is the float one's

    @property
    def ok(self) -> bool:
        return self.sqnr_db is not None


@dataclass
class MethodChoice:
    """What the measured method choice measured and kept."""

    chosen: str                             # a key of CANDIDATES
    reason: str
    candidates: list[MethodCandidate] = field(default_factory=list)
    samples: int = 0                        # held-out samples measured
    data: str = ""                          # which feeds the candidates were measured on
    note: str = ""                          # a caveat (nothing held out, ...)
    engine: str = "lowp Session"
    seconds: float = 0.0
    float_layers: list[FloatCandidate] = field(default_factory=list)   # measured in float
    kept_float: list[str] = field(default_factory=list)      # left in float in the model
    scored_outputs: list[str] = field(default_factory=list)  # the outputs the SQNR is over
    class_maps: list[str] = field(default_factory=list)  # scored by frame agreement first
    measure: str = "output SQNR"            # what `pick` compared (passes.output_kind)
    outputs_left_out: dict[str, str] = field(default_factory=dict)   # output -> why
    per_token: PerTokenStep | None = None   # measured when the static SQNR is low
    bias_correction: BiasCorrectionStep | None = None   # the chosen rule with and without
    absorb: AbsorbStep | None = None        # the chosen rule with and without absorbing
    matmul_bias: MatMulBiasStep | None = None   # the chosen rule with and without the Gemms
    per_tensor: PerTensorWeightsStep | None = None   # per-channel against per-tensor weights
    channel_chains: ChannelChainsStep | None = None  # per-tensor against per-channel chains

    def flags(self) -> str:
        """The CLI options that give the chosen model without measuring again."""
        if self.per_token is not None and self.per_token.kept:
            return PER_TOKEN_FLAGS
        flags = CANDIDATES[self.chosen].flags()
        if self.kept_float:
            flags += " --exclude " + " ".join(cli_word(n) for n in self.kept_float)
        if self.absorb is not None and self.absorb.kept:
            flags += " --absorb-activations"
        if self.matmul_bias is not None and self.matmul_bias.kept:
            flags += " --fuse-matmul-bias"
        if self.per_tensor is not None and self.per_tensor.kept:
            flags += " --per-tensor"
        if self.bias_correction is not None and self.bias_correction.kept:
            flags += " --bias-correction"
        if self.channel_chains is not None and self.channel_chains.kept:
            flags += " --per-channel-chains"
        return flags

    def format(self) -> str:
        """Console lines: a table of the candidates, the choice and why."""
        kept = self.per_token is not None and self.per_token.kept
        lines = [f"Activations: dynamic per-token kept (the static model below, "
                 f"{self.per_token.static_db:.2f} dB held out, is not)"] if (
            kept and self.per_token is not None) else []
        maps = any(c.agreement is not None for c in self.candidates)
        lines += [f"Range method: {self.chosen} chosen ({self.reason})",
                 f"  {self.measure} vs float on {self.samples} held-out samples, {self.data}",
                 *record_lines(self.scored_outputs, self.outputs_left_out),
                 *([f"  class maps: {', '.join(self.class_maps)}"] if maps else []),
                 f"  {'method':<{_WIDTH}} {'SQNR (dB)':>10}"
                 + (f" {'frames (%)':>10}" if maps else "") + "  per fold"]
        for c in self.candidates:
            mark = " <" if c.method == self.chosen else ""
            if c.sqnr_db is not None:
                per_fold = " ".join(f"{v:.2f}" for v in c.folds_db)
                if c.agreement is not None:
                    per_fold += " | " + " ".join(f"{v:.2f}" for v in c.folds_agreement)
                frames = f" {c.agreement:>10.2f}" if c.agreement is not None else (
                    f" {'':>10}" if maps else "")
                lines.append(f"  {c.method:<{_WIDTH}} {c.sqnr_db:>10.2f}{frames}  "
                             f"{per_fold}{mark}")
            else:
                lines.append(f"  {c.method:<{_WIDTH}} failed: {c.error}")
        for f in self.float_layers:
            mark = " < left in float" if list(f.nodes) == self.kept_float else ""
            if f.gain_db is not None:
                per_fold = " ".join(f"{v:+.2f}" for v in f.folds_db)
                lines.append(f"  {f.label} in float: {f.gain_db:+.2f} dB ({per_fold}){mark}")
            else:
                lines.append(f"  {f.label} in float: failed: {f.error}")
        if self.float_layers and not self.kept_float:
            lines.append(f"  every layer stays quantized (no float layer gains "
                         f"{DOMINANT_GAIN_DB:g} dB)")
        if self.absorb is not None:
            lines.append(self.absorb.line())
        if self.matmul_bias is not None:
            lines.append(self.matmul_bias.line())
        if self.per_tensor is not None:
            lines.append(self.per_tensor.line())
        if self.bias_correction is not None:
            lines.append(self.bias_correction.line())
        if self.channel_chains is not None:
            lines.append(self.channel_chains.line())
        if self.per_token is not None:
            lines.append(self.per_token.line())
        if self.note:
            lines.append(f"  note: {self.note}")
        lines.append(f"  same model without measuring: {self.flags()} "
                     f"(the choice took {self.seconds:.1f} s)")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        d = choice_dict(self, FORMAT)
        if self.bias_correction is not None:
            d["bias_correction"].update(gain_db=self.bias_correction.gain_db,
                                        kept=self.bias_correction.kept)
        if self.absorb is not None:
            d["absorb"].update(gain_db=self.absorb.gain_db, kept=self.absorb.kept)
        if self.matmul_bias is not None:
            d["matmul_bias"].update(gain_db=self.matmul_bias.gain_db,
                                    kept=self.matmul_bias.kept)
        if self.per_tensor is not None:
            d["per_tensor"].update(gain_db=self.per_tensor.gain_db, kept=self.per_tensor.kept)
        if self.channel_chains is not None:
            d["channel_chains"].update(gain_db=self.channel_chains.gain_db,
                                       kept=self.channel_chains.kept)
        return d

    def save(self, path: str | os.PathLike[str]) -> None:
        write_json(path, self.to_dict())


@dataclass(frozen=True)
class FoldStep:
    """The chosen rule's model (with the layer left in float, if any) measured on the same
    folds without and with one change: each fold's output SQNR; `kept` when the mean with
    it is higher and no fold is lower (a change fitted on calibration data that loses on
    one held-out fold is not trusted: docs/accuracy.md, "Bias correction: no fold may
    lose"). `error` when the changed model could not be built or run (then not kept)."""

    without_db: tuple[float, ...]
    with_db: tuple[float, ...] = ()
    error: str = ""
    label: ClassVar[str] = "change"

    @property
    def gain_db(self) -> float | None:
        """The mean gain over the folds (each fold capped at 200 dB), None if not measured.

        Examples
        --------
        >>> BiasCorrectionStep((20.0, 22.0), (21.0, 22.5)).gain_db
        0.75
        """
        if not self.with_db:
            return None
        def mean(v: tuple[float, ...]) -> float:
            return sum(min(x, _SQNR_CAP_DB) for x in v) / len(v)
        return mean(self.with_db) - mean(self.without_db)

    @property
    def kept(self) -> bool:
        """Whether the change raises the mean output SQNR and lowers it on no fold (each
        fold capped at 200 dB, so a fold exact both ways neither gains nor loses).

        Examples
        --------
        >>> BiasCorrectionStep((20.0, 22.0), (21.0, 22.5)).kept
        True
        >>> BiasCorrectionStep((20.0, 22.0), (25.0, 21.9)).kept
        False
        """
        gain = self.gain_db
        if gain is None or gain <= 0.0:
            return False
        cap = _SQNR_CAP_DB
        return all(min(b, cap) >= min(a, cap)
                   for a, b in zip(self.without_db, self.with_db, strict=True))

    def line(self) -> str:
        """The record's line: the gain per fold and whether it is kept."""
        if self.gain_db is None:
            return f"  {self.label}: failed: {self.error}"
        cap = _SQNR_CAP_DB
        per_fold = " ".join(f"{min(b, cap) - min(a, cap):+.2f}"
                            for a, b in zip(self.without_db, self.with_db, strict=True))
        mark = " < kept" if self.kept else ""
        return f"  {self.label}: {self.gain_db:+.2f} dB ({per_fold}){mark}"


@dataclass(frozen=True)
class BiasCorrectionStep(FoldStep):
    """The change measured: bias correction (passes.bias_correct)."""

    label: ClassVar[str] = "bias correction"


@dataclass(frozen=True)
class AbsorbStep(FoldStep):
    """The change measured: `Config.absorb_activations` (docs/operators.md (O125)), every
    Relu or Clip(0, b) its weighted producer's output quantization absorbs kept quantized,
    also where only float operators read it ((O126))."""

    label: ClassVar[str] = "activations absorbed"


@dataclass(frozen=True)
class MatMulBiasStep(FoldStep):
    """The change measured: `Config.fuse_matmul_bias`, every MatMul -> Add(constant bias)
    pair of a 2-D input as one Gemm (passes.matmul_bias, docs/operators.md (O100); ONNX
    Runtime's float graph optimizer makes the same fusion,
    onnxruntime/core/optimizer/matmul_add_fusion.cc, but its quantizer does not); under
    `Config.measure_matmul_bias` (docs/accuracy.md, "Per-tensor weights and MatMul biases as
    steps measured on the folds")."""

    label: ClassVar[str] = "MatMul bias as a Gemm bias"


@dataclass(frozen=True)
class PerTensorWeightsStep(FoldStep):
    """The change measured: one weight scale per tensor instead of one per output channel
    (`WeightGranularity.PER_TENSOR`, as ONNX Runtime's `quantize_static` quantizes weights
    unless `per_channel=True`: onnxruntime/python/tools/quantization/quantize.py). Under
    `Config.measure_weight_granularity` only (docs/accuracy.md, "Per-tensor weights and
    MatMul biases as steps measured on the folds")."""

    label: ClassVar[str] = "per-tensor weights"


@dataclass(frozen=True)
class ChannelChainsStep(FoldStep):
    """The change measured: `Config.per_channel_chains`, the activations of every pointwise
    Conv -> channel-wise operator -> depthwise Conv chain on one int8 grid per channel
    (passes.channel_chains, docs/operators.md (O240), (O282)). Where the outputs scored
    include class maps, each fold's frame agreement is measured too (`without_agreement`,
    `with_agreement`) and the chains are kept only where no fold's falls: a finer grid
    that raises the map's SQNR can still move the best class of frames the decoding reads
    (docs/accuracy.md, "Per-channel chains measured on the folds")."""

    without_agreement: tuple[float, ...] = ()
    with_agreement: tuple[float, ...] = ()
    seconds: float = 0.0                     # what measuring the step took
    label: ClassVar[str] = "per-channel chains"

    @property
    def kept(self) -> bool:
        """FoldStep's rule, and no fold's frame agreement lower where one is measured.

        Examples
        --------
        >>> ChannelChainsStep((20.0, 22.0), (21.0, 22.5)).kept
        True
        >>> ChannelChainsStep((20.0, 22.0), (21.0, 22.5), "", (95.0, 96.0), (95.5, 95.9)).kept
        False
        """
        if not super().kept:
            return False
        return all(b >= a for a, b in zip(self.without_agreement, self.with_agreement,
                                          strict=True))

    def line(self) -> str:
        """FoldStep's line, with the frame agreement's change per fold where measured."""
        line = super().line()
        if not self.with_agreement:
            return line
        per_fold = " ".join(f"{b - a:+.2f}" for a, b in zip(
            self.without_agreement, self.with_agreement, strict=True))
        head, mark = (line[:-len(" < kept")], " < kept") if line.endswith(" < kept") else (
            line, "")
        return f"{head}, frames {per_fold} points{mark}"


def measure_one(float_model: onnx.ModelProto, model: onnx.ModelProto, evaluation: FeedSource,
                fit: FeedSource, inputs: list[InputSpec], config: Config) -> float:
    """One model's output SQNR as `measure` measures each candidate's (the minimum over the
    outputs scored, on the first `config.fallback_samples` samples of `evaluation`)."""
    return measure_scores(float_model, model, evaluation, fit, inputs, config)[0]


def measure_scores(float_model: onnx.ModelProto, model: onnx.ModelProto,
                   evaluation: FeedSource, fit: FeedSource, inputs: list[InputSpec],
                   config: Config) -> tuple[float, float | None]:
    """One model's output SQNR (as `measure_one`) and its frame agreement on the class maps
    (None where the outputs scored have none)."""
    feeds = evaluation_feeds(evaluation, config.fallback_samples)
    evaluator = Evaluator(float_model, CalibrationTable(), feeds, fit, inputs, config)
    m = evaluator.measure(Built(model, Annotation(), QuantPlan(), config))
    return m.min_sqnr_db, m.agreement


# Frame agreements (in points of %) this close to the highest count as equal, and the SQNR
# chooses among them: a lead of one or two frames of a few hundred per fold is noise
# (docs/accuracy.md, "Class-score maps scored by their decoding": ppocrv6_rec_tiny).
AGREEMENT_TIE_POINTS = 0.5


def pick(candidates: Sequence[MethodCandidate]) -> tuple[str, str]:
    """The chosen method and the reason in words: the highest output SQNR (capped at 200 dB;
    ties go to the earlier candidate: `candidates` come in CANDIDATES order). Where the
    outputs scored include class maps (every candidate measured has an `agreement`), the
    highest SQNR among the candidates within AGREEMENT_TIE_POINTS of the highest frame
    agreement (passes.output_kind). Failed candidates are left out.

    Examples
    --------
    >>> pick([MethodCandidate("minmax", 20.0), MethodCandidate("mse", 23.5)])[0]
    'mse'
    >>> pick([MethodCandidate("minmax", 20.0), MethodCandidate("mse", 20.0)])[0]
    'minmax'
    >>> pick([MethodCandidate("minmax", 20.0, agreement=97.5),
    ...       MethodCandidate("mse", 23.5, agreement=96.0)])
    ('minmax', 'highest frame argmax agreement, 1.50 points above the next')
    >>> pick([MethodCandidate("minmax", 20.0, agreement=97.5),
    ...       MethodCandidate("mse", 23.5, agreement=97.2)])[0]
    'mse'
    """
    ok = [c for c in candidates if c.sqnr_db is not None]
    if not ok:
        raise LowpError("range method choice: no candidate could be measured: "
                        + "; ".join(f"{c.method}: {c.error}" for c in candidates))

    def sqnr(c: MethodCandidate) -> float:
        assert c.sqnr_db is not None
        return min(c.sqnr_db, _SQNR_CAP_DB)

    if all(c.agreement is not None for c in ok):
        return _pick_by_agreement(ok, sqnr)
    best = max(ok, key=sqnr)                       # max keeps the first of equals
    rest = [sqnr(c) for c in ok if c is not best]
    if not rest:
        return best.method, "the only candidate measured"
    return best.method, f"highest output SQNR, {sqnr(best) - max(rest):.2f} dB above the next"


def _pick_by_agreement(ok: Sequence[MethodCandidate],
                       sqnr: Callable[[MethodCandidate], float]) -> tuple[str, str]:
    """`pick` where every candidate has a frame agreement: among the candidates within
    AGREEMENT_TIE_POINTS of the highest, the highest SQNR (the earlier between equals)."""
    def agreement(c: MethodCandidate) -> float:
        assert c.agreement is not None
        return c.agreement

    top = max(agreement(c) for c in ok)
    level = [c for c in ok if agreement(c) >= top - AGREEMENT_TIE_POINTS]
    best = max(level, key=sqnr)                    # max keeps the first of equals
    rest = [c for c in ok if c is not best]
    if not rest:
        return best.method, "the only candidate measured"
    label = SCORERS[CLASS_MAP].label
    if len(level) == 1:
        margin = top - max(agreement(c) for c in rest)
        return best.method, f"highest {label}, {margin:.2f} points above the next"
    others = [sqnr(c) for c in level if c is not best]
    return best.method, (f"{label} within {AGREEMENT_TIE_POINTS:g} points of the highest "
                         f"for {len(level)}; highest output SQNR among those, "
                         f"{sqnr(best) - max(others):.2f} dB above the next")


@dataclass(frozen=True)
class Folds:
    """The (fit, held-out) pairs the candidates are measured on, what they are, a caveat."""

    pairs: list[tuple[FeedSource, FeedSource]]
    data: str
    note: str = ""


def folds(feeds: FeedSource, k: int = FOLDS) -> Folds:
    """`k` folds of the calibration feeds: fold i holds out the i-th of k equal runs of feeds
    and calibrates on the rest, so every feed is held out once.

    Sample-stacked data in fewer than MIN_FEEDS feeds, whose model does not fix the batch
    size, is re-cut first into feeds of 1/HELD_OUT_PART of the samples (rounded down, at
    least 1). With fewer than `k` feeds even so, the one pair is (all, all) and the note
    says that the measurement is not held out.
    """
    n = feeds.num_feeds
    if n is None:
        n = sum(1 for _ in feeds)
    unit = "feeds"
    if n < MIN_FEEDS and isinstance(feeds, StackedFeeds) and not feeds.fixed_batch:
        samples = feeds.num_samples
        if samples is None:
            samples = sum(int(next(iter(f.values())).shape[0]) for f in feeds)
        if samples >= MIN_FEEDS:
            feeds = feeds.rebatched(max(1, samples // HELD_OUT_PART), num_samples=samples)
            n, unit = feeds.num_feeds or 0, f"feeds of {feeds.feed_size} samples"
    if n < k:
        return Folds([(feeds, feeds)], "all calibration feeds", (
            f"only {n} calibration feed{'s' if n != 1 else ''} that cannot be cut in {k}: "
            "the methods are measured on the data their ranges come from, which favours "
            "minmax; give more data for a held-out measurement"))
    bounds = [(i * n // k, (i + 1) * n // k) for i in range(k)]
    return Folds([(FeedsWithout(feeds, lo, hi), FeedSlice(feeds, lo, hi))
                  for lo, hi in bounds],
                 f"{k}-fold on the calibration data ({n} {unit}; each fold calibrated on the "
                 "others)")


def rechosen(histograms: CalibrationTable, config: Config) -> CalibrationTable:
    """A copy of a histogram table with the ranges `config.method` chooses (at
    `config.percentile` for percentile; constants keep their exact range; activations are
    unsigned when the target's are)."""
    table = CalibrationTable.from_dict(histograms.to_dict())
    exact = {n for n, obs in table.items() if isinstance(obs, MinMaxObserver)}
    unsigned = (set() if config.resolved_target().activation_qtype.signed
                else set(table) - exact)
    table.choose_ranges(config.method, num_quantized_bins=config.num_quantized_bins,
                        percentile=config.percentile, unsigned=unsigned, exact=exact)
    return table


def measure(float_model: onnx.ModelProto,
                     models: Mapping[str, onnx.ModelProto | str],
                     evaluation: FeedSource, fit: FeedSource, inputs: list[InputSpec],
                     config: Config) -> tuple[list[MethodCandidate], int]:
    """Each model's output SQNR (the minimum over the outputs scored) against `float_model` on
    the first `config.fallback_samples` samples of `evaluation`, on lowp's engine; `models`
    maps candidate names to models, and a value that is a string is the error that kept
    that model from being built. An operator lowp's engine refuses in every candidate is
    the model's, not a candidate's: that UnsupportedOpError is raised as it is."""
    feeds = evaluation_feeds(evaluation, config.fallback_samples)
    evaluator = Evaluator(float_model, CalibrationTable(), feeds, fit, inputs, config)
    out: list[MethodCandidate] = []
    refusals: list[UnsupportedOpError] = []
    for name, model in models.items():
        if isinstance(model, str):
            out.append(MethodCandidate(name, None, model))
            continue
        try:
            m = evaluator.measure(Built(model, Annotation(), QuantPlan(), config))
            out.append(MethodCandidate(name, m.min_sqnr_db, agreement=m.agreement))
        except LowpError as e:
            refusals += [e] if isinstance(e, UnsupportedOpError) else []
            out.append(MethodCandidate(name, None, str(e).strip().splitlines()[0]))
    if refusals and all(c.sqnr_db is None for c in out):
        raise refusals[0]
    order = {name: i for i, name in enumerate(CANDIDATES)}
    out.sort(key=lambda c: order[c.method])
    return out, sum(_samples(f) for f in feeds)


def choice_measure(candidates: Sequence[MethodCandidate]) -> str:
    """What `pick` compares for `candidates`, in words for the record.

    >>> choice_measure([MethodCandidate("minmax", 20.0, agreement=97.5)])
    'frame argmax agreement on the class maps, then output SQNR'
    """
    ok = [c for c in candidates if c.sqnr_db is not None]
    if ok and all(c.agreement is not None for c in ok):
        return f"{SCORERS[CLASS_MAP].label} on the class maps, then output SQNR"
    return "output SQNR"


def combine_folds(per_fold: Sequence[Sequence[MethodCandidate]]) -> list[MethodCandidate]:
    """One candidate per method: the mean of its SQNR over the folds (each fold's value
    capped at 200 dB), failed when it failed on any fold (with that fold's error).

    Examples
    --------
    >>> a = [MethodCandidate("minmax", 20.0), MethodCandidate("mse", 30.0)]
    >>> b = [MethodCandidate("minmax", 24.0), MethodCandidate("mse", None, "boom")]
    >>> [(c.method, c.sqnr_db, c.error) for c in combine_folds([a, b])]
    [('minmax', 22.0, ''), ('mse', None, 'boom')]
    """
    out = []
    for same in zip(*per_fold, strict=True):
        failed = next((c for c in same if c.sqnr_db is None), None)
        if failed is not None:
            out.append(MethodCandidate(same[0].method, None, failed.error))
            continue
        values = tuple(min(c.sqnr_db, _SQNR_CAP_DB) for c in same if c.sqnr_db is not None)
        shares = tuple(c.agreement for c in same if c.agreement is not None)
        whole = len(shares) == len(same)
        out.append(MethodCandidate(same[0].method, sum(values) / len(values), "", values,
                                   sum(shares) / len(shares) if whole else None,
                                   shares if whole else ()))
    return out


def wants_float_layers(candidates: Sequence[MethodCandidate], chosen: str) -> bool:
    """Whether the layers in float are measured: the chosen method's mean output SQNR over
    the folds is below DOMINANT_BELOW_DB.

    Examples
    --------
    >>> wants_float_layers([MethodCandidate("minmax", 12.0)], "minmax")
    True
    >>> wants_float_layers([MethodCandidate("minmax", 27.0)], "minmax")
    False
    """
    value = next(c.sqnr_db for c in candidates if c.method == chosen)
    return value is not None and value < DOMINANT_BELOW_DB


def weight_twins(model: onnx.ModelProto) -> dict[str, tuple[str, ...]]:
    """The nodes that apply the same weights: each node whose weight input (its op's
    `annotate.RULES` weight input, a constant) is read as the weight of other nodes too,
    mapped to all of them in graph order (itself included). Such nodes are one layer used
    more than once (the two branches of a siamese model, the steps of an unrolled
    recurrent cell): the float step measures, reports and leaves them in float together.

    Examples
    --------
    >>> from onnx import helper, numpy_helper
    >>> import numpy as np
    >>> w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    >>> g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["a"], name="left"),
    ...                        helper.make_node("MatMul", ["y", "w"], ["b"], name="right"),
    ...                        helper.make_node("MatMul", ["a", "b"], ["c"], name="both")],
    ...                       "g", [], [], [w])
    >>> weight_twins(helper.make_model(g))
    {'left': ('left', 'right'), 'right': ('left', 'right')}
    """
    graph = Graph(model)
    readers: dict[str, list[str]] = {}
    for node in model.graph.node:
        rule = RULES.get(node.op_type)
        i = None if rule is None else rule.weight_input
        if i is not None and i < len(node.input) and graph.is_constant(node.input[i]):
            readers.setdefault(node.input[i], []).append(node.name)
    return {n: tuple(names) for names in readers.values() if len(names) > 1 for n in names}


def measure_float_layers(evaluators: Sequence[Evaluator], k: int = DOMINANT_CANDIDATES,
                         threshold_db: float = DOMINANT_GAIN_DB) -> list[FloatCandidate]:
    """The `k` layers that add the most noise, each measured left in float on the first
    fold, and on the other folds only if it gains `threshold_db` there.

    `evaluators` hold one fold each (its calibration table, fit and held-out feeds, the
    chosen rule's config). A layer is one node, or the nodes that share its weights
    (`weight_twins`), built in float together. A layer's noise is the accuracy budget's
    prescreen (`Evaluator.local_errors`, one capture run of the fully quantized model per
    fold) as a relative noise power, summed over the folds and over its nodes; ties keep
    the graph's order. Each
    candidate's gain is its output SQNR (the minimum over the outputs scored) minus the fully
    quantized model's, per fold measured; the candidate's value is their mean. A layer
    below `threshold_db` on the first fold is not measured further: `pick_float` could keep
    it only if another fold gained enough to lift the mean, and a layer that dominates the
    error does so on every fold (docs/accuracy.md, "A dominant layer left in float": this
    halves the step's cost where nothing is kept). The fully quantized model is measured
    on a later fold only when a layer is.

    One more candidate, whatever its noise rank: the model's log-magnitude front end
    (`front_end_layer`: the matrix products a Log reads through linear and magnitude
    arithmetic, with their twins), whose layers round a spectrum that no 8-bit grid holds
    and together dominate the error where no one of them does. It is measured when it
    holds more than one node, is not a ranked layer already, and leaves a matrix product
    quantized outside it (a model that is only a front end, such as a mel spectrogram,
    would otherwise be measured wholly in float).
    """
    bases = [ev.build({}) for ev in evaluators]
    twins = weight_twins(evaluators[0].float_model)
    noise: dict[tuple[str, ...], float] = {}
    for ev, b in zip(evaluators, bases, strict=True):
        for node, db in ev.local_errors(b).items():
            layer = twins.get(node, (node,))
            noise[layer] = noise.get(layer, 0.0) + relative_noise(db)
    ranked = sorted((n for n, v in noise.items() if v > 0.0), key=lambda n: -noise[n])[:k]
    op_of = {n.name: n.op_type for n in evaluators[0].float_model.graph.node}
    layers = [(layer, SHARED_WEIGHTS if len(layer) > 1 else "") for layer in ranked]
    quantized = {node for layer in noise for node in layer}
    front = front_end_layer(evaluators[0].float_model, twins, quantized)
    heavy_rest = {n for n in quantized if op_of.get(n) in COMPUTE_HEAVY} - set(front)
    if len(front) > 1 and front not in ranked and heavy_rest:
        layers.append((front, LOG_FRONT_END))
    base_db: dict[int, float] = {}

    def gain(fold: int, layer: tuple[str, ...]) -> float:
        ev = evaluators[fold]
        if fold not in base_db:
            base_db[fold] = ev.measure(bases[fold]).min_sqnr_db
        built = ev.build({node: Precision.FLOAT for node in layer})
        return sqnr_gain(ev.measure(built).min_sqnr_db, base_db[fold])

    out = []
    for layer, why in layers:
        node, rest = layer[0], layer[1:]
        try:
            gains = [gain(0, layer)]
            if gains[0] >= threshold_db:
                gains += [gain(fold, layer) for fold in range(1, len(evaluators))]
        except LowpError as e:
            out.append(FloatCandidate(node, op_of.get(node, ""), None,
                                      error=str(e).strip().splitlines()[0], twins=rest,
                                      why=why))
            continue
        out.append(FloatCandidate(node, op_of.get(node, ""), sum(gains) / len(gains),
                                  tuple(gains), twins=rest, why=why))
    return out


def front_end_layer(model: onnx.ModelProto, twins: Mapping[str, tuple[str, ...]],
                    quantized: set[str]) -> tuple[str, ...]:
    """The quantized nodes of the model's log-magnitude front end (`log_front_end`) and
    their weight twins, in graph order: one float candidate of the float step.

    Examples
    --------
    >>> from onnx import helper
    >>> nodes = [helper.make_node("Conv", ["x", "w"], ["a"], name="octave0"),
    ...          helper.make_node("Conv", ["a", "w"], ["b"], name="octave1"),
    ...          helper.make_node("Concat", ["a", "b"], ["c"], name="cat", axis=1),
    ...          helper.make_node("Log", ["c"], ["l"], name="log")]
    >>> model = helper.make_model(helper.make_graph(nodes, "g", [], []))
    >>> front_end_layer(model, {}, {"octave0", "octave1"})
    ('octave0', 'octave1')
    >>> front_end_layer(model, {}, {"octave1"})
    ('octave1',)
    """
    front = {n for n in log_front_end(model) if n in quantized}
    front |= {t for n in front for t in twins.get(n, ())}
    return tuple(n.name for n in model.graph.node if n.name in front)


def pick_float(candidates: Sequence[FloatCandidate], threshold_db: float = DOMINANT_GAIN_DB
               ) -> list[str]:
    """The layer to leave in float (its nodes: one, or the twins that share its weights):
    the candidate of the largest mean gain, if it is at least `threshold_db` (ties go to the
    earlier candidate); none otherwise.

    Examples
    --------
    >>> pick_float([FloatCandidate("a", "Conv", 1.0), FloatCandidate("b", "MatMul", 9.5)])
    ['b']
    >>> pick_float([FloatCandidate("a", "Conv", 2.9), FloatCandidate("b", "Conv", None)])
    []
    """
    ok = [c for c in candidates if c.gain_db is not None]
    if not ok:
        return []
    best = max(ok, key=lambda c: c.gain_db or 0.0)     # max keeps the first of equals
    return list(best.nodes) if best.gain_db is not None and best.gain_db >= threshold_db else []
