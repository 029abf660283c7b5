"""Fuse chains of float element-wise steps into one step computed by one native pass.

Written-out activations and norms (tanh GELU as eight Mul/Add/Tanh nodes, SiLU as
x * Sigmoid(x), HardSwish (x * Clip(x + 3, 0, 6) / 6 too), the tail of a decomposed
LayerNorm) are chains of float32
element-wise operators, each of which reads and writes the whole tensor. A group of such
steps whose intermediate results are read only inside the group (and are no graph
outputs) becomes one step: its plain form runs the original steps one after the
other (the reference), and while lowp.runtime.replay records it is one ``float_fused``
call (native/float_elementwise.h) evaluating the chain block by block in L1-resident
registers, with the same per-element arithmetic as each operator's own kernel
(lowp.runtime.program.FLOAT_KERNELS), so the values are the unfused run's bit for bit on
every instruction-set path and thread count. Where the recorded arrays do not fit the
kernel (another dtype, mixed layouts, an intermediate of another shape than the result),
the step runs its plain form.

`disabled()` turns the pass off for sessions made inside it (for comparing or debugging),
as does the environment variable ``LOWP_NO_FLOAT_FUSION=1`` for a whole process; a run
that captures intermediates, or names one as an output, runs the unfused steps
(`unfused`).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from .. import ort_math
from . import fuse_moves
from .plan import CF, CL, Step
from .switch import Switch

OP_TYPE = "ElementwiseChain"
# operators fused (program.FUSED_CODES; Pow by a one-value exponent of 2 or 3 is x * x and
# x * x * x, as float_ops.Pow computes it; Clip by one-value float32 bounds is float_binary's
# ClipLow then ClipHigh). Max and Min stay out: which operand ONNX Runtime gives of +0 and
# -0 or of two NaNs depends on the position inside each operator's own broadcast run
# (docs/operators.md (O105)), which a chain's blocks do not see
_BINARY = frozenset({"Add", "Sub", "Mul", "Div"})
_UNARY = frozenset({"Relu", "Sqrt", "Sigmoid", "Tanh", "HardSwish", "Erf", "Neg", "Abs"})
_MAX_REGISTERS = 64         # the binding's bound

_enabled = Switch(os.environ.get("LOWP_NO_FLOAT_FUSION", "") in ("", "0"))


#: Lower without fusing float chains inside the body (Sessions made there keep every
#: element-wise step as it is: the reference to compare a fused session with).
disabled = _enabled.off


def enabled() -> bool:
    return bool(_enabled)


@dataclass(frozen=True)
class Chain:
    """A fused group: its steps in execution order, and the native code computing it.

    `code` is (instructions, 4) int32 (op, dst, a, b) for float_fused, over the fused
    step's inputs `native_inputs` (operand -1 - i: the i-th of them) and registers; `ops`
    gives, per original step, its operands (>= 0: the result of step k of the chain; < 0:
    the step's input -1 - i), from which the shapes of the intermediates follow
    (`result_shape`)."""

    steps: tuple[Step, ...]
    ops: tuple[tuple[int, ...], ...]
    code: np.ndarray
    native_inputs: tuple[int, ...]      # the step's inputs the code reads, in its order

    def result_shape(self, arrays: list[np.ndarray]) -> tuple[int, ...] | None:
        """The chain's result shape on these inputs, when every step's result has it
        (nothing broadcasts an intermediate result further); else None."""
        shapes: list[tuple[int, ...]] = []
        for step, operands in zip(self.steps, self.ops, strict=True):
            mine = [shapes[r] if r >= 0 else arrays[-1 - r].shape for r in operands]
            if step.op_type == "Pow" and ort_math.scalar_operand(*mine) != 1:
                return None             # ONNX Runtime's pow, not x * x ((O107))
            try:
                shapes.append(tuple(np.broadcast_shapes(*mine)))
            except ValueError:
                return None
        final = shapes[-1]
        return final if all(s == final for s in shapes) else None


def _fusable(step: Step, constants: Mapping[str, np.ndarray]) -> bool:
    if (step.kind != "float" or len(step.outputs) != 1 or not step.outputs[0]
            or step.replayable or step.subplans or step.chain is not None
            or not all(step.inputs) or step.nchwc_block):
        # (an Add ONNX Runtime runs on its NCHWc layout picks its NaNs by places
        # there, which float_binary alone is told)
        return False
    if step.op_type in _BINARY:
        return len(step.inputs) == 2
    if step.op_type in _UNARY:
        return len(step.inputs) == 1
    if step.op_type == "Clip" and len(step.inputs) == 3:
        # bounds that are one float32 value each: ClipLow then ClipHigh ((O77)'s selects,
        # float_binary's codes), as float_ops.Clip computes it
        return all((c := constants.get(n)) is not None and c.size == 1
                   and c.dtype == np.float32 for n in step.inputs[1:])
    if step.op_type == "Pow" and len(step.inputs) == 2:
        e = constants.get(step.inputs[1])
        return (e is not None and e.size == 1 and e.dtype.kind in "fiu"
                and e.reshape(-1)[0] in (2, 3))
    return False


def _reads(steps: Iterable[Step]) -> Iterator[str]:
    """Every name the steps read, their branches' reads included (an over-count is safe:
    it only fuses less)."""
    for s in steps:
        yield from (n for n in s.inputs if n)
        for sub in s.subplans:
            yield from _reads(getattr(sub, "steps", ()))


def fuse_float_chains(steps: list[Step], graph_outputs: set[str],
                      constants: Mapping[str, np.ndarray], fixed: set[int]) -> list[Step]:
    """`steps` with every group of two or more fusable float steps replaced by one chain
    step at the place of its last step. `constants` are one-value constants by name (the
    exponents of Pow steps); `fixed` the indices of steps whose values the feed shapes fix
    (lowp.runtime.replay.fixed_steps): they stay as they are, so that replay folds them as
    before."""
    if not _enabled:
        return steps
    uses = Counter(_reads(steps))
    producer = {o: i for i, s in enumerate(steps) for o in s.outputs if o}
    member = [i not in fixed and _fusable(s, constants) for i, s in enumerate(steps)]
    replaced: dict[int, Step] = {}
    dropped: set[int] = set()
    taken: set[int] = set()
    for sink in reversed(range(len(steps))):
        if not member[sink] or sink in taken:
            continue
        # grow from the last step: a producer joins once every read of its result is a
        # read by a step of the group (and it is no graph output)
        group = {sink}
        grown = True
        while grown:
            grown = False
            reads = Counter(n for i in group for n in steps[i].inputs)
            for n, count in reads.items():
                j = producer.get(n)
                if (j is not None and j not in group and j not in taken and member[j]
                        and n not in graph_outputs and uses[n] == count):
                    group.add(j)
                    grown = True
        taken |= group
        if len(group) < 2:
            continue
        fused = _chain_step([steps[i] for i in sorted(group)], constants)
        if fused is None:
            continue
        replaced[sink] = fused
        dropped.update(group - {sink})
    return [replaced.get(i, s) for i, s in enumerate(steps) if i not in dropped]


def _chain_step(members: list[Step], constants: Mapping[str, np.ndarray]) -> Step | None:
    from .program import BINARY_CODES, FUSED_CODES

    CLIP_CODES = (BINARY_CODES["ClipLow"], BINARY_CODES["ClipHigh"])

    made = {s.outputs[0]: k for k, s in enumerate(members)}
    inputs: list[str] = []
    for s in members:
        inputs.extend(n for n in s.inputs if n not in made and n not in inputs)
    ops: list[tuple[int, ...]] = []
    # instructions on values: (op, value made, operands); values >= 0 name instructions'
    # results, < 0 inputs
    instrs: list[tuple[int, list[int]]] = []
    result_of: list[int] = []           # step k -> the value holding its result
    for s in members:
        refs = [result_of[made[n]] if n in made else -1 - inputs.index(n) for n in s.inputs]
        ops.append(tuple(made[n] if n in made else -1 - inputs.index(n) for n in s.inputs))
        if s.op_type == "Pow":
            x = refs[0]
            instrs.append((FUSED_CODES["Mul"], [x, x]))
            if constants[s.inputs[1]].reshape(-1)[0] == 3:
                instrs.append((FUSED_CODES["Mul"], [len(instrs) - 1, x]))
        elif s.op_type == "Clip":
            instrs.append((CLIP_CODES[0], [refs[0], refs[1]]))
            instrs.append((CLIP_CODES[1], [len(instrs) - 1, refs[2]]))
        else:
            instrs.append((FUSED_CODES[s.op_type], refs))
        result_of.append(len(instrs) - 1)
    # the native call reads only the inputs an instruction reads (not Pow's exponent)
    used = sorted({-1 - r for _, refs in instrs for r in refs if r < 0})
    instrs = [(op, [r if r >= 0 else -1 - used.index(-1 - r) for r in refs])
              for op, refs in instrs]
    code = _allocate(instrs)
    if code is None:
        return None
    chain = Chain(tuple(members), tuple(ops), code, tuple(used))
    last = members[-1]
    unary_only = len(inputs) == 1 and all(CL in s.layouts and s.elementwise for s in members)

    def run(*vals: np.ndarray, layout: object) -> tuple[np.ndarray, ...]:
        env: dict[str, np.ndarray] = dict(zip(inputs, vals, strict=True))
        for s in members:
            env[s.outputs[0]] = s.fn(*(env[n] for n in s.inputs), layout=layout)[0]
        return (env[last.outputs[0]],)

    return Step("+".join(s.name for s in members), OP_TYPE, "float", inputs,
                [last.outputs[0]], run, layouts=(CF, CL) if unary_only else (CF,),
                elementwise=unary_only, chain=chain)


def _allocate(instrs: list[tuple[int, list[int]]]) -> np.ndarray | None:
    """Registers for the instructions' values (a register is free again after the last
    instruction that reads its value; the last instruction writes y)."""
    last_use: dict[int, int] = {}
    for k, (_, refs) in enumerate(instrs):
        for r in refs:
            if r >= 0:
                last_use[r] = k
    free: list[int] = []
    count = 0
    reg: dict[int, int] = {}
    rows = []
    for k, (op, refs) in enumerate(instrs):
        operands = [reg[r] if r >= 0 else r for r in refs]
        for r in set(refs):
            if r >= 0 and last_use[r] == k:
                free.append(reg[r])
        if k == len(instrs) - 1:
            dst = -1
        elif free:
            dst = free.pop()
        else:
            dst, count = count, count + 1
        reg[k] = dst
        rows.append([op, dst, operands[0], operands[1] if len(operands) > 1 else 0])
    if count > _MAX_REGISTERS:
        return None
    return np.ascontiguousarray(np.array(rows, np.int32).reshape(-1, 4))


def unfused(steps: list[Step]) -> list[Step]:
    """`steps` with every chain step (and fused pair of quantized moves,
    lowp.runtime.fuse_moves) replaced by the steps it fused."""
    expanded = [m for s in steps for m in (s.chain.steps if s.chain is not None
                                           else fuse_moves.members(s))]
    return steps if len(expanded) == len(steps) else expanded


def fused_away(steps: list[Step]) -> frozenset[str]:
    """The intermediates that chain steps (and fused moves) do not store."""
    return frozenset(m.outputs[0] for s in steps
                     for m in (s.chain.steps if s.chain is not None
                               else fuse_moves.members(s))[:-1])
