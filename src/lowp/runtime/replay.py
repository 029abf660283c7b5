"""Replay: repeat the native calls of a session's steps without the Python above them.

A replayable step (`Step.replayable`) does nothing but calls into the native extension,
writing into output buffers it owns (an arena), or is a pure reshape whose outputs are
views of its inputs. Float steps of the operators in `lowp.runtime.program.FLOAT_KERNELS`
(and per-tensor DequantizeLinear) become such steps while a signature is recorded: their
values are computed by a native call, equal to the numpy operator bit for bit, into a
buffer the signature owns. Once the same input shapes have been run twice, recording every
such step's calls, a step whose two recordings are identical (the same functions on the
same buffers, the same arguments, the same output buffers) is from then on run by
repeating its recorded calls; maximal runs of consecutive such steps (and of the float
steps on shapes only, `fixed_steps`) are compiled into one `lowp._native.Program` each
(lowp.runtime.program), run by one call with the GIL released.

The invariant that makes this exact: every run of a signature reads its feeds from input
buffers the signature owns (the feeds are copied into them, a memcpy per input and run;
a Session's float32 feed whose every reader is a call that declares it may read that
argument through a slot, `program.FEED_SLOTS` (a QuantizeLinear, an Attention's Q, K or V),
is instead read where the caller keeps it, through a `FeedSlot` of the Program set to the
run's array),
constants are the same objects on every run, and a replayed step writes into the buffers
it wrote when recorded; so a recorded call reads the same memory, holding this run's
values, as long as every tensor a segment reads from outside itself is a constant, a feed,
or the very array (or an array over the same memory, shape and strides) it read when
recorded. Segments check only those outside tensors (made by steps run the plain way) and
run their steps the plain way when one differs. Anything else (float steps, a changed
input object) runs through `execute` as before, so the results are always those of a plain
run (`Session(replay=False)` is the reference); replay only removes the per-step overhead
of the Python layers (layout checks, validation, dispatch).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import ort_math
from ..errors import NodeError
from . import moves, native_float, program, sharing
from .plan import CF, CL, Step
from .tape import Call, recording

Env = dict[str, np.ndarray]
Layouts = dict[str, object]
Timings = dict[str, float]
RECORDING = "(recording runs)"     # the profile key of a signature's first two runs
Execute = Callable[[Step, Env, Layouts], None]
# the same feeds (name, shape, dtype) replay the same plan; at most this many are kept
MAX_SIGNATURES = 4


@dataclass
class _Record:
    """What one replayable step did in one run."""

    calls: list[Call]
    inputs: list[tuple[str, object, object]]         # (name, value object, layout)
    outputs: list[tuple[str, np.ndarray, object]]


@dataclass
class _Replay:
    """A step to run by repeating `calls` while its inputs are these objects."""

    step: Step
    calls: list[Call]
    inputs: list[tuple[str, object, object]]
    outputs: list[tuple[str, np.ndarray, object]]


@dataclass
class _Fixed:
    """A float step on shapes only: its outputs are the same for every run of a signature."""

    step: Step
    outputs: list[tuple[str, np.ndarray, object]]


Entry = Step | _Replay | _Fixed
# pure reshapes: a float one replays by handing on the same view of its (stable) input
RESHAPES = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"})
# float operators whose numpy implementation may call a lowp.runtime.native_float kernel:
# recorded with the kernels writing into buffers the signature owns
# a float32 Clip's absent bounds (float_ops.Clip: the type's lowest / largest finite value)
_CLIP_LIMITS = (np.full(1, np.finfo(np.float32).min, np.float32),
                np.full(1, np.finfo(np.float32).max, np.float32))

NATIVE_FLOAT = frozenset({"MaxPool", "AveragePool", "GlobalAveragePool", "HardSigmoid",
                          "HardSwish", "Sigmoid", "Tanh", "Erf", "Gelu", "LeakyRelu",
                          "MatMul", "FusedMatMul", "Gemm", "LayerNormalization", "Softmax",
                          "LogSoftmax", "Resize", "Conv", "ConvTranspose", "BatchNormalization",
                          "ReduceMean", "ReduceSum", "SkipLayerNormalization", "LSTM",
                          "GRU", "RNN", "Concat", "Gather", "Cast", "Log", "ReduceMax",
                          "SimplifiedLayerNormalization", "MatMulInteger", "FastGelu",
                          "MatMulIntegerToFloat", "PerTokenMatMul", "BiasGelu",
                          "DynamicQuantizeLinear", "Tan", "Sinh", "Cosh", "Asinh",
                          "Acosh", "Atanh", "Exp", "FusedConv", "GlobalMaxPool", "Sin",
                          "Cos", "OneHot", "ArgMax", "SetSlice", "Elu", "Einsum",
                          "ScatterND", "Softplus", "ConvInteger", "ConvBias",
                          "ConvIntegerToFloat", "DynamicQuantizeLSTM", "ReduceMin",
                          "InstanceNormalization", "Attention", "TreeEnsemble",
                          "TreeEnsembleRegressor", "TreeEnsembleClassifier",
                          "LinearClassifier", "Normalizer", "ZipMap"})

# Float operators that, on constant inputs (or, for Shape and Size, on a tensor whose shape
# the feed shapes fix), compute the same values on every run: the shape arithmetic that
# exporters write (Shape -> Gather -> Unsqueeze -> Concat -> Reshape, ...).
FOLDABLE = frozenset({
    "Shape", "Size", "Constant", "ConstantOfShape", "Gather", "Unsqueeze", "Squeeze",
    "Concat", "Slice", "Cast", "Add", "Sub", "Mul", "Div", "Mod", "Neg", "Abs", "Floor",
    "Ceil", "Min", "Max", "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Not",
    "And", "Or", "Where", "Range", "Reshape", "Identity", "ReduceProd", "ReduceSum",
    "ReduceMin", "ReduceMax", "Expand", "Tile", "Transpose",
    # (a ViT's positional embeddings interpolated to the input's patch grid, whose size
    # ONNX Runtime's quantizer leaves as Pow and Sqrt of the patch count)
    "Resize", "Upsample", "Pow", "Sqrt",
    # (T5's relative position buckets: the log of the distance between positions)
    "Log",
})
# Operators whose output shapes depend on input values: where they occur, tensor shapes are
# not fixed by the feed shapes, and nothing is folded.
DATA_DEPENDENT_SHAPES = frozenset({
    "NonZero", "Compress", "Unique", "TopK", "NonMaxSuppression", "Loop", "If", "Scan",
    "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
    "Bernoulli", "StringSplit",
})
# Inputs (by position) that give an output's shape: they must be fixed values too.
SHAPE_INPUTS: dict[str, tuple[int, ...]] = {
    "Reshape": (1,), "Expand": (1,), "Tile": (1,), "Slice": (1, 2, 3, 4),
    "Resize": (1, 2, 3), "Upsample": (1,), "Pad": (1, 3), "ConstantOfShape": (0,),
    "Range": (0, 1, 2), "OneHot": (1,), "Split": (1,), "Squeeze": (1,), "Unsqueeze": (1,),
    "ReduceMean": (1,), "ReduceSum": (1,), "ReduceMax": (1,), "ReduceMin": (1,),
    "ReduceProd": (1,), "ReduceL1": (1,), "ReduceL2": (1,), "ReduceLogSum": (1,),
    "ReduceLogSumExp": (1,), "ReduceSumSquare": (1,), "CenterCropPad": (1,), "GridSample": (1,),
    "MaxUnpool": (2,), "AffineGrid": (1,), "Col2Im": (1, 2),
    # (DFT's length and axis; STFT's frame_step and frame_length; a window's size; the mel
    # matrix's bin count and DFT length)
    "DFT": (1, 2), "STFT": (1, 3), "HannWindow": (0,), "HammingWindow": (0,),
    "BlackmanWindow": (0,), "MelWeightMatrix": (0, 1),
    # (which tensor of a sequence a position picks, or how a split cuts, sets its shape)
    "SplitToSequence": (1,), "SequenceAt": (1,), "SequenceInsert": (2,), "SequenceErase": (1,),
}


def fixed_steps(steps: list[Step], constants: set[str]) -> set[int]:
    """Indices of the steps whose outputs depend only on constants and on the shapes the
    feeds fix; when some shape in the model may depend on values, those of the steps on
    constants alone (`constant_steps`)."""
    fixed = _fold(steps, set(constants))
    return constant_steps(steps, set(constants)) if fixed is None else fixed


def constant_steps(steps: list[Step], constants: set[str]) -> set[int]:
    """Indices of the steps whose outputs depend on constants alone, not on any feed or
    shape: the same values on every run, whatever the feeds (Constant nodes and the
    arithmetic on them, of a graph whose shapes the feeds do not fix)."""
    fixed: set[int] = set()
    for i, step in enumerate(steps):
        ins = [n for n in step.inputs if n]
        if step.subplans or step.op_type in ("Shape", "Size") or \
                not all(n in constants for n in ins):
            continue
        if (step.kind == "float" and step.op_type in FOLDABLE and (ins or step.op_type ==
                                                                   "Constant")) \
                or (step.kind in ("quantize", "dequantize", "int") and ins):
            fixed.add(i)
            constants.update(o for o in step.outputs if o)
    return fixed


def _fold(steps: list[Step], fixed_values: set[str]) -> set[int] | None:
    """`fixed_steps` of `steps` given the names already fixed (extended in place); None
    when some shape may depend on values."""
    fixed: set[int] = set()
    for i, step in enumerate(steps):
        fixed_if = _fixed_branch(step, fixed_values)
        if step.op_type in DATA_DEPENDENT_SHAPES and not fixed_if:
            return None
        ins = [n for n in step.inputs if n]
        if (step.kind == "float" and (step.op_type in FOLDABLE or fixed_if) and (
                step.op_type in ("Shape", "Size") or all(n in fixed_values for n in ins))) \
                or (step.kind in ("quantize", "dequantize", "int") and ins and not step.subplans
                    and all(n in fixed_values for n in ins)):
            # (integer steps and quantizers of fixed values: a QOperator file's quantized
            # shape arithmetic, the anchor grids of detection heads; the dequantized
            # weights of a float operator, ConvTranspose in ONNX Runtime's QDQ files)
            fixed.add(i)
            fixed_values.update(o for o in step.outputs if o)
    for step in steps:
        for k in SHAPE_INPUTS.get(step.op_type, ()):
            if k < len(step.inputs) and step.inputs[k] and step.inputs[k] not in fixed_values:
                return None                      # a shape computed from data
    return fixed


def _fixed_branch(step: Step, fixed_values: set[str]) -> bool:
    """An If on a fixed condition (the same branch on every run of a signature) whose
    branches fix their shapes too: exporters test shapes this way (`If(Size(Shape(x)) ==
    1, Squeeze, Identity)`)."""
    if step.op_type != "If" or not step.subplans or step.inputs[0] not in fixed_values:
        return False
    return all(_fold(sub.steps, fixed_values | set(sub.constants)) is not None
               for sub in step.subplans)


class Replayer:
    """Runs a session's steps, recording the first two runs of each feed signature and
    replaying from the third on."""

    def __init__(self, steps: list[Step], execute: Execute,
                 constants: set[str] | None = None,
                 outputs: Iterable[str] | None = None, *, memoize: bool = False,
                 feeds_in_place: bool = False, share: bool = False) -> None:
        self.steps = steps
        # the output buffers of a Program's steps that are not live at the same time share
        # memory (lowp.runtime.sharing): for callers that read only `outputs` after a run
        # and keep none of its arrays (a Session's: it returns copies)
        self._share = share and outputs is not None and sharing.enabled()
        # a feed's readers may read it where the caller keeps it (`_in_place_feeds`): for
        # callers whose feeds no step writes during a run (a Session's: it returns copies),
        # not a Loop's, which hands a body the buffers the body writes
        self._feeds_in_place = feeds_in_place
        # products skipped while their operands are the bytes they last ran on (a Loop
        # body's: `memoized`)
        self._memoize = memoize
        self._execute = execute
        self._constants = frozenset(constants or ())
        # the tensors callers read after a run (None: all); a replayed run stores only
        # these and what later plain steps read, unless asked for more
        self._outputs = None if outputs is None else frozenset(outputs)
        self._fixed = fixed_steps(steps, set(self._constants))
        # values the same on every run of a signature: constants and fixed steps' outputs
        self._fixed_names = self._constants | frozenset(
            o for i in self._fixed for o in steps[i].outputs if o)
        self._state: dict[object, list[_Record | None] | list[Entry]] = {}
        self._ready: dict[object, list[Runner]] = {}
        self._feeds: dict[object, dict[str, np.ndarray]] = {}      # owned input buffers
        # feeds a replayed run hands to their readers as they are (`_in_place_feeds`)
        self._in_place: dict[object, frozenset[str]] = {}
        self._buffers: dict[object, dict[object, np.ndarray]] = {}  # native float outputs
        self._tables: dict[object, np.ndarray] = {}                # DequantizeLinear tables
        self._native_reads = frozenset(n for step in steps if _native_capable(step)
                                       for n in step.inputs if n)

    def replayed_steps(self, signature: object) -> int:
        """How many steps of a signature's plan run by replay (0 until it is ready)."""
        if signature not in self._ready:
            return 0
        return sum(isinstance(e, (_Replay, _Fixed)) for e in self._state[signature])

    def constants_read(self, signature: object) -> frozenset[str] | None:
        """The constants a replayed run of `signature` reads from the tensor dict (those of
        the steps that may run the plain way, and the outputs'); None until it is ready."""
        runners = self._ready.get(signature)
        if runners is None or self._outputs is None:
            return None
        names = set(self._outputs)
        for r in runners:
            if type(r) is _Segment and (r.checks or r.retries):
                # (a segment whose checks fail, or whose call reports a run-time value it
                # does not compute, runs its steps the plain way)
                names.update(n for e in r.entries for n in e.step.inputs)
            elif type(r) is _Calls:
                names.update(r.entry.step.inputs)
            elif type(r) is _Plain:
                names.update(r.step.inputs)
        return frozenset(names & self._constants)

    def plain_steps(self, signature: object) -> list[Step]:
        """The steps a replayed run of a ready signature runs from Python (the plain way or
        by repeating their calls one by one): what keeps its run from being one call."""
        plain: list[Step] = []
        for r in self._ready.get(signature, ()):
            if type(r) is _Plain:
                plain.append(r.step)
            elif type(r) is _Calls:
                plain.append(r.entry.step)
        return plain

    def native_only(self, signature: object) -> bool:
        """A ready signature whose replayed run is native Programs only, none of which
        checks a tensor from outside (so no step runs from Python)."""
        runners = self._ready.get(signature)
        return runners is not None and all(type(r) is _Segment and not r.checks
                                           for r in runners)

    def direct(self, signature: object, constants: Mapping[str, np.ndarray]) -> Direct | None:
        """The run of a ready signature that is native Programs only (`native_only`) as a
        `Direct`, once every Program's shared form is verified or dropped (the forms that
        run no longer change); None before, or for another signature. `constants`: the
        constants its outputs may be (name -> array)."""
        runners = self._ready.get(signature)
        if runners is None or self._outputs is None or not self.native_only(signature):
            return None
        segments: list[_Segment] = []
        for r in runners:
            assert type(r) is _Segment
            if r.shared is not None and not r.verified:
                return None
            segments.append(r.shared if r.shared is not None else r)
        owned = self._feeds.get(signature, {})
        in_place = self._in_place.get(signature, frozenset())
        feeds = [(name, buffer, name in in_place,
                  [slot for seg in segments for slot, n in seg.slots if n == name])
                 for name, buffer in owned.items()]
        # the outputs as a replayed run leaves them in the tensor dict
        values: dict[str, np.ndarray] = {n: constants[n] for n in self._outputs
                                         if n in constants}
        values.update((n, b) for n, b in owned.items() if n in self._outputs)
        layouts: dict[str, object] = {}
        for seg in segments:
            exports = seg.exports if seg.exports is not None else seg.outputs
            layouts.update((n, seg.layouts[n]) for n in exports if n in self._outputs)
            values.update((n, v) for n, v in exports.items() if n in self._outputs)
        if not self._outputs <= values.keys():
            return None
        return Direct(feeds, segments, values, layouts)

    def shared_memory(self, signature: object) -> list[tuple[int, int, int]]:
        """Per native Program of a ready signature whose shared form runs (`_shared`):
        the output buffers moved, their bytes, and the bytes of the arena they share."""
        found = []
        for r in self._ready.get(signature, ()):
            if type(r) is _Segment and r.verified and r.shared is not None:
                move = r.shared.relocation
                assert move is not None
                found.append((move.moved, move.moved_bytes(), move.arena.nbytes))
        return found

    def programs(self, signature: object) -> list[int]:
        """Steps per native Program of a ready signature's plan."""
        return [len(r.entries) for r in self._ready.get(signature, ()) if type(r) is _Segment]

    def run(self, signature: object, env: Env, layout: Layouts,
            feeds: dict[str, np.ndarray] | None = None, *, everything: bool = False,
            timings: Timings | None = None) -> None:
        """Run every step on `env` (constants and `feeds`, by name). Afterwards `env` holds
        the outputs given at construction, or with `everything` every tensor.

        With `timings`, a replayed run adds each step's seconds under ``"op:kind"`` (inside
        a native Program, timed per call) or ``"op:kind (python)"`` / ``" (calls)"`` (run
        from Python); a recording run adds its whole time under `RECORDING`."""
        runners = self._ready.get(signature)
        if runners is not None:
            self._own_feeds(signature, env, feeds)
            everything = everything or self._outputs is None
            for runner in runners:
                runner.run(env, layout, everything, timings)
            return
        t0 = time.perf_counter()
        state = self._state.get(signature)
        if state is None and len(self._state) >= MAX_SIGNATURES:
            for step in self.steps:
                self._execute(step, env, layout)
            return
        self._own_feeds(signature, env, feeds)
        records = self._record(signature, env, layout)
        if state is None:
            self._state[signature] = records
        else:
            plan = _plan(self.steps, state, records,  # type: ignore[arg-type]
                         self._fixed, self._fixed_names)
            self._state[signature] = plan
            owned = self._feeds[signature]
            in_place = self._in_place[signature] = _in_place_feeds(
                plan, owned, self._outputs) if self._feeds_in_place else frozenset()
            self._ready[signature] = _compile(
                plan, self._execute, self._constants | frozenset(owned),
                self._outputs or frozenset(), self._buffers[signature], self._memoize,
                {n: owned[n] for n in in_place}, share=self._share)
        if timings is not None:
            timings[RECORDING] = timings.get(RECORDING, 0.0) + time.perf_counter() - t0

    def _own_feeds(self, signature: object, env: Env,
                   feeds: dict[str, np.ndarray] | None) -> None:
        """Copy the feeds into the signature's own input buffers and run on those."""
        if not feeds:
            self._feeds.setdefault(signature, {})
            return
        owned = self._feeds.get(signature)
        if owned is None:
            owned = self._feeds[signature] = {k: np.empty(v.shape, v.dtype)
                                              for k, v in feeds.items()}
        in_place = self._in_place.get(signature, frozenset())
        for k, v in feeds.items():
            buffer = owned[k]
            if k in in_place and type(v) is np.ndarray and v.dtype == buffer.dtype \
                    and v.shape == buffer.shape and v.flags.c_contiguous:
                env[k] = v      # read where it is (`_Segment.slots`)
                continue
            np.copyto(buffer, v)
            env[k] = buffer

    def _record(self, signature: object, env: Env, layout: Layouts) -> list[_Record | None]:
        records: list[_Record | None] = []
        buffers = self._buffers.setdefault(signature, {})
        for i, step in enumerate(self.steps):
            if i in self._fixed:
                self._execute(step, env, layout)
                for n in step.outputs:
                    # the first recording's array when the values are the same, so that
                    # the steps reading it record the same memory in both recordings
                    kept, value = buffers.get(("fixed", i, n)), env.get(n) if n else None
                    if isinstance(value, np.generic):
                        # (numpy's arithmetic on 0-d arrays gives a scalar: as a 0-d array
                        # the two recordings' values compare and the steps reading it may
                        # replay, a Pow by a dequantized exponent of 2)
                        value = env[n] = np.asarray(value)
                    if not isinstance(value, np.ndarray):
                        continue
                    if not value.flags.c_contiguous:
                        # (a strided view, a Slice of a Transpose: the native kernels read
                        # contiguous operands, and this copy is made once per recording)
                        value = env[n] = np.ascontiguousarray(value)
                    if (isinstance(kept, np.ndarray) and kept.dtype == value.dtype
                            and kept.shape == value.shape and np.array_equal(kept, value)):
                        env[n] = kept
                    else:
                        buffers[("fixed", i, n)] = value
                records.append(_Record([], [], [(n, env[n], layout.get(n, CF))
                                                for n in step.outputs if n]))
                continue
            inputs: list[tuple[str, object, object]] = [
                (n, env.get(n), layout.get(n, CF)) for n in step.inputs if n]
            native = self._native_call(i, step, env, layout, buffers)
            if native is not None:
                made, y, out_layout = native
                calls = made if isinstance(made, list) else [made]
                for fn, args in calls:
                    fn(*args)
                # should the two recordings differ (an input made anew each run), the step
                # runs the plain way with its result copied into this same buffer, which
                # is what the steps after it were recorded reading
                buffers[("out", i, step.outputs[0])] = y
                env[step.outputs[0]] = y
                layout[step.outputs[0]] = out_layout if y.ndim >= 3 else CF
                records.append(_Record(calls, inputs,
                                       [(step.outputs[0], y, layout[step.outputs[0]])]))
                continue
            record: _Record | None = None
            if step.kind == "float" and step.op_type in NATIVE_FLOAT:
                record = self._record_native_float(i, step, env, layout, buffers, inputs)
                if record is not None:
                    # should the two recordings differ, the step runs the plain way with
                    # its results copied into the buffers the steps after it recorded
                    _keep_outputs(i, record, buffers, self._native_reads)
                if record is None and self._views_only(step):
                    # (a Cast to the input's own type hands on the input itself)
                    outs = [(n, env[n], layout.get(n, CF)) for n in step.outputs if n]
                    if all(type(v) is np.ndarray and _is_view_of_inputs(v, inputs)
                           for _, v, _ in outs):
                        record = _Record([], inputs, outs)
            elif not (step.replayable or self._views_only(step)):
                self._execute(step, env, layout)
            else:
                with recording() as tape:
                    self._execute(step, env, layout)
                outputs = [(n, env[n], layout.get(n, CF)) for n in step.outputs if n]
                record = _Record(tape, inputs, outputs)
            if record is None or not (record.calls or all(
                    _is_view_of_inputs(v, record.inputs) for _, v, _ in record.outputs)):
                _stabilize(_stable_outputs(i, step, env, buffers, self._native_reads), env)
            records.append(record)
        return records

    def _views_only(self, step: Step) -> bool:
        """A step that may hand on views of its inputs (replayed when both recordings did so
        the same way): float or quantized reshapes and data movement (a Slice whose result
        is a contiguous part of its input), a float Cast to the input's own type, and float
        Ifs whose condition is fixed (their branch is the same on every run of a signature:
        `Squeeze` or `Identity`)."""
        if step.kind == "int":
            return step.op_type in RESHAPES or step.op_type in moves.MOVES
        return step.kind == "float" and (
            step.op_type in RESHAPES or step.op_type in moves.MOVES
            or step.op_type in ("Cast", "CastLike")
            or (step.op_type == "If" and step.inputs[0] in self._fixed_names))

    def _record_native_float(self, index: int, step: Step, env: Env, layout: Layouts,
                             buffers: dict[object, np.ndarray],
                             inputs: list[tuple[str, object, object]]) -> _Record | None:
        """Run a float step whose numpy operator calls a lowp.runtime.native_float kernel,
        with the kernels' results in buffers the signature owns; its record, when its
        outputs are exactly those buffers (nothing computed after the calls)."""
        if step.op_type == "OneHot" and any(n not in self._fixed_names
                                            for n in step.inputs[1:3] if n):
            # (its kernel holds the depth and the two values as numbers: a repeated call
            # is right only while they are the same on every run)
            self._execute(step, env, layout)
            return None
        made: list[np.ndarray] = []

        def alloc(shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
            b = _buffer(buffers, (index, len(made)), shape, dtype)
            made.append(b)
            return b

        with recording() as tape, native_float.outputs(alloc):
            self._execute(step, env, layout)
        outputs = [(n, env[n], layout.get(n, CF)) for n in step.outputs if n]
        if not tape or not all(any(_covers(v, b) for b in made) for _, v, _ in outputs):
            return None
        return _Record(tape, inputs, outputs)

    def _native_call(self, index: int, step: Step, env: Env, layout: Layouts,
                     buffers: dict[object, np.ndarray]
                     ) -> tuple[Call | list[Call], np.ndarray, object] | None:
        """A native call computing `step` into a buffer the signature owns (and the buffer
        and its layout), for the steps that have none of their own; else None."""
        if step.kind == "int" and step.op_type in ("Add", "Mul"):
            return self._constant_operand_call(index, step, env, layout, buffers)
        if step.replayable and step.op_type not in RESHAPES:
            return None
        if moves.applies(step, env, self._fixed_names):
            # a reshape too: of a channels-last input it is a copy (the conversion to
            # channels-first), which its map makes native
            return self._move_call(index, step, env, layout, buffers)
        if step.replayable:
            return None
        return self._float_call(index, step, env, layout, buffers)

    def _move_call(self, index: int, step: Step, env: Env, layout: Layouts,
                   buffers: dict[object, np.ndarray]
                   ) -> tuple[Call, np.ndarray, object] | None:
        """A data-movement step as a native copy by its index map (lowp.runtime.moves);
        None when its result is a contiguous view of its input (handed on as it is) or
        not a copy. The map and fills are the signature's: a recording that finds other
        ones keeps the new ones, so the two recordings differ and the step runs plain."""
        made = moves.index_map(step, env, layout, self._execute)
        if made is None:
            return None
        mapped, fill, y, out_layout = made
        x = env[step.inputs[0]]
        if y.base is not None and np.shares_memory(y, x) and y.flags.c_contiguous:
            return None
        key = ("move", index)
        kept = buffers.get(key), buffers.get(key + ("fill",))
        if (kept[0] is not None and kept[1] is not None and np.array_equal(kept[0], mapped)
                and np.array_equal(kept[1], fill)):
            mapped, fill = kept[0], kept[1]
        buffers[key], buffers[key + ("fill",)] = mapped, fill
        out = _buffer(buffers, index, y.shape, y.dtype)
        call = moves.take_call(program.extension(), x, mapped, fill, out,
                               native_float._threads)
        return call, out, out_layout

    def _constant_operand_call(self, index: int, step: Step, env: Env, layout: Layouts,
                               buffers: dict[object, np.ndarray]
                               ) -> tuple[Call, np.ndarray, object] | None:
        """A quantized Add or Mul of an 8-bit tensor and a one-value constant is a function
        of one byte: a lookup in the table of the step's own results on the 256 codes."""
        names = step.inputs
        if len(names) != 2 or len([o for o in step.outputs if o]) != 1:
            return None
        const = [k for k in (0, 1) if names[k] in self._constants]
        if len(const) != 1:
            return None
        c, xpos = env.get(names[const[0]]), 1 - const[0]
        x = env.get(names[xpos])
        if not (isinstance(c, np.ndarray) and isinstance(x, np.ndarray)) or c.size != 1 or (
                c.ndim > x.ndim or x.dtype.itemsize != 1 or x.dtype.kind not in "iu"
                or not x.flags.c_contiguous or x.size < 2):
            return None     # (one element: the reference may treat either operand as scalar)
        table = self._tables.get(index)
        if table is None:
            codes = np.arange(256, dtype=np.uint8).view(x.dtype)
            args = [codes, c] if xpos == 0 else [c, codes]
            (y,) = step.fn(*args, layout=CF)
            if y.size != 256 or y.dtype.itemsize != 1 or y.dtype.kind not in "iu":
                return None
            table = self._tables[index] = np.ascontiguousarray(y.reshape(-1))
        out = _buffer(buffers, index, x.shape, table.dtype)
        ext = program.extension()
        call = (ext.lookup8, (x.view(np.uint8).reshape(-1), table.view(np.uint8),
                              out.view(np.uint8).reshape(-1), 1, native_float._threads))
        have = layout.get(names[xpos], CF)
        return call, out, (have if x.ndim >= 3 else CF)

    def _clip_call(self, index: object, step: Step, env: Env, layout: Layouts,
                   buffers: dict[object, np.ndarray]
                   ) -> tuple[Call | list[Call], np.ndarray, object] | None:
        """Clip with bounds given as inputs (opset >= 11; an older Clip has one input and its
        bounds in attributes, which a step does not show: it runs plain): constant bounds
        as `float_clamp`'s arguments, computed ones (a bound from the data's maximum) as
        float_binary's ClipLow then ClipHigh with the one-value bound broadcast (an absent
        bound the type's lowest / largest finite value): float_ops.Clip's selects, which
        keep -0."""
        x = env.get(step.inputs[0])
        if len(step.inputs) < 2 or not isinstance(x, np.ndarray):
            return None
        out_layout = _elementwise_layout(step.inputs[:1], [x], layout)
        if out_layout is None:
            return None
        if any(n and n not in self._constants for n in step.inputs[1:3]):
            return self._computed_clip_calls(index, step, x, env, buffers, out_layout)
        bounds = [env[n] if n else None for n in step.inputs[1:3]] + [None]
        made = program.clip_call(x, bounds[0], bounds[1], _buffer(buffers, index, x.shape),
                                 native_float._threads)
        return None if made is None else (made[0], made[1], out_layout)

    def _computed_clip_calls(self, index: object, step: Step, x: np.ndarray, env: Env,
                             buffers: dict[object, np.ndarray], out_layout: object
                             ) -> tuple[list[Call], np.ndarray, object] | None:
        if x.dtype != np.float32:
            return None
        calls: list[Call] = []
        y = x
        for k, name in enumerate((step.inputs + ["", ""])[1:3]):
            bound = env.get(name) if name else _CLIP_LIMITS[k]
            if (not isinstance(bound, np.ndarray) or bound.dtype != x.dtype
                    or bound.size != 1 or bound.ndim > x.ndim):
                return None
            made = program.FLOAT_KERNELS[("ClipLow", "ClipHigh")[k]](
                [y, bound], _buffer(buffers, (index, "clip", k), x.shape),
                native_float._threads)
            if made is None:
                return None
            calls.append(made[0])
            y = made[1]
        return calls, y, out_layout

    def _pow_call(self, index: object, step: Step, env: Env, layout: Layouts,
                  buffers: dict[object, np.ndarray]
                  ) -> tuple[Call | list[Call], np.ndarray, object] | None:
        """Pow of float32 by a fixed exponent of 2 or 3: x * x, then times x for 3
        (float_ops.Pow), native Muls; by another fixed float32 exponent (or 2 or 3 where
        ONNX Runtime's loop does not take it per span), the C library's powf per element
        ((O163))."""
        x, e = (env.get(n) for n in (step.inputs + ["", ""])[:2])
        if not isinstance(x, np.ndarray) or not isinstance(e, np.ndarray) or e.size != 1:
            return None
        if step.inputs[1] not in self._fixed_names or e.dtype.kind not in "fiu" or (
                e.ndim > x.ndim):
            return None                 # (a higher-rank exponent would add unit axes)
        out_layout = _elementwise_layout(step.inputs[:1], [x], layout)
        if out_layout is None or len(step.inputs) != 2:
            return None
        if ort_math.scalar_operand(x.shape, e.shape) != 1 or (
                e.reshape(-1)[0] not in (2, 3)):
            # ONNX Runtime's pow, not x * x ((O107))
            made = program.powf_call(x, e, _buffer(buffers, index, x.shape),
                                     native_float._threads)
            return None if made is None else (made[0], made[1], out_layout)
        make = program.FLOAT_KERNELS["Mul"]
        cube = e.reshape(-1)[0] == 3
        made = make([x, x], _buffer(buffers, (index, "square") if cube else index, x.shape),
                    native_float._threads)
        if made is None or not cube:
            return None if made is None else (made[0], made[1], out_layout)
        times = make([made[1], x], _buffer(buffers, index, x.shape), native_float._threads)
        return None if times is None else ([made[0], times[0]], times[1], out_layout)

    def _chain_call(self, index: object, step: Step, env: Env, layout: Layouts,
                    buffers: dict[object, np.ndarray]
                    ) -> tuple[Call | list[Call], np.ndarray, object] | None:
        """A fused chain of element-wise steps (lowp.runtime.fuse_float) as one float_fused
        call, on inputs of the layouts its steps would each run on natively: all of one
        layout and shape or one value (else channels-last views where that holds, as
        `_channels_last_operands`), every intermediate of the result's shape."""
        arrays = [env.get(n) for n in step.inputs]
        if any(not isinstance(v, np.ndarray) for v in arrays):
            return None
        have: list[np.ndarray] = arrays  # type: ignore[assignment]
        out_layout = _elementwise_layout(step.inputs, have, layout)
        if out_layout is None:
            have = _channels_last_operands(step.inputs, have, layout)
            out_layout = CL
        shape = step.chain.result_shape(have) if have else None
        made = None if shape is None else program.fused_call(
            step.chain.code, [have[i] for i in step.chain.native_inputs],
            _buffer(buffers, index, shape), native_float._threads, out_layout is CL)
        if made is None:
            return self._member_calls(index, step, env, layout, buffers)
        return made[0], made[1], out_layout

    def _member_calls(self, index: object, step: Step, env: Env, layout: Layouts,
                      buffers: dict[object, np.ndarray]
                      ) -> tuple[list[Call], np.ndarray, object] | None:
        """The native calls of a chain's steps one by one (each as `_float_call` makes it,
        into buffers of the signature), where the fused call does not fit the arrays (an
        intermediate of another shape than the result, say); None unless every step has
        one."""
        local = {n: env[n] for n in step.inputs}
        local_layout = {n: layout.get(n, CF) for n in step.inputs}
        # with a channels-last input, members that could run either way (a LayerNorm's
        # (1, 1, H, W) statistics times a (1, C, 1, 1) scale) run channels-last, so that
        # the members meeting that input find one layout
        prefer = CL if any(lay is CL for lay in local_layout.values()) else None
        calls: list[Call] = []
        for k, member in enumerate(step.chain.steps):
            made = self._float_call(("chain", index, k), member, local, local_layout, buffers,
                                    prefer)
            if made is None:
                return None
            call, y, out_layout = made
            calls.extend(call if isinstance(call, list) else [call])
            local[member.outputs[0]] = y
            local_layout[member.outputs[0]] = out_layout if y.ndim >= 3 else CF
        return calls, y, local_layout[step.outputs[0]]

    def _dequantize_channels_call(self, index: object, step: Step, arrays: list[np.ndarray],
                                  buffers: dict[object, np.ndarray]
                                  ) -> tuple[list[Call], np.ndarray, object] | None:
        """A DequantizeLinear of channels-first 8-bit data (rank 3 or more) with one constant
        scale and zero point per channel along axis 1 (docs/operators.md (O240)'s grids):
        one table lookup per image and channel plane, each channel's table the step's own
        results on the 256 codes, so the values are the plain run's bit for bit (ONNX
        Runtime's (x - zero_point) * scale in float32). None for any other form."""
        x, scale = arrays[0], arrays[1]
        if (x.ndim < 3 or step.qdq_axis is None or step.qdq_axis % x.ndim != 1
                or scale.size != x.shape[1] or x.dtype.itemsize != 1
                or x.dtype.kind not in "iu" or not x.flags.c_contiguous or x.size == 0):
            return None
        channels = x.shape[1]
        table = self._tables.get(index)
        if table is None or table.shape != (channels, 256):
            codes = np.arange(256, dtype=np.uint8).view(x.dtype)
            codes = np.ascontiguousarray(np.broadcast_to(
                codes.reshape((1, 1, 256) + (1,) * (x.ndim - 3)),
                (1, channels, 256) + (1,) * (x.ndim - 3)))
            (values,) = step.fn(codes, scale, arrays[2], layout=CF)
            if values.dtype != np.float32:
                return None             # (a float16 scale: the plain run rounds, (O146))
            table = self._tables[index] = np.ascontiguousarray(values.reshape(channels, 256))
        out = _buffer(buffers, index, x.shape)
        calls: list[Call] = []
        for n in range(x.shape[0]):
            for c in range(channels):
                made = program.dequantize_call(x[n, c], table[c], out[n, c],
                                               native_float._threads)
                if made is None:
                    return None
                calls.append(made[0])
        return calls, out, CF

    def _float_call(self, index: object, step: Step, env: Env, layout: Layouts,
                    buffers: dict[object, np.ndarray], prefer: object = None
                    ) -> tuple[Call | list[Call], np.ndarray, object] | None:
        """The native call computing float `step` (and its output buffer and layout), when
        `program.FLOAT_KERNELS` covers it on these inputs; None to run it the plain way.
        `prefer` CL: an element-wise step whose channels-first operands are channels-last
        too at no cost (`_channels_last_views`) gives a channels-last result."""
        if len([o for o in step.outputs if o]) != 1 or not native_float._enabled:
            return None
        if step.chain is not None:
            return self._chain_call(index, step, env, layout, buffers)
        if step.kind == "float" and step.op_type == "Clip":
            return self._clip_call(index, step, env, layout, buffers)
        if step.kind == "float" and step.op_type == "Pow":
            return self._pow_call(index, step, env, layout, buffers)
        vals = [env.get(n) for n in step.inputs]
        if any(not isinstance(v, np.ndarray) for v in vals):
            return None
        arrays: list[np.ndarray] = vals  # type: ignore[assignment]
        threads = native_float._threads
        if step.kind == "dequantize":
            x = arrays[0]
            have = layout.get(step.inputs[0], CF)
            if (len(arrays) != 3 or step.inputs[1] not in self._constants
                    or step.inputs[2] not in self._constants
                    or (x.ndim >= 3 and have not in step.layouts)):
                return None
            if arrays[1].size != 1:
                return self._dequantize_channels_call(index, step, arrays, buffers)
            table = self._tables.get(index)
            if table is None:
                codes = np.arange(256, dtype=np.uint8).view(x.dtype)
                (table,) = step.fn(codes, arrays[1], arrays[2], layout=CF)
                table = self._tables[index] = np.ascontiguousarray(table)
            made = program.dequantize_call(x, table, _buffer(buffers, index, x.shape), threads)
            out_layout = step.output_layout or (have if x.ndim >= 3 else CF)
        elif step.kind == "float" and step.op_type in program.COMPARE_CODES:
            if len(arrays) != 2 or _elementwise_layout(step.inputs, arrays, layout) is not CF:
                return None
            try:
                shape = np.broadcast_shapes(arrays[0].shape, arrays[1].shape)
            except ValueError:
                return None                     # the plain run reports it, naming the node
            made = program.compare_call(step.op_type, arrays[0], arrays[1],
                                        _buffer(buffers, index, shape, np.bool_), threads)
            out_layout = CF
        elif (step.kind == "float" and step.op_type in program.INTEGER_CODES
              and len(arrays) == 2 and arrays[0].dtype.kind in "bi"):
            # (a Loop body's iteration counter and condition: int64 or int32 arithmetic,
            # logic of bools)
            if _elementwise_layout(step.inputs, arrays, layout) is not CF:
                return None
            try:
                shape = np.broadcast_shapes(arrays[0].shape, arrays[1].shape)
            except ValueError:
                return None                     # the plain run reports it, naming the node
            made = program.integer_call(step.op_type, arrays[0], arrays[1], _buffer(
                buffers, index, shape, arrays[0].dtype), threads)
            out_layout = CF
        elif step.kind == "float" and step.op_type in ("Where", "Not"):
            if (len(arrays) != (3 if step.op_type == "Where" else 1)
                    or _elementwise_layout(step.inputs, arrays, layout) is not CF):
                return None
            try:
                shape = np.broadcast_shapes(*(v.shape for v in arrays))
            except ValueError:
                return None                     # the plain run reports it, naming the node
            if step.op_type == "Not":
                made = program.not_call(arrays[0], _buffer(buffers, index, shape, np.bool_),
                                        threads)
            elif arrays[1].dtype == arrays[2].dtype and not arrays[1].dtype.hasobject:
                made = program.where_call(arrays[0], arrays[1], arrays[2], _buffer(
                    buffers, index, shape, arrays[1].dtype), threads)
            else:
                return None
            out_layout = CF
        else:
            make = program.FLOAT_KERNELS.get(step.op_type)
            if step.kind != "float" or make is None or len(arrays) != make.arity:
                return None
            out_layout = _elementwise_layout(step.inputs, arrays, layout)
            if step.op_type in _ONNX_ORDER and out_layout is not CF:
                return None
            if out_layout is None:
                arrays = _channels_last_operands(step.inputs, arrays, layout)
                out_layout = CL
            elif (out_layout is CF and prefer is CL and step.op_type not in _ONNX_ORDER
                  and not step.nchwc_block):
                views = _channels_last_views(arrays)
                if views:
                    arrays, out_layout = views, CL
            if not arrays or (step.nchwc_block and out_layout is not CF):
                return None     # (ONNX Runtime's NCHWc places are channels-first ones)
            try:
                shape = np.broadcast_shapes(*(v.shape for v in arrays))
            except ValueError:
                return None                     # the plain run reports it, naming the node
            made = make(arrays, _buffer(buffers, index, shape), threads, step.nchwc_block,
                        out_layout is CL)
        if made is None:
            return None
        return made[0], made[1], out_layout


def _covers(v: object, b: np.ndarray) -> bool:
    """`v` is the buffer `b`, or a contiguous view of exactly its memory (a reshape)."""
    return v is b or (type(v) is np.ndarray and v.flags.c_contiguous and v.dtype == b.dtype
                      and v.size == b.size and _geometry(v)[0] == _geometry(b)[0])


# Float kernels whose NaN bits depend on each element's position in ONNX order (ONNX
# Runtime's packets and scalar tails, docs/operators.md (O148)), or which zero of a tie they
# keep (Max and Min, (O105): the run's tail gives E1, its packets E2; channels-last memory
# puts other elements there, (O155)): run on channels-first data only
_ONNX_ORDER = frozenset({"Floor", "Max", "Min"})


def _elementwise_layout(names: list[str], arrays: list[np.ndarray], layout: Layouts) -> object:
    """The layout an element-wise float step's result has when computed on its inputs as
    they are: theirs when all of rank >= 3 share one layout and shape (nothing broadcasts
    across axes that a layout moves), channels-first when they are all channels-first;
    else None (the step runs the plain way, which converts)."""
    have = [(layout.get(n, CF), v.shape) for n, v in zip(names, arrays, strict=True)
            if v.ndim >= 3]
    if all(lay is CF for lay, _ in have):
        return CF
    if len(have) == len(arrays) and len(set(have)) == 1:
        return have[0][0]
    return None


def _channels_last_operands(names: list[str], arrays: list[np.ndarray],
                            layout: Layouts) -> list[np.ndarray]:
    """The operands of an element-wise step as channels-last views, when one is
    channels-last and every other has its rank or one value (a per-channel constant such
    as a (1, C, 1, 1) bias): a channels-first operand of that rank viewed with its channel
    axis last broadcasts as its channels-first form does. Empty when that does not hold."""
    have = [layout.get(n, CF) for n in names]
    ranks = {v.ndim for v in arrays if v.size != 1}
    if CL not in have or len(ranks) != 1 or min(ranks) < 3:
        return []
    (rank,) = ranks
    views = []
    for v, lay in zip(arrays, have, strict=True):
        if v.size == 1:
            views.append(v.reshape((1,) * rank))
        elif v.ndim != rank:
            return []
        else:
            views.append(v if lay is CL else np.moveaxis(v, 1, -1))
    return views


def _channels_last_views(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Channels-first operands of an element-wise step as channels-last views that are
    contiguous, when every one of more than one value has one rank >= 3 and such a view
    (its channel axis of 1, or every other axis but the batch of 1: a (1, 1, H, W)
    statistic, a (1, C, 1, 1) scale); they broadcast as their channels-first forms do, so
    the result is the channels-first one moved. Empty when that does not hold."""
    ranks = {v.ndim for v in arrays if v.size != 1}
    if len(ranks) != 1 or min(ranks) < 3:
        return []
    (rank,) = ranks
    views = [v.reshape((1,) * rank) if v.size == 1 else np.moveaxis(v, 1, -1)
             for v in arrays]
    return views if all(v.flags.c_contiguous for v in views) else []


def _buffer(buffers: dict[object, np.ndarray], index: object, shape: tuple[int, ...],
            dtype: np.dtype | type = np.float32) -> np.ndarray:
    """An output buffer of a signature's step (`index`: the step's position, or it and a
    call's), kept while the shape and dtype are."""
    b = buffers.get(index)
    if b is None or b.shape != shape or b.dtype != dtype:
        b = buffers[index] = np.empty(shape, dtype)
    return b


@dataclass
class _Segment:
    """Consecutive replayed entries run as one native Program."""

    program: Any
    entries: list[_Replay | _Fixed]
    checks: list[tuple[str, object, object]]    # tensors read from outside the segment
    outputs: dict[str, np.ndarray]
    layouts: dict[str, object]
    execute: Execute
    exports: dict[str, np.ndarray] | None = None    # the outputs read after the segment
    export_layouts: dict[str, object] | None = None
    owners: list[Step] = field(default_factory=list)    # the step of each Program call
    guards: list[tuple[Step, tuple[object, ...]]] = field(default_factory=list)
    # status arrays of calls that found their run-time values outside what they compute
    # (set_slice): the segment's steps then run the plain way, from the same inputs (the
    # Program wrote only its own buffers)
    retries: list[np.ndarray] = field(default_factory=list)
    # (slot, feed): calls that read a feed where the caller keeps it, through a
    # FeedSlot set to the run's array (or to the signature's buffer it was copied into)
    slots: list[tuple[Any, str]] = field(default_factory=list)
    # the same steps whose output buffers not live at the same time share memory
    # (`_shared`): run in place of this one once a run of both gave the same exports, and
    # on runs that store only the exports
    shared: _Segment | None = None
    verified: bool = False
    relocation: sharing.Relocation | None = None     # (of a shared segment: its arena)

    def run(self, env: Env, layout: Layouts, everything: bool,
            timings: Timings | None = None) -> None:
        shared = self.shared
        if shared is not None and not everything:
            if self.verified:
                shared.run(env, layout, everything, timings)
                return
            if self._run(env, layout, everything, timings):
                self._verify(shared, env)
            return
        self._run(env, layout, everything, timings)

    def _verify(self, shared: _Segment, env: Env) -> None:
        """Run `shared` on an arena of 0xff bytes after this segment's run: it replaces
        this one when every export is the same bytes (no call read memory another wrote
        before it); else it is dropped, and this segment's Program runs again (`shared`
        wrote the buffers they share)."""
        exports = self.exports or {}
        expected = {n: env[n].copy() for n in exports}
        assert shared.relocation is not None
        shared.relocation.poison()
        for slot, name in shared.slots:
            slot.set(env[name])
        shared.program.run()
        same = not any(status[0] for status in shared.retries) and all(
            shared.outputs[n].tobytes() == expected[n].tobytes() for n in exports)
        if same:
            self.verified = True
            return
        self.shared = None
        for slot, name in self.slots:
            slot.set(env[name])
        self.program.run()

    def _run(self, env: Env, layout: Layouts, everything: bool,
             timings: Timings | None = None) -> bool:
        """Run the segment; True when its Program ran to the end (no check or retry sent
        its steps the plain way)."""
        for slot, name in self.slots:
            slot.set(env[name])
        if self.checks and not _match(self.checks, env, layout):
            for e in self.entries:
                _timed(self.execute, e.step, env, layout, timings, PLAIN)
            return False
        if timings is None:
            self.program.run()
        else:
            ns = np.zeros(len(self.owners), np.int64)
            self.program.run_timed(ns)
            for step, t in zip(self.owners, ns.tolist(), strict=True):
                _add_time(timings, step, t * 1e-9, "")
        if self.retries and any(status[0] for status in self.retries):
            for e in self.entries:
                _timed(self.execute, e.step, env, layout, timings, PLAIN)
            return False
        for step, args in self.guards:
            _check_guard(step, args)
        if everything or self.exports is None:
            env.update(self.outputs)
            layout.update(self.layouts)
        else:
            env.update(self.exports)
            layout.update(self.export_layouts)  # type: ignore[arg-type]
        return True


@dataclass
class Direct:
    """A ready signature's replayed run that is native Programs only, as `Replayer.run`
    makes it, without the tensor dict: each feed copied into the signature's buffer or set
    into the slots that read it in place, the Programs run, their status and guard arrays
    checked; `run` returns the outputs' arrays (the signature's buffers: copy them)."""

    # name, the signature's buffer, read in place, the slots reading it
    feeds: list[tuple[str, np.ndarray, bool, list[Any]]]
    segments: list[_Segment]        # the forms that run (a verified shared one or itself)
    outputs: dict[str, np.ndarray]  # after a run: the outputs' values
    layouts: dict[str, object]      # their layouts (channels-first when not named)

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray] | None:
        """Run on `feeds`, arrays of the signature's names, dtypes and shapes; None when a
        call reported run-time values outside what it computes (its steps run the plain
        way: run `Replayer.run` instead, which does the same from the start)."""
        for name, buffer, in_place, slots in self.feeds:
            v = feeds[name]
            if not (in_place and v.flags.c_contiguous):
                np.copyto(buffer, v)
                v = buffer
            for slot in slots:
                slot.set(v)
        for segment in self.segments:
            segment.program.run()
            for status in segment.retries:
                if status[0]:
                    return None
            for step, args in segment.guards:
                _check_guard(step, args)
        return self.outputs


@dataclass
class _Calls:
    """A replayed entry whose calls stay Python calls (a binding no Program takes)."""

    entry: _Replay
    execute: Execute

    def run(self, env: Env, layout: Layouts, everything: bool,
            timings: Timings | None = None) -> None:
        entry = self.entry
        if not _match(entry.inputs, env, layout):
            _timed(self.execute, entry.step, env, layout, timings, PLAIN)
            return
        t0 = time.perf_counter() if timings is not None else 0.0
        for fn, args in entry.calls:
            fn(*args)
            if _guarded(fn):
                _check_guard(entry.step, args)
            if _retried(fn) and _status(args)[0]:
                _timed(self.execute, entry.step, env, layout, timings, PLAIN)
                return
        if timings is not None:
            _add_time(timings, entry.step, time.perf_counter() - t0, CALLS)
        for n, v, lay in entry.outputs:
            env[n] = v
            layout[n] = lay


@dataclass
class _Plain:
    """A step run the plain way; `stable` are the signature's buffers its outputs are
    copied into (those that replayed steps read)."""

    step: Step
    execute: Execute
    stable: list[tuple[str, np.ndarray]]

    def run(self, env: Env, layout: Layouts, everything: bool,
            timings: Timings | None = None) -> None:
        if timings is None:
            self.execute(self.step, env, layout)
        else:
            _timed(self.execute, self.step, env, layout, timings, PLAIN)
        if self.stable:
            _stabilize(self.stable, env)


# how a profiled step ran when not in a native Program (the key's suffix)
PLAIN = " (python)"         # the plain way: numpy, or a native call made from Python
CALLS = " (calls)"          # its recorded native calls, repeated from Python


def _add_time(timings: Timings, step: Step, seconds: float, how: str) -> None:
    key = f"{step.op_type}:{step.kind}{how}"
    timings[key] = timings.get(key, 0.0) + seconds


def _timed(execute: Execute, step: Step, env: Env, layout: Layouts,
           timings: Timings | None, how: str) -> None:
    if timings is None:
        execute(step, env, layout)
        return
    t0 = time.perf_counter()
    execute(step, env, layout)
    _add_time(timings, step, time.perf_counter() - t0, how)


def _native_capable(step: Step) -> bool:
    """The step may replay (so the tensors it reads had better be stable memory)."""
    if step.kind == "int" and (step.op_type in RESHAPES or step.op_type in moves.MOVES):
        return True         # quantized data movement: a native copy by its index map
    return step.replayable or step.kind == "dequantize" or step.chain is not None or (
        step.kind == "float" and (step.op_type in program.FLOAT_KERNELS
                                  or step.op_type in program.COMPARE_CODES
                                  or step.op_type in program.INTEGER_CODES
                                  or step.op_type in NATIVE_FLOAT
                                  or step.op_type in ("Clip", "Pow")
                                  or step.op_type in RESHAPES or step.op_type in moves.MOVES
                                  or step.op_type in ("If", "Cast", "CastLike", "Where",
                                                      "Not")))


def _stable_outputs(index: int, step: Step, env: Env, buffers: dict[object, np.ndarray],
                    reads: frozenset[str]) -> list[tuple[str, np.ndarray]]:
    """Buffers of the signature for the outputs of plain step `index` that a step which may
    replay reads (made or remade to the outputs' current shape and dtype)."""
    out = []
    for n in step.outputs:
        v = env.get(n) if n in reads else None
        if type(v) is not np.ndarray or v.dtype.hasobject:
            continue
        key = ("out", index, n)
        b = buffers.get(key)
        if b is None or b.shape != v.shape or b.dtype != v.dtype:
            b = buffers[key] = np.empty(v.shape, v.dtype)
        out.append((n, b))
    return out


def _keep_outputs(index: int, record: _Record, buffers: dict[object, np.ndarray],
                  reads: frozenset[str]) -> None:
    """Name a native float step's recorded outputs (buffers of the signature, or views of
    them) as the buffers its plain runs copy into, for those a step which may replay reads."""
    for n, v, _ in record.outputs:
        if n in reads and type(v) is np.ndarray and v.flags.writeable:
            buffers[("out", index, n)] = v


def _stabilize(stable: list[tuple[str, np.ndarray]], env: Env) -> None:
    """Copy plain outputs into the signature's buffers (the same memory on every run, so
    that the steps reading them can replay); an output of another shape stays as it is
    (the replayed steps' checks then send them the plain way)."""
    for n, b in stable:
        v = env[n]
        if v is not b and v.shape == b.shape and v.dtype == b.dtype:
            np.copyto(b, v)
            env[n] = b


Runner = _Segment | _Calls | _Plain


def _compile(plan: list[Entry], execute: Execute, stable: frozenset[str],
             outputs: frozenset[str], buffers: dict[object, np.ndarray],
             memoize: bool = False, in_place: dict[str, np.ndarray] | None = None,
             *, share: bool = False) -> list[Runner]:
    """Maximal runs of replayed entries whose calls a Program takes become one `_Segment`
    each; `stable` names the tensors that are the same memory on every run (constants and
    the owned feeds); a segment stores only `outputs` and what later steps read. The
    calls reading the feeds `in_place` (name -> owned buffer) read them through slots.
    With `share`, each segment gets a second Program whose output buffers not live at the
    same time share memory (`_shared`)."""
    runners: list[Runner] = []
    current: list[_Replay | _Fixed] = []

    def close() -> None:
        if current:
            runners.append(_segment(list(current), execute, stable, memoize, in_place or {}))
            current.clear()

    for index, entry in enumerate(plan):
        if type(entry) is _Fixed or (type(entry) is _Replay
                                     and program.appendable(entry.calls)):
            current.append(entry)  # type: ignore[arg-type]
            continue
        close()
        if type(entry) is _Replay:
            runners.append(_Calls(entry, execute))
            continue
        step: Step = entry  # type: ignore[assignment]
        runners.append(_Plain(step, execute, [
            (n, buffers[("out", index, n)]) for n in step.outputs
            if ("out", index, n) in buffers]))
    close()
    read_later: set[str] = set(outputs)
    for runner in reversed(runners):
        if type(runner) is _Segment:
            runner.exports = {n: v for n, v in runner.outputs.items() if n in read_later}
            runner.export_layouts = {n: runner.layouts[n] for n in runner.exports}
            steps = [e.step for e in runner.entries]
        else:
            steps = [runner.entry.step if type(runner) is _Calls else runner.step]  # type: ignore[union-attr]
        read_later.update(n for step in steps for n in step.inputs if n)
    if share:
        for runner in runners:
            if type(runner) is _Segment:
                runner.shared = _shared(runner, runners, outputs, execute, stable,
                                        in_place or {})
    return runners


def _touched(runner: Runner) -> Iterable[np.ndarray]:
    """Every array a runner's calls, inputs and outputs hold."""
    if type(runner) is _Plain:
        return [b for _, b in runner.stable]
    entries = runner.entries if type(runner) is _Segment else [runner.entry]  # type: ignore[union-attr]
    held: list[object] = []
    for e in entries:
        if type(e) is _Replay:
            held += [a for _, args in e.calls for a in args]
            held += [v for _, v, _ in e.inputs]
        held += [v for _, v, _ in e.outputs]
    return sharing.arrays(held)


def _shared(segment: _Segment, runners: list[Runner], outputs: frozenset[str],
            execute: Execute, stable: frozenset[str], in_place: dict[str, np.ndarray]
            ) -> _Segment | None:
    """`segment` again, its steps' output buffers moved into one arena where their lives
    (over the Program's calls) do not overlap; None when nothing moves. What another
    runner touches, what the segment reads from outside, the values of fixed steps and
    those read by later runners stay where they are; the outputs the caller reads live to
    the segment's end."""
    outside = {id(sharing.root(a)) for r in runners if r is not segment for a in _touched(r)}
    made: set[str] = set()
    for e in segment.entries:
        held = [v for n, v, _ in e.inputs if n not in made] if type(e) is _Replay else [
            v for _, v, _ in e.outputs]
        outside.update(id(sharing.root(a)) for a in sharing.arrays(held))
        made.update(n for n, _, _ in e.outputs)
    exports = segment.exports or {}
    outside.update(id(sharing.root(v)) for n, v in exports.items() if n not in outputs)
    to_end = {id(sharing.root(v)) for n, v in exports.items() if n in outputs}
    calls = [c for e in segment.entries if type(e) is _Replay for c in e.calls]
    produced = sharing.arrays([v for e in segment.entries if type(e) is _Replay and e.calls
                               for _, v, _ in e.outputs])
    blocks = sharing.plan(calls, produced, outside, to_end)
    if not blocks:
        return None
    move = sharing.Relocation(blocks)
    entries: list[_Replay | _Fixed] = [
        _Replay(e.step, [move.call(c) for c in e.calls],
                [(n, move.value(v), lay) for n, v, lay in e.inputs],
                [(n, move.value(v), lay) for n, v, lay in e.outputs])  # type: ignore[misc]
        if type(e) is _Replay else e for e in segment.entries]
    shared = _segment(entries, execute, stable, False, in_place)
    shared.exports = {n: shared.outputs[n] for n in exports}
    shared.export_layouts = segment.export_layouts
    shared.relocation = move
    return shared


def _in_place_feeds(plan: list[Entry], owned: dict[str, np.ndarray],
                    outputs: frozenset[str] | None) -> frozenset[str]:
    """The float32 feeds whose every reader is a replayed step that a Program takes, whose
    one call reads the feed's buffer, all of it, through a slot (`_slot_reads`): a replayed
    run hands them the run's feed instead of copying it. A feed that is also an output (or
    every tensor is) keeps its copy."""
    found = set()
    for name, buffer in owned.items():
        if outputs is None or name in outputs or buffer.size == 0 or buffer.dtype != np.float32:
            continue
        readers = [e for e in plan
                   if name in (e.step.inputs if isinstance(e, (_Replay, _Fixed)) else e.inputs)]
        if readers and all(type(e) is _Replay and program.appendable(e.calls)
                           and name in (_slot_reads(e.calls, {name: buffer}) or ())
                           for e in readers):
            found.add(name)
    return frozenset(found)


def _whole(x: object, buffer: np.ndarray) -> bool:
    """`x` is a C-contiguous view of all of `buffer`."""
    return (type(x) is np.ndarray and x.dtype == buffer.dtype and x.size == buffer.size
            and x.flags.c_contiguous
            and x.__array_interface__["data"][0] == buffer.__array_interface__["data"][0])


def _slot_reads(calls: list[Call], feeds: dict[str, np.ndarray]) -> list[str | None] | None:
    """For one call of a binding with `program.FEED_SLOTS`: per argument it may read through
    a slot, the feed (of `feeds`, name -> buffer) it reads as all of the feed's buffer with
    no other argument over that buffer, or None; None when `calls` is not one such call."""
    if len(calls) != 1:
        return None
    slots = program.feed_slots(calls[0])
    if slots is None:
        return None
    args = calls[0][1]
    return [next((name for name, buffer in feeds.items() if _whole(args[i], buffer)
                  and not any(type(a) is np.ndarray and np.shares_memory(a, buffer)
                              for j, a in enumerate(args) if j != i)), None)
            for i in slots.positions]


def _segment(entries: list[_Replay | _Fixed], execute: Execute, stable: frozenset[str],
             memoize: bool = False, in_place: dict[str, np.ndarray] | None = None
             ) -> _Segment:
    prog = program.new_program()
    slots: list[tuple[Any, str]] = []
    made: set[str] = set()
    checks: list[tuple[str, object, object]] = []
    outputs: dict[str, np.ndarray] = {}
    layouts: dict[str, object] = {}
    owners: list[Step] = []
    guards: list[tuple[Step, tuple[object, ...]]] = []
    retries: list[np.ndarray] = []
    for e in entries:
        if type(e) is _Replay:
            checks += [i for i in e.inputs if i[0] not in made and i[0] not in stable]
            reads = _slot_reads(e.calls, in_place) if in_place else None
            if reads is not None and any(reads):
                read_by: list[Any] = []
                for name in reads:
                    slot = None
                    if name is not None:
                        slot = program.extension().FeedSlot()
                        slot.set(in_place[name])    # type: ignore[index]
                        slots.append((slot, name))
                    read_by.append(slot)
                feed_slots = program.feed_slots(e.calls[0])
                assert feed_slots is not None
                feed_slots.append(prog, e.calls[0][1], read_by)
            else:
                program.append(prog, e.calls)
            memory = memoized(e.calls) if memoize else None
            if memory is not None:
                prog.memoize_last(memory)
            owners += [e.step] * len(e.calls)
            guards += [(e.step, args) for fn, args in e.calls if _guarded(fn)]
            retries += [_status(args) for fn, args in e.calls if _retried(fn)]
        for n, v, lay in e.outputs:
            made.add(n)
            outputs[n] = v
            layouts[n] = lay
    return _Segment(prog, entries, checks, outputs, layouts, execute, owners=owners,
                    guards=guards, retries=retries, slots=slots)


# a product is skipped on unchanged operands when its multiply-adds outnumber the operands'
# elements (compared on each run, and copied when they changed) at least this many times
MEMO_RATIO = 16


def memoized(calls: list[Call]) -> list[np.ndarray] | None:
    """The memory a float product's one call reads (each operand's contiguous array:
    itself, or the array it is a view of), when the product is worth skipping on unchanged
    operands and writes no memory it reads; else None."""
    if len(calls) != 1 or getattr(calls[0][0], "__name__", "") != "float_sgemm_mlas":
        return None
    args = calls[0][1]
    a, b, c = args[0], args[1], args[2]
    init = args[8] if len(args) > 8 else None
    if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
            and isinstance(c, np.ndarray)) or a.ndim != 2 or b.ndim != 2:
        return None
    operands = [a, b] + ([init] if isinstance(init, np.ndarray) else [])
    memory = [_contiguous_memory(v) for v in operands]
    if any(v is None for v in memory):
        return None
    held: list[np.ndarray] = memory  # type: ignore[assignment]
    m, k, n = a.shape[0], a.shape[1], b.shape[1]
    if m * k * n < MEMO_RATIO * sum(v.size for v in held) or any(
            np.shares_memory(c, v) for v in held):
        return None
    return held


def _contiguous_memory(v: np.ndarray) -> np.ndarray | None:
    """`v`, or the C-contiguous array it is a view of (all the memory it may read)."""
    while not v.flags.c_contiguous and isinstance(v.base, np.ndarray):
        v = v.base
    return v if v.flags.c_contiguous else None


def _retried(fn: object) -> bool:
    """A call whose kernel reports in its last argument (a status array) that its run-time
    values are outside what it computes: set_slice, scatter_nd (an index out of range,
    which the plain way raises), float_attention (a nonpad_kv_seqlen value out of range),
    whose step then runs the plain way."""
    return getattr(fn, "__name__", "") in ("set_slice", "scatter_nd", "float_attention")


def _status(args: tuple[object, ...]) -> np.ndarray:
    status = args[-1]
    assert isinstance(status, np.ndarray)
    return status


def _guarded(fn: object) -> bool:
    """A call whose kernel reports bad data in a status array instead of raising (it runs
    inside Programs): gather_rows, whose indices are read at run time."""
    return getattr(fn, "__name__", "") == "gather_rows"


def _check_guard(step: Step, args: tuple[object, ...]) -> None:
    """Raise the error a guarded call's status array holds, naming `step`."""
    status = args[6]
    assert isinstance(status, np.ndarray)
    if status[0]:
        e = native_float.gather_error(status, int(args[4]))  # type: ignore[call-overload]
        raise NodeError(e.detail, step.op_type, step.name)


def _shape_fed(step: Step, fixed_names: frozenset[str]) -> bool:
    """A step whose output shape (or the part of its input it reads) is given by a value
    that is not the same on every run of a signature (`SHAPE_INPUTS` read from the feeds'
    values): its recorded calls hold that run's axes, starts or sizes as numbers, so they
    are not repeated; the step runs the plain way."""
    return any(k < len(step.inputs) and step.inputs[k] and step.inputs[k] not in fixed_names
               for k in SHAPE_INPUTS.get(step.op_type, ()))


def _match(inputs: list[tuple[str, object, object]], env: Env, layout: Layouts) -> bool:
    """The tensors are what was read when recorded: the same objects, or arrays over
    the same memory with the same shape and strides (a view made anew each run, say). The
    recorded arrays are alive, so an array at the same address is a view of the same
    buffer, never new memory that happens to be there."""
    for n, v, lay in inputs:
        cur = env.get(n)
        if cur is not v and not (type(cur) is np.ndarray and type(v) is np.ndarray
                                 and _geometry(cur) == _geometry(v)):
            return False
        if layout.get(n, CF) is not lay:
            return False
    return True


def _plan(steps: list[Step], first: list[_Record | None], second: list[_Record | None],
          fixed: set[int], fixed_names: frozenset[str]) -> list[Entry]:
    plan: list[Entry] = []
    for i, (step, a, b) in enumerate(zip(steps, first, second, strict=True)):
        if i in fixed and a is not None and b is not None and _same_values(a, b):
            plan.append(_Fixed(step, b.outputs))
        elif i in fixed:
            plan.append(step)
        elif a is not None and b is not None and _same(a, b) and not _shape_fed(
                step, fixed_names):
            plan.append(_Replay(step, b.calls, b.inputs, b.outputs))
        else:
            plan.append(step)
    return plan


def _same_values(a: _Record, b: _Record) -> bool:
    """Both runs gave equal outputs (a check of what `fixed_steps` concluded)."""
    return all(na == nb and la is lb and isinstance(va, np.ndarray) and isinstance(vb, np.ndarray)
               and va.dtype == vb.dtype and va.shape == vb.shape and np.array_equal(va, vb)
               for (na, va, la), (nb, vb, lb) in zip(a.outputs, b.outputs, strict=True))


def _same(a: _Record, b: _Record) -> bool:
    """Two recordings of a step did the same thing on the same memory. Both runs' arrays
    were alive at once (the first recording holds its own), so equal addresses mean the
    same buffers, not reused memory."""
    if len(a.calls) != len(b.calls) or len(a.outputs) != len(b.outputs):
        return False
    if not b.calls and not all(_is_view_of_inputs(v, b.inputs) for _, v, _ in b.outputs):
        return False    # a step without native calls replays only by handing on views
    for (fa, xa), (fb, xb) in zip(a.calls, b.calls, strict=True):
        if _function(fa) != _function(fb) or len(xa) != len(xb):
            return False
        if not all(_same_value(u, v) for u, v in zip(xa, xb, strict=True)):
            return False
    return all(na == nb and la is lb and _same_value(va, vb)
               for (na, va, la), (nb, vb, lb) in zip(a.outputs, b.outputs, strict=True))


def _is_view_of_inputs(value: np.ndarray, inputs: list[tuple[str, object, object]]) -> bool:
    """`value` is an input array or a view into one's memory (nothing was computed into
    it: an Identity hands on the input itself)."""
    return isinstance(value, np.ndarray) and any(
        isinstance(v, np.ndarray) and (v is value or (
            value.base is not None and np.shares_memory(value, v))) for _, v, _ in inputs)


def _function(fn: object) -> tuple[int, int]:
    """Identity of a function or bound method (bound methods are new objects per access)."""
    return id(getattr(fn, "__func__", fn)), id(getattr(fn, "__self__", None))


def _same_value(u: object, v: object) -> bool:
    if isinstance(u, list) or isinstance(v, list):      # (float_fused's inputs)
        return (isinstance(u, list) and isinstance(v, list) and len(u) == len(v)
                and all(_same_value(a, b) for a, b in zip(u, v, strict=True)))
    if isinstance(u, np.ndarray) or isinstance(v, np.ndarray):
        return (isinstance(u, np.ndarray) and isinstance(v, np.ndarray)
                and _geometry(u) == _geometry(v))
    return type(u) is type(v) and bool(u == v)


def _geometry(a: np.ndarray) -> tuple[object, ...]:
    return a.__array_interface__["data"][0], a.shape, a.strides, a.dtype.str
