"""The quantization pipeline: load -> canonicalize -> annotate -> calibrate -> choose ->
insert QDQ -> verify. `quantize_model` is the whole flow in one call."""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from .calib import CalibrationTable
from .config import CalibMethod, Config, QuantMode, QuantPolicy, WeightGranularity
from .errors import DataError, LowpError, ModelError
from .feeds import CachedFeeds, FeedSource, as_feeds
from .inputs import ImagePreprocess, InputSpec, model_inputs
from .ir.graph import Graph, load_model
from .passes.affine_fold import fold_affine
from .passes.annotate import Annotation, annotate
from .passes.bias_correct import CORRECTED_OPS, input_means, with_zero_biases
from .passes.calibrate import calibrate
from .passes.canonicalize import canonicalize, upgrade_opset
from .passes.channel_chains import chain_pairs, per_channel_chains
from .passes.choose import QuantPlan, choose
from .passes.choose import _shape_only as shape_only
from .passes.domain_guard import SPREAD_GUARDED, fragile_positive
from .passes.dynamic import dynamic_nodes, dynamic_quantize
from .passes.equalize import equalize
from .passes.fallback import FallbackResult, evaluation_feeds, fallback, wants_fallback
from .passes.insert_qdq import insert_qdq
from .passes.matmul_bias import fuse_matmul_bias
from .passes.method_choice import FIRST as FIRST_METHOD
from .passes.method_choice import (
    AbsorbStep,
    BiasCorrectionStep,
    ChannelChainsStep,
    FloatCandidate,
    Folds,
    MatMulBiasStep,
    MethodCandidate,
    MethodChoice,
    PerTensorWeightsStep,
    candidate_names,
    choice_measure,
    combine_folds,
    measure_float_layers,
    measure_one,
    measure_scores,
    pick_float,
    rechosen,
    wants_float_layers,
)
from .passes.method_choice import candidate_config as method_config
from .passes.method_choice import folds as method_folds
from .passes.method_choice import measure as measure_methods
from .passes.method_choice import pick as pick_method
from .passes.mode_choice import (
    CANDIDATES,
    PER_TOKEN,
    STATIC,
    ModeChoice,
    candidate_config,
    float_convolutions,
    pick,
    split_feeds,
)
from .passes.mode_choice import measure as measure_modes
from .passes.output_kind import class_maps
from .passes.per_token_step import PerTokenStep, decide, failed, not_applicable, static_db, wanted
from .passes.per_token_step import measure as measure_per_token
from .passes.scored_outputs import ScoredOutputs, scored_outputs
from .passes.sensitivity import Evaluator
from .passes.smooth import smooth
from .passes.verify import verify

ModelLike = str | os.PathLike[str] | onnx.ModelProto | bytes | Any
DataLike = (str | os.PathLike[str] | Mapping[str, np.ndarray] | FeedSource
            | Iterable[Mapping[str, Any]] | Callable[[], Iterable[Mapping[str, Any]]])


@dataclass
class QuantizeResult:
    """The quantized model and what produced it (for reports)."""

    model: onnx.ModelProto
    float_model: onnx.ModelProto
    annotation: Annotation
    table: CalibrationTable
    plan: QuantPlan
    feeds: FeedSource | None         # the calibration data as a stream of feeds
    fallback: FallbackResult | None = None   # what the accuracy budget measured and moved
    mode_choice: ModeChoice | None = None    # what mode AUTO measured and chose
    method_choice: MethodChoice | None = None   # what CalibMethod.MEASURED measured and chose
    scored_outputs: ScoredOutputs | None = None  # the outputs the measured choices score


def quantize_model(model: ModelLike, calibration_data: DataLike | None = None,
                   config: Config | None = None, *, calib_table: str | os.PathLike[str]
                   | CalibrationTable | None = None, progress: bool = False,
                   preprocess: ImagePreprocess | None = None) -> onnx.ModelProto:
    """Quantize a float ONNX model to a verified QDQ ONNX model.

    Parameters
    ----------
    model
        Path, serialized bytes or ModelProto of a float model.
        A `torch.nn.Module` is exported with `torch.onnx.export` first (opset 17, dynamic
        batch); the calibration data then names its inputs (or is one array).
    calibration_data
        Sample-stacked arrays: a mapping input name -> array (first axis = samples), an .npz
        file, a folder of .npy/.npz files, or a folder of images (see `preprocess`), cut
        into batches of `config.batch_size`. Or feeds, one dict {input name: array} per
        call of the model with any shapes the model accepts: a list or any re-iterable
        (a DataLoader-like object yielding dicts of tensors), a zero-argument callable
        returning a fresh iterable, a one-shot iterator (a generator object, cached in a
        temporary folder during the first pass), or a `lowp.feeds.FeedSource`. See
        docs/calibration.md, "Calibration data". Optional in dynamic mode.
    config
        What and how to quantize; `Config()` gives per-channel weights for lowp's engine
        and the range method measured best on held-out calibration data
        (passes.method_choice).
    calib_table
        A saved calibration table (path or object): skips the calibration passes.
    progress
        Show progress bars while calibrating.

    Returns
    -------
    onnx.ModelProto
        A QDQ model that passes onnx.checker, obeys the target and runs in ONNX Runtime.

    Examples
    --------
    >>> import lowp
    >>> from lowp.data import demo_model_path, load_demo_calibration
    >>> q = lowp.quantize_model(demo_model_path(), load_demo_calibration())
    >>> sorted({n.op_type for n in q.graph.node})[:3]
    ['Add', 'Conv', 'DequantizeLinear']
    """
    result = quantize(model, calibration_data, config, calib_table=calib_table,
                      progress=progress, preprocess=preprocess)
    if isinstance(result.feeds, CachedFeeds) and result.feeds is not calibration_data:
        result.feeds.close()              # the one-shot iterator's cache is ours to remove
    return result.model


def quantize(model: ModelLike, calibration_data: DataLike | None,
             config: Config | None = None, *,
             calib_table: str | os.PathLike[str] | CalibrationTable | None = None,
             progress: bool = False, preprocess: ImagePreprocess | None = None,
             accuracy_data: DataLike | None = None) -> QuantizeResult:
    """Like `quantize_model`, returning the intermediate results too.

    `result.feeds` streams the calibration data again (for a summary); when it caches a
    one-shot iterator, its temporary folder lives until `result.feeds.close()` or garbage
    collection. `accuracy_data` (any form `calibration_data` takes) holds the samples an
    accuracy budget is measured on; without it, the first calibration samples are used.
    Mode AUTO measures its candidates on `accuracy_data` too when given (and then
    calibrates on all the calibration data), else on held-out calibration feeds.
    """
    config = config or Config()
    loaded = load_model(_from_torch(model, calibration_data))
    _check_node_names(loaded, config)
    # on the user's model: canonicalization may fold a frozen state input into other
    # constants, and the outputs it names are the ones users read
    outputs = scored_outputs(loaded, config.score_outputs)
    config = dataclasses.replace(config, score_outputs=outputs.scored,
                                 class_maps=class_maps(loaded, config.class_maps,
                                                       outputs.scored))
    float_model = canonicalize(loaded)
    del loaded                            # one copy of the weights for the whole run
    inputs = model_inputs(float_model)
    feeds = (None if calibration_data is None
             else as_feeds(calibration_data, inputs, config.batch_size, preprocess))
    held_out = (None if accuracy_data is None
                else as_feeds(accuracy_data, inputs, config.batch_size, preprocess))
    try:
        result = _quantize(float_model, inputs, feeds, config, calib_table, progress, held_out)
    except BaseException:
        if isinstance(feeds, CachedFeeds) and feeds is not calibration_data:
            feeds.close()                 # a failed run leaves no cache behind
        raise
    result.scored_outputs = outputs
    for choice in (result.method_choice, result.mode_choice):
        if choice is not None:
            choice.scored_outputs = list(outputs.scored)
            choice.outputs_left_out = dict(outputs.left_out)
    return result


class NothingToQuantizeWarning(UserWarning):
    """quantize found no node to quantize (a tree ensemble, say): the model is the float one."""


def nothing_to_quantize(float_model: onnx.ModelProto, config: Config) -> bool:
    """(O231) Whether neither static nor dynamic mode quantizes anything in `float_model`
    under `config`: then quantization returns the float model without a calibration pass
    (which would run the whole model several times for nothing)."""
    ann = annotate(float_model, config)
    return (not ann.nodes and not ann.activations and not ann.weights
            and not dynamic_nodes(float_model, config))


def _quantize(float_model: onnx.ModelProto, inputs: list[InputSpec], feeds: FeedSource | None,
              config: Config, calib_table: str | os.PathLike[str] | CalibrationTable | None,
              progress: bool, held_out: FeedSource | None = None) -> QuantizeResult:
    """The passes after loading, on a canonical float model and its feeds."""
    target = config.resolved_target()
    if config.mode is QuantMode.AUTO:
        return _auto(float_model, inputs, feeds, config, calib_table, progress, held_out)
    if nothing_to_quantize(float_model, config):
        warnings.warn(NothingToQuantizeWarning(
            f"no node of the model is one lowp quantizes under this config (operators: "
            f"{', '.join(sorted({n.op_type for n in float_model.graph.node}))}): the model "
            "is returned in float, as it is, without calibrating"), stacklevel=4)
        return QuantizeResult(float_model, float_model, Annotation(), CalibrationTable(),
                              QuantPlan(), feeds)
    if config.mode is QuantMode.DYNAMIC:
        qdq = dynamic_quantize(float_model, config)
        verify(qdq, target, feeds.first() if feeds is not None else None, float_model=float_model)
        return QuantizeResult(qdq, float_model, Annotation(), CalibrationTable(), QuantPlan(),
                              feeds)
    if feeds is None:
        raise DataError("static quantization needs calibration data (or use "
                        "Config(mode=QuantMode.DYNAMIC))")
    if config.method is CalibMethod.MEASURED:
        if calib_table is None:
            return _measured(float_model, inputs, feeds, config, progress, held_out)
        config = _method_of_table(config, calib_table)
        calib_table = _loaded(calib_table)
    float_model = prepare(float_model, feeds, inputs, config)
    ann = annotate(float_model, config)
    tensors = ann.activations
    if calib_table is None:
        table = calibrate(float_model, tensors, feeds, inputs, config, progress=progress)
        if config.equalize:               # tables of unequalized models stay as they were
            table.record(equalize=True)
    else:
        table = (calib_table if isinstance(calib_table, CalibrationTable)
                 else CalibrationTable.load(calib_table))
        missing = [t for t in tensors if t not in table]
        if missing:
            raise DataError(f"calibration table lacks tensor '{missing[0]}' "
                            f"({len(missing)} missing); was it made for another model?")
        made = table.settings.get("equalize", False)
        if made != config.equalize:
            raise DataError(f"the calibration table was made with equalize={made}, the "
                            f"config has equalize={config.equalize}: equalization changes "
                            "the activations the ranges describe")
    ann, table, config = _fragile_tensors_stay_float(float_model, ann, table, feeds, inputs,
                                                     config, progress)
    means = (input_means(float_model, ann, feeds, inputs, progress=progress)
             if config.bias_correction else None)
    budget = None
    if wants_fallback(config):
        built, budget = fallback(float_model, table, feeds, inputs, config, progress=progress,
                                 held_out=held_out, input_means=means)
        ann, plan, qdq, wide = built.annotation, built.plan, built.model, built.wide
    else:
        plan = choose(float_model, ann, table, config, means)
        wide = any(qp.qtype.bits == 16 for qp in plan.activations.values())
        qdq = insert_qdq(upgrade_opset(float_model, 21) if wide else float_model, ann, plan)
    if config.per_channel_chains:
        qdq, _ = per_channel_chains(qdq, float_model, feeds, target)
    verify(qdq, target, feeds.first(), allow_16bit=wide, float_model=float_model)
    return QuantizeResult(qdq, float_model, ann, table, plan, feeds, budget)


CANDIDATES_DYNAMIC = tuple(name for name in CANDIDATES if name != STATIC)


def _auto(float_model: onnx.ModelProto, inputs: list[InputSpec], feeds: FeedSource | None,
          config: Config, calib_table: str | os.PathLike[str] | CalibrationTable | None,
          progress: bool, held_out: FeedSource | None) -> QuantizeResult:
    """Mode AUTO: build the candidates of passes.mode_choice, measure them, keep one.

    Static without measuring when dynamic mode quantizes no layer, or would leave a
    convolution in float (a CNN: its float convolutions would make the dynamic candidate
    look accurate and run slow; static is what such a model wants).

    The static candidate is calibrated without the held-out feeds; when it is kept, it is
    built again on all the calibration data, so the model equals the one of mode STATIC.
    """
    start = time.perf_counter()
    if feeds is None:
        raise DataError("mode auto measures static and dynamic quantization on calibration "
                        "data: give some (or choose the mode: static or dynamic)")
    static_config = candidate_config(config, STATIC)
    layers = dynamic_nodes(float_model, config)
    convs = float_convolutions(float_model, config)
    if not layers or convs:
        reason = ("no MatMul/Gemm with a constant weight for dynamic mode to quantize"
                  if not layers else f"dynamic mode would leave {len(convs)} convolution"
                  f"{'s' if len(convs) != 1 else ''} in float; not measured")
        result = _quantize(float_model, inputs, feeds, static_config, calib_table, progress,
                           held_out)
        result.mode_choice = ModeChoice(
            STATIC, reason, max_slowdown=config.auto_max_slowdown,
            tolerance_db=config.auto_tolerance_db, dynamic_layers=len(layers),
            seconds=time.perf_counter() - start)
        return result
    if held_out is None:
        fit, evaluation, data, note = split_feeds(feeds)
    else:
        fit, evaluation, data, note = feeds, held_out, "the accuracy data (--eval)", ""
    if calib_table is not None and fit is not feeds:
        note = ("the static candidate uses the given calibration table, which may have seen "
                "the held-out feeds")
    static = _quantize(float_model, inputs, fit, static_config, calib_table, progress)
    models: dict[str, onnx.ModelProto | str] = {STATIC: static.model}
    for name in CANDIDATES_DYNAMIC:
        try:
            models[name] = dynamic_quantize(float_model, candidate_config(config, name))
        except LowpError as e:
            models[name] = str(e).strip().splitlines()[0]
    candidates, samples = measure_modes(float_model, models, evaluation, fit, inputs,
                                        static_config)
    chosen, reason = pick(candidates, config.auto_max_slowdown, config.auto_tolerance_db)
    if chosen == STATIC:
        result = static if fit is feeds else _quantize(
            float_model, inputs, feeds, static_config, calib_table, progress)
    else:
        qdq = models[chosen]
        assert not isinstance(qdq, str)
        verify(qdq, config.resolved_target(), feeds.first(), float_model=float_model)
        result = QuantizeResult(qdq, float_model, Annotation(), CalibrationTable(),
                                QuantPlan(), feeds)
    result.mode_choice = ModeChoice(chosen, reason, candidates, config.auto_max_slowdown,
                                    config.auto_tolerance_db, len(layers), samples, data, note,
                                    seconds=time.perf_counter() - start)
    return result


def _loaded(table: str | os.PathLike[str] | CalibrationTable) -> CalibrationTable:
    return table if isinstance(table, CalibrationTable) else CalibrationTable.load(table)


def _method_of_table(config: Config, table: str | os.PathLike[str] | CalibrationTable
                     ) -> Config:
    """`config` with the range method a given calibration table was made with: its ranges
    are used as they are (no choice to measure), and a tensor calibrated later (by the
    accuracy budget) gets the same method; and with bias correction when the measured
    default kept it there (unless `measure_bias_correction` is off)."""
    settings = _loaded(table).settings
    method = CalibMethod(settings.get("method", CalibMethod.MINMAX.value))
    if method is CalibMethod.MEASURED:
        method = CalibMethod.MINMAX
    corrected = (settings.get("bias_correction") is True and config.measure_bias_correction
                 or config.bias_correction)
    absorbing = (settings.get("absorb_activations") is True
                 and config.measure_absorbed_activations or config.absorb_activations)
    granularity = (WeightGranularity.PER_TENSOR
                   if settings.get("weight_granularity") == WeightGranularity.PER_TENSOR.value
                   and config.measure_weight_granularity else config.weight_granularity)
    fusing = (settings.get("fuse_matmul_bias") is True and config.measure_matmul_bias
              or config.fuse_matmul_bias)
    chains = (settings.get("per_channel_chains") is True and config.measure_per_channel_chains
              or config.per_channel_chains)
    return dataclasses.replace(config, method=method, bias_correction=corrected,
                               absorb_activations=absorbing, weight_granularity=granularity,
                               fuse_matmul_bias=fusing, per_channel_chains=chains)


def _measured(float_model: onnx.ModelProto, inputs: list[InputSpec], feeds: FeedSource,
              config: Config, progress: bool, held_out: FeedSource | None) -> QuantizeResult:
    """CalibMethod.MEASURED: on each fold of passes.method_choice.folds, quantize with each
    range rule of CANDIDATES from one calibration on the fold's fit feeds and measure each
    model's output SQNR on its held-out feeds; then quantize on all the calibration data
    with the rule of the best mean (the model equals the one of
    `method_choice.candidate_config(config, <chosen>)`), leaving in float the layer that
    passes.method_choice's
    `pick_float` names, if any; not with an accuracy budget or metric, whose fallback
    decides then what leaves int8 (and tries 16 bits first)."""
    start = time.perf_counter()
    cut = (method_folds(feeds) if held_out is None
           else Folds([(feeds, held_out)], "the accuracy data (--eval)"))
    minmax = _candidate(config, "minmax")
    measured, firsts = [], []
    for fit, held in cut.pairs:
        models, first = _method_models(float_model, inputs, fit, config, progress)
        measured.append(measure_methods(float_model, models, held, fit, inputs, minmax))
        firsts.append(first)
    scored = combine_folds([m for m, _ in measured])
    chosen, reason = pick_method(scored)
    note, layers = cut.note, []
    try:
        if not wants_fallback(config) and wants_float_layers(scored, chosen):
            layers = _float_layers(firsts, cut, inputs, _candidate(config, chosen),
                                   chosen == FIRST_METHOD, progress)
    except LowpError as e:
        layers = []
        note = "; ".join(x for x in (note, f"layers in float not measured: {_first_line(e)}")
                         if x)
    kept = pick_float(layers)
    absorb = _absorb_step(float_model, inputs, cut, firsts, config, scored, chosen, kept,
                          progress)
    absorbed = absorb is not None and absorb.kept
    static = dataclasses.replace(config, absorb_activations=True) if absorbed else config
    measured_db = absorb.with_db if absorb is not None and absorbed else None
    matmul_bias = _matmul_bias_step(float_model, inputs, cut, firsts, static, scored, chosen,
                                    kept, progress, measured_db)
    fused = matmul_bias is not None and matmul_bias.kept
    if matmul_bias is not None and fused:
        static = dataclasses.replace(static, fuse_matmul_bias=True)
        measured_db = matmul_bias.with_db
    per_tensor = _per_tensor_step(float_model, inputs, cut, firsts, static, scored, chosen,
                                  kept, progress, measured_db)
    tensor_wise = per_tensor is not None and per_tensor.kept
    if per_tensor is not None and tensor_wise:
        static = dataclasses.replace(static, weight_granularity=WeightGranularity.PER_TENSOR)
        measured_db = per_tensor.with_db
    correction = _bias_correction_step(float_model, inputs, cut, firsts, static, scored,
                                       chosen, kept, progress, measured_db)
    corrected = correction is not None and correction.kept
    if correction is not None and corrected:
        static = dataclasses.replace(static, bias_correction=True)
        measured_db = correction.with_db
    chains = _channel_chains_step(float_model, inputs, cut, firsts, static, scored, chosen,
                                  kept, progress, measured_db)
    chained = chains is not None and chains.kept
    if chained:
        static = dataclasses.replace(static, per_channel_chains=True)
    gains = [s.gain_db for s in (absorb, matmul_bias, per_tensor, correction, chains)
             if s is not None and s.kept and s.gain_db is not None]
    step = _per_token_step(float_model, inputs, cut, config, scored, chosen, layers, kept,
                           sum(gains))
    if step is not None and step.kept:
        result = _quantize(float_model, inputs, feeds,
                           candidate_config(config, PER_TOKEN), None, progress)
    else:
        result = _quantize(float_model, inputs, feeds,
                           dataclasses.replace(method_config(static, chosen),
                                               exclude_nodes=(*config.exclude_nodes, *kept),
                                               bias_correction=config.bias_correction
                                               or corrected),
                           None, progress, held_out)
    if corrected and not (step is not None and step.kept):
        result.table.record(bias_correction=True)
    if absorbed and not (step is not None and step.kept):
        result.table.record(absorb_activations=True)
    if fused and not (step is not None and step.kept):
        result.table.record(fuse_matmul_bias=True)
    if tensor_wise and not (step is not None and step.kept):
        result.table.record(weight_granularity=WeightGranularity.PER_TENSOR.value)
    if chained and not (step is not None and step.kept):
        result.table.record(per_channel_chains=True)
    result.method_choice = MethodChoice(chosen, reason, scored, sum(n for _, n in measured),
                                        cut.data, note, seconds=time.perf_counter() - start,
                                        class_maps=list(config.class_maps or ()),
                                        measure=choice_measure(scored),
                                        float_layers=layers, kept_float=kept, per_token=step,
                                        bias_correction=correction, absorb=absorb,
                                        matmul_bias=matmul_bias, per_tensor=per_tensor,
                                        channel_chains=chains)
    return result


def _bias_correction_step(float_model: onnx.ModelProto, inputs: list[InputSpec], cut: Folds,
                          firsts: list[QuantizeResult], config: Config,
                          scored: list[MethodCandidate], chosen: str, kept: list[str],
                          progress: bool, measured_db: tuple[float, ...] | None = None
                          ) -> BiasCorrectionStep | None:
    """The chosen rule's model (`kept` in float) measured again with bias correction on each
    fold of `cut` (passes.method_choice.BiasCorrectionStep): None when not measured (off,
    already on, or no Conv / Gemm with a constant weight). With an accuracy budget it is
    measured without it, as the candidates are, and the budget's variants are then built
    with the correction kept. `measured_db`: the folds' SQNR of the rule with the changes
    the steps before kept (absorbed activations, Gemm biases, per-tensor weights: set in
    `config`), None when they kept none."""
    if (not config.measure_bias_correction or config.bias_correction
            or not _correctable(float_model)):
        return None
    without, with_db, error = _rule_and_variant_folds(
        float_model, inputs, cut, firsts, config, scored, chosen, kept, progress, measured_db,
        lambda rule: dataclasses.replace(rule, bias_correction=True), reuse_tables=True)
    return BiasCorrectionStep(without, with_db, error=error)


def _channel_chains_step(float_model: onnx.ModelProto, inputs: list[InputSpec], cut: Folds,
                         firsts: list[QuantizeResult], config: Config,
                         scored: list[MethodCandidate], chosen: str, kept: list[str],
                         progress: bool, measured_db: tuple[float, ...] | None = None
                         ) -> ChannelChainsStep | None:
    """The kept model (the chosen rule, `kept` in float, the changes the steps before kept:
    set in `config`, their folds' SQNR `measured_db`) measured again with
    `per_channel_chains` on each fold of `cut` (passes.method_choice.ChannelChainsStep,
    docs/operators.md (O282)): None when not measured (`measure_per_channel_chains` off,
    the option already on, a target without per-channel activations, or no chain in the
    fold's model). The per-channel grids leave every per-tensor range as it was, so a
    fold's own calibration is reused where it fits the rule; where the outputs scored
    include class maps, each fold's frame agreement is measured with and without."""
    if (not config.measure_per_channel_chains or config.per_channel_chains
            or config.resolved_target().channel_activation_qtype is None
            or not chain_pairs(firsts[0].model)):
        return None
    start = time.perf_counter()
    rule = dataclasses.replace(_candidate(config, chosen),
                               exclude_nodes=(*config.exclude_nodes, *kept))
    chained = dataclasses.replace(rule, per_channel_chains=True)
    candidate = next(c for c in scored if c.method == chosen)
    changed = bool(kept) or measured_db is not None
    without = measured_db if measured_db is not None else candidate.folds_db
    without_agreement = () if changed else candidate.folds_agreement
    try:
        # the layer left in float can take the chains' Convs out of int8
        probe = (_quantize(float_model, inputs, cut.pairs[0][0], rule, None, progress).model
                 if kept else None)
        if probe is not None and not chain_pairs(probe):
            return None
        if kept and measured_db is None or changed and candidate.folds_agreement:
            before = []
            for i, (fit, held) in enumerate(cut.pairs):
                model = probe if i == 0 and probe is not None else _quantize(
                    float_model, inputs, fit, rule, None, progress).model
                before.append(measure_scores(float_model, model, held, fit, inputs, rule))
            without = tuple(db for db, _ in before)
            without_agreement = tuple(a for _, a in before if a is not None)
        after = [_fold_scores(float_model, inputs, fit, held, chained,
                              None if changed else _fold_table(first, rule, chosen), progress)
                 for first, (fit, held) in zip(firsts, cut.pairs, strict=True)]
    except LowpError as e:
        return ChannelChainsStep(without, error=_first_line(e),
                                 seconds=time.perf_counter() - start)
    with_agreement = tuple(a for _, a in after if a is not None)
    return ChannelChainsStep(without, tuple(db for db, _ in after),
                             without_agreement=without_agreement if with_agreement else (),
                             with_agreement=with_agreement if without_agreement else (),
                             seconds=time.perf_counter() - start)


def _rule_and_variant_folds(float_model: onnx.ModelProto, inputs: list[InputSpec], cut: Folds,
                            firsts: list[QuantizeResult], config: Config,
                            scored: list[MethodCandidate], chosen: str, kept: list[str],
                            progress: bool, measured_db: tuple[float, ...] | None,
                            variant: Callable[[Config], Config], *, reuse_tables: bool
                            ) -> tuple[tuple[float, ...], tuple[float, ...], str]:
    """The folds' SQNR of the chosen rule (`kept` in float; `measured_db` when the steps
    before changed it, measured again when only `kept` did) and of `variant(rule)`, and the
    first line of the error that stopped the measure, "" if none (the variant's folds
    then empty).
    `reuse_tables`: the variant changes no activation range, so a fold's own calibration
    table is reused where it fits the rule."""
    rule = dataclasses.replace(_candidate(config, chosen),
                               exclude_nodes=(*config.exclude_nodes, *kept))
    without = (measured_db if measured_db is not None
               else next(c.folds_db for c in scored if c.method == chosen))
    # the fold tables fit the rule only when no step before changed it
    fresh = not reuse_tables or bool(kept) or measured_db is not None
    try:
        changed = variant(rule)
        if kept and measured_db is None:
            without = tuple(_fold_db(float_model, inputs, fit, held, rule, None, progress)
                            for fit, held in cut.pairs)
        with_db = tuple(
            _fold_db(float_model, inputs, fit, held, changed,
                     None if fresh else _fold_table(first, rule, chosen), progress)
            for first, (fit, held) in zip(firsts, cut.pairs, strict=True))
    except LowpError as e:
        return without, (), _first_line(e)
    return without, with_db, ""


def _matmul_bias_step(float_model: onnx.ModelProto, inputs: list[InputSpec], cut: Folds,
                      firsts: list[QuantizeResult], config: Config,
                      scored: list[MethodCandidate], chosen: str, kept: list[str],
                      progress: bool, measured_db: tuple[float, ...] | None = None
                      ) -> MatMulBiasStep | None:
    """The chosen rule's model (`kept` in float, the absorbed activations where kept: set in
    `config`, their folds' SQNR `measured_db`) measured again with `fuse_matmul_bias` on
    each fold of `cut` (passes.method_choice.MatMulBiasStep): None when not measured
    (`measure_matmul_bias` off, the rewrite already on, or no pair it rewrites). The folds
    are calibrated again: the rewrite removes the MatMul outputs the fold tables hold."""
    if (not config.measure_matmul_bias or config.fuse_matmul_bias
            or fuse_matmul_bias(firsts[0].float_model)[1] == 0):
        return None
    without, with_db, error = _rule_and_variant_folds(
        float_model, inputs, cut, firsts, config, scored, chosen, kept, progress, measured_db,
        lambda rule: dataclasses.replace(rule, fuse_matmul_bias=True), reuse_tables=False)
    return MatMulBiasStep(without, with_db, error=error)


def _per_tensor_step(float_model: onnx.ModelProto, inputs: list[InputSpec], cut: Folds,
                     firsts: list[QuantizeResult], config: Config,
                     scored: list[MethodCandidate], chosen: str, kept: list[str],
                     progress: bool, measured_db: tuple[float, ...] | None = None
                     ) -> PerTensorWeightsStep | None:
    """The chosen rule's model (`kept` in float, the absorbed activations where kept: set in
    `config`, their folds' SQNR `measured_db`) measured again with per-tensor weights on
    each fold of `cut` (passes.method_choice.PerTensorWeightsStep): None when not measured
    (`measure_weight_granularity` off, weights not per channel, or no Conv, Gemm or MatMul
    with a constant weight). The activation ranges do not depend on the weights' scales, so
    a fold's own calibration is reused where it fits the rule, as for bias correction."""
    if (not config.measure_weight_granularity
            or config.weight_granularity is not WeightGranularity.PER_CHANNEL
            or not _weighted(float_model)):
        return None
    without, with_db, error = _rule_and_variant_folds(
        float_model, inputs, cut, firsts, config, scored, chosen, kept, progress, measured_db,
        lambda rule: dataclasses.replace(rule, weight_granularity=WeightGranularity.PER_TENSOR),
        reuse_tables=True)
    return PerTensorWeightsStep(without, with_db, error=error)


def _weighted(model: onnx.ModelProto) -> bool:
    """Whether the model has a Conv, Gemm or MatMul with a constant weight (whose scales
    the weight granularity sets)."""
    constants = {i.name for i in model.graph.initializer}
    return any(n.op_type in (*CORRECTED_OPS, "MatMul") and len(n.input) > 1
               and n.input[1] in constants for n in model.graph.node)


def _absorb_step(float_model: onnx.ModelProto, inputs: list[InputSpec], cut: Folds,
                 firsts: list[QuantizeResult], config: Config,
                 scored: list[MethodCandidate], chosen: str, kept: list[str],
                 progress: bool) -> AbsorbStep | None:
    """The chosen rule's model (`kept` in float) measured again with `absorb_activations`
    on each fold of `cut` (passes.method_choice.AbsorbStep, docs/operators.md (O126)): None
    when not measured (off, already on, or the option changes neither the quantized nodes
    nor the absorbed activations of the annotation).
    The folds are calibrated again with it: the activation's output is a tensor the fold
    tables do not hold."""
    if not config.measure_absorbed_activations or config.absorb_activations:
        return None
    rule = dataclasses.replace(_candidate(config, chosen),
                               exclude_nodes=(*config.exclude_nodes, *kept))
    absorbing = dataclasses.replace(rule, absorb_activations=True)
    prepared = firsts[0].float_model
    with_it, without_it = annotate(prepared, absorbing), annotate(prepared, rule)
    if (with_it.nodes, with_it.fused) == (without_it.nodes, without_it.fused):
        return None
    without = next(c.folds_db for c in scored if c.method == chosen)
    try:
        if kept:
            without = tuple(_fold_db(float_model, inputs, fit, held, rule, None, progress)
                            for fit, held in cut.pairs)
        with_db = tuple(_fold_db(float_model, inputs, fit, held, absorbing, None, progress)
                        for fit, held in cut.pairs)
    except LowpError as e:
        return AbsorbStep(without, error=_first_line(e))
    return AbsorbStep(without, with_db)


def _correctable(model: onnx.ModelProto) -> bool:
    """Whether the model has a Conv or Gemm with a constant weight (bias correction's)."""
    constants = {i.name for i in model.graph.initializer}
    return any(n.op_type in CORRECTED_OPS and len(n.input) > 1 and n.input[1] in constants
               for n in model.graph.node)


def _fold_table(first: QuantizeResult, rule: Config, chosen: str) -> CalibrationTable:
    """The fold's calibration with the ranges of `rule` (its histograms are FIRST's)."""
    return first.table if chosen == FIRST_METHOD else rechosen(first.table, rule)


def _fold_db(float_model: onnx.ModelProto, inputs: list[InputSpec], fit: FeedSource,
             held: FeedSource, rule: Config, table: CalibrationTable | None,
             progress: bool) -> float:
    """The output SQNR on `held` of the model `rule` quantizes on `fit` (from `table`)."""
    model = _quantize(float_model, inputs, fit, rule, table, progress).model
    return measure_one(float_model, model, held, fit, inputs, rule)


def _fold_scores(float_model: onnx.ModelProto, inputs: list[InputSpec], fit: FeedSource,
                 held: FeedSource, rule: Config, table: CalibrationTable | None,
                 progress: bool) -> tuple[float, float | None]:
    """The output SQNR and frame agreement (None: no class map) on `held` of the model
    `rule` quantizes on `fit` (from `table`)."""
    model = _quantize(float_model, inputs, fit, rule, table, progress).model
    return measure_scores(float_model, model, held, fit, inputs, rule)


def _per_token_step(float_model: onnx.ModelProto, inputs: list[InputSpec], cut: Folds,
                    config: Config, scored: list[MethodCandidate], chosen: str,
                    layers: list[FloatCandidate], kept: list[str],
                    corrected_db: float = 0.0) -> PerTokenStep | None:
    """passes.per_token_step on the folds of `cut`: None when the static model (the chosen
    method, the layer left in float and the gains `corrected_db` of the kept absorbed
    activations and bias correction) is at or
    above `config.per_token_below_db` or an accuracy budget decides what leaves int8 (it
    needs static quantization)."""
    chosen_db = next(c.sqnr_db for c in scored if c.method == chosen)
    gain = next((f.gain_db for f in layers if list(f.nodes) == kept), None) if kept else None
    assert chosen_db is not None
    static = static_db(chosen_db + corrected_db, gain)
    if wants_fallback(config) or not wanted(config, static):
        return None
    why = not_applicable(float_model, config)
    if why:
        return PerTokenStep(static, None, False, why)
    try:
        model = dynamic_quantize(float_model, candidate_config(config, PER_TOKEN))
        return decide(static, measure_per_token(float_model, model, cut.pairs, inputs, config))
    except LowpError as e:
        return failed(static, e)


def _float_layers(firsts: list[QuantizeResult], cut: Folds, inputs: list[InputSpec],
                  config: Config, is_first: bool, progress: bool) -> list[FloatCandidate]:
    """passes.method_choice.measure_float_layers on the folds of `cut`, with the range rule
    of `config` and each fold's calibration (`firsts`: its histograms and prepared model,
    whose ranges are the rule's when `is_first`)."""
    evaluators = []
    for first, (fit, held) in zip(firsts, cut.pairs, strict=True):
        table = first.table if is_first else rechosen(first.table, config)
        # (the fold's annotation: it does not depend on the range method)
        means = (input_means(first.float_model, first.annotation, fit, inputs)
                 if config.bias_correction else None)
        evaluators.append(Evaluator(first.float_model, table,
                                    evaluation_feeds(held, config.fallback_samples), fit,
                                    inputs, config, progress=progress, input_means=means))
    return measure_float_layers(evaluators)


def _candidate(config: Config, name: str) -> Config:
    """`config` with the range rule of candidate `name` and no accuracy budget (it applies
    to the kept model only)."""
    return dataclasses.replace(method_config(config, name), accuracy_budget=None,
                               metric=None, metric_tolerance=None)


def _method_models(float_model: onnx.ModelProto, inputs: list[InputSpec], fit: FeedSource,
                   config: Config, progress: bool
                   ) -> tuple[dict[str, onnx.ModelProto | str], QuantizeResult]:
    """A model per candidate range rule (passes.method_choice.candidate_names) from one
    calibration on `fit` (FIRST's, percentile's, which keeps the histograms; the others'
    ranges are chosen again from them), and that calibration's result; a string is the error
    that kept a model from being built. An error of the calibration itself (bad data, a
    tensor zero on all of it) is raised as it is: it is no method's fault."""
    models: dict[str, onnx.ModelProto | str] = {}
    first = _quantize(float_model, inputs, fit, _candidate(config, FIRST_METHOD), None,
                      progress)
    models[FIRST_METHOD] = first.model
    for name in candidate_names(config):
        if name == FIRST_METHOD:
            continue
        rule = _candidate(config, name)
        try:
            models[name] = _quantize(float_model, inputs, fit, rule,
                                     rechosen(first.table, rule), progress).model
        except LowpError as e:
            models[name] = _first_line(e)
    return models, first


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def prepare(float_model: onnx.ModelProto, feeds: FeedSource, inputs: list[InputSpec],
            config: Config) -> onnx.ModelProto:
    """The float-function-preserving rewrites before annotation, in order: per-feature
    affine layers folded, MatMul biases as Gemm biases, cross-layer equalization, zero
    biases for the bias correction, SmoothQuant-style smoothing."""
    if config.fold_affine:
        float_model, _ = fold_affine(float_model)
    if config.fuse_matmul_bias:
        float_model, _ = fuse_matmul_bias(float_model)
    if config.equalize:
        float_model = equalize(float_model)
    if config.bias_correction:
        float_model = with_zero_biases(float_model)
    if config.smooth_alpha is not None:
        float_model = smooth(float_model, feeds, inputs, config.smooth_alpha, config.batch_size)
    return float_model


def _fragile_tensors_stay_float(model: onnx.ModelProto, ann: Annotation,
                                table: CalibrationTable, feeds: FeedSource,
                                inputs: list[InputSpec], config: Config, progress: bool
                                ) -> tuple[Annotation, CalibrationTable, Config]:
    """Leave in float the tensors quantization would break, with their producer and readers.

    * Under policy ALL, every tensor that is zero on all calibration data. ALL quantizes
      cheap operators wherever they are, and some compute values that are zero by the
      model's structure rather than for lack of data (a masked fill, an LSTM cell's forget
      term on a zero initial state): a zero range has no scale, and refusing the model
      (what `choose` does under CONNECTED, where such a tensor points at unrepresentative
      data) would end the run. Constants and tensors that depend on the inputs' shapes only
      stay quantized: zero is exact in every quantized type.
    * Under any policy, a strictly positive tensor whose quantization can round its
      smallest values to the zero that Log, Reciprocal or a divisor then reads
      (passes.domain_guard): the quantized model would compute inf or NaN.
    * Under any policy, a tensor that reaches MeanVarianceNormalization, whose rows
      quantization can make constant: ONNX Runtime's kernel then computes 0 / 0 (O348).

    The nodes producing and reading such a tensor are excluded (with a warning) and the
    model re-annotated; a tensor that the new annotation quantizes for the first time (a
    Conv output whose fused Relu is now excluded) is calibrated on the feeds. Repeats until
    no quantized tensor is either. Returns the config with those nodes excluded too.
    """
    graph = Graph(model)
    op_types = {n.name: n.op_type for n in model.graph.node}
    excluded = list(config.exclude_nodes)
    while True:
        fragile = {t: "is zero on all calibration data" for t in ann.activations
                   if config.policy is QuantPolicy.ALL and table.ranges[t] == (0.0, 0.0)
                   and not graph.is_constant(t) and not shape_only(graph, t)}
        fragile.update({t: "is empty on all calibration data" for t in ann.activations
                        if config.policy is QuantPolicy.ALL and t in table
                        and table[t].is_empty})
        for t, reader in fragile_positive(graph, ann, table):
            what = ("could round to a constant row" if op_types[reader] in SPREAD_GUARDED
                    else "is positive but could round to zero")
            fragile.setdefault(t, f"{what}, which node '{reader}' cannot take")
        if not fragile:
            return ann, table, config
        before = len(excluded)
        for t, why in fragile.items():
            producer = graph.producer.get(t)
            nodes = ([producer] if producer is not None else []) + graph.consumers.get(t, [])
            names = [n.name for n in nodes if n.name not in excluded]
            excluded.extend(names)
            where = f"output of node '{producer.name}'" if producer else "a graph input"
            warnings.warn(f"tensor '{t}' ({where}) {why}: left in float with the nodes "
                          f"{', '.join(names) or '(none)'}", UserWarning, stacklevel=4)
        if len(excluded) == before:       # nothing left to exclude: `choose` names the tensor
            return ann, table, config
        config = dataclasses.replace(config, exclude_nodes=tuple(excluded))
        ann = annotate(model, config)
        missing = [t for t in ann.activations if t not in table]
        if missing:
            extra = calibrate(model, missing, feeds, inputs, config, progress=progress)
            for t in missing:
                table.add(extra[t])
                table.set_range(t, *extra.ranges[t])


def _check_node_names(model: onnx.ModelProto, config: Config) -> None:
    """Node names in the config must exist: a typo must not silently do nothing."""
    names = {n.name for n in model.graph.node}
    for field_name in ("exclude_nodes", "sixteen_bit_nodes"):
        for name in getattr(config, field_name):
            if name not in names:
                raise DataError(f"node '{name}' given in {field_name} is not in the model")


def _from_torch(model: Any, data: Any) -> Any:
    """Export a torch.nn.Module to ONNX bytes; anything else passes through unchanged."""
    if not (hasattr(model, "forward") and hasattr(model, "state_dict")):
        return model
    try:
        import torch
    except ImportError:
        raise ModelError("quantizing a torch module needs PyTorch: pip install "
                         "'lowp[torch]'") from None
    if isinstance(data, Mapping):
        names = list(data)
        examples = tuple(torch.from_numpy(np.asarray(data[n][:1])) for n in names)
    else:
        raise DataError("for a torch module, give calibration data as a mapping from input "
                        "name to array (first axis = samples); export it to ONNX yourself "
                        "to calibrate from feeds")
    was_training = model.training
    model.eval()
    try:
        with tempfile.TemporaryDirectory(prefix="lowp-export-") as tmp:
            path = os.path.join(tmp, "model.onnx")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(model, examples, path, input_names=names, opset_version=17,
                                  dynamic_axes={n: {0: "batch"} for n in names}, dynamo=False)
            with open(path, "rb") as f:
                return f.read()
    except Exception as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
        raise ModelError(f"torch.onnx.export failed for {type(model).__name__}: {msg}") from None
    finally:
        model.train(was_training)
