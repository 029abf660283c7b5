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
"""

from __future__ import annotations

from ..calib import CalibrationTable
from ..ir.graph import Graph
from .annotate import Annotation

# operators whose output is 0 wherever (the element of) one input is 0
ZERO_PRESERVING = frozenset({
    "Identity", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Transpose", "Relu", "Sqrt",
    "Abs", "Cast", "Expand", "Tile", "Slice", "Gather", "Concat", "Split", "Mul",
    "ReduceMin", "DepthToSpace", "SpaceToDepth"})


def _exponent(graph: Graph, node_input: str) -> float | None:
    """A constant scalar Pow exponent, or None."""
    if not node_input or not graph.is_constant(node_input):
        return None
    value = graph.constant(node_input)
    return float(value.reshape(-1)[0]) if value.size == 1 else None


def _guarded(graph: Graph, op: str, node_inputs: list[str], index: int) -> bool:
    """Input `index` of an `op` node cannot be 0 without the output leaving the reals."""
    if op in ("Log", "Reciprocal"):
        return index == 0
    if op == "Div":
        return index == 1
    if op == "Pow" and index == 0:
        e = _exponent(graph, node_inputs[1] if len(node_inputs) > 1 else "")
        return e is not None and e < 0
    return False


def _passes_zero(graph: Graph, op: str, node_inputs: list[str], index: int) -> bool:
    """A 0 at input `index` is a 0 in the output."""
    if op == "Pow":
        e = _exponent(graph, node_inputs[1] if len(node_inputs) > 1 else "")
        return index == 0 and e is not None and e > 0
    if op in ("Reshape", "Expand", "Tile", "Slice", "Gather", "Split", "Squeeze",
              "Unsqueeze"):
        return index == 0
    return op in ZERO_PRESERVING


def reaches_guarded_input(graph: Graph, tensor: str, limit: int = 64) -> str | None:
    """The name of a node whose guarded input a zero of `tensor` reaches, or None."""
    seen: set[str] = set()
    todo = [tensor]
    while todo and len(seen) < limit:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for node in graph.consumers.get(name, []):
            inputs = list(node.input)
            for index, value in enumerate(inputs):
                if value != name:
                    continue
                if _guarded(graph, node.op_type, inputs, index):
                    return node.name
                if _passes_zero(graph, node.op_type, inputs, index):
                    todo.extend(o for o in node.output if o)
    return None


def fragile_positive(graph: Graph, ann: Annotation, table: CalibrationTable
                     ) -> list[tuple[str, str]]:
    """(tensor, reader node) for each quantized tensor that is strictly positive on the
    calibration data and whose zero would reach a guarded input of the reader."""
    found = []
    for t in ann.activations:
        if t not in table or graph.is_constant(t):
            continue
        if not table[t].min > 0:
            continue
        reader = reaches_guarded_input(graph, t)
        if reader is not None:
            found.append((t, reader))
    return found
