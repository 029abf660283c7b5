"""Two consecutive quantized data-movement steps as one step, on views until its result.

A quantized Unsqueeze then Transpose after a 1-D convolution (an STFT front end: its
(N, C, T) output unsqueezed to (N, 1, C, T), then transposed to (N, 1, T, C)) converted the
convolution's channels-last output to channels-first and then copied it twice more, though
the two moves together give back the channels-last memory as it is. Fused, the pair runs on
a channels-first view of its input (no conversion) through numpy views, and only its
result is made contiguous: no copy at all where the composition keeps the memory order
(a replayed run then hands on the view), one copy otherwise (by one index map,
lowp.runtime.moves). The elements are those of the two steps run one after the other, in
the same places, so the result is theirs bit for bit.
"""

from __future__ import annotations

import numpy as np

from .plan import CF, CL, Step, StepFn

# quantized moves whose result is a view of their input where numpy can make one
VIEW_MOVES = frozenset({"Unsqueeze", "Squeeze", "Transpose", "Reshape", "Flatten"})


def fuse_moves(steps: list[Step], outputs: set[str]) -> list[Step]:
    """`steps` with each pair of integer VIEW_MOVES steps, the second the only reader of
    the first's output (which is no graph output), replaced by one step at the second's
    place (the first's inputs are computed before it). Graphs with subgraphs (which may
    read any value) are left as they are."""
    if any(s.subplans for s in steps):
        return steps
    readers: dict[str, int] = {}
    for s in steps:
        for name in set(s.inputs):
            if name:
                readers[name] = readers.get(name, 0) + 1
    out: list[Step] = []
    pending: dict[str, Step] = {}       # output -> a move step kept back for its reader
    for s in steps:
        first = pending.pop(s.inputs[0], None) if _fusable(s) else None
        for name in s.inputs:           # a reader that does not fuse: its producer first
            if name in pending:
                out.append(pending.pop(name))
        if first is not None:
            out.append(_fused(first, s))
            continue
        o = s.outputs[0] if _fusable(s) else ""
        if o and o not in outputs and readers.get(o, 0) == 1:
            pending[o] = s
            continue
        out.append(s)
    out.extend(pending.values())        # (none: each kept-back output has a reader)
    return out


# a move that also takes channels-last data (a Squeeze of spatial axes after a convolution,
# run through its channels-first view: lowp.runtime.plan.through_channels_first) fuses too:
# the fused step runs both members on channels-first data whatever its input's layout (so
# does a Transpose moving the channels last, whose result is channels-first)
_FUSABLE_LAYOUTS = ((CF,), (CF, CL))


def _fusable(s: Step) -> bool:
    return (s.kind == "int" and s.op_type in VIEW_MOVES and len(s.outputs) == 1
            and bool(s.outputs[0]) and bool(s.inputs) and bool(s.inputs[0])
            and s.act_inputs == (0,) and s.layouts in _FUSABLE_LAYOUTS
            and (s.output_layout is None or s.moves_channels == "to_last")
            and s.channels_last_fn is None and s.chain is None)


def _fused(a: Step, b: Step) -> Step:
    """`a` then `b` (b reads a's output as its data input) as one step that takes either
    layout and writes channels-first."""
    na, fa, fb = len(a.inputs), a.fn, b.fn

    def run(*vals: np.ndarray | None, layout: object) -> tuple[np.ndarray, ...]:
        x = vals[0]
        if layout is CL and x is not None and x.ndim >= 3:
            x = np.moveaxis(x, -1, 1)               # the channels-first view
        (y,) = fa(x, *vals[1:na], layout=CF)
        (z,) = fb(y, *vals[na:], layout=CF)
        return (np.ascontiguousarray(z),)

    fn: StepFn = run
    # a pair that starts by moving the channels last (a TensorFlow-converted graph's
    # Transpose to NHWC and Squeeze of the batch) is a view of channels-last data: its
    # producer had best write that (lower._takes_channels_last)
    step = Step(f"{a.name}+{b.name}", b.op_type, "int", [*a.inputs, *b.inputs[1:]],
                list(b.outputs), fn, layouts=(CF, CL), output_layout=CF,
                moves_channels="to_last" if a.moves_channels == "to_last" else None)
    setattr(step, _MEMBERS, (a, b))     # (a run that captures every tensor runs these)
    return step


_MEMBERS = "_fused_moves"


def members(step: Step) -> tuple[Step, ...]:
    """The steps a fused step replaced, in order; `(step,)` for any other step."""
    found: tuple[Step, ...] | None = getattr(step, _MEMBERS, None)
    return found if found is not None else (step,)
