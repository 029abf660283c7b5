"""Session: load a (QDQ) ONNX model once, lower it, and run it on feeds."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import DataError, InternalError, LowpError, named
from ..fixedpoint import RequantMode
from ..inputs import check_tensor_outputs, model_inputs
from ..ir.graph import load_model
from . import (
    blas_threads,
    control,
    conv_bias_fusion,
    conv_integer_fusion,
    fuse_float,
    moves,
    native_float,
    ort_cast_elimination,
    ort_constant_weights,
    ort_conv_add,
    ort_conv_scale,
    ort_double_qdq,
    ort_fusions,
    ort_inline_cast_like,
    ort_insert_cast,
    ort_nchwc_add,
    ort_noop_elimination,
    ort_not_where,
    ort_qdq_cse,
    ort_qdq_propagation,
    ort_quick_gelu,
    ort_s8_to_u8,
    ort_weight_bias,
    per_token_fusion,
    pool_first,
    quantize_first,
)
from .allocator import tune_malloc
from .backends import ReferenceBackend, make_backend
from .float_registry import MapSequence
from .inline_if import inline_constant_ifs
from .lower import fold_constant_quantize, lower
from .ml_ops import maps_of_scores, scaler_as_arithmetic
from .plan import CF, CL, Step
from .prepacked import freeze
from .replay import NATIVE_FLOAT, Direct, Replayer
from .subgraph_rewrites import in_subgraphs
from .tape import call

# The rewrites of a loaded model, in order: ONNX Runtime's CastLike inlined, constant Ifs
# inlined, then ONNX Runtime's
# graph transformations that change what a model computes (its merging of identical Q/DQ
# nodes, top level only, its Q/DQ pair merging and
# propagation, weight and bias folding, int8 Q/DQ pairs made uint8), a float32 Scaler as
# Sub and Mul (the same arithmetic, as steps that replay), its float16 chains run in
# float32 (InsertCastTransformer, top level only), then EliminateIdentity,
# NoopElimination, CastElimination, ConvAddFusion, ConvMulFusion and ConvBNFusion, its
# level-1 and level-2 fusions (QuickGeluFusion last), its level-3 NCHWc Add fusion and
# ConvAddActivationFusion, then lowp's own exact rewrites (quantize before a Concat,
# max-pool the codes, a per-token quantized product as one step, ConvInteger with its bias,
# Cast and scale, a Conv's bias Add and Relu behind a Squeeze). Each takes a model and
# returns it unchanged or a new one.
# ONNX Runtime's rewrites (ort_*) run inside Loop/Scan bodies and If branches too, as ONNX
# Runtime's transformers do (lowp.runtime.subgraph_rewrites); lowp's own exact ones run on
# the top-level graph.
LOAD_REWRITES: tuple[Callable[[onnx.ModelProto], onnx.ModelProto], ...] = (
    in_subgraphs(ort_inline_cast_like.apply), inline_constant_ifs, ort_qdq_cse.apply,
    *map(in_subgraphs, (
        ort_double_qdq.apply, ort_qdq_propagation.apply, ort_weight_bias.apply,
        ort_s8_to_u8.apply)),
    fold_constant_quantize, scaler_as_arithmetic, ort_insert_cast.apply, *map(in_subgraphs, (
        ort_noop_elimination.apply, ort_not_where.apply, ort_cast_elimination.apply,
        ort_constant_weights.apply,
        ort_conv_scale.apply,
        ort_fusions.apply, ort_quick_gelu.apply, ort_nchwc_add.apply, ort_conv_add.apply)),
    quantize_first.apply, pool_first.apply, per_token_fusion.apply,
    conv_integer_fusion.apply, conv_bias_fusion.apply)


class Session:
    """Run an ONNX model — float or QDQ — on lowp's engine.

    Quantized operator groups (DequantizeLinear -> op -> QuantizeLinear) run as exact integer
    operators; every other node runs in float (numpy).

    Parameters
    ----------
    model
        Path, bytes or ModelProto.
    backend
        'auto' (native kernels when the extension is present), 'native', 'reference',
        'dnnlowp-acc16', or a backend object (e.g. ``lowp.engines.Acc16Backend(
        nbits_in_non_outlier=5)``).
    threads
        Threads for the native kernels and numpy's BLAS; 0 means all cores. Results do
        not depend on it.
    requant_mode
        How integer operators requantize (docs/quantization.md, (R2) / (R4)).
    replay
        From the third run with the same input shapes on, repeat the recorded native calls
        of the integer steps directly (lowp.runtime.replay); results are identical either
        way, only the per-operator overhead differs.

    Examples
    --------
    >>> import numpy as np, lowp
    >>> from lowp.data import demo_model_path, load_demo_test
    >>> feeds, labels = load_demo_test()
    >>> out = lowp.Session(demo_model_path()).run({"input": feeds["input"][:4]})
    >>> out["logits"].shape
    (4, 10)
    """

    def __init__(self, model: str | os.PathLike[str] | onnx.ModelProto | bytes, *,
                 backend: str | ReferenceBackend = "auto", threads: int = 0,
                 requant_mode: RequantMode = RequantMode.FLOAT32, replay: bool = True) -> None:
        tune_malloc()
        self.model = load_model(model)
        for rewrite in LOAD_REWRITES:
            self.model = rewrite(self.model)
        self.backend = make_backend(backend, threads)
        self.inputs = model_inputs(self.model)
        check_tensor_outputs(self.model)
        self.input_names = [s.name for s in self.inputs]
        self.output_names = [o.name for o in self.model.graph.output]
        self.steps: list[Step] = lower(self.model, self.backend, requant_mode)
        # ZipMap outputs given as their scores: output name -> keys (`_outputs`)
        self._maps = {s.outputs[0]: s.map_keys for s in self.steps if s.map_keys is not None}
        self._constants: dict[str, np.ndarray] = {
            t.name: _frozen_array(t) for t in self.model.graph.initializer}
        self.last_profile: dict[str, float] = {}
        # (steps, the same unfused, the intermediates their float chains do not store)
        self._chains: tuple[list[Step], list[Step], frozenset[str]] | None = None
        self.threads = threads
        self._blas = _blas_controller(self.steps, threads)
        self._constant_reads: dict[object, list[tuple[str, np.ndarray]]] = {}
        self._replayer = (Replayer(self.steps, execute, set(self._constants),
                                   self.output_names, feeds_in_place=True, share=True)
                          if replay else None)
        # the last ready feed signature, run without the checks and set-up a first run of it
        # did (`_run_ready`)
        self._ready_run: _ReadyRun | None = None

    @property
    def int_steps(self) -> list[Step]:
        return [s for s in self.steps if s.kind == "int"]

    @property
    def integer_product_steps(self) -> list[Step]:
        """Float steps whose matrix product is an integer one: a dynamic model's
        MatMulInteger and the fused forms that quantize their input at run time."""
        return [s for s in self.steps
                if s.kind == "float" and s.op_type in INTEGER_PRODUCT_OPS]

    def run(self, feeds: Mapping[str, np.ndarray], output_names: Iterable[str] | None = None,
            *, capture: bool = False, profile: bool = False) -> dict[str, np.ndarray]:
        """Run the model; returns output name -> array (channels-first, as ONNX).

        With `capture=True` every intermediate tensor is returned too (a step-by-step
        run). With `profile=True`, `last_profile` holds the run's seconds by ``"op:kind"``:
        a replayed run times each step inside its native Program and marks the steps run
        from Python (``" (python)"``, ``" (calls)"``); the first two runs of a feed
        signature are recordings (lowp.runtime.replay.RECORDING).
        """
        ready = self._ready_run
        if ready is not None and not capture and not profile and ready.steps is self.steps \
                and (output_names is None or type(output_names) is list
                     and output_names == self.output_names) and ready.takes(feeds):
            return self._run_ready(ready, feeds)
        previous = native_float.swap_threads(self.threads)
        try:
            checked = self._check_feeds(feeds)
            signature = tuple((k, v.shape, v.dtype.str) for k, v in checked.items())
            # a signature that replays as native Programs only calls no BLAS (bounding
            # BLAS's threads costs ~3 us a run)
            if self._blas is None or (not capture and self._replayer is not None
                                      and self._replayer.native_only(signature)):
                return self._run(checked, signature, output_names, capture=capture,
                                 profile=profile)
            with blas_threads.bounded(self._blas, self.threads):
                return self._run(checked, signature, output_names, capture=capture,
                                 profile=profile)
        finally:
            native_float.swap_threads(previous)

    def _run(self, checked: dict[str, np.ndarray], signature: tuple[object, ...],
             output_names: Iterable[str] | None, *, capture: bool,
             profile: bool) -> dict[str, np.ndarray]:
        layout: dict[str, object] = {}
        timings: dict[str, float] = {}
        if self._replayer is not None and self._replayer.steps is not self.steps:
            self._replayer = Replayer(self.steps, execute, set(self._constants),
                                      self.output_names, feeds_in_place=True, share=True)
            self._constant_reads.clear()
        names = list(output_names) if output_names is not None else self.output_names
        # (intermediates of fused float chains are there in a step-by-step run of the
        # unfused steps only)
        if self._chains is None or self._chains[0] is not self.steps:
            self._chains = (self.steps, fuse_float.unfused(self.steps),
                            fuse_float.fused_away(self.steps))
        capture = capture or not self._chains[2].isdisjoint(names)
        # (a run naming graph outputs only stores what a run naming none does: its Programs
        # may share their output memory)
        everything = output_names is not None and not set(names) <= set(self.output_names)
        with control.subgraph_replay(self._replayer is not None and not capture):
            if self._replayer is not None and not capture:
                env = self._env(signature, everything=everything)
                env.update(checked)
                self._replayer.run(signature, env, layout, checked, everything=everything,
                                   timings=timings if profile else None)
            else:
                env = dict(self._constants)
                env.update(checked)
            for step in (self._chains[1] if capture else self.steps) \
                    if self._replayer is None or capture else ():
                t0 = time.perf_counter() if profile else 0.0
                execute(step, env, layout)
                if profile:
                    timings[step.op_type + ":" + step.kind] = timings.get(
                        step.op_type + ":" + step.kind, 0.0) + time.perf_counter() - t0
        if profile:
            self.last_profile = timings
        if self._replayer is not None and not capture and not everything \
                and names == self.output_names:
            constants = self._constants_read(signature)
            if constants is not None:
                native_only = self._replayer.native_only(signature)
                self._ready_run = _ReadyRun(
                    self.steps, signature, tuple(
                        (n, v.dtype, v.shape) for n, v in checked.items()), constants,
                    self._blas is not None and not native_only, native_only,
                    any(step.op_type in control.CONTROL_FLOW_OPS for step in self.steps))
        if capture:
            # (the sequences inside the graph are not tensors: left out)
            names = list(dict.fromkeys([*names, *(
                n for n, v in env.items() if isinstance(v, np.ndarray))]))
        return _outputs(env, layout, names, self._maps)

    def _run_ready(self, ready: _ReadyRun, feeds: Mapping[str, np.ndarray]
                   ) -> dict[str, np.ndarray]:
        """A run of `ready`'s signature, whose feeds `ready.takes`: what `run` does for it
        (its feed checks passed, its replayed run, inside the bound on BLAS's threads when
        it calls BLAS) without deciding it again; native Programs only, as the replayer's
        `Direct` once it gives one."""
        assert self._replayer is not None
        direct = ready.direct
        if direct is None and ready.native_only:
            direct = ready.direct = self._replayer.direct(ready.signature,
                                                          dict(ready.constants))
        if direct is not None:
            # (native Programs only: their calls hold the thread count, and no step runs
            # a subgraph or BLAS)
            made = direct.run(feeds)
            if made is not None:
                return _outputs(made, direct.layouts, self.output_names, self._maps)
        previous = native_float.swap_threads(self.threads)
        try:
            checked = {n: feeds[n] for n in self.input_names}
            env = dict(ready.constants)
            env.update(checked)
            layout: dict[str, object] = {}
            if ready.subgraphs:
                with control.subgraph_replay(True):
                    self._replay_ready(ready, env, layout, checked)
            else:
                self._replay_ready(ready, env, layout, checked)
            return _outputs(env, layout, self.output_names, self._maps)
        finally:
            native_float.swap_threads(previous)

    def _replay_ready(self, ready: _ReadyRun, env: dict[str, np.ndarray],
                      layout: dict[str, object], checked: dict[str, np.ndarray]) -> None:
        assert self._replayer is not None
        if ready.bounds_blas:
            with blas_threads.bounded(self._blas, self.threads):
                self._replayer.run(ready.signature, env, layout, checked)
        else:
            self._replayer.run(ready.signature, env, layout, checked)

    def _env(self, signature: object, *, everything: bool) -> dict[str, np.ndarray]:
        """The run's tensor dict: the constants, or for a replayed signature only those it
        reads (the rest are read by native Programs directly)."""
        if not everything and self._replayer is not None:
            needed = self._constants_read(signature)
            if needed is not None:
                return dict(needed)
        return dict(self._constants)

    def _constants_read(self, signature: object) -> list[tuple[str, np.ndarray]] | None:
        """The constants a replayed run of `signature` reads from the tensor dict; None
        until the signature is ready."""
        assert self._replayer is not None
        needed = self._constant_reads.get(signature)
        if needed is None:
            read = self._replayer.constants_read(signature)
            if read is not None:
                needed = self._constant_reads[signature] = [
                    (n, self._constants[n]) for n in sorted(read)]
        return needed

    def _check_feeds(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {}
        for spec in self.inputs:
            if spec.name not in feeds:
                raise DataError(f"missing input '{spec.name}' (got "
                                f"{', '.join(sorted(feeds)) or 'nothing'})")
            a = np.asarray(feeds[spec.name])
            if a.dtype != spec.dtype:
                if a.dtype.kind == spec.dtype.kind == "f":
                    a = a.astype(spec.dtype)
                else:
                    raise DataError(f"input '{spec.name}' has dtype {a.dtype}, the model "
                                    f"expects {spec.dtype}")
            if spec.shape is not None:
                if a.ndim != len(spec.shape) or any(
                        w is not None and g != w for g, w in zip(a.shape, spec.shape,
                                                                  strict=True)):
                    shape = tuple("?" if d is None else d for d in spec.shape)
                    raise DataError(f"input '{spec.name}' has shape {a.shape}, the model "
                                    f"expects {shape}")
            out[spec.name] = a
        unknown = set(feeds) - {s.name for s in self.inputs}
        if unknown:
            raise DataError(f"'{sorted(unknown)[0]}' is not an input of the model")
        return out

# float steps that compute their product in integers: a dynamic model's MatMulInteger and
# ConvInteger, and the fused forms that also quantize their input at run time
INTEGER_PRODUCT_OPS = frozenset({"MatMulInteger", "ConvInteger", "MatMulIntegerToFloat",
                                 "DynamicQuantizeMatMul", "PerTokenMatMul",
                                 "ConvIntegerToFloat"})
# float operators whose numpy implementation may call BLAS
_BLAS_OPS = frozenset({"MatMul", "Gemm", "Conv", "ConvTranspose", "LSTM", "GRU", "RNN",
                       "Einsum", "If", "Loop", "Scan", "ConvBias"})


def _outputs(env: dict[str, np.ndarray], layout: dict[str, object], names: list[str],
             maps: dict[str, list[Any]]) -> dict[str, np.ndarray]:
    """The run's tensors `names`, channels-first; none an arena buffer nor a view of one.
    ZipMap's outputs as ONNX Runtime returns them, a list of dicts: made here from the
    scores of those in `maps` (output name -> keys, Step.map_keys)."""
    out: dict[str, Any] = {}
    for n in names:
        have = env.get(n)
        if type(have) is np.ndarray and layout.get(n) is not CL and n not in maps:
            out[n] = have.copy()        # (channels-first: _to_cf's `have`)
            continue
        if n not in env:
            raise LowpError(f"'{n}' is not a tensor of this model")
        if isinstance(have, MapSequence):    # ZipMap's rows, as ONNX Runtime returns them
            out[n] = [dict(row) for row in have]
            continue
        keys = maps.get(n)
        if keys is not None and isinstance(have, np.ndarray):
            out[n] = maps_of_scores(have, keys)
            continue
        if not isinstance(have, np.ndarray):
            raise LowpError(f"'{n}' is a sequence, not a tensor: lowp's engine returns "
                            "tensors only")
        value = _to_cf(have, layout.get(n, CF))
        # (_to_cf gives `have`, a view of it, or a new array)
        out[n] = value.copy() if value is have or value.base is not None else value
    return out


@dataclass
class _ReadyRun:
    """A ready feed signature, for runs of a Session's outputs: its feeds' names, dtypes and
    shapes, the constants its replayed run reads from the tensor dict, whether the run
    bounds BLAS's threads (a BLAS step, not all in native Programs: `Replayer.native_only`),
    whether it is native Programs only (then run as a `Direct` once the replayer gives
    one), and whether a step runs subgraphs (If, Loop, Scan: inside
    `control.subgraph_replay`)."""

    steps: list[Step]           # the Session's steps it was recorded from
    signature: tuple[object, ...]
    inputs: tuple[tuple[str, np.dtype, tuple[int, ...]], ...]     # name, dtype, shape
    constants: list[tuple[str, np.ndarray]]
    bounds_blas: bool
    native_only: bool
    subgraphs: bool
    direct: Direct | None = None

    def takes(self, feeds: Mapping[str, np.ndarray]) -> bool:
        """`feeds` are exactly the model's inputs, plain arrays of the signature's dtypes
        and shapes (what `Session._check_feeds` passes unchanged)."""
        if len(feeds) != len(self.inputs):
            return False
        for name, dtype, shape in self.inputs:
            a = feeds.get(name)
            # (`is`: numpy's built-in dtypes are one object each; `!=` for the others)
            if type(a) is not np.ndarray or a.shape != shape or (
                    a.dtype is not dtype and a.dtype != dtype):
                return False
        return True


def _frozen_array(t: onnx.TensorProto) -> np.ndarray:
    """An initializer's values, read-only: steps never write their inputs, and prepacked
    weights (lowp.runtime.prepacked) then need no copy to notice a change."""
    return freeze(numpy_helper.to_array(t))


def _blas_controller(steps: list[Step], threads: int) -> Any:
    """threadpoolctl's controller, so that `threads` also bounds numpy's BLAS pool; None
    when no float step calls BLAS or BLAS already uses at most `threads` threads (changing
    the BLAS pool on every run costs far more than a small model's run)."""
    if threads <= 0 or not any(s.kind == "float" and s.op_type in _BLAS_OPS for s in steps):
        return None
    return blas_threads.controller(threads)


def _to_cl(x: np.ndarray, have: object) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(x, 1, -1))


def _native_conversion(step: Step, k: int, x: np.ndarray, have: object,
                       convert: Any) -> np.ndarray | None:
    """`convert(x, have)` as a native copy by its index map into a buffer of the step's
    own (the same buffer run after run, so that a replayable step stays replayable when its
    input comes in the other layout); None when it cannot be (no extension, a view, a
    non-contiguous or very large input)."""
    if not (x.flags.c_contiguous and x.dtype.itemsize in (1, 2, 4, 8) and not x.dtype.hasobject
            and 0 < x.size < 2**31):
        return None
    ext = moves.extension()
    if ext is None:
        return None
    key = (k, x.shape, x.dtype.str)
    made = step.conversions.get(key)
    if made is None:
        ids = convert(np.arange(x.size, dtype=np.int32).reshape(x.shape), have)
        if ids.base is not None:
            return None                  # a view: no copy to make
        made = (np.ascontiguousarray(ids).reshape(-1), np.empty(ids.shape, x.dtype))
        step.conversions[key] = made
    index, out = made
    fn, args = moves.take_call(ext, x, index, moves.NO_FILL, out, native_float.get_threads())
    call(fn, *args)
    return out


def _to_cf(x: np.ndarray, have: object) -> np.ndarray:
    if have is CL and x.ndim >= 3:
        if all(d == 1 for d in x.shape[1:-1]) and x.flags.c_contiguous:
            # (N, 1, ..., C) and (N, C, 1, ...) hold the same bytes: a view suffices
            return x.reshape(x.shape[0], x.shape[-1], *x.shape[1:-1])
        return np.ascontiguousarray(np.moveaxis(x, -1, 1))
    return x


def execute(step: Step, env: dict[str, np.ndarray], layout: dict[str, object]) -> None:
    """Run one step: bring its activation inputs to a layout it takes, store its outputs."""
    names = step.inputs
    vals = [env.get(i) if i else None for i in names]
    for i, v in zip(names, vals, strict=True):
        if v is None and i and i not in env:
            raise LowpError(f"node '{step.name}' needs '{i}', which was not computed")
    acts = [k for k in step.act_inputs if k < len(vals) and vals[k] is not None]
    want = layout.get(names[acts[0]], CF) if acts else step.layouts[0]
    if want not in step.layouts:
        want = step.layouts[0]
    if want is CL:
        ranks = {vals[k].ndim for k in acts}  # type: ignore[union-attr]
        if min(ranks, default=0) < 3 or (step.elementwise and len(ranks) > 1):
            want = CF
    # the layout invariant (docs/architecture.md): a step sees every input in the layout it
    # asked for: its activation inputs in `want`, every other input channels-first (ONNX)
    # (the copies of steps that may replay go into buffers of the step's own, the same on
    # every run)
    owned: list[np.ndarray] = []
    for k, v in enumerate(vals):
        if not isinstance(v, np.ndarray) or v.ndim < 3:
            continue                # (a TensorSequence holds channels-first tensors)
        have = layout.get(names[k], CF)
        target = want if k in acts else CF
        if have is not target:
            convert = _to_cf if target is CF else _to_cl
            stable = step.replayable or (step.kind == "float" and step.op_type in NATIVE_FLOAT)
            copied = _native_conversion(step, k, v, have, convert) if stable else None
            if copied is not None:
                owned.append(copied)
            vals[k] = copied if copied is not None else convert(v, have)
    try:
        results = step.fn(*vals, layout=want)
    except Exception as e:
        failure = named(e, step.op_type, step.name)
        if failure is e:
            raise
        raise failure from (e if isinstance(failure, InternalError) else None)
    if owned:
        # an output over a conversion buffer (a Reduce that hands on its input) would change
        # on the step's next run: it gets memory of its own
        results = tuple(np.array(r) if isinstance(r, np.ndarray) and any(
            np.may_share_memory(r, b) for b in owned) else r for r in results)
    out_layout = step.output_layout or want
    for name, value in zip(step.outputs, results, strict=False):
        if name:
            if isinstance(value, np.generic):
                # numpy's operations on 0-d arrays give scalars (a 16-bit table's lookup,
                # a dequantization): a tensor of rank 0 all the same
                value = np.asarray(value)
            env[name] = value
            layout[name] = out_layout if isinstance(value, np.ndarray) and value.ndim >= 3 \
                else CF
