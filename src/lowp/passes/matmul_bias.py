"""MatMul -> Add of a constant bias rewritten as one Gemm, so that the bias joins the int32
accumulator (at s_x * s_w) instead of being added to the rounded MatMul output and rounded
again (`Config.fuse_matmul_bias`; docs/accuracy.md, "MatMul bias as a Gemm bias").

A MatMul whose weight is a constant [K, N] matrix and whose only reader is an Add of a
constant holding N values along the last axis (a Dense layer as TensorFlow and Caffe
exporters write it) computes what Gemm(x, W, b) computes. Quantized as it is, the MatMul's
output is rounded to int8 on its own grid, the bias is rounded to the Add's input grid, and
the Add's output is rounded once more; as a Gemm the product and the bias meet in int32 and
the sum is rounded once. A 2-D x becomes Gemm(x, W, b); an x of higher rank is flattened to
[rows, K] first and the Gemm's output reshaped back to x's leading dimensions and N (one
unknown leading dimension becomes -1; with more, the shape is x's leading dimensions read at
run time, Shape -> Slice -> Concat). The float function is unchanged up to
the float rounding of the sum (the same products, the bias added last).
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
        if shape is None or len(shape) < 2:
            continue
        lead = [d if isinstance(d, int) and d > 0 else None for d in shape[:-1]]
        add = readers[0]
        k, n = (int(d) for d in w.shape)
        bias = _bias(graph, add, mm.output[0], n, len(shape))
        if bias is None:
            continue
        b_name = names.fresh(bias[0] + "_gemm")
        new_inits.append(numpy_helper.from_array(bias[1], b_name))
        if len(shape) == 2:
            nodes = [helper.make_node("Gemm", [mm.input[0], mm.input[1], b_name],
                                      [add.output[0]], name=mm.name)]
        else:
            flat = names.fresh(mm.input[0] + "_rows")
            product = names.fresh(add.output[0] + "_rows")
            target = names.fresh(add.output[0] + "_shape")
            nodes = []
            if sum(d is None for d in lead) <= 1:
                new_inits.append(numpy_helper.from_array(
                    np.array([-1 if d is None else d for d in lead] + [n], np.int64), target))
            else:                   # x's leading dimensions at run time, then N
                x_shape, x_lead = names.fresh(mm.input[0] + "_shape"), names.fresh(
                    mm.input[0] + "_leading")
                ends, last = names.fresh(target + "_ends"), names.fresh(target + "_n")
                new_inits += [numpy_helper.from_array(np.array([-1], np.int64), ends),
                              numpy_helper.from_array(np.array([n], np.int64), last)]
                starts = names.fresh(target + "_starts")
                new_inits.append(numpy_helper.from_array(np.array([0], np.int64), starts))
                nodes += [
                    helper.make_node("Shape", [mm.input[0]], [x_shape],
                                     name=names.fresh(mm.name + "_shape_of_input")),
                    helper.make_node("Slice", [x_shape, starts, ends], [x_lead],
                                     name=names.fresh(mm.name + "_leading")),
                    helper.make_node("Concat", [x_lead, last], [target], axis=0,
                                     name=names.fresh(mm.name + "_target")),
                ]
            nodes += [
                helper.make_node("Flatten", [mm.input[0]], [flat], axis=len(shape) - 1,
                                 name=names.fresh(mm.name + "_rows")),
                helper.make_node("Gemm", [flat, mm.input[1], b_name], [product],
                                 name=mm.name),
                helper.make_node("Reshape", [product, target], [add.output[0]],
                                 name=names.fresh(mm.name + "_shape")),
            ]
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
