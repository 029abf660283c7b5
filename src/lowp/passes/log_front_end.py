"""The layers of a log-magnitude front end: the matrix products a Log reads through linear
and magnitude arithmetic only.

A spectrogram, a mel or constant-Q filter bank, then `log(|X|^2 + eps)`: the Log turns a
relative error into an absolute one, so each quiet bin needs as many bits of precision as a
loud one. An 8-bit grid spans 48 dB; a spectrum's bins span 80 dB and more, and where a
filter bank is a cascade of layers (a constant-Q transform computed octave by octave, each
octave a strided low-pass Conv of the last) every one of them rounds on the loudest bin's
grid. No single layer dominates the error then, all of them together do (basic_pitch_nmp:
leaving its 26 constant-Q Convs in float takes its output SQNR from 5 dB to 29 dB; any one
of them alone, or only the 18 filter Convs, does not), so the measured method choice
(passes.method_choice) measures them in float together as one more candidate layer.

`log_front_end` walks back from the input of every Log through the operators of `PASSES`
(shape moves, sums, products, powers, square roots, clipping from below: what a magnitude
or power spectrum is computed with) and the matrix products of `COMPUTE_HEAVY` (linear in
their activation input), and stops at anything else (Relu, Sigmoid, Softmax, ...: a trained
network before the Log, as in a written-out LogSoftmax, is not a front end). The matrix
products met are the front end.
"""

from __future__ import annotations

import onnx

from ..config import COMPUTE_HEAVY
from ..ir.graph import Graph

# operator -> the inputs the walk goes on through (None: every non-constant input)
PASSES: dict[str, tuple[int, ...] | None] = {
    **dict.fromkeys(("Identity", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Transpose",
                     "Slice", "Gather", "Split", "Pad", "Expand", "Tile", "Cast", "Neg",
                     "Abs", "Sqrt", "Pow", "Clip", "Div", "ReduceSum", "ReduceMean",
                     "ReduceSumSquare", "ReduceL2", "DepthToSpace", "SpaceToDepth"), (0,)),
    **dict.fromkeys(("Concat", "Add", "Sub", "Mul", "Max", "Sum"), None),
    **dict.fromkeys(COMPUTE_HEAVY, None),
}


def log_front_end(model: onnx.ModelProto, limit: int = 4096) -> tuple[str, ...]:
    """The COMPUTE_HEAVY nodes whose output reaches a Log's input through `PASSES` only,
    in graph order (empty when the model has no such Log).

    Examples
    --------
    >>> from onnx import helper
    >>> nodes = [helper.make_node("Conv", ["x", "w"], ["re"], name="stft"),
    ...          helper.make_node("Mul", ["re", "re"], ["p"], name="power"),
    ...          helper.make_node("MatMul", ["p", "mel"], ["m"], name="mel"),
    ...          helper.make_node("Clip", ["m", "eps"], ["c"], name="floor"),
    ...          helper.make_node("Log", ["c"], ["l"], name="log"),
    ...          helper.make_node("Relu", ["l"], ["r"], name="relu"),
    ...          helper.make_node("MatMul", ["r", "w2"], ["y"], name="head")]
    >>> log_front_end(helper.make_model(helper.make_graph(nodes, "g", [], [])))
    ('stft', 'mel')
    """
    graph = Graph(model)
    producer = {o: n for n in model.graph.node for o in n.output if o}
    found: set[str] = set()
    seen: set[str] = set()
    todo = [n.input[0] for n in model.graph.node if n.op_type == "Log" and n.input]
    while todo and len(seen) < limit:
        name = todo.pop()
        if name in seen or graph.is_constant(name) or name not in producer:
            continue
        seen.add(name)
        node = producer[name]
        if node.op_type not in PASSES:
            continue
        if node.op_type in COMPUTE_HEAVY:
            found.add(node.name)
        which = PASSES[node.op_type]
        todo.extend(v for i, v in enumerate(node.input)
                    if v and (which is None or i in which))
    return tuple(n.name for n in model.graph.node if n.name in found)
