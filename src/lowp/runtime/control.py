"""Control flow (If, Loop, Scan): subgraphs lowered once into their own steps, run per call."""

from __future__ import annotations

import contextvars
import functools
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import DataError, LowpError, UnsupportedOpError
from ..fixedpoint import RequantMode
from ..ir.graph import Graph, attributes, free_names, infer_shapes
from . import program, set_slice
from .backends import ReferenceBackend
from .fastops import subgraph_buffers_reused
from .float_registry import TensorSequence
from .plan import CF, Step

# whether subgraphs replay their native calls (lowp.runtime.replay) in this context: a
# Session that replays runs its subgraphs so too; `Session(replay=False)` and captured runs
# run every step the plain way
_REPLAY = contextvars.ContextVar("lowp_subgraph_replay", default=False)

# the operators whose steps run subgraphs (control_flow_step's)
CONTROL_FLOW_OPS = frozenset({"If", "Loop", "Scan"})


class subgraph_replay:  # noqa: N801 (used as a function: `with subgraph_replay(on):`)
    """Subgraph bodies run inside replay (or not) within the block (a class, not a
    generator: Session.run enters it on every run)."""

    __slots__ = ("_on", "_token")

    def __init__(self, on: bool) -> None:
        self._on = on

    def __enter__(self) -> None:
        self._token = _REPLAY.set(self._on)

    def __exit__(self, *exc: object) -> None:
        _REPLAY.reset(self._token)


# steps that compute nothing: constants, and reshapes that hand their input on
_HANDS_ON = frozenset({"Constant", "Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze"})


class SubPlan:
    """A lowered subgraph: its steps, constants, and the names at its boundary."""

    def __init__(self, sub: onnx.GraphProto, opsets: list[onnx.OperatorSetIdProto],
                 backend: ReferenceBackend, requant_mode: RequantMode,
                 outer_constants: frozenset[str] = frozenset(),
                 outer_shapes: tuple[onnx.ValueInfoProto, ...] = ()) -> None:
        from .lower import fold_constant_quantize, lower

        model = fold_constant_quantize(helper.make_model(sub, opset_imports=opsets))
        sub = model.graph
        self.free = sorted(free_names(sub))
        # the shapes of the enclosing constants it reads, as ONNX Runtime knows them: a
        # MatMul's 2-D constant B from outside is prepacked there as anywhere
        listed = {v.name for v in (*sub.input, *sub.value_info, *sub.output)}
        sub.value_info.extend(v for v in outer_shapes
                              if v.name in self.free and v.name not in listed)
        steps: list[Step] = lower(model, backend, requant_mode, frozenset(self.free),
                                  subgraph=True, outer_constants=outer_constants)
        self.constants = {t.name: numpy_helper.to_array(t) for t in sub.initializer}
        # a Constant node's value is computed here once, not on every run of the body
        # (slanet_table's decoder body holds 52 of them, run on each of its 501 iterations)
        self.constants.update(_constant_values(steps))
        self.steps = [s for s in steps if not _is_constant_node(s)]
        # paddle2onnx's slice assignments, one step each (slanet_table's decoder: two of
        # some sixteen nodes on each of its 501 iterations)
        groups = set_slice.find(sub)
        if groups:
            self.steps = set_slice.fuse(self.steps, groups, self.constants, _execute)
        self.inputs = [i.name for i in sub.input]
        self.outputs = [o.name for o in sub.output]
        self._replayer: Any = None
        self._outer_memo: tuple[dict[str, np.ndarray],
                                tuple[bool, tuple[object, ...], frozenset[int]]] | None = None
        # a body that only hands values on (an exporter's If of Squeeze or Identity on a
        # shape test) computes nothing to replay: it runs the plain way, cheaper than the
        # replay's signature, feed copies and copied-out results (silero_vad_op15's three
        # such Ifs: 0.71x -> 1.3x ONNX Runtime's time when they replayed)
        self.computes = any(s.op_type not in _HANDS_ON for s in self.steps)
        # per replay signature: how a Loop runs its iterations natively (`native_loop`)
        self._loops: dict[object, _NativeLoop | None] = {}

    def _outer(self, outer: dict[str, np.ndarray]
               ) -> tuple[bool, tuple[object, ...], frozenset[int]]:
        """Of the outer-scope values: whether they are all plain arrays, their part of the
        replay signature, and the ids of the arrays handed on as they are (theirs and the
        constants'). A Loop passes the same dict on every iteration: computed once for it
        (the dict is held, so its id is not another's)."""
        memo = self._outer_memo
        if memo is not None and memo[0] is outer:
            return memo[1]
        made = (all(isinstance(v, np.ndarray) and not v.dtype.hasobject
                    for v in outer.values()),
                tuple((k, v.shape, v.dtype.str) for k, v in sorted(outer.items())
                      if isinstance(v, np.ndarray)),
                frozenset({id(v) for v in outer.values()}
                          | {id(v) for v in self.constants.values()}))
        self._outer_memo = (outer, made)
        return made

    def native_loop(self, outer: dict[str, np.ndarray], bound: dict[str, np.ndarray],
                    invariant: frozenset[int]) -> _NativeLoop | None:
        """The Loop iterations of this body as one native call (`_NativeLoop`), when its
        replayed run for these values is native Programs only and they read the outer
        tensors they were recorded reading; else None (the iterations run from Python)."""
        replayer = self._replayer
        if replayer is None or not (self.computes and _REPLAY.get()):
            return None
        plain_outer, outer_signature, _ = self._outer(outer)
        if not plain_outer or not all(isinstance(v, np.ndarray) and not v.dtype.hasobject
                                      for v in bound.values()):
            return None
        signature = outer_signature + tuple(
            (k, v.shape, v.dtype.str) for k, v in sorted(bound.items()))
        if signature not in replayer._ready:
            return None
        if signature not in self._loops:
            self._loops[signature] = _NativeLoop.make(self, signature, invariant)
        loop = self._loops[signature]
        if loop is None or not loop.reads_recorded(outer):
            return None
        return loop

    def run(self, outer: dict[str, np.ndarray], bound: dict[str, np.ndarray]
            ) -> list[np.ndarray]:
        """The outputs for these outer-scope and bound values (new arrays, or the values
        given: never a buffer a later call writes into)."""
        from .session import _to_cf, execute

        env = {**outer, **self.constants, **bound}
        layout: dict[str, object] = {}
        plain_outer, outer_signature, given = self._outer(outer)
        replayed = self.computes and _REPLAY.get() and plain_outer and all(
            isinstance(v, np.ndarray) and not v.dtype.hasobject for v in bound.values())
        if replayed:
            # (a Loop body runs once per iteration: its native calls are recorded on the
            # first two runs of a signature and replayed from then on, as a Session's are)
            if self._replayer is None:
                from .replay import Replayer
                # (a product of operands the Loop hands on unchanged, slanet_table's
                # attention keys, is computed once, not on every iteration)
                self._replayer = Replayer(self.steps, execute, set(self.constants),
                                          self.outputs, memoize=True)
            signature = outer_signature + tuple(
                (k, v.shape, v.dtype.str) for k, v in sorted(bound.items()))
            with subgraph_buffers_reused():
                self._replayer.run(signature, env, layout, bound)
        else:
            with subgraph_buffers_reused(False):
                for step in self.steps:
                    execute(step, env, layout)
        missing = [o for o in self.outputs if o not in env]
        if missing:
            raise LowpError(f"subgraph output '{missing[0]}' was not computed")
        values = [_to_cf(env[o], layout.get(o, CF)) for o in self.outputs]
        if replayed:
            # buffers of the signature (the next call writes them) are copied out; a value
            # given from outside (an outer-scope constant handed on) is handed on as it is
            values = [v if id(v) in given or not isinstance(v, np.ndarray) else np.array(v)
                      for v in values]
        return values


# the most bytes of stacked scan outputs one native call of a Loop's iterations fills
BLOCK_BYTES = 1 << 26


class _NativeLoop:
    """A Loop's iterations run by one native call (`lowp._native.run_loop`): the body's
    replayed Programs for one signature, with the iteration number, condition and carried
    values written into the body's own input buffers (the signature's feed buffers), and
    after each iteration its scan outputs copied into the stacked results and its carried
    outputs into those input buffers, as the iterations run from Python do
    (`SubPlan.run`). The same arithmetic on the same memory; only the Python between the
    iterations is gone (chars2vec_en300: two LSTM Loops of 14 iterations)."""

    def __init__(self, programs: list[Any], segments: list[Any], owned: dict[str, np.ndarray],
                 values: dict[str, np.ndarray], iteration: np.ndarray | None,
                 cond_in: np.ndarray | None, cond_out: np.ndarray,
                 carried: list[tuple[int, np.ndarray, np.ndarray]], scans: list[np.ndarray],
                 statuses: list[np.ndarray]) -> None:
        self.programs = programs
        self.segments = segments
        self.owned = owned
        self.values = values
        self.iteration = iteration
        self.cond_in = cond_in
        self.cond_out = cond_out
        self.carried = carried          # (carried index, input buffer, output array)
        self.scans = scans
        self.statuses = statuses
        self._args = (None if iteration is None else _bytes(iteration),
                      None if cond_in is None else _bytes(cond_in), _bytes(cond_out),
                      [_bytes(d) for _, d, _ in carried], [_bytes(s) for _, _, s in carried])
        self._scan_src = [_bytes(s) for s in scans]
        # iterations per native call: their stacked scan outputs within BLOCK_BYTES (a Loop
        # of a huge trip count that its condition ends, as exporters write `while`)
        per_row = sum(s.nbytes for s in scans)
        self.block_rows = max(1, BLOCK_BYTES // per_row) if per_row else 2**62

    @staticmethod
    def make(body: SubPlan, signature: object, invariant: frozenset[int]
             ) -> _NativeLoop | None:
        from .replay import _Segment

        replayer = body._replayer
        runners = replayer._ready[signature]
        if not runners or not all(type(r) is _Segment and not r.slots for r in runners):
            return None
        owned: dict[str, np.ndarray] = replayer._feeds.get(signature, {})
        values: dict[str, np.ndarray] = {**body.constants, **owned}
        for r in runners:
            if any(lay is not CF for n, lay in r.layouts.items() if n in body.outputs):
                return None
            values.update(r.outputs)
        n_carried = len(body.inputs) - 2
        found = [values.get(o) for o in body.outputs]
        if any(not (isinstance(v, np.ndarray) and v.flags.c_contiguous)
               for j, v in enumerate(found) if not (1 <= j <= n_carried and j - 1 in invariant)):
            return None
        iteration, cond_in = owned.get(body.inputs[0]), owned.get(body.inputs[1])
        cond_out = found[0]
        assert cond_out is not None
        if (cond_out.dtype != np.bool_ or cond_out.size != 1
                or (iteration is not None and (iteration.dtype != np.int64
                                               or iteration.size != 1))
                or (cond_in is not None and (cond_in.dtype != np.bool_ or cond_in.size != 1))):
            return None
        carried = []
        for j in range(n_carried):
            if j in invariant:
                continue
            dst, src = owned.get(body.inputs[2 + j]), found[1 + j]
            if dst is None or src is None or dst.shape != src.shape or dst.dtype != src.dtype:
                return None
            carried.append((j, dst, src))
        scans: list[np.ndarray] = found[1 + n_carried:]  # type: ignore[assignment]
        statuses = [args[6] for r in runners for _, args in r.guards]
        statuses += [status for r in runners for status in r.retries]
        return _NativeLoop([r.program for r in runners], runners, owned, values, iteration,
                           cond_in, cond_out, carried, scans, statuses)

    def reads_recorded(self, outer: dict[str, np.ndarray]) -> bool:
        """The tensors the Programs read from outside them are those they were recorded
        reading (the outer-scope values of this Loop run, the other Programs' outputs)."""
        from .replay import _match

        env = {**outer, **self.values}
        return all(_match(r.checks, env, {}) for r in self.segments if r.checks)

    def run(self, bound: dict[str, np.ndarray], first: int, max_trip: int
            ) -> tuple[int, bool, dict[int, np.ndarray], list[np.ndarray]] | None:
        """Iterations first .. max_trip - 1 while the condition holds, from the values
        `bound` of iteration `first`: their number, the last condition, the carried values
        (by carried index, new arrays) and the stacked scan outputs; None when a kernel
        reported bad data (an index out of range: the Loop runs again the plain way, which
        raises the error)."""
        for k, v in bound.items():
            np.copyto(self.owned[k], v)
        stacked = [np.empty((max_trip - first, *s.shape), s.dtype) for s in self.scans]
        iteration, cond_in, cond_out, dst, src = self._args
        n = program.extension().run_loop(
            self.programs, first, max_trip, True, iteration, cond_in, cond_out, dst, src,
            [_bytes(s) for s in stacked], self._scan_src, self.statuses)
        if n < 0:
            return None
        carried = {j: np.array(d) for j, d, _ in self.carried}
        return n, bool(self.cond_out.reshape(-1)[0]), carried, [s[:n] for s in stacked]


def _bytes(a: np.ndarray) -> np.ndarray:
    """The bytes of contiguous `a` (a view)."""
    return a.reshape(-1).view(np.uint8)


def _execute(step: Step, env: dict[str, Any], layout: dict[str, object]) -> None:
    from .session import execute
    execute(step, env, layout)


def _is_constant_node(step: Step) -> bool:
    return step.op_type == "Constant" and step.kind == "float" and not any(step.inputs)


def _constant_values(steps: list[Step]) -> dict[str, np.ndarray]:
    """The values of the Constant steps, each computed once (channels-first)."""
    from .session import _to_cf, execute

    values: dict[str, np.ndarray] = {}
    for step in steps:
        if _is_constant_node(step):
            env: dict[str, Any] = {}
            layout: dict[str, object] = {}
            execute(step, env, layout)
            values.update((o, _to_cf(env[o], layout.get(o, CF))) for o in step.outputs if o)
    return values


def _constant_shapes(graph: Graph, constants: frozenset[str]
                     ) -> tuple[onnx.ValueInfoProto, ...]:
    """Types and shapes of the constants a subgraph of `graph` may read: this graph's
    initializers, and the enclosing constants listed in its own value_info."""
    shapes = {v.name: v for v in graph.graph.value_info if v.name in constants}
    shapes.update((t.name, helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
                  for t in graph.graph.initializer if t.name in constants)
    return tuple(shapes.values())


def control_flow_step(node: onnx.NodeProto, graph: Graph, backend: ReferenceBackend,
                      requant_mode: RequantMode) -> Step:
    opsets = list(graph.model.opset_import)
    attrs = attributes(node)
    # constants of this graph (and of those enclosing it) a body may read
    fed = {i.name for i in graph.graph.input}
    constants = frozenset({n for n in graph.initializers if n not in fed}
                          | set(graph.outer_constants))
    shapes = _constant_shapes(graph, constants)
    if node.op_type == "If":
        branches = {k: SubPlan(node_attr_graph(node, k), opsets, backend, requant_mode,
                               constants, shapes)
                    for k in ("then_branch", "else_branch")}
        free = sorted(set(branches["then_branch"].free) | set(branches["else_branch"].free))
        inputs = list(node.input) + free

        def run_if(cond: np.ndarray, *outer_values: np.ndarray,
                   layout: object) -> tuple[np.ndarray, ...]:
            outer = dict(zip(free, outer_values, strict=True))
            plan = branches["then_branch" if bool(np.asarray(cond).reshape(-1)[0])
                            else "else_branch"]
            return tuple(plan.run(outer, {}))

        return Step(node.name, "If", "float", inputs, list(node.output), run_if,
                    act_inputs=tuple(range(len(inputs))),
                    subplans=(branches["then_branch"], branches["else_branch"]))
    if node.op_type == "Scan":
        return _scan_step(node, graph, attrs, SubPlan(node_attr_graph(node, "body"), opsets,
                                                      backend, requant_mode, constants,
                                                      shapes))
    del attrs
    body = SubPlan(node_attr_graph(node, "body"), opsets, backend, requant_mode, constants,
                   shapes)
    n_in = len(node.input)
    free = body.free
    inputs = list(node.input) + free
    n_carried = n_in - 2
    invariant = frozenset(j for j in range(n_carried)
                          if 1 + j < len(body.outputs) and 2 + j < len(body.inputs)
                          and body.outputs[1 + j] == body.inputs[2 + j])

    def run_loop(*values: np.ndarray | None, layout: object) -> tuple[np.ndarray, ...]:
        trip, cond = values[0], values[1]
        carried = [_value(v) for v in values[2:n_in]]
        outer = {k: _value(v) for k, v in zip(free, values[n_in:], strict=True)}
        # carried values the body hands on unchanged are the same on every iteration:
        # read as outer-scope values (not copied into the body's input buffers each time)
        outer.update((body.inputs[2 + j], carried[j]) for j in invariant)
        max_trip = None if trip is None else int(np.asarray(trip).reshape(-1)[0])
        keep_going = True if cond is None else bool(np.asarray(cond).reshape(-1)[0])
        first_carried, first_going = carried, keep_going
        n_scan = len(body.outputs) - 1 - n_carried
        # each iteration's scan outputs (from Python), or a block of them stacked (native:
        # marked True)
        scans: list[tuple[bool, list[np.ndarray]]] = []
        native = max_trip is not None
        i = 0
        while keep_going and (max_trip is None or i < max_trip):
            bound = {body.inputs[0]: np.array(i, np.int64),
                     body.inputs[1]: np.array(keep_going)}
            bound.update((body.inputs[2 + j], v) for j, v in enumerate(carried)
                         if j not in invariant)
            loop = body.native_loop(outer, bound, invariant) if native else None
            if loop is not None:
                # (the following iterations in one native call: as many as the stacked
                # scan outputs of a block may hold, all of them for a trip count below)
                assert max_trip is not None
                made = loop.run(bound, i, min(max_trip, i + loop.block_rows))
                if made is None:
                    # bad data: all of it again the plain way, which reports it
                    native, carried, keep_going, scans, i = False, first_carried, first_going, [], 0
                    continue
                n, keep_going, changed, block = made
                carried = [changed.get(j, v) for j, v in enumerate(carried)]
                scans.append((True, block))
                i += n
                continue
            out = body.run(outer, bound)
            keep_going = bool(np.asarray(out[0]).reshape(-1)[0])
            carried = out[1:1 + n_carried]
            scans.append((False, out[1 + n_carried:]))
            i += 1
        if not scans:
            return tuple(carried) + tuple(np.empty(shape, dtype)
                                          for shape, dtype in empty_scans())
        if len(scans) == 1 and scans[0][0]:
            return tuple(carried) + tuple(scans[0][1])
        if not any(block for block, _ in scans):
            return tuple(carried) + tuple(np.stack([s[k] for _, s in scans])
                                          for k in range(n_scan))
        return tuple(carried) + tuple(
            np.concatenate([s[k] if block else np.asarray(s[k])[None] for block, s in scans])
            for k in range(n_scan))

    # shape inference of the model, once and only for a Loop that runs no iteration
    empty_scans = functools.cache(lambda: _empty_scans(node, graph, n_carried))
    return Step(node.name, "Loop", "float", inputs, list(node.output), run_loop,
                act_inputs=tuple(range(len(inputs))))


def _scan_step(node: onnx.NodeProto, graph: Graph, attrs: dict[str, Any], body: SubPlan
               ) -> Step:
    """Scan (opset 9 on; ONNX Runtime's onnxruntime/core/providers/cpu/controlflow/scan_9.cc):
    the body runs once per slice of the scan inputs along their scan axes (reversed where
    scan_input_directions says 1), the state values it returns are the next iteration's,
    and each scan output's per-iteration values are stacked along its scan_output_axes
    entry (in reverse order where scan_output_directions says 1). Negative axes count from
    the rank. A sequence of length 0 gives the initial states and empty scan outputs."""
    opset = next((o.version for o in graph.model.opset_import if o.domain in ("", "ai.onnx")),
                 0)
    if opset < 9:
        raise UnsupportedOpError("Scan", node.name, "Scan before opset 9 (a batch axis and "
                                 "sequence_lens) is not supported")
    n_scan = int(attrs["num_scan_inputs"])
    n_in = len(node.input)
    n_state = n_in - n_scan
    n_scan_out = len(body.outputs) - n_state
    in_axes = list(attrs.get("scan_input_axes", [0] * n_scan))
    in_dirs = list(attrs.get("scan_input_directions", [0] * n_scan))
    out_axes = list(attrs.get("scan_output_axes", [0] * n_scan_out))
    out_dirs = list(attrs.get("scan_output_directions", [0] * n_scan_out))
    free = body.free
    inputs = list(node.input) + free

    def run_scan(*values: np.ndarray | None, layout: object) -> tuple[np.ndarray, ...]:
        states = [_value(v) for v in values[:n_state]]
        scans = [np.asarray(v) for v in values[n_state:n_in]]
        outer = {k: _value(v) for k, v in zip(free, values[n_in:], strict=True)}
        axes = [a + s.ndim if a < 0 else a for a, s in zip(in_axes, scans, strict=True)]
        lengths = {s.shape[a] for s, a in zip(scans, axes, strict=True)}
        if len(lengths) != 1:
            raise DataError(f"Scan '{node.name}': its scan inputs have sequence lengths "
                            f"{sorted(lengths)}, not one")
        length = lengths.pop()
        steps: list[list[np.ndarray]] = [[] for _ in range(n_scan_out)]
        for t in range(length):
            bound = {body.inputs[j]: v for j, v in enumerate(states)}
            bound.update((body.inputs[n_state + j],
                          np.take(s, length - 1 - t if d else t, axis=a))
                         for j, (s, a, d) in enumerate(zip(scans, axes, in_dirs, strict=True)))
            out = body.run(outer, bound)
            states = out[:n_state]
            for k in range(n_scan_out):
                steps[k].append(np.asarray(out[n_state + k]))
        if not length:
            made = [np.empty(shape, dtype) for shape, dtype in empty_scans()]
        else:
            made = [np.stack(s[::-1] if d else s) for s, d in zip(steps, out_dirs, strict=True)]
        return tuple(states) + tuple(
            np.moveaxis(m, 0, a + m.ndim if a < 0 else a)
            for m, a in zip(made, out_axes, strict=True))

    empty_scans = functools.cache(lambda: _empty_scans(node, graph, n_state, first=0))
    return Step(node.name, "Scan", "float", inputs, list(node.output), run_scan,
                act_inputs=tuple(range(len(inputs))))


def _empty_scans(node: onnx.NodeProto, graph: Graph, n_carried: int, first: int = 1
                 ) -> tuple[tuple[tuple[int, ...], np.dtype[Any]], ...]:
    """(shape, dtype) of each scan output of a Loop (or Scan) that ran no iteration, as ONNX
    Runtime makes them: shape (0, *the body output's shape as shape inference gives it, an
    unknown dimension 0), the body output's element type; (0,) when its shape is unknown.
    A Loop body's scan outputs follow its condition and its `n_carried` values (`first`
    1), a Scan body's follow its states (`first` 0)."""
    body = node_attr_graph(node, "body")
    inferred = next((node_attr_graph(n, "body") for n in infer_shapes(graph.model).graph.node
                     if n.op_type == node.op_type and list(n.output) == list(node.output)),
                    body)
    out = []
    for declared, found in zip(body.output[first + n_carried:],
                               inferred.output[first + n_carried:], strict=True):
        tensor = found.type.tensor_type
        elem = declared.type.tensor_type.elem_type or tensor.elem_type or onnx.TensorProto.FLOAT
        dims = [d.dim_value if d.HasField("dim_value") else 0 for d in tensor.shape.dim]
        out.append(((0, *dims), np.dtype(helper.tensor_dtype_to_np_dtype(elem))))
    return tuple(out)


def _value(v: object) -> Any:
    """A loop-carried or outer-scope value: an array, or a sequence as it is."""
    return v if isinstance(v, TensorSequence) else np.asarray(v)


def node_attr_graph(node: onnx.NodeProto, name: str) -> onnx.GraphProto:
    for a in node.attribute:
        if a.name == name and a.type == onnx.AttributeProto.GRAPH:
            return a.g
    raise LowpError(f"node '{node.name}' ({node.op_type}) has no subgraph '{name}'")
