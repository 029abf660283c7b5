"""ONNX Runtime's removal of double QDQ pairs, applied before lowering.

At load ONNX Runtime's DoubleQDQPairsRemover (a level-1 optimizer, before QDQ propagation)
turns QuantizeLinear Q1 -> DequantizeLinear DQ1 -> QuantizeLinear Q2 -> DequantizeLinear DQ2
into Q1 -> DQ2 when DQ1 and Q2 each have one reader, none of Q1, DQ1, Q2 is a graph output,
and each pair (Q1, DQ1) and (Q2, DQ2) has one constant scalar scale and zero point, the same
in both nodes of the pair. The chain often appears only after ONNX Runtime's level-1 rules
removed an Identity, a Cast to the type it already has, an inference Dropout whose ratio
no node computes, an Add, Sub, Mul or Div of a one-element constant 0 or 1, or an Expand
that changes nothing between DQ1 and Q2 (EliminateIdentity, CastElimination,
EliminateDropout, NoopElimination and ExpandElimination run first); lowp removes such a
node too. When the pairs differ, Q1 and DQ2 get the parameters of the intersection of
the two ranges, in float32 (docs/operators.md (O47)):

    r_lo = max((qmin - z1) s1, (qmin - z2) s2),  r_hi = min((qmax - z1) s1, (qmax - z2) s2)
    s = (r_hi - r_lo) / (qmax - qmin),  z = round_half_away(qmin - r_lo / s)

This is not the file's arithmetic: the file rounds twice (to s1, then to s2), ONNX Runtime
once, to s. lowp runs what ONNX Runtime runs, so that a QDQ file gives the same numbers in
both. Only the top-level graph is rewritten.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from ..ir.graph import ONNX_DOMAINS, cast_to
from .ort_qdq_propagation import QdqGraph

# the zero point types its FindNewZeroPointAndScale takes, 16-bit ones too
_RANGES = {np.dtype(np.uint8): (0, 255), np.dtype(np.int8): (-128, 127),
           np.dtype(np.uint16): (0, 65535), np.dtype(np.int16): (-32768, 32767)}


def _constant_scalar(inits: dict[str, onnx.TensorProto], name: str) -> np.ndarray | None:
    t = inits.get(name)
    if t is None:
        return None
    v = numpy_helper.to_array(t)
    return v if v.size == 1 else None


def _pair_params(inits: dict[str, onnx.TensorProto], q: onnx.NodeProto,
                 dq: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray] | None:
    """IsQDQPairSupported: explicit constant scalar scale and zero point, equal in Q and DQ."""
    if len(q.input) < 3 or len(dq.input) < 3 or not q.input[2] or not dq.input[2]:
        return None
    found = [_constant_scalar(inits, n) for n in (q.input[1], q.input[2], dq.input[1],
                                                    dq.input[2])]
    values = [v for v in found if v is not None]
    if len(values) != 4:
        return None
    qs, qz, ds, dz = values
    if qz.dtype != dz.dtype or qs.dtype != ds.dtype or qs.item() != ds.item() \
            or qz.item() != dz.item():
        return None
    return qs, qz


def _dequantized_type(inits: dict[str, onnx.TensorProto], dq: onnx.NodeProto) -> int | None:
    """The element type of a DequantizeLinear output: `output_dtype` when set, else the
    scale's type (None when the scale is not a constant)."""
    declared = next((a.i for a in dq.attribute if a.name == "output_dtype"), 0)
    if declared:
        return declared
    scale = inits.get(dq.input[1]) if len(dq.input) > 1 else None
    return None if scale is None else scale.data_type


# what ONNX Runtime's ConstantFolding leaves as nodes even when every input is constant
# (DequantizeLinear is kept for the QDQ rewrites; the random operators)
NOT_FOLDED = {"DequantizeLinear", "RandomNormal", "RandomUniform", "RandomNormalLike",
               "RandomUniformLike", "Multinomial", "Bernoulli"}


def _constant(g: QdqGraph, name: str, depth: int = 0) -> bool:
    """`name` is an initializer once ONNX Runtime's level-1 rules ran: a constant
    initializer, a Constant node's output, or the output of a node ConstantFolding replaces
    (an ONNX operator without subgraphs, not one of NOT_FOLDED, every input constant)."""
    if name in g.inits:
        return True
    src = g.producer(name)
    if src is None or src.domain not in ONNX_DOMAINS or depth > 32:
        return False
    if src.op_type == "Constant":
        return True
    return (src.op_type not in NOT_FOLDED
            and not any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                        for a in src.attribute)
            and all(_constant(g, i, depth + 1) for i in src.input if i))


def _inference_dropout(g: QdqGraph, node: onnx.NodeProto) -> bool:
    """A Dropout that passes its input through: no mask output in use, no training_mode
    input other than a constant false, and no ratio or training_mode computed by a node
    that stays one (ONNX Runtime removes a node with at most one input edge: a ratio read
    from a DequantizeLinear, as its quantizer writes it, keeps the Dropout; a ratio its
    ConstantFolding computes first, or a graph input, does not)."""
    for name in node.input[1:]:
        if name and g.producer(name) is not None and not _constant(g, name):
            return False
    if len(node.output) > 1 and node.output[1] and (
            node.output[1] in g.outputs or g.readers(node.output[1])):
        return False
    if len(node.input) > 2 and node.input[2]:
        mode = _constant_scalar(g.inits, node.input[2])
        return mode is not None and not bool(mode.item())
    return True


_NOOP = {"Add": 0.0, "Sub": 0.0, "Mul": 1.0, "Div": 1.0}   # the identity each one drops


Shape = tuple[int | None, ...]


def _shapes(model: onnx.ModelProto) -> dict[str, Shape]:
    """The shape (None for a dimension it does not know) of every top-level tensor that ONNX
    shape inference finds a rank for."""
    try:
        graph = onnx.shape_inference.infer_shapes(model).graph
    except Exception:       # no shapes: no NoopElimination or ExpandElimination (nor in ORT)
        return {}
    return {v.name: tuple(d.dim_value if d.HasField("dim_value") else None
                          for d in v.type.tensor_type.shape.dim)
            for v in (*graph.input, *graph.value_info, *graph.output)
            if v.type.tensor_type.HasField("shape")}


def _expand_keeps(target: np.ndarray, shape: Shape) -> bool:
    """ExpandElimination's test: expanding `shape` to `target` changes nothing. Aligned from
    the last axis, each target dimension is 1 or a known equal one, and the target's rank
    is at most the input's."""
    if target.ndim != 1 or target.size > len(shape):
        return False
    tail = shape[len(shape) - target.size:]
    return all(t == 1 or d == t for t, d in zip(target.tolist(), tail, strict=True))


def _noop_data(inits: dict[str, onnx.TensorProto], node: onnx.NodeProto
               ) -> tuple[str, int] | None:
    """The input that an Add, Sub, Mul or Div passes through unchanged as ONNX Runtime's
    NoopElimination sees it and the constant's rank, or None: the other input a constant of
    one element equal to 0 (Add, Sub) or 1 (Mul, Div); only Add and Mul may have the
    constant first. (ONNX Runtime also needs the data's rank at least the constant's.)"""
    if len(node.input) != 2:
        return None
    first, second = (n in inits for n in node.input)
    if first == second or (first and node.op_type not in ("Add", "Mul")):
        return None
    const, data = (node.input[0], node.input[1]) if first else (node.input[1], node.input[0])
    value = numpy_helper.to_array(inits[const])
    if value.size != 1 or value.dtype.kind != "f" \
            or float(value.item()) != _NOOP[node.op_type]:
        return None
    return data, value.ndim


def merged_parameters(s1: float, z1: int, s2: float, z2: int, dtype: np.dtype
                      ) -> tuple[np.float32, int]:
    """The scale and zero point ONNX Runtime gives the merged pair (FindNewZeroPointAndScale).

    Examples
    --------
    >>> s, z = merged_parameters(0.1, 128, 0.05, 128, np.dtype(np.uint8))
    >>> float(s), z
    (0.05000000074505806, 128)
    """
    f = np.float32
    qmin, qmax = _RANGES[np.dtype(dtype)]
    lo1, hi1 = f(qmin - z1) * f(s1), f(qmax - z1) * f(s1)
    lo2, hi2 = f(qmin - z2) * f(s2), f(qmax - z2) * f(s2)
    lo, hi = max(lo1, lo2), min(hi1, hi2)
    scale = f(f(hi - lo) / f(qmax - qmin))
    t = f(f(qmin) - f(lo / scale))
    rounded = np.floor(np.abs(t) + f(0.5)) * np.sign(t)      # std::round: half away from 0
    zero = int(np.array(int(rounded)).astype(np.int64).astype(dtype))   # narrow_cast wraps
    return scale, zero


def apply(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with ONNX Runtime's double QDQ pairs removed (a new model), or `model`
    itself when it has none."""
    if sum(n.op_type == "DequantizeLinear" for n in model.graph.node) < 2:
        return model
    out, g = QdqGraph.editable_copy(model)
    changed = False

    def set_param(node: onnx.NodeProto, slot: int, value: np.ndarray) -> None:
        name = g.fresh(f"DoubleQDQRemoved_{node.input[slot]}")
        tensor = numpy_helper.from_array(value, name)
        out.graph.initializer.append(tensor)
        g.inits[name] = tensor
        node.input[slot] = name
        g.edited()

    # EliminateIdentity, CastElimination and EliminateDropout, where they open a chain: an
    # Identity, a Cast to the type its input already has, or a Dropout in inference mode
    # whose mask nobody reads, reading a DequantizeLinear output (no graph output itself),
    # hands its readers that output
    # (NoopElimination likewise: an Add, Sub, Mul or Div of a constant 0 or 1; and
    # ExpandElimination: an Expand to a constant shape that changes nothing)
    shapes: dict[str, Shape] | None = None
    for node in list(g.nodes):
        if node.op_type not in ("Identity", "Cast", "Dropout", "Expand", *_NOOP) \
                or node.domain not in ONNX_DOMAINS or node.output[0] in g.outputs:
            continue
        data, const_rank = node.input[0], 0
        if node.op_type in _NOOP:
            found = _noop_data(g.inits, node)
            if found is None:
                continue
            data, const_rank = found
        if node.op_type == "Expand" and (len(node.input) < 2 or node.input[1] not in g.inits):
            continue
        src = g.producer(data)
        if src is None or src.op_type != "DequantizeLinear":
            continue
        if node.op_type in (*_NOOP, "Expand"):
            if shapes is None:
                shapes = _shapes(model)     # shape inference only once a candidate is found
            if data not in shapes:
                continue
            if node.op_type == "Expand":
                target = numpy_helper.to_array(g.inits[node.input[1]])
                if target.dtype != np.int64 or not _expand_keeps(target, shapes[data]):
                    continue
            elif len(shapes[data]) < const_rank:
                continue
        if node.op_type == "Cast" and cast_to(node) != _dequantized_type(g.inits, src):
            continue
        if node.op_type == "Dropout" and not _inference_dropout(g, node):
            continue
        for reader, k in g.readers(node.output[0]):
            reader.input[k] = data
        g.nodes.remove(node)
        g.edited()
        changed = True

    for dq1 in list(g.nodes):
        if dq1.op_type != "DequantizeLinear" or dq1.domain not in ONNX_DOMAINS \
                or dq1 not in g.nodes:
            continue
        q1, q2 = g.producer(dq1.input[0]), g.single_reader(dq1.output[0])
        if q1 is None or q1.op_type != "QuantizeLinear" or q1.domain not in ONNX_DOMAINS \
                or g.single_reader(q1.output[0]) is None:
            continue
        if q2 is None or q2.op_type != "QuantizeLinear" or q2.domain not in ONNX_DOMAINS:
            continue
        dq2 = g.single_reader(q2.output[0])
        if dq2 is None or dq2.op_type != "DequantizeLinear" or dq2.domain not in ONNX_DOMAINS:
            continue
        first, second = _pair_params(g.inits, q1, dq1), _pair_params(g.inits, q2, dq2)
        if first is None or second is None or first[1].dtype != second[1].dtype \
                or first[1].dtype not in _RANGES or first[0].dtype != np.float32:
            continue
        (s1, z1), (s2, z2) = first, second
        same = (dq1.input[1] == q2.input[1] and dq1.input[2] == q2.input[2]) or (
            z1.item() == z2.item() and abs(float(s1) - float(s2)) < 1e-20)
        if not same:
            scale, zero = merged_parameters(float(s1), int(z1), float(s2), int(z2), z1.dtype)
            for node in (q1, dq2):
                set_param(node, 1, np.array(scale, np.float32).reshape(s1.shape))
                set_param(node, 2, np.array(zero, z1.dtype).reshape(z1.shape))
        dq2.input[0] = q1.output[0]
        g.nodes.remove(dq1)
        g.nodes.remove(q2)
        g.edited()
        changed = True
    if not changed:
        return model
    return g.write_nodes(out)
