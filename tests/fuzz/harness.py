"""The differential check: a float graph quantized by lowp and by ONNX Runtime, each QDQ
file run on ONNX Runtime and on lowp's Session, outputs compared in quantized units."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
from hypothesis import assume
from hypothesis import event as _event
from onnx import helper

import lowp
from lowp.formats import to_qdq
from lowp.formats.qoperator import is_qoperator_node
from lowp.report.analysis import compare_outputs, output_scales
from lowp.runtime import Session

from .graphs import FuzzGraph

FLOAT_RTOL = 1e-5        # of the output's range, for float evaluation order


def event(text: str) -> None:
    """hypothesis.event inside a test, nothing outside one (triage scripts)."""
    try:
        _event(text)
    except Exception:  # noqa: BLE001 - InvalidArgument outside a test
        pass


@dataclass(frozen=True)
class EngineCombo:
    """One way of running lowp's Session."""

    backend: str
    replay: bool
    threads: int

    def __str__(self) -> str:
        return f"{self.backend}/replay={self.replay}/threads={self.threads}"


COMBOS = [EngineCombo(b, r, t) for b in ("reference", "native") for r in (True, False)
          for t in (1, 2)]


@dataclass(frozen=True)
class Quantizer:
    """Who writes the QDQ file and with which choices."""

    tool: str                # "lowp" | "ort"
    per_channel: bool
    target: str = "lowp"
    policy: str = "connected"
    signed_activations: bool = False
    qoperator: bool = False  # ORT's QuantFormat.QOperator instead of QDQ
    # ORT's quantizer leaves Conv, Gemm and the average pools in float (op_types_to_quantize
    # without them): the file then runs those float operators between quantized ones
    float_convs: bool = False
    # tool "ort": 16-bit activations (QInt16 / QUInt16 by `signed_activations`), as ONNX
    # Runtime's quantize_static writes them for accuracy-sensitive models
    wide_activations: bool = False
    # tool "ort-dynamic": ONNX Runtime's quantize_dynamic (uint8 activations quantized at
    # run time); weight_type "QInt8" | "QUInt8", the operator types it may quantize (None:
    # all it knows) and extra_options as (key, value) pairs
    reduce_range: bool = False
    weight_type: str = "QInt8"
    op_types: tuple[str, ...] | None = None
    extra: tuple[tuple[str, bool], ...] = ()
    # tool "ort": quantize_static's extra_options that change the file's shape (a
    # DequantizeLinear per consumer with DedicatedQDQPair, a Q/DQ pair on float weights
    # with AddQDQPairToWeight, blocked weights (opset 21) with BlockSize), and the
    # per-channel weight axis of some operator types (QDQOpTypePerChannelSupportToAxis)
    options: tuple[tuple[str, bool | int], ...] = ()
    axes: tuple[tuple[str, int], ...] = ()
    # tools "lowp" and "ort": each consumer of a DequantizeLinear of an activation given a
    # DequantizeLinear of its own (a QuantizeLinear read by several, as hand-written and
    # other tools' QDQ files have it; dequantize_per_consumer)
    dq_per_consumer: bool = False

    def __str__(self) -> str:
        if self.tool == "ort-dynamic":
            ops = "all" if self.op_types is None else "+".join(self.op_types)
            extra = "".join(f",{k}={v}" for k, v in self.extra)
            return (f"ort-dynamic[{'pc' if self.per_channel else 'pt'},"
                    f"{'rr,' if self.reduce_range else ''}{self.weight_type},{ops}{extra}]")
        split = ",dq-per-consumer" if self.dq_per_consumer else ""
        if self.tool == "lowp":
            return (f"lowp[{self.target},{'pc' if self.per_channel else 'pt'},{self.policy}"
                    f"{split}]")
        sign = ("s" if self.signed_activations else "u") + (
            "16" if self.wide_activations else "8")
        sign += "" if self.weight_type == "QInt8" else f",w={self.weight_type}"
        fmt = ",qoperator" if self.qoperator else ""
        fmt += ",float-convs" if self.float_convs else ""
        fmt += "".join(f",{k}={v}" for k, v in self.options)
        fmt += "".join(f",{op}:axis={a}" for op, a in self.axes) + split
        return f"ort[{'pc' if self.per_channel else 'pt'},{sign}{fmt}]"


def ort_session(model: onnx.ModelProto, optimize: bool = True, threads: int = 1
                ) -> ort.InferenceSession:
    """ONNX Runtime's session of `model` with `threads` intra-op threads (lowp's Session of
    as many threads reproduces that run: some kernels split their work, and their float
    order, by the thread count)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def run_ort(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], optimize: bool = True,
            threads: int = 1) -> dict[str, np.ndarray]:
    if any(v.size == 0 for v in feeds.values()):
        # ONNX Runtime 1.32 at 2 intra-op threads ends the process (SIGSEGV) on some QDQ
        # token graphs fed an empty batch (evals/corpus/repro/README.md, "Not lowp bugs");
        # an empty output does not depend on the thread count
        threads = 1
    s = ort_session(model, optimize, threads)
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, dict(feeds)), strict=True))


def check_float_graph(g: FuzzGraph) -> None:
    """The drawn graph is valid ONNX and ONNX Runtime runs it (else the draw is discarded)."""
    onnx.checker.check_model(g.model, full_check=True)
    try:
        for batch in g.batches:
            run_ort(g.model, g.feeds(batch, g.seed))
    except Exception as exc:  # noqa: BLE001 - a graph ORT refuses is not lowp's failure
        event(f"ORT refused the float graph: {type(exc).__name__}")
        assume(False)


def calibration(g: FuzzGraph, batches: int = 3) -> list[dict[str, np.ndarray]]:
    """A few random feeds, each of the graph's first batch size."""
    return [g.feeds(g.batches[0], g.seed + 1000 + i) for i in range(batches)]


def quantize_lowp(g: FuzzGraph, calib: list[dict[str, np.ndarray]], q: Quantizer
                  ) -> onnx.ModelProto:
    data = {g.input_name: np.concatenate([f[g.input_name] for f in calib])}
    cfg = lowp.Config(
        target=q.target, batch_size=g.batches[0], policy=lowp.QuantPolicy(q.policy),
        weight_granularity=(lowp.WeightGranularity.PER_CHANNEL if q.per_channel
                            else lowp.WeightGranularity.PER_TENSOR))
    try:
        return lowp.quantize_model(g.model, data, cfg)
    except lowp.QuantizationError as exc:
        # documented refusal (README: "a tensor whose observed range is zero"): a dead
        # ReLU on a few random feeds; counted, reported, not a crash of the engine
        if "is zero on all calibration data" not in str(exc):
            raise
        event("lowp refused: a tensor is zero on all calibration data")
        assume(False)
        raise
    except lowp.DataError as exc:
        # documented refusal (README: calibration data with NaN/Inf): a tensor that is NaN
        # on the calibration feeds (a MeanVarianceNormalization over a 1 x 1 plane, 0 / 0)
        # has no range to quantize
        if "calibration data contains" not in str(exc):
            raise
        event("lowp refused: a tensor has NaN or Inf on the calibration data")
        assume(False)
        raise


def quantize_ort(g: FuzzGraph, calib: list[dict[str, np.ndarray]], q: Quantizer
                 ) -> onnx.ModelProto:
    """ONNX Runtime's quantize_static (QDQ, or QOperator with `q.qoperator`); a graph it
    refuses is discarded."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it: Iterator[dict[str, np.ndarray]] = iter(calib)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    kept_float = {"Conv", "Gemm", "AveragePool", "GlobalAveragePool"}
    options: dict[str, object] = dict(q.options)
    if q.axes:
        options["QDQOpTypePerChannelSupportToAxis"] = dict(q.axes)
    quantized = sorted({n.op_type for n in g.model.graph.node} - kept_float) \
        if q.float_convs else None
    if options.get("BlockSize"):
        # ORT blocks every constant input it quantizes and refuses a model with one of
        # another rank than 2 (a Conv weight, a LayerNormalization scale, an Add's bias):
        # only the MatMul and Gemm are quantized there (a graph without one is not blocked)
        blocked = sorted({n.op_type for n in g.model.graph.node} & {"MatMul", "Gemm"})
        if blocked:
            quantized = blocked
        else:
            del options["BlockSize"]
    with tempfile.TemporaryDirectory() as d:
        src, out = os.path.join(d, "f.onnx"), os.path.join(d, "q.onnx")
        onnx.save(g.model, src)
        try:
            quantize_static(src, out, Reader(), op_types_to_quantize=quantized,
                            quant_format=QuantFormat.QOperator if q.qoperator
                            else QuantFormat.QDQ,
                            per_channel=q.per_channel,
                            activation_type=QuantType[
                                ("QInt" if q.signed_activations else "QUInt")
                                + ("16" if q.wide_activations else "8")],
                            weight_type=QuantType[q.weight_type],
                            extra_options=options)
            model = onnx.load(out)
            for batch in g.batches:
                run_ort(model, g.feeds(batch, g.seed))
        except Exception as exc:  # noqa: BLE001 - ORT's own tool failing is not lowp's
            event(f"ORT quantize_static refused: {type(exc).__name__}")
            assume(False)
    if not _finite_scales(model):
        # a tensor with infinities or NaN (IsInf / IsNaN blocks) calibrated to an infinite
        # or NaN scale: lowp refuses such a file by design, naming the QuantizeLinear
        # (lower._check_qdq_scale); ONNX Runtime runs it, every value lost
        event("ORT quantize_static wrote a scale that is not finite")
        assume(False)
    if q.qoperator:
        for op in sorted({n.op_type for n in model.graph.node if is_qoperator_node(n)}):
            event(f"QOperator file with {op}")
    return model


def dequantize_per_consumer(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of the QDQ file where every DequantizeLinear of a QuantizeLinear's output read
    by several nodes is one DequantizeLinear per reader (the QuantizeLinear then read by
    several): the same values, another shape of file."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    producer = {o: n for n in out.graph.node for o in n.output}
    graph_outputs = {o.name for o in out.graph.output}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for n in out.graph.node:
        for i in dict.fromkeys(n.input):
            readers.setdefault(i, []).append(n)
    nodes: list[onnx.NodeProto] = []
    for n in out.graph.node:
        nodes.append(n)
        src = producer.get(n.input[0]) if n.input else None
        if (n.op_type != "DequantizeLinear" or src is None or src.op_type != "QuantizeLinear"
                or n.output[0] in graph_outputs):
            continue
        for k, reader in enumerate(readers.get(n.output[0], [])[1:], start=1):
            name = f"{n.output[0]}_reader{k}"
            copy = onnx.NodeProto()
            copy.CopyFrom(n)
            copy.name, copy.output[0] = f"{n.name}_reader{k}", name
            nodes.append(copy)
            for j, i in enumerate(reader.input):
                if i == n.output[0]:
                    reader.input[j] = name
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return out


def _finite_scales(model: onnx.ModelProto) -> bool:
    """Whether every float initializer a QuantizeLinear or DequantizeLinear reads as its
    scale is finite."""
    inits = {t.name: t for t in model.graph.initializer}
    scales = {n.input[1] for n in model.graph.node
              if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 1}
    return all(np.isfinite(onnx.numpy_helper.to_array(inits[s]).astype(np.float64)).all()
               for s in scales if s in inits)


def quantize_ort_dynamic(g: FuzzGraph, q: Quantizer) -> onnx.ModelProto:
    """ONNX Runtime's quantize_dynamic (no calibration: activations are quantized at run
    time by DynamicQuantizeLinear or inside DynamicQuantizeMatMul / DynamicQuantizeLSTM);
    a graph it refuses, or a file ONNX Runtime then refuses to run, is discarded."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as d:
        src, out = os.path.join(d, "f.onnx"), os.path.join(d, "q.onnx")
        onnx.save(g.model, src)
        try:
            quantize_dynamic(src, out, op_types_to_quantize=list(q.op_types or []) or None,
                             per_channel=q.per_channel, reduce_range=q.reduce_range,
                             weight_type=QuantType[q.weight_type],
                             extra_options=dict(q.extra))
            model = onnx.load(out)
        except Exception as exc:  # noqa: BLE001 - ORT's own tool failing is not lowp's
            event(f"ORT quantize_dynamic refused: {type(exc).__name__}")
            assume(False)
        try:
            for batch in g.batches:
                run_ort(model, g.feeds(batch, g.seed))
        except Exception as exc:  # noqa: BLE001 - nor ORT refusing its own file
            event(f"ORT refused its quantize_dynamic file: {type(exc).__name__}")
            assume(False)
    ops = sorted({n.op_type for n in model.graph.node} - {n.op_type for n in g.model.graph.node})
    for op in ops:
        event(f"quantize_dynamic file with {op}")
    if not ops:
        event("quantize_dynamic left the graph in float")
    return model


def _upstream_scale(model: onnx.ModelProto, name: str) -> float:
    """Largest activation scale of a DequantizeLinear that the output depends on (0 when
    none): the size of one quantization step before the float tail of the graph."""
    producer = {o: n for n in model.graph.node for o in n.output}
    inits = {t.name: t for t in model.graph.initializer}
    seen, stack, best = set(), [name], 0.0
    while stack:
        t = stack.pop()
        node = producer.get(t)
        if node is None or t in seen:
            continue
        seen.add(t)
        if node.op_type == "DequantizeLinear" and node.input[0] not in inits:
            s = inits.get(node.input[1])
            if s is not None:
                best = max(best, float(np.max(onnx.numpy_helper.to_array(s))))
            continue
        stack.extend(node.input)
    return best


@dataclass(frozen=True)
class Mismatch:
    """One output that differs beyond tolerance."""

    where: str
    output: str
    detail: str


# Operators whose integer result lowp computes exactly as ONNX Runtime's fused kernels (or
# which only move values): a difference may never start at one of them. Everywhere else
# (docs/operators.md: QLinearAdd/Mul, lookup-table activations, AveragePool, QLinearSoftmax,
# float operators between DequantizeLinear and QuantizeLinear evaluated in another order)
# ORT's float32 evaluation order may differ, by at most one quantization step.
STRICT_OPS = frozenset({
    "Conv", "MatMul", "Gemm", "MaxPool", "GlobalMaxPool", "Concat", "Relu", "Clip",
    "Reshape", "Transpose", "Flatten", "Gather", "Slice", "Squeeze", "Unsqueeze", "Split",
    "Identity", "Pad"})

# ONNX Runtime's int8-output convolution kernels add the output zero point in float32
# before rounding (y = rint(float32(acc * M) + zy)); the QDQ file (and lowp) rounds first
# (y = rint(acc * M) + zy). They differ by one step where acc * M is within a float32 ulp
# of a half-way point (measured: acc * M = 10.500002, zy = -128: ORT -118, lowp -117),
# which is rare.
SIGNED_TIE_OPS = frozenset({"Conv", "MatMul", "Gemm"})
SIGNED_TIE_SHARE = 0.01

# uint8 groups of these run in ONNX Runtime's fused kernels, whose arithmetic lowp computes
# exactly (docs/operators.md (O8a), (O10a), (O11a), bilinear Resize); int8 groups ONNX
# Runtime fuses in some graphs and leaves unfused in others, so there one step may differ.
# A QOperator file runs both types in those kernels (QLinearAdd, QLinearMul,
# QLinearAveragePool, Resize on integers), and so does lowp: strict for both.
UINT8_STRICT_OPS = frozenset({"Add", "Mul", "AveragePool", "Resize"})


def compare(where: str, model: onnx.ModelProto, ours: Mapping[str, np.ndarray],
            theirs: Mapping[str, np.ndarray], exact: bool = False) -> list[Mismatch]:
    """Outputs leaving a DequantizeLinear must be identical; float outputs within
    FLOAT_RTOL of their range plus one upstream quantization step (identical with
    `exact`)."""
    bad: list[Mismatch] = []
    scales = output_scales(model)
    for name, ref in theirs.items():
        got = ours.get(name)
        if got is None or got.shape != ref.shape or got.dtype != ref.dtype:
            found = None if got is None else (got.shape, got.dtype)
            bad.append(Mismatch(where, name, f"shape/dtype {found} vs {ref.shape, ref.dtype}"))
            continue
        if ref.size == 0:
            continue
        if exact or ref.dtype.kind in "biu":          # (masks, indices: exact)
            same = (got == ref) | (np.isnan(got) & np.isnan(ref)) \
                if np.issubdtype(ref.dtype, np.floating) else got == ref
            if not same.all():
                d = np.abs(got.astype(np.float64) - ref.astype(np.float64))
                bad.append(Mismatch(where, name, f"{np.count_nonzero(~same)}/{ref.size} "
                                    f"differ, max |d| {np.nanmax(d):g}"))
            continue
        agreement = compare_outputs({name: got}, {name: ref}, scales)[0]
        if name in scales:
            if agreement.differ:
                bad.append(Mismatch(where, name, f"max {agreement.max_units:.4g} steps, "
                                    f"{agreement.differ}/{agreement.elements} differ"))
            continue
        # NaN and infinities where either has one: the same in both (the tolerance below
        # measures finite values only; a NaN difference would go unseen)
        odd = ~np.isfinite(ref) | ~np.isfinite(got)
        if odd.any() and not np.array_equal(got[odd], ref[odd], equal_nan=True):
            bad.append(Mismatch(where, name, f"{np.count_nonzero(odd)} NaN or infinite "
                                "values, not the same in both"))
            continue
        finite = ref[~odd]
        span = max(float(np.max(finite) - np.min(finite)), float(np.max(np.abs(finite)))) \
            if finite.size else 0.0
        tol = FLOAT_RTOL * span + _upstream_scale(model, name)
        if not agreement.max_abs <= tol + 1e-12:
            bad.append(Mismatch(where, name, f"max |d| {agreement.max_abs:g} > {tol:g} "
                                f"({agreement.differ}/{agreement.elements} differ)"))
    return bad


@dataclass(frozen=True)
class Origin:
    """A quantized tensor that differs although every quantized tensor it reads agrees."""

    tensor: str
    op_type: str
    max_units: int
    share: float
    signed: bool = False
    qoperator: bool = False       # the file ONNX Runtime ran is in QOperator format
    # the QuantizeLinear quantizes a float16 value (a float16 stretch quantized by ONNX
    # Runtime's quantize_static): ONNX Runtime runs the float16 operator before it in
    # float32 and quantizes that unrounded value, lowp leaves a model with float16
    # QuantizeLinear / DequantizeLinear nodes as written and rounds it to float16 first
    # (docs/operators.md (O53), "not mirrored"): one float16 rounding, which is many steps
    # of a 16-bit quantization
    float16: bool = False

    @property
    def excused(self) -> bool:
        if self.float16:
            return True
        if self.op_type in SIGNED_TIE_OPS and self.signed:
            return self.max_units <= 1 and self.share <= SIGNED_TIE_SHARE
        if self.op_type in UINT8_STRICT_OPS and (self.qoperator or not self.signed):
            return False
        return self.op_type not in STRICT_OPS and self.max_units <= 1


def _outer_reads(node: onnx.NodeProto) -> list[str]:
    """Every tensor the node's subgraphs (If / Loop branches) read, outer scope included."""
    names = []
    for attr in node.attribute:
        for g in [attr.g] if attr.HasField("g") else list(attr.graphs):
            for n in g.node:
                names += [*n.input, *_outer_reads(n)]
    return [n for n in names if n]


def _quantized_parents(model: onnx.ModelProto) -> dict[str, set[str]]:
    """For each QuantizeLinear output: the QuantizeLinear outputs its value is computed from."""
    producer = {o: n for n in model.graph.node for o in n.output}
    q_outs = {n.output[0] for n in model.graph.node if n.op_type == "QuantizeLinear"}
    memo: dict[str, set[str]] = {}

    def reads(t: str) -> set[str]:
        if t in memo:
            return memo[t]
        memo[t] = set()
        node = producer.get(t)
        if node is None:
            return memo[t]
        out: set[str] = set()
        for i in [*node.input, *_outer_reads(node)]:
            out |= {i} if i in q_outs else reads(i)
        memo[t] = out
        return out

    return {q: reads(producer[q].input[0]) for q in q_outs}


# element types ONNX Runtime's Python binding cannot return (packed two to a byte)
PACKED_TYPES = frozenset((onnx.TensorProto.INT4, onnx.TensorProto.UINT4,
                          onnx.TensorProto.FLOAT4E2M1))


def _packed_quantizes(model: onnx.ModelProto) -> set[str]:
    """The outputs of the QuantizeLinear nodes whose output is of a packed type (a 4-bit
    weight's Q/DQ pair): not exposed, since ONNX Runtime's run cannot hand such a tensor
    to numpy."""
    zero_types = {i.name: i.data_type for i in model.graph.initializer}
    found = set()
    for n in model.graph.node:
        if n.op_type != "QuantizeLinear":
            continue
        declared = next((a.i for a in n.attribute if a.name == "output_dtype"), 0)
        zero = zero_types.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        if declared in PACKED_TYPES or zero in PACKED_TYPES:
            found.add(n.output[0])
    return found


def origins(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], combo: EngineCombo
            ) -> tuple[list[Origin], list[Mismatch]]:
    """Where lowp and ONNX Runtime start to differ, with every QuantizeLinear output
    exposed, and lowp's graph outputs compared with that run. Exposing a quantized tensor
    stops ORT from removing or fusing its QuantizeLinear, which can change ORT's own
    outputs by a step; lowp equal to either ORT graph is equal to ORT.

    A QOperator file is read through its QDQ form (lowp.formats.to_qdq), which keeps the
    name of every integer tensor: the QuantizeLinear outputs of that form are the quantized
    operators' outputs in the file ONNX Runtime runs (a tensor only the QDQ form has is
    not compared)."""
    structure = to_qdq(model)
    q_nodes = [n for n in structure.graph.node if n.op_type == "QuantizeLinear"]
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    outputs = {o.name for o in model.graph.output}
    produced = {o for n in model.graph.node for o in n.output}
    packed = _packed_quantizes(structure)
    for n in q_nodes:
        if n.output[0] not in outputs and n.output[0] in produced and n.output[0] not in packed:
            exposed.graph.output.append(helper.make_empty_tensor_value_info(n.output[0]))
    theirs = run_ort(exposed, feeds, threads=combo.threads)
    plain = run_ort(model, feeds, threads=combo.threads)
    if any(not np.array_equal(plain[k], theirs[k], equal_nan=True) for k in plain):
        event("ORT's outputs change when its quantized tensors are exposed")
    ours = Session(model, backend=combo.backend, replay=False, threads=combo.threads).run(
        dict(feeds), capture=True)
    producer = {o: n for n in structure.graph.node for o in n.output}
    # a QuantizeLinear nothing reads is pruned from lowp's run: no difference starts there
    diff = {n.output[0]: (np.abs(_as_file_type(ours[n.output[0]], theirs[n.output[0]].dtype)
                                 - theirs[n.output[0]].astype(np.int64))
                          if n.output[0] in ours and n.output[0] in theirs
                          else np.zeros(0, np.int64)) for n in q_nodes}
    parents_of = _quantized_parents(structure)

    def observed_parents(q: str, seen: set[str]) -> set[str]:
        """q's nearest quantized ancestors that both runs hold: a tensor lowp fused away
        (a lookup table over several steps) stands for its own parents, so that a
        difference inherited through it is not taken to start after it."""
        out: set[str] = set()
        for p in parents_of.get(q, ()):
            if diff.get(p, np.zeros(0)).size:
                out.add(p)
            elif p not in seen:
                seen.add(p)
                out |= observed_parents(p, seen)
        return out

    found = []
    for q in parents_of:
        d = diff[q]
        if d.size and d.max() > 0 and all(diff[p].max(initial=0) == 0
                                          for p in observed_parents(q, set())):
            src = producer.get(producer[q].input[0])
            found.append(Origin(q, src.op_type if src is not None else "input",
                                int(d.max()), float(np.count_nonzero(d)) / d.size,
                                theirs[q].dtype == np.int8, structure is not model,
                                _quantizes_float16(structure, producer[q])))
    return found, compare("exposed", model, ours, {k: theirs[k] for k in plain})


def _as_file_type(captured: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A tensor lowp's capture holds, as int64 values of the file's type `dtype`: lowp runs
    an int8 tensor that ONNX Runtime's QDQS8ToU8Transformer would shift as uint8 (value +
    128, docs/operators.md on ort_s8_to_u8), and its capture shows that representation."""
    values = captured.astype(np.int64)
    if captured.dtype == np.uint8 and dtype == np.int8:
        return values - 128
    if captured.dtype == np.int8 and dtype == np.uint8:
        return values + 128
    return values


def _quantizes_float16(model: onnx.ModelProto, quantize: onnx.NodeProto) -> bool:
    """Whether the QuantizeLinear's scale is a float16 initializer (it quantizes a float16
    value)."""
    scale = next((t for t in model.graph.initializer if t.name == quantize.input[1]), None)
    return scale is not None and scale.data_type == onnx.TensorProto.FLOAT16


def explained(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], combo: EngineCombo,
              bad: list[Mismatch]) -> list[Mismatch]:
    """The mismatches that known evaluation-order differences of ONNX Runtime do not
    explain: each is kept unless every place where the engines start to differ is one
    step at an operator outside STRICT_OPS (recorded as an event with its share)."""
    if not bad:
        return bad
    if not compare("unoptimized", model, run_lowp(model, feeds, combo),
                   run_ort(model, feeds, optimize=False, threads=combo.threads)):
        # lowp computes what the file says, which ONNX Runtime computes with its graph
        # optimizations off; its optimizer changed the semantics (e.g. an If branch that
        # reads a float tensor ORT's quantizer also quantized gets the quantized value)
        event("equal to ORT without graph optimizations, not with them")
        return []
    found, against_exposed = origins(model, feeds, combo)
    if not against_exposed:
        return []
    if found and all(o.excused for o in found):
        for o in found:
            if o.float16:
                event("difference from ORT starting at a float16 QuantizeLinear (O53)")
                continue
            event(f"one-step difference from ORT starting at {o.op_type}"
                  + (" (int8 output, half-way point)" if o.op_type in STRICT_OPS else ""))
        return []
    where = ", ".join(f"{o.op_type}:{o.tensor} {o.max_units} steps on {o.share:.1%}"
                      for o in found if not o.excused) or "no quantized tensor differs"
    return [Mismatch(m.where, m.output, f"{m.detail}; starts at {where}") for m in bad]


# ONNX Runtime's float rewrites lowp does not mirror (ConvBNFusion folds a BatchNormalization
# into the float Conv's weights; without it the NCHWc transformer runs that
# BatchNormalization as a 1x1 NCHWc Conv; MatMulAddFusion of a 3-D MatMul, (O33s)): a
# difference they explain is excused when ONNX Runtime with them disabled gives lowp's
# outputs
UNMIRRORED = (("ConvBNFusion",), ("ConvBNFusion", "NchwcTransformer"), ("MatMulAddFusion",),
              ("ConvBNFusion", "NchwcTransformer", "MatMulAddFusion"))


def run_ort_without(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray],
                    disabled: tuple[str, ...], threads: int = 1) -> dict[str, np.ndarray]:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    s = ort.InferenceSession(model.SerializeToString(), opts,
                             providers=["CPUExecutionProvider"],
                             disabled_optimizers=list(disabled))
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, dict(feeds)), strict=True))


# the weights and biases ONNX Runtime's unmirrored Conv folds write, and the Gemm of a 3-D
# MatMulAddFusion (its node name)
UNMIRRORED_PREFIXES = ("ConvBnFusion_", "ConvMulFusion_", "ConvAddFusion_")


def unmirrored_origins(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray],
                       combo: EngineCombo, level: ort.GraphOptimizationLevel
                       ) -> list[str] | None:
    """ONNX Runtime's graph optimized at `level` run as written next to lowp's captured
    values: the nodes whose output differs while every input both runs hold agrees. Their
    op types if each is one of ONNX Runtime's unmirrored rewrites (reads a folded weight or
    is a MatMulAddFusion Gemm), else None. At the extended level the folded weights keep
    their names (the NCHWc layout, which lowp mirrors, renames them) and lowp's NCHWc
    convolutions may differ from the plain ones there; at the full level those agree."""
    with tempfile.TemporaryDirectory() as d:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = combo.threads
        opts.graph_optimization_level = level
        opts.optimized_model_filepath = os.path.join(d, "opt.onnx")
        ort.InferenceSession(model.SerializeToString(), opts,
                             providers=["CPUExecutionProvider"])
        opt = onnx.load(opts.optimized_model_filepath)
    ours = Session(model, backend=combo.backend, replay=False, threads=combo.threads).run(
        dict(feeds), capture=True)
    outputs = {o.name for o in opt.graph.output}
    for n in opt.graph.node:
        for o in n.output:
            if o in ours and o not in outputs:
                opt.graph.output.append(helper.make_empty_tensor_value_info(o))
    theirs = run_ort(opt, feeds, optimize=False, threads=combo.threads)

    def same(t: str) -> bool:
        a, b = ours[t], theirs[t]
        return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))

    # a Conv's output folded into it: ONNX Runtime's fused Conv writes the folded node's
    # output name (under the NCHWc layout, through a ReorderOutput)
    producer = {o: n for n in model.graph.node for o in n.output}
    folded = {o for n in model.graph.node for o in n.output
              if n.op_type in ("BatchNormalization", "Mul", "Add") and any(
                  i in producer and producer[i].op_type == "Conv" for i in n.input)}
    found = []
    for n in opt.graph.node:
        differs = [o for o in n.output if o in theirs and o in ours and not same(o)]
        if differs and all(same(i) for i in n.input if i in theirs and i in ours):
            if not (any(i.startswith(UNMIRRORED_PREFIXES) for i in n.input)
                    or "MatMulAddFusion" in n.name or set(differs) <= folded):
                return None
            found.append(n.op_type)
    return found or None


def unmirrored_explained(g: FuzzGraph, model: onnx.ModelProto,
                         feeds: Mapping[str, np.ndarray], combo: EngineCombo,
                         bad: list[Mismatch]) -> list[Mismatch]:
    """The exact mismatches of a quantize_dynamic file, unless ONNX Runtime with one of the
    UNMIRRORED rewrites disabled equals lowp on every output, or every place where the two
    start to differ is such a rewrite in ONNX Runtime's optimized graph (recorded as
    events)."""
    if not bad:
        return bad
    ours = run_lowp(model, feeds, combo)
    for disabled in UNMIRRORED:
        if not compare("", model, ours, run_ort_without(model, feeds, disabled,
                                                                 combo.threads), exact=True):
            event(f"equal to ORT without {'+'.join(disabled)} (not mirrored)")
            return []
    levels = (ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    found = next((f for f in (unmirrored_origins(model, feeds, combo, lv) for lv in levels)
                  if f), None)
    if found:
        for op in sorted(set(found)):
            event(f"starts to differ at an unmirrored rewrite ({op} with folded weights)")
        return []
    return float_explained(g, model, feeds, combo, bad)


def float_explained(g: FuzzGraph, model: onnx.ModelProto, feeds: Mapping[str, np.ndarray],
                    combo: EngineCombo, bad: list[Mismatch]) -> list[Mismatch]:
    """The last allowance: an output where lowp's float model is not identical to ONNX
    Runtime's either (a float difference the quantized file inherits, e.g. ONNX Runtime's
    NCHWc layout choice for a float pool, which lowp does not always make as it does) is
    compared within the float tolerance instead."""
    ours = run_lowp(g.model, feeds, EngineCombo(combo.backend, False, combo.threads))
    differs = {m.output for m in compare("float", g.model, ours,
                                         run_ort(g.model, feeds, threads=combo.threads),
                                         exact=True)}
    kept = [m for m in bad if m.output not in differs]
    loose = compare("float tolerance", model, run_lowp(model, feeds, combo),
                    run_ort(model, feeds, threads=combo.threads))
    kept += [m for m in loose if m.output in differs]
    if len(kept) < len(bad):
        event("quantize_dynamic output differs as the float model's does")
    return kept


def run_lowp(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], combo: EngineCombo
             ) -> dict[str, np.ndarray]:
    session = Session(model, backend=combo.backend, replay=combo.replay, threads=combo.threads)
    return session.run(dict(feeds))


def check_qdq(g: FuzzGraph, label: str, model: onnx.ModelProto,
              combos: list[EngineCombo], exact: bool = False) -> list[Mismatch]:
    """Every combo of lowp's Session against ONNX Runtime on the same QDQ file, each batch
    size (three times with replay on: the third run replays the recorded calls). With
    `exact` (quantize_dynamic files: no stored quantization step to measure in, every
    kernel mirrors ONNX Runtime's) every output must be identical and nothing is
    explained away."""
    bad = []
    for combo in combos:
        session = Session(model, backend=combo.backend, replay=combo.replay,
                          threads=combo.threads)
        for batch in g.batches:
            feeds = g.feeds(batch, g.seed)
            theirs = run_ort(model, feeds, threads=combo.threads)
            for _ in range(3 if combo.replay else 1):
                found = compare(f"{label} {combo} batch={batch}", model, session.run(feeds),
                                theirs, exact)
                bad += (unmirrored_explained(g, model, feeds, combo, found) if exact
                        else explained(model, feeds, combo, found))
    return bad


def check_float(g: FuzzGraph) -> list[Mismatch]:
    """The float model on lowp's Session against ONNX Runtime in float; a graph output
    beyond tolerance is accepted only if every node, run alone on ONNX Runtime's own input
    values, is within tolerance (the graph then amplifies float32 rounding, e.g. a
    LayerNormalization of nearly equal values)."""
    bad = []
    session = Session(g.model, backend="reference")
    for batch in g.batches:
        feeds = g.feeds(batch, g.seed)
        found = compare(f"float batch={batch}", g.model, session.run(feeds),
                        run_ort(g.model, feeds))
        if found:
            nodes = node_by_node(g.model, feeds)
            if not nodes:
                event("float output beyond tolerance, every node alone within it")
            found = [Mismatch(m.where, m.output, f"{m.detail}; alone: {nodes[0].output} "
                              f"{nodes[0].detail}") for m in found] if nodes else []
        bad += found
    return bad


def _all_values(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]
                ) -> dict[str, np.ndarray]:
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    outputs = {o.name for o in model.graph.output}
    for n in model.graph.node:
        for o in n.output:
            if o and o not in outputs:
                exposed.graph.output.append(helper.make_empty_tensor_value_info(o))
    return {**feeds, **run_ort(exposed, feeds)}


def node_by_node(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> list[Mismatch]:
    """Each node (without subgraphs) as a one-node model on ONNX Runtime's input values:
    lowp's output within FLOAT_RTOL of the range of ONNX Runtime's."""
    values = _all_values(model, feeds)
    inits = {t.name: t for t in model.graph.initializer}
    bad: list[Mismatch] = []
    for node in model.graph.node:
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
               for a in node.attribute):
            continue
        ins = [i for i in dict.fromkeys(node.input) if i and i not in inits]
        outs = [o for o in node.output if o]
        graph = helper.make_graph(
            [node], "one",
            [helper.make_tensor_value_info(i, helper.np_dtype_to_tensor_dtype(
                values[i].dtype), values[i].shape) for i in ins],
            [helper.make_tensor_value_info(o, helper.np_dtype_to_tensor_dtype(
                values[o].dtype), values[o].shape) for o in outs],
            [inits[i] for i in node.input if i in inits])
        one = helper.make_model(graph, opset_imports=model.opset_import)
        one.ir_version = model.ir_version
        got = Session(one, backend="reference").run({i: values[i] for i in ins})
        bad += compare(f"node {node.name}", one, got, {o: values[o] for o in outs})
    return bad


def check_graph(g: FuzzGraph, quantizers: list[Quantizer], combos: list[EngineCombo],
                float_model: bool = True) -> list[Mismatch]:
    """The whole property for one graph: float run, then each quantizer's QDQ file."""
    check_float_graph(g)
    calib = calibration(g)
    bad = check_float(g) if float_model else []
    for q in quantizers:
        model = (quantize_lowp(g, calib, q) if q.tool == "lowp"
                 else quantize_ort_dynamic(g, q) if q.tool == "ort-dynamic"
                 else quantize_ort(g, calib, q))
        if q.dq_per_consumer:
            model = dequantize_per_consumer(model)
        bad += check_qdq(g, str(q), model, combos, exact=q.tool == "ort-dynamic")
    return bad
