"""ONNX Runtime's ConvAddFusion and ConvMulFusion (level 1), mirrored at load with its
ConvBNFusion (lowp.runtime.ort_conv_bn) in the order its rule set applies them.

A float Conv whose only reader is a Mul or an Add by a constant of one value per output
channel folds it into its weights and bias, computed as ONNX Runtime's Initializer
arithmetic does, element by element in the parameters' type:

    Mul by s:  W' = W * s[o] (every weight of output channel o),  B' = B * s[o]
    Add of t:  B' = B + t[o]  (t itself, as the bias, without one)

The folded convolution rounds otherwise than a Conv then a Mul or an Add (captcha_crnn's
float model writes each BatchNormalization as a Mul and an Add after the Conv: 88% of the
first Conv's values apart). ONNX Runtime's matching rules (conv_mul_fusion.cc,
conv_add_fusion.cc): Conv of version 1, 11 or 22 (ONNX Runtime 1.32, as its ConvBNFusion)
with one output edge and not a graph output, its weights and bias constant;
Mul or Add of version 7, 13 or 14 with one input edge, its second input a constant
(initializers that no graph input overrides, Constant nodes, or Reshape, Unsqueeze,
Squeeze, Flatten or Identity of those, which ONNX Runtime turns into initializers first);
weights of rank > 2, the constant of the weights' type, of rank 0 (Mul only), of the
weights' rank with every dimension 1 but the second (1 x M x 1 x 1), or of one less with
every dimension 1 but the first (M x 1 x 1); a bias of rank 1 with M values of that type.
Per Conv the rules run as ONNX Runtime registers them: ConvAddFusion, ConvMulFusion, then
ConvBNFusion, repeated until nothing changes (a Conv -> Mul -> Add chain folds both)
(docs/operators.md, (O52c)).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from ..ir.graph import (
    ONNX_DOMAINS,
    attributes,
    constant_tensors,
    opset_of,
    read_counts,
    with_nodes,
)
from . import ort_conv_bn
from .float_ops import FLOAT_OPS
from .ort_conv_bn import _version

_CONV_SINCE, _CONV_FUSED = (1, 11, 22), frozenset({1, 11, 22})
_BINARY_SINCE, _BINARY_FUSED = (1, 6, 7, 13, 14), frozenset({7, 13, 14})
_FLOATS = frozenset({onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE})


def _per_channel(c: onnx.TensorProto, w: onnx.TensorProto, scalar_ok: bool) -> bool:
    """The constant's shape is one ONNX Runtime folds: rank 0 (`scalar_ok`), or the weights'
    rank with its second dimension M, or one less with its first M, every other 1."""
    if len(c.dims) == 0:
        return scalar_ok
    if len(c.dims) == len(w.dims):
        axis = 1
    elif len(c.dims) == len(w.dims) - 1:
        axis = 0
    else:
        return False
    return c.dims[axis] == w.dims[0] and all(d == 1 for i, d in enumerate(c.dims) if i != axis)


# shape moves of constants that ONNX Runtime's constant folding turns into initializers
# before the rules see them (paddle2onnx writes each Conv bias as Reshape(b, [1, M, 1, 1]))
_MOVES = frozenset({"Reshape", "Unsqueeze", "Squeeze", "Flatten", "Identity"})


def _folded_constants(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    """The constants of `model` (lowp.runtime.ort_conv_bn's), and the outputs of shape moves
    of constants, computed in graph order by lowp's own float operators."""
    consts = dict(constant_tensors(model.graph))
    opset = opset_of(model)
    for n in model.graph.node:
        if (n.op_type not in _MOVES or n.domain not in ONNX_DOMAINS or len(n.output) != 1
                or not n.input or any(i and i not in consts for i in n.input)):
            continue
        attrs = attributes(n)
        if n.op_type == "Unsqueeze" and "axes" not in attrs and len(n.input) < 2:
            continue                    # no axes: not a move ONNX Runtime folds
        args = [numpy_helper.to_array(consts[i]) if i else None for i in n.input]
        out = FLOAT_OPS[n.op_type](*args, **attrs, opset=opset)
        consts[n.output[0]] = numpy_helper.from_array(np.ascontiguousarray(out), n.output[0])
    return consts


def _fold_pass(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """Every Conv -> Add or Conv -> Mul pair folded once (a new model), or None when none
    folds. The pairs are disjoint: each Add or Mul has one input edge."""
    g = model.graph
    opset = opset_of(model)
    if _version(_BINARY_SINCE, opset) not in _BINARY_FUSED:
        return None
    consts = _folded_constants(model)
    reads = read_counts(g)
    outputs = {o.name for o in g.output}
    consumer = {i: n for n in g.node for i in n.input if i}
    # ONNX Runtime turns Constant nodes and folded shape moves into initializers: no edge
    # comes from them
    producer = {o: n for n in g.node for o in n.output if o and o not in consts}
    replaced: dict[int, onnx.NodeProto] = {}
    gone: set[int] = set()
    inits: list[onnx.TensorProto] = []
    for conv in g.node:
        if (conv.op_type != "Conv" or conv.domain not in ONNX_DOMAINS or len(conv.input) < 2
                or reads[conv.output[0]] != 1 or conv.output[0] in outputs):
            continue
        nxt = consumer[conv.output[0]]
        if nxt.op_type not in ("Add", "Mul") or nxt.domain not in ONNX_DOMAINS or \
                len(nxt.input) != 2 or nxt.input[0] != conv.output[0]:
            continue
        if sum(1 for i in nxt.input if i in producer) != 1:     # one input edge
            continue
        has_bias = len(conv.input) > 2 and bool(conv.input[2])
        w, c = consts.get(conv.input[1]), consts.get(nxt.input[1])
        b = consts.get(conv.input[2]) if has_bias else None
        if w is None or c is None or (has_bias and b is None):
            continue
        if (w.data_type not in _FLOATS or c.data_type != w.data_type or len(w.dims) <= 2
                or not _per_channel(c, w, scalar_ok=nxt.op_type == "Mul")):
            continue
        if b is not None and (b.data_type != w.data_type or list(b.dims) != [w.dims[0]]):
            continue
        node, made = _folded(conv, nxt, w, b, c)
        replaced[id(conv)] = node
        gone.add(id(nxt))
        inits += made
    if not replaced:
        return None
    return with_nodes(model, [replaced.get(id(n), n) for n in g.node if id(n) not in gone],
                      inits)


def _folded(conv: onnx.NodeProto, nxt: onnx.NodeProto, w: onnx.TensorProto,
            b: onnx.TensorProto | None, c: onnx.TensorProto
            ) -> tuple[onnx.NodeProto, list[onnx.TensorProto]]:
    """The Conv with `nxt` folded in, and its new initializers."""
    wv, cv = numpy_helper.to_array(w), numpy_helper.to_array(c).reshape(-1)
    bv = None if b is None else numpy_helper.to_array(b)
    new_w, new_b = None, None
    if nxt.op_type == "Mul":
        s = cv if cv.size > 1 else np.full(wv.shape[0], cv[0], wv.dtype)
        new_w = (wv * s.reshape(-1, *([1] * (wv.ndim - 1)))).astype(wv.dtype)
        if bv is not None:
            new_b = (bv * s).astype(wv.dtype)
    else:
        new_b = cv.astype(wv.dtype) if bv is None else (bv + cv).astype(wv.dtype)
    inits: list[onnx.TensorProto] = []
    node = onnx.NodeProto()
    node.CopyFrom(conv)
    suffix = f"{nxt.op_type}_{nxt.output[0]}"
    if new_w is not None:
        inits.append(numpy_helper.from_array(new_w, f"Conv{nxt.op_type}Fusion_W_{suffix}"))
        node.input[1] = inits[-1].name
    if new_b is not None:
        inits.append(numpy_helper.from_array(new_b, f"Conv{nxt.op_type}Fusion_B_{suffix}"))
        if len(node.input) > 2:
            node.input[2] = inits[-1].name
        else:
            node.input.append(inits[-1].name)
    node.output[0] = nxt.output[0]
    return node, inits


def apply(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with every Conv -> Add, Conv -> Mul and Conv -> BatchNormalization that ONNX
    Runtime folds folded into the Conv (a new model), or `model` itself when none folds."""
    opset = opset_of(model)
    if _version(_CONV_SINCE, opset) not in _CONV_FUSED or \
            not any(n.op_type in ("Add", "Mul") for n in model.graph.node):
        return ort_conv_bn.apply(model)
    while True:
        folded = _fold_pass(model)
        if folded is None:
            after = ort_conv_bn.apply(model)
            if after is model:
                return after
            folded = _fold_pass(after)
            if folded is None:
                return after
        model = folded
