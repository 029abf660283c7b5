"""ONNX Runtime's QuickGeluFusion of a SiLU (level 2), mirrored at load after
lowp.runtime.ort_fusions.

ONNX Runtime 1.32 fuses x * Sigmoid(x) into one com.microsoft QuickGelu (alpha 1), whose
kernel is not its Sigmoid then its Mul: its logistic stays at most 1, where MLAS's Sigmoid
reaches 1 + 2^-23 on a few inputs just below 18 ((O13)), so that the unfused product is one
unit above x there (20 float32 inputs in [17, 18.5], x = 17.959602 among them: a YOLOv8
SiLU, slider_yolov8_seg). Measured on every float32 of [17, 18.5] and four million others,
its value is x * min(logistic(x), 1); lowp writes that as Mul(x, Clip(Sigmoid(x), 0, 1)),
whose Clip changes nothing else (the logistic is at least +0) and whose steps fuse into one
native chain (lowp.runtime.fuse_float). The Mul reads x first, as the kernel's
MlasEltwiseMul(input, logistic) does, so a quiet NaN in x comes out as it went in. (A
signalling NaN the kernel hands on unquieted; lowp's Mul quiets it.) The form
Mul(x, alpha) -> Sigmoid -> Mul that the fusion also takes computes, at alpha != 1, as the
nodes do (measured), and stays as it is.

The matching rule (quick_gelu_fusion.cc): a Sigmoid (opset 6 or 13) of a float32 x whose
output has one edge and is no graph output, into a Mul (7, 13 or 14) whose other input is
x. The Clip keeps the Sigmoid's layout for ONNX Runtime's NCHWc transformer
(lowp.runtime.ort_context, `quick_gelu_clip`), as the QuickGelu does (docs/operators.md,
(O322)).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..ir.graph import ONNX_DOMAINS, opset_of, read_counts, with_nodes

# the name suffix of the Clip this rewrite writes (ort_context carries the layout through it)
CLIP_SUFFIX = "/QuickGelu_clip"


def quick_gelu_clip(node: onnx.NodeProto) -> bool:
    """Whether `node` is the Clip this rewrite put between a Sigmoid and its Mul."""
    return node.op_type == "Clip" and node.name.endswith(CLIP_SUFFIX)


def _float32(name: str, types: dict[str, int]) -> bool:
    return types.get(name) == TensorProto.FLOAT


def apply(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with each SiLU that ONNX Runtime fuses into QuickGelu written as
    Mul(x, Clip(Sigmoid(x), 0, 1)) (a new model), or `model` itself when there is none."""
    g = model.graph
    opset = opset_of(model)
    if opset < 7 or not any(n.op_type == "Sigmoid" for n in g.node):
        return model
    types = {t.name: t.data_type for t in g.initializer}
    for v in (*g.input, *g.value_info, *g.output):
        if v.type.HasField("tensor_type"):
            types[v.name] = v.type.tensor_type.elem_type
    if not any(_float32(n.input[0], types) for n in g.node if n.op_type == "Sigmoid"):
        g2 = onnx.shape_inference.infer_shapes(model, strict_mode=False).graph
        for v in (*g2.input, *g2.value_info, *g2.output):
            if v.type.HasField("tensor_type"):
                types[v.name] = v.type.tensor_type.elem_type
    reads = read_counts(g)
    outputs = {o.name for o in g.output}
    producer = {o: n for n in g.node for o in n.output}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    clips: dict[int, onnx.NodeProto] = {}       # id(Mul) -> the Clip before it
    bounds: list[onnx.TensorProto] = []
    for sig in g.node:
        if sig.op_type != "Sigmoid" or sig.domain not in ONNX_DOMAINS or len(sig.input) != 1:
            continue
        x, s = sig.input[0], sig.output[0]
        if not _float32(x, types) or s in outputs or reads.get(s, 0) != 1 \
                or len(readers.get(s, ())) != 1:
            continue        # (one edge: a read inside a subgraph counts)
        dq = producer.get(x)
        if dq is not None and dq.op_type == "DequantizeLinear" and reads.get(x, 0) > 1:
            continue    # ONNX Runtime gives each reader its own copy (EnsureUniqueDQForNodeUnit)
        mul = readers[s][0]
        if mul.op_type != "Mul" or mul.domain not in ONNX_DOMAINS or len(mul.input) != 2 \
                or set(mul.input) != {x, s} or id(mul) in clips:
            continue
        clipped = f"{s}{CLIP_SUFFIX}"
        if opset >= 11:     # (bounds named after the Sigmoid's output: unique in a model
            # whose subgraphs this runs in too)
            low, high = f"{clipped}_low", f"{clipped}_high"
            bounds += [numpy_helper.from_array(np.float32(0.0), low),
                       numpy_helper.from_array(np.float32(1.0), high)]
            clip = helper.make_node("Clip", [s, low, high], [clipped],
                                    name=f"{sig.name}{CLIP_SUFFIX}")
        else:
            clip = helper.make_node("Clip", [s], [clipped], name=f"{sig.name}{CLIP_SUFFIX}",
                                    min=0.0, max=1.0)
        clips[id(mul)] = clip
    if not clips:
        return model
    nodes: list[onnx.NodeProto] = []
    for n in g.node:
        before = clips.get(id(n))
        if before is None:
            nodes.append(n)
            continue
        x = next(i for i in n.input if i != before.input[0])
        mul = onnx.NodeProto()
        mul.CopyFrom(n)
        del mul.input[:]
        mul.input.extend([x, before.output[0]])     # x first, as the kernel multiplies
        nodes += [before, mul]
    return with_nodes(model, nodes, bounds)
