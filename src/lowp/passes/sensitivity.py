"""Per-layer sensitivity: how much of the model-output error each quantized layer causes.

One layer at a time is kept float in the otherwise fully quantized model (remove-one) and
the output SQNR against the float model is measured again; the gain in dB is the layer's
sensitivity. The quantized models are run on lowp's engine (`Session`, the engine users
run, so that the number is the one they get), the float reference on ONNX Runtime, on the
first feeds of the calibration data (docs/accuracy.md, "Accuracy budget"). Every variant
reuses the calibration table: a variant is a new annotation and QDQ insertion, not a new
calibration. To keep it affordable, candidates are first ranked by the noise each layer
adds (one capture run of the quantized model, report.analysis) and only the top K are
measured. Every op type with several quantized layers is measured as a group too, all of
them at 16 bits: error spread thinly over many layers shows in no single one.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from tqdm import tqdm

from ..calib import CalibrationTable
from ..config import Config
from ..errors import DataError
from ..inputs import InputSpec
from ..ir.graph import Graph
from ..report.analysis import LayerErrorStats, sqnr_of_energies
from ..runtime import Session
from .annotate import RULES, Annotation, OutputQParams, annotate
from .calibrate import calibrate, expose_tensors, float_session
from .canonicalize import upgrade_opset
from .choose import QuantPlan, choose
from .insert_qdq import insert_qdq
from .output_kind import CLASS_MAP, SCORERS
from .verify import Violation, lint

Outputs = dict[str, np.ndarray]
Metric = Callable[[Mapping[str, np.ndarray], Mapping[str, np.ndarray]], float]


class Precision(enum.Enum):
    """What a layer runs in: the config's 8-bit types, 16 bits (DNNLOWP_16), or float."""

    INT8 = "int8"
    INT16 = "int16"
    FLOAT = "float"


Levels = Mapping[str, Precision]          # node name -> precision (absent: INT8)


@dataclass(frozen=True)
class Measurement:
    """Output error of one variant on the evaluation feeds."""

    sqnr_db: dict[str, float]             # per float graph output, over all samples
    metric: float | None = None           # the user's metric, when one is given
    scored: tuple[str, ...] = ()          # the outputs min_sqnr_db is over (empty: all)
    agreement: float | None = None        # % of class-map frames (Config.class_maps) whose
                                          # best class is the float model's; None: no map

    @property
    def min_sqnr_db(self) -> float:
        """The model's SQNR: the minimum over the outputs scored (passes.scored_outputs;
        every float output when `scored` is empty; inf when there are none)."""
        names = [n for n in self.scored if n in self.sqnr_db] or list(self.sqnr_db)
        return min((self.sqnr_db[n] for n in names), default=math.inf)


@dataclass(frozen=True)
class Built:
    """One quantized variant: the QDQ model and what produced it."""

    model: onnx.ModelProto
    annotation: Annotation
    plan: QuantPlan
    config: Config

    @property
    def wide(self) -> bool:
        return any(qp.qtype.bits == 16 for qp in self.plan.activations.values())


@dataclass(frozen=True)
class LayerCost:
    """A candidate for fallback: one quantized layer, or every layer of one op type (a
    group), with the noise it adds (prescreen) and, when measured, the model's SQNR after
    its measured move: a layer kept float (remove-one), a group moved to 16 bits."""

    node: str                             # the layer, or "all <op type>" for a group
    op_type: str
    added_noise_db: float                 # SQNR of the noise it adds (prescreen, lower: worse)
    sqnr_without_db: float | None = None  # model SQNR after the measured move
    gain_db: float | None = None          # sqnr_without_db - the fully quantized SQNR
    members: tuple[str, ...] = ()         # a group's layers (empty for one layer)
    measured_move: str = "float"          # Precision value of the measured move

    @property
    def nodes(self) -> tuple[str, ...]:
        return self.members or (self.node,)

    @property
    def is_group(self) -> bool:
        return bool(self.members)


def saturated_bias(built: Built, node: str) -> bool:
    """Whether the int32 bias of `node` in `built` is clipped: at 16 bits, s_x * s_w can be
    so small that b / (s_x * s_w) leaves int32, which makes the 16-bit layer worse than the
    8-bit one (YOLOv8n: 45 of 63 convolutions)."""
    limit = np.iinfo(np.int32).max
    return any(spec.node == node and np.any(np.abs(built.plan.biases[b][0].astype(np.int64))
                                            >= limit)
               for b, spec in built.annotation.biases.items() if b in built.plan.biases)


def with_levels(config: Config, levels: Levels) -> Config:
    """`config` with the nodes of `levels` excluded (FLOAT) or widened (INT16)."""
    floats = tuple(n for n, p in levels.items() if p is Precision.FLOAT
                   and n not in config.exclude_nodes)
    wide = tuple(n for n, p in levels.items() if p is Precision.INT16
                 and n not in config.sixteen_bit_nodes)
    return dataclasses.replace(config, exclude_nodes=config.exclude_nodes + floats,
                               sixteen_bit_nodes=config.sixteen_bit_nodes + wide)


def initial_precision(node: onnx.NodeProto, config: Config) -> Precision:
    """The precision `config` itself gives a quantized node."""
    if node.name in config.sixteen_bit_nodes or node.op_type in config.sixteen_bit_op_types:
        return Precision.INT16
    return Precision.INT8


def rounding_layers(model: onnx.ModelProto, ann: Annotation) -> list[onnx.NodeProto]:
    """Quantized nodes that round (own output qparams or a quantized weight): the layers
    that can cost accuracy. Data movement with shared qparams (Reshape, MaxPool) is exact."""
    quantized = set(ann.nodes)
    return [n for n in model.graph.node if n.name in quantized
            and RULES[n.op_type].output is OutputQParams.OWN]


class Evaluator:
    """Builds quantized variants of one float model and measures them against it.

    Parameters
    ----------
    float_model
        The canonical float model (after smoothing, if any).
    table
        The calibration table; tensors a variant quantizes for the first time (an input
        of a node whose fused producer went float) are calibrated once and added to it.
    feeds
        The evaluation feeds, run as they are (each one batch).
    calib_feeds, inputs
        The calibration data and the model's inputs, for those extra tensors.
    config
        The base configuration (its exclusions and 16-bit layers stay as they are).
    metric
        Optional `metric(float_outputs, quantized_outputs) -> float`; outputs are
        concatenated over the feeds along the first axis.
    input_means
        Mean input patches for the bias correction (`choose`), or None.
    """

    def __init__(self, float_model: onnx.ModelProto, table: CalibrationTable,
                 feeds: Sequence[Mapping[str, np.ndarray]],
                 calib_feeds: Iterable[Mapping[str, np.ndarray]],
                 inputs: list[InputSpec], config: Config, metric: Metric | None = None,
                 progress: bool = False,
                 input_means: Mapping[str, np.ndarray] | None = None) -> None:
        self.float_model = float_model
        self.input_means = input_means
        self.table = table
        self.feeds = [dict(f) for f in feeds]
        self.config = config
        self.metric = metric
        self._calib_feeds = calib_feeds
        self._inputs = inputs
        self._progress = progress
        self._wide_model: onnx.ModelProto | None = None
        self._graph = Graph(float_model)
        session = float_session(float_model)
        names = [o.name for o in session.get_outputs()]
        self.reference: list[Outputs] = [dict(zip(names, session.run(None, f), strict=True))
                                         for f in self.feeds]
        self.float_outputs = [n for n in names
                              if np.asarray(self.reference[0][n]).dtype.kind == "f"]
        # the outputs Measurement.min_sqnr_db is over (Config.score_outputs: the pipeline
        # resolves it on the user's model, passes.scored_outputs); empty: every float output
        self.scored = tuple(n for n in config.score_outputs if n in self.float_outputs)
        self.reference_metric = (None if metric is None else
                                 _call_metric(metric, self.reference, self.reference))

    # --- variants ---------------------------------------------------------------------------
    def build(self, levels: Levels) -> Built:
        """Annotate, choose and insert QDQ for `levels` on top of the base config."""
        config = with_levels(self.config, levels)
        ann = annotate(self.float_model, config)
        missing = [t for t in ann.activations if t not in self.table]
        if missing:
            extra = calibrate(self.float_model, missing, self._calib_feeds, self._inputs,
                              config, progress=self._progress)
            for t in missing:
                self.table.add(extra[t])
                self.table.set_range(t, *extra.ranges[t])
        plan = choose(self.float_model, ann, self.table, config, self.input_means)
        wide = any(qp.qtype.bits == 16 for qp in plan.activations.values())
        if wide and self._wide_model is None:
            self._wide_model = upgrade_opset(self.float_model, 21)
        base = self._wide_model if wide and self._wide_model is not None else self.float_model
        return Built(insert_qdq(base, ann, plan), ann, plan, config)

    def violations(self, built: Built) -> list[Violation]:
        """The target's rules that `built` breaks (16-bit layers against its 16-bit form)."""
        return lint(built.model, self.config.resolved_target(), allow_16bit=built.wide)

    def run(self, built: Built) -> list[Outputs]:
        """`built` on lowp's engine, feed by feed. A session's first two runs of a feed
        signature record its replay (lowp.runtime.replay), which costs several plain runs
        and pays back only from the third: with two feeds or fewer it is not recorded (the
        outputs are the same either way)."""
        session = Session(built.model, replay=len(self.feeds) > 2)
        return [session.run(f) for f in self.feeds]

    def measure(self, built: Built) -> Measurement:
        """Output SQNR (per float output, energies summed over all feeds) and metric."""
        outs = self.run(built)
        sqnr = {}
        for name in self.float_outputs:
            signal = noise = 0.0
            for ref, got in zip(self.reference, outs, strict=True):
                r = np.asarray(ref[name], np.float64)
                signal += float(np.sum(r ** 2))
                noise += float(np.sum((r - np.asarray(got[name], np.float64)) ** 2))
            sqnr[name] = sqnr_of_energies(signal, noise)
        value = None if self.metric is None else _call_metric(self.metric, self.reference, outs)
        return Measurement(sqnr, value, self.scored, self._agreement(outs))

    def _agreement(self, outs: list[Outputs]) -> float | None:
        """The class-map scorer (passes.output_kind) over `config.class_maps`, feed by feed
        (a map's frame count may change between feeds), in %; None without class maps."""
        names = [n for n in self.config.class_maps or () if n in self.float_outputs]
        if not names:
            return None
        count = SCORERS[CLASS_MAP].count
        same = total = 0
        for ref, got in zip(self.reference, outs, strict=True):
            for name in names:
                s, t = count(ref[name], got[name])
                same, total = same + s, total + t
        return 100.0 * same / total if total else None

    # --- prescreen --------------------------------------------------------------------------
    def local_errors(self, built: Built) -> dict[str, float]:
        """The noise each rounding layer of `built` adds, as an SQNR in dB (lower: worse).

        From one capture run, the end-to-end SQNR of every quantized tensor
        (report.analysis) as a relative noise power n = 10^(-SQNR/10); a layer adds its
        output's n minus the largest n of its activation inputs (noises of independent
        roundings add), reported as -10 log10 of that (inf when it adds none). An input
        made by a float node is charged to the layer that quantizes it (`upstream`).
        """
        qdq = built.model
        inner = [n.output[0] for n in qdq.graph.node if n.op_type == "DequantizeLinear"]
        float_names = {o for n in self.float_model.graph.node for o in n.output}
        fed = {i.name for i in self._inputs}
        exposed = [t for t in inner if t in float_names]
        fs = float_session(expose_tensors(self.float_model, exposed))
        fs_names = [o.name for o in fs.get_outputs()]
        stats = LayerErrorStats(qdq)
        session = Session(qdq, replay=False)       # (capture runs step by step)
        for feed in self.feeds:
            values = dict(zip(fs_names, fs.run(None, feed), strict=True))
            values.update({k: v for k, v in feed.items() if k in fed})
            stats.update(values, session.run(feed, capture=True))
        tensor_db = {e.tensor: e.sqnr_db for e in stats.result()}
        quantized = set(built.annotation.nodes) | set(built.annotation.fused)
        memo: dict[str, float] = {}

        def upstream(t: str, depth: int = 0) -> float:
            """Noise a layer receives on input `t`: the tensor's own where a quantized node
            made it; through float nodes, the noise of what they read (the rounding of `t`
            on entry to the layer is the layer's own doing), 0 at graph inputs."""
            if t not in memo:
                producer = self._graph.producer.get(t)
                if producer is None or depth > 32:
                    memo[t] = 0.0
                elif producer.name in quantized and t in tensor_db:
                    memo[t] = relative_noise(tensor_db[t])
                else:
                    memo[t] = max((upstream(i, depth + 1) for i in producer.input if i),
                                  default=0.0)
            return memo[t]

        out: dict[str, float] = {}
        for node in rounding_layers(self.float_model, built.annotation):
            rule = RULES[node.op_type]
            outs = [t for t in _quantized_output(node, built.annotation, self._graph)
                    if t in tensor_db]
            if not outs:
                continue
            act_in = [node.input[i] for i in (range(len(node.input))
                                               if rule.activation_inputs is None
                                               else rule.activation_inputs)
                      if i < len(node.input) and node.input[i]]
            noise_in = max((upstream(t) for t in act_in), default=0.0)
            noise_out = max(relative_noise(tensor_db[t]) for t in outs)
            out[node.name] = _db_of_noise(noise_out - noise_in)
        return out


def _quantized_output(node: onnx.NodeProto, ann: Annotation, graph: Graph) -> list[str]:
    """The tensor holding a node's rounded output: its own, or its fused activation's."""
    fused = [c.output[0] for c in graph.consumers.get(node.output[0], [])
             if c.name in ann.fused]
    return fused or [node.output[0]]


def _call_metric(metric: Metric, reference: list[Outputs], outs: list[Outputs]) -> float:
    """The metric on outputs concatenated over the feeds."""
    ref, got = _concat(reference), _concat(outs)
    try:
        value = float(metric(ref, got))
    except Exception as e:
        name = getattr(metric, "__name__", repr(metric))
        raise DataError(f"the accuracy metric {name} failed: {type(e).__name__}: "
                        f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}") from e
    if not math.isfinite(value):
        raise DataError(f"the accuracy metric {getattr(metric, '__name__', metric)} returned "
                        f"{value}; it must return a finite number (higher is better)")
    return value


def _concat(outs: list[Outputs]) -> Outputs:
    if len(outs) == 1:
        return dict(outs[0])
    result = {}
    for name in outs[0]:
        parts = [np.asarray(o[name]) for o in outs]
        try:
            result[name] = np.concatenate(parts, axis=0) if parts[0].ndim else np.stack(parts)
        except ValueError:
            raise DataError(f"output '{name}' has different shapes across the evaluation "
                            f"feeds ({', '.join(str(p.shape) for p in parts[:3])}); a "
                            "metric needs outputs that stack along the first axis") from None
    return result


def sensitivities(evaluator: Evaluator, levels: Levels, base: Built, base_sqnr: float,
                  top_k: int, *, progress: bool = False) -> list[LayerCost]:
    """Measured sensitivity of the `top_k` layers of `base` that add the most noise
    (remove-one: that layer float) and of every op type with several layers (all of them
    at 16 bits: error spread thinly over many layers, like the SiLUs of a YOLO, shows in no
    single layer).

    Returns the candidates: the measured ones first, largest gain first, then the
    unmeasured layers by the noise they add.
    """
    local = evaluator.local_errors(base)
    layers = [n for n in rounding_layers(evaluator.float_model, base.annotation)
              if levels.get(n.name) is not Precision.FLOAT]
    layers.sort(key=lambda n: local.get(n.name, math.inf))
    by_op: dict[str, list[str]] = {}
    for n in layers:
        if levels.get(n.name, Precision.INT8) is Precision.INT8:
            by_op.setdefault(n.op_type, []).append(n.name)
    groups = {op: names for op, names in by_op.items() if len(names) > 1}
    measured: list[LayerCost] = []
    rest: list[LayerCost] = []
    bar = tqdm(total=min(top_k, len(layers)) + len(groups), desc="layer sensitivity",
               unit="variant", disable=not progress, leave=False)
    try:
        for i, node in enumerate(layers):
            cost = LayerCost(node.name, node.op_type, local.get(node.name, math.inf))
            if i >= top_k:
                rest.append(cost)
                continue
            m = evaluator.measure(evaluator.build({**levels, node.name: Precision.FLOAT}))
            measured.append(dataclasses.replace(cost, sqnr_without_db=m.min_sqnr_db,
                                                gain_db=sqnr_gain(m.min_sqnr_db, base_sqnr)))
            bar.update(1)
        for op, names in groups.items():
            built = evaluator.build({**levels, **dict.fromkeys(names, Precision.INT16)})
            bar.update(1)
            if evaluator.violations(built):
                continue                   # the target has no 16-bit form for them
            m = evaluator.measure(built)
            noise = min((local.get(n, math.inf) for n in names), default=math.inf)
            measured.append(LayerCost(f"all {op}", op, noise, m.min_sqnr_db,
                                      sqnr_gain(m.min_sqnr_db, base_sqnr), tuple(names),
                                      Precision.INT16.value))
    finally:
        bar.close()
    measured.sort(key=lambda c: -(c.gain_db if c.gain_db is not None else 0.0))
    return measured + rest


def relative_noise(sqnr_db: float) -> float:
    """Noise power over signal power of an SQNR in dB (0 for an exact tensor)."""
    return 0.0 if sqnr_db == math.inf else 10.0 ** (-sqnr_db / 10.0)


def _db_of_noise(noise: float) -> float:
    return math.inf if noise <= 0.0 else -10.0 * math.log10(noise)


def sqnr_gain(after: float, before: float) -> float:
    """after - before in dB, finite: an exact model counts as 200 dB."""
    return min(after, 200.0) - min(before, 200.0)
