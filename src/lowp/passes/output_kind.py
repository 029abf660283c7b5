"""What kind of output the measured range-method choice scores, and the scorer of each kind
(docs/accuracy.md, "Class-score maps scored by their decoding").

Most outputs are values read as they are, and their error is the output SQNR
(`passes.sensitivity.Measurement`). A per-frame class-score map, the output of a CTC text
recogniser ([N, T, C] or [T, N, C]: a score per class for each frame), is read through its
best class per frame: greedy decoding changes when the order of the two best classes of one
frame changes, which the SQNR of the whole map weighs little. The choice scores such an
output by the share of its frames whose best class is the float model's
(`frame_agreement`), and the SQNR breaks ties.

A class map is found in the graph (`class_maps`): a rank-3 float output computed by a
Softmax or LogSoftmax over its last axis, through Identity, Cast or a Transpose that keeps
the last axis last. Raw logits are not detected: a rank-3 MatMul output is as often a
transformer's hidden state; the user names such outputs (`Config.class_maps`, CLI
`--class-maps`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from ..errors import DataError

CLASS_MAP = "class_map"
_SCORES = ("Softmax", "LogSoftmax")
_RANK = 3


def _last_axis_kept(node: onnx.NodeProto) -> bool:
    """Whether `node` passes its input on with the last axis still last (a class map stays
    one)."""
    if node.op_type in ("Identity", "Cast"):
        return True
    if node.op_type == "Transpose":
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
        return perm is not None and len(perm) == _RANK and perm[-1] == _RANK - 1
    return False


def _over_last_axis(node: onnx.NodeProto) -> bool:
    """Whether a Softmax/LogSoftmax of a rank-3 tensor normalizes over its last axis (the
    default axis is -1 from opset 13, 1 before: over the last two axes then, not a map)."""
    axis = next((a.i for a in node.attribute if a.name == "axis"), None)
    return axis in (-1, _RANK - 1)


def _rank(value: onnx.ValueInfoProto) -> int | None:
    t = value.type.tensor_type
    return len(t.shape.dim) if t.HasField("shape") else None


def detected_class_maps(model: onnx.ModelProto) -> tuple[str, ...]:
    """The rank-3 outputs of `model` computed by a Softmax or LogSoftmax over their last
    axis (through Identity, Cast or a Transpose that keeps the last axis last).

    Examples
    --------
    >>> from onnx import TensorProto, helper
    >>> def v(name, shape):
    ...     return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
    >>> nodes = [helper.make_node("Softmax", ["x"], ["p"], axis=2),
    ...          helper.make_node("Identity", ["p"], ["probs"]),
    ...          helper.make_node("Softmax", ["x"], ["q"], axis=1)]
    >>> g = helper.make_graph(nodes, "g", [v("x", [1, 40, 97])],
    ...                       [v("probs", [1, 40, 97]), v("q", [1, 40, 97])])
    >>> detected_class_maps(helper.make_model(g))
    ('probs',)
    """
    producer = {o: n for n in model.graph.node for o in n.output}
    found = []
    for out in model.graph.output:
        if _rank(out) != _RANK:
            continue
        node = producer.get(out.name)
        while node is not None and _last_axis_kept(node):
            node = producer.get(node.input[0])
        if node is not None and node.op_type in _SCORES and _over_last_axis(node):
            found.append(out.name)
    return tuple(found)


def class_maps(model: onnx.ModelProto, named: Sequence[str] | None,
               scored: Sequence[str]) -> tuple[str, ...]:
    """The scored outputs read as class maps: those `named` (each must be a scored output of
    `model`), or with `named` None those found in the graph (`detected_class_maps`); `()`
    names none.

    Examples
    --------
    >>> from onnx import TensorProto, helper
    >>> def v(name, shape):
    ...     return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
    >>> g = helper.make_graph([helper.make_node("LogSoftmax", ["x"], ["y"], axis=-1)], "g",
    ...                       [v("x", [20, 1, 37])], [v("y", [20, 1, 37])])
    >>> class_maps(helper.make_model(g), None, ["y"]), class_maps(helper.make_model(g), (), ["y"])
    (('y',), ())
    """
    if named is None:
        return tuple(n for n in detected_class_maps(model) if n in scored)
    for n in named:
        if n not in scored:
            raise DataError(f"output '{n}' given in class_maps is not a scored float output "
                            f"of the model (scored: {', '.join(scored) or 'none'})")
    return tuple(dict.fromkeys(named))


def frame_agreement(reference: np.ndarray, got: np.ndarray) -> tuple[int, int]:
    """Frames of a class map whose best class (the arg-max over the last axis) is the
    reference's, and the frames in all.

    Examples
    --------
    >>> ref = np.array([[[0.1, 0.9], [0.6, 0.4], [0.2, 0.8]]])
    >>> frame_agreement(ref, np.array([[[0.2, 0.8], [0.4, 0.6], [0.1, 0.9]]]))
    (2, 3)
    """
    a = np.argmax(np.asarray(reference), axis=-1)
    b = np.argmax(np.asarray(got), axis=-1)
    if a.shape != b.shape:
        raise DataError(f"class map of shape {np.shape(got)} against the float model's "
                        f"{np.shape(reference)}")
    return int(np.sum(a == b)), int(a.size)


@dataclass(frozen=True)
class Scorer:
    """How the choice scores one kind of output: counts (agreeing, total) on one feed's
    output against the float model's, reported as a percentage."""

    label: str                          # the record's name of the measure
    count: Callable[[np.ndarray, np.ndarray], tuple[int, int]]


# The decoding-aware scorer of each output kind; an output of a kind absent here (plain
# values) is scored by its SQNR alone.
SCORERS: dict[str, Scorer] = {
    CLASS_MAP: Scorer("frame argmax agreement", frame_agreement),
}
