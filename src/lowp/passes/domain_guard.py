"""Positive tensors whose quantization would put a zero where the model cannot take one.

Every 8-bit grid holds zero exactly (the zero point is one of its codes), so a tensor that
is strictly positive in float, say `magnitude + 1e-2` or `variance + 1e-5`, comes back
from quantize-dequantize as exactly 0 wherever its value is under half a step. If the
value then reaches the input of Log, Reciprocal, a Div's divisor or a negative Pow, the
quantized model computes -inf, inf or NaN where the float model computed a number
(a log-magnitude spectrum, a decomposed LayerNorm's 1 / sqrt(var + eps)).

`fragile_positive` finds such tensors among those an annotation quantizes: strictly
positive on the calibration data, with a path to one of those inputs through operators
that keep a zero a zero (shape moves, Relu, Sqrt, Abs, Mul, Concat, ...). The pipeline
leaves them in float (pipeline._fragile_tensors_stay_float). The calibration minimum does
not bound the quantized model's values: in `log(sqrt(re^2 + im^2) + 1e-2)` the smallest
float value seen was 3 steps from zero, but the quantized power upstream rounds to 0, so
the quantized model's value is 1e-2, under half a step: any positive tensor on such a path
counts.

ONNX Runtime's MeanVarianceNormalization divides each row (the elements over `axes`) by
the root of its mean square deviation with no epsilon, so a row that quantization makes
constant (values under half a step apart, a Relu's small outputs rounded to 0) becomes
0 / 0 = NaN. Any quantized tensor with a path to its input counts, positive or not
(docs/operators.md (O348)).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import onnx

from ..calib import CalibrationTable
from ..ir.graph import Graph, free_names, node_reads
from .annotate import Annotation

# operators whose output is 0 wherever (the element of) one of these inputs is 0 (None:
# any input); Pow with a constant positive exponent too (_passes_zero)
ZERO_PASSING: dict[str, tuple[int, ...] | None] = {
    **dict.fromkeys(("Identity", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Transpose",
                     "Relu", "Sqrt", "Abs", "Cast", "Expand", "Tile", "Slice", "Gather",
                     "Split", "ReduceMin", "DepthToSpace", "SpaceToDepth"), (0,)),
    "Concat": None, "Mul": None}

# the input of each operator that cannot be 0 without the output leaving the reals; Pow's
# base too when its constant exponent is negative (_guarded)
GUARDED: dict[str, int] = {"Log": 0, "Reciprocal": 0, "Div": 1}

# the input of each operator that divides by a row's spread with no epsilon: a constant row
# is 0 / 0, whatever the sign of the tensor (O348)
SPREAD_GUARDED: dict[str, int] = {"MeanVarianceNormalization": 0}

# element-wise operators of one input: a constant row stays constant through them (a walk
# to a SPREAD_GUARDED input passes them too)
ROW_CONSTANT_PASSING = frozenset((
    "HardSwish", "HardSigmoid", "Sigmoid", "Tanh", "LeakyRelu", "Elu", "Selu", "Celu",
    "Clip", "Softplus", "Softsign", "Exp", "Neg", "Erf", "Gelu", "Mish", "Swish",
    "PRelu", "ThresholdedRelu", "Round", "Floor", "Ceil", "Sign"))


def _exponent(graph: Graph, node: onnx.NodeProto) -> float | None:
    """A Pow node's constant scalar exponent, or None."""
    if len(node.input) < 2 or not node.input[1] or not graph.is_constant(node.input[1]):
        return None
    value = graph.constant(node.input[1])
    return float(value.reshape(-1)[0]) if value.size == 1 else None


def _guarded(graph: Graph, node: onnx.NodeProto, index: int) -> bool:
    """Input `index` of `node` cannot be 0 without the output leaving the reals."""
    if node.op_type == "Pow":
        e = _exponent(graph, node)
        return index == 0 and e is not None and e < 0
    return GUARDED.get(node.op_type) == index


def _passes_zero(graph: Graph, node: onnx.NodeProto, index: int) -> bool:
    """A 0 at input `index` of `node` is a 0 in its output."""
    if node.op_type == "Pow":
        e = _exponent(graph, node)
        return index == 0 and e is not None and e > 0
    if node.op_type not in ZERO_PASSING:
        return False
    inputs = ZERO_PASSING[node.op_type]
    return inputs is None or index in inputs


def reaches_guarded_input(graph: Graph, tensor: str, limit: int = 64, spread: bool = False
                          ) -> str | None:
    """The name of a node whose guarded input a zero of `tensor` reaches, or None; with
    `spread`, of a node whose SPREAD_GUARDED input a constant row of `tensor` reaches. The
    walk goes into the If branches and Loop/Scan bodies that read a value from outside:
    out of a branch output it reaches, through the If's output in that place (a Loop's or
    Scan's, through all of its outputs)."""
    return _reach(graph, graph.consumers, tensor, spread, limit)[0]


def _reach(graph: Graph, consumers: Mapping[str, Sequence[onnx.NodeProto]], tensor: str,
           spread: bool, limit: int) -> tuple[str | None, set[str]]:
    """reaches_guarded_input over `consumers` (a graph's or a subgraph's readers of each
    value): the reader found, and the values the walk went through."""
    seen: set[str] = set()
    todo = [tensor]
    while todo and len(seen) < limit:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for node in consumers.get(name, []):
            for index, value in enumerate(node.input):
                if value != name:
                    continue
                if (SPREAD_GUARDED.get(node.op_type) == index if spread
                        else _guarded(graph, node, index)):
                    return node.name, seen
                if _passes_zero(graph, node, index) or (
                        spread and index == 0 and node.op_type in ROW_CONSTANT_PASSING):
                    todo.extend(o for o in node.output if o)
            for body in _bodies_reading(node, name):
                reader, through = _reach(graph, _readers(body), name, spread, limit)
                if reader is not None:
                    return reader, seen
                places = [k for k, o in enumerate(body.output) if o.name in through]
                if node.op_type == "If":
                    todo.extend(node.output[k] for k in places
                                if k < len(node.output) and node.output[k])
                elif places:
                    todo.extend(o for o in node.output if o)
    return None, seen


def _bodies_reading(node: onnx.NodeProto, name: str) -> list[onnx.GraphProto]:
    """The subgraphs of `node` (If branches, Loop and Scan bodies) that read `name` from the
    enclosing scope."""
    bodies = [g for a in node.attribute
              for g in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs))]
    return [g for g in bodies if name in free_names(g) or any(o.name == name for o in g.output)]


def _readers(body: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    """The nodes of `body` that read each value, their own subgraphs' reads included."""
    readers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in body.node:
        for value in sorted(node_reads(node)):
            readers[value].append(node)
    return readers


def fragile_positive(graph: Graph, ann: Annotation, table: CalibrationTable
                     ) -> list[tuple[str, str]]:
    """(tensor, reader node) for each quantized tensor whose zero would reach a guarded
    input of the reader: strictly positive on the calibration data, or any tensor when the
    reader is in SPREAD_GUARDED."""
    found = []
    for t in ann.activations:
        if t not in table or graph.is_constant(t):
            continue
        reader = ((reaches_guarded_input(graph, t) if table[t].min > 0 else None)
                  or reaches_guarded_input(graph, t, spread=True))
        if reader is not None:
            found.append((t, reader))
    return found
