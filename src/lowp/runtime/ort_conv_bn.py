"""ONNX Runtime's ConvBNFusion (level 1), mirrored at load before lowp.runtime.ort_fusions.

A float Conv whose only reader is a BatchNormalization (inference form, constant parameters)
becomes one Conv with folded weights and bias, computed as ONNX Runtime's Initializer
arithmetic does, element by element in the parameters' type (float32 or float64):

    s  = scale / sqrt(var + epsilon)
    W' = W * s[o]                      (every weight of output channel o)
    B' = (B - mean) * s + beta         with a Conv bias B
    B' = beta - mean * s               without one

The fused convolution rounds otherwise than a Conv then a BatchNormalization (paddle2onnx's
OCR models put a BatchNormalization after nearly every Conv). A ConvTranspose folds the same
way, its weights [C_in, C_out / group, ...] scaled along axis 1 within each group. ONNX
Runtime's matching rules (conv_bn_fusion.cc): Conv (opset 1, 11 or 22) with one output edge, not
a graph output; BatchNormalization of opset 7, 9, 14 or 15 (ONNX Runtime 1.32) with one
input edge and no optional outputs; the Conv's weights and bias and the four
BatchNormalization parameters constant (initializers that no graph input overrides, or
Constant nodes, which ONNX Runtime turns into initializers); the parameters 1-D of the
weights' output channels, the weights of rank > 2, all of one floating type
(docs/operators.md, (O52)).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from ..ir.graph import ONNX_DOMAINS, constant_tensors, opset_of, read_counts, with_nodes

# The BatchNormalization versions ONNX Runtime's rule accepts, and the model opsets that
# select each (an operator's version is the newest one not above the model's opset).
_BN_SINCE = (1, 6, 7, 9, 14, 15)
_BN_FUSED = frozenset({7, 9, 14, 15})
_CONV_FUSED = frozenset({1, 11, 22})
_CONV_SINCE = (1, 11, 22)
# ONNX Runtime 1.32 folds into a ConvTranspose too (vit_s_focus's decoder), along the
# weights' axis 1 per group
_FOLDED_INTO = frozenset({"Conv", "ConvTranspose"})
# ONNX Runtime also folds float16 parameters (rounding each operation to float16); lowp
# folds float32 and float64 ones
_FLOATS = frozenset({onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE})


def _version(since: tuple[int, ...], opset: int) -> int:
    return max((v for v in since if v <= opset), default=0)


def fold(weights: np.ndarray, bias: np.ndarray | None, scale: np.ndarray, beta: np.ndarray,
         mean: np.ndarray, var: np.ndarray, epsilon: float, transposed_groups: int = 0
         ) -> tuple[np.ndarray, np.ndarray]:
    """The folded (weights, bias), in the parameters' own floating type as ONNX Runtime's
    Initializer computes them (one rounding per operation). `transposed_groups`: the
    weights are a ConvTranspose's in that many groups, [C_in, C_out / groups, ...], output
    channel g · C_out / groups + j along axis 1 of group g's input channels."""
    t = weights.dtype.type
    s = (scale / np.sqrt(var + t(np.float32(epsilon)))).astype(weights.dtype)
    if transposed_groups:
        per_out = s.reshape(transposed_groups, 1, -1)       # [group, 1, C_out / groups]
        rows = np.repeat(per_out, weights.shape[0] // transposed_groups, axis=1)
        s_w = rows.reshape(weights.shape[0], weights.shape[1], *([1] * (weights.ndim - 2)))
        w = (weights * s_w).astype(weights.dtype)
        b = ((bias - mean) * s + beta) if bias is not None else (beta - mean * s)
        return w, b.astype(weights.dtype)
    w = (weights * s.reshape(-1, *([1] * (weights.ndim - 1)))).astype(weights.dtype)
    b = ((bias - mean) * s + beta) if bias is not None else (beta - mean * s)
    return w, b.astype(weights.dtype)


def apply(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with every Conv -> BatchNormalization pair that ONNX Runtime fuses folded into
    the Conv (a new model), or `model` itself when there is none."""
    g = model.graph
    if not any(n.op_type == "BatchNormalization" for n in g.node):
        return model
    opset = opset_of(model)
    if (_version(_BN_SINCE, opset) not in _BN_FUSED
            or _version(_CONV_SINCE, opset) not in _CONV_FUSED):
        return model
    consts = constant_tensors(model.graph)
    reads = read_counts(g)
    outputs = {o.name for o in g.output}
    producer = {o: n for n in g.node for o in n.output if o}
    folded: dict[int, tuple[onnx.NodeProto, onnx.NodeProto]] = {}   # id(conv) -> (conv, bn)
    for bn in g.node:
        if (bn.op_type != "BatchNormalization" or bn.domain not in ONNX_DOMAINS
                or len(bn.input) != 5 or any(o for o in bn.output[1:])):
            continue
        conv = producer.get(bn.input[0])
        if (conv is None or conv.op_type not in _FOLDED_INTO or conv.domain not in ONNX_DOMAINS
                or id(conv) in folded or reads[conv.output[0]] != 1
                or conv.output[0] in outputs or len(conv.input) < 2):
            continue
        params = [consts.get(i) for i in (*bn.input[1:], *conv.input[1:])]
        if any(p is None for p in params):
            continue
        folded[id(conv)] = (conv, bn)
    new_inits: list[onnx.TensorProto] = []
    replaced: dict[int, onnx.NodeProto] = {}
    gone: set[int] = set()
    for conv, bn in folded.values():
        made = _fold_pair(conv, bn, consts)
        if made is None:
            continue
        node, inits = made
        replaced[id(conv)] = node
        gone.add(id(bn))
        new_inits += inits
    if not replaced:
        return model
    return with_nodes(model, [replaced.get(id(n), n) for n in g.node if id(n) not in gone],
                      new_inits)


def _fold_pair(conv: onnx.NodeProto, bn: onnx.NodeProto,
               consts: dict[str, onnx.TensorProto]
               ) -> tuple[onnx.NodeProto, list[onnx.TensorProto]] | None:
    """The fused Conv and its two new initializers, or None when ONNX Runtime's type and
    shape checks refuse the pair."""
    eps = next((a for a in bn.attribute if a.name == "epsilon"), None)
    epsilon = 1e-5 if eps is None else eps.f
    if eps is not None and eps.type != onnx.AttributeProto.FLOAT:
        return None
    protos = [consts[i] for i in bn.input[1:]]
    w_proto = consts[conv.input[1]]
    b_proto = consts[conv.input[2]] if len(conv.input) > 2 and conv.input[2] else None
    kinds = {p.data_type for p in (*protos, w_proto)}
    groups = next((a.i for a in conv.attribute if a.name == "group"), 1) \
        if conv.op_type == "ConvTranspose" else 0
    out_channels = w_proto.dims[1] * groups if groups else w_proto.dims[0]
    if (len(kinds) != 1 or not kinds <= _FLOATS or any(len(p.dims) != 1 for p in protos)
            or len({p.dims[0] for p in protos}) != 1 or len(w_proto.dims) <= 2
            or out_channels != protos[0].dims[0]
            or (groups and (groups < 1 or w_proto.dims[0] % groups))):
        return None
    if b_proto is not None and (len(b_proto.dims) != 1 or b_proto.dims[0] != protos[0].dims[0]
                                or b_proto.data_type != protos[0].data_type):
        return None
    scale, beta, mean, var = (numpy_helper.to_array(p) for p in protos)
    bias = None if b_proto is None else numpy_helper.to_array(b_proto)
    w, b = fold(numpy_helper.to_array(w_proto), bias, scale, beta, mean, var, epsilon,
                groups)
    w_name = f"ConvBnFusion_W_{conv.input[1]}_{bn.output[0]}"
    b_name = f"ConvBnFusion_BN_B_{bn.input[2]}_{bn.output[0]}"
    node = onnx.NodeProto()
    node.CopyFrom(conv)
    del node.input[:]
    node.input.extend([conv.input[0], w_name, b_name])
    node.output[0] = bn.output[0]
    return node, [numpy_helper.from_array(w, w_name), numpy_helper.from_array(b, b_name)]
