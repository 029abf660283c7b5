"""ONNX Runtime's conversion of int8 QuantizeLinear -> DequantizeLinear pairs to uint8,
applied before lowering.

On x86, where its QDQ selectors fuse Conv and MatMul groups only for uint8 activations,
ONNX Runtime's QDQS8ToU8Transformer (level 2, before those selectors) rewrites, in
topological order, a QuantizeLinear whose output has one reader, a DequantizeLinear, and
is no graph output, when both nodes have a constant one-element int8 zero point, the same
in both, and the DequantizeLinear has at most one reader (then no graph output:
EnsureUniqueDQForNodeUnit, at level 1, gives every further reader, and a graph output, a
DequantizeLinear of its own, and the QuantizeLinear then has several readers). Both nodes
take the uint8 zero point z + 128; the codes between them become uint8, each code + 128,
the same real values (docs/operators.md (O47u)). A QuantizeLinear of a constant (a weight
computed by a Constant node) is no pair there: its constant folding, at level 1, has made
it an int8 initializer. Its second rule, for int8 constants, is
off by default (weights_to_u8, the AVX2 precision mode) and not mirrored.

The real values stay the same, but the groups around a converted pair change type: an int8
Conv group between two converted pairs is a uint8 group that ONNX Runtime runs in
QLinearConv (the exact integer sum, (O5)) instead of in float ((O5a)); an Add of a
converted and an unconverted input mixes uint8 and int8 and stays float, where an all-int8
one is QLinearAdd; and QLinearAdd's float rounding (O10a) sees the shifted codes. lowp
converts the same pairs, so that its lowering finds the groups ONNX Runtime fuses and
computes them on the same codes (not in a file converted from QOperator form, whose
QLinear* nodes ONNX Runtime runs as they are).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from .lowering import QOPERATOR_KEY
from .ort_qdq_propagation import QdqGraph

_QDQ_DOMAINS = ("", "ai.onnx", "com.microsoft")


def _int8_scalar(g: QdqGraph, name: str) -> np.ndarray | None:
    t = g.inits.get(name)
    if t is None or t.data_type != onnx.TensorProto.INT8:
        return None
    v = numpy_helper.to_array(t)
    return v if v.size == 1 else None


def _as_uint8(values: np.ndarray) -> np.ndarray:
    """int8 codes as the uint8 codes of the same real values (code + 128, XOR 0x80)."""
    return (values.astype(np.int16) + 128).astype(np.uint8)


def _is(node: onnx.NodeProto, op_type: str) -> bool:
    return node.op_type == op_type and node.domain in _QDQ_DOMAINS


def _new_initializer(out: onnx.ModelProto, g: QdqGraph, base: str,
                     value: np.ndarray) -> str:
    name = g.fresh(f"{base}_s8_to_u8")
    tensor = numpy_helper.from_array(value, name)
    out.graph.initializer.append(tensor)
    g.inits[name] = tensor
    return name


def _constant_tensors(g: QdqGraph) -> set[str]:
    """Tensors ONNX Runtime's constant folding (level 1) computes at load: initializers and
    the outputs of nodes (a QuantizeLinear among them, never a DequantizeLinear) whose
    inputs are all constant."""
    constant = set(g.inits)
    for node in g.nodes:           # topological order
        if node.op_type == "DequantizeLinear" or node.domain not in _QDQ_DOMAINS[:2] \
                or any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                       for a in node.attribute):
            continue
        if all(i in constant for i in node.input if i):
            constant.update(o for o in node.output if o)
    return constant


def _convert_pair(out: onnx.ModelProto, g: QdqGraph, q: onnx.NodeProto,
                  constant: set[str]) -> bool:
    """QDQ_S8_to_U8 on `q` and its one reader; a QuantizeLinear of a constant is an int8
    initializer by then, no pair."""
    if q.input[0] in constant:
        return False
    dq = g.single_reader(q.output[0])
    if dq is None or not _is(dq, "DequantizeLinear") or len(q.input) < 3 \
            or len(dq.input) < 3 or dq.input[0] != q.output[0]:
        return False
    readers = g.readers(dq.output[0])
    if len(readers) > 1 or (readers and dq.output[0] in g.outputs):
        # EnsureUniqueDQForNodeUnit (level 1) gave each reader, and a graph output, a
        # DequantizeLinear of its own: the QuantizeLinear has several readers then
        return False
    qz, dz = _int8_scalar(g, q.input[2]), _int8_scalar(g, dq.input[2])
    if qz is None or dz is None or int(qz.item()) != int(dz.item()):
        return False
    zero = _new_initializer(out, g, q.input[2], _as_uint8(qz.reshape(())))
    q.input[2] = dq.input[2] = zero
    g.edited()
    declared = [v for v in out.graph.value_info if v.name == q.output[0]]
    for v in declared:               # the codes between the two nodes are uint8 now
        out.graph.value_info.remove(v)
    return True


def apply(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with ONNX Runtime's int8 -> uint8 QDQ conversions (a new model), or `model`
    itself when nothing converts."""
    if not any(_is(n, "QuantizeLinear") for n in model.graph.node) or any(
            p.key == QOPERATOR_KEY for n in model.graph.node for p in n.metadata_props):
        # a QOperator file's groups (QOPERATOR_KEY) are the kernels ONNX Runtime runs on
        # the file's own int8 codes; it has no pairs to convert
        return model
    out, g = QdqGraph.editable_copy(model)
    changed = False
    constant = _constant_tensors(g)
    for node in g.nodes:             # a valid ONNX graph lists its nodes in topological order
        if _is(node, "QuantizeLinear") and g.single_reader(node.output[0]) is not None:
            changed |= _convert_pair(out, g, node, constant)
    if not changed:
        return model
    return g.write_nodes(out)
