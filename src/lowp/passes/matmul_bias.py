"""MatMul -> Add of a constant bias rewritten as one Gemm, so that the bias joins the int32
accumulator (at s_x * s_w) instead of being added to the rounded MatMul output and rounded
again (`Config.fuse_matmul_bias`; docs/accuracy.md, "MatMul bias as a Gemm bias").

A MatMul whose weight is a constant [K, N] matrix and whose only reader is an Add of a
constant holding N values along the last axis (a Dense layer as TensorFlow and Caffe
exporters write it) computes what Gemm(x, W, b) computes. Quantized as it is, the MatMul's
output is rounded to int8 on its own grid, the bias is rounded to the Add's input grid, and
the Add's output is rounded once more; as a Gemm the product and the bias meet in int32 and
the sum is rounded once. Only a 2-D x is rewritten (Gemm's own domain): an x of higher rank
flattened to rows and reshaped back gave files on which lowp's engine and ONNX Runtime
disagree on a few values (khmersm, unidic_imitator, ppocrv6_rec_small; not traced:
docs/accuracy.md, "MatMul bias as a Gemm bias"). The float function is unchanged up to the
float rounding of the sum (the same products, the bias added last).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..ir.graph import Graph
from ..ir.names import NameAllocator


def _bias(graph: Graph, add: onnx.NodeProto, product: str, n: int, rank: int
          ) -> tuple[str, np.ndarray] | None:
    """The Add's constant operand as N float32 values, when it adds them along the last axis
    of an output of rank `rank` (shape [N] or [1, ..., 1, N], no wider than the output)."""
    others = [i for i in add.input if i != product]
    if len(add.input) != 2 or len(others) != 1 or not graph.is_constant(others[0]):
        return None
    b = graph.constant(others[0])
    if (b.dtype != np.float32 or b.ndim < 1 or b.ndim > rank or b.shape[-1] != n
            or b.size != n):
        return None
    return others[0], b.reshape(n)


def fuse_matmul_bias(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """A copy of `model` with every MatMul -> Add(constant bias) pair as one Gemm (module
    docstring), and how many pairs were rewritten. The Gemm takes the MatMul's node name and
    writes the Add's output tensor."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = Graph(out)
    names = NameAllocator.for_model(out)
    replaced: dict[int, list[onnx.NodeProto]] = {}     # id(MatMul) -> its nodes
    dropped: set[int] = set()                           # id(Add)
    new_inits: list[onnx.TensorProto] = []
    for mm in out.graph.node:
        if mm.op_type != "MatMul" or len(mm.input) != 2 or not graph.is_constant(mm.input[1]):
            continue
        w = graph.constant(mm.input[1])
        readers = graph.consumers.get(mm.output[0], [])
        if (w.ndim != 2 or w.dtype != np.float32 or len(readers) != 1
                or readers[0].op_type != "Add" or mm.output[0] in graph.output_names):
            continue
        shape = graph.inferred_shape(mm.input[0])
        if shape is None or len(shape) != 2:
            continue
        add = readers[0]
        n = int(w.shape[1])
        bias = _bias(graph, add, mm.output[0], n, 2)
        if bias is None:
            continue
        b_name = names.fresh(bias[0] + "_gemm")
        new_inits.append(numpy_helper.from_array(bias[1], b_name))
        nodes = [helper.make_node("Gemm", [mm.input[0], mm.input[1], b_name],
                                  [add.output[0]], name=mm.name)]
        replaced[id(mm)] = nodes
        dropped.add(id(add))
    if not replaced:
        return out, 0
    kept: list[onnx.NodeProto] = []
    for node in out.graph.node:
        if id(node) in dropped:
            continue
        kept.extend(replaced.get(id(node), [node]))
    del out.graph.node[:]
    out.graph.node.extend(kept)
    out.graph.initializer.extend(new_inits)
    return out, len(replaced)
