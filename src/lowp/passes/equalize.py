"""Cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization", section 4.1).

For two convolutions in sequence, Conv1 -> act -> Conv2, with `act` positively homogeneous
(act(x / s) = act(x) / s for s > 0: no activation, Relu, LeakyRelu, Clip with lower bound 0
and no upper bound) and Conv2 the only reader, output channel i of Conv1 (its weights and
bias) is divided by s_i and the weights of Conv2 reading input channel i are multiplied by
it. The float model computes the same function (up to float rounding); with

    (E1)  s_i = sqrt(r1_i / r2_i),   r1_i = max |W1[i, ...]|,  r2_i = max |W2[:, i, ...]|

both ranges become sqrt(r1_i * r2_i): the channels of Conv1's weight (and those of Conv2's
input side) span the same range, so one per-tensor weight scale fits them all. It helps
per-tensor weights (qnnpack/xnnpack-style targets, docs/quantization.md) and depthwise
convolutions, whose per-channel ranges differ by orders of magnitude in MobileNet-style
nets. A chain Conv1 -> Conv2 -> Conv3 is equalized pair by pair, repeated until the scales
settle (Nagel et al.'s iteration).

Relu6 and Clip with an upper bound are not equalized: Clip(x / s, 0, 6) is not
Clip(x, 0, 6) / s, and ONNX's Clip has one bound for every channel. Neither is any other
activation (HardSwish, SiLU, Sigmoid: not homogeneous).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from ..ir.graph import Graph, attributes

# Activations f with f(x / s) = f(x) / s for every s > 0 (Clip: only from 0 with no top).
_HOMOGENEOUS = frozenset({"Relu", "LeakyRelu", "Clip"})


@dataclass(frozen=True)
class Pair:
    """Conv1 (`first`) feeding Conv2 (`second`), through `act` (a node name or '')."""

    first: str
    act: str
    second: str


def equalize(model: onnx.ModelProto, *, iterations: int = 20,
             tolerance: float = 1e-4) -> onnx.ModelProto:
    """Return a copy of `model` with every equalizable Conv pair rescaled by (E1).

    Parameters
    ----------
    model
        A canonical float model (BatchNorm folded into the convolutions).
    iterations, tolerance
        The pairs are equalized in turn until no scale differs from 1 by more than
        `tolerance` (relative) or `iterations` sweeps are done.

    Examples
    --------
    For one pair, channel 0 of Conv1 with range 4 and Conv2's input channel 0 with range 1
    get s = sqrt(4 / 1) = 2: both ranges become 2.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = Graph(out)
    pairs = find_pairs(out, graph)
    if not pairs:
        return out
    nodes = {n.name: n for n in out.graph.node}
    inits = {t.name: t for t in out.graph.initializer}
    values: dict[str, np.ndarray] = {}

    def value(name: str) -> np.ndarray:
        if name not in values:
            values[name] = numpy_helper.to_array(inits[name]).astype(np.float64)
        return values[name]

    for _ in range(iterations):
        largest = 0.0
        for pair in pairs:
            first, second = nodes[pair.first], nodes[pair.second]
            w1, w2 = value(first.input[1]), value(second.input[1])
            groups2 = _groups(second)
            r1 = np.abs(w1).reshape(w1.shape[0], -1).max(axis=1)
            r2 = _input_channel_range(w2, groups2)
            with np.errstate(divide="ignore", invalid="ignore"):
                s = np.sqrt(r1 / r2)
            s = np.where(np.isfinite(s) & (s > 0), s, 1.0)
            largest = max(largest, float(np.max(np.abs(s - 1.0), initial=0.0)))
            values[first.input[1]] = w1 / s.reshape(-1, *([1] * (w1.ndim - 1)))
            if len(first.input) > 2 and first.input[2]:
                values[first.input[2]] = value(first.input[2]) / s
            values[second.input[1]] = _scale_input_channels(w2, s, groups2)
        if largest <= tolerance:
            break
    for name, v in values.items():
        inits[name].CopyFrom(numpy_helper.from_array(v.astype(np.float32), name))
    return out


def find_pairs(model: onnx.ModelProto, graph: Graph | None = None) -> list[Pair]:
    """The Conv -> (homogeneous activation) -> Conv pairs that `equalize` rescales, in
    graph order."""
    graph = graph or Graph(model)
    pairs: list[Pair] = []
    for first in model.graph.node:
        if not _weighted_conv(first, graph):
            continue
        tensor, act = first.output[0], ""
        readers = graph.consumers.get(tensor, [])
        if len(readers) != 1 or tensor in graph.output_names:
            continue
        if readers[0].op_type in _HOMOGENEOUS:
            if not _homogeneous(readers[0], graph):
                continue
            act, tensor = readers[0].name, readers[0].output[0]
            readers = graph.consumers.get(tensor, [])
            if len(readers) != 1 or tensor in graph.output_names:
                continue
        second = readers[0]
        if not (_weighted_conv(second, graph) and second.input[0] == tensor
                and sum(1 for i in second.input if i == tensor) == 1):
            continue
        c1 = graph.constant(first.input[1]).shape[0]
        if graph.constant(second.input[1]).shape[1] * _groups(second) != c1:
            continue
        pairs.append(Pair(first.name, act, second.name))
    return pairs


def _weighted_conv(node: onnx.NodeProto, graph: Graph) -> bool:
    """A float Conv whose weight (and bias) are initializers read by this node only."""
    if node.op_type != "Conv" or node.domain not in ("", "ai.onnx") or len(node.input) < 2:
        return False
    own = [n for n in node.input[1:3] if n]
    return all(n in graph.initializers and len(graph.consumers.get(n, [])) == 1
               and graph.initializers[n].data_type == onnx.TensorProto.FLOAT for n in own)


def _homogeneous(node: onnx.NodeProto, graph: Graph) -> bool:
    if node.op_type in ("Relu", "LeakyRelu"):
        return True
    if node.op_type != "Clip":
        return False
    a = attributes(node)
    if len(node.input) == 1:                                # opset < 11: attributes
        lo = float(a.get("min", -math.inf))                 # type: ignore[arg-type]
        hi = float(a.get("max", math.inf))                  # type: ignore[arg-type]
    else:
        bounds = []
        for i, default in ((1, -math.inf), (2, math.inf)):
            name = node.input[i] if len(node.input) > i else ""
            if name and not graph.is_constant(name):
                return False
            bounds.append(float(graph.constant(name)) if name else default)
        lo, hi = bounds
    return lo == 0.0 and hi == math.inf


def _groups(node: onnx.NodeProto) -> int:
    return int(attributes(node).get("group", 1))  # type: ignore[call-overload]


def _input_channel_range(w: np.ndarray, groups: int) -> np.ndarray:
    """max |W[:, i, ...]| per input channel i of a (grouped) Conv weight (Cout, Cin/g, k...)."""
    cout, cpg = w.shape[0], w.shape[1]
    per_group = np.abs(w).reshape(groups, cout // groups, cpg, -1).max(axis=(1, 3))
    return per_group.reshape(groups * cpg)


def _scale_input_channels(w: np.ndarray, s: np.ndarray, groups: int) -> np.ndarray:
    """W with the weights reading input channel i multiplied by s_i."""
    cout, cpg = w.shape[0], w.shape[1]
    shaped = w.reshape(groups, cout // groups, cpg, -1) * s.reshape(groups, 1, cpg, 1)
    return shaped.reshape(w.shape)
